//! Writing to an OCI image layout directory (OCI image-spec `image-layout.md`), or to an
//! `oci-archive:` tar of one. Blobs are written under temporary names and renamed when their
//! digest checks out; `index.json` is replaced atomically, last.

use super::{Sink, SinkError, referenced_blobs};
use crate::content_digest::{ContentDigest, VerifyingReader};
use crate::manifest::{Descriptor, Document, OCI_INDEX};
use crate::source::ImageSource;
use crate::source::oci_layout::REF_NAME;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// An OCI layout being written.
pub struct OciLayoutSink {
    dir: PathBuf,
    /// For `oci-archive:`: the archive to produce from `dir` (a temp dir) on commit.
    archive: Option<(PathBuf, tempfile::TempDir)>,
    written: AtomicU64,
    index_lock: Mutex<()>,
}

impl OciLayoutSink {
    /// Opens (creating if needed) a layout directory.
    pub fn create(dir: &Path, _tmp: Option<tempfile::TempDir>) -> Result<Self, SinkError> {
        let err = |e: std::io::Error| SinkError(format!("oci:{}: {e}", dir.display()));
        std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(err)?;
        let layout = dir.join("oci-layout");
        if !layout.exists() {
            std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(err)?;
        }
        if !dir.join("index.json").exists() {
            let empty = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
            write_atomic(
                &dir.join("index.json"),
                &serde_json::to_vec(&empty).expect("json"),
            )
            .map_err(err)?;
        }
        Ok(OciLayoutSink {
            dir: dir.to_owned(),
            archive: None,
            written: AtomicU64::new(0),
            index_lock: Mutex::new(()),
        })
    }

    /// A layout built in a temporary directory beside `file`, tarred into place on commit.
    pub fn create_archive(file: &Path) -> Result<Self, SinkError> {
        let parent = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".bootseal-archive-")
            .tempdir_in(&parent)
            .map_err(|e| SinkError(format!("oci-archive:{}: {e}", file.display())))?;
        let mut sink = Self::create(tmp.path(), None)?;
        sink.archive = Some((file.to_owned(), tmp));
        Ok(sink)
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, SinkError> {
        let d = ContentDigest::parse(digest).map_err(SinkError)?;
        let alg = digest.split_once(':').map(|(a, _)| a).unwrap_or("sha256");
        Ok(self.dir.join("blobs").join(alg).join(d.hex()))
    }

