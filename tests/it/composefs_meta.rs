//! composefs OCI sealing metadata (composefs-oci 0.9.0 `sealing_spec.rs`) on sealed images:
//! the digests agree with composefs-oci's own computation and with `fsverity digest` on the
//! real files (EROFS images composefs-rs writes, config blobs), and the inline signatures are
//! byte-identical to `fsverity sign` (fsverity-utils) with the same key and certificate.

use crate::common;

use base64::Engine;
use common::image_builder::{BuiltImage, Compression, OciImage};
use common::reference::{format, pull, reference_digest};
use common::{bootc_image, keypair, require_tool, run_ok, scratch, seal_cmd, stdout_of};
use composefs::fsverity::FsVerityHashValue;
use composefs_boot::BootOps;
use std::path::{Path, PathBuf};
use std::process::Command;

const MERGED: &str = "composefs.merged.erofs.v1.fsverity-sha512-12";
const BOOTABLE: &str = "composefs.merged.bootable.erofs.v1.fsverity-sha512-12";
const CONFIG: &str = "composefs.config.fsverity-sha512-12";
const LAYER: &str = "composefs.layer.erofs.v1.fsverity-sha512-12";

pub fn manifest_json(image: &BuiltImage) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(blob_path(&image.dir, &image.manifest_digest)).unwrap())
        .unwrap()
}

pub fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// `fsverity digest --hash-alg=sha512 FILE`, the hex part.
pub fn fsverity_digest(file: &Path) -> String {
    let out = stdout_of(
        Command::new("fsverity")
            .args(["digest", "--hash-alg=sha512", "--compact"])
            .arg(file),
    );
    out.trim().trim_start_matches("sha512:").to_owned()
}

/// `fsverity sign FILE SIG --hash-alg=sha512 --key --cert`, the signature's bytes.
pub fn fsverity_sign(file: &Path, keys: &common::KeyPair) -> Vec<u8> {
    let sig = file.with_extension("fsverity-sig");
    run_ok(
        Command::new("fsverity")
            .arg("sign")
            .arg(file)
            .arg(&sig)
            .arg("--hash-alg=sha512")
            .arg("--key")
            .arg(&keys.key)
            .arg("--cert")
            .arg(&keys.cert),
    );
    std::fs::read(sig).unwrap()
}

pub fn b64(s: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().expect("a string"))
        .unwrap()
}

/// composefs-rs's EROFS images of `image`: (merged, merged.bootable), written to files.
pub fn reference_erofs(image: &BuiltImage, dir: &Path) -> (PathBuf, PathBuf) {
    let p = pull(image).unwrap();
    let (merged, _) = p.fs.compute_image_bytes(format(1));
    let mut fs = p.fs;
    fs.transform_for_boot(&p.repo).unwrap();
    let (bootable, _) = fs.compute_image_bytes(format(1));
    let (m, b) = (dir.join("merged.erofs"), dir.join("bootable.erofs"));
    std::fs::write(&m, merged).unwrap();
    std::fs::write(&b, bootable).unwrap();
    (m, b)
}

/// The uncompressed tar of a layer blob.
fn layer_tar(layer: &common::image_builder::BuiltLayer) -> Vec<u8> {
    let bytes = std::fs::read(&layer.path).unwrap();
    let mut out = Vec::new();
    if layer.media_type.ends_with("+zstd") {
        out = zstd::decode_all(&bytes[..]).unwrap();
    } else if layer.media_type.ends_with("+gzip") || layer.media_type.ends_with(".gzip") {
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
            .unwrap();
    } else {
        out = bytes;
    }
    out
}

/// composefs-oci's digest of an image holding only `layer` (its non-bootable tree), or why it
/// has none.
fn reference_layer_digest(
    layer: &common::image_builder::BuiltLayer,
    dir: &Path,
) -> Result<String, String> {
    let img = OciImage::new()
        .layer(layer_tar(layer), Compression::None)
        .write(dir, "one");
    let p = pull(&img)?;
    Ok(p.fs.compute_image_id(format(1)).to_hex())
}

