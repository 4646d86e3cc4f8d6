//! The seal's composefs sealing metadata (see [`crate::composefs_meta`]): which digests a
//! sealed image carries, computed from what the seal already has (the bootable digest of the
//! UKI's command line, the merged tree before the boot transform, each layer's tree, the new
//! config's bytes) and signed by the seal's signer or the `.fs-verity` key.

use super::{SealError, SealOptions};
use crate::composefs_meta::artifact::{self, Artifact};
use crate::composefs_meta::{Role, SignMode, inline, signature, verity_hex};
use crate::digest::{ErofsVersion, PlainTree};
use crate::layer_writer::LayerContents;
use crate::manifest::DOCKER_MANIFEST;
use crate::signer::CertifiedSigner;
use crate::source::ResolvedImage;

/// Whether this seal writes composefs metadata for `base` at all: asked for, and an OCI
/// manifest (Docker schema2 has no annotations).
pub(super) fn wanted(opts: &SealOptions, base: &ResolvedImage) -> bool {
    opts.composefs.enabled && base.manifest.media_type != DOCKER_MANIFEST
}

/// Whether the EROFS digests (`merged`, `merged.bootable`, `layer`) are written: only for
/// EROFS V1, the format the spec's `erofs.v1` names unambiguously (module doc of
/// [`crate::composefs_meta`]).
pub(super) fn erofs_digests(opts: &SealOptions, base: &ResolvedImage) -> bool {
    wanted(opts, base) && opts.erofs_version == ErofsVersion::V1
}

/// Whether to compute each base layer's own digest while the layers are parsed.
pub(super) fn layer_digests(opts: &SealOptions, base: &ResolvedImage) -> bool {
    erofs_digests(opts, base) && opts.composefs.layer_digests
}

/// The key composefs signatures are made with: `--composefs-key`, else the seal's.
pub(super) fn signer(opts: &SealOptions) -> Option<&CertifiedSigner> {
    opts.composefs.signer.as_deref().or(opts.signer.as_deref())
}

/// Refuses signing options that cannot be honoured, before any work: signing without a key,
/// or a Docker schema2 image (no annotations, no referrers).
pub(super) fn check(opts: &SealOptions, base: &ResolvedImage) -> Result<(), String> {
    let Some(mode) = opts.composefs.sign else {
        return Ok(());
    };
    if !opts.composefs.enabled {
        return Err("--composefs-sign and --no-composefs-metadata exclude each other".into());
    }
    if base.manifest.media_type == DOCKER_MANIFEST {
        return Err(format!(
            "--composefs-sign {}: a Docker schema2 manifest cannot carry composefs metadata \
             (seal it to an OCI image first)",
            match mode {
                SignMode::Inline => "inline",
                SignMode::Artifact => "artifact",
            }
        ));
    }
    if signer(opts).is_none() {
        return Err(
            "--composefs-sign needs a key: --key/--cert or --composefs-key/--composefs-cert".into(),
        );
    }
    Ok(())
}

/// The composefs digests of one sealed image, before its config exists.
pub(super) struct Digests {
    pub merged: Option<String>,
    pub bootable: Option<String>,
    /// Per layer of the sealed manifest (base layers, then the new one): its own digest.
    pub layers: Vec<(String, Result<String, String>)>,
}

/// What the composefs metadata adds to a sealed manifest.
pub(super) struct Edits {
    pub manifest: Vec<(String, String)>,
    pub layers: Vec<Vec<(String, String)>>,
    pub warnings: Vec<String>,
}