    fn store(&self, desc: &Descriptor, reader: Box<dyn Read + Send>) -> Result<(), SinkError> {
        let path = self.blob_path(&desc.digest)?;
        let parent = path.parent().expect("blob dir");
        std::fs::create_dir_all(parent)?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
        let expected = ContentDigest::parse(&desc.digest).map_err(SinkError)?;
        let mut verified = VerifyingReader::new(reader, expected, "blob");
        let n = std::io::copy(&mut verified, tmp.as_file_mut())
            .map_err(|e| SinkError(format!("blob {}: {e}", desc.digest)))?;
        if n != desc.size {
            return Err(SinkError(format!(
                "blob {}: expected {} bytes, got {n}",
                desc.digest, desc.size
            )));
        }
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| SinkError(e.to_string()))?;
        self.written.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(path.parent().unwrap_or(Path::new(".")))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

impl Sink for OciLayoutSink {
    fn name(&self) -> String {
        match &self.archive {
            Some((f, _)) => format!("oci-archive:{}", f.display()),
            None => format!("oci:{}", self.dir.display()),
        }
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool, SinkError> {
        let path = self.blob_path(&desc.digest)?;
        Ok(std::fs::metadata(path).is_ok_and(|m| m.len() == desc.size))
    }

    fn copy_blob(&self, desc: &Descriptor, source: &dyn ImageSource) -> Result<(), SinkError> {
        if let Some(file) = source.verified_blob_file(desc) {
            // Verified when it was read for the digest. Blobs are content-addressed files that
            // tools replace, never edit in place, so a hard link is a safe copy and writes no
            // data; across filesystems, a kernel-side copy (a reflink where possible).
            let path = self.blob_path(&desc.digest)?;
            let parent = path.parent().expect("blob dir");
            std::fs::create_dir_all(parent)?;
            match std::fs::hard_link(&file, &path) {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists && self.has_blob(desc)? =>
                {
                    return Ok(());
                }
                Err(_) => {}
            }
            let tmp = tempfile::NamedTempFile::new_in(parent)?;
            let n = std::fs::copy(&file, tmp.path())
                .map_err(|e| SinkError(format!("blob {}: {e}", desc.digest)))?;
            if n == desc.size {
                tmp.as_file().sync_all()?;
                tmp.persist(&path).map_err(|e| SinkError(e.to_string()))?;
                self.written.fetch_add(n, Ordering::Relaxed);
                return Ok(());
            }
        }
        let reader = source
            .open_blob(desc)
            .map_err(|e| SinkError(e.to_string()))?;
        self.store(desc, reader)
    }

    fn put_blob_stream(
        &self,
        desc: &Descriptor,
        reader: Box<dyn Read + Send>,
    ) -> Result<(), SinkError> {
        self.store(desc, reader)
    }

    fn put_blob_bytes(&self, desc: &Descriptor, bytes: bytes::Bytes) -> Result<(), SinkError> {
        self.store(desc, Box::new(std::io::Cursor::new(bytes)))
    }

    fn put_manifest(&self, doc: &Document, tag: Option<&str>) -> Result<(), SinkError> {
        for blob in referenced_blobs(doc).map_err(SinkError)? {
            if !self.has_blob(&blob)? {
                return Err(SinkError(format!(
                    "refusing to write manifest {}: blob {} is missing",
                    doc.digest(),
                    blob.digest
                )));
            }
        }
        let desc = Descriptor {
            media_type: doc.media_type.clone(),
            digest: doc.digest(),
            size: doc.bytes.len() as u64,
            platform: None,
            annotations: None,
        };
        self.put_blob(&desc, &doc.bytes)?;
        let Some(tag) = tag else { return Ok(()) };
        self.update_index(&mut |manifests| {
            manifests.retain(|m| {
                m.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                    .and_then(Value::as_str)
                    != Some(tag)
            });
            manifests.push(json!({
                "mediaType": desc.media_type,
                "digest": desc.digest,
                "size": desc.size,
                "annotations": {REF_NAME: tag},
            }));
        })
    }

    fn put_referrer(&self, artifact: &Document, subject: &Descriptor) -> Result<String, SinkError> {
        if !self.has_blob(subject)? {
            return Err(SinkError(format!(
                "refusing to write referrer {}: its subject {} is missing",
                artifact.digest(),
                subject.digest
            )));
        }
        self.put_manifest(artifact, None)?;
        // An untagged index.json entry, as OCI 1.1 layouts hold referrers (image-spec
        // `image-layout.md`: index.json may list manifests without a ref name); its manifest
        // names the subject. Listed once however often it is written.
        let digest = artifact.digest();
        self.update_index(&mut |manifests| {
            if !manifests.iter().any(|m| m["digest"] == digest.as_str()) {
                let mut entry = json!({
                    "mediaType": artifact.media_type,
                    "digest": digest,
                    "size": artifact.bytes.len(),
                });
                if let Some(t) = artifact.json.get("artifactType") {
                    entry["artifactType"] = t.clone();
                }
                manifests.push(entry);
            }
        })?;
        Ok("index.json entry".into())
    }

    fn commit(&self) -> Result<(), SinkError> {
        let Some((file, tmp)) = &self.archive else {
            return Ok(());
        };
        let parent = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let out = tempfile::NamedTempFile::new_in(parent)?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(out.reopen()?));
        builder.mode(tar::HeaderMode::Deterministic);
        builder.follow_symlinks(false);
        builder.append_dir_all(".", tmp.path())?;
        builder.into_inner()?.flush()?;
        out.persist(file).map_err(|e| SinkError(e.to_string()))?;
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

impl OciLayoutSink {
    /// Read-modify-write of index.json's `manifests` under the layout's locks.
    fn update_index(&self, edit: &mut dyn FnMut(&mut Vec<Value>)) -> Result<(), SinkError> {
        let _guard = self.index_lock.lock().unwrap_or_else(|p| p.into_inner());
        // Other processes (concurrent `sync` shards into one layout) update index.json too: an
        // advisory lock on the directory makes each read-modify-write whole.
        let dir_lock = std::fs::File::open(&self.dir)?;
        rustix::fs::flock(&dir_lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| SinkError(format!("locking {}: {e}", self.dir.display())))?;
        let index_path = self.dir.join("index.json");
        let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path)?)
            .map_err(|e| SinkError(format!("index.json: {e}")))?;
        let manifests = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| SinkError("index.json has no manifests array".into()))?;
        edit(manifests);
        write_atomic(&index_path, &serde_json::to_vec(&index).expect("json"))?;
        Ok(())
    }
}
