//! The PE surgery of `ukify build` (research/uki.md §1.3; `pe_add_sections` in systemd's
//! `src/ukify/ukify.py`): strip a trailing COFF symbol table from the stub, re-align its
//! sections, round SizeOfHeaders up, then append each new section after the last one
//! (VirtualSize = data length, raw data FileAlignment-padded, address SectionAlignment-
//! aligned) — or, for a name the stub already has (`.sbat`), overwrite it in place — and
//! finally zero CheckSum and recompute SizeOfImage. Works on the stub's bytes directly so
//! the result can be byte-identical to ukify's.

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

fn u32_len(name: &str, len: usize) -> Result<u32, UkiError> {
    u32::try_from(len).map_err(|_| UkiError::TooLarge(name.to_string()))
}

/// Build the UKI bytes from `stub` and `sections` (in file order).
pub fn assemble(
    stub: &[u8],
    sections: &[NewSection<'_>],
    allow_overlap: bool,
) -> Result<Vec<u8>, UkiError> {
    let mut pe = PeHeaders::parse(stub).map_err(|e| UkiError::Stub(e.to_string()))?;
    if pe.cert_table != (0, 0) {
        return Err(UkiError::StubSigned);
    }
    let total: usize = sections
        .iter()
        .map(|s| s.data.len() + pe.file_alignment as usize)
        .sum();
    // Spare room so a signature can be appended without reallocating (authenticode::sign_owned).
    let mut out = Vec::with_capacity(stub.len() + total + 64 * 1024);
    out.extend_from_slice(stub);

    // 1. Drop a COFF symbol (+ string) table that sits at the very end of the file.
    if pe.pointer_to_symbol_table != 0 {
        let start = pe.pointer_to_symbol_table as usize;
        let mut size = 18 * pe.number_of_symbols as usize;
        if let Some(b) = out.get(start + size..start + size + 4) {
            size += u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        }
        if start + size == out.len() {
            out.truncate(start);
            pe::put_u32(&mut out, pe.coff_offset + 8, 0);
            pe::put_u32(&mut out, pe.coff_offset + 12, 0);
            // ukify also asks pefile to set IMAGE_FILE_LOCAL_SYMS_STRIPPED, but pefile does
            // not write flag attributes back, so Characteristics stays as it was; we match
            // ukify's actual output (checked byte for byte against ukify 257.13).
        }
    }

    // 2. Re-align raw data of the stub's sections to FileAlignment.
    let fa = u64::from(pe.file_alignment);
    let sa = u64::from(pe.section_alignment);
    for i in 0..pe.sections.len() {
        let (oldp, oldsz) = (
            pe.sections[i].pointer_to_raw_data as usize,
            pe.sections[i].size_of_raw_data as usize,
        );
        let newp = align_up(oldp as u64, fa) as usize;
        let newsz = align_up(oldsz as u64, fa) as usize;
        let (padp, padsz) = (newp - oldp, newsz - oldsz);
        if padp == 0 && padsz == 0 {
            continue;
        }
        let body = out
            .get(oldp..oldp + oldsz)
            .ok_or_else(|| UkiError::Stub("section data outside the file".into()))?
            .to_vec();
        let tail = out.split_off(oldp + oldsz);
        out.truncate(oldp);
        out.resize(oldp + padp, 0);
        out.extend_from_slice(&body);
        out.resize(out.len() + padsz, 0);
        out.extend_from_slice(&tail);
        pe.sections[i].pointer_to_raw_data = newp as u32;
        pe.sections[i].size_of_raw_data = newsz as u32;
        for later in &mut pe.sections[i + 1..] {
            later.pointer_to_raw_data += (padp + padsz) as u32;
        }
    }

    // 3. Free header room: the first section's data starts FileAlignment-aligned.
    pe.size_of_headers = align_up(u64::from(pe.size_of_headers), fa) as u32;

    let n_original = pe.sections.len();
    for new in sections {
        let len = u32_len(new.name, new.data.len())?;
        let existing = pe.sections[..n_original]
            .iter()
            .position(|s| s.name_str() == new.name);
        if let Some(i) = existing {
            // In place, like ukify: the stub's own `.sbat` receives the merged text.
            let s = pe.sections[i].clone();
            if len > s.size_of_raw_data {
                return Err(UkiError::SectionTooBig {
                    name: new.name.to_string(),
                    size: len,
                    room: s.size_of_raw_data,
                });
            }
            let next = pe
                .sections
                .iter()
                .filter(|o| o.virtual_address > s.virtual_address)
                .min_by_key(|o| o.virtual_address);
            if let Some(next) = next
                && u64::from(s.virtual_address) + u64::from(len) > u64::from(next.virtual_address)
                && !allow_overlap
            {
                return Err(UkiError::SectionOverlap {
                    name: new.name.to_string(),
                    end: u64::from(s.virtual_address) + u64::from(len),
                    next: next.name_str(),
                    next_va: next.virtual_address,
                });
            }
            let p = s.pointer_to_raw_data as usize;
            let old_raw = s.size_of_raw_data as usize;
            out[p..p + old_raw].fill(0);
            out[p..p + new.data.len()].copy_from_slice(new.data);
            pe.sections[i].virtual_size = len;
            // ukify sets SizeOfRawData to the aligned new length; that never exceeds the
            // old (aligned) size, and keeping the old size keeps later file offsets valid.
            continue;
        }
        let slot = pe.section_header_offset(pe.sections.len());
        if slot + SECTION_HEADER_SIZE > pe.size_of_headers as usize {
            return Err(UkiError::NoHeaderRoom {
                name: new.name.to_string(),
                sections: pe.sections.len(),
                size_of_headers: pe.size_of_headers,
            });
        }
        let last = pe
            .sections
            .last()
            .ok_or_else(|| UkiError::Stub("stub has no sections".into()))?;
        let va = align_up(last.virtual_end(), sa);
        let ptr = align_up(out.len() as u64, fa);
        let raw_size = u32_len(new.name, align_up(new.data.len() as u64, fa) as usize)?;
        let header = SectionHeader {
            name: name_bytes(new.name),
            virtual_size: len,
            virtual_address: u32::try_from(va).map_err(|_| UkiError::TooLarge(new.name.into()))?,
            size_of_raw_data: raw_size,
            pointer_to_raw_data: u32::try_from(ptr)
                .map_err(|_| UkiError::TooLarge(new.name.into()))?,
            characteristics: SCN_MEM_READ
                | if new.name == ".linux" {
                    // Old kernels using the EFI handover protocol run in place.
                    SCN_CNT_CODE
                } else {
                    SCN_CNT_INITIALIZED_DATA
                },
        };
        out.resize(ptr as usize, 0);
        out.extend_from_slice(new.data);
        out.resize(ptr as usize + raw_size as usize, 0);
        out[slot..slot + SECTION_HEADER_SIZE].fill(0);
        pe.sections.push(header);
        pe.size_of_initialized_data = pe.size_of_initialized_data.wrapping_add(len);
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
    let last = pe
        .sections
        .last()
        .ok_or_else(|| UkiError::Stub("stub has no sections".into()))?;
    let size_of_image = align_up(last.virtual_end(), sa);
    pe::put_u32(
        &mut out,
        pe.size_of_image_offset(),
        u32::try_from(size_of_image).map_err(|_| UkiError::TooLarge("image".into()))?,
    );
    Ok(out)
}
