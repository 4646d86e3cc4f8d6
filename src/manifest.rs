//! The OCI / Docker schema2 data model: media types, descriptors, platforms, and the JSON
//! documents (manifest, index, config) kept as raw bytes plus a `serde_json::Value` so unknown
//! fields and key order survive edits (OCI image-spec v1.1, Docker image manifest v2 schema 2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Every manifest media type we send in `Accept` and understand.
pub const MANIFEST_TYPES: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// A content descriptor (OCI image-spec `descriptor.md`); extra fields are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, Value>>,
}

/// An OS/architecture pair (with optional variant) as used in image indexes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`, e.g. `linux/amd64`, `linux/arm64/v8`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = s.split('/');
        let (Some(os), Some(arch)) = (parts.next(), parts.next()) else {
            return Err(format!(
                "invalid platform {s:?}: expected OS/ARCH[/VARIANT]"
            ));
        };
        let variant = parts.next().map(str::to_owned);
        if os.is_empty() || arch.is_empty() || parts.next().is_some() {
            return Err(format!(
                "invalid platform {s:?}: expected OS/ARCH[/VARIANT]"
            ));
        }
        Ok(Platform {
            os: os.into(),
            architecture: arch.into(),
            variant,
        })
    }

    /// Whether an index entry's platform satisfies this request. A requested variant must
    /// match; `arm64` treats a missing variant as `v8` (containerd's platform normalisation).
    pub fn matches(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", None) => Some("v8".to_owned()),
            (_, v) => v.map(str::to_owned),
        };
        match &self.variant {
            None => true,
            Some(_) => norm(self) == norm(other),
        }
    }
}

/// `os/arch[/variant]`, control characters escaped: an index names its platforms freely.
impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::text::escape_controls;
        write!(
            f,
            "{}/{}",
            escape_controls(&self.os),
            escape_controls(&self.architecture)
        )?;
        if let Some(v) = &self.variant {
            write!(f, "/{}", escape_controls(v))?;
        }
        Ok(())
    }
}

/// What a manifest document is, decided from `mediaType` or, when absent (allowed by OCI),
/// from its shape: `manifests` means an index, `config` + `layers` an image manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentKind {
    Index,
    Image,
}

/// Computes `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A parsed manifest or index, with its exact bytes (their digest is the image's identity).
#[derive(Clone, Debug)]
pub struct Document {
    pub bytes: Vec<u8>,
    pub json: Value,
    pub kind: DocumentKind,
    pub media_type: String,
}

impl Document {
    pub fn parse(bytes: Vec<u8>, content_type: Option<&str>) -> Result<Self, String> {
        let json: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("manifest is not JSON: {e}"))?;
        if json.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
            return Err("unsupported manifest: schemaVersion is not 2".into());
        }
        let declared = json
            .get("mediaType")
            .and_then(Value::as_str)
            .or(content_type.filter(|c| MANIFEST_TYPES.contains(c)));
        let kind = match declared {
            Some(OCI_INDEX | DOCKER_LIST) => DocumentKind::Index,
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => DocumentKind::Image,
            Some(other) => return Err(format!("unknown manifest media type {other:?}")),
            None if json.get("manifests").is_some() => DocumentKind::Index,
            None if json.get("config").is_some() && json.get("layers").is_some() => {
                DocumentKind::Image
            }
            None => return Err("manifest is neither an image manifest nor an index".into()),
        };
        let media_type = declared.map(str::to_owned).unwrap_or_else(|| match kind {
            DocumentKind::Index => OCI_INDEX.into(),
            DocumentKind::Image => OCI_MANIFEST.into(),
        });
        Ok(Document {
            bytes,
            json,
            kind,
            media_type,
        })
    }

    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes)
    }

    /// The entries of an index.
    pub fn index_entries(&self) -> Result<Vec<Descriptor>, String> {
        serde_json::from_value(self.json.get("manifests").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("invalid index: {e}"))
    }

    /// Picks the index entry for `platform`, or explains which platforms exist.
    pub fn select_platform(&self, platform: &Platform) -> Result<Descriptor, String> {
        let entries = self.index_entries()?;
        let found = entries.iter().find(|d| {
            d.platform.as_ref().is_some_and(|p| platform.matches(p))
                && MANIFEST_TYPES.contains(&d.media_type.as_str())
        });
        match found {
            Some(d) => Ok(d.clone()),
            None => {
                let have: Vec<String> = entries
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                    .collect();
                Err(format!(
                    "index has no manifest for platform {platform} (it has: {})",
                    if have.is_empty() {
                        "none".into()
                    } else {
                        have.join(", ")
                    }
                ))
            }
        }
    }

    /// The config descriptor of an image manifest.
    pub fn config(&self) -> Result<Descriptor, String> {
        serde_json::from_value(self.json.get("config").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("invalid manifest config descriptor: {e}"))
    }

    /// The layer descriptors of an image manifest, bottom first.
    pub fn layers(&self) -> Result<Vec<Descriptor>, String> {
        serde_json::from_value(self.json.get("layers").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("invalid manifest layers: {e}"))
    }
}

/// The `rootfs.diff_ids` of an image config, bottom first.
pub fn config_diff_ids(config: &Value) -> Result<Vec<String>, String> {
    let ids = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .ok_or("image config has no rootfs.diff_ids")?;
    ids.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| "rootfs.diff_ids holds a non-string".to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_from_shape_when_media_type_missing() {
        let idx = br#"{"schemaVersion":2,"manifests":[]}"#.to_vec();
        assert_eq!(
            Document::parse(idx, None).unwrap().kind,
            DocumentKind::Index
        );
        let img = br#"{"schemaVersion":2,"config":{},"layers":[]}"#.to_vec();
        assert_eq!(
            Document::parse(img, None).unwrap().kind,
            DocumentKind::Image
        );
        let bad = br#"{"schemaVersion":2,"mediaType":"text/plain"}"#.to_vec();
        assert!(
            Document::parse(bad, None)
                .unwrap_err()
                .contains("text/plain")
        );
    }

    #[test]
    fn platform_selection_names_what_exists() {
        let idx = serde_json::json!({"schemaVersion":2,"mediaType":OCI_INDEX,"manifests":[
            {"mediaType":OCI_MANIFEST,"digest":"sha256:aa","size":1,"platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":OCI_MANIFEST,"digest":"sha256:bb","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]});
        let doc = Document::parse(serde_json::to_vec(&idx).unwrap(), None).unwrap();
        let arm = Platform::parse("linux/arm64").unwrap();
        assert_eq!(doc.select_platform(&arm).unwrap().digest, "sha256:bb");
        let arm_v8 = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(doc.select_platform(&arm_v8).unwrap().digest, "sha256:bb");
        let err = doc
            .select_platform(&Platform::parse("linux/s390x").unwrap())
            .unwrap_err();
        assert_eq!(
            err,
            "index has no manifest for platform linux/s390x (it has: linux/amd64, linux/arm64/v8)"
        );
    }
}
