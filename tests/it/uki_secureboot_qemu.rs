//! UEFI Secure Boot under OVMF + QEMU (TCG): a UKI built and signed by bootseal boots and
//! the kernel reports our `composefs=` command line; an unsigned, a wrongly signed and a
//! one-byte-tampered UKI are refused by the firmware.
//!
//! Firmware: Debian `ovmf`'s Secure Boot build with the snakeoil variable store (PK, KEK
//! and db = the snakeoil test certificate, Secure Boot enabled). The UKI is signed with the
//! matching test key (encrypted PKCS#8, passphrase "snakeoil"). Each case takes ~5–15 s.
//! Positive cases run with Debian's 252 stub and with systemd-stub 257.13 (Debian trixie).
//! A UKI made from an image carrying Debian 12's 252 stub, with no extra flag, boots without
//! the stub's "Overlapping PE sections" warning, which ukify's layout does trigger.

use crate::common;

use common::secureboot::*;
use common::*;
use std::path::Path;
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
    run_ok(&mut sign_cmd(&kp.key, &kp.cert, &uki, &signed));
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
    run_ok(&mut build_uki_cmd(
        kernel(),
        &initrd,
        &osrel,
        &u.stub,
        cmdline(),
        &uki,
    ));
    let signed = d.path().join("signed257.efi");
    sign_snakeoil(&uki, &signed);
    match boot(&signed) {
        Verdict::Booted(line) => assert!(line.contains(&format!("composefs={DIGEST}")), "{line}"),
        v => panic!("signed UKI with the 257 stub did not boot: {v:?}"),
    }
}

/// The 252 stub's complaint when a section starts before the previous one ends in memory.
const OVERLAP_WARNING: &str = "Overlapping PE sections";

#[test]
fn debian_12_stub_from_image_boots_without_overlap_warning() {
    let d = scratch();
    let built = bootc_image::build(d.path(), "base");
    let from = built.image.oci_ref();
    // `build-uki --from` is `seal` up to the unsigned UKI: same inputs, same layout.
    let build = |out: &Path, extra: &[&str]| -> String {
        stdout_of(
            bootseal()
                .args(["build-uki", "--no-sign-bootloader", "--from", &from])
                .args(extra)
                .arg("-o")
                .arg(out),
        )
        .trim()
        .to_owned()
    };
    let uki = d.path().join("uki.efi");
    let digest = build(&uki, &[]);
    assert_eq!(digest.len(), 128, "digest printed: {digest:?}");

    // Layout: one .sbat, holding the stub's and ukify's entries, and no two sections
    // overlapping in memory in table order (what the stub checks).
    let j: serde_json::Value = serde_json::from_str(&stdout_of(
        bootseal().arg("inspect").arg("--json").arg(&uki),
    ))
    .unwrap();
    assert_eq!(j["stub_version"], 252);
    let sections = j["sections"].as_array().unwrap();
    let names: Vec<&str> = sections
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == ".sbat").count(),
        1,
        "{names:?}"
    );
    let sbat = j["sbat"].as_str().unwrap();
    assert!(
        sbat.contains("\nsystemd,") && sbat.contains("\nuki,1,UKI"),
        "{sbat}"
    );
    let mut end = 0;
    for s in sections {
        let va = s["virtual_address"].as_u64().unwrap();
        assert!(
            va >= end,
            "{} at {va:#x} overlaps the previous section: {names:?}",
            s["name"]
        );
        end = va + s["virtual_size"].as_u64().unwrap();
    }

    let signed = d.path().join("signed.efi");
    sign_snakeoil(&uki, &signed);
    let (verdict, log) = boot_with_log(&signed);
    match verdict {
        Verdict::Booted(line) => assert!(line.contains(&format!("composefs={digest}")), "{line}"),
        v => panic!("UKI with the 252 stub did not boot: {v:?}"),
    }
    assert!(!log.contains(OVERLAP_WARNING), "stub warned:\n{log}");

    // Control: ukify's in-place .sbat (kept behind the flag) makes this stub warn, so the
    // absence of the warning above means something.
    let overlapping = d.path().join("overlapping.efi");
    build(&overlapping, &["--allow-section-overlap"]);
    let signed = d.path().join("overlapping-signed.efi");
    sign_snakeoil(&overlapping, &signed);
    let (verdict, log) = boot_with_log(&signed);
    assert!(matches!(verdict, Verdict::Booted(_)), "{verdict:?}");
    assert!(log.contains(OVERLAP_WARNING), "no overlap warning:\n{log}");
}
