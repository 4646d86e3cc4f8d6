//! [`PeHeaders::parse`]: read the headers and the section table, and refuse every header
//! value the PE/COFF specification forbids or a UEFI loader would refuse, and every value that
//! could make later offset or size arithmetic overflow or drive a large allocation.
//!
//! The rules, and whose they are (PE = Microsoft "PE Format"; EDK2 = `BasePeCoffLib`, the PE
//! loader of OVMF and most UEFI firmware; stub = systemd-stub's `pe.c`):
//! * NumberOfSections 1..=96: the stub refuses other counts (`MAX_SECTIONS`), and PE notes the
//!   Windows loader's limit of 96.
//! * NumberOfRvaAndSizes ≤ 16 (EDK2) and SizeOfOptionalHeader holds the fixed part plus that
//!   many data directories (PE).
//! * FileAlignment a power of two, at most 64 KiB; SectionAlignment a power of two ≥
//!   FileAlignment; when SectionAlignment is below the page size, FileAlignment equals it (PE).
//!   PE says FileAlignment "should" be at least 512; below that we accept only that equal
//!   small-alignment case, which x86 bzImages used (0x20/0x20) until Linux 6.7 ("x86/boot:
//!   Increase section and file alignment to 4k/512").
//! * The section table lies inside the file and inside SizeOfHeaders; SizeOfHeaders lies
//!   inside the file and does not exceed SizeOfImage (EDK2 reads SizeOfHeaders' last byte;
//!   Authenticode hashes the headers up to it).
//! * Every section's raw data (SizeOfRawData > 0) lies inside the file, computed without
//!   overflow (EDK2 refuses `PointerToRawData + SizeOfRawData` wrapping or past the end).
//! * Every section's memory range (VirtualSize, or SizeOfRawData when VirtualSize is 0, as
//!   EDK2 loads it) ends inside SizeOfImage, computed in 64 bits (EDK2 refuses sections
//!   outside the image when loading).
//! * The certificate table (data directory 4), when present, lies inside the file (EDK2).
//!
//! Deliberately *not* required, because real inputs break them and firmware accepts them:
//! section addresses aligned to SectionAlignment (Debian's systemd 252 stub has `.sdmagic` at
//! 0x19100 with 0x200 alignment), raw data aligned to FileAlignment (ukify re-aligns it),
//! sections in address order or without overlap (ukify's in-place `.sbat` overlaps).

use super::{DIR_SECURITY, PeError, PeHeaders, SECTION_HEADER_SIZE, SectionHeader};

/// systemd-stub's `MAX_SECTIONS`; also the Windows loader's limit the PE spec mentions.
pub const MAX_SECTIONS: usize = 96;
/// The PE spec's range for FileAlignment.
const MIN_FILE_ALIGNMENT: u32 = 0x200;
const MAX_FILE_ALIGNMENT: u32 = 0x1_0000;
/// The page size of every UEFI architecture bootseal builds for (x64, aa64).
const PAGE_SIZE: u32 = 0x1000;
/// `EFI_IMAGE_NUMBER_OF_DIRECTORY_ENTRIES`.
const MAX_DATA_DIRECTORIES: u32 = 16;

fn field<const N: usize>(b: &[u8], off: usize, what: &str) -> Result<[u8; N], PeError> {
    off.checked_add(N)
        .and_then(|end| b.get(off..end))
        .map(|s| s.try_into().expect("length N"))
        .ok_or_else(|| PeError::truncated(what, off as u64 + N as u64, b.len()))
}

fn u16_at(b: &[u8], off: usize, what: &str) -> Result<u16, PeError> {
    field::<2>(b, off, what).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], off: usize, what: &str) -> Result<u32, PeError> {
    field::<4>(b, off, what).map(u32::from_le_bytes)
}

/// FileAlignment and SectionAlignment as the PE spec allows them (module doc).
fn check_alignment(file: u32, section: u32) -> Result<(), PeError> {
    if !file.is_power_of_two() || file > MAX_FILE_ALIGNMENT {
        return Err(PeError::bad(
            "FileAlignment",
            file,
            "not a power of two up to 0x10000 (PE format: 512 to 64 KiB)",
        ));
    }
    if !section.is_power_of_two() || section < file {
        return Err(PeError::bad(
            "SectionAlignment",
            section,
            format!("not a power of two at least FileAlignment {file:#x}"),
        ));
    }
    if section < PAGE_SIZE && file != section {
        return Err(PeError::bad(
            "FileAlignment",
            file,
            format!(
                "differs from SectionAlignment {section:#x}, which is below the page size (PE format: they must then be equal)"
            ),
        ));
    }
    if file < MIN_FILE_ALIGNMENT && file != section {
        return Err(PeError::bad(
            "FileAlignment",
            file,
            "below 0x200 (PE format), allowed only equal to a SectionAlignment below the page size",
        ));
    }
    Ok(())
}

