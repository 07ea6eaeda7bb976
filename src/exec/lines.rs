//! Splits a byte stream into lines, however the reads happen to be cut.

use super::Masker;

/// Longest line kept whole; longer ones are emitted in pieces so memory stays bounded.
const MAX_LINE: usize = 1 << 20;

#[derive(Default)]
pub(super) struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Feeds bytes; calls `emit` for every completed line (without `\n` or `\r\n`), with
    /// the masker (which `emit` may extend). A line over [`MAX_LINE`] is emitted in pieces,
    /// cut where no secret the masker knows straddles the cut (so each piece masks whole)
    /// and not inside a UTF-8 character.
    pub(super) fn push(
        &mut self,
        mut bytes: &[u8],
        masker: &mut Masker,
        mut emit: impl FnMut(&mut Masker, &str),
    ) {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                emit_line(&bytes[..i], masker, &mut emit);
            } else {
                self.partial.extend_from_slice(&bytes[..i]);
                emit_line(&self.partial, masker, &mut emit);
                self.partial.clear();
            }
            bytes = &bytes[i + 1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() > MAX_LINE {
            let mut cut = masker.safe_cut(&self.partial, MAX_LINE);
            while cut > 0 && cut < self.partial.len() && (self.partial[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            if cut == 0 {
                cut = MAX_LINE;
            }
            emit_line(&self.partial[..cut], masker, &mut emit);
            self.partial.drain(..cut);
        }
    }

    /// Emits a final line that had no trailing newline.
    pub(super) fn finish(&mut self, masker: &mut Masker, mut emit: impl FnMut(&mut Masker, &str)) {
        if !self.partial.is_empty() {
            emit_line(&self.partial, masker, &mut emit);
            self.partial.clear();
        }
    }
}

fn emit_line(bytes: &[u8], masker: &mut Masker, emit: &mut impl FnMut(&mut Masker, &str)) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => emit(masker, s),
        Err(_) => emit(masker, &String::from_utf8_lossy(bytes)),
    }
}

/// Whole lines out of text that arrives in chunks (a stored log read piece by piece): what
/// follows the last newline waits for the next chunk.
#[derive(Default)]
pub(crate) struct WholeLines {
    partial: String,
}

impl WholeLines {
    /// The text up to and including the last newline seen so far, if there is one.
    pub(crate) fn push(&mut self, chunk: &str) -> Option<String> {
        self.partial.push_str(chunk);
        let end = self.partial.rfind('\n')?;
        Some(self.partial.drain(..=end).collect())
    }

    /// What is left after the last newline.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.partial)
    }
}
