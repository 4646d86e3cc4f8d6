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
