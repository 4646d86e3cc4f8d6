//! The composefs metadata artifact (the spec's "composefs-meta-artifact" mode): an OCI image
//! manifest with `artifactType` `application/vnd.composefs.metadata.v1`, the empty config, one
//! `application/vnd.composefs.signature.v1+pkcs7` layer per signed object in the spec's order
//! (manifest, config, merged, merged.bootable), each annotated with its role's digest, and
//! `subject` the sealed image manifest; found through the OCI 1.1 referrers API or the
//! referrers tag schema (`sha256-<hex>` index, distribution-spec 1.1 "Referrers Tag Schema").

use crate::text::escape_controls;
use serde_json::{Value, json};

use super::{ARTIFACT_TYPE, Role, SIGNATURE_MEDIA_TYPE};
use crate::manifest::{Descriptor, Document, OCI_INDEX, OCI_MANIFEST, sha256_digest};

/// `application/vnd.oci.empty.v1+json` and its two bytes `{}` (image-spec 1.1 "Guidance for an
/// Empty Descriptor").
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// One signed object.
pub struct Entry {
    pub role: Role,
    pub digest_hex: String,
    pub signature: Vec<u8>,
}

/// An artifact ready to be written: its blobs (config first), then its manifest.
pub struct Artifact {
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
    pub manifest: Document,
    pub subject: Descriptor,
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: sha256_digest(bytes),
        size: bytes.len() as u64,
        platform: None,
        annotations: None,
    }
}

/// The artifact for `subject` (an image manifest) carrying `entries`, put in the spec's order.
pub fn build(subject: &Descriptor, mut entries: Vec<Entry>) -> Result<Artifact, String> {
    entries.sort_by_key(|e| e.role);
    if let Some(e) = entries.iter().find(|e| e.role == Role::Layer) {
        return Err(format!("a {} entry has no place in the artifact", e.role));
    }
    let config = descriptor(EMPTY_MEDIA_TYPE, EMPTY_CONFIG);
    let mut blobs = vec![(config.clone(), EMPTY_CONFIG.to_vec())];
    let mut layers = Vec::new();
    for e in entries {
        let d = descriptor(SIGNATURE_MEDIA_TYPE, &e.signature);
        layers.push(json!({
            "mediaType": d.media_type,
            "digest": d.digest,
            "size": d.size,
            "annotations": { e.role.digest_key(): e.digest_hex },
        }));
        blobs.push((d, e.signature));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": { "mediaType": config.media_type, "digest": config.digest, "size": config.size },
        "layers": layers,
        "subject": { "mediaType": subject.media_type, "digest": subject.digest, "size": subject.size },
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    Ok(Artifact {
        blobs,
        manifest: Document::parse(bytes, Some(OCI_MANIFEST))?,
        subject: Descriptor {
            platform: None,
            annotations: None,
            ..subject.clone()
        },
    })
}

/// A parsed artifact: its subject and, per signature layer, the role, the digest its
/// annotation claims and the layer's descriptor.
#[derive(Debug)]
pub struct Parsed {
    pub subject: String,
    pub entries: Vec<(Role, String, Descriptor)>,
}

/// Reads an artifact manifest, refusing what the spec does not allow (another artifact type,
/// a layer of another media type or without exactly one known role key, layers out of order
/// or repeated).
pub fn parse(json: &Value) -> Result<Parsed, String> {
    if json["artifactType"] != ARTIFACT_TYPE {
        return Err(format!(
            "artifactType is {}, not {ARTIFACT_TYPE}",
            json["artifactType"]
        ));
    }
    let subject = json["subject"]["digest"]
        .as_str()
        .ok_or("artifact has no subject")?
        .to_owned();
    let layers = json["layers"].as_array().ok_or("artifact has no layers")?;
    let mut entries: Vec<(Role, String, Descriptor)> = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let desc: Descriptor = serde_json::from_value(layer.clone())
            .map_err(|e| format!("artifact layer {i}: {}", escape_controls(&e.to_string())))?;
        if desc.media_type != SIGNATURE_MEDIA_TYPE {
            // Input text in a one-line error: control characters escaped (fuzz: manifest_json).
            return Err(format!(
                "artifact layer {i} is a {}",
                escape_controls(&desc.media_type)
            ));
        }
        let ann = desc.annotations.clone().unwrap_or_default();
        let roles: Vec<(Role, String)> = ann
            .iter()
            .filter_map(|(k, v)| match Role::parse_key(k) {
                Some((role, false)) => Some((role, v.as_str().unwrap_or_default().to_owned())),
                _ => None,
            })
            .collect();
        let [(role, digest)] = roles.as_slice() else {
            return Err(format!(
                "artifact layer {i} names {} composefs digests, not one",
                roles.len()
            ));
        };
        if role == &Role::Layer {
            return Err(format!("artifact layer {i} is a layer digest"));
        }
        if entries.last().is_some_and(|(prev, _, _)| prev >= role) {
            return Err(format!(
                "artifact layer {i} ({role}) is out of the spec's order (manifest, config, \
                 merged, merged.bootable)"
            ));
        }
        entries.push((*role, digest.clone(), desc));
    }
    Ok(Parsed { subject, entries })
}

