//! File contents kept while layers stream by, and how callers read them back by path.
//!
//! The tree only keeps fs-verity ids of files larger than 64 bytes, never their bytes. Some
//! later steps need real contents: the SELinux policy for labelling, and for sealing the kernel,
//! initramfs, os-release, kargs.d and the systemd-boot stub. A [`CaptureSet`] names them with
//! path globs; matching regular files are stashed by object id while their layer streams (in
//! memory, or in an unlinked temporary file when large) and, once the tree is final, looked up
//! through the tree with symlinks resolved inside the image ([`CapturedFiles`]).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use composefs::generic_tree::LeafContent;
use composefs::tree::{Directory, FileSystem, Inode, RegularFile};

use super::ObjectId;

/// Globs over absolute image paths: `*` matches within one component, `**` matches any number
/// of components (at least one when it ends the pattern). Example: `/usr/lib/modules/*/vmlinuz`, `/usr/lib/bootc/kargs.d/*.toml`.
#[derive(Debug, Clone, Default)]
pub struct CaptureSet {
    patterns: Vec<Vec<Vec<u8>>>,
}

impl CaptureSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pattern (builder style).
    pub fn with(mut self, pattern: &str) -> Self {
        self.add(pattern);
        self
    }

    pub fn add(&mut self, pattern: &str) {
        self.patterns
            .push(components(pattern.as_bytes()).map(<[u8]>::to_vec).collect());
    }

    /// Merges another set into this one.
    pub fn extend(&mut self, other: &CaptureSet) {
        self.patterns.extend(other.patterns.iter().cloned());
    }

    /// The files composefs-boot's labelling reads: `/etc/selinux/config` and the
    /// `file_contexts*` files of the configured policy (composefs-boot 0.9.0 `src/selabel.rs`).
    /// The policy directory is whatever `SELINUXTYPE` names, so any depth below /etc/selinux
    /// is taken.
    pub fn selinux_policy() -> Self {
        Self::new()
            .with("/etc/selinux/config")
            .with("/etc/selinux/**/contexts/files/file_contexts*")
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the absolute tree path `path` is selected.
    pub fn matches(&self, path: &[u8]) -> bool {
        let parts: Vec<&[u8]> = components(path).collect();
        self.patterns.iter().any(|p| match_parts(p, &parts))
    }
}

/// Path components without empty and `.` ones (the tree ignores those too).
fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

fn match_parts(pattern: &[Vec<u8>], parts: &[&[u8]]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        // A final `**` needs at least one component, an inner one matches zero or more.
        Some((p, rest)) if p == b"**" => {
            if rest.is_empty() {
                !parts.is_empty()
            } else {
                (0..=parts.len()).any(|skip| match_parts(rest, &parts[skip..]))
            }
        }
        Some((p, rest)) => parts
            .split_first()
            .is_some_and(|(c, crest)| glob(p, c) && match_parts(rest, crest)),
    }
}

/// `*` wildcard match of one component.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.iter().position(|&b| b == b'*') {
        None => pattern == name,
        Some(star) => {
            let (head, tail) = (&pattern[..star], &pattern[star + 1..]);
            name.starts_with(head) && (head.len()..=name.len()).any(|i| glob(tail, &name[i..]))
        }
    }
}

/// Contents larger than this go to an unlinked temporary file instead of memory.
const SPILL_THRESHOLD: usize = 4 * 1024 * 1024;

/// The bytes of one captured file.
#[derive(Debug)]
pub enum Blob {
    Memory(Vec<u8>),
    Spilled { file: File, len: u64 },
}

impl Blob {
    pub fn len(&self) -> u64 {
        match self {
            Blob::Memory(v) => v.len() as u64,
            Blob::Spilled { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader over the whole content (positional reads, so readers do not interfere).
    pub fn reader(&self) -> Box<dyn Read + '_> {
        match self {
            Blob::Memory(v) => Box::new(&v[..]),
            Blob::Spilled { file, len } => Box::new(PositionalReader {
                file,
                pos: 0,
                len: *len,
            }),
        }
    }

    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len() as usize);
        self.reader().read_to_end(&mut out)?;
        Ok(out)
    }
}

struct PositionalReader<'a> {
    file: &'a File,
    pos: u64,
    len: u64,
}

impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.len - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Collects one file's content while it streams, spilling to a temp file when large.
pub(crate) struct BlobWriter {
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
}

impl BlobWriter {
    pub(crate) fn new(size_hint: u64) -> Self {
        Self {
            memory: Vec::with_capacity((size_hint as usize).min(SPILL_THRESHOLD)),
            file: None,
            len: 0,
        }
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.len += data.len() as u64;
        if let Some(file) = &mut self.file {
            return file.write_all(data);
        }
        if self.memory.len() + data.len() <= SPILL_THRESHOLD {
            self.memory.extend_from_slice(data);
            return Ok(());
        }
        let mut file = tempfile::tempfile()?;
        file.write_all(&self.memory)?;
        file.write_all(data)?;
        self.memory = Vec::new();
        self.file = Some(file);
        Ok(())
    }

