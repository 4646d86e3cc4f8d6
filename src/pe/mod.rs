//! PE/COFF layout: the headers and section table of a PE32/PE32+ image, read from bytes,
//! and the file offsets of the fields that UKI assembly and Authenticode signing patch.
//!
//! Field offsets follow the Microsoft PE/COFF specification ("PE Format", sections
//! "COFF File Header", "Optional Header", "Section Table"). [`PeHeaders::parse`] (in
//! `parse.rs`) is the one place that checks a PE's header values; everything else trusts a
//! parsed [`PeHeaders`] (raw data inside the file, addresses without overflow).

pub mod checksum;
mod parse;

use thiserror::Error;

/// Why bytes could not be read as a PE image. Every variant names the header field (or the
/// structure) at fault; the caller adds which file it was.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PeError {
    #[error("not a PE image: {0}")]
    NotPe(&'static str),
    #[error("PE image truncated: {what} ends at {need:#x}, the file has {have:#x} bytes")]
    Truncated { what: String, need: u64, have: u64 },
    #[error("PE header field {field} is {value:#x}: {problem}")]
    BadField {
        field: String,
        value: u64,
        problem: String,
    },
}

impl PeError {
    pub(crate) fn bad(
        field: impl Into<String>,
        value: impl Into<u64>,
        problem: impl Into<String>,
    ) -> Self {
        PeError::BadField {
            field: field.into(),
            value: value.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn truncated(what: impl Into<String>, need: u64, have: usize) -> Self {
        PeError::Truncated {
            what: what.into(),
            need,
            have: have as u64,
        }
    }
}

/// `IMAGE_SCN_CNT_CODE`.
pub const SCN_CNT_CODE: u32 = 0x0000_0020;
/// `IMAGE_SCN_CNT_INITIALIZED_DATA`.
pub const SCN_CNT_INITIALIZED_DATA: u32 = 0x0000_0040;
/// `IMAGE_SCN_MEM_READ`.
pub const SCN_MEM_READ: u32 = 0x4000_0000;
/// Size of one section header in the section table.
pub const SECTION_HEADER_SIZE: usize = 40;
/// Data directory index of the certificate table (`IMAGE_DIRECTORY_ENTRY_SECURITY`).
const DIR_SECURITY: usize = 4;

/// One entry of the section table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionHeader {
    pub name: [u8; 8],
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub size_of_raw_data: u32,
    pub pointer_to_raw_data: u32,
    pub characteristics: u32,
}

impl SectionHeader {
    /// The section name without trailing NULs (names longer than 8 bytes are not used in EFI).
    pub fn name_str(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(8);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }

    /// The name as messages and reports show it: control characters escaped, so a hostile
    /// name cannot break a one-line error or forge a line of `inspect` output.
    pub fn display_name(&self) -> String {
        crate::text::escape_controls(&self.name_str())
    }

    /// End of the section in memory (`VirtualAddress + VirtualSize`).
    pub fn virtual_end(&self) -> u64 {
        u64::from(self.virtual_address) + u64::from(self.virtual_size)
    }

    /// End of the section's raw data in the file (`PointerToRawData + SizeOfRawData`).
    pub fn raw_end(&self) -> u64 {
        u64::from(self.pointer_to_raw_data) + u64::from(self.size_of_raw_data)
    }
}

/// Parsed PE headers plus the offsets of patchable fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeHeaders {
    /// Offset of the COFF file header (right after `PE\0\0`).
    pub coff_offset: usize,
    /// Offset of the optional header.
    pub opt_offset: usize,
    /// True for PE32+ (64-bit) images.
    pub pe32_plus: bool,
    pub machine: u16,
    pub characteristics: u16,
    pub pointer_to_symbol_table: u32,
    pub number_of_symbols: u32,
    pub major_image_version: u16,
    pub section_alignment: u32,
    pub file_alignment: u32,
    pub size_of_headers: u32,
    pub size_of_image: u32,
    pub size_of_initialized_data: u32,
    pub checksum: u32,
    pub number_of_rva_and_sizes: u32,
    /// Offset of the first section header.
    pub section_table_offset: usize,
    pub sections: Vec<SectionHeader>,
    /// Certificate table (data directory 4): file offset and size; (0, 0) if absent.
    pub cert_table: (u32, u32),
}

