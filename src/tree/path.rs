//! Tar path and PAX time conventions of composefs-oci 0.9.0, re-implemented.
//!
//! composefs-oci (`src/tar.rs`) keeps these helpers private; the digest depends on them, so this
//! module reproduces their observable behaviour (research/composefs.md §2.1, §2.4) and the
//! reference tests in `tests/` keep them honest.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Turns a tar path into the absolute tree path composefs-oci uses.
///
/// One leading `/` is dropped and `/` prepended, trailing `/`s are dropped, and the bare root
/// becomes the empty path (the marker for "root entry"). `..` components are rejected here,
/// because composefs-oci would either fail on them or, for a trailing `..`, treat the entry as
/// the root directory.
pub fn tree_path(tar_path: &[u8]) -> Result<PathBuf, String> {
    if tar_path.split(|&b| b == b'/').any(|c| c == b"..") {
        return Err("path contains a '..' component".to_string());
    }
    let rest = tar_path.strip_prefix(b"/").unwrap_or(tar_path);
    let mut path = Vec::with_capacity(rest.len() + 1);
    path.push(b'/');
    path.extend_from_slice(rest);
    while path.len() > 1 && path.last() == Some(&b'/') {
        path.pop();
    }
    if path == b"/" {
        path.clear();
    }
    Ok(PathBuf::from(OsString::from_vec(path)))
}

/// Nanoseconds from the fractional part of a PAX `mtime` record, 0 when there is none.
///
/// The first `mtime` record counts. Digits after the ninth are cut off, fewer than nine are
/// scaled (".25" is 250 ms); anything that does not parse as digits gives 0, as upstream.
pub fn pax_mtime_nsec(pax: &[u8]) -> u32 {
    let Some(record) = tar_core::PaxExtensions::new(pax)
        .flatten()
        .find(|ext| ext.key_bytes() == b"mtime")
    else {
        return 0;
    };
    let Ok(value) = record.value() else {
        return 0;
    };
    let Some((_, fraction)) = value.split_once('.') else {
        return 0;
    };
    // `get` instead of slicing: a multi-byte character at the cut must not panic.
    let Some(digits) = fraction.get(..fraction.len().min(9)) else {
        return 0;
    };
    match digits.parse::<u32>() {
        Ok(v) => v * 10u32.pow(9 - digits.len() as u32),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        tree_path(s.as_bytes())
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn normalises_like_composefs_oci() {
        assert_eq!(p("usr/bin/"), "/usr/bin");
        assert_eq!(p("./usr"), "/./usr");
        assert_eq!(p("/etc//"), "/etc");
        assert_eq!(p("./"), "/.");
        assert_eq!(p("/"), "");
        assert_eq!(p(""), "");
        assert!(tree_path(b"usr/../etc").is_err());
        assert!(tree_path(b"..").is_err());
        assert!(tree_path(b"a/..").is_err());
        assert_eq!(p("a/..b"), "/a/..b");
    }

    fn pax(records: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in records {
            let body = format!(" {k}={v}\n");
            let len = (1..)
                .find(|n: &usize| n.to_string().len() + body.len() == *n)
                .unwrap();
            out.extend(format!("{len}{body}").into_bytes());
        }
        out
    }

    #[test]
    fn pax_fractions() {
        assert_eq!(
            pax_mtime_nsec(&pax(&[("mtime", "1700000600.25")])),
            250_000_000
        );
        assert_eq!(
            pax_mtime_nsec(&pax(&[("mtime", "1.1234567891")])),
            123_456_789
        );
        assert_eq!(pax_mtime_nsec(&pax(&[("mtime", "1.000000001")])), 1);
        assert_eq!(pax_mtime_nsec(&pax(&[("mtime", "17")])), 0);
        assert_eq!(pax_mtime_nsec(&pax(&[("mtime", "1.")])), 0);
        assert_eq!(
            pax_mtime_nsec(&pax(&[("path", "x"), ("mtime", "5.5")])),
            500_000_000
        );
        assert_eq!(pax_mtime_nsec(&pax(&[("path", "x")])), 0);
    }
}
