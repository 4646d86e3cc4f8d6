//! The PE surgery of `ukify build` (`pe_add_sections` in systemd 257.3
//! `src/ukify/ukify.py`): strip a trailing COFF symbol table from the stub, re-align its
//! sections, round SizeOfHeaders up, then append each new section after the last one
//! (VirtualSize = data length, raw data FileAlignment-padded, address SectionAlignment-
//! aligned) — or, for a name the stub already has (`.sbat`), overwrite it in place — and
//! finally zero CheckSum and recompute SizeOfImage. Works on the stub's bytes directly so
//! the result can be byte-identical to ukify's.
//!
//! One departure: when the merged `.sbat` does not fit where the stub's `.sbat` sits — longer
//! than its raw data (where ukify fails), or running into the next section in memory (systemd
//! 252's stubs, 512-byte aligned, have `.sdmagic` 0x100 bytes after `.sbat`; ukify writes it
//! anyway and that stub then warns "Overlapping PE sections detected" and stalls 3 s) — the
//! stub's `.sbat` section is removed (header and raw data; its text is part of the merge) and
//! the merged one appended like any new section, which is how ukify lays out a stub without
//! `.sbat`. Renaming it instead would leave a section whose name starts with `.sbat`, and older
//! systemd-stubs match section names by prefix (`locate_sections` in `src/boot/efi/pe.c`
//! compares `strlen` of the wanted name); shim refuses a PE with two sections named `.sbat`
//! ("Image has multiple SBAT sections"). `allow_overlap` keeps ukify's overlapping layout.

use super::UkiError;
use crate::pe::{
    self, PeHeaders, SCN_CNT_CODE, SCN_CNT_INITIALIZED_DATA, SCN_MEM_READ, SECTION_HEADER_SIZE,
    SectionHeader, align_up,
};

/// A section to add: its name (≤ 8 bytes) and exact contents.
pub struct NewSection<'a> {
    pub name: &'static str,
    pub data: &'a [u8],
}

fn name_bytes(name: &str) -> [u8; 8] {
    let mut n = [0u8; 8];
    n[..name.len()].copy_from_slice(name.as_bytes());
    n
}

/// Patch name and the five layout fields of the header at `off`, keeping the rest.
fn write_header(out: &mut [u8], off: usize, h: &SectionHeader) {
    out[off..off + 8].copy_from_slice(&h.name);
    pe::put_u32(out, off + 8, h.virtual_size);
    pe::put_u32(out, off + 12, h.virtual_address);
    pe::put_u32(out, off + 16, h.size_of_raw_data);
    pe::put_u32(out, off + 20, h.pointer_to_raw_data);
    pe::put_u32(out, off + 36, h.characteristics);
}

fn to_u32(what: &str, v: u64) -> Result<u32, UkiError> {
    u32::try_from(v).map_err(|_| UkiError::TooLarge(what.to_string()))
}

/// The surgery below moves raw data section by section in table order; that is only right
/// when the stub's raw data follows its headers in table order without overlap (true of
/// every linker-made stub).
fn check_layout(pe: &PeHeaders) -> Result<(), UkiError> {
    let mut end = u64::from(pe.size_of_headers);
    for (i, s) in pe.sections.iter().enumerate() {
        if s.size_of_raw_data == 0 {
            continue;
        }
        if u64::from(s.pointer_to_raw_data) < end {
            return Err(UkiError::StubLayout(format!(
                "section {i} ({}) PointerToRawData {:#x} lies before the end {end:#x} of the headers or the previous section's raw data",
                s.display_name(),
                s.pointer_to_raw_data
            )));
        }
        end = s.raw_end();
    }
    Ok(())
}

/// Step 1: drop a COFF symbol (+ string) table that sits at the very end of the file, after
/// all section data.
fn strip_symbol_table(out: &mut Vec<u8>, pe: &mut PeHeaders) {
    if pe.pointer_to_symbol_table == 0 {
        return;
    }
    let start = u64::from(pe.pointer_to_symbol_table);
    let mut end = start + 18 * u64::from(pe.number_of_symbols);
    if let Some(b) = out.get(end as usize..(end + 4) as usize) {
        end += u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    }
    if end == out.len() as u64 && start >= pe.raw_data_end() {
        out.truncate(start as usize);
        pe::put_u32(out, pe.coff_offset + 8, 0);
        pe::put_u32(out, pe.coff_offset + 12, 0);
        pe.pointer_to_symbol_table = 0;
        pe.number_of_symbols = 0;
        // ukify also asks pefile to set IMAGE_FILE_LOCAL_SYMS_STRIPPED, but pefile does
        // not write flag attributes back, so Characteristics stays as it was; we match
        // ukify's actual output (checked byte for byte against ukify 257.13).
    }
}

