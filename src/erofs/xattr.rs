//! Extended attributes of the EROFS writer: how a name maps onto an EROFS prefix index, the
//! per-inode bloom filter, interning (so each distinct attribute is described once and inodes
//! hold 32-bit ids), and the choice and order of the shared attribute table.
//!
//! Behaviour matched: composefs-rs 0.9.0 (identical in 0.9.4) `src/erofs/writer.rs`
//! (`InodeXAttrs::add`, `XAttr::cmp_by_full_key`, `share_xattrs`, `XAttr::write`) and
//! `src/erofs/format.rs` (`XATTR_PREFIXES`, `XATTR_FILTER_SEED`).
//!
//! A name is kept as `(prefix index, escaped, tail)`: the on-disk suffix is
//! `"overlay.overlay."` followed by `tail` when `escaped`, else `tail`. Every name that ends up
//! starting with `trusted.overlay.overlay.` (a user's `trusted.overlay.*` attribute after
//! escaping, or one of the writer's own whiteout markers) is `escaped`, and no other name is,
//! so two names are equal exactly when their triples are. Values are borrowed from the tree or
//! generated from an object id when written (overlay metacopy and redirect); the only names that
//! carry generated values are the writer's own `trusted.overlay.metacopy` / `.redirect` (a
//! user's would be escaped), so comparing values by their kind and object id is comparing bytes.

use std::cmp::Ordering;
use std::hash::{BuildHasher, Hash, RandomState};

use hashbrown::HashTable;

use composefs::erofs::composefs::OverlayMetacopy;
use composefs::erofs::format::{XATTR_FILTER_SEED, XATTR_PREFIXES};
use composefs::fsverity::FsVerityHashValue;
use xxhash_rust::xxh32::Xxh32;
use zerocopy::IntoBytes;

/// What escaping a `trusted.overlay.` attribute inserts after the `trusted.` prefix.
pub(super) const ESCAPE: &[u8] = b"overlay.overlay.";
const TRUSTED_OVERLAY: &[u8] = b"trusted.overlay.";
const TRUSTED_OVERLAY_ESCAPED: &[u8] = b"trusted.overlay.overlay.";
const TRUSTED_INDEX: u8 = 4;
const LUSTRE_INDEX: usize = 5;

/// An attribute value: bytes from the tree or a constant, or generated from an object id.
#[derive(PartialEq, Eq, Hash)]
pub(super) enum Value<'a, H> {
    Bytes(&'a [u8]),
    /// `struct ovl_metacopy` carrying the object's fs-verity digest.
    Metacopy(&'a H),
    /// `/xx/yyyy…`: the object's path in a composefs repository.
    Redirect(&'a H),
}

/// One distinct attribute (name and value).
#[derive(PartialEq, Eq, Hash)]
pub(super) struct Key<'a, H> {
    pub prefix: u8,
    pub escaped: bool,
    pub tail: &'a [u8],
    pub value: Value<'a, H>,
}

// Manual: derived ones would ask `H: Copy`.
impl<H> Clone for Value<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<H> Copy for Value<'_, H> {}
impl<H> Clone for Key<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<H> Copy for Key<'_, H> {}

impl<'a, H: FsVerityHashValue> Key<'a, H> {
    /// The attribute a tree carries under `name`, escaped the way composefs-rs escapes
    /// `trusted.overlay.*` (the writer's `push_inode`), with its prefix chosen as
    /// `InodeXAttrs::add` does (longest table index first; Epoch1 has no `lustre.`).
    pub fn from_tree(name: &'a [u8], value: &'a [u8], epoch1: bool) -> Self {
        match name.strip_prefix(TRUSTED_OVERLAY) {
            Some(escapee) => Key {
                prefix: TRUSTED_INDEX,
                escaped: true,
                tail: escapee,
                value: Value::Bytes(value),
            },
            None => Self::named(name, Value::Bytes(value), epoch1),
        }
    }

    /// An attribute the writer adds under its full (already escaped) name.
    pub fn named(name: &'a [u8], value: Value<'a, H>, epoch1: bool) -> Self {
        if let Some(tail) = name.strip_prefix(TRUSTED_OVERLAY_ESCAPED) {
            return Key {
                prefix: TRUSTED_INDEX,
                escaped: true,
                tail,
                value,
            };
        }
        for (idx, prefix) in XATTR_PREFIXES.iter().enumerate().rev() {
            if epoch1 && idx == LUSTRE_INDEX {
                continue;
            }
            if let Some(tail) = name.strip_prefix(*prefix) {
                return Key {
                    prefix: idx as u8,
                    escaped: false,
                    tail,
                    value,
                };
            }
        }
        // XATTR_PREFIXES[0] is empty, so the loop always returns.
        Key {
            prefix: 0,
            escaped: false,
            tail: name,
            value,
        }
    }

    /// The name without its prefix, in two pieces.
    pub fn suffix(&self) -> (&'static [u8], &'a [u8]) {
        (if self.escaped { ESCAPE } else { b"" }, self.tail)
    }

    pub fn suffix_len(&self) -> usize {
        self.suffix().0.len() + self.tail.len()
    }

    pub fn value_len(&self) -> usize {
        match self.value {
            Value::Bytes(b) => b.len(),
            Value::Metacopy(_) => size_of::<OverlayMetacopy<H>>(),
            // "/" + two hex digits + "/" + the other bytes in hex
            Value::Redirect(h) => 2 + 2 * h.as_bytes().len(),
        }
    }

    /// Calls `f` with the value's bytes (generated ones on the stack or in a short string).
    pub fn with_value<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self.value {
            Value::Bytes(b) => f(b),
            Value::Metacopy(h) => f(OverlayMetacopy::new(h).as_bytes()),
            Value::Redirect(h) => {
                // `/` + to_object_pathname() (`xx/yyyy…`), spelled on the stack.
                let id = h.as_bytes();
                let mut buf = [0u8; 2 + 2 * 64];
                match buf.get_mut(..2 + 2 * id.len()) {
                    Some(out) if !id.is_empty() => {
                        out[0] = b'/';
                        hex_into(&id[..1], &mut out[1..3]);
                        out[3] = b'/';
                        hex_into(&id[1..], &mut out[4..]);
                        f(out)
                    }
                    _ => f(format!("/{}", h.to_object_pathname()).as_bytes()),
                }
            }
        }
    }

    /// Bit of the inode's name filter this attribute sets (xxh32 of the suffix seeded with
    /// `XATTR_FILTER_SEED` plus the prefix index, modulo 32).
    pub fn filter_bit(&self) -> u32 {
        let mut h = Xxh32::new(XATTR_FILTER_SEED.wrapping_add(u32::from(self.prefix)));
        let (head, tail) = self.suffix();
        h.update(head);
        h.update(tail);
        1 << (h.digest() % 32)
    }

    /// Serialised size: 4-byte header, suffix, value, padded to 4 bytes.
    pub fn entry_len(&self) -> usize {
        (4 + self.suffix_len() + self.value_len()).next_multiple_of(4)
    }

    fn full_key(&self) -> impl Iterator<Item = &u8> {
        let (head, tail) = self.suffix();
        XATTR_PREFIXES[usize::from(self.prefix)]
            .iter()
            .chain(head)
            .chain(tail)
    }

    /// Epoch1 order: full name bytes, then value length, then value bytes
    /// (`XAttr::cmp_by_full_key`, after C mkcomposefs).
    pub fn cmp_epoch1(&self, other: &Self) -> Ordering {
        self.full_key()
            .cmp(other.full_key())
            .then_with(|| self.value_len().cmp(&other.value_len()))
            .then_with(|| self.with_value(|a| other.with_value(|b| a.cmp(b))))
    }

    /// Epoch2 order: prefix index, suffix bytes, value bytes (the derived `Ord` of
    /// composefs-rs's `XAttr`).
    pub fn cmp_epoch2(&self, other: &Self) -> Ordering {
        let (ah, at) = self.suffix();
        let (bh, bt) = other.suffix();
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| ah.iter().chain(at).cmp(bh.iter().chain(bt)))
            .then_with(|| self.with_value(|a| other.with_value(|b| a.cmp(b))))
    }
}

