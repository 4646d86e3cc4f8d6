//! README's first command, `demo/seal-demo.sh --boot`, does the whole job on its embedded
//! default: builds a bootc-like image from Debian packages, starts a registry, creates Secure
//! Boot keys, seals with `--enroll-keys`, verifies, and boots a blank OVMF (setup mode) on which
//! systemd-boot enrolls the keys from the sealed image before the sealed UKI boots; then a second
//! db certificate (`keys auth --append`) is applied through efivarfs and a UKI signed by it boots.

use crate::common;

use common::{require_tool, run_ok};
use std::process::Command;

#[test]
fn readme_demo_seals_verifies_and_boots() {
    for t in [
        "umoci",
        "skopeo",
        "docker-registry",
        "curl",
        "qemu-system-x86_64",
        "mkfs.vfat",
        "mcopy",
    ] {
        require_tool(t);
    }
    let work = common::cache_dir().join("demo");
    let out = run_ok(
        Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/demo/seal-demo.sh"))
            .arg("--boot")
            .env("BOOTSEAL", env!("CARGO_BIN_EXE_bootseal"))
            .env("DEMO_WORK", &work),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verdict: sealed and valid"), "{text}");
    let digest = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("[ok] composefs digest: composefs="))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line in:\n{text}"));
    let booted = text
        .lines()
        .find(|l| l.contains("the kernel says:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        booted.contains(&format!("Command line: composefs={digest} rw")),
        "{booted}"
    );
    assert!(
        text.contains("Enrolling secure boot keys from directory: \\loader\\keys\\auto"),
        "{text}"
    );
    assert!(
        text.contains("the kernel reports: secureboot: Secure boot enabled"),
        "{text}"
    );
    assert!(
        text.contains("before the update, the firmware refuses the UKI signed by the new key")
            && text.contains("bootseal-demo: db update applied")
            && text.contains("after the update, the UKI signed by the new key boots")
            && text.contains("bootseal-demo=db2"),
        "{text}"
    );
    assert!(
        text.contains("[ok] enrollment payload auto")
            && text.contains("[ok] UKI signature chains to db of auto"),
        "{text}"
    );
}
