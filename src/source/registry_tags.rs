//! Listing a repository's tags (distribution-spec `GET /v2/<name>/tags/list`), page by page.
//! Kept apart from the blob and manifest reader: only `sync` needs it.

use super::{RegistryOptions, SourceError, build_client, describe_error};
use crate::auth;
use oci_client::errors::OciDistributionError;
use oci_client::{Client, Reference};

/// Tags asked for per request; registries may cap it lower and still page correctly.
const PAGE: usize = 100;
/// A bound on the pages read, so a registry that never stops paging cannot hang a run.
const MAX_PAGES: usize = 10_000;

/// Every tag of `repository`'s repository, in the registry's (lexical) order. Pages follow the
/// spec's `n`/`last` parameters, which is what the `Link: <…?last=X&n=N>; rel="next"` header of
/// each page names; reading stops at an empty page or one that does not move forward.
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
    let auth = auth::resolve(
        repository.resolve_registry(),
        repository.repository(),
        &opts.auth,
    )
    .map_err(err)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(format!("starting I/O runtime: {e}")))?;
    let registry = repository.resolve_registry();
    let page = |client: &Client, last: Option<&str>| {
        runtime.block_on(client.list_tags(repository, &auth, Some(PAGE), last))
    };
    let https = build_client(registry, opts, false).map_err(err)?;
    // As for manifests: --tls-verify=false also allows plain HTTP when TLS is not spoken.
    let (client, first) = match page(&https, None) {
        Err(OciDistributionError::RequestError(_)) if !opts.tls_verify => {
            let http = build_client(registry, opts, true).map_err(err)?;
            let first = page(&http, None);
            (http, first)
        }
        other => (https, other),
    };
    let mut tags = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut response = first.map_err(|e| err(describe_error(&e)))?;
    for _ in 0..MAX_PAGES {
        let before = tags.len();
        for t in response.tags {
            if !seen.contains(&t) {
                seen.insert(t.clone());
                tags.push(t);
            }
        }
        if tags.len() == before {
            return Ok(tags);
        }
        let last = tags.last().cloned();
        response = page(&client, last.as_deref()).map_err(|e| err(describe_error(&e)))?;
    }
    Err(err(format!("more than {MAX_PAGES} pages")))
}