#[test]
fn inline_digests_and_signatures_match_composefs_oci_and_fsverity_utils() {
    require_tool("fsverity");
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    let printed = stdout_of(
        seal_cmd(
            &built.image.oci_ref(),
            &format!("oci:{}:sealed", out.display()),
            &keys,
        )
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["--composefs-layer-digests", "--composefs-sign", "inline"]),
    );
    assert!(printed.contains("@sha256:"), "{printed}");
    let sealed = BuiltImage::load(&out, "sealed");
    let m = manifest_json(&sealed);
    let ann = &m["annotations"];

    // merged.bootable is the UKI's digest, which composefs-oci's boot pipeline computes.
    assert_eq!(ann[BOOTABLE], reference_digest(&sealed, 1).as_str());
    let verify = stdout_of(
        common::bootseal()
            .args(["verify", "--json", "--cert"])
            .arg(&keys.cert)
            .arg(sealed.oci_ref()),
    );
    let v: serde_json::Value = serde_json::from_str(&verify).unwrap();
    assert_eq!(v["composefs_digest"], ann[BOOTABLE], "{verify}");
    assert_eq!(v["ok"], true, "{verify}");

    // merged and merged.bootable equal `fsverity digest` of composefs-rs's EROFS images,
    // and their signatures are `fsverity sign`'s bytes.
    let (merged, bootable) = reference_erofs(&sealed, tmp.path());
    assert_eq!(ann[MERGED], fsverity_digest(&merged).as_str());
    assert_eq!(ann[BOOTABLE], fsverity_digest(&bootable).as_str());
    assert_ne!(
        ann[MERGED], ann[BOOTABLE],
        "the boot transform changes the tree"
    );
    assert_eq!(
        b64(&ann[format!("{MERGED}.sig")]),
        fsverity_sign(&merged, &keys)
    );
    assert_eq!(
        b64(&ann[format!("{BOOTABLE}.sig")]),
        fsverity_sign(&bootable, &keys)
    );

    // The config digest is on the config descriptor, over the config blob as stored.
    let config_blob = blob_path(&out, &sealed.config_digest);
    let cfg = &m["config"]["annotations"];
    assert_eq!(cfg[CONFIG], fsverity_digest(&config_blob).as_str());
    assert_eq!(
        b64(&cfg[format!("{CONFIG}.sig")]),
        fsverity_sign(&config_blob, &keys)
    );
    // openssl, a third implementation, accepts the signature over the formatted digest.
    let formatted = tmp.path().join("formatted");
    let mut f = b"FSVerity\x02\x00\x40\x00".to_vec();
    f.extend(hex::decode(cfg[CONFIG].as_str().unwrap()).unwrap());
    std::fs::write(&formatted, f).unwrap();
    let sig = tmp.path().join("config.p7");
    std::fs::write(&sig, b64(&cfg[format!("{CONFIG}.sig")])).unwrap();
    run_ok(
        Command::new("openssl")
            .args([
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-noverify",
                "-in",
            ])
            .arg(&sig)
            .arg("-content")
            .arg(&formatted)
            .arg("-certfile")
            .arg(&keys.cert)
            .args(["-nointern", "-out", "/dev/null"]),
    );
    assert!(m.get("composefs.manifest.fsverity-sha512-12").is_none());

    // The spec's "Inline signatures example" shape: digest and `.sig` on the config
    // descriptor, merged (and merged.bootable) with theirs at the top level, digests alone on
    // layer descriptors, no manifest key.
    let composefs_keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| {
                o.keys()
                    .filter(|k| k.starts_with("composefs."))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        k.sort();
        k
    };
    assert_eq!(
        composefs_keys(ann),
        [
            BOOTABLE.to_string(),
            format!("{BOOTABLE}.sig"),
            MERGED.to_string(),
            format!("{MERGED}.sig"),
        ]
    );
    assert_eq!(
        composefs_keys(cfg),
        [CONFIG.to_owned(), format!("{CONFIG}.sig")]
    );
    assert_eq!(
        composefs_keys(&m["layers"][0]["annotations"]),
        [LAYER.to_owned()]
    );

    // Layer digests: composefs-oci's digest of an image made of that layer alone; a layer
    // that is no tree of its own there (no /usr, or entries whose parents only a lower layer
    // has) gets none, and composefs-oci refuses it too.
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), sealed.layers.len());
    let mut annotated = 0;
    for (i, (desc, layer)) in layers.iter().zip(&sealed.layers).enumerate() {
        let reference = reference_layer_digest(layer, &tmp.path().join(format!("one-{i}")));
        match (&desc["annotations"][LAYER], reference) {
            (serde_json::Value::String(ours), Ok(theirs)) => {
                assert_eq!(ours, &theirs, "layer {i}");
                annotated += 1;
            }
            (serde_json::Value::Null, Err(_)) => {}
            (ours, theirs) => panic!("layer {i}: ours {ours}, composefs-oci {theirs:?}"),
        }
    }
    assert!(annotated >= 1, "the base layer has a tree of its own");
    assert!(
        annotated < layers.len(),
        "the kernel layer has no /usr of its own"
    );
}

