//! UEFI Secure Boot under OVMF + QEMU (TCG) for tests: Debian `ovmf`'s Secure Boot build with
//! the snakeoil variable store (PK, KEK and db = the snakeoil test certificate, Secure Boot
//! enabled); images are signed with the matching test key (encrypted PKCS#8, passphrase
//! "snakeoil"). A boot is judged from the first serial port: the kernel's "Command line:" line,
//! or the firmware's "Access Denied"/"Security Violation".

use super::{require_file, require_tool, run_ok, scratch, sign_cmd};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
pub const OVMF_VARS_SNAKEOIL: &str = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd";
pub const DB_KEY: &str = "/usr/share/ovmf/PkKek-1-snakeoil.key";
pub const DB_CERT: &str = "/usr/share/ovmf/PkKek-1-snakeoil.pem";
/// A guard against a hung guest, not a timing assertion.
const GIVE_UP: Duration = Duration::from_secs(240);

/// QEMU runs one at a time: the machine has two cores.
pub static QEMU: Mutex<()> = Mutex::new(());

// The payloads are read through Debug in failure messages.
#[allow(dead_code)]
#[derive(Debug)]
pub enum Verdict {
    /// The kernel printed its command line (the line).
    Booted(String),
    /// The firmware refused the image (the line).
    Rejected(String),
    /// Neither happened (serial log tail).
    Nothing(String),
}

pub fn require_qemu_parts() {
    for t in ["qemu-system-x86_64", "mkfs.vfat", "mmd", "mcopy"] {
        require_tool(t);
    }
    require_file(OVMF_CODE, "ovmf");
    require_file(OVMF_VARS_SNAKEOIL, "ovmf");
}

/// A FAT ESP image with `efi` as the removable-media boot loader EFI/BOOT/BOOTX64.EFI.
pub fn make_esp(dir: &Path, efi: &Path) -> PathBuf {
    let esp = dir.join("esp.img");
    let kib = std::fs::metadata(efi).unwrap().len() / 1024 * 5 / 4 + 8192;
    run_ok(
        Command::new("mkfs.vfat")
            .arg("-C")
            .arg("-n")
            .arg("ESP")
            .arg(&esp)
            .arg(kib.to_string()),
    );
    run_ok(
        Command::new("mmd")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&esp)
            .args(["::/EFI", "::/EFI/BOOT"]),
    );
    run_ok(
        Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&esp)
            .arg(efi)
            .arg("::/EFI/BOOT/BOOTX64.EFI"),
    );
    esp
}

/// Boot `efi` under OVMF with Secure Boot on and watch the first serial port.
pub fn boot(efi: &Path) -> Verdict {
    boot_with_log(efi).0
}

/// [`boot`], also returning the serial log up to the verdict (firmware, stub and kernel
/// messages, `\r` removed).
pub fn boot_with_log(efi: &Path) -> (Verdict, String) {
    require_qemu_parts();
    let _one_at_a_time = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    let d = scratch();
    let vars = d.path().join("vars.fd");
    std::fs::copy(OVMF_VARS_SNAKEOIL, &vars).unwrap();
    let esp = make_esp(d.path(), efi);
    watch_boot(&vars, &esp, true, false, efi)
}

