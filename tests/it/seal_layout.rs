//! `bootseal seal` between OCI layouts: the sealed image's UKI carries the composefs digest that
//! composefs-oci's own pipeline computes for the sealed image, signatures verify with sbverify,
//! the layer holds exactly what it should, and the result is reproducible.

use crate::common;

use common::image_builder::BuiltImage;
use common::reference::reference_digest;
use common::{bootc_image, bootseal, keypair, require_tool, run_ok, scratch, seal_cmd, stdout_of};
use std::path::Path;
use std::process::Command;

/// Extracts the sealed (top) layer of a layout image into `dir` with GNU tar.
fn extract_top_layer(image: &BuiltImage, dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let top = image.layers.last().unwrap();
    let listing = stdout_of(Command::new("tar").arg("-tvf").arg(&top.path));
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&top.path)
            .arg("-C")
            .arg(dir),
    );
    listing
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect()
}

#[test]
fn sealed_layout_matches_reference_and_verifies() {
    require_tool("sbverify");
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    let seal = |tag: &str| {
        stdout_of(
            bootseal()
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args(["seal", "--from"])
                .arg(built.image.oci_ref())
                .arg("--to")
                .arg(format!("oci:{}:{tag}", out.display()))
                .arg("--key")
                .arg(&keys.key)
                .arg("--cert")
                .arg(&keys.cert)
                .args(["--karg", "quiet", "--allow-section-overlap"]),
        )
    };
    let printed = seal("sealed");
    let sealed = BuiltImage::load(&out, "sealed");
    assert_eq!(
        printed.trim(),
        format!("oci:{}@{}", out.display(), sealed.manifest_digest)
    );
    assert_eq!(sealed.layers.len(), built.image.layers.len() + 1);
    for (a, b) in built.image.layers.iter().zip(&sealed.layers) {
        assert_eq!(a.digest, b.digest, "base layers are reused unchanged");
    }

    // What the new layer holds.
    let x = tmp.path().join("x");
    let names = extract_top_layer(&sealed, &x);
    let kver = &built.kver;
    assert_eq!(
        names,
        [
            "boot/".to_owned(),
            format!("boot/{kver}.dump"),
            "boot/EFI/".into(),
            "boot/EFI/Linux/".into(),
            format!("boot/EFI/Linux/{kver}.efi"),
            "usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed".into(),
            format!("usr/lib/modules/{kver}/.wh.vmlinuz"),
            format!("usr/lib/modules/{kver}/.wh.initramfs.img"),
        ]
    );

    // The independent reference on the sealed image equals the UKI's composefs= argument.
    let uki = x.join(format!("boot/EFI/Linux/{kver}.efi"));
    let cmdline = common::objcopy_section(&uki, ".cmdline", tmp.path());
    let cmdline = String::from_utf8(cmdline).unwrap();
    let reference = reference_digest(&sealed, 1);
    assert_eq!(
        cmdline,
        format!("composefs={reference} rw console=ttyS0 panic=-1 quiet")
    );

    // Signatures: the UKI and systemd-boot, by sbverify.
    for f in [
        uki.clone(),
        x.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed"),
    ] {
        run_ok(
            Command::new("sbverify")
                .arg("--cert")
                .arg(&keys.cert)
                .arg(&f),
        );
    }

    // Config: label, history, diff_id.
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            out.join("blobs/sha256")
                .join(sealed.config_digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(config["config"]["Labels"]["containers.bootc"], "sealed");
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        sealed.layers.len()
    );
    assert_eq!(
        config["history"].as_array().unwrap().last().unwrap()["created"],
        "2023-11-14T22:13:20Z"
    );

    // Reproducible: the same inputs, key and SOURCE_DATE_EPOCH give the same manifest digest.
    seal("again");
    assert_eq!(
        BuiltImage::load(&out, "again").manifest_digest,
        sealed.manifest_digest
    );

    // bootseal's own digest of the sealed image agrees too.
    let ours = stdout_of(
        bootseal()
            .arg("digest")
            .arg(format!("oci:{}:sealed", out.display())),
    );
    assert_eq!(ours.trim(), reference);
}

/// The layers of a layout image as (tar, compression), to rebuild it with changes.
fn relayer(image: &BuiltImage) -> common::image_builder::OciImage {
    use common::image_builder::{OciImage, layer_tar};
    image.layers.iter().fold(OciImage::new(), |out, l| {
        let (tar, c) = layer_tar(l);
        out.layer(tar, c)
    })
}

