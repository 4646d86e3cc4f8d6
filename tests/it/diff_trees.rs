//! `bootseal diff A B`: the entries of two bootable trees that differ, each side an image or a
//! composefs dumpfile. The dumpfile sides here are written by composefs-rs itself (the
//! reference pipeline's `write_dumpfile`), so the comparison also shows that `diff` reads
//! images into the same tree composefs-rs builds.

use crate::common;

use common::image_builder::{BuiltImage, Compression, E, OciImage, TarLayer, layer_tar};
use common::reference::reference_dumpfile;
use common::reference_check::base;
use common::{bootc_image, bootseal, keypair, run_ok, scratch, seal_cmd};
use std::io::Read;
use std::path::Path;
use std::process::Output;

fn diff(a: &str, b: &str, more: &[&str]) -> Output {
    bootseal()
        .arg("diff")
        .args([a, b])
        .args(more)
        .output()
        .unwrap()
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Two images: `b` is `a` plus a layer that adds /usr/bin/new and gives /usr/lib a new mtime.
fn two_images(dir: &Path) -> (BuiltImage, BuiltImage) {
    let first = TarLayer::with(base());
    let a = OciImage::new()
        .layer(first.clone(), Compression::Gzip)
        .write(&dir.join("a"), "a");
    let b = OciImage::new()
        .layer(first, Compression::Gzip)
        .layer(
            TarLayer::with([
                E::dir("usr/lib").mtime(1_700_000_555),
                E::file("usr/bin/new", "new\n"),
            ]),
            Compression::Zstd,
        )
        .write(&dir.join("b"), "b");
    (a, b)
}

#[test]
fn names_an_added_file_and_a_changed_directory_mtime() {
    let tmp = scratch();
    let (a, b) = two_images(tmp.path());
    let out = diff(&a.oci_ref(), &b.oci_ref(), &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines(&out),
        [
            "/usr/bin/new: presence absent -> file",
            "/usr/lib: mtime 1700000000.0 -> 1700000555.0",
        ]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 entries differ") && stderr.contains("composefs-rs 0.9.0"),
        "{stderr}"
    );

    // The same as JSON, naming the semantics applied.
    let out = diff(
        &a.oci_ref(),
        &b.oci_ref(),
        &["--json", "--composefs-compat", "0.9.4"],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["composefs_compat"], "0.9.4");
    let d = v["differences"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[1]["path"], "/usr/lib");
    assert_eq!(d[1]["changes"][0]["attribute"], "mtime");
    assert_eq!(d[1]["changes"][0]["b"], "1700000555.0");
    assert_eq!(d[0]["changes"][0]["a"], serde_json::Value::Null);

    // Nothing between an image and itself.
    let out = diff(&a.oci_ref(), &a.oci_ref(), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());

    // A dumpfile written by composefs-rs for one side: the same answers.
    let a_dump = tmp.path().join("a.dump");
    std::fs::write(&a_dump, reference_dumpfile(&a)).unwrap();
    let a_dump = a_dump.to_str().unwrap();
    let out = diff(a_dump, &b.oci_ref(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(lines(&out).len(), 2, "{:?}", lines(&out));
    let out = diff(a_dump, &a.oci_ref(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:?} {}",
        lines(&out),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bad_side_is_a_one_line_error_with_status_2() {
    let tmp = scratch();
    let junk = tmp.path().join("junk.dump");
    std::fs::write(&junk, "/ not a dumpfile line\n").unwrap();
    let out = diff(junk.to_str().unwrap(), junk.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("junk.dump: line 1: "), "{stderr}");

    let missing = format!("oci:{}:none", tmp.path().join("nothing").display());
    let out = diff(&missing, junk.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sealed_dumpfile_against_its_base_and_itself() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    let sealed_ref = format!("oci:{}:sealed", out.display());
    run_ok(&mut seal_cmd(&built.image.oci_ref(), &sealed_ref, &keys));
    let sealed = BuiltImage::load(&out, "sealed");

    // The sealed layer's /boot/<kver>.dump, extracted.
    let kver = &built.kver;
    let (tar, _) = layer_tar(sealed.layers.last().unwrap());
    let mut archive = tar::Archive::new(&tar[..]);
    let mut dump = String::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(&format!("boot/{kver}.dump")) {
            e.read_to_string(&mut dump).unwrap();
        }
    }
    assert!(!dump.is_empty(), "no /boot/{kver}.dump in the sealed layer");
    let dump_file = tmp.path().join(format!("{kver}.dump"));
    std::fs::write(&dump_file, &dump).unwrap();
    let dump_file = dump_file.to_str().unwrap();

    // Against the sealed image itself: the tree bootc would compute from it.
    let same = diff(dump_file, &sealed_ref, &[]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{:?} {}",
        lines(&same),
        String::from_utf8_lossy(&same.stderr)
    );

    // Against the base: what sealing changed in the tree, and nothing else.
    let changed = diff(&built.image.oci_ref(), dump_file, &[]);
    assert_eq!(changed.status.code(), Some(1));
    let paths: Vec<String> = lines(&changed)
        .iter()
        .map(|l| l.split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            format!("/usr/lib/modules/{kver}/initramfs.img"),
            format!("/usr/lib/modules/{kver}/vmlinuz"),
            "/usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed".to_owned(),
        ],
        "{:?}",
        lines(&changed)
    );
    assert!(lines(&changed)[0].ends_with(": presence file -> absent"));
    assert!(lines(&changed)[2].ends_with(": presence absent -> file"));
}
