//! The kernel agrees: bootseal's fs-verity signature of the merged EROFS (composefs sealing
//! spec, `.sig` of `composefs.merged.erofs.v1.fsverity-sha512-12`) is accepted by Linux's
//! built-in signature check. The Debian kernel the tests use (`CONFIG_FS_VERITY_BUILTIN_SIGNATURES=y`)
//! boots in QEMU (direct kernel boot, TCG) with a busybox initramfs; the certificate goes into
//! the `.fs-verity` keyring with `keyctl`, composefs-rs's EROFS file of the sealed image lies on
//! an ext4 made with `-O verity`, and `fsverity enable --signature` succeeds with bootseal's
//! signature and is refused for the same digest signed by a key not in the keyring.

use crate::common;
use crate::composefs_meta::{b64, manifest_json, reference_erofs};

use common::image_builder::BuiltImage;
use common::{
    bootc_image, cache_dir, kernel, kernel_release, keypair, require_tool, run_ok, scratch,
    seal_cmd, stdout_of,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MERGED: &str = "composefs.merged.erofs.v1.fsverity-sha512-12";

/// Modules the guest loads, in dependency order (paths under `lib/modules/KVER/`).
const MODULES: &[&str] = &[
    "kernel/lib/crc16.ko",
    "kernel/crypto/crc32c_generic.ko",
    "kernel/fs/mbcache.ko",
    "kernel/fs/jbd2/jbd2.ko",
    "kernel/fs/ext4/ext4.ko",
    "kernel/drivers/block/loop.ko",
    "kernel/crypto/sha512_generic.ko",
];

/// A guard against a hung guest, not a timing assertion.
const GIVE_UP: Duration = Duration::from_secs(240);

/// [`MODULES`] of the test kernel's package, fetched with `apt-get download` once and cached.
fn modules(kver: &str) -> PathBuf {
    let dir = cache_dir().join(format!("fsverity-modules-{kver}"));
    if MODULES.iter().all(|m| dir.join(file_name(m)).is_file()) {
        return dir;
    }
    for t in ["apt-get", "dpkg-deb", "tar"] {
        require_tool(t);
    }
    let work = tempfile::Builder::new()
        .prefix("modules-dl-")
        .tempdir_in(cache_dir())
        .unwrap();
    let pkg = format!("linux-image-{kver}");
    run_ok(
        Command::new("apt-get")
            .args(["download", &pkg])
            .current_dir(work.path()),
    );
    let deb = std::fs::read_dir(work.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("downloaded .deb");
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let members: Vec<String> = MODULES
        .iter()
        .map(|m| format!("./lib/modules/{kver}/{m}"))
        .collect();
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&root)
        .args(&members)
        .stdin(dpkg.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(
        dpkg.wait().unwrap().success() && tar.success(),
        "extracting modules"
    );
    let flat = work.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    for m in MODULES {
        std::fs::copy(
            root.join(format!("lib/modules/{kver}/{m}")),
            flat.join(file_name(m)),
        )
        .unwrap();
    }
    let _ = std::fs::rename(&flat, &dir);
    dir
}

fn file_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap()
}

/// Copies the host's `binary` into `tree` at the same path, with the shared libraries `ldd`
/// names (and the dynamic loader) at theirs.
fn copy_with_libs(tree: &Path, binary: &str) {
    let mut files = vec![binary.to_owned()];
    let ldd = stdout_of(Command::new("ldd").arg(binary));
    for line in ldd.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push(p.to_owned());
        }
    }
    for f in files {
        let to = tree.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, &to).unwrap();
    }
}

const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /mnt
$B mount -t proc proc /proc
$B mount -t devtmpfs dev /dev
for m in crc16 crc32c_generic mbcache jbd2 ext4 loop sha512_generic; do
  $B insmod /modules/$m.ko || echo "INSMOD-FAILED $m"
