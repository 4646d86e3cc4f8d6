//! The sealed kernel command line, read and written the way its consumer reads it.
//!
//! The consumer is composefs-boot's `cmdline` module (the pinned 0.9.0 crate): bootc's
//! initramfs and its install step parse a UKI's `.cmdline` with `ComposefsCmdline::from_cmdline`,
//! which scans `composefs.digest=` tokens first and falls back to the first `composefs=`
//! (its `src/cmdline.rs`). Every place bootseal writes or checks the composefs argument goes
//! through this module, and this module goes through that parser, so what we check is what the
//! initramfs will mount.
//!
//! Rules: the image (`/usr/lib/bootc/kargs.d/*.toml`) and `--karg` may not carry any token in
//! the composefs namespace; a sealed command line has exactly one composefs token, naming the
//! digest of the layers; the insecure form (`?`, fs-verity optional) only when asked for.

use composefs::fsverity::{Algorithm, FsVerityHashValue, Sha512HashValue};
use composefs_boot::cmdline::{
    ComposefsCmdline, KARG_COMPOSEFS_DIGEST, make_cmdline_composefs, split_cmdline,
};
use serde::{Deserialize, Serialize};

use crate::digest::ErofsVersion;

/// Which spelling of the composefs argument a sealed UKI carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArgForm {
    /// `composefs=<hex>`: what bootc 1.16.x's `bootc container ukify` writes and the only key
    /// its status/upgrade code recognises.
    #[default]
    Composefs,
    /// `composefs.digest=v<N>-sha512-12:<hex>`: self-describing; composefs-boot ≥ 0.9.0 reads it
    /// before `composefs=`.
    ComposefsDigest,
}

impl std::str::FromStr for ArgForm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "composefs" => Ok(ArgForm::Composefs),
            "composefs.digest" => Ok(ArgForm::ComposefsDigest),
            _ => Err(format!(
                "unknown composefs argument form {s:?} (expected composefs or composefs.digest)"
            )),
        }
    }
}

/// The composefs argument as composefs-boot parsed it from a command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComposefsArg {
    /// The fs-verity SHA-512 digest the initramfs will mount, lowercase hex.
    pub digest_hex: String,
    /// `?` form: the initramfs mounts without requiring fs-verity.
    pub insecure: bool,
    /// The EROFS version the token declares (`composefs.digest=vN-…`); `None` for `composefs=`.
    pub declared_erofs_version: Option<u8>,
    /// The token itself, verbatim.
    pub token: String,
}

/// Why a command line is not an acceptable sealed command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("command line has no composefs= argument")]
    Missing,
    #[error("command line has {} composefs tokens ({}); a sealed command line has exactly one", .0.len(), printable(&.0.join(" ")))]
    Repeated(Vec<String>),
    #[error("composefs-boot cannot parse the composefs argument: {0}")]
    Unparsable(String),
    #[error("composefs argument {0} names no SHA-512 digest composefs-boot would mount")]
    WrongAlgorithm(String),
}

/// A token from a hostile command line as it may appear in a one-line message: control
/// characters (newlines, NULs, escapes that a UKI's `.cmdline` may carry) escaped, the rest as
/// is. Found by the `cmdline` fuzz target.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// True for a token whose key belongs to the composefs initramfs: `composefs`, or anything in
/// the `composefs.` namespace. Quotes are ignored and the comparison is case-insensitive with `-`
/// and `_` equal (the kernel's own rule for parameter names), so no spelling slips past.
pub fn is_composefs_token(token: &str) -> bool {
    let unquoted: String = token.chars().filter(|&c| c != '"').collect();
    let key = unquoted.split('=').next().unwrap_or("");
    let key = key.to_ascii_lowercase().replace('-', "_");
    key == "composefs" || key.starts_with("composefs.")
}

/// The composefs tokens of `cmdline`, split as composefs-boot splits it.
pub fn composefs_tokens(cmdline: &str) -> Vec<String> {
    split_cmdline(cmdline)
        .filter(|t| !t.is_empty() && is_composefs_token(t))
        .map(str::to_owned)
        .collect()
}

/// Reads the composefs argument of `cmdline` with composefs-boot's parser, refusing a command
/// line with more than one composefs token (the initramfs would pick one by its own order).
pub fn read_composefs(cmdline: &str) -> Result<ComposefsArg, CmdlineError> {
    let tokens = composefs_tokens(cmdline);
    match tokens.len() {
        0 => return Err(CmdlineError::Missing),
        1 => {}
        _ => return Err(CmdlineError::Repeated(tokens)),
    }
    let token = tokens.into_iter().next().expect("one token");
    let parsed = ComposefsCmdline::<Sha512HashValue>::from_cmdline(cmdline)
        .map_err(|e| CmdlineError::Unparsable(printable(&format!("{e:#}"))))?
        .ok_or_else(|| CmdlineError::WrongAlgorithm(printable(&token)))?;
    let declared_erofs_version = match &parsed {
        ComposefsCmdline::V1 { .. } => Some(1),
        ComposefsCmdline::V2 { .. } if token.starts_with("composefs.digest=") => Some(2),
        ComposefsCmdline::V2 { .. } => None,
    };
    Ok(ComposefsArg {
        digest_hex: parsed.digest().to_hex(),
        insecure: parsed.is_insecure(),
        declared_erofs_version,
        token,
    })
}

