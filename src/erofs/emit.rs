//! Emission of the EROFS writer: the same code run twice over a [`Plan`], once counting bytes
//! to record where every inode, shared attribute and data block lands ([`Layout`]), once
//! streaming the bytes into a sink.
//!
//! Behaviour matched: composefs-rs 0.9.0 (identical in 0.9.4) `src/erofs/writer.rs`
//! (`write_erofs`, `Inode::write_inode`, `pad_inline_tail_v1`/`_v2`, `XAttr::write`,
//! `InodeXAttrs::write`, `Directory::write_block`, `Leaf::write_inline`,
//! `Leaf::write_data_blocks`).

use std::io;

use composefs::erofs::format::{
    self, CompactInodeHeader, ComposefsHeader, DataLayout, DirectoryEntryHeader,
    ExtendedInodeHeader, FileType, FormatEpoch, InodeLayout, InodeXAttrHeader, Superblock,
    XAttrHeader,
};
use composefs::fsverity::FsVerityHashValue;
use composefs::generic_tree::LeafContent;
use composefs::tree::RegularFile;
use zerocopy::IntoBytes;

use super::collect::{DirEnt, Kind, split_dir};
use super::out::Out;
use super::plan::{BLOCK, Plan, SLOT, to_u32};
use super::xattr::Key;

/// Byte offsets recorded by the counting pass and checked by the streaming one.
#[derive(Default)]
pub(super) struct Layout {
    inode: Vec<u64>,
    blocks: Vec<u64>,
    shared: Vec<u64>,
    inodes_end: u64,
    end: u64,
}

impl Layout {
    pub fn new(inodes: usize, shared: usize) -> Self {
        Layout {
            inode: vec![0; inodes],
            blocks: vec![0; inodes],
            shared: vec![0; shared],
            inodes_end: 0,
            end: 0,
        }
    }
}

fn mark(slot: &mut u64, pos: u64, counting: bool) -> io::Result<()> {
    if counting {
        *slot = pos;
    } else if *slot != pos {
        return Err(io::Error::other(format!(
            "EROFS writer: second pass at byte {pos}, first pass recorded {slot}"
        )));
    }
    Ok(())
}

/// Padding to the next block boundary, `None` when `pos` is on one.
fn to_boundary(pos: u64) -> Option<u64> {
    match pos % BLOCK {
        0 => None,
        r => Some(BLOCK - r),
    }
}

/// Runs one pass. `counting`: record offsets into `lay`; otherwise check them and use them.
pub(super) fn run<H: FsVerityHashValue, O: Out>(
    p: &Plan<'_, H>,
    lay: &mut Layout,
    counting: bool,
    o: &mut O,
) -> io::Result<()> {
    let (build_time, build_nsec, composefs_version) = match p.version.epoch() {
        FormatEpoch::Epoch1 => (p.min_mtime.0, p.min_mtime.1, p.version.composefs_version()),
        FormatEpoch::Epoch2 => (0, 0, format::COMPOSEFS_VERSION),
    };
    o.put(
        ComposefsHeader {
            magic: format::COMPOSEFS_MAGIC,
            version: format::VERSION,
            flags: p.header_flags.into(),
            composefs_version,
            ..Default::default()
        }
        .as_bytes(),
    )?;
    o.align(1024)?;
    let xattr_blkaddr = if p.epoch1 {
        (lay.inodes_end / BLOCK) as u32
    } else {
        0
    };
    o.put(
        Superblock {
            magic: format::MAGIC_V1,
            blkszbits: format::BLOCK_BITS,
            feature_compat: (format::FEATURE_COMPAT_MTIME | format::FEATURE_COMPAT_XATTR_FILTER)
                .into(),
            root_nid: ((lay.inode[0] / SLOT) as u16).into(),
            inos: (p.nodes.len() as u64).into(),
            blocks: ((lay.end / BLOCK) as u32).into(),
            build_time: build_time.into(),
            build_time_nsec: build_nsec.into(),
            xattr_blkaddr: xattr_blkaddr.into(),
            ..Default::default()
        }
        .as_bytes(),
    )?;

    for idx in 0..p.nodes.len() {
        write_inode(p, lay, counting, o, idx)?;
    }
    o.align(SLOT)?;
    let pos = o.pos();
    mark(&mut lay.inodes_end, pos, counting)?;

    for (slot, &id) in p.xattrs.shared.iter().enumerate() {
        let pos = o.pos();
        mark(&mut lay.shared[slot], pos, counting)?;
        write_xattr(o, &p.xattrs.keys[id as usize])?;
    }
    o.align(BLOCK)?;

    for idx in 0..p.nodes.len() {
        let pos = o.pos();
        mark(&mut lay.blocks[idx], pos, counting)?;
        write_blocks(p, lay, o, idx)?;
    }
    let pos = o.pos();
    mark(&mut lay.end, pos, counting)
}

