//! `bootseal seal` registry → registry with the Secure Boot key and certificate on a PKCS#11
//! token (SoftHSM2): the same manifest digest as the key-file seal (PKCS#1 v1.5 signatures
//! are deterministic, `SOURCE_DATE_EPOCH` fixes the rest), accepted by `verify` and sbverify,
//! and the sealed UKI boots under OVMF with Secure Boot enforced (the token holds Debian's
//! snakeoil db key). A key that does not match the certificate is refused before any upload.

use crate::common;

use common::image_builder::BuiltImage;
use common::reference::reference_digest;
use common::registry::{Registry, Variant};
use common::secureboot::{DB_CERT, DB_KEY, Verdict, boot};
use common::softhsm::{PIN, SoftHsm};
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn seal(reg: &Registry, to: &str, key: &str, cert: &str) -> Command {
    let mut c = bootseal();
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .env("SNAKEOIL_PASS", "snakeoil")
        .args(["seal", "--json", "--quiet", "--allow-section-overlap"])
        .args(reg.bootseal_flags())
        .arg("--from")
        .arg(reg.image("os/base:1"))
        .arg("--to")
        .arg(reg.image(to))
        .args(["--key", key, "--cert", cert]);
    c
}

fn extract(image: &BuiltImage, dir: &Path, member: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf") // GNU tar detects gzip or zstd itself
            .arg(&image.layers.last().unwrap().path)
            .arg("-C")
            .arg(dir)
            .arg(member),
    );
    dir.join(member)
}

#[test]
fn seal_with_the_key_on_a_token_equals_the_key_file_seal_and_boots() {
    require_file(DB_KEY, "ovmf");
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let reg = Registry::start(Variant::Plain);
    reg.push_layout(&built.image.oci_ref(), "os/base:1");

    // Debian's snakeoil db key (in OVMF's enrolled db), decrypted once to import it into the
    // token as a sensitive, non-extractable key; its certificate goes on the token too.
    let hsm = SoftHsm::new("bootseal-seal");
    let plain = tmp.path().join("db.pem");
    run_ok(
        Command::new("openssl")
            .args(["pkey", "-passin", "pass:snakeoil", "-in", DB_KEY, "-out"])
            .arg(&plain),
    );
    hsm.import_key(&plain, "db", "01", &[]);
    std::fs::remove_file(&plain).unwrap();
    hsm.import_cert(Path::new(DB_CERT), "db", "01");

    let token_run = run_ok(hsm.env(&mut seal(
        &reg,
        "os/sealed:token",
        &hsm.key_uri("db"),
        &hsm.cert_uri("db"),
    )));
    for s in [&token_run.stdout, &token_run.stderr] {
        assert!(!String::from_utf8_lossy(s).contains(PIN), "PIN shown");
    }
    let token_report: Value = serde_json::from_slice(&token_run.stdout).unwrap();
    let file_report: Value = serde_json::from_slice(
        &run_ok(
            seal(&reg, "os/sealed:file", DB_KEY, DB_CERT).args(["--key-pass-env", "SNAKEOIL_PASS"]),
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(
        token_report["digest"], file_report["digest"],
        "token seal and key-file seal give the same manifest"
    );

    let verdict = stdout_of(
        bootseal()
            .arg("verify")
            .args(reg.bootseal_flags())
            .args(["--cert", DB_CERT])
            .arg(reg.image("os/sealed:token")),
    );
    assert!(verdict.contains("verdict: sealed and valid"), "{verdict}");

    let pulled_dir = tmp.path().join("pulled");
    reg.pull_layout("os/sealed:token", &pulled_dir, "p");
    let pulled = BuiltImage::load(&pulled_dir, "p");
    let x = tmp.path().join("x");
    let uki = extract(&pulled, &x, &format!("boot/EFI/Linux/{}.efi", built.kver));
    let sd = extract(
        &pulled,
        &x,
        "usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed",
    );
    for f in [&uki, &sd] {
        run_ok(Command::new("sbverify").args(["--cert", DB_CERT]).arg(f));
    }
    let reference = reference_digest(&pulled, 1);
    match boot(&uki) {
        Verdict::Booted(line) => assert!(
            line.contains(&format!("composefs={reference} rw console=ttyS0")),
            "{line}"
        ),
        v => panic!("the token-signed sealed UKI did not boot: {v:?}"),
    }

    // A token key with someone else's certificate: refused before anything is uploaded.
    let other = keypair(tmp.path(), "other", 2048);
    let o = hsm
        .env(&mut seal(
            &reg,
            "os/mismatch:1",
            &hsm.key_uri("db"),
            other.cert.to_str().unwrap(),
        ))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("private key does not match the certificate") && !err.contains(PIN),
        "{err}"
    );
    assert!(
        !reg.access_log().contains("/v2/os/mismatch/"),
        "nothing was sent to the destination"
    );
}
