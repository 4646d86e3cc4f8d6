//! First boot of a fresh machine: OVMF with the empty variable store (setup mode) boots an ESP
//! laid out as `bootc install` lays it out — the signed systemd-boot as EFI/BOOT/BOOTX64.EFI,
//! `loader/loader.conf` with `secure-boot-enroll force`, `loader/keys/auto/{PK,KEK,db}.auth`
//! made by `bootseal keys create`, the signed UKI in EFI/Linux/. systemd-boot enrolls the keys
//! and resets; the kernel then reports Secure Boot enabled and our command line. With the same
//! variable store afterwards, a tampered UKI is refused.

mod common;

use common::secureboot::*;
use common::*;
use std::path::{Path, PathBuf};

const OVMF_VARS_EMPTY: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const DIGEST: &str = "5e1f0c2d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1";

fn sign(key_dir: &Path, input: &Path, out: &Path) {
    run_ok(
        bootseal()
            .arg("sign")
            .arg("--key")
            .arg(key_dir.join("db.key"))
            .arg("--cert")
            .arg(key_dir.join("db.crt"))
            .arg(input)
            .arg("-o")
            .arg(out),
    );
}

/// The ESP bootc install writes, with `uki` as the only boot entry.
fn esp_files(dir: &Path, boot: &Path, uki: &Path, auth_dir: &Path) -> Vec<(PathBuf, String)> {
    let conf = dir.join("loader.conf");
    std::fs::write(&conf, "timeout 0\nsecure-boot-enroll force\n").unwrap();
    let mut files = vec![
        (boot.to_path_buf(), "EFI/BOOT/BOOTX64.EFI".to_string()),
        (conf, "loader/loader.conf".into()),
        (uki.to_path_buf(), "EFI/Linux/sealed.efi".into()),
    ];
    for v in ["PK", "KEK", "db"] {
        files.push((
            auth_dir.join(format!("{v}.auth")),
            format!("loader/keys/auto/{v}.auth"),
        ));
    }
    files
}

#[test]
fn setup_mode_enrollment_by_systemd_boot_then_tampered_uki_refused() {
    require_file(OVMF_VARS_EMPTY, "ovmf");
    let d = scratch();
    let keys = d.path().join("keys");
    run_ok(bootseal().args(["keys", "create"]).arg(&keys));
    let uki = build_uki(
        d.path(),
        &format!("console=ttyS0 panic=-1 composefs={DIGEST} rw"),
        "uki.efi",
    );
    let signed_uki = d.path().join("signed-uki.efi");
    sign(&keys, &uki, &signed_uki);
    let boot = d.path().join("systemd-boot.efi");
    sign(&keys, Path::new(SYSTEMD_BOOT), &boot);

    let vars = d.path().join("vars.fd");
    std::fs::copy(OVMF_VARS_EMPTY, &vars).unwrap();
    let esp = make_esp_tree(d.path(), &esp_files(d.path(), &boot, &signed_uki, &keys));
    let (verdict, log) = boot_esp(&vars, &esp);
    assert!(
        log.contains("Enrolling secure boot keys"),
        "systemd-boot did not enroll: {verdict:?}"
    );
    match verdict {
        Verdict::Booted(line) => assert!(line.contains(&format!("composefs={DIGEST}")), "{line}"),
        v => panic!("sealed UKI did not boot after enrollment: {v:?}"),
    }
    assert!(
        log.contains("secureboot: Secure boot enabled"),
        "kernel does not report Secure Boot enabled"
    );

    // Same variable store: a one-byte change in the UKI's command line is refused.
    let mut b = std::fs::read(&signed_uki).unwrap();
    let pos = b.windows(10).position(|w| w == b"composefs=").unwrap() + 10;
    b[pos] = if b[pos] == b'0' { b'1' } else { b'0' };
    let tampered = d.path().join("tampered.efi");
    std::fs::write(&tampered, b).unwrap();
    let esp = make_esp_tree(d.path(), &esp_files(d.path(), &boot, &tampered, &keys));
    let (verdict, _) = boot_esp(&vars, &esp);
    assert!(
        matches!(verdict, Verdict::Rejected(_)),
        "tampered UKI was not refused: {verdict:?}"
    );
}
