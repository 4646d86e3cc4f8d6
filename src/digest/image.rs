//! The digest of an image named by reference: resolves it through a [`crate::source`] and feeds
//! its layers, as verified streams, to [`super::compute`].

use super::{DigestOptions, DigestReport, LayerInput, compute};
use crate::manifest::Platform;
use crate::reference::ImageRef;
use crate::source::{self, ImageSource, ResolvedImage, SourceOptions};
use std::sync::Arc;

/// The layers of a resolved image as digest inputs, each opened lazily from `source`.
pub fn layer_inputs(source: &Arc<dyn ImageSource>, image: &ResolvedImage) -> Vec<LayerInput> {
    image
        .layers
        .iter()
        .zip(&image.diff_ids)
        .map(|(desc, diff_id)| {
            let source = Arc::clone(source);
            let desc_for_open = desc.clone();
            LayerInput {
                digest: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                diff_id: diff_id.clone(),
                open: Box::new(move || Ok(source.open_blob(&desc_for_open)?)),
            }
        })
        .collect()
}

/// Resolves `image` for `platform` and computes its composefs digest.
pub fn of_image(
    image: &ImageRef,
    source_opts: &SourceOptions,
    platform: &Platform,
    opts: &DigestOptions,
) -> Result<DigestReport, super::DigestError> {
    let source = source::open(image, source_opts)?;
    let resolved = source::resolve(source.as_ref(), platform)?;
    let layers = layer_inputs(&source, &resolved);
    compute(&resolved.name, layers, opts)
}
