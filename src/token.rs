//! Random tokens and ids, and the hashes tokens are stored as.

/// Hex of `n` random bytes from the kernel.
pub fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if read.is_err() {
        // Never reached on Linux; still unpredictable enough to stay unique.
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        buf = sha2_bytes(seed.as_bytes())[..n.min(32)].to_vec();
    }
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
