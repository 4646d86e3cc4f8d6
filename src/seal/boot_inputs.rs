//! What sealing needs from the image itself: the one kernel and its initramfs, os-release, the
//! systemd stub and systemd-boot for the image's architecture, the kargs.d files, and `/boot`'s
//! own metadata; read from the applied tree before the digest (bootc's layout:
//! `/usr/lib/modules/<kver>/{vmlinuz,initramfs.img}`, `/usr/lib/systemd/boot/efi/`).

use crate::bootc_paths::{
    self, GLOBAL_ADDONS, INITRDS, KARGS_FILES, KERNELS, OS_RELEASE, SYSTEMD_EFI, UKI_DIR,
};
use crate::tree::{CaptureSet, CapturedFiles};
use std::ffi::OsStr;

/// The files to stash while the base layers stream.
pub fn capture_set() -> CaptureSet {
    CaptureSet::new()
        .with(KERNELS)
        .with(INITRDS)
        .with(OS_RELEASE[0])
        .with(OS_RELEASE[1])
        .with(&format!("{SYSTEMD_EFI}/*.efi.stub"))
        .with(&format!("{SYSTEMD_EFI}/systemd-boot*.efi"))
        .with(KARGS_FILES)
        .with(GLOBAL_ADDONS)
}

/// The EFI file-name suffix of an OCI architecture (`x64`, `aa64`).
pub fn efi_arch(oci_arch: &str) -> Result<&'static str, String> {
    match oci_arch {
        "amd64" => Ok("x64"),
        "arm64" => Ok("aa64"),
        other => Err(format!(
            "architecture {other} has no UEFI systemd stub (amd64 and arm64 are supported)"
        )),
    }
}

/// Where the image's systemd stub for `oci_arch` is.
pub fn stub_path(oci_arch: &str) -> String {
    bootc_paths::stub(efi_arch(oci_arch).unwrap_or("?"))
}

/// Where the image's add-on stub for `oci_arch` is (systemd-boot-efi >= 254).
pub fn addon_stub_path(oci_arch: &str) -> String {
    format!(
        "{SYSTEMD_EFI}/addon{}.efi.stub",
        efi_arch(oci_arch).unwrap_or("?")
    )
}

/// Mode, uid and gid of a directory in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirMeta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// The inputs found in one image.
pub struct BootInputs {
    pub kver: String,
    pub kernel: Vec<u8>,
    pub initrd: Vec<u8>,
    pub os_release: Vec<u8>,
    /// The stub (None when the image has none; the caller may supply one).
    pub stub: Option<Vec<u8>>,
    /// systemd's add-on stub (`addon<arch>.efi.stub`, systemd >= 254), if the image has one.
    pub addon_stub: Option<Vec<u8>>,
    /// Global add-ons already in the image: (path, bytes), in file-name order.
    pub global_addons: Vec<(String, Vec<u8>)>,
    /// `systemd-boot<arch>.efi`, unsigned, and its path in the image.
    pub systemd_boot: Option<(String, Vec<u8>)>,
    /// kargs.d files: (file name, contents).
    pub kargs_d: Vec<(String, Vec<u8>)>,
    pub boot_dir: DirMeta,
    /// Sub-second part of `/usr`'s mtime.
    pub usr_mtime_nsec: u32,
}

/// Reads the sealing inputs from `captured` (and `/boot`'s metadata from `fs`), or says why
/// this is not a bootc image.
pub fn find(
    captured: &CapturedFiles,
    fs: &composefs::tree::FileSystem<crate::tree::ObjectId>,
    oci_arch: &str,
) -> Result<BootInputs, String> {
    // A sealed image has its kernel whited out and a UKI in /boot/EFI/Linux: say so plainly.
    if let Ok(Some(linux)) = fs
        .root
        .get_directory_opt(OsStr::new(bootc_paths::in_layer(UKI_DIR)))
        && let Some((name, _)) = linux.entries().next()
    {
        return Err(format!(
            "image is already sealed: {UKI_DIR}/{} exists (seal the unsealed base instead)",
            name.to_string_lossy()
        ));
    }
    let kernels = captured.matching(KERNELS);
    let kver = match kernels.as_slice() {
        [] => {
            return Err(format!(
                "not a bootc image: no kernel at {}",
                bootc_paths::kernel("<kver>")
            ));
        }
        [one] => one
            .trim_start_matches(bootc_paths::MODULES)
            .trim_start_matches('/')
            .trim_end_matches("/vmlinuz")
            .to_owned(),
        many => {
            return Err(format!(
                "image has {} kernels ({}); a sealed image boots exactly one",
                many.len(),
                many.join(", ")
            ));
        }
    };
    let module_dir = bootc_paths::module_dir(&kver);
    let kernel = captured.read(&bootc_paths::kernel(&kver))?;
    let initrd = captured
        .read(&format!("{module_dir}/initramfs.img"))
        .map_err(|_| format!("not a bootc image: no initramfs at {module_dir}/initramfs.img"))?;
    let os_release = captured
        .read(OS_RELEASE[0])
        .or_else(|_| captured.read(OS_RELEASE[1]))
        .map_err(|_| {
            format!(
                "not a bootc image: no {} (nor {})",
                OS_RELEASE[0], OS_RELEASE[1]
            )
        })?;
    let arch = efi_arch(oci_arch)?;
    let stub = captured.read(&bootc_paths::stub(arch)).ok();
    let addon_stub = captured
        .read(&format!("{SYSTEMD_EFI}/addon{arch}.efi.stub"))
        .ok();
    let mut global_addons = Vec::new();
    for path in captured.matching(GLOBAL_ADDONS) {
        global_addons.push((path.to_owned(), captured.read(path)?));
    }
    global_addons.sort();
    let sd_path = format!("{SYSTEMD_EFI}/systemd-boot{arch}.efi");
    let systemd_boot = captured.read(&sd_path).ok().map(|b| (sd_path, b));
    let mut kargs_d = Vec::new();
    for path in captured.matching(KARGS_FILES) {
        let name = path.rsplit('/').next().unwrap_or(path).to_owned();
        kargs_d.push((name, captured.read(path)?));
    }
    let boot = fs
        .root
        .get_directory_opt(OsStr::new("boot"))
        .ok()
        .flatten()
        .ok_or("not a bootc image: no /boot directory")?;
    let boot_dir = DirMeta {
        mode: boot.stat.st_mode & 0o7777,
        uid: boot.stat.st_uid.into(),
        gid: boot.stat.st_gid.into(),
    };
    let usr_mtime_nsec = fs
        .root
        .get_directory_opt(OsStr::new("usr"))
        .ok()
        .flatten()
        .map_or(0, |usr| usr.stat.st_mtim_nsec);
    Ok(BootInputs {
        kver,
        kernel,
        initrd,
        os_release,
        stub,
        addon_stub,
        global_addons,
        systemd_boot,
        kargs_d,
        boot_dir,
        usr_mtime_nsec,
    })
}
