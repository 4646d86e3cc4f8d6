//! Reading images from a registry through the shared registry client: the reference is pinned
//! to a digest when its manifest is first read (a tag that moves mid-run cannot mix versions),
//! manifests come as exact bytes with our Accept list, blobs as resumable streams whose digest
//! is checked end to end.

use super::{ImageSource, SourceError};
use crate::manifest::{Descriptor, Document, MANIFEST_TYPES, sha256_digest};
use crate::registry::{RegistryClient, RegistryOptions};
use oci_client::Reference;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// An image in a registry.
pub struct RegistrySource {
    reference: Reference,
    client: Arc<RegistryClient>,
    scope: String,
    /// The root manifest as first read; later calls return it, and `registry_reference`
    /// names it by digest.
    pinned: Mutex<Option<Document>>,
}

impl RegistrySource {
    pub fn new(reference: Reference, opts: &RegistryOptions) -> Result<Self, SourceError> {
        let name = format!("docker://{}", reference.whole());
        let client =
            RegistryClient::connect(&reference, opts).map_err(|e| SourceError::new(&name, e.0))?;
        Ok(RegistrySource {
            scope: format!("repository:{}:pull", reference.repository()),
            reference,
            client: Arc::new(client),
            pinned: Mutex::new(None),
        })
    }

    fn err(&self, m: impl Into<String>) -> SourceError {
        SourceError::new(self.name(), m)
    }

    fn pull_manifest(&self, reference: &str) -> Result<Document, SourceError> {
        let fetched = self
            .client
            .get_manifest(
                self.reference.repository(),
                reference,
                MANIFEST_TYPES,
                &self.scope,
            )
            .map_err(|e| self.err(e.0))?;
        Document::parse(fetched.bytes, fetched.content_type.as_deref())
            .map_err(|m| self.err(format!("manifest {reference}: {m}")))
    }

    /// The shared client (a sink on the same registry may reuse it to mount).
    pub fn client(&self) -> &Arc<RegistryClient> {
        &self.client
    }
}

impl ImageSource for RegistrySource {
    fn name(&self) -> String {
        format!("docker://{}", self.reference.whole())
    }

    fn registry_reference(&self) -> Option<Reference> {
        let pinned = self.pinned.lock().ok()?.as_ref().map(Document::digest);
        Some(match pinned {
            Some(d) => self.reference.clone_with_digest(d),
            None => self.reference.clone(),
        })
    }

    fn root_manifest(&self) -> Result<Document, SourceError> {
        let mut pinned = self
            .pinned
            .lock()
            .map_err(|_| self.err("manifest lock poisoned"))?;
        if let Some(doc) = pinned.as_ref() {
            return Ok(doc.clone());
        }
        let by = match (self.reference.digest(), self.reference.tag()) {
            (Some(d), _) => d.to_owned(),
            (None, Some(t)) => t.to_owned(),
            (None, None) => "latest".to_owned(),
        };
        let doc = self.pull_manifest(&by)?;
        if let Some(want) = self.reference.digest()
            && doc.digest() != want
        {
            return Err(self.err(format!(
                "manifest digest mismatch: expected {want}, got {}",
                doc.digest()
            )));
        }
        *pinned = Some(doc.clone());
        Ok(doc)
    }

    fn manifest(&self, desc: &Descriptor) -> Result<Document, SourceError> {
        let doc = self.pull_manifest(&desc.digest)?;
        if sha256_digest(&doc.bytes) != desc.digest {
            return Err(self.err(format!(
                "manifest digest mismatch: expected {}, got {}",
                desc.digest,
                doc.digest()
            )));
        }
        Ok(doc)
    }

    fn referrers(
        &self,
        subject: &str,
        artifact_type: &str,
    ) -> Result<(Vec<Descriptor>, String), SourceError> {
        let repo = self.reference.repository();
        if let Some(index) = self
            .client
            .referrers(repo, subject, artifact_type)
            .map_err(|e| self.err(e.0))?
        {
            let found = super::entries_of_type(&index, artifact_type).map_err(|m| self.err(m))?;
            return Ok((found, "referrers API".into()));
        }
        let tag = crate::composefs_meta::artifact::referrers_tag(subject);
        let how = format!("referrers tag {tag}");
        match self
            .client
            .find_manifest(repo, &tag, &[crate::manifest::OCI_INDEX], &self.scope)
            .map_err(|e| self.err(e.0))?
        {
            Some(index) => {
                let found =
                    super::entries_of_type(&index.bytes, artifact_type).map_err(|m| self.err(m))?;
                Ok((found, how))
            }
            None => Ok((Vec::new(), how)),
        }
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>, SourceError> {
        let reader = self
            .client
            .open_blob(self.reference.repository(), &desc.digest, desc.size)
            .map_err(|e| self.err(e.0))?;
        super::verified(reader, desc).map_err(|m| self.err(m))
    }
}
