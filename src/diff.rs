//! Diff: two bootable trees compared entry by entry, as composefs dumpfiles.
//!
//! Either side is a dumpfile: one written by composefs-rs's `dumpfile::write_dumpfile` (what
//! `seal` puts at `/boot/<kver>.dump`, what `bootc container ukify --write-dumpfile-to` and
//! `cfsctl oci dump --bootable` write), or the one [`crate::digest`] produces for an image while
//! computing its digest. Lines are parsed with composefs's own parser
//! (`composefs::dumpfile_parse::Entry::parse`, which also puts xattrs in a canonical order), so
//! what is compared is what composefs reads, not the text. Each entry present on both sides is
//! compared attribute by attribute: type, mode, owner, mtime, link count, content (size and
//! fs-verity digest, or inline bytes), symlink or hard-link target, device number, and each
//! extended attribute.

use composefs::dumpfile_parse::{Entry, Item};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One attribute that differs; `None` where the side has no such attribute (an entry or xattr
/// that is absent).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttributeChange {
    /// `presence`, `type`, `mode`, `owner`, `mtime`, `nlink`, `content`, `symlink`,
    /// `hardlink`, `rdev` or `xattr <name>`.
    pub attribute: String,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// An entry that differs, with every attribute that does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntryDiff {
    /// The path as the dumpfile spells it (escaped, no spaces or control characters).
    pub path: String,
    pub changes: Vec<AttributeChange>,
}

impl std::fmt::Display for EntryDiff {
    /// `PATH: ATTRIBUTE A -> B, ATTRIBUTE A -> B`, absent sides shown as `absent`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:", self.path)?;
        for (i, c) in self.changes.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let a = c.a.as_deref().unwrap_or("absent");
            let b = c.b.as_deref().unwrap_or("absent");
            write!(f, "{sep}{} {a} -> {b}", c.attribute)?;
        }
        Ok(())
    }
}

/// A dumpfile that composefs's parser refuses: which side, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: line {line}: {message}")]
pub struct ParseError {
    pub source_name: String,
    pub line: usize,
    pub message: String,
}

/// A side's lines parsed: (line number, the path as the dumpfile spells it, the entry).
type Lines<'a> = Vec<(usize, &'a str, Entry<'a>)>;

/// An entry's reported attributes and its spelled path, by path.
type Indexed<'v> = BTreeMap<&'v Path, (&'v str, Vec<(String, String)>)>;

fn parse<'a>(name: &str, text: &'a str) -> Result<Lines<'a>, ParseError> {
    let err = |line: usize, message: String| ParseError {
        source_name: name.to_string(),
        line,
        message: crate::text::escape_controls(&message),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let entry = Entry::parse(line).map_err(|e| err(i + 1, format!("{e:#}")))?;
        out.push((i + 1, line.split(' ').next().unwrap_or_default(), entry));
    }
    if out.is_empty() {
        return Err(err(1, "no entries (not a composefs dumpfile?)".into()));
    }
    Ok(out)
}

fn index<'v>(name: &str, lines: &'v Lines<'_>) -> Result<Indexed<'v>, ParseError> {
    let mut entries = BTreeMap::new();
    for (line, shown, entry) in lines {
        if entries
            .insert(entry.path.as_ref(), (*shown, attributes(entry)))
            .is_some()
        {
            return Err(ParseError {
                source_name: name.to_string(),
                line: *line,
                message: format!("{shown} is listed twice"),
            });
        }
    }
    Ok(entries)
}

/// Bytes as the dumpfile escapes them: printable ASCII as is, `\\`, everything else `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &c in bytes {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'!'..=b'~' => out.push(c as char),
            _ => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out
}

fn type_name(mode: u32) -> &'static str {
    match mode & 0o170000 {
        0o040000 => "directory",
        0o100000 => "file",
        0o120000 => "symlink",
        0o020000 => "char-device",
        0o060000 => "block-device",
        0o010000 => "fifo",
        0o140000 => "socket",
        _ => "unknown",
    }
}

/// An entry's attributes in the order they are reported.
fn attributes(e: &Entry) -> Vec<(String, String)> {
    let path_text = |p: &Path| escaped(p.as_os_str().as_encoded_bytes());
    if let Item::Hardlink { target } = &e.item {
        // A hard link's own fields are ignored by composefs (composefs-dump(5)).
        return vec![
            ("type".into(), "hardlink".into()),
            ("hardlink".into(), path_text(target)),
        ];
    }
    let mut out: Vec<(String, String)> = vec![
        ("type".into(), type_name(e.mode).into()),
        ("mode".into(), format!("{:o}", e.mode & 0o7777)),
        ("owner".into(), format!("{}:{}", e.uid, e.gid)),
        (
            "mtime".into(),
            // As the dumpfile spells it: seconds, then nanoseconds unpadded.
            format!("{}.{}", e.mtime.sec, e.mtime.nsec),
        ),
    ];
    let nlink = match &e.item {
        Item::RegularInline { nlink, .. }
        | Item::Regular { nlink, .. }
        | Item::Device { nlink, .. }
        | Item::Symlink { nlink, .. }
        | Item::Fifo { nlink }
        | Item::Socket { nlink }
        | Item::Directory { nlink } => Some(*nlink),
        Item::Hardlink { .. } => None,
    };
    if let Some(n) = nlink
        && !matches!(e.item, Item::Directory { .. })
    {
        out.push(("nlink".into(), n.to_string()));
    }
    match &e.item {
        Item::RegularInline { size, content, .. } => out.push((
            "content".into(),
            format!(
                "{size} bytes inline sha256:{}",
                &hex::encode(Sha256::digest(content))[..16]
            ),
        )),
        Item::Regular {
            size,
            fsverity_digest,
            ..
        } => out.push((
            "content".into(),
            format!(
                "{size} bytes fs-verity:{}",
                fsverity_digest.as_deref().unwrap_or("-")
            ),
        )),
        Item::Symlink { target, .. } => out.push(("symlink".into(), path_text(target))),
        Item::Device { rdev, .. } => out.push(("rdev".into(), rdev.to_string())),
        _ => {}
    }
    for x in &e.xattrs {
        out.push((
            format!("xattr {}", escaped(x.key.as_encoded_bytes())),
            escaped(&x.value),
        ));
    }
    out
}

