//! `.sbat` merging as `ukify build` does it (`merge_sbat` in systemd 257.3
//! `src/ukify/ukify.py`): the standard header line, then the entries of the stub's `.sbat`,
//! the kernel's `.sbat` and the extra texts (each only if it starts with an `sbat,` header
//! line), no de-duplication, ending `\n\0`.

use crate::pe::PeHeaders;

/// The SBAT header line every `.sbat` starts with.
pub const SBAT_HEADER: &str =
    "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md";

/// ukify's default `--sbat` text: the header plus the `uki` component line.
pub const DEFAULT_UKI_SBAT: &str = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nuki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/\n";

/// Entries (lines after the header) of an SBAT text, or None if it has no `sbat,` header.
fn entries(text: &str) -> Option<Vec<String>> {
    let mut lines = text.lines();
    if !lines.next()?.starts_with("sbat,") {
        return None;
    }
    Some(lines.map(str::to_string).collect())
}

/// The `.sbat` text of a PE image (trailing NULs stripped), if it has one.
pub fn pe_sbat(image: &[u8]) -> Option<String> {
    let pe = PeHeaders::parse(image).ok()?;
    let s = pe.section(".sbat")?;
    let raw_end = (s.pointer_to_raw_data as usize).checked_add(s.size_of_raw_data as usize)?;
    let data = image.get(s.pointer_to_raw_data as usize..raw_end)?;
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    Some(String::from_utf8_lossy(&data[..end]).into_owned())
}

/// Merge the SBAT of `pes` (stub, kernel) and `texts` into the bytes of the new `.sbat`.
pub fn merge(pes: &[&[u8]], texts: &[&str]) -> Vec<u8> {
    let mut all: Vec<String> = Vec::new();
    for pe in pes {
        if let Some(e) = pe_sbat(pe).as_deref().and_then(entries) {
            all.extend(e);
        }
    }
    for t in texts {
        if let Some(e) = entries(t) {
            all.extend(e);
        }
    }
    let mut out = format!("{SBAT_HEADER}\n{}\n", all.join("\n")).into_bytes();
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_only_merge_matches_ukify_default() {
        // ukify 257.3 writes these exact bytes for the default .sbat; they are also the `.sbat`
        // input of the systemd-measure 257.3 known-answer vector in `uki::pcr`.
        let got = merge(&[], &[DEFAULT_UKI_SBAT]);
        let want = format!("{DEFAULT_UKI_SBAT}\0");
        assert_eq!(got, want.as_bytes());
    }

    #[test]
    fn text_without_header_is_ignored() {
        let got = merge(&[], &["uki,1,x\n", DEFAULT_UKI_SBAT]);
        assert_eq!(got, format!("{DEFAULT_UKI_SBAT}\0").as_bytes());
    }
}
