//! Hostile layers: deep directory chains, over-long names, whiteout hardlinks, oversized
//! xattrs, giant declared sizes. Each ends in one clear error (from the library, and exit status
//! 1 from `bootseal digest` and `bootseal seal`) or in the digest composefs-oci 0.9.0 computes;
//! never in a stack overflow, a panic or an allocation the input does not pay for.

use crate::common;

use std::io::{self, Write};
use std::path::Path;
use std::sync::OnceLock;

use bootseal::digest::{DigestError, DigestOptions};
use bootseal::tree::path::{MAX_DEPTH, NAME_MAX};
use common::image_builder::{BuiltImage, Compression, E, OciImage, TarLayer};
use common::reference::try_reference_digest;
use common::reference_check::{base, big};
use common::{our_digest, scratch};

/// `d/d/…/d` with `depth` components.
fn chain(depth: usize) -> String {
    vec!["d"; depth].join("/")
}

fn dir_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_mtime(common::image_builder::MTIME);
    h.set_size(0);
    h
}

/// Streams the directories `d`, `d/d`, … down to `depth` as one tar (GNU long names), so a
/// chain whose tar is hundreds of megabytes never sits in memory.
fn write_nested_chain(out: &mut dyn Write, depth: usize) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut path = String::with_capacity(2 * depth);
    for level in 1..=depth {
        if level > 1 {
            path.push('/');
        }
        path.push('d');
        tar.append_data(&mut dir_header(), &path, io::empty())?;
    }
    tar.into_inner()?.flush()
}

/// A base layer plus one streamed layer holding the chain; returns the image.
fn image_with_streamed_layer(
    dir: &Path,
    produce: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> BuiltImage {
    let base = OciImage::new()
        .layer(TarLayer::with(base()), Compression::Gzip)
        .write(dir, "deep");
    let deep = OciImage::write_streamed_layer(dir, Compression::Zstd, produce);
    let mut layers = base.layers;
    layers.push(deep);
    OciImage::new().write_metadata(dir, "deep", layers)
}

fn image_with_layer(dir: &Path, entries: Vec<E>) -> BuiltImage {
    OciImage::new()
        .layer(TarLayer::with(base()), Compression::Gzip)
        .layer(TarLayer::with(entries), Compression::Zstd)
        .write(dir, "hostile")
}

fn our_error(image: &BuiltImage) -> DigestError {
    match our_digest(image, &DigestOptions::default()) {
        Ok(r) => panic!("expected an error, got digest {}", r.digest_hex),
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "one line: {e}");
            assert!(e.to_string().len() < 1000, "short: {e}");
            e
        }
    }
}

const DEPTH_MESSAGE: &str = "directory levels deep, more than the limit of 2048";

/// The deep image is reused by the library test and both CLI tests.
fn nested_20k() -> &'static (tempfile::TempDir, BuiltImage) {
    static IMAGE: OnceLock<(tempfile::TempDir, BuiltImage)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = scratch();
        // 20,000 levels: 400 MB of tar, a few MB of zstd.
        let image = image_with_streamed_layer(dir.path(), |out| write_nested_chain(out, 20_000));
        (dir, image)
    })
}

#[test]
fn nested_chain_20k_deep_is_refused_at_the_limit() {
    let (_dir, image) = nested_20k();
    let e = our_error(image);
    assert_eq!(e.layer.as_deref(), Some(image.layers[1].digest.as_str()));
    assert_eq!(
        e.message,
        "path is 2049 directory levels deep, more than the limit of 2048 (deeper than any path \
         Linux can open: PATH_MAX is 4096 bytes)"
    );
    // The entry is named, shortened: its start and end around what was left out.
    let path = e.path.unwrap();
    assert!(
        path.starts_with("d/d/d/") && path.ends_with("/d/d"),
        "{path}"
    );
    assert!(path.contains("…[3905 more bytes]…"), "{path}");
}