/// Step 2: re-align the raw data of the stub's sections to FileAlignment.
fn realign(out: &mut Vec<u8>, pe: &mut PeHeaders) -> Result<(), UkiError> {
    let fa = u64::from(pe.file_alignment);
    for i in 0..pe.sections.len() {
        let s = &pe.sections[i];
        if s.size_of_raw_data == 0 {
            continue;
        }
        let (oldp, oldsz) = (
            u64::from(s.pointer_to_raw_data),
            u64::from(s.size_of_raw_data),
        );
        let (newp, newsz) = (align_up(oldp, fa), align_up(oldsz, fa));
        let shift = (newp - oldp) + (newsz - oldsz);
        if shift == 0 {
            continue;
        }
        let (p, end) = (oldp as usize, (oldp + oldsz) as usize);
        out.splice(end..end, std::iter::repeat_n(0, (newsz - oldsz) as usize));
        out.splice(p..p, std::iter::repeat_n(0, (newp - oldp) as usize));
        pe.sections[i].pointer_to_raw_data = to_u32("stub", newp)?;
        pe.sections[i].size_of_raw_data = to_u32("stub", newsz)?;
        for later in pe.sections[i + 1..]
            .iter_mut()
            .filter(|s| s.size_of_raw_data != 0)
        {
            later.pointer_to_raw_data =
                to_u32("stub", u64::from(later.pointer_to_raw_data) + shift)?;
        }
    }
    Ok(())
}

/// Whether `len` bytes fit in place of section `i` without overlapping the next section in
/// memory (the one with the lowest higher address).
fn fits_in_place(pe: &PeHeaders, i: usize, len: u32, allow_overlap: bool) -> bool {
    let s = &pe.sections[i];
    if len > s.size_of_raw_data {
        return false;
    }
    let next = pe
        .sections
        .iter()
        .filter(|o| o.virtual_address > s.virtual_address)
        .map(|o| o.virtual_address)
        .min();
    allow_overlap
        || next.is_none_or(|va| u64::from(s.virtual_address) + u64::from(len) <= u64::from(va))
}

/// Remove section `i`: its raw data from the file and its header from the table (later
/// headers move up one slot, the freed last slot is zeroed).
fn remove_section(out: &mut Vec<u8>, pe: &mut PeHeaders, i: usize) {
    let s = pe.sections.remove(i);
    if s.size_of_raw_data != 0 {
        let (p, n) = (s.pointer_to_raw_data as usize, s.size_of_raw_data as usize);
        out.drain(p..p + n);
        // check_layout: raw data of later sections in table order comes after it.
        for later in pe.sections[i..]
            .iter_mut()
            .filter(|o| o.size_of_raw_data != 0)
        {
            later.pointer_to_raw_data -= s.size_of_raw_data;
        }
        if u64::from(pe.pointer_to_symbol_table) >= s.raw_end() {
            pe.pointer_to_symbol_table -= s.size_of_raw_data;
            pe::put_u32(out, pe.coff_offset + 8, pe.pointer_to_symbol_table);
        }
    }
    let from = pe.section_header_offset(i);
    let end = pe.section_header_offset(pe.sections.len() + 1);
    out.copy_within(from + SECTION_HEADER_SIZE..end, from);
    out[end - SECTION_HEADER_SIZE..end].fill(0);
}

/// Append `new` after everything else, in memory and in the file.
fn append_section(
    out: &mut Vec<u8>,
    pe: &mut PeHeaders,
    new: &NewSection<'_>,
) -> Result<(), UkiError> {
    let slot = pe.section_header_offset(pe.sections.len());
    // The header room ends at SizeOfHeaders and before any section's raw data.
    let room_end = pe
        .sections
        .iter()
        .filter(|s| s.size_of_raw_data != 0)
        .map(|s| s.pointer_to_raw_data as usize)
        .fold(pe.size_of_headers as usize, usize::min)
        .min(out.len());
    if slot + SECTION_HEADER_SIZE > room_end {
        return Err(UkiError::NoHeaderRoom {
            name: new.name.to_string(),
            sections: pe.sections.len(),
            size_of_headers: pe.size_of_headers,
        });
    }
    let (fa, sa) = (
        u64::from(pe.file_alignment),
        u64::from(pe.section_alignment),
    );
    let image_end = pe.sections.iter().map(mapped_end).max().unwrap_or(0);
    let ptr = align_up(out.len() as u64, fa);
    let raw_size = align_up(new.data.len() as u64, fa);
    let header = SectionHeader {
        name: name_bytes(new.name),
        virtual_size: to_u32(new.name, new.data.len() as u64)?,
        virtual_address: to_u32(new.name, align_up(image_end, sa))?,
        size_of_raw_data: to_u32(new.name, raw_size)?,
        pointer_to_raw_data: to_u32(new.name, ptr)?,
        characteristics: SCN_MEM_READ
            | if new.name == ".linux" {
                // Old kernels using the EFI handover protocol run in place.
                SCN_CNT_CODE
            } else {
                SCN_CNT_INITIALIZED_DATA
            },
    };
    to_u32(new.name, header.virtual_end())?;
    out.resize(ptr as usize, 0);
    out.extend_from_slice(new.data);
    out.resize((ptr + raw_size) as usize, 0);
    out[slot..slot + SECTION_HEADER_SIZE].fill(0);
    pe.size_of_initialized_data = pe
        .size_of_initialized_data
        .wrapping_add(header.virtual_size);
    pe.sections.push(header);
    Ok(())
}