done
$B mount -t ext4 -o loop /ext4.img /mnt || echo MOUNT-FAILED
/usr/bin/keyctl padd asymmetric bootseal %keyring:.fs-verity < /cert.der > /dev/null && echo KEY-ADDED
/usr/bin/fsverity enable --hash-alg=sha512 --signature=/good.sig /mnt/good.erofs 2>&1
echo "GOOD-RC=$?"
/usr/bin/fsverity measure /mnt/good.erofs 2>&1
/usr/bin/fsverity enable --hash-alg=sha512 --signature=/foreign.sig /mnt/foreign.erofs 2>&1
echo "FOREIGN-RC=$?"
/usr/bin/fsverity measure /mnt/foreign.erofs 2>&1
echo "FOREIGN-MEASURE-RC=$?"
echo GUEST-DONE
$B poweroff -f
"#;

/// Boots the test kernel with `initrd` and returns the serial log once the guest is done.
fn run_guest(vmlinuz: &Path, initrd: &Path) -> String {
    let _one_at_a_time = common::secureboot::QEMU
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let d = scratch();
    let serial = d.path().join("serial.log");
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "512", "-smp", "1", "-no-reboot"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 loglevel=4"])
        .args(["-nic", "none", "-display", "none", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-x86_64");
    let start = Instant::now();
    loop {
        let log =
            String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).replace('\r', "");
        if log.contains("GUEST-DONE") || qemu.try_wait().unwrap().is_some() {
            let _ = qemu.kill();
            let _ = qemu.wait();
            return log;
        }
        if start.elapsed() > GIVE_UP {
            let _ = qemu.kill();
            let _ = qemu.wait();
            panic!("guest did not finish:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kernel_accepts_bootseals_fsverity_signature_and_refuses_a_foreign_one() {
    for t in [
        "qemu-system-x86_64",
        "busybox",
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
    let tree = tmp.path().join("initramfs");
    let fsdir = tmp.path().join("ext4-root");
    std::fs::create_dir_all(&fsdir).unwrap();
    std::fs::copy(&erofs, fsdir.join("good.erofs")).unwrap();
    std::fs::copy(&erofs, fsdir.join("foreign.erofs")).unwrap();
    std::fs::create_dir_all(tree.join("modules")).unwrap();
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "4096", "-O", "verity", "-d"])
            .arg(&fsdir)
            .arg(tree.join("ext4.img"))
            .arg("8M"),
    );
    let k = kernel();
    let mods = modules(&kernel_release(&k));
    for m in MODULES {
        std::fs::copy(
            mods.join(file_name(m)),
            tree.join("modules").join(file_name(m)),
        )
        .unwrap();
    }
    std::fs::write(
        tree.join("good.sig"),
        b64(&g["annotations"][format!("{MERGED}.sig")]),
    )
    .unwrap();
    std::fs::write(
        tree.join("foreign.sig"),
        b64(&f["annotations"][format!("{MERGED}.sig")]),
    )
    .unwrap();
    run_ok(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&keys.cert)
            .arg("-out")
            .arg(tree.join("cert.der")),
    );
    let busybox = stdout_of(Command::new("sh").args(["-c", "command -v busybox"]));
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::copy(busybox.trim(), tree.join("bin/busybox")).unwrap();
    for b in ["keyctl", "fsverity"] {
        let path = stdout_of(Command::new("sh").args(["-c", &format!("command -v {b}")]));
        copy_with_libs(&tree, path.trim());
        // The init script runs them from /usr/bin.
        let at = tree.join("usr/bin").join(b);
        if !at.exists() {
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::copy(path.trim(), at).unwrap();
        }
    }
    std::fs::write(tree.join("init"), INIT).unwrap();
    run_ok(
        Command::new("chmod")
            .arg("755")
            .arg(tree.join("init"))
            .arg(tree.join("bin/busybox")),
    );
    let initrd = tmp.path().join("initrd.cpio");
    run_ok(Command::new("sh").current_dir(&tree).args([
        "-c",
        &format!("find . | cpio --quiet -o -H newc > {}", initrd.display()),
    ]));

    let log = run_guest(&k, &initrd);
    let ctx = || format!("serial log:\n{log}");
    assert!(
        !log.contains("INSMOD-FAILED") && !log.contains("MOUNT-FAILED"),
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
