//! bootseal's EROFS writer against composefs-rs 0.9.0's: the whole image, byte for byte.

use composefs::erofs::format::FormatVersion;
use composefs::fsverity::Sha512HashValue;
use composefs::tree::FileSystem;

use super::image_builder::BuiltImage;

pub type Fs = FileSystem<Sha512HashValue>;

/// Stack for the comparisons: composefs-rs's writer recurses once per directory level.
const STACK: usize = 256 << 20;

/// Both writers, V1 and V2: the whole images equal, and our streamed digest equals
/// composefs-rs's.
pub fn assert_identical(what: &str, fs: &Fs) {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(s, || compare(what, fs))
            .unwrap()
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn compare(what: &str, fs: &Fs) {
    for version in [FormatVersion::V1, FormatVersion::V2] {
        let (reference, reference_id) = fs.compute_image_bytes(version);
        let (id, ours) = bootseal::erofs::image_digest(fs, version, true)
            .unwrap_or_else(|e| panic!("{what} {version:?}: {e}"));
        let ours = ours.unwrap();
        if ours[..] != reference[..] {
            let at = ours
                .iter()
                .zip(reference.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(ours.len().min(reference.len()));
            panic!(
                "{what} {version:?}: images differ from byte {at} (block {}, ours {} bytes, \
                 composefs-rs {} bytes)",
                at / 4096,
                ours.len(),
                reference.len()
            );
        }
        assert_eq!(id, reference_id, "{what} {version:?}: digest");
    }
}

/// The tree bootseal's digest builds for `image` (read back from its dumpfile).
pub fn tree_of(image: &BuiltImage) -> Fs {
    let opts = bootseal::digest::DigestOptions {
        keep_dumpfile: true,
        ..Default::default()
    };
    let report = super::our_digest(image, &opts).unwrap_or_else(|e| panic!("{e}"));
    composefs::dumpfile::dumpfile_to_filesystem(report.dumpfile.as_deref().unwrap()).unwrap()
}

/// [`assert_identical`] on the tree of `image`.
pub fn assert_image_identical(what: &str, image: &BuiltImage) {
    let fs = tree_of(image);
    assert_identical(what, &fs);
}

/// [`assert_identical`] on composefs-oci's own bootable tree of `image` (pull,
/// `create_filesystem`, `transform_for_boot`), for trees whose paths are longer than the
/// dumpfile parser accepts (4096 bytes). Runs on the big stack: that pipeline recurses too.
pub fn assert_reference_tree_identical(what: &str, image: &BuiltImage) {
    use composefs_boot::BootOps;
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(s, || {
                let super::reference::Pulled {
                    dir: _dir,
                    repo,
                    mut fs,
                    ..
                } = super::reference::pull(image).unwrap();
                fs.transform_for_boot(&repo).unwrap();
                compare(what, &fs);
            })
            .unwrap()
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
