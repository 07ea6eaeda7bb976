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

    /// The largest cut at or before `cut` in `bytes` that no occurrence of a secret
    /// straddles (an occurrence around the cut moves the cut to where it starts).
    pub fn safe_cut(&self, bytes: &[u8], mut cut: usize) -> usize {
        cut = cut.min(bytes.len());
        loop {
            let before = cut;
            for v in &self.values {
                let v = v.as_bytes();
                let from = cut.saturating_sub(v.len() - 1);
                let to = (cut + v.len() - 1).min(bytes.len());
                if let Some(at) = bytes[from..to]
                    .windows(v.len())
                    .position(|w| w == v)
                    .map(|p| from + p)
                    .filter(|&at| at < cut)
                {
                    cut = at;
                }
            }
            if cut == before {
                return cut;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}