/// Read section header `i` (the table is known to lie inside `b`) and check it.
fn section(b: &[u8], off: usize, i: usize, size_of_image: u32) -> Result<SectionHeader, PeError> {
    let raw = &b[off..off + SECTION_HEADER_SIZE];
    let word = |o: usize| u32::from_le_bytes(raw[o..o + 4].try_into().expect("4 bytes"));
    let mut name = [0u8; 8];
    name.copy_from_slice(&raw[..8]);
    let s = SectionHeader {
        name,
        virtual_size: word(8),
        virtual_address: word(12),
        size_of_raw_data: word(16),
        pointer_to_raw_data: word(20),
        characteristics: word(36),
    };
    let label = format!("section {i} ({})", s.display_name());
    if s.size_of_raw_data != 0 && s.raw_end() > b.len() as u64 {
        return Err(PeError::truncated(
            format!(
                "{label} raw data (PointerToRawData {:#x} + SizeOfRawData {:#x})",
                s.pointer_to_raw_data, s.size_of_raw_data
            ),
            s.raw_end(),
            b.len(),
        ));
    }
    // EDK2 copies SizeOfRawData bytes for a section whose VirtualSize is 0.
    let mapped = if s.virtual_size == 0 {
        s.size_of_raw_data
    } else {
        s.virtual_size
    };
    let end = u64::from(s.virtual_address) + u64::from(mapped);
    if end > u64::from(size_of_image) {
        return Err(PeError::bad(
            format!("{label} VirtualAddress + VirtualSize"),
            end,
            format!("ends past SizeOfImage {size_of_image:#x}"),
        ));
    }
    Ok(s)
}