fn write_xattr<H: FsVerityHashValue, O: Out>(o: &mut O, key: &Key<'_, H>) -> io::Result<()> {
    let (head, tail) = key.suffix();
    o.put(
        XAttrHeader {
            name_len: key.suffix_len() as u8,
            name_index: key.prefix,
            value_size: (key.value_len() as u16).into(),
        }
        .as_bytes(),
    )?;
    o.put(head)?;
    o.put(tail)?;
    if O::COUNTS_ONLY {
        o.zeros(key.value_len() as u64)?;
    } else {
        key.with_value(|v| o.put(v))?;
    }
    o.align(4)
}

fn write_inode<H: FsVerityHashValue, O: Out>(
    p: &Plan<'_, H>,
    lay: &mut Layout,
    counting: bool,
    o: &mut O,
    idx: usize,
) -> io::Result<()> {
    let node = &p.nodes[idx];
    let meta = p.meta(node, lay.blocks[idx])?;
    let xattr_size = p.xattr_size(idx) as u64;
    let compact = p.epoch1 && p.fits_compact(node, meta.size, meta.nlink);
    let header: u64 = if compact { 32 } else { 64 };
    let head = header + xattr_size;
    let (tail, data_blocks) = match &node.kind {
        Kind::Leaf {
            tail, data_blocks, ..
        } => (*tail as u64, *data_blocks),
        Kind::Dir { .. } => (0, 0),
    };
    let is_symlink = matches!(node.file_type(), FileType::Symlink);

    o.align(SLOT)?;
    if p.epoch1 {
        // A symlink whose target went to a block still starts on a block boundary when inode,
        // attributes and target would have crossed one.
        if is_symlink && meta.layout == DataLayout::FlatPlain {
            let pos = o.pos();
            let end = pos + head + meta.size;
            if pos / BLOCK != (end - 1) / BLOCK
                && let Some(pad) = to_boundary(pos)
            {
                o.zeros(pad)?;
            }
        }
        if meta.layout == DataLayout::ChunkBased {
            if tail == 0 && data_blocks > 0 {
                if let Some(pad) = to_boundary(o.pos()) {
                    o.zeros(pad)?;
                }
            } else if tail > 0
                && let Some(room) = to_boundary(o.pos() + head)
                && room < tail
            {
                o.zeros(room.next_multiple_of(SLOT))?;
            }
        }
    }
    if meta.layout == DataLayout::FlatInline {
        let inline = meta.size % BLOCK;
        let pos = o.pos();
        if p.epoch1 {
            if is_symlink {
                if pos % BLOCK + head + inline > BLOCK
                    && let Some(pad) = to_boundary(pos)
                {
                    o.zeros(pad)?;
                }
            } else if let Some(room) = to_boundary(pos + head)
                && room < inline
            {
                o.zeros(room.next_multiple_of(SLOT))?;
            }
        } else {
            let start = pos + head;
            let last_meta = start - 1;
            if last_meta / BLOCK != (start + inline) / BLOCK {
                o.zeros(BLOCK - last_meta % BLOCK)?;
                o.align(SLOT)?;
            }
        }
    }

    let icount: u16 = if xattr_size == 0 {
        0
    } else {
        (1 + (xattr_size - 12) / 4) as u16
    };
    let pos = o.pos();
    mark(&mut lay.inode[idx], pos, counting)?;
    let mode = node.file_type() | node.stat.st_mode;
    if compact {
        o.put(
            CompactInodeHeader {
                format: InodeLayout::Compact | meta.layout,
                xattr_icount: icount.into(),
                mode,
                nlink: (meta.nlink as u16).into(),
                size: (meta.size as u32).into(),
                reserved: 0.into(),
                u: meta.u.into(),
                ino: (idx as u32).into(),
                uid: (node.stat.st_uid as u16).into(),
                gid: (node.stat.st_gid as u16).into(),
                reserved2: [0; 4],
            }
            .as_bytes(),
        )?;
    } else {
        let (ino, nsec) = if p.epoch1 {
            (idx as u32, node.stat.st_mtim_nsec)
        } else {
            ((pos / SLOT) as u32, 0)
        };
        o.put(
            ExtendedInodeHeader {
                format: InodeLayout::Extended | meta.layout,
                xattr_icount: icount.into(),
                mode,
                size: meta.size.into(),
                u: meta.u.into(),
                ino: ino.into(),
                uid: node.stat.st_uid.into(),
                gid: node.stat.st_gid.into(),
                mtime: (node.stat.st_mtim_sec as u64).into(),
                mtime_nsec: nsec.into(),
                nlink: (meta.nlink as u32).into(),
                ..Default::default()
            }
            .as_bytes(),
        )?;
    }

    let ids = p.xattr_ids(idx);
    if !ids.is_empty() {
        let shared = p.shared_count(idx);
        let filter = if O::COUNTS_ONLY {
            0
        } else {
            ids.iter()
                .fold(0u32, |f, &id| f | p.xattrs.keys[id as usize].filter_bit())
        };
        o.put(
            InodeXAttrHeader {
                name_filter: (!filter).into(),
                shared_count: shared as u8,
                ..Default::default()
            }
            .as_bytes(),
        )?;
        for &id in &ids[..shared] {
            let at = lay.shared[p.xattrs.shared_slot[id as usize] as usize];
            let word = if p.epoch1 {
                (lay.inodes_end % BLOCK + at.saturating_sub(lay.inodes_end)) / 4
            } else {
                at / 4
            };
            o.put(&to_u32(word, "the shared attribute table")?.to_le_bytes())?;
        }
        for &id in &ids[shared..] {
            write_xattr(o, &p.xattrs.keys[id as usize])?;
        }
    }

    match &node.kind {
        Kind::Dir {
            first, len, size, ..
        } => {
            if size % BLOCK != 0 {
                let entries = &p.dirents[*first..*first + *len];
                let inline = split_dir(entries, |_| {})?;
                write_dir_block(o, lay, &entries[inline])?;
            }
        }
        Kind::Leaf { content, tail, .. } => match content {
            LeafContent::Regular(RegularFile::Inline(data)) => {
                o.put(&data[data.len() - tail..])?;
            }
            LeafContent::Regular(
                RegularFile::External(..)
                | RegularFile::ExternalNoVerity(..)
                | RegularFile::Sparse(..),
            ) => {
                for _ in 0..tail / 4 {
                    o.put(&[0xff; 4])?;
                }
            }
            LeafContent::Symlink(target) if data_blocks == 0 => {
                use std::os::unix::ffi::OsStrExt;
                o.put(target.as_bytes())?;
            }
            _ => {}
        },
    }
    o.align(SLOT)
}

