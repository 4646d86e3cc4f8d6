//! Edits that turn an image into its sealed successor, as pure functions over the JSON values
//! of config, manifest and index (the model is go-containerregistry's `mutate`): unknown fields
//! and key order survive, the manifest family (OCI or Docker schema2) is kept.

use crate::manifest::{DOCKER_MANIFEST, Descriptor, sha256_digest};
use serde_json::{Map, Value, json};

/// An image made from a base by appending one layer: the new layer's blob, the edited config
/// and manifest, and the base's layers it still names. A value; writing it (base blobs first,
/// manifest last) is the sink's job ([`crate::sink::write_image`]).
#[derive(Clone, Debug)]
pub struct NewImage {
    /// The base's layers, present in the source: mounted or copied.
    pub base_layers: Vec<Descriptor>,
    pub layer: Descriptor,
    /// The new layer's compressed blob, as uploaded.
    pub layer_blob: bytes::Bytes,
    pub config: Descriptor,
    pub config_bytes: Vec<u8>,
    /// The manifest's descriptor (with the base's platform) and exact bytes.
    pub manifest: Descriptor,
    pub manifest_bytes: Vec<u8>,
}

impl NewImage {
    /// The new manifest as a document (exact bytes).
    pub fn manifest_document(&self) -> Result<crate::manifest::Document, String> {
        crate::manifest::Document::parse(
            self.manifest_bytes.clone(),
            Some(&self.manifest.media_type),
        )
    }
}

/// What changes besides the layer: the new history entry, labels and manifest annotations.
pub struct Edits<'a> {
    pub history: &'a HistoryEntry,
    pub labels: &'a [(String, String)],
    pub annotations: &'a [(String, String)],
    /// The config descriptor's annotations, from the new config's exact bytes (composefs
    /// metadata: its fs-verity digest); OCI manifests only.
    pub config_annotations: &'a ConfigAnnotations<'a>,
    /// Annotations for layer `i` of the new manifest (the base's, then the new one), set on
    /// its descriptor; shorter than the layers: the rest get none. OCI manifests only.
    pub layer_annotations: &'a [Vec<(String, String)>],
}

/// The config descriptor's annotations for the config's exact bytes.
pub type ConfigAnnotations<'a> = dyn Fn(&[u8]) -> Result<Vec<(String, String)>, String> + 'a;

/// Keys of the composefs sealing metadata (composefs-oci 0.9.0 `sealing_spec.rs`): a base's
/// values describe the base, not its sealed successor, so they are not carried over.
const COMPOSEFS_PREFIX: &str = "composefs.";

fn annotation_map(pairs: &[(String, String)]) -> Option<Map<String, Value>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    })
}

/// `base` with `layer` (whose uncompressed digest is `diff_id`) appended: the pure edit of
/// go-containerregistry's `mutate.Append` + `mutate.Config`, over the base's own JSON so
/// unknown fields and key order survive.
pub fn append_layer(
    base: &crate::source::ResolvedImage,
    layer: Descriptor,
    layer_blob: bytes::Bytes,
    diff_id: &str,
    edits: &Edits,
) -> Result<NewImage, String> {
    let config = config_with_layer(&base.config, diff_id, edits.history, edits.labels)?;
    let config_bytes = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let is_docker = base.manifest.media_type == DOCKER_MANIFEST;
    let config_descriptor = Descriptor {
        media_type: base.config_descriptor.media_type.clone(),
        digest: sha256_digest(&config_bytes),
        size: config_bytes.len() as u64,
        platform: None,
        annotations: match is_docker {
            true => None,
            false => annotation_map(&(edits.config_annotations)(&config_bytes)?),
        },
    };
    let base_count = base.layers.len();
    let mut layer = layer;
    if let Some(own) = edits.layer_annotations.get(base_count) {
        layer.annotations = annotation_map(own);
    }
    let mut manifest = manifest_with_layer(
        &base.manifest.json,
        &config_descriptor,
        &layer,
        edits.annotations,
    )?;
    if !is_docker {
        annotate_layers(
            &mut manifest,
            &edits.layer_annotations[..base_count.min(edits.layer_annotations.len())],
        )?;
    }
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let manifest_descriptor = Descriptor {
        media_type: base.manifest.media_type.clone(),
        digest: sha256_digest(&manifest_bytes),
        size: manifest_bytes.len() as u64,
        platform: Some(base.platform.clone()),
        annotations: None,
    };
    Ok(NewImage {
        base_layers: base.layers.clone(),
        layer,
        layer_blob,
        config: config_descriptor,
        config_bytes,
        manifest: manifest_descriptor,
        manifest_bytes,
    })
}

/// The config history entry for the new layer.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    pub created: String,
    pub created_by: String,
    pub comment: String,
}

/// The config with `diff_id` appended to `rootfs.diff_ids`, a history entry appended, `created`
/// set to the history entry's date, and `labels` set in `config.Labels` (created when missing).
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
    obj.insert("created".into(), json!(history.created));
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

