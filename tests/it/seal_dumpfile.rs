//! `seal` writes `/boot/<kver>.dump`: byte-identical to composefs-rs 0.9.0's own dumpfile writer
//! (`composefs::dumpfile::write_dumpfile`) on the tree composefs-oci builds from the sealed
//! image after composefs-boot's `transform_for_boot`, which is what bootc diffs against when it
//! finds a UKI's digest wrong. The file leaves the digest as it is (the boot transform empties
//! /boot), and `--no-dumpfile` leaves it out.

use crate::common;

use common::bootc_image;
use common::image_builder::{BuiltImage, E, layer_tar};
use common::reference::{reference_digest, reference_dumpfile};
use common::{keypair, run_ok, scratch, seal_cmd};
use std::io::Read;

/// The files of the image's top layer: (path, bytes).
fn top_layer_files(image: &BuiltImage) -> Vec<(String, Vec<u8>)> {
    let (tar, _) = layer_tar(image.layers.last().unwrap());
    let mut archive = tar::Archive::new(&tar[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (path, bytes)
        })
        .collect()
}

fn uki_digest(files: &[(String, Vec<u8>)], kver: &str) -> String {
    let uki = &files
        .iter()
        .find(|(p, _)| *p == format!("boot/EFI/Linux/{kver}.efi"))
        .expect("UKI in the sealed layer")
        .1;
    let report = bootseal::uki::inspect(uki).unwrap();
    let cmdline = report.cmdline.unwrap();
    cmdline
        .split(' ')
        .find_map(|a| a.strip_prefix("composefs="))
        .expect("composefs= on the UKI's command line")
        .to_owned()
}

#[test]
fn sealed_dumpfile_is_composefs_rs_dumpfile_and_leaves_the_digest_alone() {
    let tmp = scratch();
    // Entries that exercise the dumpfile's escaping and entry kinds: xattrs, hard links,
    // symlinks, devices, names with spaces, backslashes and '=', small (inline) files, and
    // files under /boot that the bootable tree must not list.
    let extra = vec![
        E::dir("usr/share"),
        E::file("usr/share/with space=and\\slash", "inline\n"),
        E::file("usr/bin/ping", vec![7u8; 3000])
            .mode(0o755)
            .xattr("security.capability", &[1, 0, 0, 2, 0, 0x20, 0, 0]),
        E::hardlink("usr/bin/ping6", "usr/bin/ping"),
        E::symlink("usr/bin/pong", "ping"),
        E::dir("usr/lib/dev"),
        E::chardev("usr/lib/dev/null", 1, 3),
        E::fifo("usr/lib/dev/fifo"),
        E::dir("boot/grub2"),
        E::file("boot/grub2/grub.cfg", "set timeout=1\n"),
    ];
    let (img, kver, _, _) = bootc_image::layers(tmp.path(), extra);
    let base = img.write(&tmp.path().join("layout"), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    let seal = |tag: &str, more: &[&str]| {
        run_ok(
            seal_cmd(
                &base.oci_ref(),
                &format!("oci:{}:{tag}", out.display()),
                &keys,
            )
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(more),
        );
        BuiltImage::load(&out, tag)
    };

    let sealed = seal("sealed", &[]);
    let files = top_layer_files(&sealed);
    let dump_path = format!("boot/{kver}.dump");
    let dump = &files
        .iter()
        .find(|(p, _)| *p == dump_path)
        .unwrap_or_else(|| panic!("{dump_path} not in the sealed layer"))
        .1;
    let reference = reference_dumpfile(&sealed);
    assert_eq!(
        String::from_utf8_lossy(dump),
        reference,
        "/{dump_path} differs from composefs-rs's dumpfile of the sealed image"
    );
    // What the comparison covered: /boot is listed but emptied, the kernel the UKI replaced is
    // gone, the escaped name and the capability are there.
    assert!(reference.lines().any(|l| l.starts_with("/boot ")));
    assert!(
        !reference.lines().any(|l| l.starts_with("/boot/")),
        "{reference}"
    );
    assert!(!reference.contains("/vmlinuz "));
    assert!(reference.contains("/usr/share/with\\x20space=and\\\\slash "));
    assert!(reference.contains("security.capability="));

    // The digest: the UKI's composefs= is composefs-oci's digest of the sealed image, and the
    // same as without the dumpfile.
    let digest = reference_digest(&sealed, 1);
    assert_eq!(uki_digest(&files, &kver), digest);

    let plain = seal("plain", &["--no-dumpfile"]);
    let plain_files = top_layer_files(&plain);
    assert!(
        plain_files.iter().all(|(p, _)| !p.ends_with(".dump")),
        "--no-dumpfile still wrote a dumpfile"
    );
    assert_eq!(uki_digest(&plain_files, &kver), digest);
    assert_eq!(reference_digest(&plain, 1), digest);
    assert_ne!(
        plain.manifest_digest, sealed.manifest_digest,
        "the dumpfile is part of the sealed layer"
    );
}
