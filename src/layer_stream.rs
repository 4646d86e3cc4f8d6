//! Layer stream: a compressed layer blob turned into its verified uncompressed tar bytes.
//!
//! The media type picks the decompressor (OCI image-spec `layer.md` and `media-types.md`; Docker
//! image manifest v2 schema 2). gzip is read member after member (RFC 1952 allows concatenated
//! members), zstd frame after frame including skippable frames (RFC 8878 §3.1). The uncompressed
//! bytes are hashed and compared with the config's `diff_id` at EOF, and a stream that ends
//! early is an error from the decompressor itself: bootc #2408 silently built a shorter tree
//! from a truncated layer, which this module must never do.

use std::io::{self, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::compression::Compression;
use crate::content_digest::{ContentDigest, CountingReader, DigestMismatch, VerifyingReader};

/// Buffer size for reading compressed input; large reads keep syscall and decoder overhead low.
const INPUT_BUFFER: usize = 256 * 1024;

/// The uncompressed bytes of one layer, verified against its `diff_id` at EOF.
pub struct LayerStream {
    inner: VerifyingReader<Box<dyn Read + Send>>,
    compressed: Arc<AtomicU64>,
}

impl LayerStream {
    /// Wraps `compressed` (the blob bytes, already checked against the blob digest by the source)
    /// with the decompressor for `media_type` and a `diff_id` check.
    pub fn open(
        compressed: Box<dyn Read + Send>,
        media_type: &str,
        diff_id: &str,
    ) -> Result<Self, String> {
        let compression = Compression::from_media_type(media_type)?;
        let diff_id = ContentDigest::parse(diff_id).map_err(|e| format!("diff_id: {e}"))?;
        let (counted, compressed_count) = CountingReader::new(compressed);
        let buffered = BufReader::with_capacity(INPUT_BUFFER, counted);
        let decompressed: Box<dyn Read + Send> = match compression {
            Compression::None => Box::new(buffered),
            Compression::Gzip => Box::new(DecoderErrors {
                format: "gzip",
                inner: crate::compression::MultiGunzip::new(buffered),
            }),
            Compression::Zstd => Box::new(DecoderErrors {
                format: "zstd",
                inner: zstd::stream::read::Decoder::with_buffer(buffered)
                    .map_err(|e| format!("zstd decoder: {e}"))?,
            }),
        };
        Ok(Self {
            inner: VerifyingReader::new(decompressed, diff_id, "diff_id"),
            compressed: compressed_count,
        })
    }

    /// Compressed bytes consumed so far.
    pub fn compressed_bytes(&self) -> u64 {
        self.compressed.load(Ordering::Relaxed)
    }

    /// Uncompressed bytes produced so far.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.inner.bytes_read()
    }

    /// True once the whole stream was read and matched its `diff_id`.
    pub fn is_verified(&self) -> bool {
        self.inner.is_verified()
    }
}

impl Read for LayerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

/// Gives decoder errors a message that says what happened: a stream cut short (both the gzip
/// and the zstd decoder report `UnexpectedEof`) or corrupt data.
struct DecoderErrors<R> {
    format: &'static str,
    inner: R,
}

impl<R: Read> Read for DecoderErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            // Errors of the blob reader underneath (e.g. its digest check) pass unchanged.
            if e.get_ref()
                .is_some_and(|inner| inner.is::<DigestMismatch>())
            {
                e
            } else if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} stream ends early (truncated blob)", self.format),
                )
            } else {
                io::Error::new(e.kind(), format!("corrupt {} stream: {e}", self.format))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn payload() -> Vec<u8> {
        (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_all(blob: Vec<u8>, mt: &str, diff_id: &str) -> Result<Vec<u8>, String> {
        let mut s = LayerStream::open(Box::new(io::Cursor::new(blob)), mt, diff_id)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).map_err(|e| e.to_string())?;
        assert!(s.is_verified());
        Ok(out)
    }

    const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const ZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

    #[test]
    fn multi_member_gzip_is_read_to_the_end() {
        let data = payload();
        let (a, b) = data.split_at(123_457);
        let mut blob = gzip(a);
        blob.extend(gzip(b));
        let diff = ContentDigest::sha256_of(&data).to_string();
        assert_eq!(read_all(blob, GZ, &diff).unwrap(), data);
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let data = payload();
        let diff = ContentDigest::sha256_of(&data).to_string();
        let blob = gzip(&data);
        for cut in [blob.len() - 4, blob.len() - 9, blob.len() / 2, 5] {
            let err = read_all(blob[..cut].to_vec(), GZ, &diff).unwrap_err();
            assert!(
                err.contains("gzip") || err.contains("digest mismatch"),
                "cut {cut}: {err}"
            );
        }
    }

    #[test]
    fn zstd_frames_and_skippable_frames() {
        let data = payload();
        let (a, b) = data.split_at(99_999);
        let mut blob = zstd::encode_all(a, 3).unwrap();
        // RFC 8878 §3.1.2 skippable frame: magic 0x184D2A5?, little-endian size, payload.
        blob.extend(0x184D_2A50u32.to_le_bytes());
        blob.extend(5u32.to_le_bytes());
        blob.extend(b"skip!");
        blob.extend(zstd::encode_all(b, 3).unwrap());
        let diff = ContentDigest::sha256_of(&data).to_string();
        assert_eq!(read_all(blob, ZST, &diff).unwrap(), data);
    }

    #[test]
    fn truncated_zstd_is_an_error() {
        let data = payload();
        let diff = ContentDigest::sha256_of(&data).to_string();
        let blob = zstd::encode_all(&data[..], 3).unwrap();
        for cut in [blob.len() - 1, blob.len() / 2] {
            assert!(
                read_all(blob[..cut].to_vec(), ZST, &diff).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn wrong_diff_id_and_unknown_media_type() {
        let data = payload();
        let other = ContentDigest::sha256_of(b"other").to_string();
        let err = read_all(gzip(&data), GZ, &other).unwrap_err();
        assert!(
            err.starts_with("diff_id digest mismatch: expected sha256:"),
            "{err}"
        );
        let err = LayerStream::open(Box::new(io::empty()), "application/x-tar", &other)
            .err()
            .unwrap();
        assert_eq!(err, "unknown layer media type \"application/x-tar\"");
    }
}
