//! Builds tar layers and OCI image layouts for tests, programmatically.
//!
//! [`TarLayer`] writes any tar entry the digest must handle (PAX paths and fractional mtimes,
//! `SCHILY.xattr.*`, GNU long names, devices, fifos, hardlinks, whiteouts, raw malformed
//! headers). [`OciImage`] compresses layers (gzip, multi-member gzip, zstd, multi-frame zstd with
//! skippable frames, none), computes diff_ids, writes config, manifest, `index.json` and
//! `oci-layout`. The result can be pushed anywhere with `skopeo copy oci:DIR:TAG ...`.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const MTIME: u64 = 1_700_000_000;

/// What kind of tar entry to write.
#[derive(Clone, Debug)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    Hardlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
    /// GNU sparse ('S') entry with the given data bytes.
    Sparse(Vec<u8>),
}

/// One tar entry with its metadata.
#[derive(Clone, Debug)]
pub struct E {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub pax: Vec<(String, Vec<u8>)>,
    /// Write `path` bytes straight into the header (bypasses the tar crate's `..` checks).
    pub raw: bool,
}

impl E {
    fn new(path: &str, kind: Kind, mode: u32) -> Self {
        Self {
            path: path.to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
            pax: Vec::new(),
            raw: false,
        }
    }
    pub fn dir(path: &str) -> Self {
        Self::new(path, Kind::Dir, 0o755)
    }
    pub fn file(path: &str, content: impl Into<Vec<u8>>) -> Self {
        Self::new(path, Kind::File(content.into()), 0o644)
    }
    pub fn symlink(path: &str, target: &str) -> Self {
        Self::new(path, Kind::Symlink(target.to_string()), 0o777)
    }
    pub fn hardlink(path: &str, target: &str) -> Self {
        Self::new(path, Kind::Hardlink(target.to_string()), 0o644)
    }
    pub fn chardev(path: &str, major: u32, minor: u32) -> Self {
        Self::new(path, Kind::Char(major, minor), 0o666)
    }
    pub fn blockdev(path: &str, major: u32, minor: u32) -> Self {
        Self::new(path, Kind::Block(major, minor), 0o660)
    }
    pub fn fifo(path: &str) -> Self {
        Self::new(path, Kind::Fifo, 0o644)
    }
    pub fn sparse(path: &str, data: impl Into<Vec<u8>>) -> Self {
        Self::new(path, Kind::Sparse(data.into()), 0o644)
    }
    /// `.wh.NAME` next to `path`'s file name.
    pub fn whiteout(path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let p = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        Self::file(&p, Vec::new())
    }
    /// The opaque marker `DIR/.wh..wh..opq`.
    pub fn opaque(dir: &str) -> Self {
        Self::file(&format!("{dir}/.wh..wh..opq"), Vec::new())
    }
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, mtime: u64) -> Self {
        self.mtime = mtime;
        self
    }
    /// A PAX `mtime` record such as "1700000600.25".
    pub fn pax_mtime(self, value: &str) -> Self {
        self.pax("mtime", value.as_bytes())
    }
    pub fn xattr(self, name: &str, value: &[u8]) -> Self {
        self.pax(&format!("SCHILY.xattr.{name}"), value)
    }
    pub fn pax(mut self, key: &str, value: &[u8]) -> Self {
        self.pax.push((key.to_string(), value.to_vec()));
        self
    }
    /// Puts the real path in a PAX `path` record and a placeholder in the header.
    pub fn pax_path(mut self) -> Self {
        let real = self.path.clone();
        self.path = "pax-placeholder".to_string();
        self.pax("path", real.as_bytes())
    }
    pub fn raw(mut self) -> Self {
        self.raw = true;
        self
    }
}

/// An uncompressed tar layer under construction.
pub struct TarLayer {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for TarLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TarLayer {
    pub fn new() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    pub fn with(entries: impl IntoIterator<Item = E>) -> Vec<u8> {
        let mut t = Self::new();
        for e in entries {
            t.add(e);
        }
        t.finish()
    }

