//! The modular workflow for external signing: `build-uki --from` writes the unsigned pieces and
//! prints the digest, an outside tool (sbsign here) signs them, and `seal --uki --bootloader`
//! completes the seal after checking the UKI carries this image's digest.

use crate::common;

use common::image_builder::{BuiltImage, E};
use common::reference::reference_digest;
use common::{bootc_image, bootseal, keypair, run_ok, scratch, stdout_of};
use std::path::Path;
use std::process::Command;

fn sbsign(keys: &common::KeyPair, input: &Path, output: &Path) {
    run_ok(
        Command::new("sbsign")
            .arg("--key")
            .arg(&keys.key)
            .arg("--cert")
            .arg(&keys.cert)
            .arg("--output")
            .arg(output)
            .arg(input),
    );
}

#[test]
fn build_uki_then_sign_elsewhere_then_seal() {
    common::require_tool("sbsign");
    let tmp = scratch();
    let t = tmp.path();
    let built = bootc_image::build(t, "base");
    let keys = keypair(t, "db", 2048);
    let from = built.image.oci_ref();

    run_ok(
        bootseal()
            .args([
                "build-uki",
                "--allow-section-overlap",
                "--from",
                &from,
                "--bootloader-out",
            ])
            .arg(t.join("sd.efi")),
    );
    assert_eq!(
        std::fs::read(t.join("sd.efi")).unwrap(),
        std::fs::read(common::SYSTEMD_BOOT).unwrap()
    );
    sbsign(&keys, &t.join("sd.efi"), &t.join("sd.signed"));

    let digest = stdout_of(
        bootseal()
            .args([
                "build-uki",
                "--allow-section-overlap",
                "--from",
                &from,
                "--bootloader",
            ])
            .arg(t.join("sd.signed"))
            .arg("-o")
            .arg(t.join("uki.efi")),
    );
    let digest = digest.trim().to_owned();
    assert_eq!(digest.len(), 128);
    sbsign(&keys, &t.join("uki.efi"), &t.join("uki.signed"));

    let out = t.join("out");
    run_ok(
        bootseal()
            .args(["seal", "--from", &from, "--to"])
            .arg(format!("oci:{}:ext", out.display()))
            .arg("--uki")
            .arg(t.join("uki.signed"))
            .arg("--bootloader")
            .arg(t.join("sd.signed"))
            .arg("--cert")
            .arg(&keys.cert),
    );
    let sealed = BuiltImage::load(&out, "ext");
    assert_eq!(
        reference_digest(&sealed, 1),
        digest,
        "the printed digest is the sealed image's"
    );
    let verdict = stdout_of(
        bootseal()
            .arg("verify")
            .arg(format!("oci:{}:ext", out.display()))
            .arg("--cert")
            .arg(&keys.cert),
    );
    assert!(verdict.contains("verdict: sealed and valid"), "{verdict}");

    // A UKI made for another tree (vmlinuz kept) is refused, naming both digests.
    let other = stdout_of(
        bootseal()
            .args([
                "build-uki",
                "--allow-section-overlap",
                "--keep-kernel",
                "--from",
                &from,
                "--bootloader",
            ])
            .arg(t.join("sd.signed"))
            .arg("-o")
            .arg(t.join("other.efi")),
    );
    let refused = bootseal()
        .args(["seal", "--from", &from, "--to"])
        .arg(format!("oci:{}:bad", out.display()))
        .arg("--uki")
        .arg(t.join("other.efi"))
        .arg("--bootloader")
        .arg(t.join("sd.signed"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&format!("--uki: composefs={} names digest", other.trim()))
            && err.contains(&format!("the layers give {digest}")),
        "{err}"
    );

    // An unsigned UKI is refused when --cert is given.
    let unsigned = bootseal()
        .args(["seal", "--from", &from, "--to"])
        .arg(format!("oci:{}:bad", out.display()))
        .arg("--uki")
        .arg(t.join("uki.efi"))
        .arg("--bootloader")
        .arg(t.join("sd.signed"))
        .arg("--cert")
        .arg(&keys.cert)
        .output()
        .unwrap();
    assert!(!unsigned.status.success());
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("--uki: signature check failed"));
    let index = std::fs::read_to_string(out.join("index.json")).unwrap();
    assert!(!index.contains("\"bad\""), "nothing was tagged");
}

#[test]
fn images_without_exactly_one_kernel_are_refused() {
    let tmp = scratch();
    let t = tmp.path();
    // build-uki --from on an image must fail, write nothing, and say why.
    let refused = |image: &BuiltImage| {
        let out = bootseal()
            .args([
                "build-uki",
                "--no-sign-bootloader",
                "--from",
                &image.oci_ref(),
                "-o",
            ])
            .arg(t.join("x.efi"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(!t.join("x.efi").exists());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let (img, kver, _, _) = bootc_image::layers(
        t,
        vec![
            E::dir("usr/lib/modules/9.9.9-other"),
            E::file("usr/lib/modules/9.9.9-other/vmlinuz", vec![1u8; 100]),
        ],
    );
    let err = refused(&img.write(&t.join("two"), "two"));
    assert!(
        err.contains(&format!("image has 2 kernels (/usr/lib/modules/{kver}/vmlinuz, /usr/lib/modules/9.9.9-other/vmlinuz)")),
        "{err}"
    );
    let (img, _, _, _) = bootc_image::layers(
        t,
        vec![E::whiteout(&format!("usr/lib/modules/{kver}/vmlinuz"))],
    );
    let err = refused(&img.write(&t.join("none"), "none"));
    assert!(
        err.contains("not a bootc image: no kernel at /usr/lib/modules/<kver>/vmlinuz"),
        "{err}"
    );
}

/// `--stub-from IMAGE` takes the stub out of another image (e.g. a buildroot): the UKI equals
/// the one built with that stub given as a file.
#[test]
fn stub_from_an_image_equals_stub_from_a_file() {
    let tmp = scratch();
    let t = tmp.path();
    let built = bootc_image::build(t, "base");
    let initrd = t.join("initrd.img");
    std::fs::write(&initrd, &built.initrd).unwrap();
    let osrel = t.join("os-release");
    std::fs::write(&osrel, "NAME=x\n").unwrap();
    let build = |extra: &[&str], out: &str| {
        run_ok(
            bootseal()
                .args([
                    "build-uki",
                    "--allow-section-overlap",
                    "--cmdline",
                    "composefs=00 rw",
                    "--linux",
                ])
                .arg(common::kernel())
                .arg("--initrd")
                .arg(&initrd)
                .arg("--os-release")
                .arg(&osrel)
                .args(extra)
                .arg("-o")
                .arg(t.join(out)),
        );
        std::fs::read(t.join(out)).unwrap()
    };
    let from_image = build(&["--stub-from", &built.image.oci_ref()], "a.efi");
    let from_file = build(&["--stub", common::STUB], "b.efi");
    assert_eq!(from_image, from_file);
}