/// What a sealed command line must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub digest_hex: &'a str,
    pub erofs_version: ErofsVersion,
    /// Accept (and, when writing, produce) the `?` form.
    pub allow_missing_verity: bool,
}

/// Checks a UKI's command line against the digest of the layers: one composefs token, parsed by
/// composefs-boot to exactly this digest, declaring (if it declares one) this EROFS version,
/// and secure unless missing verity is allowed.
pub fn check_sealed(cmdline: &str, expected: Expected<'_>) -> Result<ComposefsArg, String> {
    let arg = read_composefs(cmdline).map_err(|e| e.to_string())?;
    if arg.digest_hex != expected.digest_hex {
        return Err(format!(
            "{} names digest {}, the layers give {}",
            printable(&arg.token),
            arg.digest_hex,
            expected.digest_hex
        ));
    }
    if let Some(v) = arg.declared_erofs_version
        && v != expected.erofs_version.number()
    {
        return Err(format!(
            "{} declares EROFS v{v}, but the digest was checked as EROFS v{} (--erofs-version)",
            printable(&arg.token),
            expected.erofs_version.number()
        ));
    }
    if arg.insecure && !expected.allow_missing_verity {
        return Err(format!(
            "{} is the insecure form (fs-verity optional at boot); pass --allow-missing-verity to accept it",
            printable(&arg.token)
        ));
    }
    Ok(arg)
}

/// The composefs argument for `digest_hex`, written by composefs-boot's own formatter.
pub fn composefs_argument(
    digest_hex: &str,
    form: ArgForm,
    erofs_version: ErofsVersion,
    insecure: bool,
) -> Result<String, String> {
    let digest = Sha512HashValue::from_hex(digest_hex)
        .map_err(|e| format!("digest {digest_hex:?} is not a SHA-512 hex digest: {e:?}"))?;
    Ok(match form {
        ArgForm::Composefs => ComposefsCmdline::new_v2(digest, insecure).to_cmdline_arg(),
        // composefs-boot's own formatter for V1; it spells V2 as the legacy `composefs=`, so the
        // explicit `v2-` descriptor (which its parser reads as V2) is written here.
        ArgForm::ComposefsDigest if erofs_version == ErofsVersion::V1 => make_cmdline_composefs(
            &digest.to_hex(),
            insecure,
            erofs_version.format(),
            Algorithm::SHA512,
        ),
        ArgForm::ComposefsDigest => format!(
            "{KARG_COMPOSEFS_DIGEST}={}v2-{}:{}",
            if insecure { "?" } else { "" },
            Algorithm::SHA512.verity_suffix(),
            digest.to_hex()
        ),
    })
}

/// One kernel argument from the image or the user, checked before it joins the command line.
/// `source` names where it came from (a kargs.d file or `--karg`).
pub fn check_extra_karg(karg: &str, source: &str) -> Result<(), String> {
    if karg.chars().any(|c| c.is_control()) {
        return Err(format!(
            "{source}: kernel argument {karg:?} contains a control character"
        ));
    }
    if !karg.matches('"').count().is_multiple_of(2) {
        return Err(format!(
            "{source}: kernel argument {karg:?} has an unbalanced double quote"
        ));
    }
    let tokens: Vec<&str> = split_cmdline(karg).filter(|t| !t.is_empty()).collect();
    if tokens.iter().any(|t| is_composefs_token(t)) {
        return Err(format!(
            "{source}: {karg:?} sets the composefs argument, which only the seal may set (it would override or shadow the sealed digest)"
        ));
    }
    if tokens.len() != 1 {
        return Err(format!(
            "{source}: {karg:?} is {} kernel arguments, expected one per entry",
            tokens.len()
        ));
    }
    Ok(())
}

/// An add-on's `.cmdline` as systemd-stub appends it (`mangle_stub_cmdline` in systemd's
/// `src/boot/efi/util.c`): control characters become spaces, surrounding spaces go.
pub fn mangle_addon_cmdline(text: &str) -> String {
    let spaced: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.trim_matches(' ').to_owned()
}