impl PeHeaders {
    /// Parse and validate the DOS stub, COFF header, optional header, section table and
    /// certificate-table location (rules in the module doc).
    pub fn parse(b: &[u8]) -> Result<Self, PeError> {
        if b.len() < 0x40 || &b[..2] != b"MZ" {
            return Err(PeError::NotPe("no MZ signature"));
        }
        // All offsets below are a u32 plus small constants: no usize overflow on 64 bits.
        let pe = u32_at(b, 0x3c, "e_lfanew")? as usize;
        if b.get(pe..pe + 4) != Some(b"PE\0\0") {
            return Err(PeError::NotPe("no PE signature at e_lfanew"));
        }
        let coff = pe + 4;
        let coff_hdr = field::<20>(b, coff, "COFF file header")?;
        let c16 = |o: usize| u16::from_le_bytes([coff_hdr[o], coff_hdr[o + 1]]);
        let c32 = |o: usize| u32::from_le_bytes(coff_hdr[o..o + 4].try_into().expect("4"));
        let nsections = usize::from(c16(2));
        let size_of_opt = usize::from(c16(16));

        let opt = coff + 20;
        let (pe32_plus, fixed) = match u16_at(b, opt, "optional header magic")? {
            0x20b => (true, 112),
            0x10b => (false, 96),
            _ => return Err(PeError::NotPe("unknown optional header magic")),
        };
        if size_of_opt < fixed {
            return Err(PeError::bad(
                "SizeOfOptionalHeader",
                size_of_opt as u64,
                format!("shorter than the {fixed}-byte fixed part of the optional header"),
            ));
        }
        let opt_hdr = b.get(opt..opt + size_of_opt).ok_or_else(|| {
            PeError::truncated("optional header", (opt + size_of_opt) as u64, b.len())
        })?;
        let o16 = |o: usize| u16::from_le_bytes([opt_hdr[o], opt_hdr[o + 1]]);
        let o32 = |o: usize| u32::from_le_bytes(opt_hdr[o..o + 4].try_into().expect("4"));

        let number_of_rva_and_sizes = o32(fixed - 4);
        if number_of_rva_and_sizes > MAX_DATA_DIRECTORIES {
            return Err(PeError::bad(
                "NumberOfRvaAndSizes",
                number_of_rva_and_sizes,
                "more than the 16 data directories UEFI loaders accept",
            ));
        }
        let dirs_end = fixed + 8 * number_of_rva_and_sizes as usize;
        if dirs_end > size_of_opt {
            return Err(PeError::bad(
                "SizeOfOptionalHeader",
                size_of_opt as u64,
                format!("too small for its {number_of_rva_and_sizes} data directories"),
            ));
        }
        let cert_table = if number_of_rva_and_sizes as usize > DIR_SECURITY {
            let e = fixed + 8 * DIR_SECURITY;
            (o32(e), o32(e + 4))
        } else {
            (0, 0)
        };

        let section_alignment = o32(32);
        let file_alignment = o32(36);
        check_alignment(file_alignment, section_alignment)?;
        let size_of_image = o32(56);
        let size_of_headers = o32(60);

        if nsections == 0 || nsections > MAX_SECTIONS {
            return Err(PeError::bad(
                "NumberOfSections",
                nsections as u64,
                "not between 1 and 96 (systemd-stub's and the Windows loader's limit)",
            ));
        }
        let section_table_offset = opt + size_of_opt;
        let table_end = section_table_offset + nsections * SECTION_HEADER_SIZE;
        if table_end > b.len() {
            return Err(PeError::truncated(
                "section table",
                table_end as u64,
                b.len(),
            ));
        }
        if (size_of_headers as usize) < table_end {
            return Err(PeError::bad(
                "SizeOfHeaders",
                size_of_headers,
                format!("ends inside the headers, which run to {table_end:#x}"),
            ));
        }
        if size_of_headers as usize > b.len() {
            return Err(PeError::truncated(
                "headers (SizeOfHeaders)",
                u64::from(size_of_headers),
                b.len(),
            ));
        }
        if size_of_headers > size_of_image {
            return Err(PeError::bad(
                "SizeOfHeaders",
                size_of_headers,
                format!("exceeds SizeOfImage {size_of_image:#x}"),
            ));
        }
        let sections = (0..nsections)
            .map(|i| {
                section(
                    b,
                    section_table_offset + i * SECTION_HEADER_SIZE,
                    i,
                    size_of_image,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;

        let cert_end = u64::from(cert_table.0) + u64::from(cert_table.1);
        if cert_table.1 != 0 && cert_end > b.len() as u64 {
            return Err(PeError::truncated(
                format!(
                    "certificate table (data directory 4: offset {:#x} + size {:#x})",
                    cert_table.0, cert_table.1
                ),
                cert_end,
                b.len(),
            ));
        }

        Ok(PeHeaders {
            coff_offset: coff,
            opt_offset: opt,
            pe32_plus,
            machine: c16(0),
            characteristics: c16(18),
            pointer_to_symbol_table: c32(8),
            number_of_symbols: c32(12),
            major_image_version: o16(44),
            section_alignment,
            file_alignment,
            size_of_headers,
            size_of_image,
            size_of_initialized_data: o32(8),
            checksum: o32(64),
            number_of_rva_and_sizes,
            section_table_offset,
            sections,
            cert_table,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_rules() {
        // Real inputs: systemd 252 stub, Linux ≥ 6.7 bzImage, x86 bzImage before 6.7, arm64 64K.
        for (fa, sa) in [
            (0x200, 0x200),
            (0x200, 0x1000),
            (0x20, 0x20),
            (0x200, 0x10000),
        ] {
            assert_eq!(check_alignment(fa, sa), Ok(()), "{fa:#x}/{sa:#x}");
        }
        for (fa, sa, field) in [
            (0x4000_0000, 0x4000_0000, "FileAlignment"),
            (0x300, 0x1000, "FileAlignment"),
            (0, 0x1000, "FileAlignment"),
            (0x200, 0x100, "SectionAlignment"),
            (0x200, 0x1001, "SectionAlignment"),
            (0x200, 0x800, "FileAlignment"),
            (0x20, 0x1000, "FileAlignment"),
        ] {
            match check_alignment(fa, sa) {
                Err(PeError::BadField { field: f, .. }) => assert_eq!(f, field, "{fa:#x}/{sa:#x}"),
                other => panic!("{fa:#x}/{sa:#x}: {other:?}"),
            }
        }
    }
}
