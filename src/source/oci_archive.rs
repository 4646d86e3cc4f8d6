//! Reading an `oci-archive:` file: a tar of an OCI image layout. The tar is indexed once (name
//! → offset, size) and blobs are read in place by seeking, never extracted.

use super::oci_layout::root_from_index;
use super::{ImageSource, SourceError};
use crate::manifest::{Descriptor, Document};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// An image inside a tar archive of an OCI layout.
pub struct OciArchiveSource {
    file: PathBuf,
    tag: Option<String>,
    name: String,
    /// Member path (without leading `./`) → (data offset, size).
    members: HashMap<String, (u64, u64)>,
}

impl OciArchiveSource {
    pub fn open(file: &Path, tag: Option<&str>) -> Result<Self, SourceError> {
        let name = match tag {
            Some(t) => format!("oci-archive:{}:{t}", file.display()),
            None => format!("oci-archive:{}", file.display()),
        };
        let err = |m: String| SourceError::new(&name, m);
        let f = File::open(file).map_err(|e| err(e.to_string()))?;
        let mut archive = tar::Archive::new(BufReader::new(f));
        let mut members = HashMap::new();
        for entry in archive
            .entries()
            .map_err(|e| err(format!("reading tar: {e}")))?
        {
            let entry = entry.map_err(|e| err(format!("reading tar: {e}")))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(|e| err(format!("reading tar: {e}")))?;
            let key = path.to_string_lossy().trim_start_matches("./").to_owned();
            members.insert(key, (entry.raw_file_position(), entry.size()));
        }
        if !members.contains_key("oci-layout") {
            return Err(err("not an OCI archive (no oci-layout member)".into()));
        }
        Ok(OciArchiveSource {
            file: file.to_owned(),
            tag: tag.map(str::to_owned),
            name,
            members,
        })
    }

    fn open_member(&self, member: &str) -> Result<impl Read + Send + use<>, SourceError> {
        let err = |m: String| SourceError::new(&self.name, m);
        let &(offset, size) = self
            .members
            .get(member)
            .ok_or_else(|| err(format!("archive has no member {member}")))?;
        let mut f = File::open(&self.file).map_err(|e| err(e.to_string()))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| err(e.to_string()))?;
        Ok(BufReader::with_capacity(1 << 20, f).take(size))
    }
}

impl ImageSource for OciArchiveSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn root_manifest(&self) -> Result<Document, SourceError> {
        let err = |m: String| SourceError::new(&self.name, m);
        let mut bytes = Vec::new();
        self.open_member("index.json")?
            .read_to_end(&mut bytes)
            .map_err(|e| err(e.to_string()))?;
        root_from_index(self, bytes, self.tag.as_deref())
    }

    fn referrers(
        &self,
        subject: &str,
        artifact_type: &str,
    ) -> Result<(Vec<Descriptor>, String), SourceError> {
        let err = |m: String| SourceError::new(&self.name, m);
        let mut bytes = Vec::new();
        self.open_member("index.json")?
            .read_to_end(&mut bytes)
            .map_err(|e| err(e.to_string()))?;
        let mut found = Vec::new();
        for desc in super::entries_of_type(&bytes, artifact_type).map_err(err)? {
            if self.manifest(&desc)?.json["subject"]["digest"] == subject {
                found.push(desc);
            }
        }
        Ok((found, "index.json".into()))
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>, SourceError> {
        let member = format!("blobs/{}", desc.digest.replacen(':', "/", 1));
        super::verified(self.open_member(&member)?, desc)
            .map_err(|m| SourceError::new(self.name(), m))
    }
}
