//! Splits a byte stream into lines, however the reads happen to be cut.

/// Longest line kept whole; longer ones are emitted in pieces so memory stays bounded.
const MAX_LINE: usize = 1 << 20;

#[derive(Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Feeds bytes; calls `emit` for every completed line (without `\n` or `\r\n`).
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&str)) {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                emit_line(&bytes[..i], &mut emit);
            } else {
                self.partial.extend_from_slice(&bytes[..i]);
                emit_line(&self.partial, &mut emit);
                self.partial.clear();
            }
            bytes = &bytes[i + 1..];
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() > MAX_LINE {
            emit_line(&self.partial, &mut emit);
            self.partial.clear();
        }
    }

    /// Emits a final line that had no trailing newline.
    pub fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if !self.partial.is_empty() {
            emit_line(&self.partial, &mut emit);
            self.partial.clear();
        }
    }
}

fn emit_line(bytes: &[u8], emit: &mut impl FnMut(&str)) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => emit(s),
        Err(_) => emit(&String::from_utf8_lossy(bytes)),
    }
}
