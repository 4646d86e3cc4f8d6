//! Signatures written by `bootseal sign` are accepted by the independent verifiers
//! sbverify, osslsigncode and pesign, and our image digest equals `pesign -h`.

use crate::common;

use common::*;
use std::path::Path;
use std::process::Command;

/// All three external verifiers accept `signed` for `kp`, and pesign's digest is ours.
fn check_with_tools(signed: &Path, kp: &KeyPair) {
    common::pe_verify::check_with_tools(signed, &kp.cert, &kp.cn);
}

fn sign(input: &Path, kp: &KeyPair, out: &Path, extra: &[&str]) {
    run_ok(sign_cmd(&kp.key, &kp.cert, input, out).args(extra));
}

#[test]
fn uki_signed_with_rsa_2048_3072_4096_in_pkcs8_pkcs1_and_encrypted_pkcs8() {
    let d = scratch();
    let uki = build_uki(d.path(), "console=ttyS0 composefs=abc rw", "uki.efi");

    // RSA 2048, PKCS#8 (openssl req -nodes).
    let k2048 = keypair(d.path(), "k2048", 2048);
    let s = d.path().join("s2048.efi");
    sign(&uki, &k2048, &s, &[]);
    check_with_tools(&s, &k2048);

    // RSA 3072, PKCS#1 (BEGIN RSA PRIVATE KEY).
    let k3072 = keypair(d.path(), "k3072", 3072);
    let pkcs1 = d.path().join("k3072.pkcs1.pem");
    run_ok(
        Command::new("openssl")
            .args(["rsa", "-traditional", "-in"])
            .arg(&k3072.key)
            .arg("-out")
            .arg(&pkcs1),
    );
    assert!(
        std::fs::read_to_string(&pkcs1)
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY")
    );
    let k3072 = KeyPair {
        key: pkcs1,
        ..k3072
    };
    let s = d.path().join("s3072.efi");
    sign(&uki, &k3072, &s, &[]);
    check_with_tools(&s, &k3072);

    // RSA 4096, encrypted PKCS#8 (PBES2/AES-256), passphrase from a file.
    let k4096 = keypair(d.path(), "k4096", 4096);
    let pass = d.path().join("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let enc = d.path().join("k4096.enc.pem");
    run_ok(
        Command::new("openssl")
            .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in"])
            .arg(&k4096.key)
            .arg("-out")
            .arg(&enc)
            .arg("-passout")
            .arg("pass:correct horse"),
    );
    let k4096 = KeyPair { key: enc, ..k4096 };
    let s = d.path().join("s4096.efi");
    sign(
        &uki,
        &k4096,
        &s,
        &["--key-pass-file", pass.to_str().unwrap()],
    );
    check_with_tools(&s, &k4096);
}

#[test]
fn snakeoil_key_3des_passphrase_from_env() {
    // Debian's OVMF test key: encrypted PKCS#8, PBES2/PBKDF2-SHA256/DES-EDE3-CBC.
    let key = require_file("/usr/share/ovmf/PkKek-1-snakeoil.key", "ovmf");
    let cert = require_file("/usr/share/ovmf/PkKek-1-snakeoil.pem", "ovmf");
    let d = scratch();
    let uki = build_uki(d.path(), "console=ttyS0 composefs=abc rw", "uki.efi");
    let out = d.path().join("signed.efi");
    run_ok(
        sign_cmd(&key, &cert, &uki, &out)
            .env("BOOTSEAL_TEST_PASS", "snakeoil")
            .args(["--key-pass-env", "BOOTSEAL_TEST_PASS"]),
    );
    run_ok(Command::new("sbverify").arg("--cert").arg(&cert).arg(&out));
}

#[test]
fn signing_is_reproducible() {
    let d = scratch();
    let uki = build_uki(d.path(), "console=ttyS0 composefs=abc rw", "uki.efi");
    let kp = keypair(d.path(), "k", 2048);
    let (a, b) = (d.path().join("a.efi"), d.path().join("b.efi"));
    sign(&uki, &kp, &a, &[]);
    sign(&uki, &kp, &b, &[]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn systemd_boot_with_trailing_symbol_table() {
    // Debian's systemd-boot keeps data after its last section; it is hashed like sbsign does.
    let boot = require_file(SYSTEMD_BOOT, "systemd-boot-efi");
    let d = scratch();
    let kp = keypair(d.path(), "k", 2048);
    let out = d.path().join("bootx64.efi");
    sign(&boot, &kp, &out, &[]);
    check_with_tools(&out, &kp);
}

#[test]
fn append_adds_a_second_signature() {
    let d = scratch();
    let uki = build_uki(d.path(), "console=ttyS0 composefs=abc rw", "uki.efi");
    let (k1, k2) = (
        keypair(d.path(), "one", 2048),
        keypair(d.path(), "two", 3072),
    );
    let once = d.path().join("once.efi");
    let twice = d.path().join("twice.efi");
    sign(&uki, &k1, &once, &[]);
    sign(&once, &k2, &twice, &["--append"]);
    for kp in [&k1, &k2] {
        run_ok(
            Command::new("sbverify")
                .arg("--cert")
                .arg(&kp.cert)
                .arg(&twice),
        );
        run_ok(
            bootseal()
                .arg("verify-pe")
                .arg(&twice)
                .arg("--cert")
                .arg(&kp.cert),
        );
    }
    let p = stdout_of(Command::new("pesign").arg("-S").arg("-i").arg(&twice));
    assert_eq!(
        p.matches("certificate address is").count(),
        2,
        "pesign -S: {p}"
    );
    assert!(p.contains(&k1.cn) && p.contains(&k2.cn), "{p}");
    // The image digest does not change with the certificate table.
    assert_eq!(pesign_hash(&once), pesign_hash(&twice));
    let j: serde_json::Value = serde_json::from_str(&stdout_of(
        bootseal().arg("inspect").arg("--json").arg(&twice),
    ))
    .unwrap();
    assert_eq!(j["signatures"].as_array().unwrap().len(), 2);
}

#[test]
fn debian_signed_kernel_needs_append() {
    let d = scratch();
    let kp = keypair(d.path(), "k", 2048);
    let out = d.path().join("vmlinuz.signed");
    let o = sign_cmd(&kp.key, &kp.cert, kernel(), &out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already has a certificate table") && err.contains("--append"),
        "{err}"
    );
    assert!(!out.exists(), "no output on error");
    sign(&kernel(), &kp, &out, &["--append"]);
    run_ok(
        Command::new("sbverify")
            .arg("--cert")
            .arg(&kp.cert)
            .arg(&out),
    );
    assert_eq!(pesign_hash(&out), pesign_hash(&kernel()));
}

#[test]
fn detached_digest_and_attach_external_signature() {
    require_tool("sbsign");
    let d = scratch();
    let uki = build_uki(d.path(), "console=ttyS0 composefs=abc rw", "uki.efi");
    let kp = keypair(d.path(), "ext", 2048);
    // An external signer (sbsign) makes a detached PKCS#7 for the unsigned UKI.
    let p7 = d.path().join("uki.p7");
    run_ok(
        Command::new("sbsign")
            .arg("--key")
            .arg(&kp.key)
            .arg("--cert")
            .arg(&kp.cert)
            .arg("--detached")
            .arg(&uki)
            .arg("--output")
            .arg(&p7),
    );
    let out = d.path().join("attached.efi");
    run_ok(
        bootseal()
            .arg("sign")
            .arg("--attach")
            .arg(&p7)
            .arg("--cert")
            .arg(&kp.cert)
            .arg(&uki)
            .arg("-o")
            .arg(&out),
    );
    check_with_tools(&out, &kp);
    // The digest we print for external signing is the one in the final image.
    let digest = stdout_of(bootseal().arg("sign").arg("--detached-digest").arg(&uki));
    assert_eq!(digest.trim(), pesign_hash(&out));

    // A signature made for another image is refused, and nothing is written.
    let other = build_uki(d.path(), "console=ttyS0 composefs=def rw", "other.efi");
    let bad = d.path().join("bad.efi");
    let o = bootseal()
        .arg("sign")
        .arg("--attach")
        .arg(&p7)
        .arg(&other)
        .arg("-o")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("digest mismatch"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!bad.exists());
}

#[test]
fn verify_pe_checks_other_signers_chain_and_tampering() {
    require_tool("osslsigncode");
    let d = scratch();
    let uki = build_uki(d.path(), "console=ttyS0 composefs=abc rw", "uki.efi");
    let kp = keypair(d.path(), "k", 2048);
    let other = keypair(d.path(), "other", 2048);
    // Signed by osslsigncode (signingTime, SpcStatementType attributes): we verify it too.
    let ossl = d.path().join("ossl.efi");
    run_ok(
        Command::new("osslsigncode")
            .arg("sign")
            .arg("-certs")
            .arg(&kp.cert)
            .arg("-key")
            .arg(&kp.key)
            .arg("-h")
            .arg("sha256")
            .arg("-in")
            .arg(&uki)
            .arg("-out")
            .arg(&ossl),
    );
    run_ok(
        bootseal()
            .arg("verify-pe")
            .arg(&ossl)
            .arg("--cert")
            .arg(&kp.cert),
    );
    let o = bootseal()
        .arg("verify-pe")
        .arg(&ossl)
        .arg("--cert")
        .arg(&other.cert)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no signature chains"));

    // A certificate issued by a CA verifies against the CA.
    let ca = keypair(d.path(), "ca", 2048);
    let leaf_key = d.path().join("leaf.key");
    let csr = d.path().join("leaf.csr");
    let leaf_crt = d.path().join("leaf.crt");
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=leaf/",
                "-keyout",
            ])
            .arg(&leaf_key)
            .arg("-out")
            .arg(&csr),
    );
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-sha256", "-days", "30", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca.cert)
            .arg("-CAkey")
            .arg(&ca.key)
            .arg("-set_serial")
            .arg("7")
            .arg("-out")
            .arg(&leaf_crt),
    );
    let leaf = KeyPair {
        key: leaf_key,
        cert: leaf_crt,
        cn: "leaf".into(),
    };
    let by_leaf = d.path().join("leaf.efi");
    sign(&uki, &leaf, &by_leaf, &[]);
    run_ok(
        bootseal()
            .arg("verify-pe")
            .arg(&by_leaf)
            .arg("--cert")
            .arg(&ca.cert),
    );
    run_ok(
        Command::new("sbverify")
            .arg("--cert")
            .arg(&ca.cert)
            .arg(&by_leaf),
    );

    // One flipped byte in .cmdline breaks the digest.
    let signed = d.path().join("signed.efi");
    sign(&uki, &kp, &signed, &[]);
    let mut b = std::fs::read(&signed).unwrap();
    let pos = b.windows(12).position(|w| w == b"composefs=ab").unwrap();
    b[pos + 10] = b'X';
    let tampered = d.path().join("tampered.efi");
    std::fs::write(&tampered, &b).unwrap();
    let o = bootseal()
        .arg("verify-pe")
        .arg(&tampered)
        .arg("--cert")
        .arg(&kp.cert)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("digest mismatch"));
    assert!(
        !Command::new("sbverify")
            .arg("--cert")
            .arg(&kp.cert)
            .arg(&tampered)
            .output()
            .unwrap()
            .status
            .success()
    );
}