#[test]
fn verify_accepts_sealed_and_refuses_tampered_unsealed_and_wrong_cert() {
    use common::image_builder::{Compression, E, TarLayer};
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let other = keypair(tmp.path(), "other", 2048);
    let out = tmp.path().join("out");
    run_ok(&mut seal_cmd(
        &built.image.oci_ref(),
        &format!("oci:{}:sealed", out.display()),
        &keys,
    ));
    let sealed_ref = format!("oci:{}:sealed", out.display());
    let verify = |image: &str, cert: &Path| {
        bootseal()
            .args(["verify", "--json", image])
            .arg("--cert")
            .arg(cert)
            .output()
            .unwrap()
    };

    let good = verify(&sealed_ref, &keys.cert);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "one UKI",
            "composefs digest",
            "one kernel",
            "UKI signature",
            "bootloader signature",
            // The composefs sealing annotations every sealed OCI manifest carries by default.
            "composefs merged digest",
            "composefs merged.bootable digest",
            "composefs config digest"
        ]
    );
    let sealed = BuiltImage::load(&out, "sealed");
    assert_eq!(v["composefs_digest"], reference_digest(&sealed, 1));

    let wrong = verify(&sealed_ref, &other.cert);
    assert!(!wrong.status.success());
    let v: serde_json::Value = serde_json::from_slice(&wrong.stdout).unwrap();
    assert_eq!(v["checks"][3]["ok"], false, "{v}");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("verification failed"));

    let unsealed = verify(&built.image.oci_ref(), &keys.cert);
    assert!(!unsealed.status.success());
    let v: serde_json::Value = serde_json::from_slice(&unsealed.stdout).unwrap();
    assert_eq!(v["checks"][0]["detail"], "no UKI in /boot/EFI/Linux");

    // Sealing a sealed image again is refused by name.
    let again = bootseal()
        .args([
            "seal",
            "--allow-section-overlap",
            "--from",
            &sealed_ref,
            "--to",
        ])
        .arg(format!("oci:{}:twice", out.display()))
        .arg("--key")
        .arg(&keys.key)
        .arg("--cert")
        .arg(&keys.cert)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("image is already sealed: /boot/EFI/Linux/"),
        "{err}"
    );

    // A layer added after sealing changes /usr, so the UKI's digest no longer matches.
    let tampered = relayer(&sealed)
        .layer(
            TarLayer::with([E::file("usr/bin/evil", vec![b'e'; 100])]),
            Compression::Gzip,
        )
        .write(&tmp.path().join("tampered"), "t");
    let bad = verify(&tampered.oci_ref(), &keys.cert);
    assert!(!bad.status.success());
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["checks"][1]["name"], "composefs digest");
    assert_eq!(v["checks"][1]["ok"], false);
    let detail = v["checks"][1]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("composefs=") && detail.contains(", the layers give "),
        "{detail}"
    );
}

/// `oci-archive:` in and out: the archive is read in place (never extracted) and written
/// atomically; digest over the archive equals digest over the layout it came from.
#[test]
fn oci_archive_in_and_out() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let archive = tmp.path().join("base.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&built.image.dir)
            .arg("-cf")
            .arg(&archive)
            .arg("."),
    );
    let from_archive = stdout_of(
        bootseal()
            .arg("digest")
            .arg(format!("oci-archive:{}:base", archive.display())),
    );
    assert_eq!(
        from_archive,
        stdout_of(bootseal().arg("digest").arg(built.image.oci_ref()))
    );

    let out = tmp.path().join("sealed.tar");
    run_ok(&mut seal_cmd(
        &format!("oci-archive:{}:base", archive.display()),
        &format!("oci-archive:{}:sealed", out.display()),
        &keys,
    ));
    let x = tmp.path().join("unpacked");
    std::fs::create_dir_all(&x).unwrap();
    run_ok(Command::new("tar").arg("-C").arg(&x).arg("-xf").arg(&out));
    let sealed = BuiltImage::load(&x, "sealed");
    let verdict = stdout_of(
        bootseal()
            .arg("verify")
            .arg(format!("oci-archive:{}:sealed", out.display()))
            .arg("--cert")
            .arg(&keys.cert),
    );
    assert!(
        verdict.contains(&format!(
            "composefs={} matches the layers",
            reference_digest(&sealed, 1)
        )),
        "{verdict}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".bootseal-archive-")
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary layout removed");
}

/// A base whose /usr has a sub-second mtime: the sealed /boot entry carries /usr's nanoseconds,
/// so for /boot composefs-rs 0.9.0 (keeps /boot's) and >= 0.9.4 (copies /usr's) agree and no
/// /boot warning is raised (the base's own /sysroot still is: the layer adds nothing else);
/// the reference still matches.
#[test]
fn subsecond_usr_mtime_gives_a_version_independent_digest() {
    use common::image_builder::E;
    let tmp = scratch();
    let (img, kver, _, _) =
        bootc_image::layers(tmp.path(), vec![E::dir("usr").pax_mtime("1700000200.25")]);
    let base = img.write(&tmp.path().join("layout"), "base");
    let warned = bootseal()
        .args(["digest", "--json"])
        .arg(base.oci_ref())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&warned.stdout).unwrap();
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("/boot has a sub-second mtime"),
        "{v}"
    );

    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    let report = stdout_of(
        seal_cmd(
            &base.oci_ref(),
            &format!("oci:{}:sealed", out.display()),
            &keys,
        )
        .args(["--json"]),
    );
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    let warnings = r["platforms"][0]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{r}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .starts_with("/sysroot has a sub-second mtime"),
        "{r}"
    );
    let sealed = BuiltImage::load(&out, "sealed");
    assert_eq!(
        r["platforms"][0]["composefs_digest"],
        reference_digest(&sealed, 1)
    );
    let x = tmp.path().join("x");
    let names = extract_top_layer(&sealed, &x);
    assert_eq!(names[0], "boot/");
    assert!(names.contains(&format!("boot/EFI/Linux/{kver}.efi")));
}
