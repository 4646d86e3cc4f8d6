//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and a reader that checks one at end of stream.
//!
//! Every byte bootseal consumes from an image is covered by a digest: compressed blobs by their
//! descriptor digest, uncompressed layers by the config's `diff_id`. [`VerifyingReader`] hashes
//! what passes through and turns a mismatch at EOF into an `InvalidData` I/O error carrying a
//! [`DigestMismatch`], so no consumer can mistake a corrupted or cut-short stream for a complete one.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256, Sha512};

/// Hash algorithms allowed in OCI content digests (OCI image-spec `descriptor.md`, "Digests").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

impl DigestAlgorithm {
    fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha512 => 128,
        }
    }
}

/// A parsed, validated OCI content digest such as `sha256:e3b0…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDigest {
    algorithm: DigestAlgorithm,
    hex: String,
}

impl ContentDigest {
    /// Parses `algorithm:hex`; only lowercase hex of the algorithm's length is accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| format!("invalid digest {s:?}: expected ALGORITHM:HEX"))?;
        let algorithm = match alg {
            "sha256" => DigestAlgorithm::Sha256,
            "sha512" => DigestAlgorithm::Sha512,
            _ => {
                return Err(format!(
                    "invalid digest {s:?}: unsupported algorithm {alg:?}"
                ));
            }
        };
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "invalid digest {s:?}: expected {} lowercase hex digits",
                algorithm.hex_len()
            ));
        }
        Ok(Self {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The sha256 digest of `data`, e.g. for building in-memory layers.
    pub fn sha256_of(data: &[u8]) -> Self {
        Self {
            algorithm: DigestAlgorithm::Sha256,
            hex: hex::encode(Sha256::digest(data)),
        }
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// The error carried inside the `io::Error` when a stream's digest does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestMismatch {
    /// What was hashed, e.g. "blob" or "diff_id".
    pub label: &'static str,
    pub expected: ContentDigest,
    pub actual: ContentDigest,
    pub bytes: u64,
}

impl fmt::Display for DigestMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} digest mismatch: expected {}, got {} ({} bytes)",
            self.label, self.expected, self.actual, self.bytes
        )
    }
}

impl std::error::Error for DigestMismatch {}

enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn finish_hex(&mut self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(std::mem::take(h).finalize()),
            Hasher::Sha512(h) => hex::encode(std::mem::take(h).finalize()),
        }
    }
}

/// A reader that hashes everything it yields and fails at EOF unless the digest matches.
///
/// The final `Ok(0)` is only returned after a successful comparison; on mismatch every later
/// read returns the same error again.
pub struct VerifyingReader<R> {
    inner: R,
    label: &'static str,
    expected: ContentDigest,
    hasher: Hasher,
    bytes: u64,
    state: State,
}

enum State {
    Reading,
    Verified,
    Failed(DigestMismatch),
}

impl<R: Read> VerifyingReader<R> {
    /// `label` names what is hashed in the error message ("blob", "diff_id", ...).
    pub fn new(inner: R, expected: ContentDigest, label: &'static str) -> Self {
        Self {
            inner,
            label,
            hasher: Hasher::new(expected.algorithm),
            expected,
            bytes: 0,
            state: State::Reading,
        }
    }

    /// Bytes read from the inner reader so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// True once EOF was reached and the digest matched.
    pub fn is_verified(&self) -> bool {
        matches!(self.state, State::Verified)
    }

    fn mismatch_error(m: &DigestMismatch) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, m.clone())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.state {
            State::Verified => return Ok(0),
            State::Failed(m) => return Err(Self::mismatch_error(m)),
            State::Reading => {}
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            self.bytes += n as u64;
            return Ok(n);
        }
        let actual = ContentDigest {
            algorithm: self.expected.algorithm,
            hex: self.hasher.finish_hex(),
        };
        if actual == self.expected {
            self.state = State::Verified;
            Ok(0)
        } else {
            let m = DigestMismatch {
                label: self.label,
                expected: self.expected.clone(),
                actual,
                bytes: self.bytes,
            };
            let err = Self::mismatch_error(&m);
            self.state = State::Failed(m);
            Err(err)
        }
    }
}

/// Counts the bytes that pass through a reader (shared so the count survives boxing).
pub struct CountingReader<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> CountingReader<R> {
    pub fn new(inner: R) -> (Self, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        (
            Self {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_digests() {
        let d = ContentDigest::sha256_of(b"abc");
        assert_eq!(ContentDigest::parse(&d.to_string()).unwrap(), d);
        assert!(ContentDigest::parse("sha256:ABC").is_err());
        assert!(
            ContentDigest::parse("md5:00")
                .unwrap_err()
                .contains("unsupported algorithm")
        );
        assert!(ContentDigest::parse("nocolon").is_err());
    }

    #[test]
    fn verifies_at_eof() {
        let data = vec![7u8; 100_000];
        let mut ok = VerifyingReader::new(&data[..], ContentDigest::sha256_of(&data), "blob");
        let mut out = Vec::new();
        ok.read_to_end(&mut out).unwrap();
        assert!(ok.is_verified());
        assert_eq!(out, data);

        let mut bad =
            VerifyingReader::new(&data[..50_000], ContentDigest::sha256_of(&data), "blob");
        let err = std::io::copy(&mut bad, &mut std::io::sink()).unwrap_err();
        let m = err
            .get_ref()
            .unwrap()
            .downcast_ref::<DigestMismatch>()
            .unwrap();
        assert_eq!(m.bytes, 50_000);
        assert!(
            err.to_string()
                .starts_with("blob digest mismatch: expected sha256:")
        );
    }

    #[test]
    fn sha512_digests() {
        let hex = hex::encode(Sha512::digest(b"x"));
        let d = ContentDigest::parse(&format!("sha512:{hex}")).unwrap();
        let mut r = VerifyingReader::new(&b"x"[..], d, "blob");
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        assert!(r.is_verified());
    }
}
