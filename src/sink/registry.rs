//! Writing to a registry through the shared registry client: HEAD before every blob,
//! cross-repository mount on the same registry, streamed copy otherwise (restarted from the
//! source on failure), and the manifest last, only once every blob it names answers HEAD.

use super::{Sink, SinkError, referenced_blobs};
use crate::manifest::{Descriptor, Document, DocumentKind, MANIFEST_TYPES, OCI_INDEX};
use crate::registry::{RegistryClient, RegistryOptions};
use crate::source::ImageSource;
use bytes::Bytes;
use oci_client::Reference;
use reqwest::blocking::Body;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A repository being pushed to.
pub struct RegistrySink {
    reference: Reference,
    client: RegistryClient,
    scope: String,
    written: AtomicU64,
    mounted: AtomicU64,
}

impl RegistrySink {
    pub fn new(reference: Reference, opts: &RegistryOptions) -> Result<Self, SinkError> {
        let name = format!("docker://{}", reference.whole());
        let client = RegistryClient::connect(&reference, opts)
            .map_err(|e| SinkError(format!("{name}: {e}")))?;
        Ok(RegistrySink {
            scope: format!("repository:{}:pull,push", reference.repository()),
            reference,
            client,
            written: AtomicU64::new(0),
            mounted: AtomicU64::new(0),
        })
    }

    /// Blobs made present by a cross-repository mount.
    pub fn blobs_mounted(&self) -> u64 {
        self.mounted.load(Ordering::Relaxed)
    }

    // Errors after `new` do not repeat the destination's name: the seal names it once.
    fn err(&self, what: &str, e: impl std::fmt::Display) -> SinkError {
        SinkError(format!("{what}: {e}"))
    }

    fn repository(&self) -> &str {
        self.reference.repository()
    }

    fn try_mount(&self, desc: &Descriptor, from: &Reference) -> Result<bool, SinkError> {
        if from.resolve_registry() != self.reference.resolve_registry()
            || from.repository() == self.repository()
        {
            return Ok(false);
        }
        let outcome = self
            .client
            .mount_blob(self.repository(), from.repository(), &desc.digest)
            .map_err(|e| self.err("mount", e))?;
        Ok(outcome == crate::registry::Mount::Mounted && self.has_blob(desc)?)
    }

    fn upload(
        &self,
        desc: &Descriptor,
        open: &mut dyn FnMut() -> Result<Body, String>,
    ) -> Result<(), SinkError> {
        self.client
            .upload_blob(self.repository(), &desc.digest, desc.size, open)
            .map_err(|e| SinkError(e.to_string()))?;
        self.written.fetch_add(desc.size, Ordering::Relaxed);
        if !self.has_blob(desc)? {
            return Err(SinkError(format!(
                "blob {} is not present after upload",
                desc.digest
            )));
        }
        Ok(())
    }

    /// Refuses `doc` unless everything it names is present.
    fn check_referenced(&self, doc: &Document) -> Result<(), SinkError> {
        for blob in referenced_blobs(doc).map_err(SinkError)? {
            let present = match doc.kind {
                DocumentKind::Image => self.has_blob(&blob)?,
                DocumentKind::Index => self
                    .client
                    .has_manifest(self.repository(), &blob.digest, MANIFEST_TYPES, &self.scope)
                    .map_err(|e| SinkError(e.to_string()))?,
            };
            if !present {
                return Err(SinkError(format!(
                    "refusing to push manifest {}: {} is missing",
                    doc.digest(),
                    blob.digest
                )));
            }
        }
        Ok(())
    }

    /// PUT `doc` as `target`, counting its bytes; the answer's `OCI-Subject`.
    fn push_manifest(&self, doc: &Document, target: &str) -> Result<Option<String>, SinkError> {
        let subject = self
            .client
            .put_manifest(
                self.repository(),
                target,
                Bytes::from(doc.bytes.clone()),
                &doc.media_type,
            )
            .map_err(|e| SinkError(e.to_string()))?;
        self.written
            .fetch_add(doc.bytes.len() as u64, Ordering::Relaxed);
        Ok(subject)
    }
}

