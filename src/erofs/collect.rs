//! Inode collection of the EROFS writer: which inodes the image has, in which order, and what
//! each directory lists. Per inode it keeps references into the tree and a few numbers; the
//! directory entries of the whole image are one vector of (name, inode index, file type).
//!
//! Behaviour matched (composefs-rs 0.9.0, identical in 0.9.4, `src/erofs/writer.rs`
//! `InodeCollector` and `src/generic_tree.rs` `add_overlay_whiteouts`, `nlinks`):
//! - Epoch1 (V0/V1): breadth-first order; the root lists 256 whiteout stubs `00`..`ff`
//!   (character device 0, mode 0644, the root's owner and mtime, only its `security.selinux`)
//!   where it has no entry of that name. They are not added to the tree: the root's entries are
//!   merged with them as they are listed. A leaf with several links gets its inode where its
//!   first link in depth-first name order lives; a link met earlier in the breadth-first walk is
//!   resolved afterwards. A user's whiteout (character device 0) is written as a regular file
//!   with whiteout markers, its directory gets the whiteouts/opaque markers; a root entry that
//!   looks exactly like a stub is left alone.
//! - Epoch2 (V2): depth-first order, no stubs, no escaping.
//!
//! Both walks use explicit stacks or queues: trees can be as deep as the tree builder allows.

use std::collections::VecDeque;
use std::io;

use composefs::erofs::format::{FileType, FormatEpoch, FormatVersion};
use composefs::fsverity::FsVerityHashValue;
use composefs::generic_tree::{LeafContent, Stat};
use composefs::tree::{Directory, FileSystem, Inode, Leaf, RegularFile};

pub(super) type Content<H> = LeafContent<RegularFile<H>>;

const NONE: u32 = u32::MAX;
const BLOCK: usize = 4096;

/// One inode of the image.
pub(super) struct Node<'a, H: FsVerityHashValue> {
    pub stat: &'a Stat,
    pub kind: Kind<'a, H>,
    /// Epoch1: a user's whiteout, written as a regular file with whiteout markers.
    pub escaped_whiteout: bool,
    /// Epoch1: a directory holding an escaped whiteout (gets the whiteouts/opaque markers).
    pub dir_whiteouts: bool,
}

pub(super) enum Kind<'a, H: FsVerityHashValue> {
    Dir {
        /// Its entries in [`Collected::dirents`], sorted by name.
        first: usize,
        len: usize,
        /// Entries that are directories, `.` and `..` included.
        nlink: u32,
        /// Full blocks plus the inline tail, in bytes.
        size: u64,
    },
    Leaf {
        content: &'a Content<H>,
        nlink: u32,
        /// Epoch1: full data blocks of an inline file, or one block for a symlink target or a
        /// chunk index that does not fit inline.
        data_blocks: u32,
        /// Bytes stored after the inode: file tail, symlink target or chunk indexes.
        tail: usize,
    },
}

#[derive(Clone, Copy)]
pub(super) struct DirEnt<'a> {
    pub name: &'a [u8],
    /// Inode index (a leaf index while a link waits for its canonical occurrence).
    pub target: u32,
    pub file_type: FileType,
}

pub(super) struct Collected<'a, H: FsVerityHashValue> {
    pub nodes: Vec<Node<'a, H>>,
    pub dirents: Vec<DirEnt<'a>>,
}

impl<H: FsVerityHashValue> Node<'_, H> {
    pub fn file_type(&self) -> FileType {
        if self.escaped_whiteout {
            return FileType::RegularFile;
        }
        match &self.kind {
            Kind::Dir { .. } => FileType::Directory,
            Kind::Leaf { content, .. } => match content {
                LeafContent::Regular(_) => FileType::RegularFile,
                LeafContent::CharacterDevice(_) => FileType::CharacterDevice,
                LeafContent::BlockDevice(_) => FileType::BlockDevice,
                LeafContent::Fifo => FileType::Fifo,
                LeafContent::Socket => FileType::Socket,
                LeafContent::Symlink(_) => FileType::Symlink,
            },
        }
    }
}