/// One add-on's command line, checked before it is sealed or accepted: no token in the composefs
/// namespace (an add-on is appended after the UKI's `.cmdline`, so it could add a second
/// composefs argument after the seal, which bootc's `write_pe_to_esp` does not check) and
/// balanced double quotes (an open quote would swallow the arguments of the add-ons after it).
/// `name` says which add-on.
pub fn check_addon_cmdline(text: &str, name: &str) -> Result<(), String> {
    let line = mangle_addon_cmdline(text);
    let tokens = composefs_tokens(&line);
    if let Some(t) = tokens.first() {
        return Err(format!(
            "add-on {name}: {} sets the composefs argument, which only the sealed UKI may carry",
            printable(t)
        ));
    }
    if !line.matches('"').count().is_multiple_of(2) {
        return Err(format!(
            "add-on {name}: command line \"{}\" has an unbalanced double quote",
            printable(&line)
        ));
    }
    Ok(())
}

/// The command line the kernel gets from systemd-stub (>= 254; `cmdline_append_and_measure_addons`
/// and `load_all_addons` in `src/boot/efi/stub.c`): the UKI's `.cmdline`, then the global
/// add-ons' (`loader/addons`), then the UKI's own (`<uki>.efi.extra.d`), each directory in
/// file-name order, joined by spaces. `addons` must already be in that order.
pub fn effective_cmdline(uki: &str, addons: &[&str]) -> String {
    let mut line = uki.to_owned();
    for a in addons {
        let a = mangle_addon_cmdline(a);
        if !a.is_empty() {
            line.push(' ');
            line.push_str(&a);
        }
    }
    line
}

/// One `kargs.d` file.
#[derive(Debug, Deserialize)]
struct KargsFile {
    kargs: Vec<String>,
    #[serde(default, rename = "match-architectures")]
    match_architectures: Option<Vec<String>>,
}

/// Maps an OCI architecture name to the Rust/kernel name `kargs.d` files use.
pub fn kargs_arch(oci_arch: &str) -> &str {
    match oci_arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "ppc64le" => "powerpc64",
        other => other,
    }
}

/// Collects the kargs of the image's `/usr/lib/bootc/kargs.d` files (name, contents) for
/// `oci_arch`, in file-name order (`match-architectures` honoured, as bootc's kargs.d
/// documentation describes); refuses any entry that touches the composefs argument.
pub fn from_kargs_d(files: &[(String, Vec<u8>)], oci_arch: &str) -> Result<Vec<String>, String> {
    let arch = kargs_arch(oci_arch);
    let mut sorted: Vec<&(String, Vec<u8>)> =
        files.iter().filter(|(n, _)| n.ends_with(".toml")).collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::new();
    for (name, bytes) in sorted {
        let source = format!("{}/{name}", crate::bootc_paths::KARGS_D);
        let text = std::str::from_utf8(bytes).map_err(|_| format!("{source}: not UTF-8"))?;
        let parsed: KargsFile = toml::from_str(text)
            .map_err(|e| format!("{source}: {}", e.message().replace('\n', "; ")))?;
        if let Some(archs) = &parsed.match_architectures
            && !archs.iter().any(|a| a == arch)
        {
            continue;
        }
        for karg in &parsed.kargs {
            check_extra_karg(karg, &source)?;
        }
        out.extend(parsed.kargs);
    }
    Ok(out)
}