#[test]
fn no_composefs_metadata_leaves_them_out_and_stale_ones_are_dropped() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    let seal = |from: &str, tag: &str, extra: &[&str]| {
        run_ok(
            seal_cmd(from, &format!("oci:{}:{tag}", out.display()), &keys)
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args(extra),
        );
        BuiltImage::load(&out, tag)
    };
    let plain = seal(
        &built.image.oci_ref(),
        "plain",
        &["--no-composefs-metadata"],
    );
    let m = manifest_json(&plain);
    let keys_of = |v: &serde_json::Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert!(
        keys_of(&m["annotations"])
            .iter()
            .all(|k| !k.starts_with("composefs."))
    );
    assert!(m["config"].get("annotations").is_none(), "{m}");

    // A base that already carries composefs keys (made by another tool): its merged and
    // config values describe the base, so the sealed manifest has ours instead; a base layer's
    // own annotations stay (a layer does not change by being built upon).
    let stale = with_stale_annotations(&built.image, "stale");
    let resealed = seal(&stale.oci_ref(), "resealed", &[]);
    let r = manifest_json(&resealed);
    assert_ne!(r["annotations"][MERGED], "00".repeat(64).as_str(), "{r}");
    assert_eq!(r["annotations"][MERGED].as_str().unwrap().len(), 128);
    assert_eq!(
        r["config"]["annotations"][CONFIG],
        fsverity_digest(&blob_path(&out, &resealed.config_digest)).as_str()
    );
    assert_eq!(r["layers"][0]["annotations"]["org.example.kept"], "yes");
    let bare = seal(&stale.oci_ref(), "bare", &["--no-composefs-metadata"]);
    let c = manifest_json(&bare);
    assert!(
        keys_of(&c["annotations"])
            .iter()
            .all(|k| !k.starts_with("composefs.")),
        "{c}"
    );
    assert!(c["config"].get("annotations").is_none(), "{c}");

    // Refusals: one line each, nothing written.
    for (args, says) in [
        (
            vec!["--no-composefs-metadata", "--composefs-sign", "inline"],
            "--no-composefs-metadata excludes",
        ),
        (
            vec!["--composefs-sign", "both"],
            "unknown composefs signature mode",
        ),
    ] {
        let o = seal_cmd(
            &built.image.oci_ref(),
            &format!("oci:{}:refused", out.display()),
            &keys,
        )
        .args(&args)
        .output()
        .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{args:?}: {err}");
    }
    let index = std::fs::read_to_string(out.join("index.json")).unwrap();
    assert!(!index.contains("refused"));
}

/// `image` re-tagged as `tag` with composefs keys another tool might have written: a wrong
/// merged digest, a wrong config digest, and an unrelated layer annotation.
fn with_stale_annotations(image: &BuiltImage, tag: &str) -> BuiltImage {
    retagged(image, tag, |m| {
        m["annotations"] = serde_json::json!({ MERGED: "00".repeat(64), "org.example.other": "x" });
        m["config"]["annotations"] = serde_json::json!({ CONFIG: "00".repeat(64) });
        m["layers"][0]["annotations"] = serde_json::json!({ "org.example.kept": "yes" });
    })
}

/// `image`'s manifest edited by `edit`, written as a new blob and tagged `tag` in its layout.
pub fn retagged(
    image: &BuiltImage,
    tag: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> BuiltImage {
    let mut m = manifest_json(image);
    edit(&mut m);
    let bytes = serde_json::to_vec(&m).unwrap();
    let (digest, size) = common::image_builder::write_blob(&image.dir, &bytes);
    let index_path = image.dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    BuiltImage::load(&image.dir, tag)
}

/// `bootseal verify --json --cert CERT IMAGE`: (exit success, checks by name → (ok, detail)).
pub fn verify_checks(image: &str, cert: &Path) -> (bool, Vec<(String, bool, String)>) {
    verify_checks_with(image, cert, &[])
}

/// [`verify_checks`] with more flags (registry options).
pub fn verify_checks_with(
    image: &str,
    cert: &Path,
    flags: &[&str],
) -> (bool, Vec<(String, bool, String)>) {
    let o = common::bootseal()
        .args(["verify", "--json", "--cert"])
        .arg(cert)
        .args(flags)
        .arg(image)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let checks = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["ok"].as_bool().unwrap(),
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (o.status.success(), checks)
}

fn failed(checks: &[(String, bool, String)]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.1)
        .map(|c| format!("{}: {}", c.0, c.2))
        .collect()
}