/// The 256 stub names, `00`..`ff`.
fn stub_name(i: usize) -> &'static [u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    static NAMES: std::sync::OnceLock<Vec<[u8; 2]>> = std::sync::OnceLock::new();
    &NAMES.get_or_init(|| (0..256).map(|i| [HEX[i >> 4], HEX[i & 15]]).collect())[i]
}

/// What the stubs look like, for a root with `root` metadata.
pub(super) fn stub_stat(root: &Stat) -> Stat {
    let mut xattrs = std::collections::BTreeMap::new();
    let key = std::ffi::OsStr::new("security.selinux");
    if let Some(v) = root.xattrs.get(key) {
        xattrs.insert(Box::from(key), v.clone());
    }
    Stat {
        st_mode: 0o644,
        st_uid: root.st_uid,
        st_gid: root.st_gid,
        st_mtim_sec: root.st_mtim_sec,
        st_mtim_nsec: root.st_mtim_nsec,
        xattrs,
    }
}

/// Whether a root entry matches the stub metadata (composefs-rs `is_overlay_whiteout_stub`):
/// such an entry is never escaped.
fn looks_like_stub(name: &[u8], stat: &Stat, root: &Stat) -> bool {
    let key = std::ffi::OsStr::new("security.selinux");
    let expected = usize::from(root.xattrs.contains_key(key));
    name.len() == 2
        && name.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && stat.st_mode == 0o644
        && stat.st_uid == root.st_uid
        && stat.st_gid == root.st_gid
        && stat.st_mtim_sec == root.st_mtim_sec
        && stat.st_mtim_nsec == root.st_mtim_nsec
        && stat.xattrs.len() == expected
        && (expected == 0 || stat.xattrs.get(key) == root.xattrs.get(key))
}

fn bad_leaf(id: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("tree refers to leaf {id}, which does not exist"),
    )
}

/// Link counts of every leaf and, for each, the directory (by address) of its first link in
/// depth-first name order.
fn link_census<H>(fs: &FileSystem<H>) -> io::Result<(Vec<u32>, Vec<usize>)>
where
    H: FsVerityHashValue,
{
    let mut nlinks = vec![0u32; fs.leaves.len()];
    let mut first_dir = vec![0usize; fs.leaves.len()];
    let mut stack = vec![(&fs.root, fs.root.sorted_entries())];
    while let Some((dir, entries)) = stack.last_mut() {
        let dir_addr = *dir as *const Directory<H> as usize;
        match entries.next() {
            Some((_, Inode::Directory(sub))) => stack.push((sub, sub.sorted_entries())),
            Some((_, Inode::Leaf(id, _))) => {
                let n = nlinks.get_mut(id.0).ok_or_else(|| bad_leaf(id.0))?;
                if *n == 0 {
                    first_dir[id.0] = dir_addr;
                }
                *n = n.saturating_add(1);
            }
            None => {
                stack.pop();
            }
        }
    }
    Ok((nlinks, first_dir))
}

struct Collector<'a, H: FsVerityHashValue> {
    epoch1: bool,
    nodes: Vec<Node<'a, H>>,
    dirents: Vec<DirEnt<'a>>,
    nlinks: Vec<u32>,
    /// Per leaf with several links: its inode once collected.
    leaf_inode: Vec<u32>,
}

