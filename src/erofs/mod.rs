//! bootseal's own EROFS writer: the composefs image of a tree, byte for byte what composefs-rs
//! 0.9.0's `FileSystem::compute_image_bytes` writes for `FormatVersion::V1` and `::V2` (its
//! writer is unchanged in 0.9.4), without the cost of that writer on big trees.
//!
//! composefs-rs's writer clones the tree to add the Epoch1 whiteout stubs, keeps a boxed copy of
//! every attribute per inode, builds the image in a growing vector and then hashes it. This one
//! borrows the tree (the stubs are merged into the root's listing as it is walked), keeps per
//! inode only references and numbers (attributes are interned and the overlay metacopy/redirect
//! values are generated from the object id when written), and streams the second pass into any
//! [`Write`]: the digest feeds an incremental fs-verity hasher, so the image is never held
//! unless the caller asks for its bytes.
//!
//! - [`collect`]: which inodes, in which order, and directory listings;
//! - [`xattr`]: attribute names, filter, interning, shared table;
//! - [`emit`]: per-inode layout decisions and the two passes (count, then stream).
//!
//! Nothing here recurses on the tree's depth, and sizes that come from the tree are checked: a
//! tree the image cannot represent is an error, not a panic. Where composefs-rs would truncate
//! silently (attribute name and value lengths, more than 255 shared attributes on an inode) this
//! writer does the same, so that it stays identical; `digest::finish` refuses such attributes
//! before writing.

mod collect;
mod emit;
mod xattr;

use std::io::{self, Write};

use composefs::erofs::format::{self, FormatEpoch, FormatVersion};
use composefs::fsverity::{FsVerityHashValue, FsVerityHasher};
use composefs::generic_tree::LeafContent;
use composefs::tree::{FileSystem, Leaf, RegularFile};

use collect::Kind;
use emit::{Counter, Layout, Plan, Stream};
use xattr::{Key, Table, Value};

pub(crate) fn too_big(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}: too large for an EROFS image"),
    )
}

/// Writes the EROFS image of `fs` in `version` to `sink`; returns its length in bytes.
pub fn write_image<H: FsVerityHashValue>(
    fs: &FileSystem<H>,
    version: FormatVersion,
    sink: impl Write,
) -> io::Result<u64> {
    let stub = Leaf {
        stat: collect::stub_stat(&fs.root.stat),
        content: LeafContent::CharacterDevice(0),
    };
    let plan = plan(fs, version, &stub)?;
    let mut layout = Layout::new(plan.nodes.len(), plan.xattrs.shared.len());
    emit::run(&plan, &mut layout, true, &mut Counter(0))?;
    let mut out = Stream::new(sink);
    emit::run(&plan, &mut layout, false, &mut out)?;
    out.finish()
}

/// The image as bytes.
pub fn image_bytes<H: FsVerityHashValue>(
    fs: &FileSystem<H>,
    version: FormatVersion,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    write_image(fs, version, &mut out)?;
    Ok(out)
}

/// The image's fs-verity digest (4 KiB blocks), hashed as it is written; with `keep`, also
/// the image's bytes.
pub fn image_digest<H: FsVerityHashValue>(
    fs: &FileSystem<H>,
    version: FormatVersion,
    keep: bool,
) -> io::Result<(H, Option<Vec<u8>>)> {
    struct Tee<'h, H: FsVerityHashValue> {
        hasher: &'h mut FsVerityHasher<H>,
        copy: Option<Vec<u8>>,
    }
    impl<H: FsVerityHashValue> Write for Tee<'_, H> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.hasher.write_all(buf)?;
            if let Some(c) = self.copy.as_mut() {
                c.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut hasher = FsVerityHasher::<H>::new();
    let mut tee = Tee {
        hasher: &mut hasher,
        copy: keep.then(Vec::new),
    };
    write_image(fs, version, &mut tee)?;
    let copy = tee.copy.take();
    Ok((hasher.digest(), copy))
}

/// Collects the inodes, their attributes and the shared table, and makes the Epoch1 layout
/// decisions that depend on attribute sizes (composefs-rs `prepare_erofs_inodes`).
fn plan<'a, H: FsVerityHashValue>(
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