/// The digests of the sealed image: `merged` from `plain` (the base tree) plus the final
/// `layer`, `merged.bootable` = `bootable_hex`, each layer's own when asked for.
pub(super) fn digests(
    opts: &SealOptions,
    base: &ResolvedImage,
    (plain, base_layer_digests): (Option<PlainTree>, Vec<Result<String, String>>),
    layer: &LayerContents,
    new_layer_blob: &str,
    bootable_hex: &str,
) -> Result<Digests, SealError> {
    if !erofs_digests(opts, base) {
        return Ok(Digests {
            merged: None,
            bootable: None,
            layers: Vec::new(),
        });
    }
    let layer_tar = layer.tar_bytes().map_err(|e| SealError::Image {
        image: base.name.clone(),
        message: format!("the new layer: {e}"),
    })?;
    let layer_tar = layer_tar.as_slice();
    let merged = match plain {
        Some(mut tree) => {
            tree.apply_tar(layer_tar)?;
            Some(tree.digest(opts.erofs_version)?)
        }
        None => None,
    };
    let mut layers = Vec::new();
    if layer_digests(opts, base) {
        layers.extend(
            base.layers
                .iter()
                .map(|d| d.digest.clone())
                .zip(base_layer_digests),
        );
        layers.push((
            new_layer_blob.to_owned(),
            crate::digest::layer_digest_of_tar(layer_tar, opts.erofs_version),
        ));
    }
    Ok(Digests {
        merged,
        bootable: Some(bootable_hex.to_owned()),
        layers,
    })
}

/// The inline signer, when signatures go inline.
fn inline_signer<'a>(
    opts: &'a SealOptions,
    base: &ResolvedImage,
) -> Option<inline::InlineSigner<'a>> {
    match opts.composefs.sign {
        Some(SignMode::Inline) => signer(opts).map(|signer| inline::InlineSigner {
            signer,
            request_prefix: opts.request_id(&base.platform, ""),
        }),
        _ => None,
    }
}

/// The manifest's and layers' composefs annotations.
pub(super) fn edits(
    opts: &SealOptions,
    base: &ResolvedImage,
    digests: &Digests,
) -> Result<Edits, String> {
    if !wanted(opts, base) {
        return Ok(Edits {
            manifest: Vec::new(),
            layers: Vec::new(),
            warnings: Vec::new(),
        });
    }
    let manifest = inline::manifest_annotations(
        digests.merged.as_deref(),
        digests.bootable.as_deref(),
        inline_signer(opts, base).as_ref(),
    )
    .map_err(|e| e.to_string())?;
    let (layers, warnings) = inline::layer_annotations(&digests.layers);
    Ok(Edits {
        manifest,
        layers,
        warnings,
    })
}

/// The config descriptor's composefs annotations for the config's `bytes`.
pub(super) fn config_annotations(
    opts: &SealOptions,
    base: &ResolvedImage,
    bytes: &[u8],
) -> Result<Vec<(String, String)>, String> {
    if !wanted(opts, base) {
        return Ok(Vec::new());
    }
    inline::config_annotations(bytes, inline_signer(opts, base).as_ref()).map_err(|e| e.to_string())
}

/// The referrer artifact of a sealed image (`--composefs-sign artifact`): signatures of its
/// manifest, config, merged and merged.bootable digests; None in other modes.
pub(super) fn artifact(
    opts: &SealOptions,
    base: &ResolvedImage,
    digests: &Digests,
    image: &crate::mutate::NewImage,
) -> Result<Option<Artifact>, String> {
    if opts.composefs.sign != Some(SignMode::Artifact) || !wanted(opts, base) {
        return Ok(None);
    }
    let signer = signer(opts).ok_or("no composefs signing key")?;
    let mut objects = vec![
        (Role::Manifest, verity_hex(&image.manifest_bytes)),
        (Role::Config, verity_hex(&image.config_bytes)),
    ];
    if let Some(m) = &digests.merged {
        objects.push((Role::Merged, m.clone()));
    }
    if let Some(b) = &digests.bootable {
        objects.push((Role::MergedBootable, b.clone()));
    }
    let entries = objects
        .into_iter()
        .map(|(role, digest_hex)| {
            let id = opts.request_id(&base.platform, &format!("composefs.{}", role.name()));
            let signature =
                signature::sign(signer, role, &digest_hex, id).map_err(|e| e.to_string())?;
            Ok(artifact::Entry {
                role,
                digest_hex,
                signature,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let subject = crate::manifest::Descriptor {
        platform: None,
        ..image.manifest.clone()
    };
    artifact::build(&subject, entries).map(Some)
}
