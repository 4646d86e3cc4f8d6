//! Writing sealed images to a sink in the order that never leaves a tag pointing at anything
//! missing: every blob (base layers mounted or copied, the new layer streamed, the config),
//! then each platform's manifest, then the index; the tag moves only with the last write.

use super::{SealError, SealOptions, SealedImage, seal_image};
use crate::manifest::{Descriptor, Document, DocumentKind, sha256_digest};
use crate::mutate;
use crate::reference::ImageRef;
use crate::sink::Sink;
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
            write_image(source.as_ref(), sink, sealed, opts).map_err(dest_err)?;
            platforms.push(report(sealed));
            sealed.manifest_document().map_err(dest_err)?
        }
        DocumentKind::Index => {
            let mut index = root.json.clone();
            // Untouched platforms keep their digests: copied (or mounted) first, as they are.
            for entry in &untouched {
                copy_manifest(source.as_ref(), sink, entry, opts.jobs).map_err(dest_err)?;
            }
            for sealed in &images {
                let old = sealed.base.manifest_digest();
                write_image(source.as_ref(), sink, sealed, opts).map_err(dest_err)?;
                sink.put_manifest(&sealed.manifest_document().map_err(dest_err)?, None)
                    .map_err(|e| dest_err(e.to_string()))?;
                index = mutate::index_with_replaced(&index, &old, &sealed.manifest_descriptor)
                    .map_err(dest_err)?;
                platforms.push(report(sealed));
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
        manifest: s.manifest_descriptor.digest.clone(),
        composefs_digest: s.digest_hex.clone(),
        cmdline: s.cmdline.clone(),
        kernel: s.kver.clone(),
        layer: s.layer_descriptor.clone(),
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

/// Makes every blob of a sealed image present in the sink (the manifest is the caller's).
fn write_image(
    source: &dyn ImageSource,
    sink: &dyn Sink,
    sealed: &SealedImage,
    opts: &SealOptions,
) -> Result<(), String> {
    copy_blobs(source, sink, &sealed.base.layers, opts.jobs)?;
    if !sink
        .has_blob(&sealed.layer_descriptor)
        .map_err(|e| e.to_string())?
    {
        sink.put_blob_bytes(&sealed.layer_descriptor, sealed.layer_blob.clone())
            .map_err(|e| format!("new layer {}: {e}", sealed.layer_descriptor.digest))?;
    }
    sink.put_blob(&sealed.config_descriptor, &sealed.config_bytes)
        .map_err(|e| format!("config {}: {e}", sealed.config_descriptor.digest))?;
    Ok(())
}

fn copy_blobs(
    source: &dyn ImageSource,
    sink: &dyn Sink,
    blobs: &[Descriptor],
    jobs: usize,
) -> Result<(), String> {
    // Up to `jobs` transfers at once; the first failure stops the others from starting.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure = std::sync::Mutex::new(None::<String>);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, blobs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(desc) = blobs.get(i) else { break };
                    if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        break;
                    }
                    let result =
                        sink.has_blob(desc)
                            .map_err(|e| e.to_string())
                            .and_then(|present| match present {
                                true => Ok(()),
                                false => sink
                                    .copy_blob(desc, source)
                                    .map_err(|e| format!("layer {}: {e}", desc.digest)),
                            });
                    if let Err(e) = result {
                        let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
                        f.get_or_insert(e);
                    }
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Copies one image manifest named by an index entry, its config and layers, unchanged.
fn copy_manifest(
    source: &dyn ImageSource,
    sink: &dyn Sink,
    entry: &Descriptor,
    jobs: usize,
) -> Result<(), String> {
    let doc = source.manifest(entry).map_err(|e| e.to_string())?;
    if doc.kind != DocumentKind::Image {
        return Err(format!(
            "index entry {} is not an image manifest",
            entry.digest
        ));
    }
    let mut blobs = vec![doc.config()?];
    blobs.extend(doc.layers()?);
    copy_blobs(source, sink, &blobs, jobs)?;
    sink.put_manifest(&doc, None).map_err(|e| e.to_string())
}
