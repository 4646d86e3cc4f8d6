//! The Debian kernel the tests already use, booted directly under QEMU with a busybox
//! initramfs (Debian's static busybox) that loads chosen modules, runs a test's shell script as init and powers off: for
//! checks only the real kernel can make (mounting an EROFS image we wrote, say).
//!
//! Disks are given to the guest as read-only virtio drives (`/dev/vda`, `/dev/vdb`, ...). The
//! console output is returned; a script marks what the test should read with its own lines.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::realistic::realistic_image;
use super::{require_tool, run_ok};

/// Modules every guest loads, in dependency order (`depends=` in each module's .modinfo):
/// virtio block devices over PCI.
const BASE_MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
];

/// Boots the kernel with `modules` (paths below `kernel/` in the kernel package, loaded after
/// the virtio ones, in order), `files` copied into the initramfs (source, path inside), and
/// `script` as the body of /init. Returns the console output.
pub fn run_script(
    work: &Path,
    modules: &[&str],
    files: &[(PathBuf, &str)],
    disks: &[PathBuf],
    script: &str,
) -> String {
    for tool in ["qemu-system-x86_64", "cpio", "dpkg-deb", "tar"] {
        require_tool(tool);
    }
    let realistic = realistic_image();
    let kver = &realistic.kver;
    let debs = realistic
        .vmlinuz
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("debs");
    let find_deb = |prefix: &str| -> PathBuf {
        let find = || {
            std::fs::read_dir(&debs)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        };
        if let Some(found) = find() {
            return found;
        }
        let package = prefix.trim_end_matches('_');
        run_ok(
            Command::new("apt-get")
                .args(["download", package])
                .current_dir(&debs),
        );
        find().unwrap_or_else(|| panic!("apt-get download {package} gave no .deb"))
    };
    let root = work.join("initramfs-root");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "proc", "sys", "dev", "mnt", "m"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let unpack = work.join("unpack");
    std::fs::create_dir_all(&unpack).unwrap();
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(find_deb("busybox-static_"))
            .arg(&unpack),
    );
    let all: Vec<&str> = BASE_MODULES.iter().chain(modules).copied().collect();
    let wanted: Vec<String> = all
        .iter()
        .map(|m| format!("./lib/modules/{kver}/kernel/{m}"))
        .collect();
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("dpkg-deb --fsys-tarfile \"$DEB\" | tar -x -C \"$OUT\" \"$@\"")
            .arg("sh")
            .args(&wanted)
            .env("DEB", find_deb(&format!("linux-image-{kver}_")))
            .env("OUT", &unpack),
    );
    std::fs::copy(unpack.join("bin/busybox"), root.join("bin/busybox")).unwrap();
    let mut init = String::from(
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc\n\
         mount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n",
    );
    for (i, (module, path)) in all.iter().zip(&wanted).enumerate() {
        let name = format!("{i:02}.ko");
        std::fs::copy(unpack.join(path), root.join("m").join(&name)).unwrap();
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
    let initrd = work.join("initramfs.cpio");
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > \"$OUT\"")
            .env("OUT", &initrd)
            .current_dir(&root),
    );
    // TCG as in common::secureboot: CI machines need not offer KVM. `timeout` ends a hung
    // guest; panic=-1 and -no-reboot end a crashed one.
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
    .arg(&realistic.vmlinuz)
    .arg("-initrd")
    .arg(&initrd)
    .args(["-append", "console=ttyS0 panic=-1 loglevel=4"]);
    for disk in disks {
        qemu.arg("-drive").arg(format!(
            "file={},if=virtio,format=raw,readonly=on",
            disk.display()
        ));
    }
    let out = run_ok(qemu.stdin(std::process::Stdio::null()));
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        console.contains("GUEST: done"),
        "the guest did not finish its script; console:\n{console}"
    );
    console
}
