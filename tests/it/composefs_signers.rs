//! composefs signatures through every signer and the refusals around them: a key on a PKCS#11
//! token signs byte-identically to `fsverity sign` with the key file; offline signing needs a
//! separate `--composefs-key`; a Docker schema2 image carries no composefs metadata and refuses
//! `--composefs-sign`; and a failed referrer push leaves the destination tag untouched.

use crate::common;
use crate::composefs_meta::{b64, blob_path, fsverity_sign, manifest_json};

use common::fault_proxy::{FaultProxy, Rule, status};
use common::image_builder::BuiltImage;
use common::registry::{Registry, Variant};
use common::softhsm::SoftHsm;
use common::{bootc_image, bootseal, keypair, require_tool, run_ok, scratch, seal_cmd};
use std::process::Command;

const CONFIG: &str = "composefs.config.fsverity-sha512-12";
const MERGED: &str = "composefs.merged.erofs.v1.fsverity-sha512-12";

#[test]
fn a_token_key_signs_like_fsverity_sign_with_the_key_file() {
    require_tool("fsverity");
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let hsm = SoftHsm::new("bootseal-composefs");
    hsm.import_key(&keys.key, "db", "01", &[]);
    hsm.import_cert(&keys.cert, "db", "01");
    let out = tmp.path().join("out");
    let mut cmd = bootseal();
    cmd.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["seal", "--from", &built.image.oci_ref()])
        .arg("--to")
        .arg(format!("oci:{}:token", out.display()))
        .args(["--key", &hsm.key_uri("db"), "--cert", &hsm.cert_uri("db")])
        .args(["--composefs-sign", "inline"]);
    run_ok(hsm.env(&mut cmd));
    let sealed = BuiltImage::load(&out, "token");
    let m = manifest_json(&sealed);
    let config = blob_path(&out, &sealed.config_digest);
    assert_eq!(
        b64(&m["config"]["annotations"][format!("{CONFIG}.sig")]),
        fsverity_sign(&config, &keys)
    );
    // The same seal with the key file gives the same manifest: signatures and all.
    run_ok(
        seal_cmd(
            &built.image.oci_ref(),
            &format!("oci:{}:file", out.display()),
            &keys,
        )
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["--composefs-sign", "inline"]),
    );
    assert_eq!(
        BuiltImage::load(&out, "file").manifest_digest,
        sealed.manifest_digest
    );
}

#[test]
fn offline_signing_and_docker_schema2_are_refused_in_one_line() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    let o = bootseal()
        .args(["seal", "--from", &built.image.oci_ref()])
        .arg("--to")
        .arg(format!("oci:{}:x", out.display()))
        .arg("--cert")
        .arg(&keys.cert)
        .arg("--prepare-signing")
        .arg(tmp.path().join("req.json"))
        .args(["--composefs-sign", "artifact"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("--composefs-sign with offline signing needs --composefs-key"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!tmp.path().join("req.json").exists());

    // Docker schema2: no annotations anywhere, so no metadata by default and a refusal when
    // signatures are asked for.
    let (mut img, _, _, _) = bootc_image::layers(tmp.path(), Vec::new());
    for l in &mut img.layers {
        l.compression = common::image_builder::Compression::Gzip;
    }
    let image = img.write(&tmp.path().join("layout"), "base");
    let reg = Registry::start(Variant::Plain);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--format", "v2s2", "--dest-tls-verify=false"])
            .arg(image.oci_ref())
            .arg(reg.image("os/docker:1")),
    );
    let seal = |to: &str, extra: &[&str]| {
        seal_cmd(&reg.image("os/docker:1"), &reg.image(to), &keys)
            .args(["--tls-verify=false", "--allow-section-overlap"])
            .args(extra)
            .output()
            .unwrap()
    };
    let plain = seal("os/docker-sealed:1", &[]);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let raw = reg.raw_manifest("os/docker-sealed:1").unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("composefs."));
    let signed = seal("os/docker-signed:1", &["--composefs-sign", "inline"]);
    let err = String::from_utf8_lossy(&signed.stderr);
    assert!(!signed.status.success());
    assert!(
        err.contains("Docker schema2 manifest cannot carry composefs metadata"),
        "{err}"
    );
    assert!(reg.raw_manifest("os/docker-signed:1").is_none());
}

#[test]
fn a_failed_referrer_push_leaves_the_tag_unmoved_and_a_rerun_completes() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Plain);
    reg.push_layout(&built.image.oci_ref(), "os/base:1");
    let proxy = FaultProxy::start(&reg.host);
    let seal = || {
        seal_cmd(
            &format!("docker://{}/os/base:1", proxy.host),
            &format!("docker://{}/os/sealed:1", proxy.host),
            &keys,
        )
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args([
            "--quiet",
            "--tls-verify=false",
            "--composefs-sign",
            "artifact",
        ])
        .output()
        .unwrap()
    };
    // The registry refuses the referrers tag index (not retried: a 400).
    proxy.set_rules(vec![Rule::new(
        "PUT",
        "/manifests/sha256-",
        status(400, None, "no referrers here"),
        usize::MAX,
    )]);
    let failed = seal();
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        err.contains("composefs artifact") && err.contains("no referrers here"),
        "{err}"
    );
    assert_eq!(proxy.injected().len(), 1, "{:?}", proxy.injected());
    assert!(
        reg.raw_manifest("os/sealed:1").is_none(),
        "the tag does not name a sealed image whose artifact is not found"
    );

    proxy.set_rules(Vec::new());
    let ok = seal();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let raw = reg.raw_manifest("os/sealed:1").unwrap();
    let subject = bootseal::manifest::sha256_digest(&raw);
    let index = reg
        .raw_manifest(&format!("os/sealed:{}", subject.replacen(':', "-", 1)))
        .expect("referrers tag");
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(m["annotations"][MERGED].as_str().unwrap().len(), 128);
}
