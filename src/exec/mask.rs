//! Secret masking: every registered value (each line of a multi-line value separately) is
//! replaced by `***` in every line before it leaves `exec`.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

/// Clones share one set of values (a job's background steps and its foreground see an
/// `::add-mask::` from any of them at once); [`Masker::fork`] makes an independent copy.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a secret containing another is masked whole.
    values: Arc<RwLock<Vec<String>>>,
}

impl Masker {
    /// A copy that later additions (to either) do not reach: one per job.
    pub fn fork(&self) -> Masker {
        Masker {
            values: Arc::new(RwLock::new(self.values().clone())),
        }
    }

    fn values(&self) -> RwLockReadGuard<'_, Vec<String>> {
        self.values.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add(&self, value: &str) {
        let mut values = self.values.write().unwrap_or_else(PoisonError::into_inner);
        for line in value.lines().map(|l| l.trim_end_matches('\r')) {
            if line.trim().is_empty() || values.iter().any(|v| v == line) {
                continue;
            }
            values.push(line.to_string());
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for v in self.values().iter() {
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
            for v in self.values().iter() {
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
        self.values().is_empty()
    }
}
