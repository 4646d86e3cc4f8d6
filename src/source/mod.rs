//! Image sources: where manifests and blobs are read from (a registry, an OCI layout directory,
//! an OCI archive), behind one blocking interface whose blob streams are digest-verified.

mod oci_archive;
pub mod oci_layout;
mod registry;
mod registry_tags;

pub use oci_archive::OciArchiveSource;
pub use oci_layout::OciLayoutSource;
pub use registry::RegistrySource;
pub use registry_tags::list_tags;

use crate::content_digest::ContentDigest;
use crate::manifest::{Descriptor, Document, DocumentKind, Platform, config_diff_ids};
use crate::reference::ImageRef;
use crate::registry::RegistryOptions;
use serde_json::Value;
use std::io::Read;
use std::sync::Arc;

/// A failure to read an image, with the image named in the message.
#[derive(Debug, thiserror::Error)]
#[error("{image}: {message}")]
pub struct SourceError {
    pub image: String,
    pub message: String,
}

impl SourceError {
    pub fn new(image: impl Into<String>, message: impl Into<String>) -> Self {
        SourceError {
            image: image.into(),
            message: message.into(),
        }
    }
}

/// A place images are read from. Blob readers verify size and digest as they stream and fail
/// the read that reaches the end if they do not match.
pub trait ImageSource: Send + Sync {
    /// The image as the user named it, for messages.
    fn name(&self) -> String;
    /// The top-level manifest or index the reference points at.
    fn root_manifest(&self) -> Result<Document, SourceError>;
    /// A manifest named by digest (an index child); by default read as a verified blob.
    fn manifest(&self, desc: &Descriptor) -> Result<Document, SourceError> {
        let bytes = self.read_blob(desc)?;
        Document::parse(bytes, Some(&desc.media_type))
            .map_err(|m| SourceError::new(self.name(), format!("manifest {}: {m}", desc.digest)))
    }
    /// A blob as a verified stream.
    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>, SourceError>;

    /// The registry reference, when the image lives in a registry (lets a sink on the same
    /// registry mount blobs instead of copying them).
    fn registry_reference(&self) -> Option<oci_client::Reference> {
        None
    }

    /// The local file of a blob this source has already read in full and verified in this
    /// run (OCI layouts), so a sink can copy the file without hashing it again.
    fn verified_blob_file(&self, _desc: &Descriptor) -> Option<std::path::PathBuf> {
        None
    }

    /// The referrers of manifest `subject` whose `artifactType` is `artifact_type`, as
    /// descriptors of their manifests, and where they were found. Registries: the OCI 1.1
    /// referrers API, else the referrers tag schema (`sha256-<hex>`); layouts and archives:
    /// `index.json` entries of that type whose manifest names the subject.
    fn referrers(
        &self,
        subject: &str,
        artifact_type: &str,
    ) -> Result<(Vec<Descriptor>, String), SourceError> {
        let _ = (subject, artifact_type);
        Ok((Vec::new(), "none".into()))
    }

    /// A small blob (a config) read whole and verified.
    fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>, SourceError> {
        const MAX_SMALL_BLOB: u64 = 16 << 20;
        if desc.size > MAX_SMALL_BLOB {
            return Err(SourceError::new(
                self.name(),
                format!(
                    "blob {} is {} bytes, too large for a config",
                    desc.digest, desc.size
                ),
            ));
        }
        let mut out = Vec::with_capacity(desc.size as usize);
        self.open_blob(desc)?
            .read_to_end(&mut out)
            .map_err(|e| SourceError::new(self.name(), format!("blob {}: {e}", desc.digest)))?;
        Ok(out)
    }
}

/// Options that apply when opening any source.
#[derive(Clone, Debug, Default)]
pub struct SourceOptions {
    pub registry: RegistryOptions,
}

/// Opens the source an image reference names.
pub fn open(image: &ImageRef, opts: &SourceOptions) -> Result<Arc<dyn ImageSource>, SourceError> {
    Ok(match image {
        ImageRef::Registry(r) => Arc::new(RegistrySource::new(r.clone(), &opts.registry)?),
        ImageRef::OciLayout { dir, tag } => Arc::new(OciLayoutSource::open(dir, tag.as_deref())?),
        ImageRef::OciArchive { file, tag } => {
            Arc::new(OciArchiveSource::open(file, tag.as_deref())?)
        }
    })
}

