//! The sealed image is dated like its base (config `created`, the new history entry and the new
//! layer's mtimes) unless SOURCE_DATE_EPOCH says otherwise, stays reproducible either way, and
//! carries the image-spec's base annotations: `base.digest` always, `base.name` only for a
//! registry source.

use crate::common;

use common::image_builder::BuiltImage;
use common::registry::{Registry, Variant};
use common::{bootc_image, bootseal, keypair, run_ok, scratch, seal_cmd};
use serde_json::{Value, json};
use std::path::Path;

const BASE_CREATED: &str = "2024-05-06T07:08:09.123456789Z";
/// BASE_CREATED in whole Unix seconds (date -d 2024-05-06T07:08:09Z +%s).
const BASE_UNIX: u64 = 1_714_979_289;

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

fn json_blob(dir: &Path, digest: &str) -> Value {
    serde_json::from_slice(&blob(dir, digest)).unwrap()
}

/// Rewrites the config of a one-image layout with `edit` (new config, manifest and index).
fn edit_config(image: &BuiltImage, edit: impl FnOnce(&mut Value)) -> BuiltImage {
    use common::image_builder::write_blob;
    let dir = &image.dir;
    let mut config = json_blob(dir, &image.config_digest);
    edit(&mut config);
    let (config_digest, config_size) = write_blob(dir, &serde_json::to_vec(&config).unwrap());
    let mut manifest = json_blob(dir, &image.manifest_digest);
    manifest["config"]["digest"] = json!(config_digest);
    manifest["config"]["size"] = json!(config_size);
    let (manifest_digest, manifest_size) = write_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"] = json!(manifest_digest);
    index["manifests"][0]["size"] = json!(manifest_size);
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    BuiltImage::load(dir, &image.tag)
}

/// Config and manifest of a sealed layout image, and the mtimes of its new layer's entries.
struct Sealed {
    manifest_digest: String,
    config: Value,
    manifest: Value,
    layer_mtimes: Vec<u64>,
}

fn read_sealed(dir: &Path, tag: &str) -> Sealed {
    let image = BuiltImage::load(dir, tag);
    // The new layer's compression follows its media type (zstd by default for OCI images).
    let (tar_bytes, _) = common::image_builder::layer_tar(image.layers.last().unwrap());
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let layer_mtimes = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().header().mtime().unwrap())
        .collect();
    Sealed {
        manifest: json_blob(dir, &image.manifest_digest),
        config: json_blob(dir, &image.config_digest),
        manifest_digest: image.manifest_digest,
        layer_mtimes,
    }
}

fn last_history_created(config: &Value) -> &Value {
    &config["history"].as_array().unwrap().last().unwrap()["created"]
}

#[test]
fn sealed_image_is_dated_like_its_base_unless_source_date_epoch() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let base = edit_config(&built.image, |c| {
        c["created"] = json!(BASE_CREATED);
        for (i, h) in c["history"].as_array_mut().unwrap().iter_mut().enumerate() {
            h["created"] = json!(format!("2024-05-0{}T00:00:00Z", i + 1));
        }
    });
    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    let seal = |tag: &str, epoch: Option<&str>| {
        let mut c = seal_cmd(
            &base.oci_ref(),
            &format!("oci:{}:{tag}", out.display()),
            &keys,
        );
        match epoch {
            Some(e) => c.env("SOURCE_DATE_EPOCH", e),
            None => c.env_remove("SOURCE_DATE_EPOCH"),
        };
        run_ok(&mut c);
        read_sealed(&out, tag)
    };

    // No SOURCE_DATE_EPOCH: the base's own date, verbatim, and its whole seconds on the layer.
    let dated = seal("dated", None);
    assert_eq!(dated.config["created"], BASE_CREATED);
    assert_eq!(last_history_created(&dated.config), BASE_CREATED);
    // boot/, boot/<kver>.dump, boot/EFI/, boot/EFI/Linux/, the UKI, systemd-boot, 2 whiteouts
    assert_eq!(dated.layer_mtimes.len(), 8);
    assert!(
        dated.layer_mtimes.iter().all(|m| *m == BASE_UNIX),
        "{:?}",
        dated.layer_mtimes
    );
    // Reproducible without SOURCE_DATE_EPOCH too.
    assert_eq!(
        seal("dated-again", None).manifest_digest,
        dated.manifest_digest
    );

    // SOURCE_DATE_EPOCH overrides every date.
    let epoch = seal("epoch", Some("1700000000"));
    assert_eq!(epoch.config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(last_history_created(&epoch.config), "2023-11-14T22:13:20Z");
    assert!(epoch.layer_mtimes.iter().all(|m| *m == 1_700_000_000));
    assert_ne!(epoch.manifest_digest, dated.manifest_digest);
    assert_eq!(
        seal("epoch-again", Some("1700000000")).manifest_digest,
        epoch.manifest_digest
    );
    // The date is in the composefs digest (the signed systemd-boot in /usr carries it as its
    // mtime): each sealed UKI must carry the digest of the layer as written, with its date.
    for tag in ["dated", "epoch"] {
        run_ok(
            bootseal()
                .args(["verify", "--cert"])
                .arg(&keys.cert)
                .arg(format!("oci:{}:{tag}", out.display())),
        );
    }

    // Local source: base.digest, and no base.name (the image-spec defines it for registry names).
    let annotations = dated.manifest["annotations"].as_object().unwrap();
    assert_eq!(
        annotations["org.opencontainers.image.base.digest"],
        base.manifest_digest
    );
    assert!(
        !annotations.contains_key("org.opencontainers.image.base.name"),
        "{annotations:?}"
    );

    // A base with no date at all gives 1970-01-01 (deterministic), as before.
    let undated = edit_config(&base, |c| {
        c.as_object_mut().unwrap().remove("created");
        for h in c["history"].as_array_mut().unwrap() {
            h.as_object_mut().unwrap().remove("created");
        }
    });
    let mut c = seal_cmd(
        &undated.oci_ref(),
        &format!("oci:{}:undated", out.display()),
        &keys,
    );
    run_ok(c.env_remove("SOURCE_DATE_EPOCH"));
    let undated = read_sealed(&out, "undated");
    assert_eq!(undated.config["created"], "1970-01-01T00:00:00Z");
    assert!(undated.layer_mtimes.iter().all(|m| *m == 0));
}

#[test]
fn registry_source_records_base_name_and_digest() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let reg = Registry::start(Variant::Plain);
    reg.push_layout(&built.image.oci_ref(), "demo/os:base");
    let raw = reg.raw_manifest("demo/os:base").unwrap();
    let pushed = bootseal::content_digest::ContentDigest::sha256_of(&raw).to_string();
    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    let mut c = seal_cmd(
        &reg.image("demo/os:base"),
        &format!("oci:{}:sealed", out.display()),
        &keys,
    );
    run_ok(c.args(reg.bootseal_flags()));
    let sealed = read_sealed(&out, "sealed");
    let annotations = sealed.manifest["annotations"].as_object().unwrap();
    assert_eq!(
        annotations["org.opencontainers.image.base.name"],
        format!("{}/demo/os:base", reg.host)
    );
    assert_eq!(annotations["org.opencontainers.image.base.digest"], pushed);
}
