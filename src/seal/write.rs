//! Sealing one reference: every selected platform sealed into a new image value (and every
//! signature made or checked) first, then written through the sink (blobs first,
//! [`sink::write_image`]), each platform's manifest, then the index; the tag moves only with
//! the last write, so it never points at anything missing.

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
    /// The composefs metadata referrer written for this manifest, and how it is found.
    pub composefs_artifact: Option<String>,
}

/// Every platform of one seal, sealed and not yet written.
struct Sealed {
    root: Document,
    /// The source index's entries left as they are (empty for a single image).
    untouched: Vec<Descriptor>,
    images: Vec<SealedImage>,
}

/// Seals every selected platform of `source` in memory; every signature is made (or, offline,
/// verified) here, before anything is written.
fn seal_all(source: &Arc<dyn ImageSource>, opts: &SealOptions) -> Result<Sealed, SealError> {
    let root = source.root_manifest()?;
    let image_err = |m: String| SealError::Image {
        image: source.name(),
        message: m,
    };
    match root.kind {
        DocumentKind::Image => {
            let platform =
                opts.platforms.first().cloned().unwrap_or_else(|| {
                    crate::manifest::Platform::parse("linux/amd64").expect("valid")
                });
            let base = source::resolve(source.as_ref(), &platform)?;
            let images = vec![seal_image(source, base, opts)?];
            Ok(Sealed {
                root,
                untouched: Vec::new(),
                images,
            })
        }
        DocumentKind::Index => {
            let entries = root.index_entries().map_err(image_err)?;
            let selected = opts
                .platforms
                .iter()
                .map(|p| root.select_platform(p).map(|d| d.digest))
                .collect::<Result<Vec<_>, _>>()
                .map_err(image_err)?;
            let untouched = entries
                .into_iter()
                .filter(|e| !selected.contains(&e.digest))
                .collect();
            let mut images = Vec::new();
            for platform in &opts.platforms {
                let base = source::resolve(source.as_ref(), platform)?;
                images.push(seal_image(source, base, opts)?);
            }
            Ok(Sealed {
                root,
                untouched,
                images,
            })
        }
    }
}

/// Runs the seal up to the point of writing: with an offline signer that records
/// (`--prepare-signing`), this collects every signing request; nothing is written anywhere.
pub fn rehearse(source: Arc<dyn ImageSource>, opts: &SealOptions) -> Result<(), SealError> {
    seal_all(&source, opts).map(|_| ())
}

/// Seals `from` for `opts.platforms` and writes the result to `sink` (tagged as `to`). Every
/// platform is sealed (and every signature made or checked) before the first write.
pub fn seal(
    source: Arc<dyn ImageSource>,
    sink: &dyn Sink,
    to: &ImageRef,
    opts: &SealOptions,
) -> Result<SealReport, SealError> {
    let dest_err = |m: String| SealError::Destination {
        destination: to.to_string(),
        message: m,
    };
    let tag = to.tag().map(str::to_owned);
    let sealed = seal_all(&source, opts)?;
    if let Some(offline) = opts.offline.as_ref().filter(|o| o.recording()) {
        let count = offline
            .request()
            .map(|r| r.requests.len() + r.pending.len());
        return Err(SealError::AwaitingSignatures {
            destination: to.to_string(),
            count: count.unwrap_or(0),
        });
    }
    let Sealed {
        root,
        untouched,
        images,
    } = sealed;
    let mut platforms = Vec::new();
    let top: Document = match root.kind {
        DocumentKind::Image => {
            let sealed = &images[0];
            sink::write_image(sink, source.as_ref(), &sealed.image, opts.jobs).map_err(dest_err)?;
            let doc = sealed.image.manifest_document().map_err(dest_err)?;
            let mut r = report(sealed);
            if sealed.artifact.is_some() {
                // The artifact's subject must exist first: the manifest by digest, untagged.
                sink.put_manifest(&doc, None)
                    .map_err(|e| dest_err(e.to_string()))?;
                r.composefs_artifact = write_artifact(sink, sealed).map_err(dest_err)?;
            }
            platforms.push(r);
            doc
        }
        DocumentKind::Index => {
            let mut index = root.json.clone();
            // Untouched platforms keep their digests: copied (or mounted) first, as they are.
            for entry in &untouched {
                sink::copy_manifest(sink, source.as_ref(), entry, opts.jobs).map_err(dest_err)?;
            }
            for sealed in &images {
                let old = sealed.base.manifest_digest();
                sink::write_image(sink, source.as_ref(), &sealed.image, opts.jobs)
                    .map_err(dest_err)?;
                sink.put_manifest(&sealed.image.manifest_document().map_err(dest_err)?, None)
                    .map_err(|e| dest_err(e.to_string()))?;
                index = mutate::index_with_replaced(&index, &old, &sealed.image.manifest)
                    .map_err(dest_err)?;
                let mut r = report(sealed);
                r.composefs_artifact = write_artifact(sink, sealed).map_err(dest_err)?;
                platforms.push(r);
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

/// Writes `sealed`'s composefs artifact, if any, after its manifest (its subject) and before
/// the tag moves, so a tag never names a sealed image whose artifact was not written, and no
/// artifact ever names a manifest that is not there. `artifact DIGEST (how it is found)`.
fn write_artifact(sink: &dyn Sink, sealed: &SealedImage) -> Result<Option<String>, String> {
    let Some(artifact) = &sealed.artifact else {
        return Ok(None);
    };
    for (desc, bytes) in &artifact.blobs {
        sink.put_blob(desc, bytes)
            .map_err(|e| format!("composefs artifact blob {}: {e}", desc.digest))?;
    }
    let how = sink
        .put_referrer(&artifact.manifest, &artifact.subject)
        .map_err(|e| format!("composefs artifact: {e}"))?;
    Ok(Some(format!("{} ({how})", artifact.manifest.digest())))
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
        composefs_artifact: None,
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
