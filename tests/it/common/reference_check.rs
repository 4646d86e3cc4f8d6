//! Shared check for the reference tests: our digest against composefs-oci, V1 and V2.

use bootseal::digest::{DigestOptions, DigestReport, ErofsVersion};

use super::image_builder::{Compression, E, OciImage};
use super::our_digest;
use super::reference::reference_digest;

pub fn big(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A minimal bootc-like root.
pub fn base() -> Vec<E> {
    vec![
        E::dir("usr").mtime(1_700_000_100),
        E::dir("usr/bin"),
        E::dir("usr/lib"),
        E::dir("etc"),
        E::dir("boot"),
        E::dir("sysroot"),
        E::dir("run"),
        E::dir("var"),
        E::dir("tmp").mode(0o1777),
        E::file("usr/bin/sh", big(10_000, 1)).mode(0o755),
        E::file("etc/hostname", "bootseal-test\n"),
    ]
}

/// The same image with single-member/single-frame compression.
///
/// composefs-oci 0.9.0's layer import (async-compression decoders without multi-member
/// support) stops after the first gzip member or zstd frame and then fails with "unexpected EOF
/// reading tar entry"; the digest does not depend on compression, so the reference runs on this
/// twin, whose layers have the same diff_ids.
pub fn single_member_twin(image: &OciImage) -> OciImage {
    let mut twin = OciImage::new();
    for l in &image.layers {
        let c = match l.compression {
            Compression::GzipMulti => Compression::Gzip,
            Compression::ZstdMulti => Compression::Zstd,
            c => c,
        };
        twin = twin.layer(l.tar.clone(), c);
    }
    twin
}

/// Checks V1 and V2 against the reference; returns our V1 report (with dumpfile).
pub fn check(name: &str, image: OciImage) -> DigestReport {
    let dir = tempfile::tempdir().unwrap();
    let built = image.write(&dir.path().join("ours"), name);
    let twin = single_member_twin(&image).write(&dir.path().join("reference"), name);
    assert_eq!(
        built.layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>(),
        twin.layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()
    );
    let mut v1 = None;
    for version in [ErofsVersion::V1, ErofsVersion::V2] {
        let opts = DigestOptions {
            erofs_version: version,
            keep_dumpfile: true,
            ..Default::default()
        };
        let ours = our_digest(&built, &opts).unwrap_or_else(|e| panic!("{e}"));
        let reference = reference_digest(&twin, version.number());
        assert_eq!(ours.digest_hex.len(), 128);
        assert_eq!(
            ours.digest_hex,
            reference,
            "{name}: V{} digest differs from composefs-oci",
            version.number()
        );
        if version == ErofsVersion::V1 {
            v1 = Some(ours);
        }
    }
    // bootseal's EROFS writer against composefs-rs's, whole images, on this image's tree.
    super::erofs_identity::assert_image_identical(name, &built);
    v1.unwrap()
}

pub fn dump_line<'a>(report: &'a DigestReport, path: &str) -> &'a str {
    let dump = report.dumpfile.as_deref().unwrap();
    dump.lines()
        .find(|l| l.split(' ').next() == Some(path))
        .unwrap_or_else(|| panic!("{path} not in dumpfile:\n{dump}"))
}

pub fn has_path(report: &DigestReport, path: &str) -> bool {
    let dump = report.dumpfile.as_deref().unwrap();
    dump.lines().any(|l| l.split(' ').next() == Some(path))
}
