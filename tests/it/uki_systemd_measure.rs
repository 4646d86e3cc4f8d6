//! PCR 11 prediction and `.pcrpkey`/`.pcrsig` against the real systemd 257.13 tools
//! (Debian trixie's `systemd-measure`, and `ukify` calling it): our `--measure --json`
//! equals `systemd-measure calculate` on the same sections, and a UKI with PCR
//! signatures is byte-identical to ukify's (RSA PKCS#1 v1.5 signatures are deterministic).

use crate::common;

use common::*;
use std::process::Command;

#[test]
fn measure_equals_systemd_measure_calculate() {
    let u = ukify();
    let tools = systemd_measure_tools();
    let d = scratch();
    let initrd = initramfs(d.path(), None);
    let osrel = d.path().join("os-release");
    std::fs::write(&osrel, "ID=bootseal-test\n").unwrap();
    let uki = d.path().join("uki.efi");
    let ours = stdout_of(
        build_uki_cmd(
            kernel(),
            &initrd,
            &osrel,
            &u.stub,
            "console=ttyS0 composefs=abc rw",
            &uki,
        )
        .args(["--measure", "--json"]),
    );
    let ours: serde_json::Value = serde_json::from_str(ours.trim()).unwrap();

    // systemd-measure on the sections as they are in the built UKI (read by objcopy).
    let mut cmd = Command::new(tools.join("systemd-measure"));
    cmd.arg("calculate").arg("--json=short");
    for name in [".linux", ".osrel", ".cmdline", ".initrd", ".uname", ".sbat"] {
        let data = objcopy_section(&uki, name, d.path());
        let f = d.path().join(format!("sec{name}"));
        std::fs::write(&f, data).unwrap();
        cmd.arg(format!("--{}={}", &name[1..], f.display()));
    }
    // Sections only (`--phase=:`) plus systemd-measure's default phase paths.
    let sections_only: serde_json::Value = serde_json::from_str(
        stdout_of(
            Command::new(cmd.get_program())
                .args(cmd.get_args())
                .arg("--phase=:"),
        )
        .trim(),
    )
    .unwrap();
    let phases: serde_json::Value = serde_json::from_str(stdout_of(&mut cmd).trim()).unwrap();
    for bank in ["sha1", "sha256", "sha384", "sha512"] {
        let ours = ours[bank].as_array().unwrap();
        assert_eq!(ours.len(), 5);
        assert_eq!(
            ours[0]["hash"], sections_only[bank][0]["hash"],
            "{bank} sections"
        );
        assert_eq!(
            &ours[1..],
            phases[bank].as_array().unwrap().as_slice(),
            "{bank} phases"
        );
    }
}

#[test]
fn pcr_signed_uki_identical_to_ukify_with_systemd_measure() {
    let u = ukify();
    let tools = systemd_measure_tools();
    let d = scratch();
    let initrd = initramfs(d.path(), None);
    let osrel = d.path().join("os-release");
    std::fs::write(&osrel, "ID=bootseal-test\n").unwrap();
    let (key, public) = pcr_keypair(d.path());
    let theirs = d.path().join("ukify.efi");
    run_ok(
        u.build()
            .arg("--tools")
            .arg(&tools)
            .arg("--linux")
            .arg(kernel())
            .arg("--initrd")
            .arg(&initrd)
            .arg(format!("--os-release=@{}", osrel.display()))
            .arg("--stub")
            .arg(&u.stub)
            .args(["--cmdline", "composefs=abc rw"])
            .arg("--pcr-private-key")
            .arg(&key)
            .arg("--pcr-public-key")
            .arg(&public)
            .arg("--output")
            .arg(&theirs),
    );
    let ours = d.path().join("ours.efi");
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
            .args(["--cmdline", "composefs=abc rw"])
            .arg("--pcr-private-key")
            .arg(&key)
            .arg("--pcr-public-key")
            .arg(&public)
            .arg("-o")
            .arg(&ours),
    );
    let (a, b) = (
        std::fs::read(&ours).unwrap(),
        std::fs::read(&theirs).unwrap(),
    );
    assert_eq!(a.len(), b.len(), "size differs from ukify's");
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!("first difference from ukify at byte {i:#x}");
    }
}