impl<'a, H: FsVerityHashValue> Collector<'a, H> {
    fn push(&mut self, node: Node<'a, H>) -> io::Result<u32> {
        let idx = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&i| i != NONE)
            .ok_or_else(|| super::too_big("inodes"))?;
        self.nodes.push(node);
        Ok(idx)
    }

    fn push_dir(&mut self, stat: &'a Stat) -> io::Result<u32> {
        self.push(Node {
            stat,
            kind: Kind::Dir {
                first: 0,
                len: 0,
                nlink: 0,
                size: 0,
            },
            escaped_whiteout: false,
            dir_whiteouts: false,
        })
    }

    /// The inode of a leaf (`id` is `None` for a stub), shared by all its links
    /// (composefs-rs `collect_leaf`).
    fn leaf(&mut self, id: Option<usize>, leaf: &'a Leaf<H>) -> io::Result<u32> {
        let nlink = id.map_or(1, |id| self.nlinks[id]);
        if let Some(id) = id
            && nlink > 1
            && self.leaf_inode[id] != NONE
        {
            return Ok(self.leaf_inode[id]);
        }
        let (data_blocks, tail) = leaf_split(&leaf.content, self.epoch1)?;
        let idx = self.push(Node {
            stat: &leaf.stat,
            kind: Kind::Leaf {
                content: &leaf.content,
                nlink,
                data_blocks,
                tail,
            },
            escaped_whiteout: false,
            dir_whiteouts: false,
        })?;
        if let Some(id) = id
            && nlink > 1
        {
            self.leaf_inode[id] = idx;
        }
        Ok(idx)
    }

    /// Sorts a directory's entries (`.` and `..` included, as composefs-rs does), stores them
    /// and records the directory's size and link count.
    fn finish_dir(&mut self, me: u32, mut entries: Vec<DirEnt<'a>>) -> io::Result<()> {
        entries.sort_unstable_by_key(|e| e.name);
        let first = self.dirents.len();
        let nlink = entries
            .iter()
            .filter(|e| matches!(e.file_type, FileType::Directory))
            .count();
        let size = dir_size(&entries)?;
        let len = entries.len();
        self.dirents.extend(entries);
        self.nodes[me as usize].kind = Kind::Dir {
            first,
            len,
            nlink: u32::try_from(nlink).map_err(|_| super::too_big("subdirectories"))?,
            size,
        };
        Ok(())
    }
}

fn dots<'a>(me: u32, parent: u32) -> Vec<DirEnt<'a>> {
    vec![
        DirEnt {
            name: b".",
            target: me,
            file_type: FileType::Directory,
        },
        DirEnt {
            name: b"..",
            target: parent,
            file_type: FileType::Directory,
        },
    ]
}

/// (full data blocks, tail bytes) of a leaf before the Epoch1 fix-up that may move a symlink
/// target or chunk index to a block (composefs-rs `collect_leaf`).
fn leaf_split<H: FsVerityHashValue>(
    content: &Content<H>,
    epoch1: bool,
) -> io::Result<(u32, usize)> {
    Ok(if epoch1 {
        match content {
            LeafContent::Regular(RegularFile::Inline(data)) if !data.is_empty() => {
                let mut blocks = data.len() / BLOCK;
                let mut tail = data.len() % BLOCK;
                if tail > BLOCK / 2 {
                    blocks += 1;
                    tail = 0;
                }
                let blocks = u32::try_from(blocks).map_err(|_| super::too_big("an inline file"))?;
                (blocks, tail)
            }
            LeafContent::Symlink(target) => (0, target.len()),
            LeafContent::Regular(
                RegularFile::External(_, size)
                | RegularFile::ExternalNoVerity(_, size)
                | RegularFile::Sparse(size),
            ) if *size > 0 => (0, super::plan::chunk_count(*size) as usize * 4),
            _ => (0, 0),
        }
    } else {
        match content {
            LeafContent::Regular(RegularFile::Inline(data)) => (0, data.len()),
            LeafContent::Regular(RegularFile::External(..)) => (0, 4),
            _ => (0, 0),
        }
    })
}

/// Directory size as composefs-rs's `Directory::from_entries` lays it out: entries fill 4 KiB
/// blocks in order; what is left stays inline unless it is over half a block.
pub(super) fn dir_size(entries: &[DirEnt]) -> io::Result<u64> {
    let mut blocks = 0u64;
    let tail = split_dir(entries, |_| blocks += 1)?;
    let tail_bytes: usize = entries[tail].iter().map(|e| 12 + e.name.len()).sum();
    Ok(blocks * BLOCK as u64 + tail_bytes as u64)
}