/// The entries of dumpfile `b` that differ from dumpfile `a` (by path, in path order).
/// `a_name` and `b_name` name the sides in parse errors.
pub fn diff(a_name: &str, a: &str, b_name: &str, b: &str) -> Result<Vec<EntryDiff>, ParseError> {
    let (la, lb) = (parse(a_name, a)?, parse(b_name, b)?);
    let (pa, pb) = (index(a_name, &la)?, index(b_name, &lb)?);
    let paths: BTreeSet<&Path> = pa.keys().chain(pb.keys()).copied().collect();
    let mut out = Vec::new();
    for path in paths {
        let (ea, eb) = (pa.get(path), pb.get(path));
        let shown = ea.or(eb).map(|(s, _)| s.to_string()).unwrap_or_default();
        let kind = |attrs: &Vec<(String, String)>| attrs[0].1.clone();
        let changes = match (ea, eb) {
            (Some((_, x)), Some((_, y))) => changed(x, y),
            (Some((_, x)), None) => vec![AttributeChange {
                attribute: "presence".into(),
                a: Some(kind(x)),
                b: None,
            }],
            (None, Some((_, y))) => vec![AttributeChange {
                attribute: "presence".into(),
                a: None,
                b: Some(kind(y)),
            }],
            (None, None) => Vec::new(),
        };
        if !changes.is_empty() {
            out.push(EntryDiff {
                path: shown,
                changes,
            });
        }
    }
    Ok(out)
}

/// The attributes whose values differ, in `a`'s order then `b`'s extra ones.
fn changed(a: &[(String, String)], b: &[(String, String)]) -> Vec<AttributeChange> {
    let bm: BTreeMap<&str, &str> = b.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let am: BTreeMap<&str, &str> = a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out = Vec::new();
    for (k, v) in a {
        let other = bm.get(k.as_str()).copied();
        if other != Some(v.as_str()) {
            out.push(AttributeChange {
                attribute: k.clone(),
                a: Some(v.clone()),
                b: other.map(str::to_owned),
            });
        }
    }
    for (k, v) in b {
        if !am.contains_key(k.as_str()) {
            out.push(AttributeChange {
                attribute: k.clone(),
                a: None,
                b: Some(v.clone()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/ 4096 40755 2 0 0 0 1700000100.0 - - -\n\
/usr 4096 40755 2 0 0 0 1700000100.0 - - -\n\
/usr/a 3 100644 1 0 0 0 1700000100.0 - abc - user.x=1\n\
/usr/l 1 120777 1 0 0 0 1700000100.0 a - -\n";

    #[test]
    fn identical_dumpfiles_have_no_differences() {
        assert_eq!(diff("a", A, "b", A).unwrap(), Vec::new());
    }

    #[test]
    fn each_attribute_is_named() {
        let b = "/ 4096 40755 2 0 0 0 1700000100.0 - - -\n\
/usr 4096 40700 2 0 0 0 1700000200.5 - - -\n\
/usr/a 3 100644 1 1 1 0 1700000100.0 - abd - user.x=2 user.y=3\n\
/usr/l 1 120777 1 0 0 0 1700000100.0 b - -\n\
/usr/new 0 100644 1 0 0 0 1700000100.0 - - -\n";
        let d = diff("a", A, "b", b).unwrap();
        let lines: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "/usr: mode 755 -> 700, mtime 1700000100.0 -> 1700000200.5",
                &format!(
                    "/usr/a: owner 0:0 -> 1:1, content 3 bytes inline sha256:{} -> 3 bytes inline sha256:{}, xattr user.x 1 -> 2, xattr user.y absent -> 3",
                    &hex::encode(Sha256::digest(b"abc"))[..16],
                    &hex::encode(Sha256::digest(b"abd"))[..16]
                ),
                "/usr/l: symlink a -> b",
                "/usr/new: presence absent -> file",
            ]
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        let e = diff("a", A, "other.dump", "/x 0 nonsense\n").unwrap_err();
        assert_eq!(e.source_name, "other.dump");
        assert_eq!(e.line, 1);
        assert!(e.to_string().starts_with("other.dump: line 1: "), "{e}");
    }
}
