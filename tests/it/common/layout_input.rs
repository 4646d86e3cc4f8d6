//! Test-side adapter from an OCI layout directory to `bootseal::digest::LayerInput`s.
//!
//! Stands in for the project's OCI-layout source while it is written elsewhere: it reads
//! `index.json`, the tagged manifest and the config, and opens every layer blob behind a
//! `VerifyingReader` that checks the blob digest, as the real sources must.

use std::fs;
use std::io::Read;
use std::path::Path;

use bootseal::content_digest::{ContentDigest, VerifyingReader};
use bootseal::digest::LayerInput;

fn blob_path(dir: &Path, digest: &str) -> std::path::PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    dir.join("blobs").join(alg).join(hex)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The layers of image `tag` in `dir`, in `diff_ids` order.
pub fn layer_inputs(dir: &Path, tag: &str) -> Vec<LayerInput> {
    let index = read_json(&dir.join("index.json"));
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("tag {tag} not in {}", dir.display()));
    let manifest = read_json(&blob_path(dir, desc["digest"].as_str().unwrap()));
    let config = read_json(&blob_path(
        dir,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            let digest = layer["digest"].as_str().unwrap().to_string();
            let path = blob_path(dir, &digest);
            let expected = ContentDigest::parse(&digest).unwrap();
            LayerInput {
                digest,
                media_type: layer["mediaType"].as_str().unwrap().to_string(),
                diff_id: diff_id.as_str().unwrap().to_string(),
                open: Box::new(move || {
                    let file = fs::File::open(&path)?;
                    Ok(Box::new(VerifyingReader::new(file, expected, "blob"))
                        as Box<dyn Read + Send>)
                }),
            }
        })
        .collect()
}
