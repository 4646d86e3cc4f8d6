//! `sync`: seal every tag of a repository into another, idempotently. Above `seal`: it lists
//! the source's tags, keeps those of this shard that match the filter, plans each one
//! (unchanged when the destination already records this source manifest and this seal
//! fingerprint; skipped when not a bootc image) and runs the plain seal pipeline on the rest.
//! A tag moves only when `seal` writes its top manifest, last, so a killed run loses at most
//! the tags in flight and a rerun picks them up.

mod repo;
mod shard;

pub use repo::{Repo, is_bootc};
pub use shard::{Shard, shard_of};

use crate::digest::LayerCache;
use crate::registry::RegistryOptions;
use crate::seal::{self, BASE_DIGEST_ANNOTATION, FINGERPRINT_ANNOTATION, SealOptions};
use crate::sink::{OciLayoutSink, Sink};
use crate::source::{self, SourceOptions};
use std::sync::Arc;

/// What happened to one tag.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Sealed and written; `reference` is `DST@sha256:…`.
    Sealed {
        reference: String,
        digest: String,
    },
    /// `--dry-run`: would have been sealed.
    WouldSeal,
    /// The destination already holds this source sealed with these options.
    Unchanged {
        digest: String,
    },
    Skipped {
        reason: String,
    },
    Failed {
        reason: String,
    },
    /// Offline signing: not sealed for want of these signatures (requested by a
    /// `--prepare-signing` run, or missing from `--signatures`).
    Unsigned {
        ids: Vec<String>,
    },
}

/// One tag's line of the summary.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TagResult {
    pub tag: String,
    /// The source manifest (or index) digest, when it could be read.
    pub source_digest: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl std::fmt::Display for TagResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Sealed { reference, .. } => write!(f, "{}: sealed {reference}", self.tag),
            Outcome::WouldSeal => write!(f, "{}: would seal (dry run)", self.tag),
            Outcome::Unchanged { .. } => write!(f, "{}: unchanged", self.tag),
            Outcome::Skipped { reason } => write!(f, "{}: skipped: {reason}", self.tag),
            Outcome::Failed { reason } => write!(f, "{}: failed: {reason}", self.tag),
            Outcome::Unsigned { ids } => write!(
                f,
                "{}: not sealed: awaiting signatures {}",
                self.tag,
                ids.join(", ")
            ),
        }
    }
}

/// The whole run, tags in listing order.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SyncReport {
    pub from: String,
    pub to: String,
    /// Tags listed at the source before filtering and sharding.
    pub listed: usize,
    pub tags: Vec<TagResult>,
    /// Base layers taken from this run's cache instead of being read again.
    pub layers_reused: u64,
}

impl SyncReport {
    pub fn failed(&self) -> usize {
        self.tags
            .iter()
            .filter(|t| matches!(t.outcome, Outcome::Failed { .. }))
            .count()
    }
}

/// A sync to run.
pub struct SyncRequest {
    pub from: Repo,
    pub to: Repo,
    /// Only tags matching this expression (anchored by the caller if wanted).
    pub tags: Option<regex::Regex>,
    pub shard: Option<Shard>,
    /// Tags sealed at once.
    pub jobs: usize,
    pub dry_run: bool,
    /// Reseal even tags the destination records as up to date.
    pub force: bool,
    pub source: SourceOptions,
    pub dest: RegistryOptions,
    /// Bytes of parsed layers kept for reuse between tags (0: no cache).
    pub layer_cache_budget: usize,
    /// Offline signing, first run: collect the signing requests of every tag it would seal
    /// (through the seal options' recording signer), write nothing.
    pub prepare_signing: bool,
}

/// Why the run could not start (per-tag failures are [`Outcome::Failed`]).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error("{0}")]
    Other(String),
}

