//! Streaming tar parser: one layer's uncompressed bytes to a compact list of tree entries.
//!
//! Uses `tar-core` with default limits, the parser composefs-oci 0.9.0 uses, and maps each
//! entry the way composefs-oci's `tar::get_entry` does (`src/tar.rs`, 0.9.0): regular
//! files of at most 64 bytes inline, larger ones as their fs-verity SHA-512 id computed while the
//! bytes stream by; global PAX headers skipped; sparse and unknown entry types rejected. Only
//! metadata, ids and the contents selected by a [`CaptureSet`] are kept, never layer content.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicBool, Ordering};

use composefs::fsverity::FsVerityHasher;
use composefs::tree::{LeafContent, RegularFile, Stat};
use composefs_oci::tar::{TarEntry, TarItem};
use tar_core::EntryType;
use tar_core::parse::{ParseEvent, Parser};

use super::capture::{Blob, BlobWriter, CaptureSet};
use super::path::{check_limits, pax_mtime_nsec, tree_path};
use super::{EntryError, ObjectId};

/// Largest regular file stored inline in the tree (composefs `INLINE_CONTENT_MAX_V0`).
pub const INLINE_MAX: u64 = composefs::INLINE_CONTENT_MAX_V0 as u64;

const BLOCK: usize = 512;
const BUFFER: usize = 256 * 1024;

/// The parsed form of one layer: entries in stream order plus stashed contents.
pub struct ParsedLayer {
    pub entries: Vec<TarEntry<ObjectId>>,
    /// Contents of captured external files, by fs-verity id (shared, so a cached layer can be
    /// applied again without copying them).
    pub stash: Vec<(ObjectId, std::sync::Arc<Blob>)>,
    /// Uncompressed bytes read, including end-of-archive padding.
    pub uncompressed_bytes: u64,
    /// Regular files stored as external objects and their total size.
    pub external_files: u64,
    pub external_bytes: u64,
}

impl ParsedLayer {
    /// A copy to apply again (the tree builder consumes what it applies). Entries are
    /// metadata and fs-verity ids only; stashed contents are shared.
    pub fn duplicate(&self) -> ParsedLayer {
        ParsedLayer {
            entries: self
                .entries
                .iter()
                .map(|e| TarEntry {
                    path: e.path.clone(),
                    stat: e.stat.clone(),
                    item: match &e.item {
                        TarItem::Directory => TarItem::Directory,
                        TarItem::Leaf(content) => TarItem::Leaf(content.clone()),
                        TarItem::Hardlink(target) => TarItem::Hardlink(target.clone()),
                    },
                })
                .collect(),
            stash: self.stash.clone(),
            uncompressed_bytes: self.uncompressed_bytes,
            external_files: self.external_files,
            external_bytes: self.external_bytes,
        }
    }

    /// A rough count of the heap bytes this layer holds (for cache budgets).
    pub fn approximate_size(&self) -> usize {
        self.entries
            .iter()
            .map(|e| {
                let xattrs: usize = e
                    .stat
                    .xattrs
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 48)
                    .sum();
                let content = match &e.item {
                    TarItem::Leaf(LeafContent::Regular(RegularFile::Inline(b))) => b.len(),
                    TarItem::Leaf(LeafContent::Symlink(t)) => t.len(),
                    TarItem::Hardlink(t) => t.len(),
                    _ => 0,
                };
                std::mem::size_of::<TarEntry<ObjectId>>()
                    + e.path.as_os_str().len()
                    + xattrs
                    + content
            })
            .sum()
    }
}

/// A read buffer the tar parser looks into without copying.
struct Input<'r> {
    reader: &'r mut dyn Read,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    total: u64,
}

impl<'r> Input<'r> {
    fn new(reader: &'r mut dyn Read) -> Self {
        Self {
            reader,
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
            total: 0,
        }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Makes at least `n` bytes available; `Ok(false)` if the stream ends first.
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        if self.end - self.start >= n {
            return Ok(true);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < n {
            self.buf.resize(n.next_power_of_two(), 0);
        }
        while self.end < n {
            let got = self.reader.read(&mut self.buf[self.end..])?;
            if got == 0 {
                return Ok(false);
            }
            self.end += got;
            self.total += got as u64;
        }
        Ok(true)
    }

    /// Refills when empty; `Ok(false)` at end of stream.
    fn fill_some(&mut self) -> io::Result<bool> {
        if self.start < self.end {
            return Ok(true);
        }
        self.start = 0;
        self.end = 0;
        self.fill(1)
    }

    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
    }

