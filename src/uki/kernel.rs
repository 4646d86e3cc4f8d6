//! Facts about the kernel image embedded as `.linux`: that it is a complete EFI-stub PE,
//! and its release string (`uname -r`) from the x86 boot protocol header.

use super::UkiError;
use crate::pe::PeHeaders;

/// Read the kernel release from an x86 bzImage: the setup header has magic `HdrS` at
/// 0x202 and, at 0x20E, the offset (minus 0x200) of a NUL-terminated version string whose
/// first word is the release (Linux `Documentation/arch/x86/boot.rst`, "kernel_version";
/// ukify's `Uname.scrape_x86`). None for other images (e.g. arm64).
pub fn release_from_bzimage(kernel: &[u8]) -> Option<String> {
    if kernel.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes([*kernel.get(0x20e)?, *kernel.get(0x20f)?]) as usize;
    let start = 0x200 + ptr;
    let text = kernel.get(start..(start + 128).min(kernel.len()))?;
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let s = std::str::from_utf8(&text[..end]).ok()?;
    let release = s.split_whitespace().next()?;
    if release.is_empty() || !release.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    Some(release.to_string())
}

/// Check that `kernel` is a PE image whose sections all lie inside the file.
pub fn check(kernel: &[u8]) -> Result<(), UkiError> {
    let pe = PeHeaders::parse(kernel).map_err(|e| UkiError::Kernel(e.to_string()))?;
    pe.check_raw_data_present(kernel.len())
        .map_err(|e| UkiError::KernelTruncated(e.to_string()))?;
    if let Some(last) = pe
        .sections
        .iter()
        .map(|s| u64::from(s.pointer_to_raw_data) + u64::from(s.size_of_raw_data))
        .max()
        && (kernel.len() as u64) < last
    {
        return Err(UkiError::KernelTruncated(format!(
            "file is {} bytes, sections end at {last}",
            kernel.len()
        )));
    }
    Ok(())
}
