//! `bootseal build-addon` output is byte-identical to real `ukify build` 257.13 without
//! `--linux` (Debian trixie's systemd-ukify, PyPI pefile) with trixie's `addonx64.efi.stub`
//! (systemd-boot-efi 257.13): cmdline as text and as @FILE, default and given SBAT. Signed, it
//! verifies with sbverify; a composefs argument or a UKI stub is refused.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};

/// trixie's add-on stub, from the same systemd-boot-efi package as `ukify().stub`.
fn addon_stub(u: &Ukify) -> PathBuf {
    let p = u.stub.with_file_name("addonx64.efi.stub");
    assert!(
        p.is_file(),
        "trixie systemd-boot-efi has no {}",
        p.display()
    );
    p
}

fn assert_same_bytes(ours: &Path, theirs: &Path) {
    let (a, b) = (std::fs::read(ours).unwrap(), std::fs::read(theirs).unwrap());
    assert_eq!(a.len(), b.len(), "size differs from ukify's");
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!(
            "first difference from ukify at byte {i:#x}: ours {:#04x}, ukify {:#04x}",
            a[i], b[i]
        );
    }
}

#[test]
fn build_addon_is_identical_to_ukify_257() {
    let u = ukify();
    let stub = addon_stub(&u);
    let d = scratch();
    let cmdline_file = d.path().join("cmdline");
    std::fs::write(&cmdline_file, "systemd.log_level=debug\n").unwrap();
    let cmdline_at = format!("@{}", cmdline_file.display());
    let sbat = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nexample-addon,1,Example,example,1,https://example.org/\n";
    let cases: [(&str, &[&str]); 3] = [
        ("console=ttyS0   systemd.log_level=debug  \n", &[]),
        (&cmdline_at, &[]),
        ("iommu=pt", &["--sbat", sbat]),
    ];
    for (i, (cmdline, more)) in cases.iter().enumerate() {
        let theirs = d.path().join(format!("ukify-{i}.addon.efi"));
        run_ok(
            u.build()
                .arg("--stub")
                .arg(&stub)
                .arg(format!("--cmdline={cmdline}"))
                .args(*more)
                .arg("--output")
                .arg(&theirs),
        );
        let ours = d.path().join(format!("ours-{i}.addon.efi"));
        run_ok(
            bootseal()
                .arg("build-addon")
                .arg("--stub")
                .arg(&stub)
                .arg(format!("--cmdline={cmdline}"))
                .args(*more)
                .arg("-o")
                .arg(&ours),
        );
        assert_same_bytes(&ours, &theirs);
    }

    // Signed by bootseal, sbverify accepts it; its .cmdline is the normalised text.
    let kp = keypair(d.path(), "db", 2048);
    let ours = d.path().join("ours-0.addon.efi");
    let signed = d.path().join("signed.addon.efi");
    run_ok(&mut sign_cmd(&kp.key, &kp.cert, &ours, &signed));
    require_tool("sbverify");
    run_ok(
        std::process::Command::new("sbverify")
            .arg("--cert")
            .arg(&kp.cert)
            .arg(&signed),
    );
    assert_eq!(
        objcopy_section(&signed, ".cmdline", d.path()),
        b"console=ttyS0 systemd.log_level=debug"
    );
}

#[test]
fn build_addon_refuses_composefs_and_uki_stubs() {
    let u = ukify();
    let stub = addon_stub(&u);
    let d = scratch();
    for text in ["quiet composefs=abc", "Composefs.Digest=v1-sha512-12:ab"] {
        let out = bootseal()
            .arg("build-addon")
            .arg("--stub")
            .arg(&stub)
            .args(["--cmdline", text])
            .arg("-o")
            .arg(d.path().join("x.addon.efi"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("x.addon.efi") && err.contains("composefs"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!d.path().join("x.addon.efi").exists());
    }
    let out = bootseal()
        .arg("build-addon")
        .arg("--stub")
        .arg(&u.stub)
        .args(["--cmdline", "quiet"])
        .arg("-o")
        .arg(d.path().join("y.addon.efi"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an add-on stub"), "{err}");
}
