//! First boot of a fresh machine: OVMF with the empty variable store (setup mode) boots an ESP
//! laid out as `bootc install` lays it out — the signed systemd-boot as EFI/BOOT/BOOTX64.EFI,
//! `loader/loader.conf` with `secure-boot-enroll force`, `loader/keys/auto/{PK,KEK,db}.auth`
//! made by `bootseal keys create` and carried in the image sealed with `--enroll-keys`, the
//! sealed UKI in EFI/Linux/ — all taken out of the sealed image. systemd-boot enrolls the keys
//! and resets; the kernel then reports Secure Boot enabled and our command line. With the same
//! variable store afterwards, a tampered UKI is refused.

use crate::common;

use common::image_builder::BuiltImage;
use common::secureboot::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const OVMF_VARS_EMPTY: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The ESP bootc install writes, with `uki` as the only boot entry.
fn esp_files(dir: &Path, boot: &Path, uki: &Path, auth_dir: &Path) -> Vec<(PathBuf, String)> {
    let conf = dir.join("loader.conf");
    std::fs::write(&conf, "timeout 0\nsecure-boot-enroll force\n").unwrap();
    let mut files = vec![
        (boot.to_path_buf(), "EFI/BOOT/BOOTX64.EFI".to_string()),
        (conf, "loader/loader.conf".into()),
        (uki.to_path_buf(), "EFI/Linux/sealed.efi".into()),
    ];
    for v in ["PK", "KEK", "db"] {
        files.push((
            auth_dir.join(format!("{v}.auth")),
            format!("loader/keys/auto/{v}.auth"),
        ));
    }
    files
}

/// Extracts the sealed (top) layer of a layout image into `dir` with GNU tar; returns the
/// listed names.
fn extract_top_layer(image: &BuiltImage, dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let top = image.layers.last().unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf") // GNU tar detects gzip or zstd itself
            .arg(&top.path)
            .arg("-C")
            .arg(dir),
    );
    stdout_of(Command::new("tar").arg("-tf").arg(&top.path))
        .lines()
        .map(str::to_owned)
        .collect()
}

fn seal(
    built: &bootc_image::BootcImage,
    out: &Path,
    keys: &Path,
    signer: &str,
) -> std::process::Output {
    bootseal()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["seal", "--from"])
        .arg(built.image.oci_ref())
        .arg("--to")
        .arg(format!("oci:{}:sealed", out.display()))
        .arg("--key")
        .arg(keys.join(format!("{signer}.key")))
        .arg("--cert")
        .arg(keys.join(format!("{signer}.crt")))
        .arg("--enroll-keys")
        .arg(keys)
        .output()
        .unwrap()
}