/// Where a section ends in memory as the firmware maps it (SizeOfRawData if VirtualSize is 0).
fn mapped_end(s: &SectionHeader) -> u64 {
    if s.virtual_size == 0 {
        u64::from(s.virtual_address) + u64::from(s.size_of_raw_data)
    } else {
        s.virtual_end()
    }
}

/// Build the UKI bytes from `stub` and `sections` (in file order).
pub fn assemble(
    stub: &[u8],
    sections: &[NewSection<'_>],
    allow_overlap: bool,
) -> Result<Vec<u8>, UkiError> {
    let mut pe = PeHeaders::parse(stub).map_err(UkiError::Stub)?;
    if pe.cert_table != (0, 0) {
        return Err(UkiError::StubSigned);
    }
    check_layout(&pe)?;
    // Growth is bounded by the inputs: re-alignment adds < 2 FileAlignment (≤ 64 KiB, checked
    // by parse) per stub section, each new section < 1 FileAlignment of padding.
    let fa = pe.file_alignment as usize;
    let total: usize = sections.iter().map(|s| s.data.len() + fa).sum();
    // Spare room so a signature can be appended without reallocating (authenticode::sign_owned).
    let mut out = Vec::with_capacity(stub.len() + total + 2 * fa * pe.sections.len() + 64 * 1024);
    out.extend_from_slice(stub);

    strip_symbol_table(&mut out, &mut pe);
    realign(&mut out, &mut pe)?;
    // 3. Free header room: the first section's data starts FileAlignment-aligned.
    pe.size_of_headers = to_u32(
        "headers",
        align_up(u64::from(pe.size_of_headers), fa as u64),
    )?;

    let mut n_original = pe.sections.len();
    for new in sections {
        let len = to_u32(new.name, new.data.len() as u64)?;
        let existing = pe.sections[..n_original]
            .iter()
            .position(|s| s.name_str() == new.name);
        if let Some(i) = existing {
            if fits_in_place(&pe, i, len, allow_overlap) {
                // In place, like ukify: the stub's own `.sbat` receives the merged text.
                let s = &pe.sections[i];
                let p = s.pointer_to_raw_data as usize;
                out[p..p + s.size_of_raw_data as usize].fill(0);
                out[p..p + new.data.len()].copy_from_slice(new.data);
                pe.sections[i].virtual_size = len;
                // ukify sets SizeOfRawData to the aligned new length; that never exceeds the
                // old (aligned) size, and keeping the old size keeps later file offsets valid.
                continue;
            }
            remove_section(&mut out, &mut pe, i);
            n_original -= 1;
        }
        append_section(&mut out, &mut pe, new)?;
    }

    // Write back the header fields.
    for (i, s) in pe.sections.iter().enumerate() {
        write_header(&mut out, pe.section_header_offset(i), s);
    }
    let nsec =
        u16::try_from(pe.sections.len()).map_err(|_| UkiError::TooLarge("section table".into()))?;
    pe::put_u16(&mut out, pe.coff_offset + 2, nsec);
    pe::put_u32(&mut out, pe.size_of_headers_offset(), pe.size_of_headers);
    pe::put_u32(
        &mut out,
        pe.size_of_initialized_data_offset(),
        pe.size_of_initialized_data,
    );
    pe::put_u32(&mut out, pe.checksum_offset(), 0);
    let image_end = pe.sections.iter().map(mapped_end).max().unwrap_or(0);
    let size_of_image = to_u32(
        "image",
        align_up(image_end, u64::from(pe.section_alignment)),
    )?;
    pe::put_u32(&mut out, pe.size_of_image_offset(), size_of_image);
    // The result must itself be a PE that the stub and firmware accept (e.g. ≤ 96 sections).
    PeHeaders::parse(&out)
        .map_err(|e| UkiError::StubLayout(format!("the assembled UKI would be invalid: {e}")))?;
    Ok(out)
}
