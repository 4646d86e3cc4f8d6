//! Structural comparison of `bootseal build-uki` with `ukify build` (systemd 257.3).
//!
//! ukify is not packaged for Debian bookworm, so the reference is what ukify 257.3 (systemd's
//! `src/ukify/ukify.py`, run with pefile 2024.8.26) produced from the same Debian 252.39 stub
//! and 6.1.0-56 kernel (inputs: os-release of 62 bytes, the cmdline below, an initrd of
//! 0xfb0ad bytes). We build with inputs of identical sizes and compare every field of that
//! table, read back with objdump (an independent PE reader) and with a few raw header reads.

use crate::common;

use common::*;
use std::path::Path;
use std::process::Command;

const REF_CMDLINE: &str = "console=ttyS0 panic=-1 composefs=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad rw";
const REF_KERNEL_SIZE: u64 = 0x7dd7c0;
const REF_INITRD_SIZE: usize = 0xfb0ad;

#[derive(Debug, PartialEq, Eq)]
struct Row {
    name: String,
    va: u64,
    vs: u64,
    raw_ptr: u64,
    raw_size: u64,
    chars: u32,
}

fn u16le(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Section rows: names/VS/VA/file offset from `objdump -h`, raw size and characteristics
/// from the section table bytes.
fn rows(file: &Path) -> Vec<Row> {
    let text = stdout_of(Command::new("objdump").arg("-h").arg(file));
    let b = std::fs::read(file).unwrap();
    let pe = u32le(&b, 0x3c) as usize;
    let nsec = u16le(&b, pe + 6) as usize;
    let table = pe + 24 + u16le(&b, pe + 20) as usize;
    let mut out = Vec::new();
    let dumped: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 7 && f[0].parse::<usize>().is_ok())
        .collect();
    assert_eq!(dumped.len(), nsec, "objdump and NumberOfSections disagree");
    for (i, f) in dumped.iter().enumerate() {
        let h = table + 40 * i;
        out.push(Row {
            name: f[1].to_string(),
            vs: u64::from_str_radix(f[2], 16).unwrap(),
            va: u64::from_str_radix(f[3], 16).unwrap(),
            raw_ptr: u64::from_str_radix(f[5], 16).unwrap(),
            raw_size: u64::from(u32le(&b, h + 16)),
            chars: u32le(&b, h + 36),
        });
    }
    out
}

