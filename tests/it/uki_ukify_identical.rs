//! `bootseal build-uki` output is byte-identical to real `ukify build` 257.13 (Debian
//! trixie's systemd-ukify, run with PyPI pefile) for the same inputs: with systemd-stub
//! 257.13 (elf2efi layout, 4 KiB sections) and with Debian bookworm's 252 stub, with and
//! without initrd, cmdline as text or @file, given uname and extra SBAT; and for aarch64
//! (trixie's linuxaa64.efi.stub and arm64 kernel).

use crate::common;

use common::*;
use std::path::Path;
use std::process::Command;

fn sha256(p: &Path) -> String {
    let out = stdout_of(Command::new("sha256sum").arg(p));
    out.split_whitespace().next().unwrap().to_string()
}

fn assert_identical(ours: &Path, theirs: &Path) {
    let (a, b) = (std::fs::read(ours).unwrap(), std::fs::read(theirs).unwrap());
    assert_eq!(a.len(), b.len(), "size differs from ukify's");
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!(
            "first difference from ukify at byte {i:#x}: ours {:#04x}, ukify {:#04x}",
            a[i], b[i]
        );
    }
    assert_eq!(sha256(ours), sha256(theirs));
}

/// The inputs both tools get; each `*_cmd` spells them in that tool's flags.
struct Inputs<'a> {
    kernel: &'a Path,
    initrd: Option<&'a Path>,
    os_release: &'a Path,
    stub: &'a Path,
    /// Text, or `@FILE`.
    cmdline: &'a str,
}

impl Inputs<'_> {
    fn ukify_cmd(&self, u: &Ukify, output: &Path) -> Command {
        let mut c = u.build();
        c.arg("--linux").arg(self.kernel);
        if let Some(i) = self.initrd {
            c.arg("--initrd").arg(i);
        }
        c.arg(format!("--os-release=@{}", self.os_release.display()))
            .arg("--stub")
            .arg(self.stub)
            .arg(format!("--cmdline={}", self.cmdline))
            .arg("--output")
            .arg(output);
        c
    }

    fn bootseal_cmd(&self, output: &Path) -> Command {
        let mut c = bootseal();
        c.arg("build-uki").arg("--linux").arg(self.kernel);
        if let Some(i) = self.initrd {
            c.arg("--initrd").arg(i);
        }
        c.arg("--os-release")
            .arg(self.os_release)
            .arg("--stub")
            .arg(self.stub)
            .arg(format!("--cmdline={}", self.cmdline))
            .arg("-o")
            .arg(output);
        c
    }
}

#[test]
fn identical_to_ukify_257_with_257_stub() {
    let u = ukify();
    let d = scratch();
    let k = kernel();
    let initrd = initramfs(d.path(), None);
    let osrel = d.path().join("os-release");
    std::fs::write(
        &osrel,
        "NAME=\"Bootseal Test\"\nID=bootseal-test\nVERSION_ID=1\n",
    )
    .unwrap();
    let cmdline = "console=ttyS0   composefs=0123abcd rw \n";

    let inputs = Inputs {
        kernel: &k,
        initrd: Some(&initrd),
        os_release: &osrel,
        stub: &u.stub,
        cmdline,
    };
    let theirs = d.path().join("ukify.efi");
    run_ok(&mut inputs.ukify_cmd(&u, &theirs));
    let ours = d.path().join("ours.efi");
    run_ok(&mut inputs.bootseal_cmd(&ours));
    assert_identical(&ours, &theirs);
    let j: serde_json::Value = serde_json::from_str(&stdout_of(
        bootseal().arg("inspect").arg("--json").arg(&ours),
    ))
    .unwrap();
    assert_eq!(j["stub_version"], 257);
    assert_eq!(j["sections"][3]["name"], ".sbat");

    // Signed by ukify through sbsign vs signed by bootseal: same Authenticode digest.
    let kp = keypair(d.path(), "k", 2048);
    let theirs_signed = d.path().join("ukify-signed.efi");
    run_ok(
        inputs
            .ukify_cmd(&u, &theirs_signed)
            .args(["--signtool", "sbsign"])
            .arg("--secureboot-private-key")
            .arg(&kp.key)
            .arg("--secureboot-certificate")
            .arg(&kp.cert),
    );
    let ours_signed = d.path().join("ours-signed.efi");
    run_ok(&mut sign_cmd(&kp.key, &kp.cert, &ours, &ours_signed));
    assert_eq!(pesign_hash(&ours_signed), pesign_hash(&theirs_signed));
    run_ok(
        bootseal()
            .arg("verify-pe")
            .arg(&theirs_signed)
            .arg("--cert")
            .arg(&kp.cert),
    );
}