fn assert_cli_refuses(cmd: &mut std::process::Command, image: &BuiltImage) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(DEPTH_MESSAGE), "{stderr}");
    assert!(
        stderr.contains(&image.oci_ref()),
        "names the image: {stderr}"
    );
    assert!(
        stderr.contains(&image.layers[1].digest),
        "names the layer: {stderr}"
    );
    assert!(!stderr.contains("overflow"), "{stderr}");
}

#[test]
fn nested_chain_20k_deep_digest_cli_exits_1() {
    let (_dir, image) = nested_20k();
    assert_cli_refuses(common::bootseal().arg("digest").arg(image.oci_ref()), image);
}

#[test]
fn nested_chain_20k_deep_seal_cli_exits_1() {
    let (_dir, image) = nested_20k();
    let tmp = scratch();
    let keys = common::keypair(tmp.path(), "db", 2048);
    let to = format!("oci:{}:sealed", tmp.path().join("out").display());
    assert_cli_refuses(&mut common::seal_cmd(&image.oci_ref(), &to, &keys), image);
}

#[test]
fn one_long_path_20k_and_100k_deep_is_refused() {
    for depth in [20_000, 100_000] {
        let dir = scratch();
        let image = image_with_streamed_layer(dir.path(), |out| {
            let mut tar = tar::Builder::new(out);
            tar.append_data(&mut dir_header(), chain(depth), io::empty())?;
            tar.into_inner()?.flush()
        });
        let e = our_error(&image);
        assert_eq!(
            e.message,
            format!(
                "path is {depth} directory levels deep, more than the limit of 2048 (deeper \
                 than any path Linux can open: PATH_MAX is 4096 bytes)"
            )
        );
        let out = common::bootseal()
            .arg("digest")
            .arg(image.oci_ref())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains(DEPTH_MESSAGE));
    }
}

/// composefs-oci's own pipeline overflows a 2 MiB stack on the chain below (measured: it
/// passes with 8 MiB), so the reference runs on a larger one.
const REFERENCE_STACK: usize = 64 << 20;

fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(REFERENCE_STACK)
            .spawn_scoped(s, f)
            .unwrap()
            .join()
            .unwrap()
    })
}

/// A chain exactly at the limit, labelled by an SELinux policy that matches every level and
/// with a file, a symlink and a hardlink at the bottom: the same digest as composefs-oci.
#[test]
fn chain_at_the_limit_matches_composefs_oci() {
    let dir = scratch();
    let built = image_at_the_limit(dir.path());
    let bottom = chain(MAX_DEPTH - 1);
    for version in [1, 2] {
        let opts = DigestOptions {
            erofs_version: version.to_string().parse().unwrap(),
            keep_dumpfile: version == 1,
            ..Default::default()
        };
        // Ours runs on this test thread (2 MiB): the deep part runs on its own stack.
        let ours = our_digest(&built, &opts).unwrap();
        if let Some(dump) = &ours.dumpfile {
            assert!(
                dump.contains(&format!("/{bottom}/file ")),
                "deepest file in the tree"
            );
            assert!(dump.contains("deep_t"), "labelled from the image's policy");
        }
        let reference = on_big_stack(|| try_reference_digest(&built, version)).unwrap();
        assert_eq!(ours.digest_hex, reference, "EROFS V{version}");
    }
    // Paths here are longer than the dumpfile parser takes: composefs-oci's tree instead.
    common::erofs_identity::assert_reference_tree_identical("chain at the limit", &built);
}