#[test]
fn setup_mode_enrollment_from_sealed_image_then_tampered_uki_refused() {
    require_file(OVMF_VARS_EMPTY, "ovmf");
    let d = scratch();
    let keys = d.path().join("keys");
    run_ok(bootseal().args(["keys", "create"]).arg(&keys));
    let built = bootc_image::build(d.path(), "base");
    let out = d.path().join("out");

    // Signed by a key db.auth does not enroll: refused, nothing written.
    let refused = seal(&built, &out, &keys, "KEK");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("db.auth does not enroll"),
        "{err}"
    );

    let sealed = seal(&built, &out, &keys, "db");
    assert!(
        sealed.status.success(),
        "{}",
        String::from_utf8_lossy(&sealed.stderr)
    );
    let sealed = BuiltImage::load(&out, "sealed");
    let x = d.path().join("x");
    let names = extract_top_layer(&sealed, &x);
    let dir = "usr/lib/bootc/install/secureboot-keys/auto";
    for f in ["PK.auth", "KEK.auth", "db.auth"] {
        assert_eq!(
            std::fs::read(x.join(dir).join(f)).unwrap(),
            std::fs::read(keys.join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(names.iter().all(|n| !n.ends_with(".key")), "{names:?}");
    assert!(names.contains(&format!("{dir}/")), "{names:?}");
    // The payloads are inside the digest: composefs-oci's own pipeline on the sealed image
    // gives the UKI's composefs= value.
    let uki = x.join(format!("boot/EFI/Linux/{}.efi", built.kver));
    let cmdline = String::from_utf8(objcopy_section(&uki, ".cmdline", d.path())).unwrap();
    let digest = reference::reference_digest(&sealed, 1);
    assert!(
        cmdline.starts_with(&format!("composefs={digest} ")),
        "{cmdline}"
    );

    // First boot of a blank machine: the ESP as bootc install writes it from the image.
    let boot = x.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed");
    let vars = d.path().join("vars.fd");
    std::fs::copy(OVMF_VARS_EMPTY, &vars).unwrap();
    let esp = make_esp_tree(d.path(), &esp_files(d.path(), &boot, &uki, &x.join(dir)));
    let (verdict, log) = boot_esp(&vars, &esp);
    assert!(
        log.contains("Enrolling secure boot keys"),
        "systemd-boot did not enroll: {verdict:?}"
    );
    match verdict {
        Verdict::Booted(line) => assert!(line.contains(&format!("composefs={digest}")), "{line}"),
        v => panic!("sealed UKI did not boot after enrollment: {v:?}"),
    }
    assert!(
        log.contains("secureboot: Secure boot enabled"),
        "kernel does not report Secure Boot enabled"
    );

    // Same variable store: a one-byte change in the UKI's command line is refused.
    let mut b = std::fs::read(&uki).unwrap();
    let pos = b.windows(10).position(|w| w == b"composefs=").unwrap() + 10;
    b[pos] = if b[pos] == b'0' { b'1' } else { b'0' };
    let tampered = d.path().join("tampered.efi");
    std::fs::write(&tampered, b).unwrap();
    let esp = make_esp_tree(
        d.path(),
        &esp_files(d.path(), &boot, &tampered, &x.join(dir)),
    );
    let (verdict, _) = boot_esp(&vars, &esp);
    assert!(
        matches!(verdict, Verdict::Rejected(_)),
        "tampered UKI was not refused: {verdict:?}"
    );
}

#[test]
fn build_uki_from_with_enroll_keys_matches_seal() {
    let d = scratch();
    let keys = d.path().join("keys");
    run_ok(bootseal().args(["keys", "create"]).arg(&keys));
    let built = bootc_image::build(d.path(), "base");
    let cmdline_of =
        |uki: &Path| String::from_utf8(objcopy_section(uki, ".cmdline", d.path())).unwrap();
    let external = |enroll: bool, name: &str| {
        let out = d.path().join(name);
        let mut c = bootseal();
        c.args(["build-uki", "--from"])
            .arg(built.image.oci_ref())
            .arg("--no-sign-bootloader")
            .arg("-o")
            .arg(&out);
        if enroll {
            c.arg("--enroll-keys").arg(&keys);
        }
        run_ok(&mut c);
        cmdline_of(&out)
    };
    let with = external(true, "with.efi");
    let without = external(false, "without.efi");
    assert_ne!(with, without, "the payloads must be inside the digest");
    let out = d.path().join("out");
    run_ok(
        bootseal()
            .args(["seal", "--no-sign-bootloader", "--from"])
            .arg(built.image.oci_ref())
            .arg("--to")
            .arg(format!("oci:{}:sealed", out.display()))
            .arg("--key")
            .arg(keys.join("db.key"))
            .arg("--cert")
            .arg(keys.join("db.crt"))
            .arg("--enroll-keys")
            .arg(&keys),
    );
    let sealed = BuiltImage::load(&out, "sealed");
    let x = d.path().join("x");
    extract_top_layer(&sealed, &x);
    let uki = x.join(format!("boot/EFI/Linux/{}.efi", built.kver));
    assert_eq!(cmdline_of(&uki), with);

    // verify reports the payload and that the UKI chains to the db it enrolls.
    let v = bootseal()
        .arg("verify")
        .arg(format!("oci:{}:sealed", out.display()))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{report}");
    assert!(report.contains("[ok] enrollment payload auto"), "{report}");
    assert!(
        report.contains("[ok] UKI signature chains to db of auto"),
        "{report}"
    );

    // The same payload with a UKI signed elsewhere by a key db.auth does not enroll: seal
    // cannot tell without --cert, verify can.
    let other = keypair(d.path(), "other", 2048);
    let signed = d.path().join("other-signed.efi");
    run_ok(&mut sign_cmd(
        &other.key,
        &other.cert,
        d.path().join("with.efi"),
        &signed,
    ));
    run_ok(
        bootseal()
            .args(["seal", "--no-sign-bootloader", "--from"])
            .arg(built.image.oci_ref())
            .arg("--to")
            .arg(format!("oci:{}:other", out.display()))
            .arg("--uki")
            .arg(&signed)
            .arg("--enroll-keys")
            .arg(&keys),
    );
    let v = bootseal()
        .arg("verify")
        .arg(format!("oci:{}:other", out.display()))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&v.stdout);
    assert!(!v.status.success(), "{report}");
    assert!(report.contains("[ok] enrollment payload auto"), "{report}");
    assert!(
        report.contains("[FAIL] UKI signature chains to db of auto"),
        "{report}"
    );

    // A key directory without db.auth is refused, naming the file.
    std::fs::remove_file(keys.join("db.auth")).unwrap();
    let o = bootseal()
        .args(["build-uki", "--from"])
        .arg(built.image.oci_ref())
        .args(["--no-sign-bootloader", "-o"])
        .arg(d.path().join("x.efi"))
        .arg("--enroll-keys")
        .arg(&keys)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("db.auth"), "{err}");
}