#[test]
fn identical_to_ukify_257_cmdline_file_uname_sbat_no_initrd() {
    let u = ukify();
    let d = scratch();
    let k = kernel();
    let osrel = d.path().join("os-release");
    std::fs::write(&osrel, "ID=x\n").unwrap();
    let cl = d.path().join("cmdline");
    std::fs::write(&cl, "root=x  quiet\n").unwrap();
    let sbat = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nbootseal,1,Bootseal,bootseal,1,https://example.invalid/\n";
    let cmdline = format!("@{}", cl.display());
    let inputs = Inputs {
        kernel: &k,
        initrd: None,
        os_release: &osrel,
        stub: &u.stub,
        cmdline: &cmdline,
    };
    let extra = ["--uname", "9.8.7-test", "--sbat", sbat];
    let theirs = d.path().join("ukify.efi");
    run_ok(inputs.ukify_cmd(&u, &theirs).args(extra));
    let ours = d.path().join("ours.efi");
    run_ok(inputs.bootseal_cmd(&ours).args(extra));
    assert_identical(&ours, &theirs);
}

#[test]
fn identical_to_ukify_257_with_debian_252_stub() {
    let u = ukify();
    let d = scratch();
    let k = kernel();
    let initrd = initramfs(d.path(), None);
    let osrel = d.path().join("os-release");
    std::fs::write(&osrel, "ID=x\n").unwrap();
    let stub = Path::new(STUB);
    let inputs = Inputs {
        kernel: &k,
        initrd: Some(&initrd),
        os_release: &osrel,
        stub,
        cmdline: "composefs=abc rw",
    };
    let theirs = d.path().join("ukify.efi");
    run_ok(&mut inputs.ukify_cmd(&u, &theirs));
    let ours = d.path().join("ours.efi");
    // ukify writes the overlapping .sbat silently; we only do so when asked.
    run_ok(inputs.bootseal_cmd(&ours).arg("--allow-section-overlap"));
    assert_identical(&ours, &theirs);
}

#[test]
fn identical_to_ukify_257_for_aarch64() {
    let u = ukify();
    let (stub, k) = arm64_inputs();
    let d = scratch();
    let initrd = initramfs(d.path(), None);
    let osrel = d.path().join("os-release");
    std::fs::write(&osrel, "ID=x\n").unwrap();
    let inputs = Inputs {
        kernel: &k,
        initrd: Some(&initrd),
        os_release: &osrel,
        stub: &stub,
        cmdline: "composefs=abc rw",
    };
    let theirs = d.path().join("ukify.efi");
    run_ok(&mut inputs.ukify_cmd(&u, &theirs));
    let ours = d.path().join("ours.efi");
    run_ok(&mut inputs.bootseal_cmd(&ours));
    assert_identical(&ours, &theirs);
    // The release comes from the Image's "Linux version" banner (no x86 boot header).
    let j: serde_json::Value = serde_json::from_str(&stdout_of(
        bootseal().arg("inspect").arg("--json").arg(&ours),
    ))
    .unwrap();
    assert_eq!(j["arch"], "aa64");
    assert_eq!(j["uname"].as_str().unwrap(), kernel_release(&k));
}
