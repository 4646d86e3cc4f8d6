//! The EROFS writer's plan: the collected inodes with their interned attributes, the shared
//! attribute table, `build_time`, header flags, and the per-inode decisions that depend on
//! attribute sizes (compact or extended header, Epoch1 promotion of symlink targets and chunk
//! indexes to a data block).
//!
//! Behaviour matched: composefs-rs 0.9.0 (identical in 0.9.4) `src/erofs/writer.rs`
//! (`prepare_erofs_inodes`, `InodeCollector::push_inode`, `share_xattrs`,
//! `calculate_min_mtime`, `fits_in_compact`, `fixup_epoch1_data_blocks`, `Leaf::inode_meta`,
//! `Directory::inode_meta`, `compute_chunk_bitsize`).

use std::io;

use composefs::erofs::format::{self, DataLayout, FormatEpoch, FormatVersion};
use composefs::fsverity::FsVerityHashValue;
use composefs::generic_tree::LeafContent;
use composefs::tree::{FileSystem, Leaf, RegularFile};

use super::collect::{self, DirEnt, Kind, Node};
use super::xattr::{Key, Table, Value};

pub(super) const BLOCK: u64 = 4096;
pub(super) const SLOT: u64 = 32;
const BLOCK_BITS: u32 = 12;

/// Chunk size bits for an external file of `size` bytes: ilog2(size - 1) + 1, at least a block,
/// at most 31 bits above a block.
fn chunk_bits(size: u64) -> u32 {
    let bits = if size > 1 {
        64 - (size - 1).leading_zeros()
    } else {
        1
    };
    bits.clamp(BLOCK_BITS, BLOCK_BITS + 31)
}

pub(super) fn chunk_count(size: u64) -> u32 {
    size.div_ceil(1u64 << chunk_bits(size)) as u32
}

/// Everything the two passes need.
pub(super) struct Plan<'a, H: FsVerityHashValue> {
    pub version: FormatVersion,
    pub epoch1: bool,
    pub nodes: Vec<Node<'a, H>>,
    pub dirents: Vec<DirEnt<'a>>,
    pub xattrs: Table<'a, H>,
    /// Attribute ids of inode `i`: `xattr_ids[xattr_start[i]..xattr_start[i + 1]]`, shared ones
    /// first (in the inode's order), then the ones stored in the inode.
    pub xattr_ids: Vec<u32>,
    pub xattr_start: Vec<usize>,
    pub min_mtime: (u64, u32),
    pub header_flags: u32,
}

/// `i_format` layout, `i_u`, `i_size` and link count of an inode.
pub(super) struct Meta {
    pub layout: DataLayout,
    pub u: u32,
    pub size: u64,
    pub nlink: u64,
}

pub(super) fn to_u32(n: u64, what: &str) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| super::too_big(what))
}

impl<'a, H: FsVerityHashValue> Plan<'a, H> {
    pub fn xattr_ids(&self, idx: usize) -> &[u32] {
        &self.xattr_ids[self.xattr_start[idx]..self.xattr_start[idx + 1]]
    }

    pub(super) fn shared_count(&self, idx: usize) -> usize {
        self.xattr_ids(idx)
            .iter()
            .take_while(|&&id| self.xattrs.is_shared(id))
            .count()
    }

    /// Size of the inode's attribute area: 12-byte header, 4 bytes per shared reference, the
    /// stored entries; nothing at all without attributes.
    pub fn xattr_size(&self, idx: usize) -> usize {
        let ids = self.xattr_ids(idx);
        if ids.is_empty() {
            return 0;
        }
        let shared = self.shared_count(idx);
        12 + 4 * shared
            + ids[shared..]
                .iter()
                .map(|&id| self.xattrs.keys[id as usize].entry_len())
                .sum::<usize>()
    }

    pub(super) fn fits_compact(&self, node: &Node<H>, size: u64, nlink: u64) -> bool {
        node.stat.st_mtim_sec as u64 == self.min_mtime.0
            && node.stat.st_mtim_nsec == self.min_mtime.1
            && nlink <= u64::from(u16::MAX)
            && node.stat.st_uid <= u32::from(u16::MAX)
            && node.stat.st_gid <= u32::from(u16::MAX)
            && size <= u64::from(u32::MAX)
    }

