//! The composefs digest of a tree *without* the boot transform: what composefs-oci 0.9.0 gives
//! an image before booting enters the picture (`image::create_filesystem`, which applies the
//! layers and `transform_for_oci`, then `FileSystem::compute_image_id`; cfsctl's `oci
//! compute-id` without `--bootable`). The composefs OCI sealing spec (composefs-oci 0.9.0
//! `sealing_spec.rs`) calls it the `merged` EROFS; one layer's tree alone gives its `layer`
//! EROFS.

use composefs::fsverity::FsVerityHashValue;
use composefs::tree::FileSystem;

use super::{DigestError, ErofsVersion};
use crate::tree::{CaptureSet, ObjectId, ParsedLayer, TreeBuilder};

/// A copy of a tree before the transforms, to be completed and digested without `/boot` being
/// emptied (the seal's `merged` digest covers the UKI the bootable digest is written into).
pub struct PlainTree {
    image: String,
    fs: FileSystem<ObjectId>,
}

impl super::Ingested {
    /// A copy of the tree as it is now, for [`PlainTree::digest`].
    pub fn plain_copy(&self) -> PlainTree {
        PlainTree {
            image: self.image.clone(),
            fs: self.built.tree.fs.clone(),
        }
    }
}

impl PlainTree {
    /// Applies one more uncompressed tar layer (composefs-oci's overlay rules).
    pub fn apply_tar(&mut self, tar: &[u8]) -> Result<(), DigestError> {
        let cancel = std::sync::atomic::AtomicBool::new(false);
        let mut reader = tar;
        let err = |e: crate::tree::EntryError| DigestError {
            image: self.image.clone(),
            layer: Some(crate::content_digest::ContentDigest::sha256_of(tar).to_string()),
            path: e.path,
            message: e.message,
        };
        let parsed =
            crate::tree::parse_layer(&mut reader, &CaptureSet::new(), &cancel).map_err(&err)?;
        let mut builder = TreeBuilder {
            fs: std::mem::replace(
                &mut self.fs,
                FileSystem::new(composefs::tree::Stat::uninitialized()),
            ),
            stash: Default::default(),
        };
        let applied = builder.apply(parsed);
        self.fs = builder.fs;
        applied.map_err(err)
    }

    /// `transform_for_oci`, then the fs-verity SHA-512 of the EROFS image (hex).
    pub fn digest(self, version: ErofsVersion) -> Result<String, DigestError> {
        let image = self.image;
        on_own_stack(self.fs, version).map_err(|m| DigestError::image(&image, m))
    }
}

/// The `layer` digest of one parsed layer: its entries applied to an empty tree by
/// composefs-oci's rules, then as [`PlainTree::digest`]. Err says why that layer has no tree
/// of its own (e.g. no `/usr`, whose metadata `transform_for_oci` copies to the root, or an
/// entry whose parent directory only a lower layer has).
pub(crate) fn layer_digest(parsed: ParsedLayer, version: ErofsVersion) -> Result<String, String> {
    let mut builder = TreeBuilder::new();
    builder.apply(parsed).map_err(|e| match e.path {
        Some(p) => format!("{p}: {}", e.message),
        None => e.message,
    })?;
    on_own_stack(builder.fs, version)
}

/// The `layer` digest of an uncompressed tar layer (the seal's own); Err says why it has none.
pub fn layer_digest_of_tar(tar: &[u8], version: ErofsVersion) -> Result<String, String> {
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let mut reader = tar;
    let parsed = crate::tree::parse_layer(&mut reader, &CaptureSet::new(), &cancel)
        .map_err(|e| e.message)?;
    layer_digest(parsed, version)
}

/// composefs-rs walks trees recursively: same stack as the bootable digest (see
/// `finish::finish_on_own_stack`).
fn on_own_stack(mut fs: FileSystem<ObjectId>, version: ErofsVersion) -> Result<String, String> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("bootseal-plain-digest".to_string())
            .stack_size(super::finish::FINISH_STACK)
            .spawn_scoped(scope, move || {
                fs.transform_for_oci(&Default::default())
                    .map_err(|e| format!("OCI transform: {e}"))?;
                super::finish::check_xattr_sizes(&fs)?;
                // The product's one writer (src/erofs), as for the bootable digest.
                let (id, _) = crate::erofs::image_digest(&fs, version.format(), false)
                    .map_err(|e| format!("EROFS image: {e}"))?;
                Ok(id.to_hex())
            })
            .map_err(|e| format!("starting the digest thread: {e}"))?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
