//! Sealing one reference: each selected platform sealed into a new image value, written through
//! the sink (blobs first, [`sink::write_image`]), then each platform's manifest, then the
//! index; the tag moves only with the last write, so it never points at anything missing.

use super::{SealError, SealOptions, SealedImage, seal_image};
use crate::manifest::{Descriptor, Document, DocumentKind, sha256_digest};
use crate::mutate;
use crate::reference::ImageRef;
use crate::sink::{self, Sink};
use crate::source::{self, ImageSource};
use std::sync::Arc;

/// What a seal produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SealReport {
    /// `DST@sha256:…` of the manifest or index that was written.
    pub reference: String,
    pub digest: String,
    pub platforms: Vec<PlatformReport>,
    /// Bytes sent to the destination (blobs uploaded or copied, manifests); mounted and
    /// already present blobs cost nothing.
    pub bytes_written: u64,
}

/// One sealed platform.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlatformReport {
    pub platform: String,
    pub base_manifest: String,
    pub manifest: String,
    pub composefs_digest: String,
    pub cmdline: String,
    pub kernel: String,
    pub layer: Descriptor,
    pub warnings: Vec<String>,
}

/// Seals `from` for `opts.platforms` and writes the result to `sink` (tagged as `to`).
pub fn seal(
    source: Arc<dyn ImageSource>,
    sink: &dyn Sink,
    to: &ImageRef,
    opts: &SealOptions,
) -> Result<SealReport, SealError> {
    let root = source.root_manifest()?;
    let dest_err = |m: String| SealError::Destination {
        destination: to.to_string(),
        message: m,
    };
    let tag = to.tag().map(str::to_owned);
    let mut platforms = Vec::new();
    let top: Document = match root.kind {
        DocumentKind::Image => {
            let platform =
                opts.platforms.first().cloned().unwrap_or_else(|| {
                    crate::manifest::Platform::parse("linux/amd64").expect("valid")
                });
            let base = source::resolve(source.as_ref(), &platform)?;
            let sealed = seal_image(&source, base, opts)?;
            sink::write_image(sink, source.as_ref(), &sealed.image, opts.jobs).map_err(dest_err)?;
            platforms.push(report(&sealed));
            sealed.image.manifest_document().map_err(dest_err)?
        }
        DocumentKind::Index => {
            let mut index = root.json.clone();
            let entries = root.index_entries().map_err(|m| SealError::Image {
                image: source.name(),
                message: m,
            })?;
            let selected = opts
                .platforms
                .iter()
                .map(|p| root.select_platform(p).map(|d| d.digest))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| SealError::Image {
                    image: source.name(),
                    message: m,
                })?;
            // Untouched platforms keep their digests: copied (or mounted) first, as they are.
            for entry in entries.iter().filter(|e| !selected.contains(&e.digest)) {
                sink::copy_manifest(sink, source.as_ref(), entry, opts.jobs).map_err(dest_err)?;
            }
            for platform in &opts.platforms {
                let base = source::resolve(source.as_ref(), platform)?;
                let old = base.manifest_digest();
                let sealed = seal_image(&source, base, opts)?;
                sink::write_image(sink, source.as_ref(), &sealed.image, opts.jobs)
                    .map_err(dest_err)?;
                sink.put_manifest(&sealed.image.manifest_document().map_err(dest_err)?, None)
                    .map_err(|e| dest_err(e.to_string()))?;
                index = mutate::index_with_replaced(&index, &old, &sealed.image.manifest)
                    .map_err(dest_err)?;
                platforms.push(report(&sealed));
            }
            // The index records what it was sealed from and how, as its manifests do, so
            // `sync` can judge a multi-arch tag from its top document alone (a Docker manifest
            // list has no annotations).
            if root.media_type != crate::manifest::DOCKER_LIST {
                let annotations = index
                    .as_object_mut()
                    .map(|o| {
                        o.entry("annotations")
                            .or_insert_with(|| serde_json::json!({}))
                    })
                    .and_then(serde_json::Value::as_object_mut)
                    .ok_or_else(|| dest_err("index annotations are not an object".into()))?;
                annotations.insert(super::BASE_DIGEST_ANNOTATION.into(), root.digest().into());
                annotations.insert(
                    super::FINGERPRINT_ANNOTATION.into(),
                    opts.fingerprint().into(),
                );
            }
            let bytes = serde_json::to_vec(&index).map_err(|e| dest_err(e.to_string()))?;
            Document::parse(bytes, Some(&root.media_type)).map_err(dest_err)?
        }
    };
    // The tag moves last, once everything it reaches is in place.
    sink.put_manifest(&top, tag.as_deref())
        .map_err(|e| dest_err(e.to_string()))?;
    let digest = sha256_digest(&top.bytes);
    Ok(SealReport {
        reference: format!("{}@{digest}", strip_tag(to)),
        digest,
        platforms,
        bytes_written: sink.bytes_written(),
    })
}

fn report(s: &SealedImage) -> PlatformReport {
    PlatformReport {
        platform: s.base.platform.to_string(),
        base_manifest: s.base.manifest_digest(),
        manifest: s.image.manifest.digest.clone(),
        composefs_digest: s.digest_hex.clone(),
        cmdline: s.cmdline.clone(),
        kernel: s.kver.clone(),
        layer: s.image.layer.clone(),
        warnings: s.warnings.clone(),
    }
}

/// The destination without its tag, for `NAME@DIGEST`.
fn strip_tag(to: &ImageRef) -> String {
    match to {
        ImageRef::Registry(r) => format!("docker://{}/{}", r.registry(), r.repository()),
        ImageRef::OciLayout { dir, .. } => format!("oci:{}", dir.display()),
        ImageRef::OciArchive { file, .. } => format!("oci-archive:{}", file.display()),
    }
}
