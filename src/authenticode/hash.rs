//! The Authenticode image hash: SHA-256 over the PE file minus the CheckSum field, the
//! certificate-table directory entry and the certificate table itself.
//!
//! Order and ranges as in the Authenticode PE specification ("Calculating the PE Image
//! Hash") and sbsigntools `src/image.c`: headers up to SizeOfHeaders with the two holes,
//! then each section's raw data sorted by PointerToRawData, then any data after the last
//! section up to the certificate table. Equals `pesign -h`.

use super::AuthenticodeError;
use crate::pe::{PeError, PeHeaders};
use sha2::{Digest, Sha256};

/// SHA-256 Authenticode digest of `image` (which may already carry a certificate table).
pub fn image_hash(image: &[u8]) -> Result<[u8; 32], AuthenticodeError> {
    let pe = PeHeaders::parse(image)?;
    let mut h = Sha256::new();
    // parse() guarantees SizeOfHeaders and every section's raw data lie inside the file.
    let size_of_headers = pe.size_of_headers as usize;
    let cks = pe.checksum_offset();
    let dir = pe.cert_dir_offset();
    if dir + 8 > size_of_headers {
        return Err(PeError::bad(
            "NumberOfRvaAndSizes",
            pe.number_of_rva_and_sizes,
            "has no certificate-table data directory (needs at least 5)",
        )
        .into());
    }
    h.update(&image[..cks]);
    h.update(&image[cks + 4..dir]);
    h.update(&image[dir + 8..size_of_headers]);

    let mut sections: Vec<_> = pe
        .sections
        .iter()
        .filter(|s| s.size_of_raw_data != 0)
        .collect();
    sections.sort_by_key(|s| s.pointer_to_raw_data);
    let mut sum = size_of_headers as u64;
    for s in sections {
        h.update(pe.section_raw(image, s)?);
        sum += u64::from(s.size_of_raw_data);
    }
    let cert_size = u64::from(pe.cert_table.1);
    let len = image.len() as u64;
    if len > sum + cert_size {
        h.update(&image[sum as usize..(len - cert_size) as usize]);
    }
    Ok(h.finalize().into())
}
