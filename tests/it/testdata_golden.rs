//! Golden tests on the checked-in fixtures of `testdata/` (see testdata/README.md), offline:
//! `bootseal digest` of tiny OCI layouts equals the V1/V2 digests composefs-oci 0.9.0 gave when
//! they were recorded (and still gives), malformed layouts give their recorded errors, and the
//! tiny PE files give the Authenticode digests pesign recorded.
//!
//! `cargo test --test testdata_golden -- --ignored regenerate_testdata` rewrites them all.

use crate::common;
mod fixtures;

use common::image_builder::BuiltImage;
use common::reference::{reference_digest, try_reference_digest};
use common::{bootseal, pesign_hash, require_tool, run_ok, stdout_of};
use fixtures::TAG;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");

fn testdata(rel: &str) -> PathBuf {
    Path::new(TESTDATA).join(rel)
}

fn golden() -> Value {
    let text = std::fs::read_to_string(testdata("golden.json")).expect("testdata/golden.json");
    serde_json::from_str(&text).expect("testdata/golden.json is JSON")
}

fn entries<'a>(g: &'a Value, section: &str) -> &'a Map<String, Value> {
    let m = g[section].as_object().expect("a section of golden.json");
    assert!(!m.is_empty(), "golden.json has no {section}");
    m
}

fn layout_ref(section: &str, name: &str) -> String {
    format!(
        "oci:{}:{TAG}",
        testdata(&format!("{section}/{name}")).display()
    )
}

fn sha256_file(p: &Path) -> String {
    bootseal::content_digest::ContentDigest::sha256_of(&std::fs::read(p).unwrap()).to_string()
}

#[test]
fn layouts_digest_to_golden_values() {
    let g = golden();
    for (name, want) in entries(&g, "layouts") {
        for v in ["1", "2"] {
            let got = stdout_of(
                bootseal()
                    .args(["digest", "--erofs-version", v])
                    .arg(layout_ref("layouts", name)),
            );
            assert_eq!(got.trim(), want[format!("v{v}")], "{name} V{v}");
        }
    }
}

#[test]
fn reference_still_gives_golden_values() {
    // A change in the composefs crates (a bump of the pin) shows here, not only in bootseal.
    let g = golden();
    for (name, want) in entries(&g, "layouts") {
        let image = BuiltImage::load(&testdata(&format!("layouts/{name}")), TAG);
        for v in [1u8, 2] {
            assert_eq!(
                reference_digest(&image, v),
                want[format!("v{v}")],
                "{name} V{v}"
            );
        }
    }
}

#[test]
fn malformed_inputs_give_their_recorded_errors() {
    let g = golden();
    for (name, want) in entries(&g, "malformed") {
        let image = layout_ref("malformed", name);
        let out = bootseal().args(["digest", &image]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}: no digest on stdout");
        assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
        let prefix = format!("bootseal: {image}: ");
        assert!(
            stderr.starts_with(&prefix),
            "{name}: names the image: {stderr}"
        );
        let expected = want["bootseal_error"].as_str().unwrap();
        assert!(
            stderr.contains(expected),
            "{name}: {stderr} lacks {expected}"
        );
    }
}

#[test]
fn tiny_pe_authenticode_kats() {
    let g = golden();
    let pe = entries(&g, "pe");
    for (file, want) in pe {
        if let Some(hash) = want.get("authenticode_sha256") {
            let j: Value = serde_json::from_str(&stdout_of(
                bootseal()
                    .args(["inspect", "--json"])
                    .arg(testdata(&format!("pe/{file}"))),
            ))
            .unwrap();
            assert_eq!(&j["image_digest"], hash, "{file}");
        }
    }
    let (key, cert) = (testdata("pe/db.key"), testdata("pe/db.crt"));
    // sbsign's signature (with its signing time) verifies here.
    run_ok(
        bootseal()
            .arg("verify-pe")
            .arg(testdata("pe/tiny.sbsign.efi"))
            .arg("--cert")
            .arg(&cert),
    );
    // Our signature is deterministic: the same bytes as the recorded file, which sbverify and
    // osslsigncode accepted when it was recorded.
    let tmp = common::scratch();
    let out = tmp.path().join("signed.efi");
    run_ok(
        bootseal()
            .arg("sign")
            .arg(testdata("pe/tiny.efi"))
            .arg("--key")
            .arg(&key)
            .arg("--cert")
            .arg(&cert)
            .arg("-o")
            .arg(&out),
    );
    assert_eq!(sha256_file(&out), pe["tiny.bootseal.efi"]["sha256"]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(testdata("pe/tiny.bootseal.efi")).unwrap()
    );
}