/// One directory block: 12-byte headers, then the names.
fn write_dir_block<O: Out>(o: &mut O, lay: &Layout, entries: &[DirEnt]) -> io::Result<()> {
    let mut name_at = 12 * entries.len();
    for e in entries {
        o.put(
            DirectoryEntryHeader {
                inode_offset: (lay.inode[e.target as usize] / SLOT).into(),
                name_offset: (name_at as u16).into(),
                file_type: e.file_type.into(),
                reserved: 0,
            }
            .as_bytes(),
        )?;
        name_at += e.name.len();
    }
    for e in entries {
        o.put(e.name)?;
    }
    Ok(())
}

fn write_blocks<H: FsVerityHashValue, O: Out>(
    p: &Plan<'_, H>,
    lay: &Layout,
    o: &mut O,
    idx: usize,
) -> io::Result<()> {
    match &p.nodes[idx].kind {
        Kind::Dir { first, len, .. } => {
            let entries = &p.dirents[*first..*first + *len];
            let mut result = Ok(());
            split_dir(entries, |range| {
                if result.is_ok() {
                    result = write_dir_block(o, lay, &entries[range]).and_then(|()| o.align(BLOCK));
                }
            })?;
            result
        }
        Kind::Leaf {
            content,
            data_blocks,
            ..
        } if *data_blocks > 0 => match content {
            LeafContent::Regular(RegularFile::Inline(data)) => {
                for i in 0..*data_blocks as usize {
                    let start = i * BLOCK as usize;
                    if start < data.len() {
                        o.put(&data[start..(start + BLOCK as usize).min(data.len())])?;
                    }
                    o.align(BLOCK)?;
                }
                Ok(())
            }
            LeafContent::Symlink(target) => {
                use std::os::unix::ffi::OsStrExt;
                let t = target.as_bytes();
                o.put(&t[..t.len().min(BLOCK as usize)])?;
                o.align(BLOCK)
            }
            LeafContent::Regular(_) => {
                for _ in 0..1024 {
                    o.put(&[0xff; 4])?;
                }
                Ok(())
            }
            _ => Ok(()),
        },
        Kind::Leaf { .. } => Ok(()),
    }
}