/// The referrers tag schema's tag for `subject` (`sha256:<hex>` → `sha256-<hex>`).
pub fn referrers_tag(subject: &str) -> String {
    subject.replacen(':', "-", 1)
}

/// The referrers index `existing` (None: a new one) with `artifact` listed once.
pub fn index_with(existing: Option<&[u8]>, artifact: &Document) -> Result<Vec<u8>, String> {
    let mut index = match existing {
        Some(bytes) => serde_json::from_slice::<Value>(bytes)
            .map_err(|e| format!("referrers index is not JSON: {e}"))?,
        None => json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [] }),
    };
    let digest = artifact.digest();
    let manifests = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or("referrers index has no manifests")?;
    if !manifests.iter().any(|m| m["digest"] == digest.as_str()) {
        let mut entry = json!({
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": artifact.bytes.len(),
        });
        if let Some(t) = artifact.json.get("artifactType") {
            entry["artifactType"] = t.clone();
        }
        manifests.push(entry);
    }
    serde_json::to_vec(&index).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(role: Role) -> Entry {
        Entry {
            role,
            digest_hex: "ab".repeat(64),
            signature: vec![role as u8; 8],
        }
    }

    #[test]
    fn layers_follow_the_specs_order_and_parse_back() {
        let subject = descriptor(OCI_MANIFEST, b"{\"x\":1}");
        let a = build(
            &subject,
            vec![
                entry(Role::MergedBootable),
                entry(Role::Config),
                entry(Role::Manifest),
                entry(Role::Merged),
            ],
        )
        .unwrap();
        let p = parse(&a.manifest.json).unwrap();
        assert_eq!(p.subject, subject.digest);
        let roles: Vec<Role> = p.entries.iter().map(|e| e.0).collect();
        assert_eq!(
            roles,
            [
                Role::Manifest,
                Role::Config,
                Role::Merged,
                Role::MergedBootable
            ]
        );
        assert_eq!(a.blobs[0].1, b"{}");
        assert_eq!(
            a.blobs[0].0.digest,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let mut swapped = a.manifest.json.clone();
        swapped["layers"].as_array_mut().unwrap().swap(0, 1);
        assert!(
            parse(&swapped)
                .unwrap_err()
                .contains("out of the spec's order")
        );
    }

    #[test]
    fn the_referrers_index_lists_an_artifact_once() {
        let subject = descriptor(OCI_MANIFEST, b"{}");
        let a = build(&subject, vec![entry(Role::Merged)]).unwrap();
        let once = index_with(None, &a.manifest).unwrap();
        let twice = index_with(Some(&once), &a.manifest).unwrap();
        assert_eq!(once, twice);
        let v: Value = serde_json::from_slice(&twice).unwrap();
        assert_eq!(v["manifests"][0]["artifactType"], ARTIFACT_TYPE);
        assert_eq!(referrers_tag("sha256:abc"), "sha256-abc");
    }
}
