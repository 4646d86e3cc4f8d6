//! A repository for the sync tests: several bootc tags sharing their base layers, a multi-arch
//! index and a non-bootc image, pushed to a real registry with skopeo; helpers to run
//! `bootseal sync`, read its per-tag lines, and count writes in the registry's access log.

use super::image_builder::{E, TarLayer, write_blob};
use super::registry::Registry;
use super::{KeyPair, bootc_image, bootseal, run_ok, stdout_of};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

/// Builds a bootc image whose last layer holds `extra` (empty: the three shared layers only)
/// and pushes it as `repo_tag`; returns the pushed manifest digest.
pub fn push_bootc(reg: &Registry, dir: &Path, repo_tag: &str, extra: Vec<E>) -> String {
    let (img, _, _, _) = bootc_image::layers(dir, extra);
    let layout = dir.join(format!("src-{}", repo_tag.replace([':', '/'], "-")));
    let built = img.write(&layout, "t");
    reg.push_layout(&built.oci_ref(), repo_tag);
    manifest_digest(reg, repo_tag)
}

/// An index of an amd64 and an arm64 bootc image (the arm64 one is only copied by seal).
pub fn push_multi(reg: &Registry, dir: &Path, repo_tag: &str) {
    let layout = dir.join("src-multi");
    let (amd, _, _, _) = bootc_image::layers(dir, vec![E::file("etc/multi", "amd64")]);
    let amd = amd.write(&layout, "amd64");
    let (mut arm, _, _, _) = bootc_image::layers(dir, vec![E::file("etc/multi", "arm64")]);
    arm.architecture = "arm64".into();
    let arm = arm.write(&layout, "arm64");
    let entry = |digest: &str, arch: &str| {
        let size = std::fs::metadata(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
        .len();
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
               "size": size, "platform": {"os": "linux", "architecture": arch}})
    };
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&amd.manifest_digest, "amd64"), entry(&arm.manifest_digest, "arm64")]});
    let (digest, size) = write_blob(&layout, &serde_json::to_vec(&index).unwrap());
    write_index(
        &layout,
        &digest,
        size,
        "application/vnd.oci.image.index.v1+json",
    );
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--all"])
            .args(reg.skopeo_flags("dest"))
            .arg(format!("oci:{}:multi", layout.display()))
            .arg(reg.image(repo_tag)),
    );
}

/// A small image without the bootc labels.
pub fn push_plain(reg: &Registry, dir: &Path, repo_tag: &str) {
    let layout = dir.join("src-plain");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let tar = TarLayer::with([E::dir("etc"), E::file("etc/hostname", "plain\n")]);
    let (layer, layer_size) = write_blob(&layout, &tar);
    let config = json!({"architecture": "amd64", "os": "linux",
        "config": {"Labels": {"org.example.kind": "not bootc"}},
        "rootfs": {"type": "layers", "diff_ids": [layer.clone()]}});
    let (config_digest, config_size) = write_blob(&layout, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}]});
    let (digest, size) = write_blob(&layout, &serde_json::to_vec(&manifest).unwrap());
    write_index(
        &layout,
        &digest,
        size,
        "application/vnd.oci.image.manifest.v1+json",
    );
    reg.push_layout(&format!("oci:{}:plain", layout.display()), repo_tag);
}

fn write_index(layout: &Path, digest: &str, size: u64, media_type: &str) {
    let tag = if media_type.contains("index") {
        "multi"
    } else {
        "plain"
    };
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": media_type, "digest": digest, "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
        .unwrap(),
    )
    .unwrap();
}

/// `sha256:…` of the manifest (or index) `repo_tag` names, read with skopeo.
pub fn manifest_digest(reg: &Registry, repo_tag: &str) -> String {
    use sha2::Digest;
    let raw = reg
        .raw_manifest(repo_tag)
        .unwrap_or_else(|| panic!("{repo_tag} missing"));
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(raw)))
}

/// `bootseal sync --from FROM --to TO --key --cert --tls-verify=false EXTRA…` (not asserted).
pub fn sync_cmd(from: &str, to: &str, keys: &KeyPair, extra: &[&str]) -> Command {
    let mut c = bootseal();
    c.args(["sync", "--from", from, "--to", to, "--tls-verify=false"])
        .arg("--key")
        .arg(&keys.key)
        .arg("--cert")
        .arg(&keys.cert)
        .args(extra);
    c
}

/// The `TAG: outcome…` lines of a sync's stdout, by tag.
pub fn outcomes(out: &Output) -> BTreeMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(t, o)| (t.to_owned(), o.to_owned()))
        .collect()
}

/// Requests that write (PUT, PATCH, POST) in the registry's access log after byte `from`.
pub fn writes_since(reg: &Registry, from: usize) -> Vec<String> {
    let log = std::fs::read_to_string(reg.dir.path().join("registry.out")).unwrap_or_default();
    log.get(from..)
        .unwrap_or("")
        .lines()
        .filter(|l| {
            ["\"PUT ", "\"PATCH ", "\"POST "]
                .iter()
                .any(|m| l.contains(m))
        })
        .map(str::to_owned)
        .collect()
}

/// Current length of the access log (a mark for [`writes_since`]).
pub fn access_log_len(reg: &Registry) -> usize {
    std::fs::metadata(reg.dir.path().join("registry.out"))
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

/// `bootseal verify --cert` of `image` (any transport) succeeds with the valid verdict.
pub fn assert_verifies(image: &str, keys: &KeyPair, extra: &[&str]) {
    let verdict = stdout_of(
        bootseal()
            .arg("verify")
            .args(extra)
            .arg("--cert")
            .arg(&keys.cert)
            .arg(image),
    );
    assert!(
        verdict.contains("verdict: sealed and valid"),
        "{image}: {verdict}"
    );
}
