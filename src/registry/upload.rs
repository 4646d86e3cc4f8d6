//! Blob uploads (distribution-spec push): a session opened with `POST`, the content streamed in
//! one `PATCH`, closed with `PUT ?digest=`. Any failure in a session abandons it and starts a
//! new one with the content read again from the start, within the retry policy. Also the
//! cross-repository mount (`POST ?mount=&from=`), with a token of its own wide enough for both
//! repositories.

use super::RegistryClient;
use super::RegistryError;
use super::api::push_scope;
use super::retry::{Attempts, Failure};
use reqwest::blocking::{Body, Response};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use std::time::Duration;

/// Outcome of a mount request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    Mounted,
    /// The registry declined (it opened an upload session instead, now cancelled) or
    /// refused; the blob must be copied.
    NotMounted,
}

impl RegistryClient {
    /// Uploads a blob; `open` gives the content from its start, once per session.
    pub fn upload_blob(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        open: &mut dyn FnMut() -> Result<Body, String>,
    ) -> Result<(), RegistryError> {
        let mut attempts = Attempts::new(self.retry);
        loop {
            match self.upload_session(repository, digest, size, open) {
                Ok(()) => return Ok(()),
                Err(f) => attempts
                    .back_off(f)
                    .map_err(|m| RegistryError(format!("uploading blob {digest}: {m}")))?,
            }
        }
    }

    fn upload_session(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        open: &mut dyn FnMut() -> Result<Body, String>,
    ) -> Result<(), Failure> {
        let scope = push_scope(repository);
        let start = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        let response = self.send_once("POST upload", &scope, &mut |c| {
            c.post(&start).header(CONTENT_LENGTH, "0")
        })?;
        let location = self.location("POST upload", response, &[202])?;

        // One streamed PATCH. Its time limit grows with the size (the blocking client's
        // timeout covers sending the whole body), assuming at least 256 KiB/s.
        let body = open().map_err(Failure::permanent)?;
        let limit = self.timeout + Duration::from_secs(size / (256 * 1024));
        let response = self.send_one_shot("PATCH upload", &scope, |c| {
            c.patch(&location)
                .header(CONTENT_TYPE, "application/octet-stream")
                .timeout(limit)
                .body(body)
        })?;
        let location = self.location("PATCH upload", response, &[202])?;

        let sep = if location.contains('?') { '&' } else { '?' };
        let finish = format!("{location}{sep}digest={digest}");
        let response = self.send_once("PUT upload", &scope, &mut |c| {
            c.put(&finish).header(CONTENT_LENGTH, "0")
        })?;
        if response.status().as_u16() != 201 {
            return Err(self.failure("PUT upload", response));
        }
        Ok(())
    }

    /// The upload URL from a `Location` header, or the failure the response describes.
    fn location(&self, what: &str, response: Response, ok: &[u16]) -> Result<String, Failure> {
        if !ok.contains(&response.status().as_u16()) {
            return Err(self.failure(what, response));
        }
        response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| self.url(l))
            .ok_or_else(|| Failure::permanent(format!("{what}: no Location in the answer")))
    }

    /// A non-success response as a failure: transient statuses were already turned into
    /// failures by `send_once`, so this is permanent, except a body that cannot be read.
    fn failure(&self, what: &str, response: Response) -> Failure {
        match self.expect(what, response, &[]) {
            Err(e) => Failure::permanent(e.0),
            Ok(_) => Failure::permanent(what.to_owned()),
        }
    }

    /// Asks the registry to link `digest` from `from` into `repository` (same registry).
    pub fn mount_blob(
        &self,
        repository: &str,
        from: &str,
        digest: &str,
    ) -> Result<Mount, RegistryError> {
        // The push token alone does not grant pull on `from`: token registries then refuse the
        // mount with 401 (seen with distribution 2.8.2's token auth). Ask for both in one token,
        // as go-containerregistry's `scopesForUploadingImage` (`pkg/v1/remote/write.go`) does,
        // cached under its own scope so the push token stays as it is.
        let scope = format!("{} repository:{from}:pull", push_scope(repository));
        let url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        let what = format!("mount {digest} from {from}");
        let response = self.send(&what, &scope, &mut |c| {
            c.post(&url)
                .query(&[("mount", digest), ("from", from)])
                .header(CONTENT_LENGTH, "0")
        })?;
        match response.status().as_u16() {
            201 => Ok(Mount::Mounted),
            202 => {
                // Declined: an upload session was opened instead; close it.
                if let Some(loc) = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                {
                    let loc = self.url(loc);
                    let _ = self.send_once("cancel upload", &scope, &mut |c| c.delete(&loc));
                }
                Ok(Mount::NotMounted)
            }
            _ => Ok(Mount::NotMounted),
        }
    }
}
