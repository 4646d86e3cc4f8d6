//! A reader that checks the sha256 of everything read through it against an expected OCI
//! digest when the stream ends, so a corrupted or substituted blob fails as it streams
//! (OCI image-spec `descriptor.md`: "digests ... MUST be verified").

use sha2::{Digest, Sha256};
use std::io::{self, Read};

/// Wraps a reader and fails the read that reaches EOF if the bytes do not hash to `expected`
/// or their count differs from `expected_size`.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: String,
    expected_size: Option<u64>,
    seen: u64,
    what: String,
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// `what` names the blob in errors (e.g. "layer sha256:… of docker://…").
    pub fn new(inner: R, expected: &str, expected_size: Option<u64>, what: String) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected: expected.to_owned(),
            expected_size,
            seen: 0,
            what,
            done: false,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.seen
    }

    fn finish(&mut self) -> io::Result<()> {
        let got = format!("sha256:{}", hex::encode(self.hasher.finalize_reset()));
        if let Some(size) = self.expected_size
            && size != self.seen
        {
            return Err(invalid(format!(
                "{}: size mismatch: expected {size} bytes, got {}",
                self.what, self.seen
            )));
        }
        if got != self.expected {
            return Err(invalid(format!(
                "{}: digest mismatch: expected {}, got {got}",
                self.what, self.expected
            )));
        }
        Ok(())
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.done = true;
            self.finish()?;
            return Ok(0);
        }
        self.seen += n as u64;
        if let Some(size) = self.expected_size
            && self.seen > size
        {
            self.done = true;
            return Err(invalid(format!(
                "{}: size mismatch: more than the expected {size} bytes",
                self.what
            )));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Checks that a digest string is a well-formed `sha256:<64 hex>`; other algorithms are refused
/// rather than trusted unverified.
pub fn check_digest_syntax(digest: &str) -> Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        _ => Err(format!(
            "unsupported or malformed digest {digest:?} (expected sha256:<64 hex>)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_matching_and_rejects_other_bytes() {
        let d = crate::manifest::sha256_digest(b"hello");
        let mut ok = VerifyingReader::new(&b"hello"[..], &d, Some(5), "blob".into());
        io::copy(&mut ok, &mut io::sink()).unwrap();
        let mut bad = VerifyingReader::new(&b"hellO"[..], &d, Some(5), "blob".into());
        let err = io::copy(&mut bad, &mut io::sink()).unwrap_err().to_string();
        assert!(
            err.starts_with("blob: digest mismatch: expected sha256:2cf24d"),
            "{err}"
        );
        let mut short = VerifyingReader::new(&b"hell"[..], &d, Some(5), "blob".into());
        let err = io::copy(&mut short, &mut io::sink())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "blob: size mismatch: expected 5 bytes, got 4");
    }
}