impl Sink for RegistrySink {
    fn name(&self) -> String {
        format!("docker://{}", self.reference.whole())
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool, SinkError> {
        self.client
            .has_blob(self.repository(), &desc.digest, &self.scope)
            .map_err(|e| SinkError(e.to_string()))
    }

    fn copy_blob(&self, desc: &Descriptor, source: &dyn ImageSource) -> Result<(), SinkError> {
        if let Some(from) = source.registry_reference()
            && self.try_mount(desc, &from)?
        {
            self.mounted.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let size = desc.size;
        self.upload(desc, &mut || {
            let reader = source.open_blob(desc).map_err(|e| e.to_string())?;
            Ok(Body::sized(reader, size))
        })
    }

    fn put_blob_stream(
        &self,
        desc: &Descriptor,
        reader: Box<dyn Read + Send>,
    ) -> Result<(), SinkError> {
        // A one-shot stream: the first session gets it, a restarted session cannot.
        let reader = Mutex::new(Some(reader));
        let size = desc.size;
        self.upload(desc, &mut || {
            reader
                .lock()
                .ok()
                .and_then(|mut r| r.take())
                .map(|r| Body::sized(r, size))
                .ok_or_else(|| "the stream cannot be sent again".to_owned())
        })
    }

    fn put_blob(&self, desc: &Descriptor, bytes: &[u8]) -> Result<(), SinkError> {
        if self.has_blob(desc)? {
            return Ok(());
        }
        let data = Bytes::copy_from_slice(bytes);
        self.upload(desc, &mut || Ok(Body::from(data.clone())))
    }

    fn put_blob_bytes(&self, desc: &Descriptor, bytes: Bytes) -> Result<(), SinkError> {
        if self.has_blob(desc)? {
            return Ok(());
        }
        self.upload(desc, &mut || Ok(Body::from(bytes.clone())))
    }

    fn put_manifest(&self, doc: &Document, tag: Option<&str>) -> Result<(), SinkError> {
        self.check_referenced(doc)?;
        let digest = doc.digest();
        let target = tag.unwrap_or(&digest);
        self.push_manifest(doc, target)?;
        Ok(())
    }

    fn put_referrer(&self, artifact: &Document, subject: &Descriptor) -> Result<String, SinkError> {
        let present = self
            .client
            .has_manifest(
                self.repository(),
                &subject.digest,
                MANIFEST_TYPES,
                &self.scope,
            )
            .map_err(|e| SinkError(e.to_string()))?;
        if !present {
            return Err(SinkError(format!(
                "refusing to push referrer {}: its subject {} is missing",
                artifact.digest(),
                subject.digest
            )));
        }
        self.check_referenced(artifact)?;
        let artifact_type = artifact.json["artifactType"].as_str().unwrap_or_default();
        // Indexed on push (OCI-Subject came back), or the registry serves the referrers API.
        let digest = artifact.digest();
        let subject_header = self.push_manifest(artifact, &digest)?;
        if subject_header.as_deref() == Some(subject.digest.as_str())
            || self
                .client
                .referrers(self.repository(), &subject.digest, artifact_type)
                .map_err(|e| SinkError(e.to_string()))?
                .is_some()
        {
            return Ok("referrers API".into());
        }
        // The referrers tag schema: read, add, write back. Two writers racing on one subject
        // can lose an entry (the registry offers no conditional PUT); a rerun adds it again.
        let tag = crate::composefs_meta::artifact::referrers_tag(&subject.digest);
        let existing = self
            .client
            .find_manifest(self.repository(), &tag, &[OCI_INDEX], &self.scope)
            .map_err(|e| SinkError(e.to_string()))?;
        let bytes = crate::composefs_meta::artifact::index_with(
            existing.as_ref().map(|m| m.bytes.as_slice()),
            artifact,
        )
        .map_err(|e| SinkError(format!("referrers tag {tag}: {e}")))?;
        if existing.is_some_and(|m| m.bytes == bytes) {
            return Ok(format!("referrers tag {tag} (already listed)"));
        }
        let index = Document::parse(bytes, Some(OCI_INDEX)).map_err(SinkError)?;
        self.put_manifest(&index, Some(&tag))?;
        Ok(format!("referrers tag {tag}"))
    }

    fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}
