//! The command line as bootc reads it: an image cannot inject or shadow the composefs argument
//! (kargs.d, --karg), and forged UKIs (insecure `?`, an extra `composefs.digest=`, a second
//! `composefs=`) are refused by `verify` and `seal --uki`; `--allow-missing-verity` works end to
//! end and shows in the reports. Every command line is also read with composefs-boot 0.9.0's
//! own parser, so the checks agree with what the initramfs mounts.

use crate::common;

use common::image_builder::{BuiltImage, E};
use common::{KeyPair, bootc_image, bootseal, build_uki, keypair, scratch, stdout_of};
use composefs::fsverity::{FsVerityHashValue, Sha512HashValue};
use composefs_boot::cmdline::ComposefsCmdline;
use std::path::Path;
use std::process::Output;

const OTHER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\
                     0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed run: exit status 1 and one error line (after any progress lines) naming `needle`.
fn assert_refused(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    let e = stderr(o);
    let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("bootseal: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {e}");
    assert!(errors[0].contains(needle), "expected {needle:?} in: {e}");
}

/// `seal` into `out:tag`; signs with `keys` (none: a signed `--uki` is among `extra`).
fn seal_to_layout(
    from: &str,
    out: &Path,
    tag: &str,
    keys: Option<&KeyPair>,
    extra: &[&str],
) -> Output {
    let mut c = bootseal();
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .args([
            "seal",
            "--allow-section-overlap",
            "--no-sign-bootloader",
            "--from",
            from,
        ])
        .arg("--to")
        .arg(format!("oci:{}:{tag}", out.display()));
    if let Some(k) = keys {
        c.arg("--key").arg(&k.key).arg("--cert").arg(&k.cert);
    }
    c.args(extra).output().unwrap()
}

fn tagged(out: &Path, tag: &str) -> bool {
    std::fs::read_to_string(out.join("index.json"))
        .map(|i| i.contains(&format!("\"{tag}\"")))
        .unwrap_or(false)
}

