//! What each fuzz target does with one input, shared by the libFuzzer binaries in
//! `fuzz/fuzz_targets/` and the replay test `tests/it/fuzz_replay.rs` (which runs every file under
//! `testdata/fuzz/<target>/` through the same function in plain `cargo test`).
//!
//! Every function accepts any bytes. Errors are the expected outcome for most inputs; what must
//! never happen is a panic, an abort, a stack overflow, a hang or an allocation far beyond the
//! input, and each error must be one line (messages are printed as one line to the user).

use std::sync::Arc;
use std::sync::OnceLock;

/// One fuzz target: what it does with an input.
pub type Target = fn(&[u8]);

/// The targets, by the directory name of their corpus under `testdata/fuzz/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("tar_tree", tar_tree),
    ("pe_uki", pe_uki),
    ("manifest_json", manifest_json),
    ("kargs_toml", kargs_toml),
    ("cmdline", cmdline),
    ("erofs_writer", erofs_writer),
];

fn one_line(what: &str, message: impl std::fmt::Display) {
    let text = message.to_string();
    assert!(
        !text.contains('\n'),
        "{what} error is not one line: {text:?}"
    );
}

/// One uncompressed tar layer through the whole digest: parse, apply, OCI and boot transforms,
/// SELinux labelling, EROFS (V1 or V2 by the input's length) and the captured-file lookup.
pub fn tar_tree(data: &[u8]) {
    use bootseal::digest::{DigestOptions, ErofsVersion, LayerInput, compute};
    use bootseal::tree::CaptureSet;

    let opts = DigestOptions {
        erofs_version: if data.len().is_multiple_of(2) {
            ErofsVersion::V1
        } else {
            ErofsVersion::V2
        },
        capture: CaptureSet::new()
            .with("/usr/lib/bootc/kargs.d/*.toml")
            .with("/usr/lib/modules/*/vmlinuz")
            .with("/usr/lib/os-release"),
        parallelism: Some(1),
        ..Default::default()
    };
    let layer = LayerInput::from_tar(Arc::from(data));
    match compute("fuzz", vec![layer], &opts) {
        Ok(report) => {
            assert_eq!(report.digest_hex.len(), 128);
            for path in report
                .captured
                .paths()
                .map(str::to_owned)
                .collect::<Vec<_>>()
            {
                if let Err(e) = report.captured.read(&path) {
                    one_line("captured file", e);
                }
            }
        }
        Err(e) => one_line("digest", e),
    }
}

/// A tiny valid PE32+ EFI application (one `.text` section): the partner of the fuzzed input
/// in UKI assembly, once as kernel and once as stub.
const MINIMAL_PE: &[u8] = include_bytes!("../testdata/fuzz/pe_uki/minimal-pe32plus.efi");

/// A self-signed certificate to verify fuzzed signatures against (its key is not kept).
const TRUSTED_PEM: &[u8] = include_bytes!("resources/trusted.pem");

fn trusted() -> &'static x509_cert::Certificate {
    static CERT: OnceLock<x509_cert::Certificate> = OnceLock::new();
    CERT.get_or_init(|| bootseal::signer::keys::load_certificate(TRUSTED_PEM).expect("trusted.pem"))
}