/// Calls `block` with the entry range of each full block, returns the inline range.
pub(super) fn split_dir(
    entries: &[DirEnt],
    mut block: impl FnMut(std::ops::Range<usize>),
) -> io::Result<std::ops::Range<usize>> {
    let mut start = 0;
    let mut bytes = 0usize;
    for (i, e) in entries.iter().enumerate() {
        let size = 12 + e.name.len();
        if size > BLOCK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a file name of {} bytes does not fit in an EROFS directory block",
                    e.name.len()
                ),
            ));
        }
        bytes += size;
        if bytes > BLOCK {
            block(start..i);
            start = i;
            bytes = size;
        }
    }
    if bytes > BLOCK / 2 {
        block(start..entries.len());
        start = entries.len();
    }
    Ok(start..entries.len())
}

/// Collects the inodes of `fs` for `version`. `stub` is the leaf the Epoch1 whiteout stubs
/// stand for (see [`stub_stat`]).
pub(super) fn collect<'a, H: FsVerityHashValue>(
    fs: &'a FileSystem<H>,
    version: FormatVersion,
    stub: &'a Leaf<H>,
) -> io::Result<Collected<'a, H>> {
    let (nlinks, first_dir) = link_census(fs)?;
    let epoch1 = version.epoch() == FormatEpoch::Epoch1;
    let mut c = Collector {
        epoch1,
        nodes: Vec::new(),
        dirents: Vec::new(),
        leaf_inode: vec![NONE; nlinks.len()],
        nlinks,
    };
    if epoch1 {
        breadth_first(&mut c, fs, stub, &first_dir)?;
    } else {
        depth_first(&mut c, fs)?;
    }
    Ok(Collected {
        nodes: c.nodes,
        dirents: c.dirents,
    })
}

/// One entry of a directory as the Epoch1 walk sees it: from the tree or a stub.
enum Entry<'a, H: FsVerityHashValue> {
    Tree(&'a [u8], &'a Inode<H>),
    Stub(&'static [u8]),
}

/// A directory listed before all its links had inodes: (directory, entries, the waiting
/// links' (entry position, leaf index)).
type Pending<'a> = (u32, Vec<DirEnt<'a>>, Vec<(usize, usize)>);

