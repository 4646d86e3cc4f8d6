//! A per-run cache of parsed layers, so images that share layers (the tags of one repository)
//! read, decompress and fs-verity-hash each shared layer once. An entry is the layer's parse
//! (entry metadata, fs-verity ids and captured contents, never file contents otherwise), keyed
//! by the compressed blob digest *and* the diff_id it was verified to decompress to, plus the
//! capture set it was parsed with: a hit stands for exactly the bytes a fresh read would give,
//! so the digest is identical to an uncached one.

use crate::tree::{CaptureSet, ParsedLayer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Parsed layers shared between digests of one run, up to a memory budget.
pub struct LayerCache {
    budget: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Inner {
    layers: HashMap<String, Arc<ParsedLayer>>,
    used: usize,
}

impl std::fmt::Debug for LayerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerCache")
            .field("budget", &self.budget)
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

/// Default budget: enough for the metadata of a few full OS images (a 500 MB image's parse is
/// ~10-20 MB), small beside the memory a job runner gives a container.
pub const DEFAULT_BUDGET: usize = 512 << 20;

impl LayerCache {
    /// A cache holding parses of at most about `budget` bytes; layers beyond it are not kept.
    pub fn new(budget: usize) -> Self {
        LayerCache {
            budget,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn key(blob_digest: &str, diff_id: &str, capture: &CaptureSet) -> String {
        format!("{blob_digest} {diff_id} {capture:?}")
    }

    /// A copy of the layer's parse, if this run has one.
    pub(crate) fn get(
        &self,
        blob_digest: &str,
        diff_id: &str,
        capture: &CaptureSet,
    ) -> Option<ParsedLayer> {
        let found = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .layers
            .get(&Self::key(blob_digest, diff_id, capture))
            .cloned();
        match found {
            Some(layer) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(layer.duplicate())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Keeps a copy of a layer parsed and verified against `diff_id`, if it fits the budget.
    pub(crate) fn put(
        &self,
        blob_digest: &str,
        diff_id: &str,
        capture: &CaptureSet,
        layer: &ParsedLayer,
    ) {
        let size = layer.approximate_size();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key(blob_digest, diff_id, capture);
        if inner.used + size > self.budget || inner.layers.contains_key(&key) {
            return;
        }
        inner.used += size;
        inner.layers.insert(key, Arc::new(layer.duplicate()));
    }

    /// Layers served from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Layers looked up and not found (then read).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}