#[test]
fn verify_checks_inline_digests_and_signatures_naming_the_role() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let other = keypair(tmp.path(), "other", 2048);
    let out = tmp.path().join("out");
    let seal = |tag: &str, extra: &[&str]| {
        run_ok(
            seal_cmd(
                &built.image.oci_ref(),
                &format!("oci:{}:{tag}", out.display()),
                &keys,
            )
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["--composefs-layer-digests", "--composefs-sign", "inline"])
            .args(extra),
        );
        BuiltImage::load(&out, tag)
    };
    let good = seal("good", &[]);
    let (ok, checks) = verify_checks(&good.oci_ref(), &keys.cert);
    assert!(ok, "{:?}", failed(&checks));
    for name in [
        "composefs merged digest",
        "composefs merged signature",
        "composefs merged.bootable digest",
        "composefs merged.bootable signature",
        "composefs config digest",
        "composefs config signature",
        "composefs layer digest",
    ] {
        assert!(
            checks.iter().any(|c| c.0 == name && c.1),
            "{name} missing: {checks:?}"
        );
    }

    // Another key: its signatures are refused naming the signer (a seal whose composefs key
    // is `other` checked against `keys`).
    let foreign = seal(
        "foreign",
        &[
            "--composefs-key",
            other.key.to_str().unwrap(),
            "--composefs-cert",
            other.cert.to_str().unwrap(),
        ],
    );
    let (ok, checks) = verify_checks(&foreign.oci_ref(), &keys.cert);
    let f = failed(&checks);
    assert!(!ok);
    assert_eq!(f.len(), 3, "{f:?}");
    for role in ["merged", "merged.bootable", "config"] {
        assert!(
            f.iter()
                .any(|c| c.starts_with(&format!("composefs {role} signature:"))
                    && c.contains("not by the given certificate")),
            "{role}: {f:?}"
        );
    }
    // ... and accepted with its own certificate.
    let o = common::bootseal()
        .args(["verify", "--cert"])
        .arg(&keys.cert)
        .arg("--composefs-cert")
        .arg(&other.cert)
        .arg(foreign.oci_ref())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // Tampered manifests (the layers are the same): each fault fails its own role only.
    let key_sig = |k: &str| format!("{k}.sig");
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "swapped",
            Box::new(move |m| {
                let a = m["annotations"][key_sig(MERGED)].clone();
                let b = m["annotations"][key_sig(BOOTABLE)].clone();
                m["annotations"][key_sig(MERGED)] = b;
                m["annotations"][key_sig(BOOTABLE)] = a;
            }),
            "does not verify",
        ),
        (
            "truncated",
            Box::new(move |m| {
                let s = m["config"]["annotations"][key_sig(CONFIG)]
                    .as_str()
                    .unwrap();
                let raw = b64(&serde_json::Value::String(s.to_owned()));
                m["config"]["annotations"][key_sig(CONFIG)] = serde_json::Value::String(
                    base64::engine::general_purpose::STANDARD.encode(&raw[..raw.len() - 10]),
                );
            }),
            "not a DER PKCS#7 signature",
        ),
        (
            "wrong-digest",
            Box::new(|m| m["annotations"][MERGED] = "11".repeat(64).into()),
            "claims 1111",
        ),
        (
            "wrong-layer",
            Box::new(|m| m["layers"][0]["annotations"][LAYER] = "22".repeat(64).into()),
            "claims 2222",
        ),
    ];
    for (tag, edit, says) in cases {
        let bad = retagged(&good, tag, edit);
        let (ok, checks) = verify_checks(&bad.oci_ref(), &keys.cert);
        let f = failed(&checks);
        assert!(!ok, "{tag}");
        let expected_roles: &[&str] = match tag {
            "swapped" => &[
                "composefs merged signature",
                "composefs merged.bootable signature",
            ],
            "truncated" => &["composefs config signature"],
            "wrong-digest" => &["composefs merged digest"],
            _ => &["composefs layer digest"],
        };
        assert_eq!(f.len(), expected_roles.len(), "{tag}: {f:?}");
        for role in expected_roles {
            assert!(
                f.iter()
                    .any(|c| c.starts_with(&format!("{role}:")) && c.contains(says)),
                "{tag}: {role}: {f:?}"
            );
        }
    }
}