    pub fn add(&mut self, e: E) -> &mut Self {
        if !e.pax.is_empty() {
            self.builder
                .append_pax_extensions(e.pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(0);
        let mut data: Vec<u8> = Vec::new();
        let mut link: Option<&str> = None;
        match &e.kind {
            Kind::Dir => h.set_entry_type(tar::EntryType::Directory),
            Kind::File(c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(c.len() as u64);
                data = c.clone();
            }
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                link = Some(t);
            }
            Kind::Hardlink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                link = Some(t);
            }
            Kind::Char(ma, mi) | Kind::Block(ma, mi) => {
                h.set_entry_type(if matches!(e.kind, Kind::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                h.set_device_major(*ma).unwrap();
                h.set_device_minor(*mi).unwrap();
            }
            Kind::Fifo => h.set_entry_type(tar::EntryType::Fifo),
            Kind::Sparse(c) => {
                h.set_entry_type(tar::EntryType::GNUSparse);
                h.set_size(c.len() as u64);
                if let Some(gnu) = h.as_gnu_mut() {
                    gnu.set_real_size(c.len() as u64);
                }
                data = c.clone();
            }
        }
        if e.raw {
            let name = &mut h.as_old_mut().name;
            name.fill(0);
            name[..e.path.len()].copy_from_slice(e.path.as_bytes());
            if let Some(l) = link {
                let ln = &mut h.as_old_mut().linkname;
                ln.fill(0);
                ln[..l.len()].copy_from_slice(l.as_bytes());
            }
            h.set_cksum();
            self.builder.append(&h, &data[..]).unwrap();
        } else if let Some(l) = link {
            self.builder.append_link(&mut h, &e.path, l).unwrap();
        } else {
            self.builder
                .append_data(&mut h, &e.path, &data[..])
                .unwrap();
        }
        self
    }

    /// Appends raw bytes (e.g. a hand-made header).
    pub fn raw_bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.builder.get_mut().extend_from_slice(bytes);
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    /// Two gzip members, split in the middle.
    GzipMulti,
    Zstd,
    /// Two zstd frames with a skippable frame between them.
    ZstdMulti,
}

impl Compression {
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip | Compression::GzipMulti => {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            }
            Compression::Zstd | Compression::ZstdMulti => {
                "application/vnd.oci.image.layer.v1.tar+zstd"
            }
        }
    }

    /// Compresses `tar` into `out`.
    pub fn compress(self, tar: &[u8], out: &mut dyn Write) -> io::Result<()> {
        let gz = |data: &[u8], out: &mut dyn Write| -> io::Result<()> {
            let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            e.write_all(data)?;
            e.finish()?;
            Ok(())
        };
        let zst = |data: &[u8], out: &mut dyn Write| -> io::Result<()> {
            let mut e = zstd::Encoder::new(out, 3)?;
            e.write_all(data)?;
            e.finish()?;
            Ok(())
        };
        let half = tar.len() / 2;
        match self {
            Compression::None => out.write_all(tar),
            Compression::Gzip => gz(tar, out),
            Compression::GzipMulti => {
                gz(&tar[..half], out)?;
                gz(&tar[half..], out)
            }
            Compression::Zstd => zst(tar, out),
            Compression::ZstdMulti => {
                zst(&tar[..half], out)?;
                out.write_all(&0x184D_2A53u32.to_le_bytes())?;
                out.write_all(&3u32.to_le_bytes())?;
                out.write_all(b"pad")?;
                zst(&tar[half..], out)
            }
        }
    }
}

/// A compressor writing into a borrowed sink, finished explicitly.
pub enum Encoder<'w> {
    None(&'w mut dyn Write),
    Gzip(flate2::write::GzEncoder<&'w mut dyn Write>),
    Zstd(zstd::Encoder<'static, &'w mut dyn Write>),
}

impl Write for Encoder<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

impl Encoder<'_> {
    pub fn finish(self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(w) => w.finish().map(drop),
            Encoder::Zstd(w) => w.finish().map(drop),
        }
    }
}

impl Compression {
    /// A streaming compressor (single member/frame) for `None`, `Gzip` and `Zstd`.
    pub fn encoder<'w>(self, out: &'w mut dyn Write) -> io::Result<Encoder<'w>> {
        Ok(match self {
            Compression::None => Encoder::None(out),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::fast(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::Encoder::new(out, 1)?),
            other => panic!("no streaming encoder for {other:?}"),
        })
    }
}