#[test]
fn testdata_stays_small() {
    let mut total = 0;
    let mut stack = vec![PathBuf::from(TESTDATA)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                // testdata/fuzz/ holds the fuzz corpora, sized by their own rules.
                if p != testdata("fuzz") {
                    stack.push(p);
                }
                continue;
            }
            let len = e.metadata().unwrap().len();
            assert!(len <= 16 * 1024, "{} is {len} bytes", p.display());
            total += len;
        }
    }
    assert!(total <= 256 * 1024, "testdata/ holds {total} bytes");
}

/// Rewrites testdata/ (except fuzz/): layouts, malformed layouts, PE files and golden.json.
#[test]
#[ignore = "regenerates testdata/; needs pesign, sbsign, sbverify, osslsigncode, openssl"]
fn regenerate_testdata() {
    let root = Path::new(TESTDATA);
    let local = |s: String| s.replace(&format!("{TESTDATA}/"), "testdata/");

    let dir = root.join("layouts");
    let _ = std::fs::remove_dir_all(&dir);
    let mut layouts = Map::new();
    for (name, image) in fixtures::layouts() {
        let built = image.write(&dir.join(name), TAG);
        let v1 = reference_digest(&built, 1);
        let v2 = reference_digest(&built, 2);
        layouts.insert(name.into(), json!({"v1": v1, "v2": v2}));
    }

    let dir = root.join("malformed");
    let _ = std::fs::remove_dir_all(&dir);
    let mut malformed = Map::new();
    for m in fixtures::malformed(&dir) {
        let out = bootseal()
            .arg("digest")
            .arg(m.image.oci_ref())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(&m.expected_error),
            "{}: {stderr}",
            m.name
        );
        let reference = match try_reference_digest(&m.image, 1) {
            Ok(d) => json!({"accepts": d}),
            Err(e) => json!({"rejects": local(e)}),
        };
        malformed.insert(
            m.name.into(),
            json!({"bootseal_error": m.expected_error, "composefs_oci_0_9_0": reference}),
        );
    }

    let dir = root.join("pe");
    std::fs::create_dir_all(&dir).unwrap();
    let tiny = dir.join("tiny.efi");
    std::fs::write(&tiny, fixtures::tiny_pe()).unwrap();
    let trailing = dir.join("tiny-trailing.efi");
    std::fs::write(
        &trailing,
        [fixtures::tiny_pe(), b"trailing-data".to_vec()].concat(),
    )
    .unwrap();
    let (key, cert) = (dir.join("db.key"), dir.join("db.crt"));
    if !key.exists() {
        require_tool("openssl");
        run_ok(
            Command::new("openssl")
                .args([
                    "req", "-new", "-x509", "-sha256", "-days", "36500", "-nodes",
                ])
                .args(["-newkey", "rsa:2048", "-subj", "/CN=bootseal testdata db/"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
    }
    require_tool("sbsign");
    let sbsigned = dir.join("tiny.sbsign.efi");
    run_ok(
        Command::new("sbsign")
            .arg("--key")
            .arg(&key)
            .arg("--cert")
            .arg(&cert)
            .arg("--output")
            .arg(&sbsigned)
            .arg(&tiny),
    );
    let ours = dir.join("tiny.bootseal.efi");
    run_ok(
        bootseal()
            .arg("sign")
            .arg(&tiny)
            .arg("--key")
            .arg(&key)
            .arg("--cert")
            .arg(&cert)
            .arg("-o")
            .arg(&ours),
    );
    require_tool("sbverify");
    require_tool("osslsigncode");
    for signed in [&sbsigned, &ours] {
        run_ok(
            Command::new("sbverify")
                .arg("--cert")
                .arg(&cert)
                .arg(signed),
        );
        let o = stdout_of(
            Command::new("osslsigncode")
                .args(["verify", "-CAfile"])
                .arg(&cert)
                .arg("-in")
                .arg(signed),
        );
        assert!(o.contains("Signature verification: ok"), "{o}");
    }
    let pe = json!({
        "tiny.efi": {"authenticode_sha256": pesign_hash(&tiny)},
        "tiny-trailing.efi": {"authenticode_sha256": pesign_hash(&trailing)},
        "tiny.sbsign.efi": {"authenticode_sha256": pesign_hash(&sbsigned)},
        "tiny.bootseal.efi": {
            "sha256": sha256_file(&ours),
            "authenticode_sha256": pesign_hash(&ours),
            "accepted_by": ["sbverify", "osslsigncode"],
        },
    });

    let golden = json!({
        "how": "cargo test --test testdata_golden -- --ignored regenerate_testdata",
        "layout_digests_by": "composefs-oci 0.9.0: pull_image, create_filesystem, transform_for_boot, compute_image_id (tests/common/reference.rs)",
        "pe_digests_by": "pesign -h",
        "layouts": layouts,
        "malformed": malformed,
        "pe": pe,
    });
    let mut text = serde_json::to_string_pretty(&golden).unwrap();
    text.push('\n');
    std::fs::write(root.join("golden.json"), text).unwrap();
}