/// The finding behind the limit, kept true by a test: composefs-oci 0.9.0's own pipeline run on
/// a 2 MiB thread (a test thread, a tokio worker) overflows its stack on the chain at the
/// limit. Runs in a child process, since a stack overflow aborts the whole process.
#[test]
fn composefs_oci_overflows_a_2mib_stack_at_the_limit() {
    const CHILD: &str = "BOOTSEAL_TEST_REFERENCE_ON_2MIB";
    if let Ok(dir) = std::env::var(CHILD) {
        let image = BuiltImage::load(Path::new(&dir), "limit");
        let digest = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || try_reference_digest(&image, 1))
            .unwrap()
            .join()
            .unwrap();
        println!("reference digest {digest:?}");
        return;
    }
    let dir = scratch();
    image_at_the_limit(dir.path());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "digest_hostile::composefs_oci_overflows_a_2mib_stack_at_the_limit",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "composefs-oci no longer overflows: {stderr}"
    );
    assert!(stderr.contains("has overflowed its stack"), "{stderr}");
}

/// A base, an SELinux policy labelling `/d…` as `deep_t`, and a chain of directories `d/d/…`
/// down to the limit with a file, a symlink and a hardlink at the bottom.
fn image_at_the_limit(dir: &Path) -> BuiltImage {
    let policy = vec![
        E::dir("etc/selinux"),
        E::file("etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=t\n"),
        E::dir("etc/selinux/t"),
        E::dir("etc/selinux/t/contexts"),
        E::dir("etc/selinux/t/contexts/files"),
        E::file(
            "etc/selinux/t/contexts/files/file_contexts",
            "/.*\tsystem_u:object_r:default_t:s0\n/d(/.*)?\tsystem_u:object_r:deep_t:s0\n",
        ),
    ];
    let bottom = chain(MAX_DEPTH - 1);
    let image = OciImage::new()
        .layer(TarLayer::with(base()), Compression::Gzip)
        .layer(TarLayer::with(policy), Compression::Gzip);
    let chain_layer = {
        let mut tar = Vec::new();
        write_nested_chain(&mut tar, MAX_DEPTH - 1).unwrap();
        // Drop the end-of-archive blocks and append the bottom entries.
        tar.truncate(tar.len() - 1024);
        let mut t = TarLayer::new();
        t.raw_bytes(&tar);
        t.add(E::file(&format!("{bottom}/file"), big(5000, 7)));
        t.add(E::symlink(&format!("{bottom}/link"), "/usr/bin/sh"));
        t.add(E::hardlink(&format!("{bottom}/hard"), "usr/bin/sh"));
        t.finish()
    };
    image
        .layer(chain_layer, Compression::Zstd)
        .write(dir, "limit")
}

#[test]
fn names_longer_than_name_max_are_refused() {
    for len in [NAME_MAX + 1, 4085] {
        let dir = scratch();
        let name = "n".repeat(len);
        let image = image_with_layer(dir.path(), vec![E::file(&format!("usr/{name}"), "x")]);
        let e = our_error(&image);
        assert_eq!(
            e.message,
            format!(
                "a file name in the path is {len} bytes long, more than the limit of 255 \
                 (Linux NAME_MAX)"
            )
        );
    }
}

/// A whiteout of a name at NAME_MAX is 259 bytes long and fine, as composefs-oci says.
#[test]
fn whiteout_of_a_longest_name_matches_composefs_oci() {
    let dir = scratch();
    let name = "w".repeat(NAME_MAX);
    let image = OciImage::new()
        .layer(
            TarLayer::with(
                base()
                    .into_iter()
                    .chain([E::file(&format!("usr/{name}"), "x")]),
            ),
            Compression::Gzip,
        )
        .layer(
            TarLayer::with([E::whiteout(&format!("usr/{name}"))]),
            Compression::Gzip,
        )
        .write(dir.path(), "wh");
    let ours = our_digest(&image, &DigestOptions::default()).unwrap();
    assert_eq!(ours.digest_hex, try_reference_digest(&image, 1).unwrap());
    common::erofs_identity::assert_image_identical("longest whiteout", &image);
}

#[test]
fn hardlink_to_a_whiteout_device_is_refused() {
    let dir = scratch();
    let image = image_with_layer(
        dir.path(),
        vec![
            E::chardev("usr/bin/wh", 0, 0),
            E::hardlink("usr/bin/wh2", "usr/bin/wh"),
        ],
    );
    let e = our_error(&image);
    assert_eq!(e.path.as_deref(), Some("/usr/bin/wh2"));
    assert_eq!(
        e.message,
        "hardlink target /usr/bin/wh is a character device 0:0 (an overlay whiteout), which \
         composefs cannot hardlink"
    );
}