/// One platform's image, resolved: its manifest, config and layers with their diff_ids.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The image as named, for messages.
    pub name: String,
    /// The index it was selected from, if the reference named one.
    pub index: Option<Document>,
    pub manifest: Document,
    pub config_descriptor: Descriptor,
    pub config_bytes: Vec<u8>,
    pub config: Value,
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<String>,
    pub platform: Platform,
}

impl ResolvedImage {
    pub fn manifest_digest(&self) -> String {
        self.manifest.digest()
    }
}

/// Reads the manifest (selecting `platform` from an index), the config, and checks that the
/// layers and diff_ids agree.
pub fn resolve(
    source: &dyn ImageSource,
    platform: &Platform,
) -> Result<ResolvedImage, SourceError> {
    let err = |m: String| SourceError::new(source.name(), m);
    let root = source.root_manifest()?;
    let (index, manifest) = match root.kind {
        DocumentKind::Index => {
            let entry = root.select_platform(platform).map_err(err)?;
            let child = source.manifest(&entry)?;
            if child.kind != DocumentKind::Image {
                return Err(err(format!(
                    "index entry {} is not an image manifest",
                    entry.digest
                )));
            }
            (Some(root), child)
        }
        DocumentKind::Image => (None, root),
    };
    let config_descriptor = manifest.config().map_err(err)?;
    let layers = manifest.layers().map_err(err)?;
    for d in std::iter::once(&config_descriptor).chain(&layers) {
        ContentDigest::parse(&d.digest).map_err(err)?;
    }
    let config_bytes = source.read_blob(&config_descriptor)?;
    let config: Value = serde_json::from_slice(&config_bytes).map_err(|e| {
        err(format!(
            "config {} is not JSON: {e}",
            config_descriptor.digest
        ))
    })?;
    let diff_ids = config_diff_ids(&config).map_err(err)?;
    if diff_ids.len() != layers.len() {
        return Err(err(format!(
            "manifest has {} layers but config has {} diff_ids",
            layers.len(),
            diff_ids.len()
        )));
    }
    if index.is_none() {
        // A plain manifest: check its config describes the platform asked for.
        let os = config.get("os").and_then(Value::as_str).unwrap_or("");
        let arch = config
            .get("architecture")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !os.is_empty()
            && !arch.is_empty()
            && (os != platform.os || arch != platform.architecture)
        {
            return Err(err(format!(
                "image is for {os}/{arch}, not the requested platform {platform}"
            )));
        }
    }
    Ok(ResolvedImage {
        name: source.name(),
        index,
        manifest,
        config_descriptor,
        config_bytes,
        config,
        layers,
        diff_ids,
        platform: platform.clone(),
    })
}

/// Wraps a blob stream so it fails unless it yields exactly the descriptor's bytes: the digest is
/// checked at EOF and reading stops one byte past the declared size.
pub(crate) fn verified(
    reader: impl Read + Send + 'static,
    desc: &Descriptor,
) -> Result<Box<dyn Read + Send>, String> {
    let expected = ContentDigest::parse(&desc.digest)?;
    Ok(Box::new(crate::content_digest::VerifyingReader::new(
        reader.take(desc.size.saturating_add(1)),
        expected,
        "blob",
    )))
}

/// The entries of a referrers index (or layout `index.json`) whose `artifactType` is
/// `artifact_type`, as descriptors.
pub(crate) fn entries_of_type(
    index: &[u8],
    artifact_type: &str,
) -> Result<Vec<Descriptor>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(index).map_err(|e| format!("referrers index is not JSON: {e}"))?;
    json["manifests"]
        .as_array()
        .ok_or("referrers index has no manifests")?
        .iter()
        .filter(|m| m["artifactType"] == artifact_type)
        .map(|m| serde_json::from_value(m.clone()).map_err(|e| format!("referrers index: {e}")))
        .collect()
}
