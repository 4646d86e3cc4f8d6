//! The Debian kernel the tests already use ([`super::kernel`]), booted directly under QEMU
//! (TCG, as in [`super::secureboot`]: CI machines need not offer KVM) with an initramfs of the
//! host's static busybox (Debian `busybox-static`), chosen modules of the same kernel package,
//! the files a test adds, and the test's shell script as the body of /init. For checks only the
//! real kernel can make: mounting an EROFS image we wrote, enabling fs-verity with our
//! signature.
//!
//! Disks are read-only virtio drives (`/dev/vda`, `/dev/vdb`, ...). The console output is
//! returned; a script marks what the test should read with its own lines.

use std::path::PathBuf;
use std::process::Command;

use super::{cache_dir, kernel, kernel_release, require_file, require_tool, run_ok, stdout_of};

/// Virtio block devices over PCI, in dependency order (`depends=` in each module's .modinfo).
const VIRTIO_BLK: &[&str] = &[
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
];

/// EROFS (which needs crc32c).
pub const EROFS: &[&str] = &[
    "crypto/crc32c_generic.ko",
    "lib/libcrc32c.ko",
    "fs/erofs/erofs.ko",
];

/// ext4 on a loop device, and SHA-512 for fs-verity.
pub const EXT4_LOOP_SHA512: &[&str] = &[
    "lib/crc16.ko",
    "crypto/crc32c_generic.ko",
    "fs/mbcache.ko",
    "fs/jbd2/jbd2.ko",
    "fs/ext4/ext4.ko",
    "drivers/block/loop.ko",
    "crypto/sha512_generic.ko",
];

/// The modules of the test kernel's package any test may load (paths below `kernel/`),
/// extracted once from the package (`apt-get download`) and cached.
fn modules_dir(kver: &str) -> PathBuf {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut all: Vec<&str> = VIRTIO_BLK
        .iter()
        .chain(EROFS)
        .chain(EXT4_LOOP_SHA512)
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    let dir = cache_dir().join(format!("kernel-modules-{kver}"));
    if all.iter().all(|m| dir.join(m).is_file()) {
        return dir;
    }
    for t in ["apt-get", "dpkg-deb", "tar"] {
        require_tool(t);
    }
    let work = tempfile::Builder::new()
        .prefix("modules-dl-")
        .tempdir_in(cache_dir())
        .unwrap();
    run_ok(
        Command::new("apt-get")
            .args(["download", &format!("linux-image-{kver}")])
            .current_dir(work.path()),
    );
    let deb = std::fs::read_dir(work.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("downloaded .deb");
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let members: Vec<String> = all
        .iter()
        .map(|m| format!("./lib/modules/{kver}/kernel/{m}"))
        .collect();
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("dpkg-deb --fsys-tarfile \"$DEB\" | tar -x -C \"$OUT\" \"$@\"")
            .arg("sh")
            .args(&members)
            .env("DEB", &deb)
            .env("OUT", &root),
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(root.join(format!("lib/modules/{kver}/kernel")), &dir).unwrap();
    dir
}

/// The host's `binary` (a name on PATH), to run in the guest as `/usr/bin/<binary>`, and the
/// shared libraries `ldd` names (with the dynamic loader) at their own paths: (host path,
/// guest path) pairs for [`run_script`].
pub fn with_libs(binary: &str) -> Vec<(PathBuf, String)> {
    require_tool("ldd");
    let path = stdout_of(Command::new("sh").args(["-c", &format!("command -v {binary}")]));
    let path = path.trim().to_owned();
    let mut files = vec![(PathBuf::from(&path), format!("/usr/bin/{binary}"))];
    for line in stdout_of(Command::new("ldd").arg(&path)).lines() {
        let lib = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = lib.filter(|p| p.starts_with('/')) {
            files.push((PathBuf::from(p), p.to_owned()));
        }
    }
    files
}

/// Boots the kernel with the virtio block modules and then `modules` (paths below `kernel/`,
/// loaded in order), `files` copied into the initramfs (host path, guest path), `disks` as
/// virtio drives, and `script` as the body of /init after the usual mounts (/proc, /sys,
/// /dev). Returns the console output; fails if the script did not run to its end.
pub fn run_script(
    modules: &[&str],
    files: &[(PathBuf, String)],
    disks: &[PathBuf],
    script: &str,
) -> String {
    for tool in ["qemu-system-x86_64", "cpio", "timeout"] {
        require_tool(tool);
    }
    let busybox = require_file("/bin/busybox", "busybox-static");
    let vmlinuz = kernel();
    let mods = modules_dir(&kernel_release(&vmlinuz));
    let work = super::scratch();
    let root = work.path().join("root");
    for d in ["bin", "proc", "sys", "dev", "mnt", "m"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    let mut init = String::from(
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc\n\
         mount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n",
    );
    for (i, module) in VIRTIO_BLK.iter().chain(modules).enumerate() {
        let name = format!("{i:02}.ko");
        std::fs::copy(mods.join(module), root.join("m").join(&name)).unwrap();
        init.push_str(&format!(
            "insmod /m/{name} || echo 'GUEST: insmod {module} failed'\n"
        ));
    }
    for (from, to) in files {
        let dest = root.join(to.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from, &dest).unwrap();
    }
    init.push_str(script);
    init.push_str("\necho GUEST: done\npoweroff -f\n");
    std::fs::write(root.join("init"), init).unwrap();
    run_ok(Command::new("chmod").arg("-R").arg("a+rx").arg(&root));
    let initrd = work.path().join("initramfs.cpio");
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > \"$OUT\"")
            .env("OUT", &initrd)
            .current_dir(&root),
    );
    // `timeout` ends a hung guest; panic=-1 and -no-reboot end a crashed one.
    let mut qemu = Command::new("timeout");
    qemu.args([
        "600",
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-smp",
        "2",
        "-m",
        "1024",
    ])
    .args([
        "-no-reboot",
        "-nic",
        "none",
        "-display",
        "none",
        "-monitor",
        "none",
    ])
    .args(["-serial", "stdio"])
    .arg("-kernel")
    .arg(&vmlinuz)
    .arg("-initrd")
    .arg(&initrd)
    .args(["-append", "console=ttyS0 panic=-1 loglevel=4"]);
    for disk in disks {
        qemu.arg("-drive").arg(format!(
            "file={},if=virtio,format=raw,readonly=on",
            disk.display()
        ));
    }
    let out = {
        let _one_at_a_time = super::secureboot::QEMU
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        run_ok(qemu.stdin(std::process::Stdio::null()))
    };
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        console.contains("GUEST: done"),
        "the guest did not finish its script; console:\n{console}"
    );
    console
}
