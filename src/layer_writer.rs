//! The sealed image's new top layer: a reproducible tar (fixed mtime, numeric ids, sorted as
//! given, no PAX times) compressed with gzip or zstd or left as is, written to any `Write` while
//! its diff_id, blob digest and size are computed (OCI image-spec `layer.md`, whiteouts as
//! `.wh.NAME` files). The blob is produced once and kept in memory for the upload: the layer is
//! mostly the UKI (tens of MB), and a kept blob can be sent again when an upload is retried.

use crate::compression::Compression;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::sync::Arc;

/// One tar entry of the new layer.
#[derive(Clone, Debug)]
pub enum LayerEntry {
    /// `mtime_nsec` other than 0 is written as a PAX `mtime` record (seconds are the layer's).
    Directory {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime_nsec: u32,
    },
    File {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
        content: Arc<[u8]>,
    },
    /// Removes `dir/name` from the layers below: a `dir/.wh.name` entry.
    Whiteout { dir: String, name: String },
}

impl LayerEntry {
    /// The path as written in the tar (relative, directories with a trailing `/`).
    pub fn tar_path(&self) -> String {
        match self {
            LayerEntry::Directory { path, .. } => format!("{}/", path.trim_matches('/')),
            LayerEntry::File { path, .. } => path.trim_start_matches('/').to_owned(),
            LayerEntry::Whiteout { dir, name } => {
                let dir = dir.trim_matches('/');
                if dir.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{dir}/.wh.{name}")
                }
            }
        }
    }
}

/// The new layer's entries and the one mtime they all carry.
#[derive(Clone, Debug)]
pub struct LayerContents {
    pub entries: Vec<LayerEntry>,
    /// Whole seconds (SOURCE_DATE_EPOCH); a whole-second `/boot` mtime keeps the digest stable
    /// across composefs-rs versions (composefs-boot `empty_toplevel_dirs`, 0.9.0 vs 0.9.4).
    pub mtime: u64,
}

/// What writing a layer produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenLayer {
    /// sha256 of the uncompressed tar: the config's diff_id.
    pub diff_id: String,
    /// sha256 of the compressed blob.
    pub digest: String,
    pub size: u64,
    pub uncompressed_size: u64,
}

