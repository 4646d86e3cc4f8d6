//! README's compatibility table, row by row: for each set of bootseal flags, the command line
//! the sealed UKI carries, read back with composefs-boot 0.9.0 (in process) and 0.9.4 (the
//! crates.io release, built separately), and the digest it names checked against composefs-oci
//! 0.9.0 or 0.9.4 computing the sealed image's digest on its own.

use crate::common;

use common::image_builder::{BuiltImage, E};
use common::reference::reference_digest;
use common::{bootc_image, bootseal, reference_094, scratch, stdout_of};
use composefs::fsverity::{FsVerityHashValue, Sha512HashValue};
use composefs_boot::cmdline::ComposefsCmdline;
use std::path::Path;

/// Seals `base` into `out:tag` with `flags` (keys made in `out`'s parent); returns the UKI's
/// command line and the image.
fn seal(base: &BuiltImage, out: &Path, tag: &str, flags: &[&str]) -> (String, BuiltImage) {
    let dir = out.parent().unwrap();
    let keys = if dir.join("db.key").exists() {
        common::KeyPair {
            key: dir.join("db.key"),
            cert: dir.join("db.crt"),
            cn: String::new(),
        }
    } else {
        common::keypair(dir, "db", 2048)
    };
    let report = stdout_of(
        bootseal()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args([
                "seal",
                "--json",
                "--allow-section-overlap",
                "--no-sign-bootloader",
                "--from",
            ])
            .arg(base.oci_ref())
            .arg("--to")
            .arg(format!("oci:{}:{tag}", out.display()))
            .arg("--key")
            .arg(&keys.key)
            .arg("--cert")
            .arg(&keys.cert)
            .args(flags),
    );
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    let line = r["platforms"][0]["cmdline"].as_str().unwrap().to_owned();
    (line, BuiltImage::load(out, tag))
}

/// Both composefs-boot versions read `line` as (`variant`, digest, insecure).
fn both_parsers_read(line: &str, variant: &str, digest: &str, insecure: bool) {
    let v090 = ComposefsCmdline::<Sha512HashValue>::from_cmdline(line)
        .unwrap()
        .unwrap();
    let v090_variant = match v090 {
        ComposefsCmdline::V1 { .. } => "V1",
        ComposefsCmdline::V2 { .. } => "V2",
    };
    assert_eq!(
        (
            v090_variant,
            v090.digest().to_hex().as_str(),
            v090.is_insecure()
        ),
        (variant, digest, insecure),
        "composefs-boot 0.9.0 on {line}"
    );
    let v094 = reference_094::read_cmdline(line);
    assert_eq!(
        v094,
        serde_json::json!({"variant": variant, "digest": digest, "insecure": insecure}),
        "composefs-boot 0.9.4 on {line}"
    );
}

#[test]
fn every_argument_form_reads_back_with_both_parsers() {
    let tmp = scratch();
    let t = tmp.path();
    let base = bootc_image::build(t, "base").image;
    let out = t.join("out");
    // (flags, token prefix, parser variant, EROFS version of the digest, insecure)
    let rows: [(&[&str], &str, &str, u8, bool); 6] = [
        (&[], "composefs=", "V2", 1, false),
        (&["--erofs-version", "2"], "composefs=", "V2", 2, false),
        (
            &["--composefs-arg", "composefs.digest"],
            "composefs.digest=v1-sha512-12:",
            "V1",
            1,
            false,
        ),
        (
            &[
                "--composefs-arg",
                "composefs.digest",
                "--erofs-version",
                "2",
            ],
            "composefs.digest=v2-sha512-12:",
            "V2",
            2,
            false,
        ),
        (&["--allow-missing-verity"], "composefs=?", "V2", 1, true),
        (
            &[
                "--composefs-arg",
                "composefs.digest",
                "--allow-missing-verity",
            ],
            "composefs.digest=?v1-sha512-12:",
            "V1",
            1,
            true,
        ),
    ];
    for (i, (flags, prefix, variant, erofs, insecure)) in rows.into_iter().enumerate() {
        let (line, sealed) = seal(&base, &out, &format!("row{i}"), flags);
        let reference = reference_digest(&sealed, erofs);
        assert_eq!(
            line,
            format!("{prefix}{reference} rw console=ttyS0 panic=-1"),
            "{flags:?}"
        );
        both_parsers_read(&line, variant, &reference, insecure);
        let mut verify = bootseal();
        verify
            .arg("verify")
            .arg(sealed.oci_ref())
            .args(["--erofs-version", &erofs.to_string()]);
        if insecure {
            verify.arg("--allow-missing-verity");
        }
        stdout_of(&mut verify);
    }
}

/// An image whose /usr carries a sub-second mtime: composefs-rs 0.9.0 and 0.9.4 disagree, and
/// `--composefs-compat` picks which one bootseal agrees with, for `digest` and for `seal`.
#[test]
fn composefs_compat_matches_each_release() {
    let tmp = scratch();
    let t = tmp.path();
    let (img, _, _, _) = bootc_image::layers(t, vec![E::dir("usr").pax_mtime("1700000200.25")]);
    let base = img.write(&t.join("layout"), "base");
    let digest = |compat: &str| {
        stdout_of(
            bootseal()
                .args(["digest", "--composefs-compat", compat])
                .arg(base.oci_ref()),
        )
        .trim()
        .to_owned()
    };
    let (ref090, ref094) = (reference_digest(&base, 1), reference_094::digest(&base, 1));
    assert_ne!(ref090, ref094, "the releases differ on this image");
    assert_eq!(digest("0.9.0"), ref090);
    assert_eq!(digest("0.9.4"), ref094);

    let warned = bootseal()
        .arg("digest")
        .arg(base.oci_ref())
        .output()
        .unwrap();
    let warning = String::from_utf8_lossy(&warned.stderr);
    assert!(warning.contains("--composefs-compat 0.9.4"), "{warning}");

    let out = t.join("out");
    let (line090, sealed090) = seal(&base, &out, "c090", &[]);
    let (line094, sealed094) = seal(&base, &out, "c094", &["--composefs-compat", "0.9.4"]);
    let (s090, s094) = (
        reference_digest(&sealed090, 1),
        reference_094::digest(&sealed094, 1),
    );
    assert_ne!(s090, s094);
    assert!(
        line090.starts_with(&format!("composefs={s090} ")),
        "{line090}"
    );
    assert!(
        line094.starts_with(&format!("composefs={s094} ")),
        "{line094}"
    );
    stdout_of(
        bootseal()
            .args(["verify", "--composefs-compat", "0.9.4"])
            .arg(sealed094.oci_ref()),
    );
    let refused = bootseal()
        .arg("verify")
        .arg(sealed094.oci_ref())
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "a 0.9.4 seal does not verify as 0.9.0"
    );
}