/// Write a little-endian u16 at `off` (caller guarantees the range exists).
pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Write a little-endian u32 at `off` (caller guarantees the range exists).
pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Round `v` up to a multiple of `align` (`align` 0 or 1 leaves it unchanged).
pub fn align_up(v: u64, align: u64) -> u64 {
    if align <= 1 {
        v
    } else {
        v.div_ceil(align) * align
    }
}

impl PeHeaders {
    /// Offset of `OptionalHeader.CheckSum`.
    pub fn checksum_offset(&self) -> usize {
        self.opt_offset + 64
    }

    /// Offset of the certificate-table data directory entry (8 bytes).
    pub fn cert_dir_offset(&self) -> usize {
        let dd = if self.pe32_plus { 112 } else { 96 };
        self.opt_offset + dd + 8 * DIR_SECURITY
    }

    /// Offset of `OptionalHeader.SizeOfImage`.
    pub fn size_of_image_offset(&self) -> usize {
        self.opt_offset + 56
    }

    /// Offset of `OptionalHeader.SizeOfHeaders`.
    pub fn size_of_headers_offset(&self) -> usize {
        self.opt_offset + 60
    }

    /// Offset of `OptionalHeader.SizeOfInitializedData`.
    pub fn size_of_initialized_data_offset(&self) -> usize {
        self.opt_offset + 8
    }

    /// Offset of the section header with index `i` (may be one past the table).
    pub fn section_header_offset(&self, i: usize) -> usize {
        self.section_table_offset + i * SECTION_HEADER_SIZE
    }

    /// Find a section by name.
    pub fn section(&self, name: &str) -> Option<&SectionHeader> {
        self.sections.iter().find(|s| s.name_str() == name)
    }

    /// The bytes the loader maps for a section: its first `VirtualSize` bytes
    /// (clamped to the raw data present; the loader zero-fills any rest).
    pub fn section_data<'a>(&self, b: &'a [u8], s: &SectionHeader) -> Result<&'a [u8], PeError> {
        let len = u64::from(s.virtual_size.min(s.size_of_raw_data));
        let start = u64::from(s.pointer_to_raw_data);
        b.get(start as usize..(start + len) as usize)
            .ok_or_else(|| {
                PeError::truncated(
                    format!("section {}", s.display_name()),
                    start + len,
                    b.len(),
                )
            })
    }

    /// The whole raw data of a section (`SizeOfRawData` bytes at `PointerToRawData`).
    pub fn section_raw<'a>(&self, b: &'a [u8], s: &SectionHeader) -> Result<&'a [u8], PeError> {
        let start = u64::from(s.pointer_to_raw_data);
        let end = start + u64::from(s.size_of_raw_data);
        b.get(start as usize..end as usize).ok_or_else(|| {
            PeError::truncated(format!("section {}", s.display_name()), end, b.len())
        })
    }

    /// End of the raw data of all sections (at least SizeOfHeaders).
    pub fn raw_data_end(&self) -> u64 {
        self.sections
            .iter()
            .filter(|s| s.size_of_raw_data != 0)
            .map(SectionHeader::raw_end)
            .fold(u64::from(self.size_of_headers), u64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_pe() {
        assert_eq!(
            PeHeaders::parse(
                b"hello world, certainly not a PE image at all, padded out to 64+ bytes.."
            ),
            Err(PeError::NotPe("no MZ signature"))
        );
    }

    #[test]
    fn align_up_rounds() {
        assert_eq!(align_up(0x201, 0x200), 0x400);
        assert_eq!(align_up(0x200, 0x200), 0x200);
        assert_eq!(align_up(7, 0), 7);
    }
}