/// Lower-case hex of `bytes` into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
}

/// Every distinct attribute of the image, with how many times inodes carry it.
pub(super) struct Table<'a, H> {
    pub keys: Vec<Key<'a, H>>,
    pub counts: Vec<u32>,
    /// Ids by key hash; the keys live in `keys` only (most attributes are the metacopy and
    /// redirect of one external file each, so this table is as long as the image has files).
    index: HashTable<u32>,
    hasher: RandomState,
    /// Per key: its slot in the shared table, or `NOT_SHARED`.
    pub shared_slot: Vec<u32>,
    /// Shared keys in on-disk order.
    pub shared: Vec<u32>,
}

pub(super) const NOT_SHARED: u32 = u32::MAX;

impl<'a, H: FsVerityHashValue> Table<'a, H> {
    pub fn new() -> Self {
        Table {
            keys: Vec::new(),
            counts: Vec::new(),
            index: HashTable::new(),
            hasher: RandomState::new(),
            shared_slot: Vec::new(),
            shared: Vec::new(),
        }
    }

    /// Id of `key`, counting one more use.
    pub fn intern(&mut self, key: Key<'a, H>) -> std::io::Result<u32> {
        let hash = self.hasher.hash_one(key);
        let keys = &self.keys;
        if let Some(&id) = self.index.find(hash, |&id| keys[id as usize] == key) {
            let c = &mut self.counts[id as usize];
            *c = c.saturating_add(1);
            return Ok(id);
        }
        let id = u32::try_from(self.keys.len())
            .ok()
            .filter(|&id| id != NOT_SHARED)
            .ok_or_else(|| super::too_big("distinct extended attributes"))?;
        self.keys.push(key);
        self.counts.push(1);
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.index
            .insert_unique(hash, id, |&id| hasher.hash_one(keys[id as usize]));
        Ok(id)
    }

    /// Picks the attributes used more than once for the shared table, in composefs-rs's order:
    /// Epoch1 descending by full name (C mkcomposefs writes them that way), Epoch2 ascending by
    /// (prefix, suffix, value).
    pub fn choose_shared(&mut self, epoch1: bool) {
        self.index = HashTable::new();
        let mut shared: Vec<u32> = (0..self.keys.len() as u32)
            .filter(|&id| self.counts[id as usize] > 1)
            .collect();
        let keys = &self.keys;
        if epoch1 {
            shared.sort_by(|&a, &b| keys[b as usize].cmp_epoch1(&keys[a as usize]));
        } else {
            shared.sort_by(|&a, &b| keys[a as usize].cmp_epoch2(&keys[b as usize]));
        }
        self.shared_slot = vec![NOT_SHARED; self.keys.len()];
        for (slot, &id) in shared.iter().enumerate() {
            self.shared_slot[id as usize] = slot as u32;
        }
        self.shared = shared;
    }

    pub fn is_shared(&self, id: u32) -> bool {
        self.shared_slot[id as usize] != NOT_SHARED
    }
}