    pub(crate) fn finish(self) -> io::Result<Blob> {
        Ok(match self.file {
            None => Blob::Memory(self.memory),
            Some(mut file) => {
                file.flush()?;
                file.rewind()?;
                Blob::Spilled {
                    file,
                    len: self.len,
                }
            }
        })
    }
}

/// Stashed contents of external files, by fs-verity id.
pub type Stash = HashMap<ObjectId, Arc<Blob>>;

/// One captured path of the final tree.
#[derive(Debug, Clone)]
pub struct CapturedFile {
    /// The path after resolving symlinks inside the image.
    pub resolved: String,
    /// The content, or why it is not available.
    pub content: Result<Arc<Blob>, String>,
}

/// The captured files of the final tree (after all layers, before the OCI/boot transforms),
/// keyed by the matching path as it appears in the image.
#[derive(Debug, Clone, Default)]
pub struct CapturedFiles {
    files: BTreeMap<String, CapturedFile>,
}

impl CapturedFiles {
    /// Finds every path of `fs` matched by `set`, following symlinks inside the image.
    pub(crate) fn collect(fs: &FileSystem<ObjectId>, set: &CaptureSet, stash: &Stash) -> Self {
        let mut files = BTreeMap::new();
        for pattern in &set.patterns {
            walk_pattern(fs, &fs.root, String::new(), pattern, stash, &mut files);
        }
        Self { files }
    }

    /// All captured paths, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    pub fn get(&self, path: &str) -> Option<&CapturedFile> {
        self.files.get(path)
    }

    /// The content of `path`, or a one-line reason why it is not available.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        let one_line = |e: String| crate::text::escape_controls(&e);
        let file = self.files.get(path).ok_or_else(|| {
            one_line(format!(
                "{path}: not in the image or not requested for capture"
            ))
        })?;
        let blob = file
            .content
            .as_ref()
            .map_err(|e| one_line(format!("{path}: {e}")))?;
        blob.to_vec().map_err(|e| one_line(format!("{path}: {e}")))
    }

    /// Captured paths matching a glob (same syntax as [`CaptureSet`]).
    pub fn matching(&self, pattern: &str) -> Vec<&str> {
        let set = CaptureSet::new().with(pattern);
        self.paths().filter(|p| set.matches(p.as_bytes())).collect()
    }
}

fn walk_pattern(
    fs: &FileSystem<ObjectId>,
    dir: &Directory<ObjectId>,
    prefix: String,
    pattern: &[Vec<u8>],
    stash: &Stash,
    out: &mut BTreeMap<String, CapturedFile>,
) {
    let Some((first, rest)) = pattern.split_first() else {
        return;
    };
    if first == b"**" {
        if !rest.is_empty() {
            walk_pattern(fs, dir, prefix.clone(), rest, stash, out);
        }
        for (name, inode) in dir.sorted_entries() {
            let path = format!("{prefix}/{}", name.to_string_lossy());
            match inode {
                // Only real directories: following symlinks under `**` could loop forever.
                Inode::Directory(sub) => walk_pattern(fs, sub, path, pattern, stash, out),
                Inode::Leaf(..) if rest.is_empty() => {
                    if let Some(file) = capture_path(fs, &path, stash) {
                        out.insert(path, file);
                    }
                }
                Inode::Leaf(..) => {}
            }
        }
        return;
    }
    for (name, _) in dir.sorted_entries() {
        if !glob(first, name.as_bytes()) {
            continue;
        }
        let path = format!("{prefix}/{}", name.to_string_lossy());
        if rest.is_empty() {
            if let Some(file) = capture_path(fs, &path, stash) {
                out.insert(path, file);
            }
        } else if let Ok(Resolved::Dir(sub)) = resolve(fs, &path) {
            walk_pattern(fs, sub, path, rest, stash, out);
        }
    }
}

/// The capture record for a path that names a (possibly symlinked) regular file; `None` for
/// directories and other file types.
fn capture_path(fs: &FileSystem<ObjectId>, path: &str, stash: &Stash) -> Option<CapturedFile> {
    match resolve(fs, path) {
        Ok(Resolved::Leaf(id, resolved)) => match &fs.leaf(id).content {
            LeafContent::Regular(RegularFile::Inline(data)) => Some(CapturedFile {
                resolved,
                content: Ok(Arc::new(Blob::Memory(data.to_vec()))),
            }),
            LeafContent::Regular(RegularFile::External(oid, _)) => {
                let content = stash.get(oid).cloned().ok_or_else(|| {
                    format!(
                        "{resolved} was not captured while streaming (add it to the CaptureSet)"
                    )
                });
                Some(CapturedFile { resolved, content })
            }
            _ => None,
        },
        Ok(Resolved::Dir(_)) => None,
        Err(e) => Some(CapturedFile {
            resolved: path.to_string(),
            content: Err(e),
        }),
    }
}