/// Sets `annotations[i]` on the manifest's layer `i` (added to any it has).
fn annotate_layers(
    manifest: &mut Value,
    annotations: &[Vec<(String, String)>],
) -> Result<(), String> {
    let layers = manifest
        .get_mut("layers")
        .and_then(Value::as_array_mut)
        .ok_or("manifest has no layers")?;
    for (layer, pairs) in layers.iter_mut().zip(annotations) {
        if pairs.is_empty() {
            continue;
        }
        let ann = layer
            .as_object_mut()
            .ok_or("manifest layer is not a JSON object")?
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or("manifest layer annotations is not an object")?;
        for (k, v) in pairs {
            ann.insert(k.clone(), Value::String(v.clone()));
        }
    }
    Ok(())
}

/// Drops the composefs sealing keys from an annotations object (and the object when that
/// empties it).
fn drop_composefs_keys(obj: &mut Map<String, Value>) {
    if let Some(Value::Object(ann)) = obj.get_mut("annotations") {
        ann.retain(|k, _| !k.starts_with(COMPOSEFS_PREFIX));
        if ann.is_empty() {
            obj.remove("annotations");
        }
    }
}

/// The manifest with a new config descriptor (with its annotations), `layer` appended (with
/// its annotations), and (OCI only, Docker schema2 has no annotations) `annotations` set. The
/// base's composefs sealing annotations of the manifest and config are dropped: they describe
/// the base (its layers' own stay, a layer does not change by being built upon).
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
    drop_composefs_keys(cfg);
    if let (Some(ann), false) = (&config.annotations, is_docker) {
        let cfg_ann = cfg
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or("manifest config annotations is not an object")?;
        cfg_ann.extend(ann.clone());
    }
    let mut new_layer =
        json!({"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size});
    if let (Some(ann), false) = (&layer.annotations, is_docker) {
        new_layer["annotations"] = Value::Object(ann.clone());
    }
    obj.get_mut("layers")
        .and_then(Value::as_array_mut)
        .ok_or("manifest has no layers")?
        .push(new_layer);
    drop_composefs_keys(obj);
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

/// The date a sealed image carries: as written (RFC 3339) and in whole Unix seconds (the new
/// layer's mtimes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageDate {
    pub text: String,
    pub unix: u64,
}

impl ImageDate {
    /// The date of a Unix time (`SOURCE_DATE_EPOCH`).
    pub fn from_unix(unix: u64) -> Self {
        ImageDate {
            text: rfc3339(unix),
            unix,
        }
    }
}

/// The base image's own date, a deterministic default for its sealed successor: the config's
/// `created`, else the newest `created` of its history; None when neither is a valid RFC 3339
/// time at or after 1970. The text is kept as the base wrote it (sub-second digits and all).
pub fn base_date(config: &Value) -> Option<ImageDate> {
    let dated = |v: &Value| {
        let text = v.get("created")?.as_str()?;
        Some(ImageDate {
            text: text.to_owned(),
            unix: parse_rfc3339(text)?,
        })
    };
    dated(config).or_else(|| {
        config
            .get("history")?
            .as_array()?
            .iter()
            .filter_map(dated)
            .max_by_key(|d| d.unix)
    })
}

/// Whole Unix seconds of an RFC 3339 time (`2024-05-06T07:08:09.123Z`, `…+02:00`); None when
/// malformed or before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if sep(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && sep(i + 3, b":") => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let days = crate::civil_time::days_from_civil(y, mo, d);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + sec - offset).ok()
}

/// RFC 3339 UTC time for a Unix time (history `created`), without a date library.
pub fn rfc3339(unix: u64) -> String {
    let c = crate::civil_time::Civil::from_unix(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::OCI_LAYER_GZIP;

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
                "aa",
                "created"
            ]
        );
        assert_eq!(out["rootfs"]["diff_ids"], json!(["sha256:aa", "sha256:bb"]));
        assert_eq!(
            out["config"]["Labels"],
            json!({"a":"b","containers.bootc":"sealed"})
        );
        assert_eq!(out["config"]["X"], 2);
        assert_eq!(out["history"][1]["created"], "2023-11-14T22:13:20Z");
        assert_eq!(out["created"], "2023-11-14T22:13:20Z");
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
    }

    #[test]
    fn base_date_prefers_created_then_newest_history() {
        let c = json!({"created": "2024-05-06T07:08:09.123456789Z",
                       "history": [{"created": "2025-01-01T00:00:00Z"}]});
        assert_eq!(
            base_date(&c),
            Some(ImageDate {
                text: "2024-05-06T07:08:09.123456789Z".into(),
                unix: 1_714_979_289
            })
        );
        let c = json!({"created": "yesterday", "history": [
            {"created": "2023-11-14T22:13:20Z"}, {"created_by": "no date"},
            {"created": "2023-11-15T00:13:20+02:00"}, {"created": "2023-11-14T00:00:00Z"}]});
        assert_eq!(base_date(&c).unwrap().text, "2023-11-15T00:13:20+02:00");
        assert_eq!(base_date(&c).unwrap().unix, 1_700_000_000);
        assert_eq!(base_date(&json!({"history": [{"created": 5}]})), None);
        assert_eq!(base_date(&json!({"created": "1969-12-31T23:59:59Z"})), None);
    }

    #[test]
    fn parse_rfc3339_round_trips_and_refuses_malformed() {
        for t in [0u64, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00.5-01:30"),
            Some(951_787_800)
        );
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0200",
            "2023-11-14T22:13:20Zjunk",
            "+023-11-14T22:13:20Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