/// Runs QEMU on `esp` with `vars` until the kernel prints its command line (and, with
/// `want_secureboot_line`, its Secure Boot state), the firmware refuses the image, QEMU exits
/// or [`GIVE_UP`] passes. The caller holds the QEMU lock.
fn watch_boot(
    vars: &Path,
    esp: &Path,
    no_reboot: bool,
    want_secureboot_line: bool,
    what: &Path,
) -> (Verdict, String) {
    let d = scratch();
    let serial = d.path().join("serial.log");
    std::fs::write(&serial, b"").unwrap();
    let mut qemu = qemu_command(vars, esp, &serial, no_reboot)
        .spawn()
        .expect("start qemu-system-x86_64");
    let start = Instant::now();
    let mut log;
    let verdict = loop {
        log =
            String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).replace('\r', "");
        if let Some(l) = log.lines().find(|l| l.contains("Command line: "))
            && (!want_secureboot_line || log.contains("secureboot: Secure boot"))
        {
            break Verdict::Booted(l.to_string());
        }
        if let Some(l) = log
            .lines()
            .find(|l| l.contains("Access Denied") || l.contains("Security Violation"))
        {
            break Verdict::Rejected(l.to_string());
        }
        let exited = qemu.try_wait().unwrap().is_some();
        if exited || start.elapsed() > GIVE_UP {
            let mut err = String::new();
            if exited {
                qemu.stderr.take().unwrap().read_to_string(&mut err).ok();
            }
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            break Verdict::Nothing(format!(
                "qemu exited={exited} stderr={err}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = qemu.kill();
    let _ = qemu.wait();
    eprintln!(
        "boot {}: {verdict:?} after {:?}",
        what.display(),
        start.elapsed()
    );
    (verdict, log)
}

/// QEMU q35 with SMM, the Secure Boot OVMF build, `vars` as the variable store and `esp` as
/// the boot disk, the first serial port to `serial`; `no_reboot` turns a reset into an exit.
fn qemu_command(vars: &Path, esp: &Path, serial: &Path, no_reboot: bool) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-machine",
        "q35,smm=on",
        "-accel",
        "tcg",
        "-smp",
        "2",
        "-m",
        "1024",
    ])
    .args(["-global", "driver=cfi.pflash01,property=secure,value=on"])
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=0,file={OVMF_CODE},readonly=on"
    ))
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=1,file={}",
        vars.display()
    ))
    .arg("-drive")
    .arg(format!("if=none,id=esp,format=raw,file={}", esp.display()))
    .args(["-device", "virtio-blk-pci,drive=esp,bootindex=1"])
    .args(["-nic", "none", "-display", "none", "-monitor", "none"])
    .arg("-serial")
    .arg(format!("file:{}", serial.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if no_reboot {
        c.arg("-no-reboot");
    }
    c
}

/// A FAT ESP image holding `files` (source, path on the ESP like `loader/keys/auto/db.auth`).
pub fn make_esp_tree(dir: &Path, files: &[(PathBuf, String)]) -> PathBuf {
    let esp = dir.join("esp.img");
    let bytes: u64 = files
        .iter()
        .map(|(src, _)| std::fs::metadata(src).unwrap().len())
        .sum();
    let _ = std::fs::remove_file(&esp);
    run_ok(
        Command::new("mkfs.vfat")
            .arg("-C")
            .arg("-n")
            .arg("ESP")
            .arg(&esp)
            .arg((bytes / 1024 * 5 / 4 + 8192).to_string()),
    );
    let mut made = std::collections::BTreeSet::new();
    for (src, dest) in files {
        let mut path = String::new();
        let parts: Vec<&str> = dest.split('/').collect();
        for p in &parts[..parts.len() - 1] {
            path = format!("{path}/{p}");
            if made.insert(path.clone()) {
                run_ok(
                    Command::new("mmd")
                        .env("MTOOLS_SKIP_CHECK", "1")
                        .arg("-i")
                        .arg(&esp)
                        .arg(format!("::{path}")),
                );
            }
        }
        run_ok(
            Command::new("mcopy")
                .env("MTOOLS_SKIP_CHECK", "1")
                .arg("-i")
                .arg(&esp)
                .arg(src)
                .arg(format!("::/{dest}")),
        );
    }
    esp
}

/// Boot the ESP `esp` with the variable store `vars` (changed in place: enrollment persists),
/// resets allowed (systemd-boot resets after enrolling). Booted once the kernel printed its
/// command line and its Secure Boot state ("secureboot: Secure boot ..."); Rejected on the
/// firmware's refusal. Returns the verdict and the whole serial log.
pub fn boot_esp(vars: &Path, esp: &Path) -> (Verdict, String) {
    require_qemu_parts();
    let _one_at_a_time = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    watch_boot(vars, esp, false, true, esp)
}

pub fn sign_snakeoil(input: &Path, out: &Path) {
    require_file(DB_KEY, "ovmf");
    run_ok(
        sign_cmd(DB_KEY, DB_CERT, input, out)
            .env("BOOTSEAL_SNAKEOIL_PASS", "snakeoil")
            .args(["--key-pass-env", "BOOTSEAL_SNAKEOIL_PASS"]),
    );
}
