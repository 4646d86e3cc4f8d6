//! Tar path and PAX time conventions of composefs-oci 0.9.0, re-implemented.
//!
//! composefs-oci (`src/tar.rs`) keeps these helpers private; the digest depends on them, so this
//! module reproduces their observable behaviour (`make_absolute_path`, `pax_mtime_nsec`) and the
//! reference tests in `tests/` keep them honest.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Deepest directory level a tree path may have (components below the root).
///
/// Linux's PATH_MAX is 4096 bytes including the terminating NUL, and every level costs at least
/// two bytes (`/` and a one-byte name), so a file 2048 levels deep has no absolute path any
/// program can open: no installable image reaches this limit. It exists because the tree and
/// composefs-rs walk directories recursively (and free them recursively); a layer nesting
/// directories tens of thousands deep would otherwise overflow the stack.
pub const MAX_DEPTH: usize = 2048;

/// Longest file name, Linux's NAME_MAX (and EROFS's `EROFS_NAME_LEN`): no Linux file system
/// stores a longer one, and composefs-rs' EROFS writer asserts on names over 4084 bytes.
pub const NAME_MAX: usize = 255;

/// Refuses tree paths deeper than [`MAX_DEPTH`] or with a name longer than [`NAME_MAX`]
/// (for a whiteout `.wh.NAME`, the name it removes).
pub fn check_limits(path: &Path) -> Result<(), String> {
    let mut depth = 0usize;
    let mut last: Option<&[u8]> = None;
    for c in path.components() {
        if let Component::Normal(name) = c {
            depth += 1;
            if let Some(prev) = last.replace(name.as_bytes()) {
                check_name(prev)?;
            }
        }
    }
    if let Some(name) = last {
        check_name(name.strip_prefix(b".wh.").unwrap_or(name))?;
    }
    if depth > MAX_DEPTH {
        return Err(format!(
            "path is {depth} directory levels deep, more than the limit of {MAX_DEPTH} \
             (deeper than any path Linux can open: PATH_MAX is 4096 bytes)"
        ));
    }
    Ok(())
}

fn check_name(name: &[u8]) -> Result<(), String> {
    if name.len() > NAME_MAX {
        return Err(format!(
            "a file name in the path is {} bytes long, more than the limit of {NAME_MAX} \
             (Linux NAME_MAX)",
            name.len()
        ));
    }
    Ok(())
}

/// A path for an error message: control characters escaped
/// ([`escape_controls`](crate::text::escape_controls)), and, since
/// paths of hostile layers can be a megabyte long, long ones keep their start and end around
/// an elision that says how much was left out.
pub fn shorten_for_message(path: String) -> String {
    const KEEP: usize = 96;
    let path = crate::text::escape_controls(&path);
    let chars = path.chars().count();
    if chars <= 3 * KEEP {
        return path;
    }
    let head: String = path.chars().take(KEEP).collect();
    let tail: String = path.chars().skip(chars - KEEP).collect();
    format!(
        "{head}…[{} more bytes]…{tail}",
        path.len() - head.len() - tail.len()
    )
}

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

    #[test]
    fn depth_and_name_limits() {
        let deep = |n: usize| PathBuf::from("/a".repeat(n));
        assert!(check_limits(&deep(MAX_DEPTH)).is_ok());
        let e = check_limits(&deep(MAX_DEPTH + 1)).unwrap_err();
        assert!(e.starts_with("path is 2049 directory levels deep, more than the limit of 2048"));
        // `.` components do not count (the tree ignores them too).
        assert!(check_limits(&PathBuf::from(format!("{}/.", "/a".repeat(MAX_DEPTH)))).is_ok());
        let long = "n".repeat(NAME_MAX + 1);
        assert!(check_limits(&PathBuf::from(format!("/usr/{long}"))).is_err());
        assert!(check_limits(&PathBuf::from(format!("/{long}/x"))).is_err());
        // A whiteout of a name at the limit is itself longer, and fine.
        let at_limit = "n".repeat(NAME_MAX);
        assert!(check_limits(&PathBuf::from(format!("/usr/.wh.{at_limit}"))).is_ok());
        assert!(check_limits(&PathBuf::from(format!("/usr/.wh.{long}"))).is_err());
    }

    #[test]
    fn long_paths_are_shortened_in_messages() {
        assert_eq!(shorten_for_message("usr/bin".into()), "usr/bin");
        let long = "a/".repeat(50_000);
        let short = shorten_for_message(long.clone());
        assert!(short.len() < 300, "{short}");
        assert!(short.contains(&format!("…[{} more bytes]…", long.len() - 192)));
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