    /// Epoch1: a symlink whose inode, attributes and target would fill a block gets its target
    /// in a data block; a chunk index that would not fit after the attributes too.
    pub fn promote_epoch1_tails(&mut self) {
        for idx in 0..self.nodes.len() {
            let node = &self.nodes[idx];
            let Kind::Leaf {
                content,
                nlink,
                tail,
                ..
            } = &node.kind
            else {
                continue;
            };
            if *tail == 0 {
                continue;
            }
            let xattr_size = self.xattr_size(idx);
            let promote = match content {
                LeafContent::Symlink(_) => {
                    let header = if self.fits_compact(node, *tail as u64, u64::from(*nlink)) {
                        32
                    } else {
                        64
                    };
                    header + xattr_size + tail >= BLOCK as usize
                }
                LeafContent::Regular(
                    RegularFile::External(..)
                    | RegularFile::ExternalNoVerity(..)
                    | RegularFile::Sparse(..),
                ) => tail + xattr_size % SLOT as usize > BLOCK as usize,
                _ => false,
            };
            if promote
                && let Kind::Leaf {
                    content,
                    data_blocks,
                    tail,
                    ..
                } = &mut self.nodes[idx].kind
            {
                if matches!(content, LeafContent::Symlink(_)) {
                    *data_blocks += 1;
                } else {
                    *data_blocks = 1;
                }
                *tail = 0;
            }
        }
    }

    pub(super) fn meta(&self, node: &Node<H>, block_start: u64) -> io::Result<Meta> {
        let blkaddr = block_start / BLOCK;
        Ok(match &node.kind {
            Kind::Dir { nlink, size, .. } => {
                let addr = to_u32(blkaddr, "a directory's block address")?;
                let has_blocks = *size >= BLOCK;
                let has_inline = *size % BLOCK != 0;
                let (layout, u) = match (has_inline, has_blocks) {
                    (false, _) => (DataLayout::FlatPlain, addr),
                    (true, true) => (DataLayout::FlatInline, addr),
                    (true, false) => (DataLayout::FlatInline, 0),
                };
                Meta {
                    layout,
                    u,
                    size: *size,
                    nlink: u64::from(*nlink),
                }
            }
            Kind::Leaf {
                content,
                nlink,
                data_blocks,
                tail,
            } => {
                let (layout, u, size) = match content {
                    LeafContent::Regular(RegularFile::Inline(data)) => {
                        let len = data.len() as u64;
                        if data.is_empty() {
                            (DataLayout::FlatPlain, 0, len)
                        } else if *data_blocks > 0 {
                            let layout = if *tail > 0 {
                                DataLayout::FlatInline
                            } else {
                                DataLayout::FlatPlain
                            };
                            (layout, blkaddr as u32, len)
                        } else {
                            (DataLayout::FlatInline, 0, len)
                        }
                    }
                    LeafContent::Regular(
                        RegularFile::External(_, size)
                        | RegularFile::ExternalNoVerity(_, size)
                        | RegularFile::Sparse(size),
                    ) => {
                        let format = if self.epoch1 {
                            chunk_bits(*size) - BLOCK_BITS
                        } else {
                            31
                        };
                        let u = if *data_blocks > 0 {
                            (blkaddr as u32 & 0xFFFF_0000) | format
                        } else {
                            format
                        };
                        (DataLayout::ChunkBased, u, *size)
                    }
                    LeafContent::CharacterDevice(rdev) | LeafContent::BlockDevice(rdev) => {
                        let rdev = u32::try_from(*rdev).map_err(|_| {
                            io::Error::new(
                                io::ErrorKind::InvalidInput,
                                format!("device number {rdev:#x} does not fit EROFS's 32 bits"),
                            )
                        })?;
                        (DataLayout::FlatPlain, rdev, 0)
                    }
                    LeafContent::Fifo | LeafContent::Socket => (DataLayout::FlatPlain, 0, 0),
                    LeafContent::Symlink(target) => {
                        let len = target.len() as u64;
                        if *data_blocks > 0 {
                            (DataLayout::FlatPlain, blkaddr as u32, len)
                        } else {
                            (DataLayout::FlatInline, 0, len)
                        }
                    }
                };
                Meta {
                    layout,
                    u,
                    size,
                    nlink: u64::from(*nlink),
                }
            }
        })
    }
}

