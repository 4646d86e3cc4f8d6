//! PE/COFF layout: the headers and section table of a PE32/PE32+ image, read from bytes,
//! and the file offsets of the fields that UKI assembly and Authenticode signing patch.
//!
//! Field offsets follow the Microsoft PE/COFF specification ("PE Format", sections
//! "COFF File Header", "Optional Header", "Section Table").

pub mod checksum;

use thiserror::Error;

/// Why bytes could not be read as a PE image.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PeError {
    #[error("not a PE image: {0}")]
    NotPe(&'static str),
    #[error("PE image truncated: {what} needs {need} bytes, file has {have}")]
    Truncated {
        what: &'static str,
        need: u64,
        have: u64,
    },
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

    /// End of the section in memory (`VirtualAddress + VirtualSize`).
    pub fn virtual_end(&self) -> u64 {
        u64::from(self.virtual_address) + u64::from(self.virtual_size)
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

fn u16_at(b: &[u8], off: usize) -> Result<u16, PeError> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(PeError::Truncated {
            what: "headers",
            need: off as u64 + 2,
            have: b.len() as u64,
        })
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, PeError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(PeError::Truncated {
            what: "headers",
            need: off as u64 + 4,
            have: b.len() as u64,
        })
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
    /// Parse the DOS stub, COFF header, optional header and section table.
    pub fn parse(b: &[u8]) -> Result<Self, PeError> {
        if b.len() < 0x40 || &b[..2] != b"MZ" {
            return Err(PeError::NotPe("no MZ signature"));
        }
        let pe = u32_at(b, 0x3c)? as usize;
        if b.get(pe..pe + 4) != Some(b"PE\0\0") {
            return Err(PeError::NotPe("no PE signature at e_lfanew"));
        }
        let coff = pe + 4;
        let machine = u16_at(b, coff)?;
        let nsections = u16_at(b, coff + 2)? as usize;
        let pointer_to_symbol_table = u32_at(b, coff + 8)?;
        let number_of_symbols = u32_at(b, coff + 12)?;
        let size_of_opt = u16_at(b, coff + 16)? as usize;
        let characteristics = u16_at(b, coff + 18)?;
        let opt = coff + 20;
        let magic = u16_at(b, opt)?;
        let pe32_plus = match magic {
            0x20b => true,
            0x10b => false,
            _ => return Err(PeError::NotPe("unknown optional header magic")),
        };
        let dd_offset = if pe32_plus { opt + 112 } else { opt + 96 };
        let number_of_rva_and_sizes = u32_at(b, dd_offset - 4)?;
        if dd_offset + 8 * number_of_rva_and_sizes as usize > opt + size_of_opt {
            return Err(PeError::NotPe(
                "data directories exceed the optional header",
            ));
        }
        let cert_table = if number_of_rva_and_sizes as usize > DIR_SECURITY {
            let e = dd_offset + 8 * DIR_SECURITY;
            (u32_at(b, e)?, u32_at(b, e + 4)?)
        } else {
            (0, 0)
        };
        let section_table_offset = opt + size_of_opt;
        let mut sections = Vec::with_capacity(nsections);
        for i in 0..nsections {
            let s = section_table_offset + i * SECTION_HEADER_SIZE;
            let raw = b
                .get(s..s + SECTION_HEADER_SIZE)
                .ok_or(PeError::Truncated {
                    what: "section table",
                    need: (s + SECTION_HEADER_SIZE) as u64,
                    have: b.len() as u64,
                })?;
            let mut name = [0u8; 8];
            name.copy_from_slice(&raw[..8]);
            sections.push(SectionHeader {
                name,
                virtual_size: u32_at(raw, 8)?,
                virtual_address: u32_at(raw, 12)?,
                size_of_raw_data: u32_at(raw, 16)?,
                pointer_to_raw_data: u32_at(raw, 20)?,
                characteristics: u32_at(raw, 36)?,
            });
        }
        Ok(PeHeaders {
            coff_offset: coff,
            opt_offset: opt,
            pe32_plus,
            machine,
            characteristics,
            pointer_to_symbol_table,
            number_of_symbols,
            major_image_version: u16_at(b, opt + 44)?,
            section_alignment: u32_at(b, opt + 32)?,
            file_alignment: u32_at(b, opt + 36)?,
            size_of_headers: u32_at(b, opt + 60)?,
            size_of_image: u32_at(b, opt + 56)?,
            size_of_initialized_data: u32_at(b, opt + 8)?,
            checksum: u32_at(b, opt + 64)?,
            number_of_rva_and_sizes,
            section_table_offset,
            sections,
            cert_table,
        })
    }

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
        let len = s.virtual_size.min(s.size_of_raw_data) as usize;
        let start = s.pointer_to_raw_data as usize;
        b.get(start..start + len).ok_or(PeError::Truncated {
            what: "section data",
            need: (start + len) as u64,
            have: b.len() as u64,
        })
    }

    /// Check that every section's raw data lies inside the file.
    pub fn check_raw_data_present(&self, file_len: usize) -> Result<(), PeError> {
        for s in &self.sections {
            let end = u64::from(s.pointer_to_raw_data) + u64::from(s.size_of_raw_data);
            if s.size_of_raw_data != 0 && end > file_len as u64 {
                return Err(PeError::Truncated {
                    what: "section raw data",
                    need: end,
                    have: file_len as u64,
                });
            }
        }
        Ok(())
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