/// Hashes what passes through to `inner` (the uncompressed tar, for its diff_id).
struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A layer of an image to be written.
pub struct LayerSpec {
    pub tar: Vec<u8>,
    pub compression: Compression,
    /// Overrides the media type written into the manifest.
    pub media_type: Option<String>,
}

/// A layer as written.
#[derive(Clone, Debug)]
pub struct BuiltLayer {
    pub digest: String,
    pub media_type: String,
    pub diff_id: String,
    pub size: u64,
    pub path: PathBuf,
}

/// An OCI layout directory holding one tagged image.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub dir: PathBuf,
    pub tag: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layers: Vec<BuiltLayer>,
}

impl BuiltImage {
    /// Reads back an image written by [`OciImage::write`].
    pub fn load(dir: &Path, tag: &str) -> Self {
        let json = |p: PathBuf| -> serde_json::Value {
            serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
        };
        let blob = |d: &str| {
            dir.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:"))
        };
        let index = json(dir.join("index.json"));
        let desc = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap();
        let manifest_digest = desc["digest"].as_str().unwrap().to_string();
        let manifest = json(blob(&manifest_digest));
        let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
        let config = json(blob(&config_digest));
        let layers = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
            .map(|(l, d)| {
                let digest = l["digest"].as_str().unwrap().to_string();
                BuiltLayer {
                    path: blob(&digest),
                    digest,
                    media_type: l["mediaType"].as_str().unwrap().to_string(),
                    diff_id: d.as_str().unwrap().to_string(),
                    size: l["size"].as_u64().unwrap(),
                }
            })
            .collect();
        Self {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
            manifest_digest,
            config_digest,
            layers,
        }
    }

    /// `oci:DIR:TAG`, the reference skopeo and composefs-oci understand.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }
}

/// Rewrites `dir`'s index.json to name every one of `images` (written into `dir` by
/// [`OciImage::write_metadata`], which leaves only the last tag in the index).
pub fn write_index(dir: &Path, images: &[&BuiltImage]) {
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|img| {
            let blob = dir
                .join("blobs/sha256")
                .join(img.manifest_digest.trim_start_matches("sha256:"));
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": img.manifest_digest, "size": fs::metadata(blob).unwrap().len(),
                "annotations": {"org.opencontainers.image.ref.name": img.tag}})
        })
        .collect();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// An image to write as an OCI layout.
pub struct OciImage {
    pub layers: Vec<LayerSpec>,
    pub architecture: String,
    pub os: String,
}

