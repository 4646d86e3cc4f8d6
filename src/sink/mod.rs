//! Sinks: where a sealed image is written (a registry, an OCI layout directory, an OCI archive).
//! Blobs go first; a manifest is only written once every blob it names is present, so a tag
//! never points at anything missing.

mod oci_layout;
mod registry;
mod write;

pub use oci_layout::OciLayoutSink;
pub use registry::RegistrySink;
pub use write::{copy_blobs, copy_manifest, write_image};

use crate::manifest::{Descriptor, Document};
use crate::reference::ImageRef;
use crate::registry::RegistryOptions;
use crate::source::ImageSource;
use std::io::Read;

/// A failure to write to a destination.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError(e.to_string())
    }
}

/// A place sealed images are written to.
pub trait Sink: Send + Sync {
    fn name(&self) -> String;
    /// Whether the destination already holds this blob.
    fn has_blob(&self, desc: &Descriptor) -> Result<bool, SinkError>;
    /// Makes a base blob present: mounted when source and destination share a registry, else
    /// streamed from `source`.
    fn copy_blob(&self, desc: &Descriptor, source: &dyn ImageSource) -> Result<(), SinkError>;
    /// Stores a blob produced on the fly; fails unless the bytes match `desc`.
    fn put_blob_stream(
        &self,
        desc: &Descriptor,
        reader: Box<dyn Read + Send>,
    ) -> Result<(), SinkError>;
    /// Stores a small blob.
    fn put_blob(&self, desc: &Descriptor, bytes: &[u8]) -> Result<(), SinkError> {
        self.put_blob_stream(desc, Box::new(std::io::Cursor::new(bytes.to_vec())))
    }
    /// Stores a blob held in memory (restartable: a failed upload is sent again).
    fn put_blob_bytes(&self, desc: &Descriptor, bytes: bytes::Bytes) -> Result<(), SinkError> {
        self.put_blob(desc, &bytes)
    }
    /// Writes a manifest or index by its exact bytes, tagged `tag` (None: by digest only),
    /// after checking that everything it names is present.
    fn put_manifest(&self, doc: &Document, tag: Option<&str>) -> Result<(), SinkError>;
    /// Writes `artifact`, a referrer manifest whose blobs are present and whose `subject` is
    /// already in place (refused otherwise), so that it is found for its subject: through the
    /// referrers API where the registry serves it, else the referrers tag schema, or in a
    /// layout as an untagged `index.json` entry. Listing the same artifact again changes
    /// nothing. Returns how it was made discoverable, for reports.
    fn put_referrer(&self, artifact: &Document, subject: &Descriptor) -> Result<String, SinkError>;
    /// Makes the writes visible (an archive is renamed into place here).
    fn commit(&self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Bytes of blob content sent to the destination so far.
    fn bytes_written(&self) -> u64;
}

/// Opens the sink an image reference names.
pub fn open(to: &ImageRef, registry: &RegistryOptions) -> Result<Box<dyn Sink>, SinkError> {
    match to {
        ImageRef::OciLayout { dir, .. } => Ok(Box::new(OciLayoutSink::create(dir, None)?)),
        ImageRef::OciArchive { file, .. } => Ok(Box::new(OciLayoutSink::create_archive(file)?)),
        ImageRef::Registry(r) => Ok(Box::new(RegistrySink::new(r.clone(), registry)?)),
    }
}

/// The blobs a manifest or index names (config, layers, or child manifests).
pub fn referenced_blobs(doc: &Document) -> Result<Vec<Descriptor>, String> {
    match doc.kind {
        crate::manifest::DocumentKind::Image => {
            let mut v = vec![doc.config()?];
            v.extend(doc.layers()?);
            Ok(v)
        }
        crate::manifest::DocumentKind::Index => doc.index_entries(),
    }
}
