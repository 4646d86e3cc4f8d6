//! Where a bootc image keeps what sealing reads and writes: one home for bootc's and
//! systemd-boot's paths, so seal, verify and the layer writer cannot disagree about them.
//!
//! bootc's layout (bootc `crates/lib/src/bootc_composefs/boot.rs`, `kargs.rs`, `install.rs`
//! at 1.16.x): the kernel and initramfs in `/usr/lib/modules/<kver>/`, kernel arguments in
//! `/usr/lib/bootc/kargs.d/*.toml`, Secure Boot enrollment payloads in
//! `/usr/lib/bootc/install/secureboot-keys/<name>/`, UKIs in `/boot/EFI/Linux/` (composefs-boot
//! 0.9.0 `bootloader.rs`); systemd's EFI binaries in `/usr/lib/systemd/boot/efi/`.
//! Paths here are absolute image paths; [`in_layer`] gives the tar-entry form.

/// Kernel modules directory: `<MODULES>/<kver>/vmlinuz` and `initramfs.img`.
pub const MODULES: &str = "/usr/lib/modules";
/// Every kernel of the image.
pub const KERNELS: &str = "/usr/lib/modules/*/vmlinuz";
/// Every initramfs of the image.
pub const INITRDS: &str = "/usr/lib/modules/*/initramfs.img";
/// bootc's kernel-argument files.
pub const KARGS_D: &str = "/usr/lib/bootc/kargs.d";
/// The `.toml` files bootc reads from [`KARGS_D`].
pub const KARGS_FILES: &str = "/usr/lib/bootc/kargs.d/*.toml";
/// Enrollment payloads `bootc install` picks up: `<SECUREBOOT_KEYS>/<name>/{PK,KEK,db}.auth`.
pub const SECUREBOOT_KEYS: &str = "/usr/lib/bootc/install/secureboot-keys";
/// Every enrollment payload.
pub const SECUREBOOT_PAYLOADS: &str = "/usr/lib/bootc/install/secureboot-keys/*/*.auth";
/// systemd's EFI binaries: stubs and systemd-boot.
pub const SYSTEMD_EFI: &str = "/usr/lib/systemd/boot/efi";
/// Signed systemd-boot copies (`systemd-boot<arch>.efi.signed`), as bootc installs them.
pub const SIGNED_BOOTLOADERS: &str = "/usr/lib/systemd/boot/efi/*.efi.signed";
/// Type 2 boot entries (UKIs).
pub const UKI_DIR: &str = "/boot/EFI/Linux";
/// Every UKI of the image.
pub const UKIS: &str = "/boot/EFI/Linux/*.efi";
/// Per-UKI add-ons anywhere under [`UKI_DIR`] (placement is checked, not assumed); the sealed
/// UKI's own are in `<uki>.extra.d/` (composefs-boot 0.9.0 `bootloader.rs`, systemd-stub(7)).
pub const UKI_ADDONS: &str = "/boot/EFI/Linux/*.efi.extra.d/*.addon.efi";
/// Global add-ons, for every UKI (systemd-stub loads them from the ESP's `loader/addons`).
pub const GLOBAL_ADDON_DIR: &str = "/boot/loader/addons/";
/// Every global add-on.
pub const GLOBAL_ADDONS: &str = "/boot/loader/addons/*.addon.efi";
/// os-release, in the order bootc reads it.
pub const OS_RELEASE: [&str; 2] = ["/usr/lib/os-release", "/etc/os-release"];

/// `/usr/lib/modules/<kver>`.
pub fn module_dir(kver: &str) -> String {
    format!("{MODULES}/{kver}")
}

/// `/usr/lib/modules/<kver>/vmlinuz`.
pub fn kernel(kver: &str) -> String {
    format!("{MODULES}/{kver}/vmlinuz")
}

/// `/boot/EFI/Linux/<kver>.efi`: where the sealed UKI goes.
pub fn uki(kver: &str) -> String {
    format!("{UKI_DIR}/{kver}.efi")
}

/// `/usr/lib/systemd/boot/efi/linux<arch>.efi.stub`.
pub fn stub(efi_arch: &str) -> String {
    format!("{SYSTEMD_EFI}/linux{efi_arch}.efi.stub")
}

/// A path as a layer's tar entry names it (no leading `/`).
pub fn in_layer(path: &str) -> &str {
    path.trim_start_matches('/')
}
