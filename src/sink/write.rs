//! Writing images into a sink in the order that never leaves a manifest naming a missing
//! blob: base blobs mounted or copied (up to N at once), new blobs uploaded, the config; the
//! manifest is the caller's, written last.

use super::Sink;
use crate::manifest::{Descriptor, DocumentKind};
use crate::mutate::NewImage;
use crate::source::ImageSource;
use crate::worker_pool::{self, Flow};

/// Makes every blob of `image` present in `sink`: its base layers from `source`, its new layer
/// and its config (the manifest is the caller's to write, last).
pub fn write_image(
    sink: &dyn Sink,
    source: &dyn ImageSource,
    image: &NewImage,
    jobs: usize,
) -> Result<(), String> {
    copy_blobs(sink, source, &image.base_layers, jobs)?;
    if !sink.has_blob(&image.layer).map_err(|e| e.to_string())? {
        sink.put_blob_bytes(&image.layer, image.layer_blob.clone())
            .map_err(|e| format!("new layer {}: {e}", image.layer.digest))?;
    }
    sink.put_blob(&image.config, &image.config_bytes)
        .map_err(|e| format!("config {}: {e}", image.config.digest))?;
    Ok(())
}

/// Makes `blobs` present in `sink` from `source`, up to `jobs` transfers at once; the first
/// failure stops the others from starting.
pub fn copy_blobs(
    sink: &dyn Sink,
    source: &dyn ImageSource,
    blobs: &[Descriptor],
    jobs: usize,
) -> Result<(), String> {
    let mut failure = None;
    worker_pool::run_each(
        blobs.len(),
        jobs,
        |i| {
            let desc = &blobs[i];
            match sink.has_blob(desc).map_err(|e| e.to_string())? {
                true => Ok(()),
                false => sink
                    .copy_blob(desc, source)
                    .map_err(|e| format!("layer {}: {e}", desc.digest)),
            }
        },
        |_, result: Result<(), String>| match result {
            Ok(()) => Flow::Continue,
            Err(e) => {
                failure.get_or_insert(e);
                Flow::Stop
            }
        },
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Copies one image manifest named by an index entry, its config and layers, unchanged.
pub fn copy_manifest(
    sink: &dyn Sink,
    source: &dyn ImageSource,
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
    copy_blobs(sink, source, &blobs, jobs)?;
    sink.put_manifest(&doc, None).map_err(|e| e.to_string())
}
