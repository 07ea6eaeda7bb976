//! Random tokens and ids, the hashes tokens are stored as, and [`Secret`]: a credential
//! that no `Debug`/`Display` (so no log line) can show.

/// Hex of `n` random bytes from the operating system's CSPRNG (`ring::rand`, which uses
/// `getrandom(2)`). Without one no token could be trusted, so its failure is fatal.
pub fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the operating system's random number generator failed");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random number in [0, 1] (for jitter).
pub fn random_unit() -> f64 {
    u64::from_str_radix(&random_hex(2), 16).unwrap_or(0) as f64 / 65535.0
}

pub fn sha256_hex(data: &[u8]) -> String {
    sha2_bytes(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha2_bytes(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

/// A token or key in memory: shown as `***` by `Debug` and `Display`; [`Secret::expose`]
/// is the one way to the value (where it is put into a request header).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