/// Runs `request`. `make_options` gives each worker its own seal options (the signer is not
/// shared between threads); `on_result` sees each tag as it finishes.
pub fn sync(
    request: &SyncRequest,
    make_options: &(dyn Fn() -> Result<SealOptions, String> + Sync),
    on_result: &(dyn Fn(&TagResult) + Sync),
) -> Result<SyncReport, SyncError> {
    if request.to.single_tag().is_some() {
        return Err(SyncError::Other(format!(
            "--to {}: name a repository or layout without a tag (each tag keeps its name)",
            request.to.name()
        )));
    }
    if request.from.name() == request.to.name() {
        return Err(SyncError::Other(format!(
            "--from and --to are both {}: sealed tags would replace their own sources",
            request.to.name()
        )));
    }
    let listed = request.from.tags(&request.source.registry)?;
    let selected: Vec<String> = listed
        .iter()
        .filter(|t| request.tags.as_ref().is_none_or(|re| re.is_match(t)))
        .filter(|t| request.shard.is_none_or(|s| s.contains(t)))
        .cloned()
        .collect();
    // One layout for every tag (blobs stored once); registries are opened per tag, and only
    // for tags that are written.
    let writes = !request.dry_run && !request.prepare_signing;
    let layout_sink = match (&request.to, writes) {
        (Repo::Layout { dir, .. }, true) => {
            Some(OciLayoutSink::create(dir, None).map_err(|e| SyncError::Other(e.to_string()))?)
        }
        _ => None,
    };
    // Tags of one repository share most layers: each is read once per run.
    let cache = Arc::new(LayerCache::new(request.layer_cache_budget));
    let mut results: Vec<Option<TagResult>> = vec![None; selected.len()];
    // Each worker has its own options (its own signer) and fingerprint.
    let make_worker = || {
        let mut opts = make_options()?;
        opts.layer_cache = (request.layer_cache_budget > 0).then(|| Arc::clone(&cache));
        let fingerprint = opts.fingerprint();
        Ok::<_, String>((opts, fingerprint))
    };
    crate::worker_pool::run(
        selected.len(),
        request.jobs,
        make_worker,
        |(opts, fingerprint), i| {
            sync_tag(
                request,
                &selected[i],
                opts,
                fingerprint,
                layout_sink.as_ref().map(|s| s as &dyn Sink),
            )
        },
        |i, result| {
            on_result(&result);
            results[i] = Some(result);
            crate::worker_pool::Flow::Continue
        },
    )
    .map_err(SyncError::Other)?;
    let tags = results.into_iter().flatten().collect();
    Ok(SyncReport {
        from: request.from.name(),
        to: request.to.name(),
        listed: listed.len(),
        tags,
        layers_reused: cache.hits(),
    })
}

/// Plans and, when needed, seals one tag; every error becomes this tag's `Failed`.
fn sync_tag(
    request: &SyncRequest,
    tag: &str,
    opts: &mut SealOptions,
    fingerprint: &str,
    layout_sink: Option<&dyn Sink>,
) -> TagResult {
    let mut result = TagResult {
        tag: tag.to_owned(),
        source_digest: None,
        outcome: Outcome::WouldSeal,
    };
    // A listing is the registry's (or layout's) word: a name outside the tag grammar could
    // reach into URLs and file names, or forge summary lines.
    if !crate::reference::is_valid_tag(tag) {
        result.tag = crate::text::escape_controls(tag);
        result.outcome = Outcome::Skipped {
            reason: "not a valid tag name ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})".into(),
        };
        return result;
    }
    let fail = |reason: String| Outcome::Failed { reason };
    let from = request.from.image(tag);
    let source = match source::open(&from, &request.source) {
        Ok(s) => s,
        Err(e) => {
            result.outcome = fail(e.to_string());
            return result;
        }
    };
    let root = match source.root_manifest() {
        Ok(r) => r,
        Err(e) => {
            result.outcome = fail(e.to_string());
            return result;
        }
    };
    let source_digest = root.digest();
    result.source_digest = Some(source_digest.clone());
    if !request.force
        && let Some(existing) = request.to.existing(tag, &request.dest)
    {
        let recorded = |key: &str| {
            existing
                .json
                .get("annotations")
                .and_then(|a| a.get(key))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        if recorded(BASE_DIGEST_ANNOTATION).as_deref() == Some(source_digest.as_str())
            && recorded(FINGERPRINT_ANNOTATION).as_deref() == Some(fingerprint)
        {
            result.outcome = Outcome::Unchanged {
                digest: existing.digest(),
            };
            return result;
        }
    }
    match is_bootc(source.as_ref(), &root, &opts.platforms) {
        Ok(true) => {}
        Ok(false) => {
            result.outcome = Outcome::Skipped {
                reason: "not bootc (no containers.bootc or ostree.bootable label)".into(),
            };
            return result;
        }
        Err(e) => {
            result.outcome = fail(e.to_string());
            return result;
        }
    }
    if request.dry_run {
        return result;
    }
    let to = request.to.image(tag);
    opts.base_name = from.registry_name();
    // Tags cannot hold ':', so `TAG:` keeps each tag's request ids apart.
    opts.request_prefix = format!("{tag}:");
    let unsigned = |opts: &SealOptions| {
        opts.offline
            .as_ref()
            .map(|o| o.unsigned(&opts.request_prefix))
            .filter(|ids| !ids.is_empty())
    };
    if request.prepare_signing {
        result.outcome = match seal::rehearse(source, opts) {
            Ok(()) => Outcome::Unsigned {
                ids: unsigned(opts).unwrap_or_default(),
            },
            Err(e) => fail(e.to_string()),
        };
        return result;
    }
    let opened;
    let sink: &dyn Sink = match layout_sink {
        Some(s) => s,
        None => match crate::sink::open(&to, &request.dest) {
            Ok(s) => {
                opened = s;
                opened.as_ref()
            }
            Err(e) => {
                result.outcome = fail(e.to_string());
                return result;
            }
        },
    };
    result.outcome = match seal::seal(source, sink, &to, opts)
        .map_err(|e| e.to_string())
        .and_then(|report| sink.commit().map(|()| report).map_err(|e| e.to_string()))
    {
        Ok(report) => Outcome::Sealed {
            reference: report.reference,
            digest: report.digest,
        },
        Err(e) => match unsigned(opts) {
            Some(ids) => Outcome::Unsigned { ids },
            None => fail(e),
        },
    };
    result
}
