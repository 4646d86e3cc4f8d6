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
//! - [`plan`]: attributes per inode and the layout decisions that depend on their sizes;
//! - [`emit`]: the two passes (count, then stream), [`out`]: where their bytes go.
//!
//! Nothing here recurses on the tree's depth, and sizes that come from the tree are checked: a
//! tree the image cannot represent is an error, not a panic. Where composefs-rs would truncate
//! silently (attribute name and value lengths, more than 255 shared attributes on an inode) this
//! writer does the same, so that it stays identical; `digest::finish` refuses such attributes
//! before writing.

mod collect;
mod emit;
mod out;
mod plan;
mod xattr;

use std::io::{self, Write};

use composefs::erofs::format::FormatVersion;
use composefs::fsverity::{FsVerityHashValue, FsVerityHasher};
use composefs::generic_tree::LeafContent;
use composefs::tree::{FileSystem, Leaf};

use emit::Layout;
use out::{Counter, Stream};
use plan::plan;

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
