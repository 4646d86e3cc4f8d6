//! Listing a repository's tags (distribution-spec `GET /v2/<name>/tags/list`), page by page,
//! through the shared registry client. Kept apart from the blob and manifest reader: only
//! `sync` needs it.

use super::SourceError;
use crate::registry::{RegistryClient, RegistryOptions};
use oci_client::Reference;

/// Tags asked for per request; registries may cap it lower and still page correctly.
const PAGE: usize = 100;

/// Every tag of `repository`'s repository, in the registry's order, following its
/// `Link: <…>; rel="next"` pages (bounded by the client).
pub fn list_tags(
    repository: &Reference,
    opts: &RegistryOptions,
) -> Result<Vec<String>, SourceError> {
    let name = format!(
        "docker://{}/{}",
        repository.registry(),
        repository.repository()
    );
    let err = |m: String| SourceError::new(&name, format!("listing tags: {m}"));
    let client = RegistryClient::connect(repository, opts).map_err(|e| err(e.0))?;
    let mut tags = client
        .list_tags(repository.repository(), PAGE)
        .map_err(|e| err(e.0))?;
    let mut seen = std::collections::HashSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    Ok(tags)
}
