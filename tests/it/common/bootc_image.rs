//! A small bootc-like image for the seal tests: a real Debian kernel and a cpio initramfs in
//! `/usr/lib/modules/<kver>/`, Debian's systemd stub and systemd-boot, os-release, a kargs.d
//! file, spread over several layers with mixed compression.

use super::image_builder::{BuiltImage, Compression, E, OciImage, TarLayer};
use super::{STUB, SYSTEMD_BOOT, initramfs, kernel, kernel_release, require_file};
use std::path::Path;

/// What the image was built from (for assertions).
pub struct BootcImage {
    pub image: BuiltImage,
    pub kver: String,
    pub kernel: Vec<u8>,
    pub initrd: Vec<u8>,
}

/// The layers; `extra` adds entries in a last layer.
pub fn layers(dir: &Path, extra: Vec<E>) -> (OciImage, String, Vec<u8>, Vec<u8>) {
    let k = kernel();
    let kver = kernel_release(&k);
    let kernel_bytes = std::fs::read(&k).unwrap();
    let initrd = std::fs::read(initramfs(dir, None)).unwrap();
    let stub = std::fs::read(require_file(STUB, "systemd-boot-efi")).unwrap();
    let sdboot = std::fs::read(require_file(SYSTEMD_BOOT, "systemd-boot-efi")).unwrap();
    let m = format!("usr/lib/modules/{kver}");
    let base = TarLayer::with([
        E::dir("usr").mtime(1_700_000_100),
        E::dir("usr/bin"),
        E::dir("usr/lib"),
        E::dir("usr/lib/modules"),
        E::dir("usr/lib/bootc"),
        E::dir("usr/lib/bootc/kargs.d"),
        E::dir("usr/lib/systemd"),
        E::dir("usr/lib/systemd/boot"),
        E::dir("usr/lib/systemd/boot/efi"),
        E::dir("etc"),
        E::dir("boot").mode(0o755),
        E::dir("sysroot"),
        E::dir("run"),
        E::dir("var"),
        E::dir("tmp").mode(0o1777),
        E::file(
            "usr/lib/os-release",
            "NAME=\"bootseal test\"\nID=bootseal-test\nPRETTY_NAME=\"bootseal test OS\"\n",
        ),
        E::symlink("etc/os-release", "../usr/lib/os-release"),
        E::file("usr/bin/hello", vec![b'x'; 5000]).mode(0o755),
    ]);
    let kernel_layer = TarLayer::with([
        E::dir(&m),
        E::file(&format!("{m}/vmlinuz"), kernel_bytes.clone()).mode(0o755),
        E::file(&format!("{m}/initramfs.img"), initrd.clone()),
    ]);
    let boot_layer = TarLayer::with([
        E::file("usr/lib/systemd/boot/efi/linuxx64.efi.stub", stub),
        E::file("usr/lib/systemd/boot/efi/systemd-bootx64.efi", sdboot),
        E::file(
            "usr/lib/bootc/kargs.d/10-console.toml",
            "kargs = [\"console=ttyS0\", \"panic=-1\"]\nmatch-architectures = [\"x86_64\"]\n",
        ),
        E::file(
            "usr/lib/bootc/kargs.d/20-arm.toml",
            "kargs = [\"arm-only\"]\nmatch-architectures = [\"aarch64\"]\n",
        ),
    ]);
    let mut img = OciImage::new()
        .layer(base, Compression::Gzip)
        .layer(kernel_layer, Compression::Zstd)
        .layer(boot_layer, Compression::None);
    if !extra.is_empty() {
        img = img.layer(TarLayer::with(extra), Compression::Gzip);
    }
    (img, kver, kernel_bytes, initrd)
}

/// Writes the image as `oci:<dir>/layout:<tag>`.
pub fn build(dir: &Path, tag: &str) -> BootcImage {
    let (img, kver, kernel, initrd) = layers(dir, Vec::new());
    let image = img.write(&dir.join("layout"), tag);
    BootcImage {
        image,
        kver,
        kernel,
        initrd,
    }
}
