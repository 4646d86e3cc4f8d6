//! Edits that turn an image into its sealed successor, as pure functions over the JSON values
//! of config, manifest and index (the model is go-containerregistry's `mutate`): unknown fields
//! and key order survive, the manifest family (OCI or Docker schema2) is kept.

use crate::layer_writer::LayerCompression;
use crate::manifest::{
    DOCKER_LAYER_GZIP, DOCKER_MANIFEST, Descriptor, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use serde_json::{Map, Value, json};

/// The layer media type for a manifest of `manifest_media_type` and a compression; Docker
/// schema2 has no zstd layer type.
pub fn layer_media_type(
    manifest_media_type: &str,
    compression: LayerCompression,
) -> Result<&'static str, String> {
    match (manifest_media_type, compression) {
        (OCI_MANIFEST, LayerCompression::Gzip) => Ok(OCI_LAYER_GZIP),
        (OCI_MANIFEST, LayerCompression::Zstd) => Ok(OCI_LAYER_ZSTD),
        (OCI_MANIFEST, LayerCompression::None) => Ok(crate::manifest::OCI_LAYER_TAR),
        (DOCKER_MANIFEST, LayerCompression::Gzip) => Ok(DOCKER_LAYER_GZIP),
        // containers/image's DockerV2SchemaLayerMediaTypeUncompressed.
        (DOCKER_MANIFEST, LayerCompression::None) => {
            Ok("application/vnd.docker.image.rootfs.diff.tar")
        }
        (DOCKER_MANIFEST, LayerCompression::Zstd) => Err(
            "a Docker schema2 manifest cannot carry a zstd layer; use --layer-compression gzip"
                .into(),
        ),
        (other, _) => Err(format!("cannot add a layer to a manifest of type {other}")),
    }
}

/// The config history entry for the new layer.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    pub created: String,
    pub created_by: String,
    pub comment: String,
}

/// The config with `diff_id` appended to `rootfs.diff_ids`, a history entry appended, and
/// `labels` set in `config.Labels` (created when missing).
pub fn config_with_layer(
    config: &Value,
    diff_id: &str,
    history: &HistoryEntry,
    labels: &[(String, String)],
) -> Result<Value, String> {
    let mut c = config.clone();
    let obj = c
        .as_object_mut()
        .ok_or("image config is not a JSON object")?;
    let rootfs = obj
        .get_mut("rootfs")
        .and_then(Value::as_object_mut)
        .ok_or("image config has no rootfs object")?;
    rootfs
        .get_mut("diff_ids")
        .and_then(Value::as_array_mut)
        .ok_or("image config has no rootfs.diff_ids")?
        .push(Value::String(diff_id.into()));
    let history_list = obj
        .entry("history")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or("image config history is not an array")?;
    history_list.push(json!({
        "created": history.created,
        "created_by": history.created_by,
        "comment": history.comment,
    }));
    if !labels.is_empty() {
        let inner = obj
            .entry("config")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or("image config's config is not an object")?;
        let label_map = inner
            .entry("Labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if label_map.is_null() {
            *label_map = Value::Object(Map::new());
        }
        let label_map = label_map
            .as_object_mut()
            .ok_or("image config's Labels is not an object")?;
        for (k, v) in labels {
            label_map.insert(k.clone(), Value::String(v.clone()));
        }
    }
    Ok(c)
}

/// The manifest with a new config descriptor, `layer` appended, and (OCI only, Docker schema2
/// has no annotations) `annotations` set.
pub fn manifest_with_layer(
    manifest: &Value,
    config: &Descriptor,
    layer: &Descriptor,
    annotations: &[(String, String)],
) -> Result<Value, String> {
    let mut m = manifest.clone();
    let is_docker = m.get("mediaType").and_then(Value::as_str) == Some(DOCKER_MANIFEST);
    let obj = m.as_object_mut().ok_or("manifest is not a JSON object")?;
    let cfg = obj
        .get_mut("config")
        .and_then(Value::as_object_mut)
        .ok_or("manifest has no config")?;
    cfg.insert("mediaType".into(), json!(config.media_type));
    cfg.insert("digest".into(), json!(config.digest));
    cfg.insert("size".into(), json!(config.size));
    obj.get_mut("layers")
        .and_then(Value::as_array_mut)
        .ok_or("manifest has no layers")?
        .push(json!({"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}));
    if !is_docker && !annotations.is_empty() {
        let ann = obj
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or("manifest annotations is not an object")?;
        for (k, v) in annotations {
            ann.insert(k.clone(), Value::String(v.clone()));
        }
    }
    Ok(m)
}

/// The index with the entry whose digest is `old` pointing at `new` instead (platform and
/// annotations kept).
pub fn index_with_replaced(index: &Value, old: &str, new: &Descriptor) -> Result<Value, String> {
    let mut i = index.clone();
    let entries = i
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or("index has no manifests")?;
    let entry = entries
        .iter_mut()
        .find(|e| e.get("digest").and_then(Value::as_str) == Some(old))
        .ok_or_else(|| format!("index has no entry {old}"))?;
    entry["mediaType"] = json!(new.media_type);
    entry["digest"] = json!(new.digest);
    entry["size"] = json!(new.size);
    Ok(i)
}

/// RFC 3339 UTC time for a Unix time (history `created`), without a date library.
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_order_survive() {
        let config: Value = serde_json::from_str(
            r#"{"zz":1,"architecture":"amd64","os":"linux","config":{"Labels":{"a":"b"},"X":2},
                "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created_by":"x"}],"aa":3}"#,
        )
        .unwrap();
        let h = HistoryEntry {
            created: rfc3339(1_700_000_000),
            created_by: "bootseal seal".into(),
            comment: "c".into(),
        };
        let out = config_with_layer(
            &config,
            "sha256:bb",
            &h,
            &[("containers.bootc".into(), "sealed".into())],
        )
        .unwrap();
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "zz",
                "architecture",
                "os",
                "config",
                "rootfs",
                "history",
                "aa"
            ]
        );
        assert_eq!(out["rootfs"]["diff_ids"], json!(["sha256:aa", "sha256:bb"]));
        assert_eq!(
            out["config"]["Labels"],
            json!({"a":"b","containers.bootc":"sealed"})
        );
        assert_eq!(out["config"]["X"], 2);
        assert_eq!(out["history"][1]["created"], "2023-11-14T22:13:20Z");
        assert_eq!(out["history"][0], json!({"created_by":"x"}));
    }

    #[test]
    fn manifest_family_is_kept() {
        let layer = Descriptor {
            media_type: OCI_LAYER_GZIP.into(),
            digest: "sha256:cc".into(),
            size: 3,
            platform: None,
            annotations: None,
        };
        let cfg = Descriptor {
            media_type: "x".into(),
            digest: "sha256:dd".into(),
            size: 9,
            platform: None,
            annotations: None,
        };
        let m = json!({"schemaVersion":2,"mediaType":DOCKER_MANIFEST,"config":{"mediaType":"x","digest":"sha256:00","size":1},"layers":[]});
        let out = manifest_with_layer(&m, &cfg, &layer, &[("k".into(), "v".into())]).unwrap();
        assert!(out.get("annotations").is_none());
        assert_eq!(out["config"]["digest"], "sha256:dd");
        assert_eq!(out["layers"][0]["digest"], "sha256:cc");
        assert!(layer_media_type(DOCKER_MANIFEST, LayerCompression::Zstd).is_err());
        assert_eq!(
            layer_media_type(OCI_MANIFEST, LayerCompression::Zstd).unwrap(),
            OCI_LAYER_ZSTD
        );
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
