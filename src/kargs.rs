//! The sealed kernel command line: `composefs=<digest> rw`, then the image's own
//! `/usr/lib/bootc/kargs.d/*.toml` arguments (files in name order, `match-architectures`
//! honoured, as bootc's `kargs.d` documentation describes), then the user's `--karg` values.

use serde::Deserialize;

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

/// Collects the kargs of `files` (name, contents) for `oci_arch`, in file-name order.
pub fn from_kargs_d(files: &[(String, Vec<u8>)], oci_arch: &str) -> Result<Vec<String>, String> {
    let arch = kargs_arch(oci_arch);
    let mut sorted: Vec<&(String, Vec<u8>)> =
        files.iter().filter(|(n, _)| n.ends_with(".toml")).collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::new();
    for (name, bytes) in sorted {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| format!("/usr/lib/bootc/kargs.d/{name}: not UTF-8"))?;
        let parsed: KargsFile = toml::from_str(text)
            .map_err(|e| format!("/usr/lib/bootc/kargs.d/{name}: {}", e.message()))?;
        if let Some(archs) = &parsed.match_architectures
            && !archs.iter().any(|a| a == arch)
        {
            continue;
        }
        out.extend(parsed.kargs);
    }
    Ok(out)
}

/// The full command line for a sealed UKI.
pub fn sealed_cmdline(digest_hex: &str, image_kargs: &[String], user_kargs: &[String]) -> String {
    let mut parts = vec![format!("composefs={digest_hex}"), "rw".to_owned()];
    parts.extend(image_kargs.iter().cloned());
    parts.extend(user_kargs.iter().cloned());
    parts.join(" ")
}

/// The `composefs=` value of a command line, if any (`composefs=?HEX` allows missing verity).
pub fn composefs_digest(cmdline: &str) -> Option<&str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|a| a.strip_prefix("composefs="))
        .map(|v| v.trim_start_matches('?'))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let line = sealed_cmdline("ab", &["a=1".into()], &["quiet".into()]);
        assert_eq!(line, "composefs=ab rw a=1 quiet");
        assert_eq!(composefs_digest(&line), Some("ab"));
        assert_eq!(composefs_digest("x composefs=?cd"), Some("cd"));
    }
}
