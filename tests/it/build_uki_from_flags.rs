//! `build-uki --from IMAGE` takes its inputs from the image: flags naming file inputs are
//! refused by the parser (never accepted and ignored), image-only flags are refused without
//! `--from`, and the PCR flags that make sense for an image's UKI (`--measure`,
//! `--pcr-private-key`) are honoured. Both outputs come from one read of the image.

use crate::common;

use common::{bootc_image, bootseal, keypair, run_ok, scratch, stdout_of};

/// A parser refusal: exit code 2 (clap's usage error), naming the flag, nothing written.
fn assert_refused(args: &[&str], flag: &str, out: &std::path::Path) {
    let o = bootseal().args(args).arg("-o").arg(out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?} was not refused: {err}");
    assert!(err.contains(flag), "{args:?}: {err}");
    assert!(!out.exists(), "{args:?} wrote {}", out.display());
}

#[test]
fn file_input_flags_are_refused_with_from() {
    let tmp = scratch();
    let out = tmp.path().join("uki.efi");
    // The image does not exist: a flag the parser let through would fail later, with exit 1.
    let from = format!("oci:{}:x", tmp.path().join("nowhere").display());
    for (flag, value) in [
        ("--cmdline", "quiet evil"),
        ("--sbat", "sbat,1,x\n"),
        ("--uname", "6.1.0-evil"),
        ("--linux", "/etc/hostname"),
        ("--initrd", "/etc/hostname"),
        ("--os-release", "/etc/os-release"),
        ("--stub-version", "257"),
    ] {
        assert_refused(&["build-uki", "--from", &from, flag, value], flag, &out);
    }
}

#[test]
fn image_only_flags_are_refused_without_from() {
    let tmp = scratch();
    let out = tmp.path().join("uki.efi");
    let files = [
        "build-uki",
        "--linux",
        "/etc/hostname",
        "--os-release",
        "/etc/os-release",
        "--stub",
        common::STUB,
    ];
    // Checked after parsing (clap cannot tie them to --from): exit 1, named, nothing written.
    for (flag, value) in [
        ("--karg", "quiet"),
        ("--keep-kernel", ""),
        ("--no-sign-bootloader", ""),
        ("--bootloader", "/etc/hostname"),
        ("--bootloader-out", "/tmp/never-written.efi"),
        ("--enroll-keys", "/etc"),
        ("--erofs-version", "2"),
        ("--composefs-compat", "0.9.4"),
        ("--composefs-arg", "composefs.digest"),
    ] {
        let o = bootseal()
            .args(files)
            .arg(flag)
            .args((!value.is_empty()).then_some(value))
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{flag}: {err}");
        assert!(
            err.contains(&format!("{flag} applies to --from IMAGE only")),
            "{err}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn measure_and_pcr_signing_are_honoured_with_from() {
    let tmp = scratch();
    let t = tmp.path();
    let built = bootc_image::build(t, "base");
    let pcr_key = keypair(t, "pcr", 2048);
    let from = built.image.oci_ref();
    let uki = t.join("uki.efi");
    let sd = t.join("sd.efi");
    // One run writes both outputs; --measure prints the PCR 11 prediction before the digest.
    let printed = stdout_of(
        bootseal()
            .args(["build-uki", "--from", &from, "--no-sign-bootloader"])
            .args(["--measure", "--json", "--pcr-private-key"])
            .arg(&pcr_key.key)
            .arg("--bootloader-out")
            .arg(&sd)
            .arg("-o")
            .arg(&uki),
    );
    assert_eq!(
        std::fs::read(&sd).unwrap(),
        std::fs::read(common::SYSTEMD_BOOT).unwrap(),
        "--bootloader-out is the image's systemd-boot"
    );
    let mut lines = printed.lines();
    let measured: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let digest = lines.next().unwrap();
    assert_eq!(digest.len(), 128, "{printed}");

    // The prediction is the UKI's own (as `inspect` computes it from the written file), and
    // the UKI carries the signed policy.
    let report: serde_json::Value =
        serde_json::from_str(&stdout_of(bootseal().args(["inspect", "--json"]).arg(&uki))).unwrap();
    assert_eq!(report["pcr11"], measured, "{printed}");
    let sections: Vec<&str> = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        sections.contains(&".pcrsig") && sections.contains(&".pcrpkey"),
        "{sections:?}"
    );
    assert!(
        report["cmdline"]
            .as_str()
            .unwrap()
            .contains(&format!("composefs={digest}")),
        "{report}"
    );

    // The same digest as a run without the PCR flags: they change the UKI, not the tree.
    let plain = stdout_of(
        bootseal()
            .args(["build-uki", "--from", &from, "--no-sign-bootloader", "-o"])
            .arg(t.join("plain.efi")),
    );
    assert_eq!(plain.trim(), digest);
    run_ok(bootseal().args(["inspect"]).arg(t.join("plain.efi")));
}
