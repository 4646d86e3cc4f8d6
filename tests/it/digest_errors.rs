//! Bad input gets one clear line naming the image, the layer digest and the tar path.
//!
//! Each test builds a broken OCI layout and asserts the exact error text of
//! `bootseal::digest::compute`; none of them may panic or yield a digest.

use crate::common;

use std::io::Write;

use bootseal::digest::{DigestError, DigestOptions};
use common::image_builder::{
    BuiltImage, BuiltLayer, Compression, E, OciImage, TarLayer, write_blob,
};
use common::our_digest;

fn base() -> Vec<E> {
    vec![
        E::dir("usr"),
        E::dir("usr/bin"),
        E::dir("etc"),
        E::dir("boot"),
        E::dir("sysroot"),
        E::file("usr/bin/tool", vec![1u8; 5000]),
    ]
}

fn err(image: &BuiltImage) -> DigestError {
    match our_digest(image, &DigestOptions::default()) {
        Ok(r) => panic!("expected an error, got digest {}", r.digest_hex),
        Err(e) => {
            let text = e.to_string();
            assert!(!text.contains('\n'), "error must be one line: {text}");
            assert!(
                text.starts_with(&image.oci_ref()),
                "names the image: {text}"
            );
            e
        }
    }
}

/// An image whose only broken layer is `broken` on top of a good base layer.
fn with_layer(dir: &std::path::Path, broken: Vec<E>) -> BuiltImage {
    OciImage::new()
        .layer(TarLayer::with(base()), Compression::Gzip)
        .layer(TarLayer::with(broken), Compression::Zstd)
        .write(dir, "bad")
}

/// Writes a layout whose layer blob bytes are given verbatim (digest computed over them).
fn layout_with_blob(
    dir: &std::path::Path,
    blob: &[u8],
    media_type: &str,
    diff_id: &str,
) -> BuiltImage {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let (digest, size) = write_blob(dir, blob);
    let path = dir
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let layer = BuiltLayer {
        digest,
        media_type: media_type.to_string(),
        diff_id: diff_id.to_string(),
        size,
        path,
    };
    OciImage::new().write_metadata(dir, "bad", vec![layer])
}

fn sha256(data: &[u8]) -> String {
    bootseal::content_digest::ContentDigest::sha256_of(data).to_string()
}

#[test]
fn blob_digest_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let img = OciImage::new()
        .layer(TarLayer::with(base()), Compression::Gzip)
        .write(dir.path(), "bad");
    // Same tar, different gzip bytes: decompresses fine, but the blob is not what the manifest says.
    let tar = TarLayer::with(base());
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&tar).unwrap();
    let other = e.finish().unwrap();
    std::fs::write(&img.layers[0].path, &other).unwrap();
    let e = err(&img);
    assert_eq!(e.layer.as_deref(), Some(img.layers[0].digest.as_str()));
    assert!(
        e.message.starts_with(&format!(
            "blob digest mismatch: expected {}, got {}",
            img.layers[0].digest,
            sha256(&other)
        )),
        "{e}"
    );
}

#[test]
fn diff_id_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let tar = TarLayer::with(base());
    let mut gz = Vec::new();
    Compression::Gzip.compress(&tar, &mut gz).unwrap();
    let wrong = sha256(b"something else");
    let img = layout_with_blob(dir.path(), &gz, Compression::Gzip.oci_media_type(), &wrong);
    let e = err(&img);
    assert!(
        e.message.starts_with(&format!(
            "diff_id digest mismatch: expected {wrong}, got {}",
            sha256(&tar)
        )),
        "{e}"
    );
}

#[test]
fn corrupt_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let tar = TarLayer::with(base());
    let mut gz = Vec::new();
    Compression::Gzip.compress(&tar, &mut gz).unwrap();
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let img = layout_with_blob(
        dir.path(),
        &gz,
        Compression::Gzip.oci_media_type(),
        &sha256(&tar),
    );
    let e = err(&img);
    assert!(e.message.starts_with("corrupt gzip stream: "), "{e}");
}

#[test]
fn truncated_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let tar = TarLayer::with(base());
    let mut gz = Vec::new();
    Compression::Gzip.compress(&tar, &mut gz).unwrap();
    // The registry serves a cut blob and the manifest digest is over the cut bytes (bootc #2408).
    let cut = &gz[..gz.len() - 6];
    let img = layout_with_blob(
        dir.path(),
        cut,
        Compression::Gzip.oci_media_type(),
        &sha256(&tar),
    );
    let e = err(&img);
    assert_eq!(e.message, "gzip stream ends early (truncated blob)", "{e}");
}

#[test]
fn truncated_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let tar = TarLayer::with(base());
    let mut zst = Vec::new();
    Compression::Zstd.compress(&tar, &mut zst).unwrap();
    let cut = &zst[..zst.len() / 2];
    let img = layout_with_blob(
        dir.path(),
        cut,
        Compression::Zstd.oci_media_type(),
        &sha256(&tar),
    );
    let e = err(&img);
    assert_eq!(e.message, "zstd stream ends early (truncated blob)", "{e}");
}

#[test]
fn corrupt_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let tar = TarLayer::with(base());
    let mut zst = Vec::new();
    Compression::Zstd.compress(&tar, &mut zst).unwrap();
    let mid = zst.len() / 2;
    for b in &mut zst[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let img = layout_with_blob(
        dir.path(),
        &zst,
        Compression::Zstd.oci_media_type(),
        &sha256(&tar),
    );
    let e = err(&img);
    assert!(e.message.starts_with("corrupt zstd stream: "), "{e}");
}