/// Hardlinks to hardlinks are links to the same file: composefs-oci agrees.
#[test]
fn hardlink_chain_matches_composefs_oci() {
    let dir = scratch();
    let image = image_with_layer(
        dir.path(),
        vec![
            E::hardlink("usr/bin/a", "usr/bin/sh"),
            E::hardlink("usr/bin/b", "usr/bin/a"),
            E::hardlink("usr/bin/c", "usr/bin/b"),
            E::hardlink("usr/bin/c", "usr/bin/c"),
        ],
    );
    let ours = our_digest(&image, &DigestOptions::default()).unwrap();
    assert_eq!(ours.digest_hex, try_reference_digest(&image, 1).unwrap());
    common::erofs_identity::assert_image_identical("hardlink chain", &image);
}

#[test]
fn oversized_capability_xattr_is_refused() {
    let dir = scratch();
    let image = image_with_layer(
        dir.path(),
        vec![E::file("usr/bin/cap", "x").xattr("security.capability", &[1u8; 70_000])],
    );
    let e = our_error(&image);
    assert_eq!(e.layer, None);
    assert_eq!(
        e.message,
        "/usr/bin/cap: extended attribute security.capability is 70000 bytes, more than the \
         limit of 65535 an EROFS image can hold"
    );
}

/// An oversized attribute the OCI transform strips does not matter.
#[test]
fn oversized_user_xattr_is_stripped_as_composefs_oci_does() {
    let dir = scratch();
    let image = image_with_layer(
        dir.path(),
        vec![E::file("usr/bin/big", "x").xattr("user.big", &[2u8; 200_000])],
    );
    let ours = our_digest(&image, &DigestOptions::default()).unwrap();
    assert_eq!(ours.digest_hex, try_reference_digest(&image, 1).unwrap());
}

/// A header that declares terabytes costs what the layer holds, not what it claims.
#[test]
fn giant_declared_sizes_end_as_truncation() {
    for (kind, size) in [
        (tar::EntryType::Regular, 1u64 << 40),
        (tar::EntryType::Directory, u64::MAX >> 1),
        (tar::EntryType::Symlink, 1u64 << 62),
    ] {
        let dir = scratch();
        let mut h = tar::Header::new_gnu();
        h.set_path("usr/bin/huge").unwrap();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_cksum();
        let mut t = TarLayer::new();
        t.raw_bytes(h.as_bytes());
        t.raw_bytes(&[7u8; 100]);
        let tar = t.finish();
        let image = OciImage::new()
            .layer(TarLayer::with(base()), Compression::Gzip)
            .layer(tar, Compression::Zstd)
            .write(dir.path(), "huge");
        let e = our_error(&image);
        assert_eq!(
            e.path.as_deref(),
            Some("usr/bin/huge"),
            "{kind:?} {size}: {e}"
        );
        assert_eq!(
            e.message, "tar stream ends inside this entry's content (truncated layer?)",
            "{kind:?} {size}"
        );
    }
}

/// Many entries in one directory: no quadratic step, and composefs-oci's digest.
#[test]
fn thirty_thousand_entries_in_one_directory_match_composefs_oci() {
    let dir = scratch();
    let mut entries = vec![E::dir("usr/lib/many")];
    for i in 0..30_000 {
        entries.push(E::file(&format!("usr/lib/many/f{i:05}"), format!("{i}")));
    }
    let image = image_with_layer(dir.path(), entries);
    let ours = our_digest(&image, &DigestOptions::default()).unwrap();
    assert_eq!(ours.digest_hex, try_reference_digest(&image, 1).unwrap());
    common::erofs_identity::assert_image_identical("30,000 entries", &image);
}