fn objdump_p(file: &Path, key: &str) -> u64 {
    let text = stdout_of(Command::new("objdump").arg("-p").arg(file));
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("{key} not in objdump -p"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

fn align(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

#[test]
fn debian_252_stub_layout_matches_ukify() {
    require_tool("objdump");
    let stub = require_file(STUB, "systemd-boot-efi");
    let d = scratch();
    let k = kernel();
    let ksize = std::fs::metadata(&k).unwrap().len();
    let initrd = initramfs(d.path(), Some(REF_INITRD_SIZE));
    let osrel = d.path().join("os-release");
    let osrel_text = "NAME=\"Bootseal Test\"\nPRETTY_NAME=\"Bootseal Test OS 1.0\"\nID=bt\n";
    assert_eq!(osrel_text.len(), 62);
    std::fs::write(&osrel, osrel_text).unwrap();
    let build = |out: &Path| {
        // The command line is given with extra blanks: ukify normalises whitespace.
        let cmdline = format!("  {}\n", REF_CMDLINE.replace(' ', "   "));
        run_ok(
            build_uki_cmd(&k, &initrd, &osrel, &stub, cmdline, out).arg("--allow-section-overlap"),
        )
    };
    let uki = d.path().join("uki.efi");
    build(&uki);

    // ukify's table (see module doc); rows after .linux shift if Debian ships a different kernel.
    let shift = align(ksize, 0x200) as i64 - align(REF_KERNEL_SIZE, 0x200) as i64;
    let sh = |v: u64| (v as i64 + shift) as u64;
    let mut want: Vec<Row> = rows(&stub).into_iter().take(6).collect();
    let data = 0x4000_0040;
    for (name, va, vs, raw_ptr, raw_size, chars) in [
        (".sbat", 0x19000, 0x134, 0x11000, 0x200, data),
        (".sdmagic", 0x19100, 0x34, 0x11200, 0x200, data),
        (".osrel", 0x19200, 0x3e, 0x11400, 0x200, data),
        (".cmdline", 0x19400, 0x64, 0x11600, 0x200, data),
        (".uname", 0x19600, 0xe, 0x11800, 0x200, data),
        (
            ".linux",
            0x19800,
            ksize,
            0x11a00,
            align(ksize, 0x200),
            0x4000_0020,
        ),
        (
            ".initrd",
            sh(0x7f7000),
            0xfb0ad,
            sh(0x7ef200),
            0xfb200,
            data,
        ),
    ] {
        want.push(Row {
            name: name.into(),
            va,
            vs,
            raw_ptr,
            raw_size,
            chars,
        });
    }
    assert_eq!(rows(&uki), want);
    assert_eq!(objdump_p(&uki, "SizeOfImage"), sh(0x8f2200));
    assert_eq!(
        objdump_p(&uki, "SizeOfInitializedData"),
        0x8dd91d - REF_KERNEL_SIZE + ksize
    );
    assert_eq!(objdump_p(&uki, "SizeOfHeaders"), 0x400);
    assert_eq!(objdump_p(&uki, "CheckSum"), 0);
    // Symbol table stripped (PointerToSymbolTable = NumberOfSymbols = 0), no trailing data.
    let b = std::fs::read(&uki).unwrap();
    let pe = u32le(&b, 0x3c) as usize;
    assert_eq!((u32le(&b, pe + 12), u32le(&b, pe + 16)), (0, 0));
    assert_eq!(b.len() as u64, sh(0x7ef200) + 0xfb200);

    // Contents: each section's VirtualSize bytes.
    let sec = |n: &str| objcopy_section(&uki, n, d.path());
    assert_eq!(sec(".osrel"), osrel_text.as_bytes());
    assert_eq!(sec(".cmdline"), REF_CMDLINE.as_bytes());
    assert_eq!(sec(".uname"), kernel_release(&k).as_bytes());
    assert_eq!(sec(".linux"), std::fs::read(&k).unwrap());
    assert_eq!(sec(".initrd"), std::fs::read(&initrd).unwrap());
    let stub_sbat = objcopy_section(&stub, ".sbat", d.path());
    let stub_sbat = String::from_utf8(stub_sbat).unwrap();
    let stub_lines: Vec<&str> = stub_sbat.trim_end_matches('\0').lines().skip(1).collect();
    let want_sbat = format!(
        "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n{}\nuki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/\n\0",
        stub_lines.join("\n")
    );
    assert_eq!(String::from_utf8(sec(".sbat")).unwrap(), want_sbat);
    // The stub's own sections are untouched.
    for name in [
        ".text", ".reloc", ".data", ".dynamic", ".rela", ".dynsym", ".sdmagic",
    ] {
        assert_eq!(sec(name), objcopy_section(&stub, name, d.path()), "{name}");
    }

    // Deterministic output.
    let again = d.path().join("again.efi");
    build(&again);
    assert_eq!(std::fs::read(&uki).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn cmdline_from_file_is_verbatim_and_inspect_reads_it_back() {
    let d = scratch();
    let f = d.path().join("cmdline");
    std::fs::write(&f, "composefs=abc  rw\n").unwrap();
    let osrel = d.path().join("os-release");
    std::fs::write(&osrel, "NAME='Quoted OS'\nPRETTY_NAME=\"Quoted OS 2\"\n").unwrap();
    let out = d.path().join("uki.efi");
    run_ok(
        bootseal()
            .arg("build-uki")
            .arg("--linux")
            .arg(kernel())
            .arg("--os-release")
            .arg(&osrel)
            .arg("--stub")
            .arg(STUB)
            .arg("--cmdline")
            .arg(format!("@{}", f.display()))
            .arg("--uname")
            .arg("9.9.9-given")
            .arg("--allow-section-overlap")
            .arg("-o")
            .arg(&out),
    );
    assert_eq!(
        objcopy_section(&out, ".cmdline", d.path()),
        b"composefs=abc  rw\n"
    );
    let j: serde_json::Value = serde_json::from_str(&stdout_of(
        bootseal().arg("inspect").arg("--json").arg(&out),
    ))
    .unwrap();
    assert_eq!(j["cmdline"], "composefs=abc  rw\n");
    assert_eq!(j["uname"], "9.9.9-given");
    assert_eq!(j["os_release_name"], "Quoted OS");
    assert_eq!(j["os_release_pretty_name"], "Quoted OS 2");
    assert_eq!(j["stub_version"], 252);
    assert_eq!(j["arch"], "x64");
    // No initrd given: no .initrd section.
    let names: Vec<&str> = j["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&".initrd"), "{names:?}");
    assert_eq!(j["signatures"].as_array().unwrap().len(), 0);
}