fn breadth_first<'a, H: FsVerityHashValue>(
    c: &mut Collector<'a, H>,
    fs: &'a FileSystem<H>,
    stub: &'a Leaf<H>,
    first_dir: &[usize],
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let root = c.push_dir(&fs.root.stat)?;
    let mut queue = VecDeque::from([(&fs.root, root, root)]);
    // Directories with links met before the inode they share exists, with those links'
    // (entry position, leaf index).
    let mut pending: Vec<Pending<'a>> = Vec::new();

    while let Some((dir, parent, me)) = queue.pop_front() {
        let dir_addr = dir as *const Directory<H> as usize;
        let mut entries = dots(me, parent);
        let mut waiting = Vec::new();
        let mut has_whiteout = false;

        let mut tree = dir.sorted_entries().peekable();
        let mut next_stub = if me == root { 0 } else { 256 };
        loop {
            let entry = match (tree.peek(), next_stub < 256) {
                (None, false) => break,
                (Some(_), false) => {
                    let (n, i) = tree.next().unwrap_or_else(|| unreachable!());
                    Entry::Tree(n.as_bytes(), i)
                }
                (None, true) => {
                    next_stub += 1;
                    Entry::Stub(stub_name(next_stub - 1))
                }
                (Some((n, _)), true) => {
                    let s = stub_name(next_stub);
                    match n.as_bytes().cmp(s) {
                        std::cmp::Ordering::Greater => {
                            next_stub += 1;
                            Entry::Stub(s)
                        }
                        order => {
                            if order == std::cmp::Ordering::Equal {
                                next_stub += 1; // the tree's entry takes the name
                            }
                            let (n, i) = tree.next().unwrap_or_else(|| unreachable!());
                            Entry::Tree(n.as_bytes(), i)
                        }
                    }
                }
            };
            match entry {
                Entry::Stub(name) => {
                    let child = c.leaf(None, stub)?;
                    entries.push(DirEnt {
                        name,
                        target: child,
                        file_type: FileType::CharacterDevice,
                    });
                }
                Entry::Tree(name, Inode::Directory(sub)) => {
                    let child = c.push_dir(&sub.stat)?;
                    queue.push_back((sub, me, child));
                    entries.push(DirEnt {
                        name,
                        target: child,
                        file_type: FileType::Directory,
                    });
                }
                Entry::Tree(name, Inode::Leaf(id, _)) => {
                    let id = id.0;
                    let leaf = fs.leaves.get(id).ok_or_else(|| bad_leaf(id))?;
                    let is_stub = me == root && looks_like_stub(name, &leaf.stat, &fs.root.stat);
                    let canonical = c.nlinks[id] <= 1 || first_dir[id] == dir_addr;
                    let child = if canonical {
                        Some(c.leaf(Some(id), leaf)?)
                    } else {
                        Some(c.leaf_inode[id]).filter(|&i| i != NONE)
                    };
                    if let Some(child) = child {
                        let node = &mut c.nodes[child as usize];
                        if canonical
                            && !is_stub
                            && matches!(leaf.content, LeafContent::CharacterDevice(0))
                            && !node.escaped_whiteout
                        {
                            node.escaped_whiteout = true;
                            has_whiteout = true;
                        }
                        entries.push(DirEnt {
                            name,
                            target: child,
                            file_type: node.file_type(),
                        });
                    } else {
                        waiting.push((entries.len(), id));
                        entries.push(DirEnt {
                            name,
                            target: NONE,
                            file_type: FileType::RegularFile,
                        });
                    }
                }
            }
        }
        if has_whiteout {
            c.nodes[me as usize].dir_whiteouts = true;
        }
        if waiting.is_empty() {
            c.finish_dir(me, entries)?;
        } else {
            pending.push((me, entries, waiting));
        }
    }

    // Now every canonical link has its inode: resolve the early ones, then store those dirs.
    for (me, mut entries, waiting) in pending {
        for (pos, id) in waiting {
            let inode = c.leaf_inode[id];
            if inode == NONE {
                return Err(io::Error::other(format!(
                    "leaf {id} has several links but none was collected"
                )));
            }
            entries[pos].target = inode;
            entries[pos].file_type = c.nodes[inode as usize].file_type();
        }
        c.finish_dir(me, entries)?;
    }
    Ok(())
}

fn depth_first<'a, H: FsVerityHashValue>(
    c: &mut Collector<'a, H>,
    fs: &'a FileSystem<H>,
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let root = c.push_dir(&fs.root.stat)?;
    let mut stack = vec![(root, fs.root.sorted_entries(), dots(root, root))];
    while let Some((me, iter, entries)) = stack.last_mut() {
        let me = *me;
        match iter.next() {
            Some((name, Inode::Directory(sub))) => {
                let child = c.push_dir(&sub.stat)?;
                entries.push(DirEnt {
                    name: name.as_bytes(),
                    target: child,
                    file_type: FileType::Directory,
                });
                stack.push((child, sub.sorted_entries(), dots(child, me)));
            }
            Some((name, Inode::Leaf(id, _))) => {
                let leaf = fs.leaves.get(id.0).ok_or_else(|| bad_leaf(id.0))?;
                let child = c.leaf(Some(id.0), leaf)?;
                let file_type = c.nodes[child as usize].file_type();
                entries.push(DirEnt {
                    name: name.as_bytes(),
                    target: child,
                    file_type,
                });
            }
            None => {
                let entries = std::mem::take(entries);
                stack.pop();
                c.finish_dir(me, entries)?;
            }
        }
    }
    Ok(())
}