impl LayerContents {
    /// Writes the tar stream to `out`.
    pub fn write_tar(&self, out: impl Write) -> io::Result<()> {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Deterministic);
        for entry in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_mtime(self.mtime);
            header.set_username("")?;
            header.set_groupname("")?;
            let path = entry.tar_path();
            let data: &[u8] = match entry {
                LayerEntry::Directory {
                    mode,
                    uid,
                    gid,
                    mtime_nsec,
                    ..
                } => {
                    if *mtime_nsec != 0 {
                        let value = format!("{}.{:09}", self.mtime, mtime_nsec);
                        builder.append_pax_extensions([("mtime", value.as_bytes())])?;
                    }
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_uid(*uid);
                    header.set_gid(*gid);
                    &[]
                }
                LayerEntry::File {
                    mode,
                    uid,
                    gid,
                    content,
                    ..
                } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_uid(*uid);
                    header.set_gid(*gid);
                    content
                }
                LayerEntry::Whiteout { .. } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(0o644);
                    header.set_uid(0);
                    header.set_gid(0);
                    &[]
                }
            };
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, &path, data)?;
        }
        builder.into_inner()?.flush()
    }

    /// The uncompressed tar in memory (for the digest of the tree; callers leave out large
    /// files whose place is `/boot`, which the boot transform empties anyway).
    pub fn tar_bytes(&self) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write_tar(&mut v)?;
        Ok(v)
    }

    /// Compresses the tar into `out`, returning its digests. Deterministic: same contents,
    /// same bytes (gzip header without name or time; zstd without checksum options changing).
    pub fn write_blob<W: Write + Send>(
        &self,
        compression: Compression,
        out: W,
    ) -> io::Result<WrittenLayer> {
        // Two stages overlapped on two threads: tar + diff_id hash here, compression + blob
        // hash in the other, 1 MiB chunks in between.
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(4);
        std::thread::scope(|scope| {
            let compressor = scope.spawn(move || -> io::Result<(String, u64)> {
                let mut blob = HashingWriter::new(out);
                match compression {
                    Compression::Gzip => {
                        let mut enc = flate2::GzBuilder::new()
                            .mtime(0)
                            .operating_system(255)
                            .write(&mut blob, flate2::Compression::new(6));
                        for chunk in rx {
                            enc.write_all(&chunk)?;
                        }
                        enc.finish()?;
                    }
                    Compression::Zstd => {
                        let mut enc = zstd::Encoder::new(&mut blob, 3)?;
                        for chunk in rx {
                            enc.write_all(&chunk)?;
                        }
                        enc.finish()?;
                    }
                    Compression::None => {
                        for chunk in rx {
                            blob.write_all(&chunk)?;
                        }
                    }
                }
                blob.flush()?;
                Ok((hex::encode(blob.hasher.finalize()), blob.count))
            });
            let mut tar_hash = Sha256::new();
            let mut tar_size = 0u64;
            let tar_result = {
                let mut chunks = ChunkSender {
                    buf: Vec::with_capacity(TAR_CHUNK),
                    tx,
                    hasher: &mut tar_hash,
                    count: &mut tar_size,
                };
                self.write_tar(&mut chunks).and_then(|()| chunks.send())
            };
            let (blob_hex, size) = compressor
                .join()
                .map_err(|_| io::Error::other("layer compression thread panicked"))??;
            tar_result?;
            Ok(WrittenLayer {
                diff_id: format!("sha256:{}", hex::encode(tar_hash.finalize())),
                digest: format!("sha256:{blob_hex}"),
                size,
                uncompressed_size: tar_size,
            })
        })
    }

    /// Digests and size without keeping the blob.
    pub fn describe(&self, compression: Compression) -> io::Result<WrittenLayer> {
        self.write_blob(compression, io::sink())
    }

    /// The blob in memory with its digests: the one compression pass of a seal.
    pub fn compress(&self, compression: Compression) -> io::Result<(WrittenLayer, Bytes)> {
        let content: usize = self
            .entries
            .iter()
            .map(|e| match e {
                LayerEntry::File { content, .. } => content.len() + 1024,
                _ => 1024,
            })
            .sum();
        let mut blob = Vec::with_capacity(content + content / 64 + 4096);
        let written = self.write_blob(compression, &mut blob)?;
        Ok((written, Bytes::from(blob)))
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes of the tar in chunks between the two stages of `write_blob`.
const TAR_CHUNK: usize = 1 << 20;

/// Hashes and counts the tar as it is written and hands it on in chunks.
struct ChunkSender<'a> {
    buf: Vec<u8>,
    tx: crossbeam_channel::Sender<Vec<u8>>,
    hasher: &'a mut Sha256,
    count: &'a mut u64,
}

impl ChunkSender<'_> {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(TAR_CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "layer compression stopped"))
    }
}

impl Write for ChunkSender<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hasher.update(data);
        *self.count += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= TAR_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::sha256_digest;

    fn sample() -> LayerContents {
        LayerContents {
            mtime: 1_700_000_000,
            entries: vec![
                LayerEntry::Directory {
                    path: "boot".into(),
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime_nsec: 0,
                },
                LayerEntry::Directory {
                    path: "boot/EFI".into(),
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime_nsec: 0,
                },
                LayerEntry::File {
                    path: "boot/EFI/Linux/k.efi".into(),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    content: Arc::from(vec![7u8; 100_000]),
                },
                LayerEntry::Whiteout {
                    dir: "usr/lib/modules/6.1".into(),
                    name: "vmlinuz".into(),
                },
            ],
        }
    }

    #[test]
    fn reproducible_and_digests_match_the_bytes() {
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let mut a = Vec::new();
            let wa = sample().write_blob(c, &mut a).unwrap();
            let mut b = Vec::new();
            let wb = sample().write_blob(c, &mut b).unwrap();
            assert_eq!(a, b);
            assert_eq!(wa, wb);
            assert_eq!(wa.digest, sha256_digest(&a));
            assert_eq!(wa.size, a.len() as u64);
            assert_eq!(wa.diff_id, sha256_digest(&sample().tar_bytes().unwrap()));
            assert_eq!(sample().describe(c).unwrap(), wa);
            let (wc, blob) = sample().compress(c).unwrap();
            assert_eq!((wc, &blob[..]), (wa, &a[..]));
        }
    }

    #[test]
    fn gnu_tar_lists_the_entries() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("l.tar");
        std::fs::write(&f, sample().tar_bytes().unwrap()).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&f)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = text
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "boot/",
                "boot/EFI/",
                "boot/EFI/Linux/k.efi",
                "usr/lib/modules/6.1/.wh.vmlinuz"
            ]
        );
        assert!(text.contains("0/0"), "{text}");
        assert!(text.contains("2023-11-14"), "{text}");
    }
}