    /// Feeds the next `n` bytes to `sink`; `Ok(false)` if the stream ends first.
    fn stream(
        &mut self,
        mut n: u64,
        mut sink: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<bool> {
        while n > 0 {
            if !self.fill_some()? {
                return Ok(false);
            }
            let take = (self.end - self.start).min(n as usize);
            sink(&self.buf[self.start..self.start + take])?;
            self.start += take;
            n -= take as u64;
        }
        Ok(true)
    }

    /// Reads to the end of the stream (so trailing bytes are hashed and checked).
    fn drain(&mut self) -> io::Result<()> {
        self.start = 0;
        self.end = 0;
        loop {
            let got = self.reader.read(&mut self.buf)?;
            if got == 0 {
                return Ok(());
            }
            self.total += got as u64;
        }
    }
}

/// Header fields copied out of the parser's borrowed view.
struct Header {
    raw_path: Vec<u8>,
    entry_type: EntryType,
    link_target: Option<Vec<u8>>,
    size: u64,
    stat: Stat,
    dev: Option<(u32, u32)>,
}

fn io_error(e: io::Error) -> EntryError {
    EntryError::layer(e.to_string())
}

/// Parses one layer. `reader` yields the uncompressed tar bytes and fails on corruption or
/// digest mismatch; `cancel` stops the work early when another layer already failed.
pub fn parse_layer(
    reader: &mut dyn Read,
    capture: &CaptureSet,
    cancel: &AtomicBool,
) -> Result<ParsedLayer, EntryError> {
    let mut input = Input::new(reader);
    let mut parser = Parser::with_defaults();
    let mut need = BLOCK;
    let mut out = ParsedLayer {
        entries: Vec::new(),
        stash: Vec::new(),
        uncompressed_bytes: 0,
        external_files: 0,
        external_bytes: 0,
    };
    let mut last_path: Option<String> = None;

    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(EntryError::layer("cancelled"));
        }
        if !input.fill(need).map_err(io_error)? {
            let msg = match &last_path {
                _ if input.available().is_empty() && need == BLOCK => {
                    "tar stream ends without an end-of-archive marker (truncated layer?)"
                        .to_string()
                }
                _ => "tar stream ends inside a header (truncated layer?)".to_string(),
            };
            return Err(match last_path {
                Some(p) => EntryError::at(format!("after {p}"), msg),
                None => EntryError::layer(msg),
            });
        }
        let event = parser
            .parse(input.available())
            .map_err(|e| EntryError::layer(format!("invalid tar header: {e}")).after(&last_path))?;
        let (consumed, header) = match event {
            ParseEvent::NeedData { min_bytes } => {
                need = min_bytes;
                continue;
            }
            ParseEvent::GlobalExtensions { consumed, .. } => {
                input.consume(consumed);
                need = BLOCK;
                continue;
            }
            ParseEvent::End { consumed } => {
                input.consume(consumed);
                break;
            }
            ParseEvent::SparseEntry { entry, .. } => {
                return Err(EntryError::at(
                    String::from_utf8_lossy(&entry.path).into_owned(),
                    "sparse tar entries are not supported",
                ));
            }
            ParseEvent::Entry { consumed, entry } => {
                let stat = Stat {
                    st_mode: entry.mode,
                    st_uid: entry.uid as u32,
                    st_gid: entry.gid as u32,
                    st_mtim_sec: entry.mtime as i64,
                    st_mtim_nsec: entry.pax.map_or(0, pax_mtime_nsec),
                    xattrs: entry
                        .xattrs
                        .iter()
                        .map(|(k, v)| (Box::from(OsStr::from_bytes(k)), Box::from(v.as_ref())))
                        .collect::<BTreeMap<_, _>>(),
                };
                let header = Header {
                    raw_path: entry.path.to_vec(),
                    entry_type: entry.entry_type,
                    link_target: entry.link_target.as_ref().map(|t| t.to_vec()),
                    size: entry.size,
                    stat,
                    dev: entry.dev_major.zip(entry.dev_minor),
                };
                (consumed, header)
            }
        };
        input.consume(consumed);
        need = BLOCK;
        let display = String::from_utf8_lossy(&header.raw_path).into_owned();
        let entry = read_entry(&mut input, header, capture, &mut out)
            .map_err(|msg| EntryError::at(display.clone(), msg))?;
        out.entries.push(entry);
        last_path = Some(display);
    }

    input.drain().map_err(io_error)?;
    out.uncompressed_bytes = input.total;
    Ok(out)
}

