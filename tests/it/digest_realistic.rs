//! The realistic Debian-based image (>= 300 MB, >= 20 layers, real kernel and initramfs): our
//! digest equals composefs-oci's for V1 and V2, and captured boot files are byte-exact.

use crate::common;

use std::process::Command;

use bootseal::digest::{DigestOptions, ErofsVersion};
use bootseal::tree::CaptureSet;
use common::our_digest;
use common::realistic::realistic_image;
use common::reference::reference_digest;

#[test]
fn realistic_image_matches_reference() {
    let r = realistic_image();
    assert!(
        r.image.layers.len() >= 20,
        "{} layers",
        r.image.layers.len()
    );
    let kver = &r.kver;
    let vmlinuz = format!("/usr/lib/modules/{kver}/vmlinuz");
    let initramfs = format!("/usr/lib/modules/{kver}/initramfs.img");
    let capture = CaptureSet::new()
        .with("/usr/lib/modules/*/vmlinuz")
        .with("/usr/lib/modules/*/initramfs.img")
        .with("/usr/lib/os-release")
        .with("/etc/os-release")
        .with("/usr/lib/bootc/kargs.d/*.toml");
    for version in [ErofsVersion::V1, ErofsVersion::V2] {
        let opts = DigestOptions {
            erofs_version: version,
            capture: capture.clone(),
            ..Default::default()
        };
        let ours = our_digest(&r.image, &opts).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            ours.uncompressed_bytes >= 300_000_000,
            "{} bytes",
            ours.uncompressed_bytes
        );
        assert_eq!(
            ours.digest_hex,
            reference_digest(&r.image, version.number()),
            "V{} digest of the realistic image differs from composefs-oci",
            version.number()
        );
        assert!(ours.warnings.is_empty(), "{:?}", ours.warnings);
        eprintln!("{}", ours.to_json());
        if version == ErofsVersion::V1 {
            assert_eq!(
                ours.captured.read(&vmlinuz).unwrap(),
                std::fs::read(&r.vmlinuz).unwrap()
            );
            let initrd = ours.captured.read(&initramfs).unwrap();
            assert_eq!(initrd, std::fs::read(&r.initramfs).unwrap());
            // The captured initramfs is a real cpio archive with our init.
            common::require_tool("cpio");
            // (the captured bytes equal this file, asserted above)
            let list = Command::new("sh")
                .arg("-c")
                .arg("zstd -dc < \"$IMG\" | cpio -t --quiet")
                .env("IMG", &r.initramfs)
                .output()
                .unwrap();
            assert!(
                list.status.success(),
                "{}",
                String::from_utf8_lossy(&list.stderr)
            );
            let names = String::from_utf8_lossy(&list.stdout);
            assert!(names.lines().any(|l| l == "init"), "{names}");
            assert!(names.lines().any(|l| l.ends_with("erofs.ko")), "{names}");
            assert!(
                ours.captured
                    .read("/etc/os-release")
                    .unwrap()
                    .starts_with(b"NAME=")
            );
        }
    }
}
