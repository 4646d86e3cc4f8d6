//! Bad input to `build-uki`, `sign` and `verify-pe` gives a clear one-line error naming
//! the problem, exit status 1, no panic, and no output file.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run bootseal expecting failure; return stderr; assert `out` was not written.
fn fails(cmd: &mut Command, out: &Path, needle: &str) -> String {
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected failure, got {}: {err}",
        o.status
    );
    assert!(
        err.contains(needle),
        "stderr {err:?} does not mention {needle:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error: {err}");
    assert!(!out.exists(), "{} written despite the error", out.display());
    err
}

struct Inputs {
    dir: tempfile::TempDir,
    osrel: PathBuf,
    initrd: PathBuf,
}

fn inputs() -> Inputs {
    let dir = scratch();
    let osrel = dir.path().join("os-release");
    std::fs::write(&osrel, "ID=test\n").unwrap();
    let initrd = initramfs(dir.path(), None);
    Inputs { dir, osrel, initrd }
}

fn build_uki_from(i: &Inputs, stub: &Path, linux: &Path, out: &Path) -> Command {
    build_uki_cmd(linux, &i.initrd, &i.osrel, stub, "composefs=abc rw", out)
}

#[test]
fn build_uki_bad_inputs() {
    let i = inputs();
    let d = i.dir.path();
    let out = d.join("out.efi");
    let k = kernel();
    let stub = PathBuf::from(STUB);

    let missing = d.join("no-such-stub.efi");
    fails(
        build_uki_from(&i, &missing, &k, &out).arg("--allow-section-overlap"),
        &out,
        "cannot read stub",
    );

    let not_pe = d.join("not-a-pe");
    std::fs::write(&not_pe, vec![0x42u8; 4096]).unwrap();
    fails(
        build_uki_from(&i, &not_pe, &k, &out).arg("--allow-section-overlap"),
        &out,
        "stub is not a usable PE image",
    );
    fails(
        build_uki_from(&i, &stub, &not_pe, &out).arg("--allow-section-overlap"),
        &out,
        "kernel is not an EFI-stub PE image",
    );

    let truncated = d.join("vmlinuz.truncated");
    let kb = std::fs::read(&k).unwrap();
    std::fs::write(&truncated, &kb[..kb.len() / 2]).unwrap();
    fails(
        build_uki_from(&i, &stub, &truncated, &out).arg("--allow-section-overlap"),
        &out,
        "kernel image is truncated",
    );

    // A signed stub is refused.
    let kp = keypair(d, "k", 2048);
    let signed_stub = d.join("signed.stub");
    run_ok(&mut sign_cmd(&kp.key, &kp.cert, &stub, &signed_stub));
    fails(
        build_uki_from(&i, &signed_stub, &k, &out).arg("--allow-section-overlap"),
        &out,
        "stub already carries a certificate table",
    );

    // A stub whose section table fills its header: Debian's stub (8 sections, table at
    // 0x188, SizeOfHeaders 0x400) with its last header repeated 7 more times (without raw
    // data: sections whose raw data overlap are refused before).
    let mut full = std::fs::read(&stub).unwrap();
    let pe = u32::from_le_bytes(full[0x3c..0x40].try_into().unwrap()) as usize;
    let table = pe + 24 + u16::from_le_bytes([full[pe + 20], full[pe + 21]]) as usize;
    let mut last: Vec<u8> = full[table + 7 * 40..table + 8 * 40].to_vec();
    last[16..24].fill(0);
    for n in 8..15 {
        full[table + n * 40..table + (n + 1) * 40].copy_from_slice(&last);
    }
    full[pe + 6..pe + 8].copy_from_slice(&15u16.to_le_bytes());
    let full_stub = d.join("full-header.stub");
    std::fs::write(&full_stub, full).unwrap();
    fails(
        build_uki_from(&i, &full_stub, &k, &out).arg("--allow-section-overlap"),
        &out,
        "no room in the stub's PE header for section .osrel",
    );
}

#[test]
fn sign_bad_inputs() {
    let d = scratch();
    let d = d.path();
    let out = d.join("out.efi");
    let kp = keypair(d, "k", 2048);
    let other = keypair(d, "other", 2048);
    let stub = PathBuf::from(STUB);
    let sign = |key: &Path, cert: &Path, input: &Path| sign_cmd(key, cert, input, &out);

    let not_pe = d.join("not-a-pe");
    std::fs::write(&not_pe, b"MZ but nothing else").unwrap();
    fails(
        &mut sign(&kp.key, &kp.cert, &not_pe),
        &out,
        "not a PE image",
    );
    fails(
        &mut sign(&kp.key, &kp.cert, &d.join("missing.efi")),
        &out,
        "cannot read PE image",
    );

    // Existing certificate table without --append.
    let signed = d.join("signed.efi");
    run_ok(&mut sign(&kp.key, &kp.cert, &stub));
    std::fs::rename(&out, &signed).unwrap();
    fails(
        &mut sign(&kp.key, &kp.cert, &signed),
        &out,
        "already has a certificate table with 1 signature(s); use --append",
    );

    // Key that does not belong to the certificate.
    fails(
        &mut sign(&other.key, &kp.cert, &stub),
        &out,
        "private key does not match the certificate",
    );

    // Non-RSA keys: EC in PKCS#8 and in SEC1 form.
    let ec8 = d.join("ec.p8.pem");
    let ec1 = d.join("ec.sec1.pem");
    run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&ec8),
    );
    run_ok(
        Command::new("openssl")
            .args(["ec", "-in"])
            .arg(&ec8)
            .arg("-out")
            .arg(&ec1),
    );
    fails(
        &mut sign(&ec8, &kp.cert, &stub),
        &out,
        "private key is not RSA",
    );
    fails(
        &mut sign(&ec1, &kp.cert, &stub),
        &out,
        "private key is not RSA",
    );

    // Too small an RSA key.
    let small = keypair(d, "small", 1024);
    fails(
        &mut sign(&small.key, &small.cert, &stub),
        &out,
        "RSA key size 1024 bits is not supported",
    );

    // Encrypted key: no passphrase, wrong passphrase.
    let enc = d.join("enc.pem");
    run_ok(
        Command::new("openssl")
            .args([
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-passout",
                "pass:right",
                "-in",
            ])
            .arg(&kp.key)
            .arg("-out")
            .arg(&enc),
    );
    fails(
        &mut sign(&enc, &kp.cert, &stub),
        &out,
        "private key is encrypted; give a passphrase",
    );
    fails(
        sign(&enc, &kp.cert, &stub)
            .env("BS_PASS", "wrong")
            .args(["--key-pass-env", "BS_PASS"]),
        &out,
        "wrong passphrase",
    );
    fails(
        sign(&enc, &kp.cert, &stub).args(["--key-pass-env", "BS_UNSET_VAR"]),
        &out,
        "BS_UNSET_VAR",
    );

    // verify-pe on an unsigned image.
    fails(
        bootseal()
            .arg("verify-pe")
            .arg(&stub)
            .arg("--cert")
            .arg(&kp.cert),
        &out,
        "has no Authenticode signature",
    );
}