/// Consumes one entry's content and padding and builds its tree entry.
fn read_entry(
    input: &mut Input<'_>,
    header: Header,
    capture: &CaptureSet,
    out: &mut ParsedLayer,
) -> Result<TarEntry<ObjectId>, String> {
    let path = tree_path(&header.raw_path)?;
    // Before anything else looks at the path: the layer stops here, not after parsing the
    // rest of a deep chain (whose size grows with the square of its depth).
    check_limits(&path)?;
    let size = header.size;
    let truncated = || "tar stream ends inside this entry's content (truncated layer?)".to_string();

    let item = match header.entry_type {
        EntryType::Regular | EntryType::Continuous if size > INLINE_MAX => {
            let mut hasher = FsVerityHasher::<ObjectId>::new();
            let mut keep = capture
                .matches(path.as_os_str().as_bytes())
                .then(|| BlobWriter::new(size));
            let complete = input
                .stream(size, |chunk| {
                    hasher.write_all(chunk)?;
                    if let Some(k) = keep.as_mut() {
                        k.write(chunk)?;
                    }
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
            if !complete {
                return Err(truncated());
            }
            let id = hasher.digest();
            if let Some(k) = keep {
                out.stash.push((
                    id.clone(),
                    std::sync::Arc::new(k.finish().map_err(|e| e.to_string())?),
                ));
            }
            out.external_files += 1;
            out.external_bytes += size;
            TarItem::Leaf(LeafContent::Regular(RegularFile::External(id, size)))
        }
        EntryType::Regular | EntryType::Continuous => {
            let mut data = Vec::with_capacity(size as usize);
            let complete = input
                .stream(size, |chunk| {
                    data.extend_from_slice(chunk);
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
            if !complete {
                return Err(truncated());
            }
            TarItem::Leaf(LeafContent::Regular(RegularFile::Inline(data.into())))
        }
        other => {
            // Non-file entries may carry content; composefs-oci ignores it.
            if !input.stream(size, |_| Ok(())).map_err(|e| e.to_string())? {
                return Err(truncated());
            }
            match other {
                EntryType::Directory => TarItem::Directory,
                EntryType::Link => {
                    let target = header.link_target.unwrap_or_default();
                    let target = tree_path(&target).map_err(|e| format!("hardlink target {e}"))?;
                    TarItem::Hardlink(target.into_os_string())
                }
                EntryType::Symlink => TarItem::Leaf(LeafContent::Symlink(
                    OsString::from_vec(header.link_target.unwrap_or_default()).into_boxed_os_str(),
                )),
                EntryType::Block | EntryType::Char => {
                    let (major, minor) = header.dev.ok_or("device entry without device numbers")?;
                    let dev = rustix::fs::makedev(major, minor);
                    TarItem::Leaf(if other == EntryType::Block {
                        LeafContent::BlockDevice(dev)
                    } else {
                        LeafContent::CharacterDevice(dev)
                    })
                }
                EntryType::Fifo => TarItem::Leaf(LeafContent::Fifo),
                t => return Err(format!("unsupported tar entry type {t:?}")),
            }
        }
    };
    let padding = size.next_multiple_of(BLOCK as u64) - size;
    if !input
        .stream(padding, |_| Ok(()))
        .map_err(|e| e.to_string())?
    {
        return Err(truncated());
    }
    Ok(TarEntry {
        path,
        stat: header.stat,
        item,
    })
}
