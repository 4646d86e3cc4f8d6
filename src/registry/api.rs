//! The distribution-spec requests that carry no blob body: manifest GET/HEAD/PUT, blob HEAD,
//! and the tag list (paginated with `Link` headers), each through the retrying client.

use super::{RegistryClient, RegistryError};
use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LINK};

/// Scope of a read-only request on a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// Scope of a push to a repository (reads and HEADs there too, so one token serves all).
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
}

impl RegistryClient {
    /// `GET /v2/NAME/manifests/REF` with `accept` as the Accept list; the exact bytes.
    pub fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[&str],
        scope: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let what = format!("GET manifest {repository}:{reference}");
        let accept = accept.join(", ");
        let mut attempts = super::retry::Attempts::new(self.retry);
        loop {
            let response = self.send(&what, scope, &mut |c| c.get(&url).header(ACCEPT, &accept))?;
            let response = self.expect(&what, response, &[200])?;
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // A body cut short is retried like any other transient failure.
            match response.bytes() {
                Ok(b) => {
                    return Ok(FetchedManifest {
                        bytes: b.to_vec(),
                        content_type,
                    });
                }
                Err(e) => attempts
                    .back_off(super::transport_failure(&what, &e))
                    .map_err(RegistryError)?,
            }
        }
    }

    /// `HEAD /v2/NAME/manifests/REF`: whether it exists.
    pub fn has_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[&str],
        scope: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let what = format!("HEAD manifest {repository}@{reference}");
        let accept = accept.join(", ");
        let response = self.send(&what, scope, &mut |c| c.head(&url).header(ACCEPT, &accept))?;
        Ok(self.expect(&what, response, &[200, 404])?.status() == 200)
    }

    /// `HEAD /v2/NAME/blobs/DIGEST`: whether the repository has the blob.
    pub fn has_blob(
        &self,
        repository: &str,
        digest: &str,
        scope: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        let what = format!("HEAD blob {digest} in {repository}");
        let response = self.send(&what, scope, &mut |c| c.head(&url))?;
        Ok(self.expect(&what, response, &[200, 404])?.status() == 200)
    }

    /// `PUT /v2/NAME/manifests/REF` with exactly `bytes`; the `OCI-Subject` header of the
    /// answer, which a registry serving the referrers API sends when it indexed the
    /// manifest's `subject` (distribution-spec 1.1 "Pushing Manifests with Subject").
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Option<String>, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let what = format!("PUT manifest {repository}:{reference}");
        let scope = push_scope(repository);
        let response = self.send(&what, &scope, &mut |c| {
            c.put(&url)
                .header(CONTENT_TYPE, media_type)
                .body(bytes.clone())
        })?;
        let response = self.expect(&what, response, &[200, 201, 202])?;
        Ok(response
            .headers()
            .get("OCI-Subject")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned))
    }

    /// `GET /v2/NAME/manifests/REF`, None when the registry answers 404.
    pub fn find_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[&str],
        scope: &str,
    ) -> Result<Option<FetchedManifest>, RegistryError> {
        if !self.has_manifest(repository, reference, accept, scope)? {
            return Ok(None);
        }
        self.get_manifest(repository, reference, accept, scope)
            .map(Some)
    }

    /// `GET /v2/NAME/referrers/DIGEST?artifactType=T` (distribution-spec 1.1): the referrers
    /// index (its first page), or None when the registry does not serve the API.
    pub fn referrers(
        &self,
        repository: &str,
        digest: &str,
        artifact_type: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let url = self.url(&format!(
            "/v2/{repository}/referrers/{digest}?artifactType={}",
            artifact_type.replace('+', "%2B")
        ));
        let what = format!("GET referrers of {repository}@{digest}");
        let scope = pull_scope(repository);
        let response = self.send(&what, &scope, &mut |c| c.get(&url))?;
        // 404 is the spec's "not served"; registries that predate the endpoint also answer
        // 400, 405 or 501 for an unknown route.
        let response = self.expect(&what, response, &[200, 400, 404, 405, 501])?;
        if response.status() != 200 {
            return Ok(None);
        }
        let body = response
            .bytes()
            .map_err(|e| RegistryError(format!("{what}: {}", super::describe(&e))))?;
        Ok(Some(body.to_vec()))
    }

    /// Every tag of a repository, asked for `page` at a time, following
    /// `Link: <…>; rel="next"` pages.
    pub fn list_tags(&self, repository: &str, page: usize) -> Result<Vec<String>, RegistryError> {
        let scope = pull_scope(repository);
        let mut next = Some(format!("/v2/{repository}/tags/list?n={}", page.max(1)));
        let mut tags = Vec::new();
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(RegistryError(format!(
                    "tags of {repository}: more than 10000 pages"
                )));
            }
            let url = self.url(&path);
            let what = format!("GET tags of {repository}");
            let response = self.send(&what, &scope, &mut |c| c.get(&url))?;
            let response = self.expect(&what, response, &[200])?;
            next = response
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body = response
                .bytes()
                .map_err(|e| RegistryError(format!("{what}: {}", super::describe(&e))))?;
            let json: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|_| RegistryError(format!("{what}: answer is not JSON")))?;
            if let Some(list) = json.get("tags").and_then(|t| t.as_array()) {
                tags.extend(list.iter().filter_map(|t| t.as_str()).map(str::to_owned));
            }
        }
        Ok(tags)
    }
}

/// The target of `rel="next"` in a `Link` header (RFC 8288).
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_link() {
        assert_eq!(
            super::next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(super::next_link(r#"</x>; rel="prev""#), None);
    }
}
