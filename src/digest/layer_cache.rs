//! A per-run cache of parsed layers, so images that share layers (the tags of one repository)
//! read, decompress and fs-verity-hash each shared layer once. An entry is the layer's parse
//! (entry metadata, fs-verity ids and captured contents, never file contents otherwise), keyed
//! by the compressed blob digest *and* the diff_id it was verified to decompress to, plus the
//! capture set it was parsed with: a hit stands for exactly the bytes a fresh read would give,
//! so the digest is identical to an uncached one. A layer being parsed for one image is waited
//! for by the others (concurrent seals of one run) rather than parsed twice.

use crate::tree::{CaptureSet, ParsedLayer};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Parsed layers shared between digests of one run, up to a memory budget.
pub struct LayerCache {
    budget: usize,
    inner: Mutex<Inner>,
    /// Signalled whenever a pending layer is stored or given up.
    settled: Condvar,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Inner {
    layers: HashMap<String, Arc<ParsedLayer>>,
    /// Keys some thread is reading now; others wait for it instead of reading too.
    pending: HashSet<String>,
    used: usize,
}

/// The right, and duty, to read a layer nobody has cached or is reading: [`LayerCache::put`]
/// it, or drop it (on failure) to let a waiting thread read the layer itself.
pub(crate) struct Claim<'a> {
    cache: &'a LayerCache,
    key: Option<String>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.cache.lock().pending.remove(&key);
            self.cache.settled.notify_all();
        }
    }
}

/// What a lookup found.
pub(crate) enum Lookup<'a> {
    Hit(ParsedLayer),
    /// Not cached: the caller reads it.
    Miss(Claim<'a>),
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
            settled: Condvar::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn key(blob_digest: &str, diff_id: &str, capture: &CaptureSet) -> String {
        format!("{blob_digest} {diff_id} {capture:?}")
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the layer's parse if this run has one (waiting while another thread reads
    /// it), else a claim to read it.
    pub(crate) fn lookup(
        &self,
        blob_digest: &str,
        diff_id: &str,
        capture: &CaptureSet,
    ) -> Lookup<'_> {
        let key = Self::key(blob_digest, diff_id, capture);
        let mut inner = self.lock();
        loop {
            if let Some(layer) = inner.layers.get(&key).cloned() {
                drop(inner);
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Lookup::Hit(layer.duplicate());
            }
            if !inner.pending.contains(&key) {
                inner.pending.insert(key.clone());
                self.misses.fetch_add(1, Ordering::Relaxed);
                return Lookup::Miss(Claim {
                    cache: self,
                    key: Some(key),
                });
            }
            inner = self.settled.wait(inner).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Keeps a copy of the claimed layer, parsed and verified against its diff_id, if it fits
    /// the budget; waiting threads then take it (or, if it did not fit, read it themselves).
    pub(crate) fn put(&self, mut claim: Claim<'_>, layer: &ParsedLayer) {
        let Some(key) = claim.key.take() else { return };
        let size = layer.approximate_size();
        let mut inner = self.lock();
        inner.pending.remove(&key);
        if inner.used + size <= self.budget && !inner.layers.contains_key(&key) {
            inner.used += size;
            inner.layers.insert(key, Arc::new(layer.duplicate()));
        }
        drop(inner);
        self.settled.notify_all();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn layer(bytes: u64) -> ParsedLayer {
        ParsedLayer {
            entries: Vec::new(),
            stash: Vec::new(),
            uncompressed_bytes: bytes,
            external_files: 0,
            external_bytes: 0,
        }
    }

    fn waiter(cache: &LayerCache) -> Option<u64> {
        match cache.lookup("sha256:b", "sha256:d", &CaptureSet::default()) {
            Lookup::Hit(l) => Some(l.uncompressed_bytes),
            Lookup::Miss(_) => None,
        }
    }

    #[test]
    fn a_layer_being_read_is_waited_for_then_shared() {
        let cache = LayerCache::new(DEFAULT_BUDGET);
        let Lookup::Miss(claim) = cache.lookup("sha256:b", "sha256:d", &CaptureSet::default())
        else {
            panic!("empty cache hit")
        };
        std::thread::scope(|s| {
            let other = s.spawn(|| waiter(&cache));
            std::thread::sleep(Duration::from_millis(100));
            assert!(!other.is_finished(), "waits while the layer is read");
            cache.put(claim, &layer(42));
            assert_eq!(other.join().unwrap(), Some(42));
        });
        assert_eq!((cache.hits(), cache.misses()), (1, 1));
        // Another capture set or another blob is another key.
        assert!(matches!(
            cache.lookup("sha256:other", "sha256:d", &CaptureSet::default()),
            Lookup::Miss(_)
        ));
    }

    #[test]
    fn a_failed_read_lets_the_waiter_read_it() {
        let cache = LayerCache::new(DEFAULT_BUDGET);
        let Lookup::Miss(claim) = cache.lookup("sha256:b", "sha256:d", &CaptureSet::default())
        else {
            panic!()
        };
        std::thread::scope(|s| {
            let other = s.spawn(|| waiter(&cache));
            std::thread::sleep(Duration::from_millis(50));
            drop(claim);
            assert_eq!(other.join().unwrap(), None, "the waiter reads it itself");
        });
    }

    #[test]
    fn over_budget_layers_are_not_kept() {
        let cache = LayerCache::new(0);
        let Lookup::Miss(claim) = cache.lookup("sha256:b", "sha256:d", &CaptureSet::default())
        else {
            panic!()
        };
        // An empty layer has size 0 and fits a 0 budget; give it one entry.
        let mut one = layer(1);
        one.entries.push(composefs_oci::tar::TarEntry {
            path: "/x".into(),
            stat: composefs::tree::Stat {
                st_mode: 0o644,
                st_uid: 0,
                st_gid: 0,
                st_mtim_sec: 0,
                st_mtim_nsec: 0,
                xattrs: Default::default(),
            },
            item: composefs_oci::tar::TarItem::Directory,
        });
        cache.put(claim, &one);
        assert!(matches!(
            cache.lookup("sha256:b", "sha256:d", &CaptureSet::default()),
            Lookup::Miss(_)
        ));
    }
}
