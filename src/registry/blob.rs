//! A blob read from a registry as a blocking `Read` that survives a cut or stalled connection:
//! it asks again from the byte it reached with `Range` (distribution-spec "fetch blob part"),
//! and if the registry answers with the whole blob instead, skips what was already read.
//! Attempts and time are bounded by the retry policy; the digest is checked by the caller over
//! the whole stream, so a resumed read that differs cannot pass.

use super::RegistryClient;
use super::api::pull_scope;
use super::retry::{Attempts, Failure};
use reqwest::StatusCode;
use reqwest::blocking::Response;
use reqwest::header::{CONTENT_RANGE, RANGE};
use std::io::{self, Read};
use std::sync::Arc;

/// A resumable blob download.
pub struct BlobReader {
    client: Arc<RegistryClient>,
    repository: String,
    digest: String,
    size: u64,
    /// Bytes handed to the caller so far.
    offset: u64,
    body: Option<Response>,
    attempts: Attempts,
    resumed: u32,
}

impl RegistryClient {
    /// Opens `GET /v2/NAME/blobs/DIGEST` (the first response is awaited here, so a missing
    /// blob or refused credentials fail now, not at the first read).
    pub fn open_blob(
        self: &Arc<Self>,
        repository: &str,
        digest: &str,
        size: u64,
    ) -> Result<BlobReader, super::RegistryError> {
        let mut reader = BlobReader {
            client: Arc::clone(self),
            repository: repository.to_owned(),
            digest: digest.to_owned(),
            size,
            offset: 0,
            body: None,
            attempts: Attempts::new(self.retry),
            resumed: 0,
        };
        loop {
            match reader.reopen() {
                Ok(()) => return Ok(reader),
                Err(f) => reader.attempts.back_off(f).map_err(super::RegistryError)?,
            }
        }
    }
}

impl BlobReader {
    /// How many times the read was picked up again after a failure.
    pub fn resumed(&self) -> u32 {
        self.resumed
    }

    fn what(&self) -> String {
        format!("blob {} from {}", self.digest, self.repository)
    }

    /// Sends the GET for the rest of the blob (one attempt; the caller backs off).
    fn reopen(&mut self) -> Result<(), Failure> {
        self.body = None;
        let url = self
            .client
            .url(&format!("/v2/{}/blobs/{}", self.repository, self.digest));
        let offset = self.offset;
        let what = format!("GET {}", self.what());
        let response = self
            .client
            .send_once(&what, &pull_scope(&self.repository), &mut |c| {
                let rb = c.get(&url);
                if offset > 0 {
                    rb.header(RANGE, format!("bytes={offset}-"))
                } else {
                    rb
                }
            })?;
        let status = response.status();
        let mut response = match status {
            StatusCode::OK => response,
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                let starts_at = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if starts_at != Some(offset) {
                    return Err(Failure::permanent(format!(
                        "{what}: asked for bytes from {offset}, the registry sent a different range"
                    )));
                }
                self.body = Some(response);
                return Ok(());
            }
            _ => {
                return Err(self
                    .client
                    .expect(&what, response, &[200])
                    .err()
                    .map(|e| Failure::permanent(e.0))
                    .unwrap_or_else(|| Failure::permanent(what.clone())));
            }
        };
        // The whole blob again: skip what the caller already has.
        let mut left = offset;
        let mut scratch = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = scratch.len().min(left as usize);
            match response.read(&mut scratch[..want]) {
                Ok(0) => {
                    return Err(Failure::transient(format!(
                        "{what}: body ended before byte {offset}"
                    )));
                }
                Ok(n) => left -= n as u64,
                Err(e) => return Err(Failure::transient(format!("{what}: {e}"))),
            }
        }
        self.body = Some(response);
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let failure = match &mut self.body {
                None => match self.reopen() {
                    Ok(()) => continue,
                    Err(f) => f,
                },
                Some(body) => match body.read(buf) {
                    Ok(0) if self.offset < self.size => Failure::transient(format!(
                        "{}: body ended after {} of {} bytes",
                        self.what(),
                        self.offset,
                        self.size
                    )),
                    Ok(n) => {
                        self.offset += n as u64;
                        return Ok(n);
                    }
                    Err(e) => {
                        Failure::transient(format!("{}: at byte {}: {e}", self.what(), self.offset))
                    }
                },
            };
            self.body = None;
            self.attempts.back_off(failure).map_err(io::Error::other)?;
            self.resumed += 1;
        }
    }
}
