//! Secret masking: every registered value (each line of a multi-line value separately) is
//! replaced by `***` in every line before it leaves `exec`.

use std::borrow::Cow;

#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a secret containing another is masked whole.
    values: Vec<String>,
}

impl Masker {
    pub fn add(&mut self, value: &str) {
        for line in value.lines().map(|l| l.trim_end_matches('\r')) {
            if line.trim().is_empty() || self.values.iter().any(|v| v == line) {
                continue;
            }
            self.values.push(line.to_string());
        }
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = Cow::Owned(out.replace(v.as_str(), "***"));
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}