/// The full command line for a sealed UKI: the composefs argument, `rw`, the image's kargs,
/// the user's. Re-read with composefs-boot's parser before it is returned, so a line whose
/// composefs argument would not read back as `expected` is never written.
pub fn sealed_cmdline(
    expected: Expected<'_>,
    form: ArgForm,
    image_kargs: &[String],
    user_kargs: &[String],
) -> Result<String, String> {
    for karg in user_kargs {
        check_extra_karg(karg, "--karg")?;
    }
    let mut parts = vec![
        composefs_argument(
            expected.digest_hex,
            form,
            expected.erofs_version,
            expected.allow_missing_verity,
        )?,
        "rw".to_owned(),
    ];
    parts.extend(image_kargs.iter().cloned());
    parts.extend(user_kargs.iter().cloned());
    let line = parts.join(" ");
    let arg = check_sealed(&line, expected)?;
    if arg.insecure != expected.allow_missing_verity {
        return Err(format!(
            "{}: insecure flag does not read back",
            printable(&arg.token)
        ));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn expected(allow: bool) -> Expected<'static> {
        Expected {
            digest_hex: A,
            erofs_version: ErofsVersion::V1,
            allow_missing_verity: allow,
        }
    }

    #[test]
    fn order_and_architecture_filter() {
        let files = vec![
            ("20-b.toml".to_owned(), b"kargs = [\"b=1\"]\n".to_vec()),
            (
                "10-a.toml".to_owned(),
                b"kargs = [\"a=1\", \"a2\"]\nmatch-architectures = [\"x86_64\"]\n".to_vec(),
            ),
            (
                "15-arm.toml".to_owned(),
                b"kargs = [\"arm\"]\nmatch-architectures = [\"aarch64\"]\n".to_vec(),
            ),
            ("README".to_owned(), b"ignored".to_vec()),
        ];
        assert_eq!(from_kargs_d(&files, "amd64").unwrap(), ["a=1", "a2", "b=1"]);
        assert_eq!(from_kargs_d(&files, "arm64").unwrap(), ["arm", "b=1"]);
        let bad = vec![("x.toml".to_owned(), b"kargs = 3".to_vec())];
        assert!(
            from_kargs_d(&bad, "amd64")
                .unwrap_err()
                .starts_with("/usr/lib/bootc/kargs.d/x.toml:")
        );
    }

    #[test]
    fn composefs_namespace_refused_in_extra_kargs() {
        for karg in [
            "composefs=abc",
            "composefs=?abc",
            "composefs.digest=v1-sha512-12:abc",
            "\"composefs=abc\"",
            "Composefs.Digest=x",
            "composefs",
            "composefs.anything",
            "quiet composefs=abc",
        ] {
            let e = check_extra_karg(karg, "--karg").unwrap_err();
            assert!(e.starts_with("--karg:"), "{karg}: {e}");
        }
        for karg in ["quiet", "composefsx=1", "root=\"a b\"", "x.composefs=1"] {
            check_extra_karg(karg, "--karg").unwrap();
        }
        let files = vec![(
            "50-evil.toml".to_owned(),
            format!("kargs = [\"composefs={B}\"]\n").into_bytes(),
        )];
        let e = from_kargs_d(&files, "amd64").unwrap_err();
        assert!(e.starts_with("/usr/lib/bootc/kargs.d/50-evil.toml:"), "{e}");
    }

    #[test]
    fn sealed_line_forms_read_back() {
        let line = sealed_cmdline(
            expected(false),
            ArgForm::Composefs,
            &["a=1".into()],
            &["quiet".into()],
        )
        .unwrap();
        assert_eq!(line, format!("composefs={A} rw a=1 quiet"));
        let arg = read_composefs(&line).unwrap();
        assert_eq!(
            (
                arg.digest_hex.as_str(),
                arg.insecure,
                arg.declared_erofs_version
            ),
            (A, false, None)
        );

        let line = sealed_cmdline(expected(true), ArgForm::ComposefsDigest, &[], &[]).unwrap();
        assert_eq!(line, format!("composefs.digest=?v1-sha512-12:{A} rw"));
        let arg = read_composefs(&line).unwrap();
        assert_eq!((arg.insecure, arg.declared_erofs_version), (true, Some(1)));
    }

    #[test]
    fn forged_lines_refused() {
        let secure = |s: &str| check_sealed(s, expected(false));
        assert!(secure(&format!("composefs={A} rw")).is_ok());
        assert!(
            secure(&format!("composefs=?{A} rw"))
                .unwrap_err()
                .contains("insecure")
        );
        assert!(check_sealed(&format!("composefs=?{A} rw"), expected(true)).is_ok());
        assert!(
            secure(&format!("composefs={A} composefs.digest=v1-sha512-12:{B}"))
                .unwrap_err()
                .contains("2 composefs tokens")
        );
        assert!(
            secure(&format!("composefs={A} composefs={B}"))
                .unwrap_err()
                .contains("2 composefs tokens")
        );
        assert!(
            secure(&format!("composefs={B}"))
                .unwrap_err()
                .contains("the layers give")
        );
        assert!(secure("rw quiet").unwrap_err().contains("no composefs"));
        assert!(
            secure(&format!("composefs.digest=v2-sha512-12:{A}"))
                .unwrap_err()
                .contains("EROFS v2")
        );
        assert!(
            secure("composefs=xyz")
                .unwrap_err()
                .contains("cannot parse")
        );
        assert!(
            secure(&format!("composefs.digest=v1-sha256-12:{}", &A[..64]))
                .unwrap_err()
                .contains("SHA-512")
        );
    }

    #[test]
    fn addon_cmdlines_may_not_touch_composefs_and_join_in_stub_order() {
        assert!(check_addon_cmdline("console=ttyS0 iommu=pt", "a.addon.efi").is_ok());
        for bad in [
            "quiet composefs=00",
            "Composefs.Digest=v1-sha512-12:00",
            "x\ncomposefs=00",
            "\"composefs=00\"",
        ] {
            let e = check_addon_cmdline(bad, "a.addon.efi").unwrap_err();
            assert!(e.starts_with("add-on a.addon.efi: "), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = check_addon_cmdline("foo=\"bar", "b.addon.efi").unwrap_err();
        assert!(e.contains("unbalanced"), "{e}");
        assert_eq!(
            effective_cmdline("composefs=aa rw", &["x\n", "", " y  z "]),
            "composefs=aa rw x y  z"
        );
    }
}