#[test]
fn truncated_tar() {
    let dir = tempfile::tempdir().unwrap();
    let tar = TarLayer::with(base());
    // Cut inside the content of usr/bin/tool; blob and diff_id both describe the cut bytes.
    let cut = &tar[..512 * 6 + 1000];
    let img = layout_with_blob(
        dir.path(),
        cut,
        Compression::None.oci_media_type(),
        &sha256(cut),
    );
    let e = err(&img);
    assert_eq!(e.path.as_deref(), Some("usr/bin/tool"));
    assert_eq!(
        e.message,
        "tar stream ends inside this entry's content (truncated layer?)"
    );

    // Cut at an entry boundary: no end-of-archive marker.
    let dir2 = tempfile::tempdir().unwrap();
    let cut = &tar[..512 * 5];
    let img = layout_with_blob(
        dir2.path(),
        cut,
        Compression::None.oci_media_type(),
        &sha256(cut),
    );
    let e = err(&img);
    assert_eq!(
        e.message, "tar stream ends without an end-of-archive marker (truncated layer?)",
        "{e}"
    );
}

#[test]
fn dotdot_path() {
    let dir = tempfile::tempdir().unwrap();
    let img = with_layer(dir.path(), vec![E::file("usr/../etc/evil", "x").raw()]);
    let e = err(&img);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: layer {}: usr/../etc/evil: path contains a '..' component",
            img.oci_ref(),
            img.layers[1].digest
        )
    );
}

#[test]
fn hardlink_to_missing_target() {
    let dir = tempfile::tempdir().unwrap();
    let img = with_layer(
        dir.path(),
        vec![E::hardlink("usr/bin/ls", "usr/bin/missing")],
    );
    let e = err(&img);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: layer {}: /usr/bin/ls: hardlink target /usr/bin/missing does not exist",
            img.oci_ref(),
            img.layers[1].digest
        )
    );
}

#[test]
fn missing_parent_directory() {
    let dir = tempfile::tempdir().unwrap();
    let img = with_layer(dir.path(), vec![E::file("usr/lib/nope/file", "x")]);
    let e = err(&img);
    assert_eq!(e.layer.as_deref(), Some(img.layers[1].digest.as_str()));
    assert_eq!(e.path.as_deref(), Some("/usr/lib/nope/file"));
    assert_eq!(e.message, "parent directory /usr/lib/nope does not exist");
}

#[test]
fn sparse_entry() {
    let dir = tempfile::tempdir().unwrap();
    let img = with_layer(
        dir.path(),
        vec![E::sparse("usr/bin/sparse", vec![0u8; 1024])],
    );
    let e = err(&img);
    assert_eq!(e.path.as_deref(), Some("usr/bin/sparse"));
    assert_eq!(e.message, "sparse tar entries are not supported");
}

#[test]
fn missing_usr() {
    let dir = tempfile::tempdir().unwrap();
    let img = OciImage::new()
        .layer(
            TarLayer::with([E::dir("etc"), E::dir("boot"), E::dir("sysroot")]),
            Compression::Gzip,
        )
        .write(dir.path(), "bad");
    let e = err(&img);
    assert_eq!(
        e.to_string(),
        format!("{}: image has no /usr directory", img.oci_ref())
    );
}

#[test]
fn missing_boot() {
    let dir = tempfile::tempdir().unwrap();
    let img = OciImage::new()
        .layer(
            TarLayer::with([E::dir("usr"), E::dir("sysroot")]),
            Compression::Gzip,
        )
        .write(dir.path(), "bad");
    let e = err(&img);
    assert!(e.message.starts_with("image has no /boot directory"), "{e}");
}

#[test]
fn unknown_media_type() {
    let dir = tempfile::tempdir().unwrap();
    let img = OciImage::new()
        .layer_with_media_type(
            TarLayer::with(base()),
            Compression::Gzip,
            "application/vnd.example.layer+gzip",
        )
        .write(dir.path(), "bad");
    let e = err(&img);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: layer {}: unknown layer media type \"application/vnd.example.layer+gzip\"",
            img.oci_ref(),
            img.layers[0].digest
        )
    );
}

#[test]
fn first_bad_layer_in_order_is_reported() {
    // Layers 2 and 4 are both bad; the report must name layer 2 whatever finishes first.
    let dir = tempfile::tempdir().unwrap();
    let mut image = OciImage::new().layer(TarLayer::with(base()), Compression::Gzip);
    for i in 0..6 {
        let entry = if i == 2 || i == 4 {
            E::file(&format!("usr/missing{i}/f"), "x")
        } else {
            E::file(&format!("usr/bin/f{i}"), vec![i as u8; 100_000])
        };
        image = image.layer(TarLayer::with([entry]), Compression::Zstd);
    }
    let img = image.write(dir.path(), "bad");
    for parallelism in [1, 2, 4] {
        let layers = common::layout_input::layer_inputs(&img.dir, &img.tag);
        let opts = DigestOptions {
            parallelism: Some(parallelism),
            ..Default::default()
        };
        let e = bootseal::digest::compute(&img.oci_ref(), layers, &opts).unwrap_err();
        assert_eq!(
            e.layer.as_deref(),
            Some(img.layers[3].digest.as_str()),
            "{e}"
        );
        assert_eq!(e.path.as_deref(), Some("/usr/missing2/f"));
    }
}
