//! Hostile PE inputs: real Debian files (systemd 252 stub, systemd-boot, the kernel) with one
//! header field mutated, given to `build-uki`, `sign`, `verify-pe`, `inspect` and `seal --uki`
//! under a 4 GiB address-space limit: exit status 1 or 2 (never a signal, abort or panic), a
//! message naming the file (also a stub inside the image being sealed) and the field, and no
//! hang. The unmutated real inputs (systemd 252 and 257 stubs, systemd-boot, x86 and arm64
//! kernels) are all accepted.

use crate::common;

use common::*;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Address-space limit for every bootseal run: a header value that drives a huge
/// allocation makes the allocation fail (abort), which the exit-status check catches.
const AS_LIMIT: u64 = 4 << 30;
/// A guard against a hang, not a timing assertion.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Run `cmd` under RLIMIT_AS = 4 GiB; fail the test if it runs longer than TIMEOUT.
fn run_limited(mut cmd: Command) -> Output {
    // SAFETY: only async-signal-safe setrlimit runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: AS_LIMIT,
                rlim_max: AS_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).ok();
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// `cmd` must fail cleanly, naming `file` and `field`.
fn refused(cmd: Command, file: &Path, field: &str) {
    let shown = format!("{cmd:?}");
    let out = run_limited(cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "{shown}: expected exit status 1 or 2, got {:?} (signal {:?}): {err}",
        out.status.code(),
        out.status.signal()
    );
    assert!(!err.contains("panicked"), "{shown}: {err}");
    assert!(
        err.contains(&file.display().to_string()),
        "{shown}: message does not name {}: {err}",
        file.display()
    );
    assert!(
        err.contains(field),
        "{shown}: message does not name {field:?}: {err}"
    );
}

