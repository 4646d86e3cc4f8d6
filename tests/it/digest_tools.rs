//! Independent tools agree: `fsverity digest` (fsverity-utils) with our object ids and image
//! digest, and `fsck.erofs` (erofs-utils) accepts our EROFS images in V1 and V2.

use crate::common;

use std::process::Command;

use bootseal::digest::{DigestOptions, ErofsVersion};
use common::image_builder::{Compression, E, OciImage, TarLayer};
use common::{our_digest, require_tool};

fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + i / 4096) as u8) ^ seed).collect()
}

fn sizes() -> Vec<usize> {
    // One block, block+1, a two-level Merkle tree (> 64 * 4096 bytes), and a small external file.
    vec![65, 4096, 4097, 300_000, 1_048_576 + 123]
}

fn image(dir: &std::path::Path) -> common::image_builder::BuiltImage {
    let mut entries = vec![
        E::dir("usr"),
        E::dir("usr/lib"),
        E::dir("boot"),
        E::dir("sysroot"),
        E::dir("etc"),
        E::symlink("usr/lib/link", "/etc/x"),
        E::chardev("usr/lib/null", 1, 3),
        E::file("usr/lib/frac", "x").pax_mtime("1700000000.75"),
    ];
    for (i, n) in sizes().into_iter().enumerate() {
        entries.push(E::file(&format!("usr/lib/file{i}"), content(n, i as u8)));
    }
    OciImage::new()
        .layer(TarLayer::with(entries), Compression::Gzip)
        .write(dir, "tools")
}

fn fsverity_sha512(path: &std::path::Path) -> String {
    let out = Command::new("fsverity")
        .args(["digest", "--hash-alg=sha512"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsverity: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .next()
        .unwrap()
        .strip_prefix("sha512:")
        .unwrap()
        .to_string()
}

#[test]
fn fsverity_utils_agree_with_object_ids_and_image_digest() {
    require_tool("fsverity");
    let dir = tempfile::tempdir().unwrap();
    let img = image(&dir.path().join("layout"));
    let opts = DigestOptions {
        keep_dumpfile: true,
        keep_erofs: true,
        ..Default::default()
    };
    let r = our_digest(&img, &opts).unwrap();
    let dump = r.dumpfile.as_deref().unwrap();
    for (i, n) in sizes().into_iter().enumerate() {
        let path = format!("/usr/lib/file{i}");
        let line = dump
            .lines()
            .find(|l| l.starts_with(&format!("{path} ")))
            .unwrap();
        // dumpfile: PATH SIZE MODE NLINK UID GID RDEV MTIME PAYLOAD CONTENT DIGEST [XATTRS]
        let fields: Vec<&str> = line.split(' ').collect();
        let ours = fields[10];
        let file = dir.path().join(format!("file{i}"));
        std::fs::write(&file, content(n, i as u8)).unwrap();
        assert_eq!(ours, fsverity_sha512(&file), "{path} ({n} bytes)");
        assert_eq!(
            fields[8],
            format!("{}/{}", &ours[..2], &ours[2..]),
            "object path"
        );
    }
    let erofs = dir.path().join("image.erofs");
    std::fs::write(&erofs, r.erofs.as_ref().unwrap()).unwrap();
    assert_eq!(fsverity_sha512(&erofs), r.digest_hex);
}

#[test]
fn fsck_erofs_accepts_v1_and_v2_images() {
    require_tool("fsck.erofs");
    let dir = tempfile::tempdir().unwrap();
    let img = image(&dir.path().join("layout"));
    for version in [ErofsVersion::V1, ErofsVersion::V2] {
        let opts = DigestOptions {
            erofs_version: version,
            keep_erofs: true,
            ..Default::default()
        };
        let r = our_digest(&img, &opts).unwrap();
        let path = dir.path().join(format!("v{}.erofs", version.number()));
        std::fs::write(&path, r.erofs.as_ref().unwrap()).unwrap();
        let out = Command::new("fsck.erofs").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "fsck.erofs rejected the V{} image: {}{}",
            version.number(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
