//! Reading an OCI image layout directory (OCI image-spec `image-layout.md`): `index.json`
//! names the image (by `org.opencontainers.image.ref.name` when a tag is given), blobs live in
//! `blobs/<alg>/<hex>`.

use super::{ImageSource, SourceError};
use crate::content_digest::ContentDigest;
use crate::manifest::{Descriptor, Document, DocumentKind};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The annotation that carries a tag in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image inside an OCI layout directory.
pub struct OciLayoutSource {
    dir: PathBuf,
    tag: Option<String>,
    name: String,
    /// Blobs read to their end with a matching digest in this run: a sink may copy their
    /// files without hashing them again.
    verified: Arc<Mutex<HashSet<String>>>,
}

impl OciLayoutSource {
    pub fn open(dir: &Path, tag: Option<&str>) -> Result<Self, SourceError> {
        let name = match tag {
            Some(t) => format!("oci:{}:{t}", dir.display()),
            None => format!("oci:{}", dir.display()),
        };
        if !dir.join("oci-layout").is_file() {
            return Err(SourceError::new(
                name,
                "not an OCI image layout (no oci-layout file)",
            ));
        }
        Ok(OciLayoutSource {
            dir: dir.to_owned(),
            tag: tag.map(str::to_owned),
            name,
            verified: Arc::default(),
        })
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, SourceError> {
        let d = ContentDigest::parse(digest).map_err(|m| SourceError::new(&self.name, m))?;
        let (alg, _) = digest.split_once(':').unwrap_or_default();
        Ok(self.dir.join("blobs").join(alg).join(d.hex()))
    }
}

/// The tag (`org.opencontainers.image.ref.name`) of a layout index entry.
fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .and_then(|v| v.as_str())
}

/// Every tag an OCI layout index names, in index order, each once.
pub fn layout_tags(index: &Document) -> Result<Vec<String>, String> {
    let entries = index.index_entries()?;
    let mut tags: Vec<String> = Vec::new();
    for t in entries.iter().filter_map(ref_name) {
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_owned());
        }
    }
    Ok(tags)
}

/// Picks the image an OCI layout index names: the entry tagged `tag`, or the only entry.
pub fn select_from_layout_index(index: &Document, tag: Option<&str>) -> Result<Descriptor, String> {
    let entries = index.index_entries()?;
    let tagged = |d: &&Descriptor| ref_name(d) == tag;
    match tag {
        Some(t) => entries
            .iter()
            .find(tagged)
            .cloned()
            .ok_or_else(|| format!("no image tagged {t:?} in the layout's index.json")),
        None if entries.len() == 1 => Ok(entries[0].clone()),
        None => Err(format!(
            "index.json lists {} images; name one with :TAG",
            entries.len()
        )),
    }
}

/// The manifest a layout's `index.json` (given as bytes) names for `tag`.
pub(super) fn root_from_index(
    source: &dyn ImageSource,
    index_bytes: Vec<u8>,
    tag: Option<&str>,
) -> Result<Document, SourceError> {
    let err = |m: String| SourceError::new(source.name(), m);
    let mut index =
        Document::parse(index_bytes, None).map_err(|m| err(format!("index.json: {m}")))?;
    if index.kind != DocumentKind::Index {
        return Err(err("index.json is not an image index".into()));
    }
    // Referrers (untagged entries with an `artifactType`, e.g. composefs metadata written by
    // `seal --composefs-sign artifact`) are not images to pick.
    if let Some(list) = index.json["manifests"].as_array_mut() {
        list.retain(|m| m.get("artifactType").is_none());
    }
    let entry = select_from_layout_index(&index, tag).map_err(err)?;
    source.manifest(&entry)
}

impl ImageSource for OciLayoutSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn root_manifest(&self) -> Result<Document, SourceError> {
        let bytes = std::fs::read(self.dir.join("index.json"))
            .map_err(|e| SourceError::new(&self.name, format!("reading index.json: {e}")))?;
        root_from_index(self, bytes, self.tag.as_deref())
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>, SourceError> {
        let path = self.blob_path(&desc.digest)?;
        let file = File::open(&path)
            .map_err(|e| SourceError::new(&self.name, format!("blob {}: {e}", desc.digest)))?;
        let inner = super::verified(BufReader::with_capacity(1 << 20, file), desc)
            .map_err(|m| SourceError::new(self.name(), m))?;
        Ok(Box::new(MarkVerified {
            inner,
            digest: Some(desc.digest.clone()),
            verified: Arc::clone(&self.verified),
        }))
    }

    fn referrers(
        &self,
        subject: &str,
        artifact_type: &str,
    ) -> Result<(Vec<Descriptor>, String), SourceError> {
        let bytes = std::fs::read(self.dir.join("index.json"))
            .map_err(|e| SourceError::new(&self.name, format!("reading index.json: {e}")))?;
        let mut found = Vec::new();
        for desc in super::entries_of_type(&bytes, artifact_type)
            .map_err(|m| SourceError::new(&self.name, m))?
        {
            let doc = self.manifest(&desc)?;
            if doc.json["subject"]["digest"] == subject {
                found.push(desc);
            }
        }
        Ok((found, "index.json".into()))
    }

    fn verified_blob_file(&self, desc: &Descriptor) -> Option<PathBuf> {
        let path = self.blob_path(&desc.digest).ok()?;
        let known = self.verified.lock().ok()?.contains(&desc.digest);
        (known && std::fs::metadata(&path).is_ok_and(|m| m.len() == desc.size)).then_some(path)
    }
}

/// Records a blob as verified when its digest-checking reader reaches its end without error.
struct MarkVerified {
    inner: Box<dyn Read + Send>,
    digest: Option<String>,
    verified: Arc<Mutex<HashSet<String>>>,
}

impl Read for MarkVerified {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0
            && !buf.is_empty()
            && let Some(d) = self.digest.take()
            && let Ok(mut set) = self.verified.lock()
        {
            set.insert(d);
        }
        Ok(n)
    }
}