impl Default for OciImage {
    fn default() -> Self {
        Self::new()
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Writes `data` as a blob, returning its digest and size.
pub fn write_blob(dir: &Path, data: &[u8]) -> (String, u64) {
    let hex = sha256_hex(data);
    fs::write(dir.join("blobs/sha256").join(&hex), data).unwrap();
    (format!("sha256:{hex}"), data.len() as u64)
}

/// A writer that hashes what it writes to a file, for streaming large blobs.
struct HashingFile {
    file: io::BufWriter<fs::File>,
    hash: Sha256,
    size: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl OciImage {
    pub fn new() -> Self {
        Self {
            layers: Vec::new(),
            architecture: "amd64".into(),
            os: "linux".into(),
        }
    }

    pub fn layer(mut self, tar: Vec<u8>, compression: Compression) -> Self {
        self.layers.push(LayerSpec {
            tar,
            compression,
            media_type: None,
        });
        self
    }

    pub fn layer_with_media_type(
        mut self,
        tar: Vec<u8>,
        compression: Compression,
        mt: &str,
    ) -> Self {
        self.layers.push(LayerSpec {
            tar,
            compression,
            media_type: Some(mt.to_string()),
        });
        self
    }

    /// Writes the layout into `dir` (created if needed) under `tag`.
    pub fn write(&self, dir: &Path, tag: &str) -> BuiltImage {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let mut built = Vec::new();
        for spec in &self.layers {
            let tmp = dir.join("blobs/sha256/.incoming");
            let mut w = HashingFile {
                file: io::BufWriter::new(fs::File::create(&tmp).unwrap()),
                hash: Sha256::new(),
                size: 0,
            };
            spec.compression.compress(&spec.tar, &mut w).unwrap();
            w.flush().unwrap();
            let hex = hex::encode(w.hash.finalize());
            let path = dir.join("blobs/sha256").join(&hex);
            fs::rename(&tmp, &path).unwrap();
            built.push(BuiltLayer {
                digest: format!("sha256:{hex}"),
                media_type: spec
                    .media_type
                    .clone()
                    .unwrap_or_else(|| spec.compression.oci_media_type().to_string()),
                diff_id: format!("sha256:{}", sha256_hex(&spec.tar)),
                size: w.size,
                path,
            });
        }
        self.write_metadata(dir, tag, built)
    }

    /// Writes one layer whose tar bytes `produce` streams (for layers too large to hold in
    /// memory), returning it for [`Self::write_metadata`].
    pub fn write_streamed_layer(
        dir: &Path,
        compression: Compression,
        produce: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> BuiltLayer {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        // One name per call: layers may be written from several threads at once.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tmp = dir.join(format!(
            "blobs/sha256/.incoming-stream-{}-{n}",
            std::process::id()
        ));
        let mut blob = HashingFile {
            file: io::BufWriter::new(fs::File::create(&tmp).unwrap()),
            hash: Sha256::new(),
            size: 0,
        };
        let diff_id = {
            let mut tar = HashingWriter {
                inner: compression.encoder(&mut blob).unwrap(),
                hash: Sha256::new(),
            };
            produce(&mut tar).unwrap();
            let HashingWriter { inner, hash } = tar;
            inner.finish().unwrap();
            hex::encode(hash.finalize())
        };
        blob.flush().unwrap();
        let hex = hex::encode(blob.hash.finalize());
        let path = dir.join("blobs/sha256").join(&hex);
        fs::rename(&tmp, &path).unwrap();
        BuiltLayer {
            digest: format!("sha256:{hex}"),
            media_type: compression.oci_media_type().to_string(),
            diff_id: format!("sha256:{diff_id}"),
            size: blob.size,
            path,
        }
    }

    /// Writes config, manifest and index for layers already stored as blobs.
    pub fn write_metadata(&self, dir: &Path, tag: &str, layers: Vec<BuiltLayer>) -> BuiltImage {
        let config = serde_json::json!({
            "architecture": self.architecture,
            "os": self.os,
            "config": {"Labels": {"containers.bootc": "1"}},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
            "history": layers.iter().map(|_| serde_json::json!({"created_by": "bootseal test"})).collect::<Vec<_>>(),
        });
        let config_bytes = serde_json::to_vec(&config).unwrap();
        let (config_digest, config_size) = write_blob(dir, &config_bytes);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": layers.iter().map(|l| serde_json::json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
        });
        let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
        let (manifest_digest, manifest_size) = write_blob(dir, &manifest_bytes);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "platform": {"architecture": self.architecture, "os": self.os},
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        });
        fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        BuiltImage {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
            manifest_digest,
            config_digest,
            layers,
        }
    }
}

/// A layer's tar, decompressed as its media type says (gzip, zstd or none), and that
/// compression (small test blobs only).
pub fn layer_tar(layer: &BuiltLayer) -> (Vec<u8>, Compression) {
    let blob = read_blob(layer);
    if layer.media_type.ends_with("+gzip") {
        let mut v = Vec::new();
        flate2::read::MultiGzDecoder::new(&blob[..])
            .read_to_end(&mut v)
            .unwrap();
        (v, Compression::Gzip)
    } else if layer.media_type.ends_with("+zstd") {
        (zstd::decode_all(&blob[..]).unwrap(), Compression::Zstd)
    } else {
        (blob, Compression::None)
    }
}

/// Reads a whole blob of a built image (small test blobs only).
pub fn read_blob(layer: &BuiltLayer) -> Vec<u8> {
    let mut v = Vec::new();
    fs::File::open(&layer.path)
        .unwrap()
        .read_to_end(&mut v)
        .unwrap();
    v
}