enum Resolved<'a> {
    Dir(&'a Directory<ObjectId>),
    Leaf(composefs::generic_tree::LeafId, String),
}

/// Resolves `path` inside the image: absolute symlink targets start at the image root,
/// relative ones at the link's directory, `..` stops at the root (as the kernel does in a chroot).
fn resolve<'a>(fs: &'a FileSystem<ObjectId>, path: &str) -> Result<Resolved<'a>, String> {
    let mut pending: Vec<Vec<u8>> = components(path.as_bytes())
        .rev()
        .map(<[u8]>::to_vec)
        .collect();
    let mut stack: Vec<(&Directory<ObjectId>, Vec<u8>)> = Vec::new();
    let mut hops = 0;
    let current_path = |stack: &Vec<(&Directory<ObjectId>, Vec<u8>)>| {
        let mut s = String::new();
        for (_, name) in stack {
            s.push('/');
            s.push_str(&String::from_utf8_lossy(name));
        }
        if s.is_empty() { "/".to_string() } else { s }
    };
    while let Some(name) = pending.pop() {
        if name == b".." {
            stack.pop();
            continue;
        }
        let dir = stack.last().map_or(&fs.root, |(d, _)| *d);
        let Some(inode) = dir.lookup(OsStr::from_bytes(&name)) else {
            return Err(format!(
                "{path}: {}/{} does not exist in the image",
                current_path(&stack).trim_end_matches('/'),
                String::from_utf8_lossy(&name)
            ));
        };
        match inode {
            Inode::Directory(sub) => stack.push((sub, name)),
            Inode::Leaf(id, _) => match &fs.leaf(*id).content {
                LeafContent::Symlink(target) => {
                    hops += 1;
                    if hops > 40 {
                        return Err(format!("{path}: too many levels of symbolic links"));
                    }
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        stack.clear();
                    }
                    pending.extend(components(target).rev().map(<[u8]>::to_vec));
                }
                _ if pending.is_empty() => {
                    let mut p = current_path(&stack);
                    if !p.ends_with('/') {
                        p.push('/');
                    }
                    p.push_str(&String::from_utf8_lossy(&name));
                    return Ok(Resolved::Leaf(*id, p));
                }
                _ => {
                    return Err(format!(
                        "{path}: {} is not a directory",
                        String::from_utf8_lossy(&name)
                    ));
                }
            },
        }
    }
    let dir = stack.last().map_or(&fs.root, |(d, _)| *d);
    Ok(Resolved::Dir(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let set = CaptureSet::new()
            .with("/usr/lib/modules/*/vmlinuz")
            .with("/etc/selinux/**")
            .with("/usr/lib/bootc/kargs.d/*.toml");
        assert!(set.matches(b"/usr/lib/modules/6.1.0-1-amd64/vmlinuz"));
        assert!(set.matches(b"/./usr/lib/modules/x/vmlinuz"));
        assert!(!set.matches(b"/usr/lib/modules/x/y/vmlinuz"));
        assert!(set.matches(b"/etc/selinux/targeted/contexts/files/file_contexts"));
        assert!(!set.matches(b"/etc/selinux"));
        assert!(set.matches(b"/usr/lib/bootc/kargs.d/10-a.toml"));
        assert!(!set.matches(b"/usr/lib/bootc/kargs.d/10-a.conf"));
        let selinux = CaptureSet::selinux_policy();
        assert!(selinux.matches(b"/etc/selinux/x/contexts/files/file_contexts.subs_dist"));
        assert!(selinux.matches(b"/etc/selinux/a/b/contexts/files/file_contexts"));
        assert!(!selinux.matches(b"/etc/selinux/x/policy/policy.33"));
        let mid = CaptureSet::new().with("/usr/**/vmlinuz");
        assert!(mid.matches(b"/usr/vmlinuz"));
        assert!(mid.matches(b"/usr/lib/modules/k/vmlinuz"));
        assert!(!mid.matches(b"/usr/lib/modules/k/vmlinuz.old"));
    }

    #[test]
    fn blob_writer_spills() {
        let mut w = BlobWriter::new(0);
        let chunk = vec![3u8; 1024 * 1024];
        for _ in 0..6 {
            w.write(&chunk).unwrap();
        }
        let blob = w.finish().unwrap();
        assert!(matches!(blob, Blob::Spilled { .. }));
        assert_eq!(blob.len(), 6 * 1024 * 1024);
        assert_eq!(blob.to_vec().unwrap(), vec![3u8; 6 * 1024 * 1024]);
    }
}
