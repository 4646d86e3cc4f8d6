//! Parallel layer processing with strictly ordered application.
//!
//! Up to `parallelism` worker threads each take the next unprocessed layer, decompress it,
//! check its `diff_id`, parse the tar and fs-verity-hash its files, producing a compact entry
//! list. The calling thread applies those lists to the tree in layer order as they become
//! available, so memory holds entry metadata, never layer content. The first failing layer in
//! layer order is reported; layers after a failure are cancelled.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::layer_stream::LayerStream;
use crate::tree::{CaptureSet, EntryError, ParsedLayer, TreeBuilder, parse_layer};
use crate::worker_pool::{self, Flow};

use super::layer_cache::Lookup;
use super::{DigestError, LayerCache, LayerInput};

/// The tree after all layers, with byte counts.
pub(crate) struct BuiltTree {
    pub tree: TreeBuilder,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub external_files: u64,
    pub external_bytes: u64,
    /// Each layer's own `layer` digest (see [`super::plain::layer_digest`]) in layer order,
    /// when asked for; Err says why a layer has none.
    pub layer_digests: Vec<Result<String, String>>,
}

struct LayerResult {
    parsed: ParsedLayer,
    compressed_bytes: u64,
    own_digest: Option<Result<String, String>>,
}

/// Which `layer` digests to compute while layers are parsed: None for none.
pub(crate) type LayerDigests = Option<super::ErofsVersion>;

fn with_own_digest(mut result: LayerResult, layer_digests: LayerDigests) -> LayerResult {
    if let Some(version) = layer_digests {
        result.own_digest = Some(super::plain::layer_digest(
            result.parsed.duplicate(),
            version,
        ));
    }
    result
}

fn process_layer(
    input: LayerInput,
    capture: &CaptureSet,
    cancel: &AtomicBool,
) -> Result<LayerResult, EntryError> {
    let reader = (input.open)().map_err(|e| EntryError::layer(e.to_string()))?;
    let mut stream =
        LayerStream::open(reader, &input.media_type, &input.diff_id).map_err(EntryError::layer)?;
    let parsed = parse_layer(&mut stream, capture, cancel)?;
    if !stream.is_verified() {
        // parse_layer reads to EOF, which is where the check happens; this cannot be reached
        // unless a reader reports EOF twice inconsistently.
        return Err(EntryError::layer("layer stream was not read to its end"));
    }
    Ok(LayerResult {
        parsed,
        compressed_bytes: stream.compressed_bytes(),
        own_digest: None,
    })
}

/// The layer from `cache` when this run already parsed the same blob, else read, verified,
/// parsed and (budget permitting) cached. A cached layer counts no compressed bytes: none
/// were read.
fn cached_or_processed(
    input: LayerInput,
    capture: &CaptureSet,
    cancel: &AtomicBool,
    cache: Option<&LayerCache>,
) -> Result<LayerResult, EntryError> {
    let Some(cache) = cache else {
        return process_layer(input, capture, cancel);
    };
    let claim = match cache.lookup(&input.digest, &input.diff_id, capture) {
        Lookup::Hit(parsed) => {
            return Ok(LayerResult {
                parsed,
                compressed_bytes: 0,
                own_digest: None,
            });
        }
        Lookup::Miss(claim) => claim,
    };
    // On failure the claim is dropped and a waiting image reads the layer itself.
    let result = process_layer(input, capture, cancel)?;
    cache.put(claim, &result.parsed);
    Ok(result)
}

pub(crate) fn build_tree(
    image: &str,
    layers: Vec<LayerInput>,
    capture: &CaptureSet,
    parallelism: usize,
    cache: Option<&LayerCache>,
    layer_digests: LayerDigests,
) -> Result<BuiltTree, DigestError> {
    let count = layers.len();
    let digests: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
    let slots: Vec<Mutex<Option<LayerInput>>> =
        layers.into_iter().map(|l| Mutex::new(Some(l))).collect();
    // A layer after a failed one is not worth finishing: its parse stops at the next entry.
    let cancel_flags: Vec<AtomicBool> = (0..count).map(|_| AtomicBool::new(false)).collect();
    let fail = |index: usize| {
        for flag in &cancel_flags[index + 1..] {
            flag.store(true, Ordering::Relaxed);
        }
        Flow::StopAfter(index)
    };

    let mut built = BuiltTree {
        tree: TreeBuilder::new(),
        compressed_bytes: 0,
        uncompressed_bytes: 0,
        external_files: 0,
        external_bytes: 0,
        layer_digests: Vec::new(),
    };
    let mut error: Option<(usize, EntryError)> = None;
    let mut ready: BTreeMap<usize, LayerResult> = BTreeMap::new();
    let mut next_to_apply = 0;

    worker_pool::run_each(
        count,
        parallelism,
        |index| {
            let input = slots[index]
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .expect("each layer is taken once");
            cached_or_processed(input, capture, &cancel_flags[index], cache)
                .map(|r| with_own_digest(r, layer_digests))
        },
        |index, result| {
            let mut flow = Flow::Continue;
            match result {
                Ok(r) => {
                    ready.insert(index, r);
                }
                Err(e) => {
                    if error.as_ref().is_none_or(|(i, _)| index < *i) {
                        error = Some((index, e));
                    }
                    flow = fail(index);
                }
            }
            while let Some(r) = ready.remove(&next_to_apply) {
                if error.as_ref().is_some_and(|(i, _)| *i < next_to_apply) {
                    break;
                }
                built.compressed_bytes += r.compressed_bytes;
                built.uncompressed_bytes += r.parsed.uncompressed_bytes;
                built.external_files += r.parsed.external_files;
                built.external_bytes += r.parsed.external_bytes;
                if let Some(own) = r.own_digest {
                    built.layer_digests.push(own);
                }
                if let Err(e) = built.tree.apply(r.parsed) {
                    if error.as_ref().is_none_or(|(i, _)| next_to_apply < *i) {
                        error = Some((next_to_apply, e));
                    }
                    flow = fail(next_to_apply);
                    break;
                }
                next_to_apply += 1;
            }
            // Results after a failure are dropped as they arrive.
            if let Some((i, _)) = &error {
                ready.retain(|k, _| k < i);
            }
            flow
        },
    );

    match error {
        Some((index, e)) => Err(DigestError {
            image: image.to_string(),
            layer: Some(digests[index].clone()),
            path: e.path,
            message: e.message,
        }),
        None => Ok(built),
    }
}
