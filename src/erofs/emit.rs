//! Layout and emission of the EROFS writer: the per-inode decisions that depend on attribute
//! sizes (compact or extended header, Epoch1 data-block promotion), then the same emission code
//! run twice: once counting bytes to record where every inode, shared attribute and data block
//! lands, once streaming the bytes into a sink.
//!
//! Behaviour matched: composefs-rs 0.9.0 (identical in 0.9.4) `src/erofs/writer.rs`
//! (`write_erofs`, `Inode::write_inode`, `pad_inline_tail_v1`/`_v2`, `fits_in_compact`,
//! `fixup_epoch1_data_blocks`, `Leaf::inode_meta`, `Directory::write_block`,
//! `compute_chunk_bitsize`, `calculate_min_mtime`, `prepare_erofs_inodes`).

use std::io::{self, Write};

use composefs::erofs::format::{
    self, CompactInodeHeader, ComposefsHeader, DataLayout, DirectoryEntryHeader,
    ExtendedInodeHeader, FileType, FormatEpoch, FormatVersion, InodeLayout, InodeXAttrHeader,
    Superblock, XAttrHeader,
};
use composefs::fsverity::FsVerityHashValue;
use composefs::generic_tree::LeafContent;
use composefs::tree::RegularFile;
use zerocopy::IntoBytes;

use super::collect::{DirEnt, Kind, Node, split_dir};
use super::xattr::{Key, Table};

const BLOCK: u64 = 4096;
const SLOT: u64 = 32;
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

/// Where the bytes go: counted only, or streamed.
pub(super) trait Out {
    fn pos(&self) -> u64;
    fn put(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn zeros(&mut self, n: u64) -> io::Result<()>;
    fn align(&mut self, to: u64) -> io::Result<()> {
        match self.pos() % to {
            0 => Ok(()),
            r => self.zeros(to - r),
        }
    }
}

pub(super) struct Counter(pub u64);

impl Out for Counter {
    fn pos(&self) -> u64 {
        self.0
    }
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.zeros(bytes.len() as u64)
    }
    fn zeros(&mut self, n: u64) -> io::Result<()> {
        self.0 = self
            .0
            .checked_add(n)
            .ok_or_else(|| super::too_big("the image"))?;
        Ok(())
    }
}

/// Streams into `sink` through a buffer of [`Stream::BUF`] bytes.
pub(super) struct Stream<W> {
    sink: W,
    buf: Vec<u8>,
    pos: u64,
}

impl<W: Write> Stream<W> {
    const BUF: usize = 256 << 10;

    pub fn new(sink: W) -> Self {
        Stream {
            sink,
            buf: Vec::with_capacity(Self::BUF),
            pos: 0,
        }
    }

    fn spill(&mut self) -> io::Result<()> {
        self.sink.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<u64> {
        self.spill()?;
        self.sink.flush()?;
        Ok(self.pos)
    }
}

impl<W: Write> Out for Stream<W> {
    fn pos(&self) -> u64 {
        self.pos
    }
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.pos += bytes.len() as u64;
        if self.buf.len() + bytes.len() > Self::BUF {
            self.spill()?;
            if bytes.len() >= Self::BUF {
                return self.sink.write_all(bytes);
            }
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
    fn zeros(&mut self, mut n: u64) -> io::Result<()> {
        const Z: [u8; 4096] = [0; 4096];
        while n > 0 {
            let k = n.min(Z.len() as u64);
            self.put(&Z[..k as usize])?;
            n -= k;
        }
        Ok(())
    }
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

/// `i_format` layout, `i_u`, `i_size` and link count of an inode.
struct Meta {
    layout: DataLayout,
    u: u32,
    size: u64,
    nlink: u64,
}

fn to_u32(n: u64, what: &str) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| super::too_big(what))
}

impl<'a, H: FsVerityHashValue> Plan<'a, H> {
    pub fn xattr_ids(&self, idx: usize) -> &[u32] {
        &self.xattr_ids[self.xattr_start[idx]..self.xattr_start[idx + 1]]
    }

    fn shared_count(&self, idx: usize) -> usize {
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

    fn fits_compact(&self, node: &Node<H>, size: u64, nlink: u64) -> bool {
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

    fn meta(&self, node: &Node<H>, block_start: u64) -> io::Result<Meta> {
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
    key.with_value(|v| o.put(v))?;
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
        let filter = ids
            .iter()
            .fold(0u32, |f, &id| f | p.xattrs.keys[id as usize].filter_bit());
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