/// Collects the inodes, their attributes and the shared table, and makes the Epoch1 layout
/// decisions that depend on attribute sizes (composefs-rs `prepare_erofs_inodes`).
pub(super) fn plan<'a, H: FsVerityHashValue>(
    fs: &'a FileSystem<H>,
    version: FormatVersion,
    stub: &'a Leaf<H>,
) -> io::Result<Plan<'a, H>> {
    use std::os::unix::ffi::OsStrExt;
    let epoch1 = version.epoch() == FormatEpoch::Epoch1;
    let collected = collect::collect(fs, version, stub)?;

    let mut table = Table::new();
    let mut ids: Vec<u32> = Vec::new();
    let mut starts = Vec::with_capacity(collected.nodes.len() + 1);
    let named = |name: &'static [u8], value: &'static [u8]| -> Key<'a, H> {
        Key::named(name, Value::Bytes(value), epoch1)
    };
    for (idx, node) in collected.nodes.iter().enumerate() {
        let start = ids.len();
        starts.push(start);
        // Generated attributes first, as composefs-rs adds them (order matters for Epoch2).
        if let Kind::Leaf {
            content: LeafContent::Regular(file),
            ..
        } = &node.kind
        {
            let metacopy = format::XATTR_OVERLAY_METACOPY;
            let redirect = format::XATTR_OVERLAY_REDIRECT;
            match file {
                RegularFile::External(id, _) => {
                    ids.push(table.intern(Key::named(metacopy, Value::Metacopy(id), epoch1))?);
                    ids.push(table.intern(Key::named(redirect, Value::Redirect(id), epoch1))?);
                }
                RegularFile::ExternalNoVerity(id, _) => {
                    ids.push(table.intern(named(metacopy, b""))?);
                    ids.push(table.intern(Key::named(redirect, Value::Redirect(id), epoch1))?);
                }
                RegularFile::Sparse(_) => ids.push(table.intern(named(metacopy, b""))?),
                RegularFile::Inline(_) => {}
            }
        }
        for (name, value) in &node.stat.xattrs {
            ids.push(table.intern(Key::from_tree(name.as_bytes(), value, epoch1))?);
        }
        if node.escaped_whiteout {
            ids.push(table.intern(named(format::XATTR_OVERLAY_WHITEOUT, b""))?);
            ids.push(table.intern(named(format::XATTR_USERXATTR_WHITEOUT, b""))?);
        }
        if node.dir_whiteouts {
            ids.push(table.intern(named(format::XATTR_OVERLAY_WHITEOUTS, b""))?);
            ids.push(table.intern(named(format::XATTR_USERXATTR_WHITEOUTS, b""))?);
            if version == FormatVersion::V1 {
                ids.push(table.intern(named(format::XATTR_OVERLAY_OPAQUE, b"x"))?);
                ids.push(table.intern(named(format::XATTR_USERXATTR_OPAQUE, b"x"))?);
            }
        }
        if epoch1 && idx == 0 {
            ids.push(table.intern(named(format::XATTR_OVERLAY_OPAQUE_ROOT, b"y"))?);
        }
        if epoch1 {
            let keys = &table.keys;
            ids[start..].sort_by(|&a, &b| keys[a as usize].cmp_epoch1(&keys[b as usize]));
        }
    }
    starts.push(ids.len());

    // C mkcomposefs's COMPOSEFS_FLAGS_HAS_ACL: any POSIX ACL attribute (Epoch1 only).
    let has_acl = epoch1
        && table.keys.iter().any(|k| {
            k.prefix == format::XATTR_INDEX_POSIX_ACL_ACCESS
                || k.prefix == format::XATTR_INDEX_POSIX_ACL_DEFAULT
        });
    table.choose_shared(epoch1);
    // Shared attributes move to the front of each inode's list, keeping their order.
    let mut scratch = Vec::new();
    for w in starts.windows(2) {
        let list = &mut ids[w[0]..w[1]];
        if list.iter().any(|&id| table.is_shared(id)) {
            scratch.clear();
            scratch.extend(list.iter().copied().filter(|&id| table.is_shared(id)));
            scratch.extend(list.iter().copied().filter(|&id| !table.is_shared(id)));
            list.copy_from_slice(&scratch);
        }
    }

    let min_mtime = collected
        .nodes
        .iter()
        .map(|n| (n.stat.st_mtim_sec as u64, n.stat.st_mtim_nsec))
        .min()
        .unwrap_or((0, 0));
    let mut plan = Plan {
        version,
        epoch1,
        nodes: collected.nodes,
        dirents: collected.dirents,
        xattrs: table,
        xattr_ids: ids,
        xattr_start: starts,
        min_mtime,
        header_flags: if has_acl {
            format::COMPOSEFS_FLAGS_HAS_ACL.get()
        } else {
            0
        },
    };
    if epoch1 {
        plan.promote_epoch1_tails();
    }
    Ok(plan)
}
