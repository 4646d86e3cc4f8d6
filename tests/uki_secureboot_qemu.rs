//! UEFI Secure Boot under OVMF + QEMU (TCG): a UKI built and signed by bootseal boots and
//! the kernel reports our `composefs=` command line; an unsigned, a wrongly signed and a
//! one-byte-tampered UKI are refused by the firmware.
//!
//! Firmware: Debian `ovmf`'s Secure Boot build with the snakeoil variable store (PK, KEK
//! and db = the snakeoil test certificate, Secure Boot enabled). The UKI is signed with the
//! matching test key (encrypted PKCS#8, passphrase "snakeoil"). Each case takes ~5–15 s.
//! Positive cases run with Debian's 252 stub and with systemd-stub 257.13 (Debian trixie).

mod common;

use common::secureboot::*;
use common::*;
use std::process::Command;

const DIGEST: &str = "0b1d5e8a3f6c2d9e7a4b1c8f5e2d9a6b3c0f7e4d1a8b5c2f9e6d3a0b7c4f1e8d5a2b9c6f3e0d7a4b1c8f5e2d9a6b3c0f7e4d1a8b5c2f9e6d3a0b7c4f1e8d5a";

fn cmdline() -> String {
    format!("console=ttyS0 panic=-1 composefs={DIGEST} rw")
}

#[test]
fn signed_uki_boots_with_composefs_cmdline() {
    let d = scratch();
    let uki = build_uki(d.path(), &cmdline(), "uki.efi");
    let signed = d.path().join("signed.efi");
    sign_snakeoil(&uki, &signed);
    match boot(&signed) {
        Verdict::Booted(line) => assert!(line.contains(&format!("composefs={DIGEST}")), "{line}"),
        v => panic!("signed UKI did not boot: {v:?}"),
    }
}

#[test]
fn unsigned_uki_is_refused() {
    let d = scratch();
    let uki = build_uki(d.path(), &cmdline(), "uki.efi");
    assert!(
        matches!(boot(&uki), Verdict::Rejected(_)),
        "unsigned UKI was not refused"
    );
}

#[test]
fn uki_signed_with_key_not_in_db_is_refused() {
    let d = scratch();
    let uki = build_uki(d.path(), &cmdline(), "uki.efi");
    let kp = keypair(d.path(), "not-in-db", 2048);
    let signed = d.path().join("signed.efi");
    run_ok(
        bootseal()
            .arg("sign")
            .arg("--key")
            .arg(&kp.key)
            .arg("--cert")
            .arg(&kp.cert)
            .arg(&uki)
            .arg("-o")
            .arg(&signed),
    );
    // The signature itself is fine: only trust is missing.
    run_ok(
        Command::new("sbverify")
            .arg("--cert")
            .arg(&kp.cert)
            .arg(&signed),
    );
    assert!(
        matches!(boot(&signed), Verdict::Rejected(_)),
        "UKI signed by an untrusted key was not refused"
    );
}

#[test]
fn tampered_signed_uki_is_refused() {
    let d = scratch();
    let uki = build_uki(d.path(), &cmdline(), "uki.efi");
    let signed = d.path().join("signed.efi");
    sign_snakeoil(&uki, &signed);
    let mut b = std::fs::read(&signed).unwrap();
    let pos = b
        .windows(10)
        .position(|w| w == b"composefs=")
        .expect("cmdline in UKI")
        + 10;
    b[pos] = if b[pos] == b'0' { b'1' } else { b'0' };
    let tampered = d.path().join("tampered.efi");
    std::fs::write(&tampered, b).unwrap();
    assert!(
        matches!(boot(&tampered), Verdict::Rejected(_)),
        "tampered UKI was not refused"
    );
}

#[test]
fn signed_uki_with_systemd_257_stub_boots() {
    // systemd-stub 257.13 from Debian trixie (elf2efi layout, as Fedora/CentOS stubs).
    let u = ukify();
    let d = scratch();
    let initrd = initramfs(d.path(), None);
    let osrel = d.path().join("os-release");
    std::fs::write(&osrel, "ID=bootseal-test\n").unwrap();
    let uki = d.path().join("uki257.efi");
    run_ok(
        bootseal()
            .arg("build-uki")
            .arg("--linux")
            .arg(kernel())
            .arg("--initrd")
            .arg(&initrd)
            .arg("--os-release")
            .arg(&osrel)
            .arg("--stub")
            .arg(&u.stub)
            .arg("--cmdline")
            .arg(cmdline())
            .arg("-o")
            .arg(&uki),
    );
    let signed = d.path().join("signed257.efi");
    sign_snakeoil(&uki, &signed);
    match boot(&signed) {
        Verdict::Booted(line) => assert!(line.contains(&format!("composefs={DIGEST}")), "{line}"),
        v => panic!("signed UKI with the 257 stub did not boot: {v:?}"),
    }
}
