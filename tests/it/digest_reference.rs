//! Our digest equals composefs-oci 0.9.0's own pipeline on images built for each semantic.
//!
//! Every test writes an OCI layout, computes the digest with `bootseal::digest::compute` and with
//! the reference (tests/common/reference.rs), for EROFS V1 and V2, and requires equality. Where a
//! semantic could silently be ignored, the test also checks the dumpfile or that the digest moves.

use crate::common;

use bootseal::digest::DigestOptions;
use bootseal::tree::CaptureSet;
use common::image_builder::{Compression, E, OciImage, TarLayer};
use common::our_digest;
use common::reference::reference_digest;
use common::reference_check::{base, big, check, dump_line, has_path};

#[test]
fn minimal_image_and_oci_transform() {
    let mut entries = base();
    entries.extend([
        E::dir("run/lock"),
        E::file("run/lock/stale", "x"),
        E::dir("boot/grub2"),
        E::file("boot/grub2/grub.cfg", big(300, 2)),
        E::dir("sysroot/ostree"),
    ]);
    let r = check(
        "minimal",
        OciImage::new().layer(TarLayer::with(entries), Compression::Gzip),
    );
    // root takes /usr's mtime; /run, /boot, /sysroot are emptied
    assert!(
        dump_line(&r, "/").contains(" 1700000100.0 "),
        "{}",
        dump_line(&r, "/")
    );
    assert!(!has_path(&r, "/run/lock"));
    assert!(!has_path(&r, "/boot/grub2"));
    assert!(!has_path(&r, "/sysroot/ostree"));
    assert_eq!(r.layer_count, 1);
    assert!(r.compressed_bytes > 0 && r.uncompressed_bytes > r.compressed_bytes);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn inline_and_external_files() {
    let mut entries = base();
    entries.extend([
        E::file("usr/lib/empty", Vec::new()),
        E::file("usr/lib/sixty-four", big(64, 3)),
        E::file("usr/lib/sixty-five", big(65, 3)),
        E::file("usr/lib/block", big(4096, 4)),
        E::file("usr/lib/block-plus-one", big(4097, 4)),
        E::file("usr/lib/multi-level", big(300_000, 5)),
    ]);
    let r = check(
        "inline",
        OciImage::new().layer(TarLayer::with(entries), Compression::Zstd),
    );
    assert_eq!(r.external_files, 5); // sh, 65, 4096, 4097, 300000
}

#[test]
fn whiteouts_and_opaque_dirs() {
    let mut first = base();
    first.extend([
        E::dir("usr/share"),
        E::dir("usr/share/doc"),
        E::file("usr/share/doc/README", big(200, 6)),
        E::file("usr/share/keep", "keep"),
        E::file("usr/bin/hello", big(100, 7)),
        E::dir("etc/conf.d"),
        E::file("etc/conf.d/a", "a"),
        E::file("etc/conf.d/b", "b"),
    ]);
    let second = vec![
        E::whiteout("usr/bin/hello"),
        E::whiteout("usr/bin/not-there"),
        E::opaque("usr/share"),
        E::file("usr/share/new", "new"),
        // An opaque marker after entries of the same layer wipes them too.
        E::file("etc/conf.d/c", "c"),
        E::opaque("etc/conf.d"),
        E::file("etc/conf.d/d", "d"),
    ];
    let r = check(
        "whiteouts",
        OciImage::new()
            .layer(TarLayer::with(first), Compression::Gzip)
            .layer(TarLayer::with(second), Compression::Gzip),
    );
    assert!(!has_path(&r, "/usr/bin/hello"));
    assert!(!has_path(&r, "/usr/share/doc"));
    assert!(!has_path(&r, "/usr/share/keep"));
    assert!(has_path(&r, "/usr/share/new"));
    assert!(!has_path(&r, "/etc/conf.d/a"));
    assert!(!has_path(&r, "/etc/conf.d/c"));
    assert!(has_path(&r, "/etc/conf.d/d"));
    assert!(!r.dumpfile.as_deref().unwrap().contains(".wh."));
}

#[test]
fn repeated_directories_merge_metadata_keep_children() {
    let mut first = base();
    first.extend([
        E::dir("usr/lib/firmware").mode(0o700),
        E::file("usr/lib/firmware/blob", big(500, 8)),
    ]);
    let second = vec![
        E::dir("usr/lib/firmware")
            .mode(0o755)
            .owner(12, 34)
            .mtime(1_700_000_555),
        E::file("usr/lib/firmware/other", "x"),
    ];
    let r = check(
        "merge",
        OciImage::new()
            .layer(TarLayer::with(first), Compression::None)
            .layer(TarLayer::with(second), Compression::Zstd),
    );
    let line = dump_line(&r, "/usr/lib/firmware");
    assert!(
        line.contains(" 40755 ") && line.contains(" 12 34 ") && line.contains("1700000555"),
        "{line}"
    );
    assert!(has_path(&r, "/usr/lib/firmware/blob"));
    assert!(has_path(&r, "/usr/lib/firmware/other"));
}

#[test]
fn hardlinks_symlinks_devices_fifos() {
    let mut entries = base();
    entries.extend([
        E::file("usr/bin/busybox", big(5000, 9)).mode(0o755),
        E::hardlink("usr/bin/ls", "usr/bin/busybox"),
        E::hardlink("usr/bin/cat", "./usr/bin/busybox"),
        E::file("usr/lib/tiny", "tiny"),
        E::hardlink("usr/lib/tiny-link", "/usr/lib/tiny"),
        E::symlink("usr/bin/sh-abs", "/usr/bin/busybox"),
        E::symlink("usr/bin/up", "../../etc/hostname"),
        E::symlink("usr/bin/dangling", "does/not/exist"),
        E::dir("usr/lib/dev"),
        E::chardev("usr/lib/dev/null", 1, 3),
        E::chardev("usr/lib/dev/whiteout", 0, 0),
        E::blockdev("usr/lib/dev/sda", 8, 0),
        E::fifo("usr/lib/dev/fifo"),
    ]);
    let r = check(
        "links",
        OciImage::new().layer(TarLayer::with(entries), Compression::GzipMulti),
    );
    // dumpfile hardlink lines: "PATH 0 @120000 - - - - 0.0 TARGET - -"
    for link in ["/usr/bin/ls", "/usr/bin/cat"] {
        let line = dump_line(&r, link);
        assert!(
            line.contains(" @120000 ") && line.contains(" /usr/bin/busybox "),
            "{line}"
        );
    }
    assert!(dump_line(&r, "/usr/lib/tiny-link").contains(" /usr/lib/tiny "));
    assert!(dump_line(&r, "/usr/bin/up").contains("../../etc/hostname"));
}

#[test]
fn pax_paths_fractional_mtimes_xattrs_long_names() {
    let long_dir = format!("usr/lib/{}", "d".repeat(120));
    let long_file = format!("{long_dir}/{}", "f".repeat(150));
    let mut entries = base();
    entries.extend([
        E::dir(&long_dir),
        E::file(&long_file, big(1000, 10)),
        E::symlink("usr/lib/long-target", &long_file),
        E::hardlink("usr/lib/long-hardlink", &long_file),
        E::file("usr/lib/pax-named-file", big(70, 11)).pax_path(),
        E::file("usr/lib/frac", "frac").pax_mtime("1700000600.25"),
        E::file("usr/lib/frac-long", "frac").pax_mtime("1700000600.1234567891"),
        E::dir("usr/lib/frac-dir").pax_mtime("1700000601.5"),
        E::file("usr/bin/ping", big(3000, 12))
            .mode(0o755)
            .xattr(
                "security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            )
            .xattr("user.foo", b"bar")
            .xattr("security.selinux", b"system_u:object_r:container_t:s0"),
        E::file("usr/lib/pax-owner", "o")
            .pax("uid", b"3000000")
            .pax("gid", b"4000000"),
    ]);
    let r = check(
        "pax",
        OciImage::new().layer(TarLayer::with(entries), Compression::ZstdMulti),
    );
    assert!(dump_line(&r, "/usr/lib/frac").contains("1700000600.250000000"));
    assert!(dump_line(&r, "/usr/lib/frac-long").contains("1700000600.123456789"));
    let ping = dump_line(&r, "/usr/bin/ping");
    assert!(
        ping.contains("security.capability")
            && !ping.contains("user.foo")
            && !ping.contains("container_t"),
        "{ping}"
    );
    assert!(has_path(&r, &format!("/{long_file}")));
    assert!(has_path(&r, "/usr/lib/pax-named-file"));
    assert!(dump_line(&r, "/usr/lib/pax-owner").contains(" 3000000 4000000 "));
}

#[test]
fn global_pax_headers_are_skipped() {
    let mut t = TarLayer::new();
    for e in base() {
        t.add(e);
    }
    // A global PAX header ('g') setting mtime must not apply to later entries.
    let mut h = tar::Header::new_ustar();
    let body = b"30 mtime=1234567890.987654321\n";
    h.set_entry_type(tar::EntryType::XGlobalHeader);
    h.set_path("pax_global_header").unwrap();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    let mut raw = h.as_bytes().to_vec();
    raw.extend_from_slice(body);
    raw.resize(512 + 512, 0);
    t.raw_bytes(&raw);
    t.add(E::file("usr/lib/after-global", "x"));
    check(
        "globalpax",
        OciImage::new().layer(t.finish(), Compression::None),
    );
}

fn order_layers() -> (Vec<u8>, Vec<u8>) {
    let a = TarLayer::with([
        E::dir("usr/share").mtime(1_700_000_001),
        E::file("usr/share/x", big(100, 15)),
        E::file("usr/share/only-a", "a"),
    ]);
    let b = TarLayer::with([
        E::dir("usr/share").mtime(1_700_000_002).mode(0o700),
        E::file("usr/share/x", big(100, 16)),
        E::whiteout("usr/share/only-a"),
    ]);
    (a, b)
}

#[test]
fn layer_order_matters() {
    let (a, b) = order_layers();
    let ab = check(
        "ab",
        OciImage::new()
            .layer(TarLayer::with(base()), Compression::Gzip)
            .layer(a.clone(), Compression::Zstd)
            .layer(b.clone(), Compression::None),
    );
    let ba = check(
        "ba",
        OciImage::new()
            .layer(TarLayer::with(base()), Compression::Gzip)
            .layer(b, Compression::None)
            .layer(a, Compression::Zstd),
    );
    assert_ne!(ab.digest_hex, ba.digest_hex);
    assert!(!has_path(&ab, "/usr/share/only-a"));
    assert!(has_path(&ba, "/usr/share/only-a"));
}

#[test]
fn many_layers_with_mixed_compression() {
    let mut image = OciImage::new().layer(TarLayer::with(base()), Compression::Gzip);
    let kinds = [
        Compression::None,
        Compression::Gzip,
        Compression::GzipMulti,
        Compression::Zstd,
        Compression::ZstdMulti,
    ];
    for i in 0..12 {
        let dir = format!("usr/lib/l{i}");
        let mut entries = vec![
            E::dir(&dir),
            E::file(&format!("{dir}/f"), big(1000 + i * 100, i as u8)),
        ];
        if i > 0 {
            entries.push(E::whiteout(&format!("usr/lib/l{}/f", i - 1)));
            entries.push(E::dir("usr/lib").mtime(1_700_001_000 + i as u64));
        }
        image = image.layer(TarLayer::with(entries), kinds[i % kinds.len()]);
    }
    let r = check("mixed", image);
    assert_eq!(r.layer_count, 13);
}

#[test]
fn subsecond_boot_mtime_is_reported() {
    let mut entries = base();
    entries.retain(|e| e.path != "boot");
    entries.push(E::dir("boot").pax_mtime("1700000000.5"));
    let r = check(
        "bootnsec",
        OciImage::new().layer(TarLayer::with(entries), Compression::Gzip),
    );
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        r.warnings[0].starts_with("/boot has a sub-second mtime (.500000000)"),
        "{}",
        r.warnings[0]
    );
}

#[test]
fn sealing_layer_in_memory_matches_reference_with_that_layer() {
    let kver = "6.1.0-test-amd64";
    let mut entries = base();
    entries.extend([
        E::dir("usr/lib/modules"),
        E::dir(&format!("usr/lib/modules/{kver}")),
        E::file(&format!("usr/lib/modules/{kver}/vmlinuz"), big(50_000, 17)),
        E::file(
            &format!("usr/lib/modules/{kver}/initramfs.img"),
            big(60_000, 18),
        ),
    ]);
    let base_tar = TarLayer::with(entries);
    let seal = TarLayer::with([
        E::whiteout(&format!("usr/lib/modules/{kver}/vmlinuz")),
        E::whiteout(&format!("usr/lib/modules/{kver}/initramfs.img")),
        E::dir("boot"),
        E::dir("boot/EFI"),
        E::dir("boot/EFI/Linux"),
        E::file(&format!("boot/EFI/Linux/{kver}.efi"), big(150_000, 19)),
    ]);
    // Reference: the image with the seal layer as a real layer.
    let with_layer = check(
        "sealed",
        OciImage::new()
            .layer(base_tar.clone(), Compression::Gzip)
            .layer(seal.clone(), Compression::Gzip),
    );
    // Ours: base image plus the same tar as an in-memory extra layer.
    let dir = tempfile::tempdir().unwrap();
    let built = OciImage::new()
        .layer(base_tar, Compression::Gzip)
        .write(dir.path(), "base");
    let opts = DigestOptions {
        extra_layers: vec![seal.into()],
        ..Default::default()
    };
    let ours = our_digest(&built, &opts).unwrap();
    assert_eq!(ours.digest_hex, with_layer.digest_hex);
    assert_eq!(ours.layer_count, 2);
    let plain = our_digest(&built, &DigestOptions::default()).unwrap();
    assert_ne!(
        plain.digest_hex, ours.digest_hex,
        "whiteouts of vmlinuz/initramfs change the digest"
    );
}

#[test]
fn captured_files_resolve_symlinks_inside_the_image() {
    let kver = "6.1.0-cap-amd64";
    let os_release = "NAME=\"Test OS\"\nID=test\nVERSION_ID=1\nPRETTY_NAME=\"Test OS 1 (bootseal capture test)\"\n";
    let mut entries = base();
    entries.extend([
        E::file("usr/lib/os-release", os_release),
        E::symlink("etc/os-release", "../usr/lib/os-release"),
        E::symlink("lib", "usr/lib"),
        E::dir("usr/lib/modules"),
        E::dir(&format!("usr/lib/modules/{kver}")),
        E::file(
            &format!("usr/lib/modules/{kver}/vmlinuz"),
            big(5_000_000, 20),
        ),
        E::dir("usr/lib/bootc"),
        E::dir("usr/lib/bootc/kargs.d"),
        E::file(
            "usr/lib/bootc/kargs.d/10-console.toml",
            "kargs = [\"console=ttyS0\"]\n",
        ),
        E::file("usr/lib/bootc/kargs.d/README", "not toml"),
        // `**` must not follow symlinks (this one would loop).
        E::symlink("usr/lib/bootc/loop", "/"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let built = OciImage::new()
        .layer(TarLayer::with(entries), Compression::Zstd)
        .write(dir.path(), "cap");
    let opts = DigestOptions {
        capture: CaptureSet::new()
            .with("/usr/lib/os-release")
            .with("/etc/os-release")
            .with("/usr/lib/modules/*/vmlinuz")
            .with("/usr/lib/bootc/kargs.d/*.toml")
            .with("/lib/modules/*/vmlinuz")
            .with("/usr/lib/**/10-console.toml"),
        ..Default::default()
    };
    let r = our_digest(&built, &opts).unwrap();
    assert_eq!(
        r.captured.read("/etc/os-release").unwrap(),
        os_release.as_bytes()
    );
    assert_eq!(
        r.captured.get("/etc/os-release").unwrap().resolved,
        "/usr/lib/os-release"
    );
    let vmlinuz = format!("/usr/lib/modules/{kver}/vmlinuz");
    assert_eq!(r.captured.read(&vmlinuz).unwrap(), big(5_000_000, 20));
    assert_eq!(
        r.captured.matching("/usr/lib/modules/*/vmlinuz"),
        vec![vmlinuz.as_str()]
    );
    assert_eq!(
        r.captured
            .read(&format!("/lib/modules/{kver}/vmlinuz"))
            .unwrap()
            .len(),
        5_000_000
    );
    assert_eq!(
        r.captured.matching("/usr/lib/bootc/kargs.d/*"),
        vec!["/usr/lib/bootc/kargs.d/10-console.toml"]
    );
    // Capturing must not change the digest.
    let plain = our_digest(&built, &DigestOptions::default()).unwrap();
    assert_eq!(plain.digest_hex, r.digest_hex);
}

#[test]
fn docker_media_types_give_the_same_digest() {
    let tar = TarLayer::with(base());
    let dir = tempfile::tempdir().unwrap();
    let oci = OciImage::new()
        .layer(tar.clone(), Compression::Gzip)
        .write(&dir.path().join("oci"), "t");
    let docker = OciImage::new()
        .layer_with_media_type(
            tar,
            Compression::Gzip,
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
        .write(&dir.path().join("docker"), "t");
    let a = our_digest(&oci, &DigestOptions::default()).unwrap();
    let b = our_digest(&docker, &DigestOptions::default()).unwrap();
    assert_eq!(a.digest_hex, b.digest_hex);
    assert_eq!(a.digest_hex, reference_digest(&oci, 1));
}

#[test]
fn serial_and_parallel_agree() {
    let mut image = OciImage::new().layer(TarLayer::with(base()), Compression::Gzip);
    for i in 0..8u8 {
        image = image.layer(
            TarLayer::with([E::file(&format!("usr/lib/p{i}"), big(20_000, i))]),
            Compression::Zstd,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let built = image.write(dir.path(), "par");
    let serial = our_digest(
        &built,
        &DigestOptions {
            parallelism: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let parallel = our_digest(
        &built,
        &DigestOptions {
            parallelism: Some(4),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(serial.digest_hex, parallel.digest_hex);
    assert_eq!(serial.digest_hex, reference_digest(&built, 1));
}
