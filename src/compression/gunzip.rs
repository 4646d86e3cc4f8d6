//! gzip decoding for layer blobs on zlib-rs: every member of a multi-member stream (RFC 1952
//! §2.2), each member's CRC-32 and length checked by the decoder.
//!
//! Why not flate2: composefs-oci enables flate2's `zlib` feature, which makes every flate2
//! decoder in the build use the system's zlib (1.2.13 on Debian 12). On the Fedora-scale
//! bench that inflate was a third of the digest's CPU time; zlib-rs (a port of zlib-ng's
//! SIMD inflate) needs about half as much for the same bytes.

use std::io::{self, BufRead, Read};

use zlib_rs::{Inflate, InflateFlush, Status};

/// `window_bits` for "a gzip header, then a deflate stream with a 32 KiB window" (zlib's
/// `inflateInit2` convention, which zlib-rs keeps: 16 + 15).
const GZIP_WINDOW_BITS: u8 = 16 + 15;

/// The uncompressed bytes of a gzip stream of one or more members read from `input`.
///
/// A stream that ends inside a member is an `UnexpectedEof` error; bytes after a member that do
/// not start another member are `InvalidData`. An empty input is an empty output, as with
/// flate2's `MultiGzDecoder` (what the layer then lacks, the tar parser reports).
pub(crate) struct MultiGunzip<R> {
    input: R,
    /// The member being decoded; `None` between members.
    member: Option<Inflate>,
    /// A trailer mismatch (CRC-32 or length, zlib's "incorrect data check" / "incorrect length
    /// check") found by the call that also wrote the member's last bytes: reported by the next
    /// read, after those bytes. flate2's gzip decoder behaves the same (it checks the trailer
    /// itself once the deflate stream has ended), and a tar parser then names the entry the
    /// damage is in; a corrupt deflate stream instead fails at once, its output dropped.
    failed: Option<io::Error>,
}

impl<R: BufRead> MultiGunzip<R> {
    pub(crate) fn new(input: R) -> Self {
        Self {
            input,
            member: None,
            failed: None,
        }
    }
}

impl<R: BufRead> Read for MultiGunzip<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        loop {
            let input = self.input.fill_buf()?;
            let at_end = input.is_empty();
            let member = match &mut self.member {
                Some(member) => member,
                None if at_end => return Ok(0),
                None => self.member.insert(Inflate::new(true, GZIP_WINDOW_BITS)),
            };
            let (in_before, out_before) = (member.total_in(), member.total_out());
            let result = member.decompress(input, out, InflateFlush::NoFlush);
            // Both counts are bounded by the slices just passed in.
            let consumed = (member.total_in() - in_before) as usize;
            let produced = (member.total_out() - out_before) as usize;
            self.input.consume(consumed);
            let status = match result {
                Ok(status) => status,
                Err(e) => {
                    let message = member.error_message().unwrap_or(e.as_str());
                    let error = io::Error::new(io::ErrorKind::InvalidData, message);
                    let trailer = message.starts_with("incorrect data check")
                        || message.starts_with("incorrect length check");
                    if produced == 0 || !trailer {
                        return Err(error);
                    }
                    self.failed = Some(error);
                    return Ok(produced);
                }
            };
            if status == Status::StreamEnd {
                self.member = None;
            }
            if produced > 0 {
                return Ok(produced);
            }
            if status == Status::StreamEnd || consumed > 0 {
                continue;
            }
            if at_end {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "gzip stream ends inside a member",
                ));
            }
            // Input and output space were both available and nothing moved: zlib's
            // Z_BUF_ERROR with data present, which only a broken stream state gives.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "gzip decoder made no progress",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(blob: &[u8], read_size: usize) -> io::Result<Vec<u8>> {
        // A small BufReader capacity makes members and headers straddle refills.
        let mut d = MultiGunzip::new(io::BufReader::with_capacity(7, blob));
        let mut out = Vec::new();
        let mut buf = vec![0; read_size];
        loop {
            let n = d.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    fn payload(n: usize) -> Vec<u8> {
        let mut x = 0x1234_5678_9abc_def1u64;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 3 == 0 {
                    (x >> 40) as u8
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect()
    }

    #[test]
    fn members_levels_and_read_sizes_round_trip() {
        let data = payload(200_000);
        for level in [0, 1, 6, 9] {
            let mut blob = gzip(&data[..77_777], level);
            blob.extend(gzip(&[], level));
            blob.extend(gzip(&data[77_777..], level));
            for read_size in [1, 4096, 1 << 20] {
                assert_eq!(gunzip(&blob, read_size).unwrap(), data, "level {level}");
            }
        }
        assert_eq!(gunzip(&[], 10).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn agrees_with_flate2_on_truncation_and_corruption() {
        let data = payload(50_000);
        let blob = gzip(&data, 6);
        let flate2_reads = |b: &[u8]| {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(b)
                .read_to_end(&mut out)
                .map(|_| out)
        };
        for cut in [1, 5, 10, blob.len() / 2, blob.len() - 8, blob.len() - 1] {
            let ours = gunzip(&blob[..cut], 4096).unwrap_err();
            assert_eq!(
                ours.kind(),
                io::ErrorKind::UnexpectedEof,
                "cut {cut}: {ours}"
            );
            assert!(flate2_reads(&blob[..cut]).is_err(), "cut {cut}");
        }
        // A flipped bit in the CRC-32, in the length, and in the deflate data.
        for at in [blob.len() - 6, blob.len() - 2, blob.len() / 2] {
            let mut bad = blob.clone();
            bad[at] ^= 0x10;
            assert!(gunzip(&bad, 4096).is_err(), "flip at {at}");
            assert!(flate2_reads(&bad).is_err(), "flip at {at}");
        }
        // A CRC-32 mismatch comes after the member's bytes, as with flate2 (which checks
        // the trailer itself): a reader sees every byte, then the error.
        let mut bad = blob.clone();
        let crc_at = blob.len() - 6;
        bad[crc_at] ^= 1;
        let mut d = MultiGunzip::new(io::BufReader::new(&bad[..]));
        let mut seen = Vec::new();
        let e = d.read_to_end(&mut seen).unwrap_err();
        assert_eq!(
            (seen.len(), e.to_string().as_str()),
            (data.len(), "incorrect data check")
        );
        let mut seen = Vec::new();
        let mut f = flate2::bufread::MultiGzDecoder::new(&bad[..]);
        assert!(f.read_to_end(&mut seen).is_err());
        assert_eq!(seen.len(), data.len(), "flate2 gives the bytes first too");
        // Bytes after a member that are not another member.
        let mut trailing = blob.clone();
        trailing.extend_from_slice(b"not gzip");
        let e = gunzip(&trailing, 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(flate2_reads(&trailing).is_err());
    }
}