/// One PE file through everything that reads PEs: header parsing, `inspect` (sections,
/// cmdline, PCR 11, signatures), Authenticode hashing, table preparation, signature parsing and
/// verification, and UKI assembly with the input as stub and as kernel.
pub fn pe_uki(data: &[u8]) {
    use bootseal::authenticode;
    use bootseal::uki::{self, UkiInputs};

    if let Err(e) = bootseal::pe::PeHeaders::parse(data) {
        one_line("PE", e);
    }
    match uki::inspect::inspect(data) {
        Ok(report) => drop(report),
        Err(e) => one_line("inspect", e),
    }
    if let Err(e) = authenticode::hash::image_hash(data) {
        one_line("image hash", e);
    }
    if let Err(e) = authenticode::signatures(data) {
        one_line("signatures", e);
    }
    if let Err(e) = authenticode::verify(data, trusted()) {
        one_line("verify", e);
    }
    for append in [false, true] {
        if let Err(e) = authenticode::table::prepare(data.to_vec(), append) {
            one_line("prepare", e);
        }
    }
    let os_release = b"ID=fuzz\nPRETTY_NAME=\"Fuzz\"\n";
    let cmdline = b"composefs=0000000000000000000000000000000000000000000000000000000000000000 rw";
    for (stub, linux) in [(data, MINIMAL_PE), (MINIMAL_PE, data)] {
        let inputs = UkiInputs {
            stub,
            linux,
            initrd: Some(&b"initrd"[..]),
            os_release: &os_release[..],
            cmdline: Some(&cmdline[..]),
            uname: None,
            stub_version: Some(257),
            allow_section_overlap: data.len().is_multiple_of(2),
            ..Default::default()
        };
        match uki::build(&inputs) {
            Ok(image) => {
                if let Err(e) = uki::inspect::inspect(&image) {
                    panic!("inspect refuses a UKI bootseal assembled: {e}");
                }
            }
            Err(e) => one_line("UKI assembly", e),
        }
    }
}