#[test]
fn kargs_d_and_karg_cannot_set_the_composefs_argument() {
    let tmp = scratch();
    let t = tmp.path();
    let keys = keypair(t, "db", 2048);
    let out = t.join("out");
    for (file, karg) in [
        ("50-evil.toml", format!("composefs={OTHER}")),
        (
            "51-evil.toml",
            format!("composefs.digest=v1-sha512-12:{OTHER}"),
        ),
        ("52-evil.toml", format!("quiet composefs=?{OTHER}")),
    ] {
        let (img, _, _, _) = bootc_image::layers(
            t,
            vec![E::file(
                &format!("usr/lib/bootc/kargs.d/{file}"),
                format!("kargs = [\"{}\"]\n", karg.replace('"', "\\\"")),
            )],
        );
        let base = img.write(&t.join(file), "base");
        let o = seal_to_layout(&base.oci_ref(), &out, "sealed", Some(&keys), &[]);
        assert_refused(&o, &format!("/usr/lib/bootc/kargs.d/{file}"));
        assert!(stderr(&o).contains("composefs argument"), "{}", stderr(&o));
        assert!(!tagged(&out, "sealed"), "nothing tagged");

        let o = bootseal()
            .args([
                "build-uki",
                "--allow-section-overlap",
                "--no-sign-bootloader",
                "--from",
            ])
            .arg(base.oci_ref())
            .arg("-o")
            .arg(t.join("x.efi"))
            .output()
            .unwrap();
        assert_refused(&o, &format!("/usr/lib/bootc/kargs.d/{file}"));
        assert!(!t.join("x.efi").exists());
    }

    let base = bootc_image::build(t, "base").image;
    for karg in [
        format!("composefs={OTHER}"),
        format!("composefs.digest=v1-sha512-12:{OTHER}"),
        "\"composefs=1\"".to_string(),
    ] {
        let o = seal_to_layout(
            &base.oci_ref(),
            &out,
            "sealed",
            Some(&keys),
            &["--karg", &karg],
        );
        assert_refused(&o, "--karg:");
    }
    assert!(!tagged(&out, "sealed"));
    // The control: an ordinary --karg seals.
    let o = seal_to_layout(
        &base.oci_ref(),
        &out,
        "sealed",
        Some(&keys),
        &["--karg", "quiet"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// An image whose UKI carries `line`: the test image plus a layer with the UKI. The digest does
/// not depend on /boot's contents (the boot transform empties it), so it is computed once with
/// a placeholder UKI and then holds for every forged one.
fn image_with_uki(t: &Path, name: &str, uki: Option<&Path>, kver: &str) -> BuiltImage {
    let bytes = uki
        .map(|p| std::fs::read(p).unwrap())
        .unwrap_or_else(|| b"placeholder".to_vec());
    let (img, _, _, _) = bootc_image::layers(
        t,
        vec![
            E::dir("boot").mode(0o755),
            E::dir("boot/EFI"),
            E::dir("boot/EFI/Linux"),
            E::file(&format!("boot/EFI/Linux/{kver}.efi"), bytes),
        ],
    );
    img.write(&t.join(name), "img")
}

fn verify(image: &BuiltImage, extra: &[&str]) -> (Output, serde_json::Value) {
    let o = bootseal()
        .args(["verify", "--json"])
        .arg(image.oci_ref())
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o, v)
}

fn composefs_check(v: &serde_json::Value) -> (bool, String) {
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "composefs digest")
        .unwrap_or_else(|| panic!("no composefs check: {v}"));
    (
        c["ok"].as_bool().unwrap(),
        c["detail"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn verify_refuses_forged_command_lines() {
    let tmp = scratch();
    let t = tmp.path();
    let kver = bootc_image::build(t, "probe").kver;
    let placeholder = image_with_uki(t, "placeholder", None, &kver);
    let d = stdout_of(bootseal().arg("digest").arg(placeholder.oci_ref()))
        .trim()
        .to_owned();

    let cases: [(&str, String, Option<&str>); 5] = [
        ("honest", format!("composefs={d} rw"), None),
        (
            "insecure",
            format!("composefs=?{d} rw"),
            Some("insecure form"),
        ),
        (
            "extra-digest",
            format!("composefs={d} rw composefs.digest=v1-sha512-12:{OTHER}"),
            Some("2 composefs tokens"),
        ),
        (
            "second",
            format!("composefs={d} rw composefs={OTHER}"),
            Some("2 composefs tokens"),
        ),
        (
            "other",
            format!("composefs={OTHER} rw"),
            Some("the layers give"),
        ),
    ];
    for (name, line, refusal) in &cases {
        // What the initramfs would mount (composefs-boot 0.9.0): the forged lines do not all
        // name `d`, which is why they must be refused.
        let seen = ComposefsCmdline::<Sha512HashValue>::from_cmdline(line)
            .unwrap()
            .unwrap();
        if *name == "extra-digest" {
            assert_eq!(
                seen.digest().to_hex(),
                OTHER,
                "composefs.digest= is read first"
            );
        }
        let uki = build_uki(t, line, &format!("{name}.efi"));
        let image = image_with_uki(t, name, Some(&uki), &kver);
        let (o, v) = verify(&image, &[]);
        assert_eq!(
            v["composefs_digest"],
            d.as_str(),
            "digest independent of /boot"
        );
        let (ok, detail) = composefs_check(&v);
        match refusal {
            None => {
                assert!(o.status.success() && ok, "{name}: {v}");
                assert!(String::from_utf8_lossy(&o.stdout).contains("fs-verity required"));
            }
            Some(why) => {
                assert!(!o.status.success() && !ok, "{name} must be refused: {v}");
                assert!(detail.contains(why), "{name}: {detail}");
            }
        }
        if *name == "insecure" {
            let (o, v) = verify(&image, &["--allow-missing-verity"]);
            assert!(o.status.success(), "{v}");
            assert_eq!(v["composefs_argument"]["insecure"], true);
            assert!(composefs_check(&v).1.contains("INSECURE"));
            let text = stdout_of(
                bootseal()
                    .args(["verify", "--allow-missing-verity"])
                    .arg(image.oci_ref()),
            );
            assert!(
                text.contains("verdict: sealed and valid (insecure"),
                "{text}"
            );
        }
    }
}

#[test]
fn seal_refuses_forged_supplied_ukis() {
    let tmp = scratch();
    let t = tmp.path();
    let base = bootc_image::build(t, "base").image;
    let honest = t.join("honest.efi");
    let d = stdout_of(
        bootseal()
            .args([
                "build-uki",
                "--allow-section-overlap",
                "--no-sign-bootloader",
                "--from",
            ])
            .arg(base.oci_ref())
            .arg("-o")
            .arg(&honest),
    )
    .trim()
    .to_owned();
    let out = t.join("out");
    for (name, line, why) in [
        ("insecure", format!("composefs=?{d} rw"), "insecure form"),
        (
            "extra",
            format!("composefs={d} rw composefs.digest=v1-sha512-12:{OTHER}"),
            "2 composefs tokens",
        ),
        (
            "second",
            format!("composefs={d} composefs={d}"),
            "2 composefs tokens",
        ),
        (
            "v2-label",
            format!("composefs.digest=v2-sha512-12:{d}"),
            "declares EROFS v2",
        ),
    ] {
        let uki = build_uki(t, &line, &format!("{name}.efi"));
        let o = seal_to_layout(
            &base.oci_ref(),
            &out,
            name,
            None,
            &["--uki", uki.to_str().unwrap()],
        );
        assert_refused(&o, "--uki:");
        assert!(stderr(&o).contains(why), "{name}: {}", stderr(&o));
        assert!(!tagged(&out, name));
        if name == "insecure" {
            let o = seal_to_layout(
                &base.oci_ref(),
                &out,
                name,
                None,
                &["--uki", uki.to_str().unwrap(), "--allow-missing-verity"],
            );
            assert!(o.status.success(), "{}", stderr(&o));
        }
    }
    let o = seal_to_layout(
        &base.oci_ref(),
        &out,
        "honest",
        None,
        &["--uki", honest.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn allow_missing_verity_end_to_end() {
    let tmp = scratch();
    let t = tmp.path();
    let base = bootc_image::build(t, "base").image;
    let keys = keypair(t, "db", 2048);
    let out = t.join("out");
    let o = seal_to_layout(
        &base.oci_ref(),
        &out,
        "sealed",
        Some(&keys),
        &["--allow-missing-verity", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = report["platforms"][0]["composefs_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let line = report["platforms"][0]["cmdline"].as_str().unwrap();
    assert!(line.starts_with(&format!("composefs=?{d} rw")), "{line}");
    let seen = ComposefsCmdline::<Sha512HashValue>::from_cmdline(line)
        .unwrap()
        .unwrap();
    assert!(seen.is_insecure());
    assert_eq!(seen.digest().to_hex(), d);

    let sealed = BuiltImage::load(&out, "sealed");
    let (o, v) = verify(&sealed, &[]);
    assert!(!o.status.success(), "insecure refused by default: {v}");
    assert!(composefs_check(&v).1.contains("--allow-missing-verity"));
    let (o, v) = verify(&sealed, &["--allow-missing-verity"]);
    assert!(o.status.success(), "{v}");
    assert_eq!(v["composefs_argument"]["insecure"], true);

    let uki = t.join("uki.efi");
    stdout_of(
        bootseal()
            .args(["verify", "--allow-missing-verity", "--save-uki"])
            .arg(&uki)
            .arg(sealed.oci_ref()),
    );
    let text = stdout_of(bootseal().arg("inspect").arg(&uki));
    assert!(text.contains("INSECURE: fs-verity optional"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(bootseal().args(["inspect", "--json"]).arg(&uki))).unwrap();
    assert_eq!(json["composefs"]["digest_hex"], d.as_str());
    assert_eq!(json["composefs"]["insecure"], true);
}

/// `build-uki` from files stays the low-level tool: it writes the command line it is given and
/// warns when that line would not pass as a sealed one.
#[test]
fn build_uki_from_files_writes_what_it_is_given_and_warns() {
    let tmp = scratch();
    let t = tmp.path();
    for (name, line, warning) in [
        (
            "insecure",
            format!("composefs=?{OTHER} rw"),
            Some("insecure form"),
        ),
        (
            "repeated",
            format!("composefs={OTHER} composefs.digest=v1-sha512-12:{OTHER}"),
            Some("2 composefs tokens"),
        ),
        ("plain", format!("composefs={OTHER} rw"), None),
    ] {
        let (uki, o) = common::build_uki_output(t, &line, &format!("{name}.efi"));
        assert!(o.status.success(), "{}", stderr(&o));
        let e = stderr(&o);
        match warning {
            Some(w) => assert!(e.contains("warning") && e.contains(w), "{name}: {e}"),
            None => assert!(e.is_empty(), "{name}: {e}"),
        }
        let json: serde_json::Value =
            serde_json::from_str(&stdout_of(bootseal().args(["inspect", "--json"]).arg(&uki)))
                .unwrap();
        assert_eq!(json["cmdline"], line.as_str(), "written as given");
    }
}
