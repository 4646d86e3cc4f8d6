//! The kernel agrees: bootseal's fs-verity signature of the merged EROFS (composefs sealing
//! spec, `.sig` of `composefs.merged.erofs.v1.fsverity-sha512-12`) is accepted by Linux's
//! built-in signature check. The Debian kernel the tests use (`CONFIG_FS_VERITY_BUILTIN_SIGNATURES=y`)
//! boots in QEMU (`common::kernel_vm`); the certificate goes into
//! the `.fs-verity` keyring with `keyctl`, composefs-rs's EROFS file of the sealed image lies on
//! an ext4 made with `-O verity`, and `fsverity enable --signature` succeeds with bootseal's
//! signature and is refused for the same digest signed by a key not in the keyring.

use crate::common;
use crate::composefs_meta::{b64, manifest_json, reference_erofs};

use common::image_builder::BuiltImage;
use common::{bootc_image, kernel_vm, keypair, require_tool, run_ok, scratch, seal_cmd};
use std::path::PathBuf;
use std::process::Command;

const MERGED: &str = "composefs.merged.erofs.v1.fsverity-sha512-12";

const SCRIPT: &str = r#"
mount -t ext4 -o loop /ext4.img /mnt || echo "GUEST: mount failed"
keyctl padd asymmetric bootseal %keyring:.fs-verity < /cert.der > /dev/null && echo KEY-ADDED
fsverity enable --hash-alg=sha512 --signature=/good.sig /mnt/good.erofs 2>&1
echo "GOOD-RC=$?"
fsverity measure /mnt/good.erofs 2>&1
fsverity enable --hash-alg=sha512 --signature=/foreign.sig /mnt/foreign.erofs 2>&1
echo "FOREIGN-RC=$?"
fsverity measure /mnt/foreign.erofs 2>&1
echo "FOREIGN-MEASURE-RC=$?"
"#;

#[test]
fn kernel_accepts_bootseals_fsverity_signature_and_refuses_a_foreign_one() {
    for t in [
        "qemu-system-x86_64",
        "keyctl",
        "fsverity",
        "mkfs.ext4",
        "cpio",
        "ldd",
        "openssl",
    ] {
        require_tool(t);
    }
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "fsverity", 2048);
    let other = keypair(tmp.path(), "other", 2048);
    let out = tmp.path().join("out");
    let seal = |tag: &str, extra: &[&str]| {
        run_ok(
            seal_cmd(
                &built.image.oci_ref(),
                &format!("oci:{}:{tag}", out.display()),
                &keys,
            )
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["--composefs-sign", "inline"])
            .args(extra),
        );
        BuiltImage::load(&out, tag)
    };
    let sealed = seal("good", &[]);
    // The same image, its composefs signatures made by a key the keyring will not hold.
    let foreign = seal(
        "foreign",
        &[
            "--composefs-key",
            other.key.to_str().unwrap(),
            "--composefs-cert",
            other.cert.to_str().unwrap(),
        ],
    );
    let (g, f) = (manifest_json(&sealed), manifest_json(&foreign));
    let digest = g["annotations"][MERGED].as_str().unwrap().to_owned();
    assert_eq!(f["annotations"][MERGED], digest.as_str(), "same tree");

    // What the guest gets: composefs-rs's merged EROFS of the sealed image, twice, on an
    // ext4 with the verity feature; the certificate; both signatures.
    let (erofs, _) = reference_erofs(&sealed, tmp.path());
    let guest = tmp.path().join("guest");
    let fsdir = tmp.path().join("ext4-root");
    std::fs::create_dir_all(&fsdir).unwrap();
    std::fs::create_dir_all(&guest).unwrap();
    std::fs::copy(&erofs, fsdir.join("good.erofs")).unwrap();
    std::fs::copy(&erofs, fsdir.join("foreign.erofs")).unwrap();
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "4096", "-O", "verity", "-d"])
            .arg(&fsdir)
            .arg(guest.join("ext4.img"))
            .arg("8M"),
    );
    std::fs::write(
        guest.join("good.sig"),
        b64(&g["annotations"][format!("{MERGED}.sig")]),
    )
    .unwrap();
    std::fs::write(
        guest.join("foreign.sig"),
        b64(&f["annotations"][format!("{MERGED}.sig")]),
    )
    .unwrap();
    run_ok(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&keys.cert)
            .arg("-out")
            .arg(guest.join("cert.der")),
    );
    let mut files: Vec<(PathBuf, String)> = ["ext4.img", "good.sig", "foreign.sig", "cert.der"]
        .iter()
        .map(|f| (guest.join(f), format!("/{f}")))
        .collect();
    files.extend(kernel_vm::with_libs("keyctl"));
    files.extend(kernel_vm::with_libs("fsverity"));
    let log = kernel_vm::run_script(kernel_vm::EXT4_LOOP_SHA512, &files, &[], SCRIPT);
    let ctx = || format!("serial log:\n{log}");
    assert!(
        !log.contains("GUEST: insmod") && !log.contains("GUEST: mount failed"),
        "{}",
        ctx()
    );
    assert!(log.contains("KEY-ADDED"), "{}", ctx());
    assert!(log.contains("GOOD-RC=0"), "{}", ctx());
    assert!(
        log.contains(&format!("sha512:{digest} /mnt/good.erofs")),
        "the kernel's fs-verity digest is the annotation's: {}",
        ctx()
    );
    // The fault: a valid signature over the same digest by a key outside the keyring.
    assert!(!log.contains("FOREIGN-RC=0"), "{}", ctx());
    assert!(
        log.contains("FS_IOC_ENABLE_VERITY")
            && log.contains("Required key not available")
            && log.contains("signing cert isn't in the fs-verity keyring"),
        "the kernel names the missing key: {}",
        ctx()
    );
    assert!(
        !log.contains("FOREIGN-MEASURE-RC=0"),
        "no verity on the refused file: {}",
        ctx()
    );
}
