//! The attribute certificate table at the end of a signed PE: a list of `WIN_CERTIFICATE`
//! entries (dwLength, wRevision 0x0200, wCertificateType 0x0002 PKCS_SIGNED_DATA, blob),
//! each padded to 8 bytes, located by data directory 4 whose "VirtualAddress" is a file
//! offset (PE/COFF specification, "The Attribute Certificate Table"; EDK2
//! DxeImageVerificationLib walks it the same way).

use super::AuthenticodeError;
use crate::pe::{self, PeHeaders};

/// `WIN_CERT_REVISION_2_0`.
const WIN_CERT_REVISION_2_0: u16 = 0x0200;
/// `WIN_CERT_TYPE_PKCS_SIGNED_DATA`.
pub const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;

/// One certificate-table entry.
#[derive(Debug, Clone)]
pub struct WinCertificate {
    pub revision: u16,
    pub cert_type: u16,
    /// The PKCS#7 ContentInfo (without the 8-byte header, without padding).
    pub blob: Vec<u8>,
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// The entries of the certificate table (empty if the image is unsigned).
pub fn entries(image: &[u8]) -> Result<Vec<WinCertificate>, AuthenticodeError> {
    let pe = PeHeaders::parse(image)?;
    let (off, size) = (pe.cert_table.0 as usize, pe.cert_table.1 as usize);
    if off == 0 || size == 0 {
        return Ok(Vec::new());
    }
    let table = image
        .get(off..off + size)
        .ok_or(AuthenticodeError::BadTable(
            "certificate table lies outside the file",
        ))?;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < table.len() {
        let hdr = table.get(pos..pos + 8).ok_or(AuthenticodeError::BadTable(
            "truncated WIN_CERTIFICATE header",
        ))?;
        let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        if len < 8 || pos + len > table.len() {
            return Err(AuthenticodeError::BadTable(
                "WIN_CERTIFICATE length out of range",
            ));
        }
        out.push(WinCertificate {
            revision: u16::from_le_bytes([hdr[4], hdr[5]]),
            cert_type: u16::from_le_bytes([hdr[6], hdr[7]]),
            blob: table[pos + 8..pos + len].to_vec(),
        });
        pos += pad8(len);
    }
    Ok(out)
}

/// Make `image` ready for signing: an unsigned image is zero-padded to a multiple of 8
/// (the pad is part of the hashed image, as sbsign does); a signed image must have its
/// table at the very end so another entry can be appended. Takes the image by value so a
/// large image is not copied (reserve some spare capacity for the entry).
pub fn prepare(mut image: Vec<u8>, append: bool) -> Result<Vec<u8>, AuthenticodeError> {
    let pe = PeHeaders::parse(&image)?;
    if pe.number_of_rva_and_sizes <= 4 {
        return Err(AuthenticodeError::BadTable(
            "optional header has no certificate-table data directory",
        ));
    }
    let (off, size) = pe.cert_table;
    if off != 0 || size != 0 {
        if !append {
            let n = entries(&image).map(|e| e.len()).unwrap_or(0);
            return Err(AuthenticodeError::AlreadySigned(n));
        }
        if off as u64 + size as u64 != image.len() as u64 || !off.is_multiple_of(8) {
            return Err(AuthenticodeError::BadTable(
                "certificate table is not 8-aligned at the end of the file",
            ));
        }
        return Ok(image);
    }
    image.resize(pad8(image.len()), 0);
    Ok(image)
}

/// Append one PKCS_SIGNED_DATA entry holding `pkcs7` to a prepared image, update data
/// directory 4 and the PE checksum.
pub fn append_entry(prepared: &mut Vec<u8>, pkcs7: &[u8]) -> Result<(), AuthenticodeError> {
    let pe = PeHeaders::parse(prepared)?;
    let (mut off, mut size) = pe.cert_table;
    if off == 0 {
        off = u32::try_from(prepared.len())
            .map_err(|_| AuthenticodeError::BadTable("image larger than 4 GiB"))?;
        size = 0;
    }
    let len = 8 + pkcs7.len();
    let entry_len = u32::try_from(len)
        .map_err(|_| AuthenticodeError::BadTable("signature larger than 4 GiB"))?;
    size = size
        .checked_add(pad8(len) as u32)
        .ok_or(AuthenticodeError::BadTable(
            "certificate table larger than 4 GiB",
        ))?;
    prepared.extend_from_slice(&entry_len.to_le_bytes());
    prepared.extend_from_slice(&WIN_CERT_REVISION_2_0.to_le_bytes());
    prepared.extend_from_slice(&WIN_CERT_TYPE_PKCS_SIGNED_DATA.to_le_bytes());
    prepared.extend_from_slice(pkcs7);
    prepared.resize(prepared.len() + pad8(len) - len, 0);
    let dir = pe.cert_dir_offset();
    pe::put_u32(prepared, dir, off);
    pe::put_u32(prepared, dir + 4, size);
    let cks_off = pe.checksum_offset();
    let cks = pe::checksum::pe_checksum(prepared, cks_off);
    pe::put_u32(prepared, cks_off, cks);
    Ok(())
}