/// One JSON document as a manifest or index (and as a config), through every accessor the
/// sources use.
pub fn manifest_json(data: &[u8]) {
    use bootseal::manifest::{Document, Platform, config_diff_ids};

    match Document::parse(data.to_vec(), None) {
        Ok(doc) => {
            let _ = doc.digest();
            for platform in ["linux/amd64", "linux/arm64/v8"] {
                let platform = Platform::parse(platform).expect("valid platform");
                if let Err(e) = doc.select_platform(&platform) {
                    one_line("select_platform", e);
                }
            }
            if let Err(e) = doc.index_entries() {
                one_line("index", e);
            }
            if let Err(e) = doc.config() {
                one_line("config descriptor", e);
            }
            if let Err(e) = doc.layers() {
                one_line("layers", e);
            }
        }
        Err(e) => one_line("manifest", e),
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Err(e) = config_diff_ids(&value) {
            one_line("diff_ids", e);
        }
        // A composefs metadata referrer, as `verify` reads one from a registry.
        if let Err(e) = bootseal::composefs_meta::artifact::parse(&value) {
            one_line("composefs artifact", e);
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(e) = Platform::parse(text)
    {
        one_line("platform", e);
    }
}

/// The input as `kargs.d` files: split at NUL bytes into `NN-fuzz.toml` files, read for
/// amd64 and arm64. Whatever `from_kargs_d` accepts must leave the sealed composefs argument
/// as the seal wrote it: that is the property the kargs.d checks exist for.
pub fn kargs_toml(data: &[u8]) {
    use bootseal::cmdline::{ArgForm, Expected, from_kargs_d, sealed_cmdline};
    use bootseal::digest::ErofsVersion;

    let files: Vec<(String, Vec<u8>)> = data
        .split(|&b| b == 0)
        .enumerate()
        .map(|(i, bytes)| (format!("{i:02}-fuzz.toml"), bytes.to_vec()))
        .collect();
    for arch in ["amd64", "arm64"] {
        match from_kargs_d(&files, arch) {
            Ok(kargs) => {
                for (form, erofs_version, insecure) in [
                    (ArgForm::Composefs, ErofsVersion::V1, false),
                    (ArgForm::ComposefsDigest, ErofsVersion::V2, true),
                ] {
                    let expected = Expected {
                        digest_hex: DIGEST,
                        erofs_version,
                        allow_missing_verity: insecure,
                    };
                    if let Err(e) = sealed_cmdline(expected, form, &kargs, &[]) {
                        panic!("kargs.d entries {kargs:?} were accepted but break the seal: {e}");
                    }
                }
            }
            Err(e) => one_line("kargs.d", e),
        }
    }
}

const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\
                      0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The input as a kernel command line: composefs-boot 0.9.0's `ComposefsCmdline` (what the
/// initramfs runs) and bootseal's `cmdline::read_composefs`; what bootseal reads must agree
/// with composefs-boot, and must write back to the same digest.
pub fn cmdline(data: &[u8]) {
    use bootseal::cmdline::{ArgForm, composefs_argument, read_composefs};
    use bootseal::digest::ErofsVersion;
    use composefs::fsverity::{FsVerityHashValue, Sha512HashValue};
    use composefs_boot::cmdline::ComposefsCmdline;

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // composefs-boot's own errors quote the input verbatim; bootseal escapes them (below).
    let upstream = ComposefsCmdline::<Sha512HashValue>::from_cmdline(text);
    match read_composefs(text) {
        Ok(arg) => {
            let Ok(Some(upstream)) = upstream else {
                panic!("bootseal read {arg:?} where composefs-boot reads none");
            };
            assert_eq!(arg.digest_hex, upstream.digest().to_hex());
            assert_eq!(arg.insecure, upstream.is_insecure());
            for form in [ArgForm::Composefs, ArgForm::ComposefsDigest] {
                let written =
                    composefs_argument(&arg.digest_hex, form, ErofsVersion::V1, arg.insecure)
                        .expect("a digest bootseal read is writable");
                let again = read_composefs(&written).expect("bootseal reads what it writes");
                assert_eq!(again.digest_hex, arg.digest_hex);
                assert_eq!(again.insecure, arg.insecure);
            }
        }
        Err(e) => one_line("cmdline", e),
    }
}

/// The input as instructions building a composefs tree (directories deep and wide, inline,
/// external, sparse and verity-less files, symlinks, devices, whiteouts, stub look-alikes in
/// the root, hardlinks, attributes including `trusted.overlay.*` and POSIX ACLs); bootseal's
/// EROFS writer must write exactly what composefs-rs 0.9.0's writer writes, for V1 and V2.
pub fn erofs_writer(data: &[u8]) {
    use composefs::erofs::format::FormatVersion;
    let fs = erofs_tree::build(data);
    for version in [FormatVersion::V1, FormatVersion::V2] {
        let (reference, reference_id) = fs.compute_image_bytes(version);
        let (id, ours) =
            bootseal::erofs::image_digest(&fs, version, true).expect("our EROFS writer failed");
        let ours = ours.expect("kept image");
        if ours[..] != reference[..] {
            let at = ours
                .iter()
                .zip(reference.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(ours.len().min(reference.len()));
            panic!(
                "{version:?}: images differ at byte {at} (ours {} bytes, composefs-rs {} bytes)",
                ours.len(),
                reference.len()
            );
        }
        assert_eq!(id, reference_id, "{version:?}: streamed digest differs");
    }
}

/// Builds composefs trees from fuzzer bytes for [`erofs_writer`] (and the writer's tests).
pub mod erofs_tree {
    use std::collections::BTreeMap;
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    use composefs::fsverity::Sha512HashValue;
    use composefs::generic_tree::{LeafContent, LeafId, Stat};
    use composefs::tree::{Directory, FileSystem, Inode, RegularFile};

    /// Reads bytes; zeros once the input is used up.
    struct Bytes<'d>(&'d [u8]);

    impl Bytes<'_> {
        fn u8(&mut self) -> u8 {
            match self.0.split_first() {
                Some((b, rest)) => {
                    self.0 = rest;
                    *b
                }
                None => 0,
            }
        }
        fn u16(&mut self) -> u16 {
            u16::from(self.u8()) | (u16::from(self.u8()) << 8)
        }
        fn pick<T: Copy>(&mut self, of: &[T]) -> T {
            of[usize::from(self.u8()) % of.len()]
        }
        fn done(&self) -> bool {
            self.0.is_empty()
        }
    }

    const XATTR_NAMES: &[&str] = &[
        "security.selinux",
        "security.capability",
        "user.overlay.whiteout",
        "user.overlay.opaque",
        "user.x",
        "trusted.overlay.opaque",
        "trusted.overlay.whiteout",
        "trusted.overlay.overlay.whiteouts",
        "trusted.overlay.metacopy",
        "trusted.overlay.redirect",
        "trusted.other",
        "system.posix_acl_access",
        "system.posix_acl_default",
        "system.posix_acl_accessX",
        "lustre.lov",
        "weird.name",
        "user.",
    ];
    const XATTR_VALUES: &[&[u8]] = &[
        b"",
        b"x",
        b"y",
        b"system_u:object_r:usr_t:s0",
        b"system_u:object_r:bin_t:s0",
        b"\x00\x00",
        b"\xee",
        &[7; 300],
    ];
    const MTIMES: &[i64] = &[
        1_700_000_000,
        1_700_000_001,
        1_600_000_000,
        0,
        -5,
        4_000_000_000,
    ];
    const NSECS: &[u32] = &[0, 0, 1, 999_999_999];
    const IDS: &[u32] = &[0, 0, 1000, 65535, 65536, 4_000_000_000];
    const SIZES: &[u64] = &[
        0,
        1,
        65,
        4095,
        4096,
        4097,
        1 << 20,
        (1 << 20) + 1,
        3_000_000_000,
        1 << 33,
        (1 << 44) + 5,
        1 << 50,
    ];
    const LENGTHS: &[usize] = &[
        0, 1, 7, 63, 64, 2047, 2048, 2049, 4000, 4064, 4095, 4096, 4097, 6000, 9000,
    ];

    fn stat(b: &mut Bytes, root: Option<&Stat>) -> Stat {
        let flags = b.u8();
        // A root entry shaped like a whiteout stub (mode 0644, the root's owner, mtime and
        // only its security.selinux) when asked for.
        if let (Some(root), true) = (root, flags & 0x80 != 0) {
            let mut s = root.clone();
            s.st_mode = 0o644;
            s.xattrs.retain(|k, _| k.as_bytes() == b"security.selinux");
            return s;
        }
        let mut xattrs = BTreeMap::new();
        for _ in 0..(flags & 3) {
            let name = b.pick(XATTR_NAMES);
            let value = b.pick(XATTR_VALUES);
            xattrs.insert(Box::from(OsStr::new(name)), Box::from(value));
        }
        Stat {
            st_mode: u32::from(b.u16()) & 0o7777,
            st_uid: b.pick(IDS),
            st_gid: b.pick(IDS),
            st_mtim_sec: b.pick(MTIMES),
            st_mtim_nsec: b.pick(NSECS),
            xattrs,
        }
    }

    fn name(b: &mut Bytes, serial: &mut u32) -> OsString {
        *serial += 1;
        match b.u8() % 8 {
            0 | 1 => OsString::from(format!("{:02x}", b.u8())),
            2 => OsString::from_vec(vec![b'!' + b.u8() % 13; 1 + usize::from(b.u8() % 3)]),
            3 => OsString::from("n".repeat(1 + usize::from(b.u8()))),
            4 => OsString::from(format!(".h{serial}")),
            _ => OsString::from(format!("f{}", b.u8())),
        }
    }

    fn object(b: &mut Bytes) -> Sha512HashValue {
        use composefs::fsverity::FsVerityHashValue;
        let seed = b.u8() % 6;
        let hex: String = (0..64u8)
            .map(|i| format!("{:02x}", seed.wrapping_mul(37).wrapping_add(i)))
            .collect();
        Sha512HashValue::from_hex(hex).expect("128 hex digits")
    }

    fn content(b: &mut Bytes) -> LeafContent<RegularFile<Sha512HashValue>> {
        match b.u8() % 12 {
            0 | 1 => {
                let len = b.pick(LENGTHS);
                let fill = b.u8();
                LeafContent::Regular(RegularFile::Inline(
                    (0..len).map(|i| fill.wrapping_add(i as u8)).collect(),
                ))
            }
            2 => LeafContent::Regular(RegularFile::Inline(
                (0..usize::from(b.u8() % 65)).map(|i| i as u8).collect(),
            )),
            3 | 4 => LeafContent::Regular(RegularFile::External(object(b), b.pick(SIZES))),
            5 => LeafContent::Regular(RegularFile::ExternalNoVerity(object(b), b.pick(SIZES))),
            6 => LeafContent::Regular(RegularFile::Sparse(b.pick(SIZES))),
            7 => {
                let len = b.pick(LENGTHS).clamp(1, 4095);
                LeafContent::Symlink(OsString::from("t".repeat(len)).into_boxed_os_str())
            }
            8 => LeafContent::CharacterDevice(0),
            9 => LeafContent::CharacterDevice(u64::from(b.u16())),
            10 => LeafContent::BlockDevice(u64::from(b.u16())),
            _ => {
                if b.u8().is_multiple_of(2) {
                    LeafContent::Fifo
                } else {
                    LeafContent::Socket
                }
            }
        }
    }

    /// A tree from `data`. Every leaf is linked at least once; character devices 0:0
    /// (whiteouts) are never hardlinked (composefs-rs's writer asserts that).
    pub fn build(data: &[u8]) -> FileSystem<Sha512HashValue> {
        let mut b = Bytes(data);
        let root_stat = stat(&mut b, None);
        let mut fs = FileSystem::new(root_stat.clone());
        // Directories by path (components), the root first.
        let mut dirs: Vec<Vec<OsString>> = vec![Vec::new()];
        let mut linkable: Vec<LeafId> = Vec::new();
        let mut serial = 0u32;
        let mut ops = 0;
        while !b.done() && ops < 400 {
            ops += 1;
            let parent = dirs[usize::from(b.u16()) % dirs.len()].clone();
            let op = b.u8() % 16;
            let count = match op {
                12 => 1 + usize::from(b.u8()) * 2, // wide
                _ => 1,
            };
            let mut path = parent.clone();
            for _ in 0..count {
                let name = name(&mut b, &mut serial);
                let in_root = path.is_empty();
                let dir = dir_mut(&mut fs.root, &path);
                if dir.lookup(&name).is_some() {
                    continue;
                }
                match op {
                    0..=2 => {
                        let s = stat(&mut b, None);
                        dir.insert(&name, Inode::Directory(Box::new(Directory::new(s))));
                        let mut p = path.clone();
                        p.push(name);
                        dirs.push(p);
                    }
                    3 if dir.lookup(OsStr::new("d0")).is_none() => {
                        // a chain of directories
                        let depth = 1 + usize::from(b.u8());
                        let mut p = path.clone();
                        for level in 0..depth {
                            let n = OsString::from(format!("d{level}"));
                            let s = stat(&mut b, None);
                            dir_mut(&mut fs.root, &p)
                                .insert(&n, Inode::Directory(Box::new(Directory::new(s))));
                            p.push(n);
                        }
                        dirs.push(p);
                    }
                    4 if !linkable.is_empty() => {
                        let id = linkable[usize::from(b.u16()) % linkable.len()];
                        dir.insert(&name, Inode::leaf(id));
                    }
                    _ => {
                        let s = stat(&mut b, in_root.then_some(&root_stat));
                        let c = content(&mut b);
                        let whiteout = matches!(c, LeafContent::CharacterDevice(0));
                        let id = fs.push_leaf(s, c);
                        dir_mut(&mut fs.root, &path).insert(&name, Inode::leaf(id));
                        if !whiteout {
                            linkable.push(id);
                        }
                    }
                }
                if op == 12 && count > 1 {
                    // stays in the same directory
                    path = parent.clone();
                }
            }
        }
        fs
    }

    fn dir_mut<'t>(
        mut dir: &'t mut Directory<Sha512HashValue>,
        path: &[OsString],
    ) -> &'t mut Directory<Sha512HashValue> {
        for c in path {
            dir = match dir.get_directory_mut(c) {
                Ok(d) => d,
                Err(e) => panic!("{c:?}: {e}"),
            };
        }
        dir
    }
}
