//! How every file under `testdata/` (except `testdata/fuzz/`) is made: tiny OCI layouts, malformed
//! layouts with the error bootseal must give, and tiny PE files for the Authenticode KATs.
//! Only `regenerate_testdata` (ignored by default) calls these builders; the golden tests read
//! the checked-in files.

use crate::common::image_builder::{BuiltImage, BuiltLayer, Compression, E, OciImage, TarLayer};
use crate::common::reference_check::{base, big};
use std::path::Path;

/// The tag of every fixture layout.
pub const TAG: &str = "golden";

/// The well-formed layouts, each exercising one part of composefs-oci's semantics.
pub fn layouts() -> Vec<(&'static str, OciImage)> {
    let mut whiteout_base = base();
    whiteout_base.extend([
        E::dir("usr/share"),
        E::dir("usr/share/doc"),
        E::file("usr/share/doc/README", big(200, 6)),
        E::file("usr/share/keep", "keep"),
        E::file("usr/bin/hello", big(100, 7)),
        E::dir("etc/conf.d"),
        E::file("etc/conf.d/a", "a"),
        E::file("etc/conf.d/b", "b"),
    ]);
    let whiteouts = vec![
        E::whiteout("usr/bin/hello"),
        E::whiteout("usr/bin/not-there"),
        E::opaque("usr/share"),
        E::file("usr/share/new", "new"),
        E::file("etc/conf.d/c", "c"),
        E::opaque("etc/conf.d"),
        E::file("etc/conf.d/d", "d"),
    ];

    let mut hardlink_base = base();
    hardlink_base.extend([
        E::file("usr/bin/tool", big(300, 9)).mode(0o755),
        E::hardlink("usr/bin/tool-alias", "usr/bin/tool"),
        E::file("usr/lib/small", "inline"),
        E::hardlink("usr/lib/small-link", "usr/lib/small"),
    ]);
    let hardlinks = vec![
        // A link in a later layer to a file of an earlier one, and a link to a link.
        E::hardlink("usr/lib/tool-again", "usr/bin/tool"),
        E::hardlink("usr/lib/alias-of-alias", "usr/bin/tool-alias"),
    ];

    let mut xattr_root = base();
    xattr_root.extend([
        E::file("usr/bin/ping", big(120, 11)).mode(0o755).xattr(
            "security.capability",
            &[
                1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        E::file("usr/lib/marked", "m").xattr("user.comment", b"hello"),
        E::dir("usr/lib/overlaid").xattr("trusted.overlay.opaque", b"y"),
        E::file("etc/with-many", "x")
            .xattr("user.b", b"2")
            .xattr("user.a", b"1")
            .xattr("user.empty", b""),
    ]);

    let subsecond = vec![
        E::dir("usr").pax_mtime("1700000100.5"),
        E::dir("usr/bin").pax_mtime("1700000101.000000001"),
        E::dir("usr/lib"),
        E::dir("etc").pax_mtime("1700000102.25"),
        // /boot and /sysroot with sub-second parts other than /usr's: the case where composefs-rs
        // 0.9.0 (kept) and 0.9.4 (copies /usr's) differ.
        E::dir("boot").pax_mtime("1700000200.75"),
        E::dir("sysroot").pax_mtime("1700000300.125"),
        E::dir("run"),
        E::dir("var"),
        E::dir("tmp").mode(0o1777),
        E::file("usr/bin/sh", big(2000, 1))
            .mode(0o755)
            .pax_mtime("1700000103.999999999"),
        E::file("etc/hostname", "golden\n").pax_mtime("1700000104.1"),
    ];

    vec![
        (
            "whiteouts",
            OciImage::new()
                .layer(TarLayer::with(whiteout_base), Compression::Gzip)
                .layer(TarLayer::with(whiteouts), Compression::Zstd),
        ),
        (
            "hardlinks",
            OciImage::new()
                .layer(TarLayer::with(hardlink_base), Compression::Gzip)
                .layer(TarLayer::with(hardlinks), Compression::None),
        ),
        (
            "xattrs",
            OciImage::new().layer(TarLayer::with(xattr_root), Compression::Gzip),
        ),
        (
            "subsecond-mtimes",
            OciImage::new().layer(TarLayer::with(subsecond), Compression::Zstd),
        ),
    ]
}

/// A malformed layout and the error bootseal must give for it (a substring of its message).
pub struct Malformed {
    pub name: &'static str,
    pub image: BuiltImage,
    pub expected_error: String,
}

fn small_root() -> Vec<E> {
    vec![
        E::dir("usr"),
        E::dir("usr/bin"),
        E::dir("etc"),
        E::dir("boot"),
        E::dir("sysroot"),
        E::file("usr/bin/tool", big(1500, 3)),
    ]
}

/// A layout whose single layer blob is `blob` verbatim, described by `diff_id`.
fn layout_with_blob(dir: &Path, blob: &[u8], media_type: &str, diff_id: &str) -> BuiltImage {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let (digest, size) = crate::common::image_builder::write_blob(dir, blob);
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
    OciImage::new().write_metadata(dir, TAG, vec![layer])
}

fn sha256(data: &[u8]) -> String {
    bootseal::content_digest::ContentDigest::sha256_of(data).to_string()
}

/// Writes every malformed layout under `dir/NAME`.
pub fn malformed(dir: &Path) -> Vec<Malformed> {
    let mut out = Vec::new();
    let mut add = |name: &'static str, image: BuiltImage, expected_error: String| {
        out.push(Malformed {
            name,
            image,
            expected_error,
        });
    };
    let two_layers = |name: &str, top: Vec<E>| {
        OciImage::new()
            .layer(TarLayer::with(small_root()), Compression::Gzip)
            .layer(TarLayer::with(top), Compression::Gzip)
            .write(&dir.join(name), TAG)
    };

    let img = two_layers("dotdot-path", vec![E::file("usr/../etc/evil", "x").raw()]);
    let e = format!(
        "layer {}: usr/../etc/evil: path contains a '..' component",
        img.layers[1].digest
    );
    add("dotdot-path", img, e);

    let img = two_layers(
        "hardlink-missing-target",
        vec![E::hardlink("usr/bin/ls", "usr/bin/missing")],
    );
    let e = format!(
        "layer {}: /usr/bin/ls: hardlink target /usr/bin/missing does not exist",
        img.layers[1].digest
    );
    add("hardlink-missing-target", img, e);

    let tar = TarLayer::with(small_root());
    // Cut inside the content of usr/bin/tool; blob and diff_id both describe the cut bytes.
    let cut = &tar[..512 * 6 + 700];
    let img = layout_with_blob(
        &dir.join("truncated-tar"),
        cut,
        Compression::None.oci_media_type(),
        &sha256(cut),
    );
    let e = format!(
        "layer {}: usr/bin/tool: tar stream ends inside this entry's content (truncated layer?)",
        img.layers[0].digest
    );
    add("truncated-tar", img, e);

    let mut gz = Vec::new();
    Compression::Gzip.compress(&tar, &mut gz).unwrap();
    let wrong = sha256(b"not this layer");
    let img = layout_with_blob(
        &dir.join("diff-id-mismatch"),
        &gz,
        Compression::Gzip.oci_media_type(),
        &wrong,
    );
    let e = format!(
        "layer {}: diff_id digest mismatch: expected {wrong}, got {}",
        img.layers[0].digest,
        sha256(&tar)
    );
    add("diff-id-mismatch", img, e);

    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let img = layout_with_blob(
        &dir.join("corrupt-gzip"),
        &gz,
        Compression::Gzip.oci_media_type(),
        &sha256(&tar),
    );
    let e = format!(
        "layer {}: usr/bin/tool: corrupt gzip stream: ",
        img.layers[0].digest
    );
    add("corrupt-gzip", img, e);

    let img = OciImage::new()
        .layer(
            TarLayer::with([E::dir("etc"), E::dir("boot"), E::dir("sysroot")]),
            Compression::Gzip,
        )
        .write(&dir.join("missing-usr"), TAG);
    add("missing-usr", img, "image has no /usr directory".into());
    out
}

/// A minimal PE32+ EFI application: DOS header, PE headers, one 512-byte `.text` section whose
/// code is `xor eax, eax; ret` (1 KiB in all). sbsign, pesign and osslsigncode accept it.
pub fn tiny_pe() -> Vec<u8> {
    let mut f = vec![0u8; 0x400];
    f[0..2].copy_from_slice(b"MZ");
    f[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    let mut h: Vec<u8> = b"PE\0\0".to_vec();
    // COFF: x86-64, 1 section, 240-byte optional header, executable | large-address-aware.
    for v in [0x8664u16, 1] {
        h.extend(v.to_le_bytes());
    }
    h.extend([0u8; 12]);
    for v in [240u16, 0x22] {
        h.extend(v.to_le_bytes());
    }
    // Optional header (PE32+).
    h.extend(0x20bu16.to_le_bytes());
    h.extend([0u8, 0]);
    for v in [0x200u32, 0, 0, 0x1000, 0x1000] {
        h.extend(v.to_le_bytes()); // code size, data sizes, entry point, base of code
    }
    h.extend(0u64.to_le_bytes()); // image base
    for v in [0x1000u32, 0x200] {
        h.extend(v.to_le_bytes()); // section and file alignment
    }
    h.extend([0u8; 12]); // OS, image and subsystem versions
    for v in [0u32, 0x2000, 0x200, 0] {
        h.extend(v.to_le_bytes()); // win32 version, image size, header size, checksum
    }
    for v in [10u16, 0] {
        h.extend(v.to_le_bytes()); // EFI application, no DLL characteristics
    }
    for v in [0x10_0000u64, 0x1000, 0x10_0000, 0x1000] {
        h.extend(v.to_le_bytes());
    }
    for v in [0u32, 16] {
        h.extend(v.to_le_bytes()); // loader flags, 16 data directories
    }
    h.extend([0u8; 16 * 8]);
    // The .text section header.
    h.extend(b".text\0\0\0");
    for v in [0x10u32, 0x1000, 0x200, 0x200, 0, 0] {
        h.extend(v.to_le_bytes());
    }
    h.extend([0u8; 4]);
    h.extend(0x6000_0020u32.to_le_bytes()); // code, execute, read
    f[0x40..0x40 + h.len()].copy_from_slice(&h);
    f[0x200..0x203].copy_from_slice(&[0x31, 0xc0, 0xc3]);
    f
}