/// `cmd` must succeed under the same limits.
fn accepted(cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = run_limited(cmd);
    assert!(
        out.status.success(),
        "{shown}: {:?} (signal {:?}): {}",
        out.status.code(),
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// File offsets of the header fields the mutations touch (PE format; PE32+ only).
struct Offsets {
    lfanew: usize,
    coff: usize,
    opt: usize,
    table: usize,
}

impl Offsets {
    fn of(b: &[u8]) -> Self {
        let pe = u32::from_le_bytes(b[0x3c..0x40].try_into().unwrap()) as usize;
        let coff = pe + 4;
        let opt = coff + 20;
        assert_eq!(u16::from_le_bytes([b[opt], b[opt + 1]]), 0x20b, "PE32+");
        let size_of_opt = u16::from_le_bytes([b[coff + 16], b[coff + 17]]) as usize;
        Offsets {
            lfanew: 0x3c,
            coff,
            opt,
            table: opt + size_of_opt,
        }
    }

    /// Offset of the header of the section called `name`.
    fn section(&self, b: &[u8], name: &str) -> usize {
        let n = u16::from_le_bytes([b[self.coff + 2], b[self.coff + 3]]) as usize;
        (0..n)
            .map(|i| self.table + 40 * i)
            .find(|&h| b[h..h + 8].split(|&c| c == 0).next() == Some(name.as_bytes()))
            .unwrap_or_else(|| panic!("no section {name}"))
    }
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

type Mutation = (&'static str, &'static str, fn(&mut Vec<u8>, &Offsets));

/// Mutations of any PE32+ image: (file name, field the refusal must name, change).
/// Section `.text` exists in every input used here.
fn header_mutations() -> Vec<Mutation> {
    vec![
        // The case: 1 GiB alignment once asked for ~6 GB.
        ("file-alignment-1g", "FileAlignment", |b, o| {
            put32(b, o.opt + 32, 0x4000_0000);
            put32(b, o.opt + 36, 0x4000_0000);
        }),
        ("section-alignment-odd", "SectionAlignment", |b, o| {
            put32(b, o.opt + 32, 0x1800)
        }),
        ("sections-65535", "NumberOfSections", |b, o| {
            put16(b, o.coff + 2, 0xffff)
        }),
        ("sections-0", "NumberOfSections", |b, o| {
            put16(b, o.coff + 2, 0)
        }),
        ("headers-tiny", "SizeOfHeaders", |b, o| {
            put32(b, o.opt + 60, 0x100)
        }),
        ("headers-huge", "SizeOfHeaders", |b, o| {
            put32(b, o.opt + 60, 0xffff_f000)
        }),
        ("image-size-small", "SizeOfImage", |b, o| {
            put32(b, o.opt + 56, 0x2000)
        }),
        ("rva-count", "NumberOfRvaAndSizes", |b, o| {
            put32(b, o.opt + 108, 0xffff_ffff)
        }),
        ("optional-header-short", "SizeOfOptionalHeader", |b, o| {
            put16(b, o.coff + 16, 0x10)
        }),
        ("cert-table-past-eof", "certificate table", |b, o| {
            put32(b, o.opt + 112 + 8 * 4, 0x1000);
            put32(b, o.opt + 112 + 8 * 4 + 4, 0xffff_0000);
        }),
        ("lfanew", "e_lfanew", |b, o| put32(b, o.lfanew, 0xffff_fff0)),
        ("text-raw-wraps", "(.text) raw data", |b, o| {
            let h = o.section(b, ".text");
            put32(b, h + 16, 0xffff_ff00);
        }),
        ("text-past-eof", "(.text) raw data", |b, o| {
            let h = o.section(b, ".text");
            put32(b, h + 20, 0x7fff_0000);
        }),
        (
            "text-va-wraps",
            "(.text) VirtualAddress + VirtualSize",
            |b, o| {
                let h = o.section(b, ".text");
                put32(b, h + 12, 0xffff_fff0);
            },
        ),
    ]
}

/// Mutations specific to the systemd stubs (they have `.sbat` and `.sdmagic`).
fn stub_mutations() -> Vec<Mutation> {
    let mut m = header_mutations();
    m.push(("sbat-past-eof", "(.sbat) raw data", |b, o| {
        let h = o.section(b, ".sbat");
        put32(b, h + 20, 0x7fff_0000);
    }));
    // Valid for a loader, but raw data out of order cannot be re-laid out by UKI assembly.
    m.push((
        "reloc-overlaps-text",
        "(.reloc) PointerToRawData",
        |b, o| {
            let text = o.section(b, ".text");
            let ptr = u32::from_le_bytes(b[text + 20..text + 24].try_into().unwrap());
            let h = o.section(b, ".reloc");
            put32(b, h + 20, ptr);
        },
    ));
    m.push((
        "sdmagic-wraps",
        "(.sdmagic) VirtualAddress + VirtualSize",
        |b, o| {
            let h = o.section(b, ".sdmagic");
            put32(b, h + 8, 0xffff_fff0);
        },
    ));
    m
}

/// Write `src` with `change` applied to `dir/name`.
fn mutate(dir: &Path, src: &Path, name: &str, change: fn(&mut Vec<u8>, &Offsets)) -> PathBuf {
    let mut b = std::fs::read(src).unwrap();
    let o = Offsets::of(&b);
    change(&mut b, &o);
    let out = dir.join(name);
    std::fs::write(&out, b).unwrap();
    out
}

struct UkiInputs {
    dir: tempfile::TempDir,
    osrel: PathBuf,
}

fn uki_inputs() -> UkiInputs {
    let dir = scratch();
    let osrel = dir.path().join("os-release");
    std::fs::write(&osrel, "ID=test\n").unwrap();
    UkiInputs { dir, osrel }
}

fn build_uki(i: &UkiInputs, stub: &Path, linux: &Path) -> Command {
    build_uki_to(i, stub, linux, &i.dir.path().join("out.efi"))
}

fn build_uki_to(i: &UkiInputs, stub: &Path, linux: &Path, out: &Path) -> Command {
    let mut c = bootseal();
    c.arg("build-uki")
        .arg("--linux")
        .arg(linux)
        .arg("--os-release")
        .arg(&i.osrel)
        .arg("--stub")
        .arg(stub)
        .args(["--cmdline", "composefs=abc rw", "-o"])
        .arg(out);
    c
}

#[test]
fn build_uki_refuses_mutated_stubs() {
    let i = uki_inputs();
    let k = kernel();
    for (name, field, change) in stub_mutations() {
        let stub = mutate(i.dir.path(), Path::new(STUB), name, change);
        refused(build_uki(&i, &stub, &k), &stub, field);
    }
    assert!(!i.dir.path().join("out.efi").exists());
}

#[test]
fn build_uki_refuses_mutated_kernels() {
    let i = uki_inputs();
    let k = kernel();
    let mutations = header_mutations();
    // The kernel is 8 MB: a few representative fields, one file at a time.
    for (name, field, change) in mutations.into_iter().filter(|(n, ..)| {
        [
            "file-alignment-1g",
            "sections-65535",
            "text-past-eof",
            "text-va-wraps",
            "cert-table-past-eof",
        ]
        .contains(n)
    }) {
        let bad = mutate(i.dir.path(), &k, name, change);
        refused(build_uki(&i, Path::new(STUB), &bad), &bad, field);
        std::fs::remove_file(&bad).unwrap();
    }
}

#[test]
fn sign_verify_inspect_refuse_mutated_systemd_boot() {
    let d = scratch();
    let kp = keypair(d.path(), "k", 2048);
    let out = d.path().join("signed.efi");
    for (name, field, change) in header_mutations() {
        let bad = mutate(d.path(), Path::new(SYSTEMD_BOOT), name, change);
        refused(sign_cmd(&kp.key, &kp.cert, &bad, &out), &bad, field);
        let mut digest = bootseal();
        digest.arg("sign").arg("--detached-digest").arg(&bad);
        refused(digest, &bad, field);
        let mut verify = bootseal();
        verify
            .arg("verify-pe")
            .arg(&bad)
            .arg("--cert")
            .arg(&kp.cert);
        refused(verify, &bad, field);
        let mut inspect = bootseal();
        inspect.arg("inspect").arg(&bad);
        refused(inspect, &bad, field);
    }
    assert!(!out.exists());
}

#[test]
fn seal_refuses_mutated_uki_and_stub() {
    let d = scratch();
    let t = d.path();
    let built = bootc_image::build(t, "base");
    let i = uki_inputs();
    let uki = i.dir.path().join("uki.efi");
    accepted(build_uki_to(&i, Path::new(STUB), &kernel(), &uki));
    let keys = keypair(t, "k", 2048);
    let seal = |extra: &[&std::ffi::OsStr]| {
        let mut c = bootseal();
        c.args(["seal", "--no-sign-bootloader", "--from"])
            .arg(built.image.oci_ref())
            .arg("--to")
            .arg(format!("oci:{}:sealed", t.join("out").display()))
            .args(extra);
        c
    };
    for (name, field, change) in header_mutations() {
        let bad = mutate(t, &uki, name, change);
        refused(seal(&["--uki".as_ref(), bad.as_os_str()]), &bad, field);
        let bad_stub = mutate(t, Path::new(STUB), &format!("stub-{name}"), change);
        refused(
            seal(&[
                "--stub".as_ref(),
                bad_stub.as_os_str(),
                "--key".as_ref(),
                keys.key.as_os_str(),
                "--cert".as_ref(),
                keys.cert.as_os_str(),
            ]),
            &bad_stub,
            field,
        );
    }
    assert!(!t.join("out").exists(), "nothing written");
}

#[test]
fn seal_refuses_an_image_carrying_a_mutated_stub() {
    let d = scratch();
    let t = d.path();
    let keys = keypair(t, "k", 2048);
    let stub_path = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
    for (name, field, change) in stub_mutations()
        .into_iter()
        .filter(|(n, ..)| ["file-alignment-1g", "sbat-past-eof", "sdmagic-wraps"].contains(n))
    {
        let bad = std::fs::read(mutate(t, Path::new(STUB), name, change)).unwrap();
        let dir = t.join(format!("image-{name}"));
        let (img, ..) = bootc_image::layers(
            &dir,
            vec![common::image_builder::E::file(&stub_path[1..], bad)],
        );
        let built = img.write(&dir.join("layout"), "base");
        let mut seal = bootseal();
        seal.args(["seal", "--from"])
            .arg(built.oci_ref())
            .arg("--to")
            .arg(format!("oci:{}:sealed", dir.join("out").display()))
            .arg("--key")
            .arg(&keys.key)
            .arg("--cert")
            .arg(&keys.cert);
        refused(seal, Path::new(stub_path), field);
    }
}

/// Values real files have, which a stricter reading of the PE spec would refuse.
#[test]
fn real_inputs_and_their_quirks_are_accepted() {
    let d = scratch();
    let u = ukify();
    let (arm_stub, arm_kernel) = arm64_inputs();
    let k = kernel();
    for f in [
        PathBuf::from(STUB),
        PathBuf::from(SYSTEMD_BOOT),
        k.clone(),
        u.stub.clone(),
        arm_stub,
        arm_kernel,
    ] {
        let mut c = bootseal();
        c.arg("inspect").arg(&f);
        accepted(c);
    }
    // x86 bzImages before Linux 6.7 had SectionAlignment = FileAlignment = 0x20 (the PE
    // spec's case of a SectionAlignment below the page size); 0x20 with 4 KiB sections is not.
    let old = mutate(d.path(), &k, "vmlinuz-align-0x20", |b, o| {
        put32(b, o.opt + 32, 0x20);
        put32(b, o.opt + 36, 0x20);
    });
    let mut c = bootseal();
    c.arg("inspect").arg(&old);
    accepted(c);
    let bad = mutate(d.path(), &k, "vmlinuz-fa-0x20", |b, o| {
        put32(b, o.opt + 36, 0x20)
    });
    let mut c = bootseal();
    c.arg("inspect").arg(&bad);
    refused(c, &bad, "FileAlignment");
    // A symbol table pointer and count far outside the file: not stripped, not refused.
    let i = uki_inputs();
    let odd = mutate(d.path(), Path::new(STUB), "stub-symtab", |b, o| {
        put32(b, o.coff + 8, 0xffff_ff00);
        put32(b, o.coff + 12, 0xffff_ffff);
    });
    accepted(build_uki(&i, &odd, &k));
}
