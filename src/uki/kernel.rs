//! Facts about the kernel image embedded as `.linux`: that it is a complete EFI-stub PE,
//! and its release string (`uname -r`) from the x86 boot protocol header.

use super::UkiError;
use crate::pe::{PeError, PeHeaders};

/// The kernel release (`uname -r`) of a kernel image, found the way ukify's
/// `Uname.scrape` finds it: from the x86 boot header, else from the
/// `Linux version X (` banner inside an uncompressed image (arm64 `Image`).
pub fn release(kernel: &[u8]) -> Option<String> {
    release_from_bzimage(kernel).or_else(|| release_from_banner(kernel))
}

/// Read the kernel release from an x86 bzImage: the setup header has magic `HdrS` at
/// 0x202 and, at 0x20E, the offset (minus 0x200) of a NUL-terminated version string
/// `RELEASE (BUILDER) #…` (Linux `Documentation/arch/x86/boot.rst`, "kernel_version";
/// ukify's `Uname.scrape_x86` and its VERSION_PATTERN). None for other images.
pub fn release_from_bzimage(kernel: &[u8]) -> Option<String> {
    if kernel.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes([*kernel.get(0x20e)?, *kernel.get(0x20f)?]) as usize;
    let start = 0x200 + ptr;
    let text = kernel.get(start..(start + 128).min(kernel.len()))?;
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let s = std::str::from_utf8(&text[..end]).ok()?;
    // RELEASE: [a-z0-9._+-]+, then " (", a builder without spaces or ')', then ") #".
    let (release, rest) = s.split_once(' ')?;
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._+-".contains(c);
    if release.is_empty() || !release.chars().all(ok_char) {
        return None;
    }
    let builder = rest.strip_prefix('(')?;
    let close = builder.find(')')?;
    if close == 0 || builder[..close].contains(' ') || !builder[close + 1..].starts_with(" #") {
        return None;
    }
    Some(release.to_string())
}

/// Find `Linux version D.REST (` in the image bytes (ukify's TEXT_PATTERN
/// `Linux version (\d\.\S+) \(`), returning `D.REST`.
pub fn release_from_banner(kernel: &[u8]) -> Option<String> {
    const NEEDLE: &[u8] = b"Linux version ";
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut from = 0;
    while let Some(pos) = find(&kernel[from..], NEEDLE) {
        let v = from + pos + NEEDLE.len();
        from = v;
        let rest = &kernel[v..];
        if rest.len() < 3 || !rest[0].is_ascii_digit() || rest[1] != b'.' {
            continue;
        }
        let run = rest[2..]
            .iter()
            .position(|&b| is_space(b))
            .unwrap_or(rest.len() - 2);
        if run == 0 || rest.get(2 + run..2 + run + 2) != Some(b" (") {
            continue;
        }
        return String::from_utf8(rest[..2 + run].to_vec()).ok();
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Check that `kernel` is a valid PE image (which includes every section's raw data lying
/// inside the file; a cut-off kernel is reported as truncated).
pub fn check(kernel: &[u8]) -> Result<(), UkiError> {
    match PeHeaders::parse(kernel) {
        Ok(_) => Ok(()),
        Err(e @ PeError::Truncated { .. }) => Err(UkiError::KernelTruncated(e)),
        Err(e) => Err(UkiError::Kernel(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner() {
        let img =
            b"xxLinux version %s\0Linux version 6.12.117+deb13-arm64 (debian-kernel@lists) #1 SMP";
        assert_eq!(
            release_from_banner(img).as_deref(),
            Some("6.12.117+deb13-arm64")
        );
        assert_eq!(release_from_banner(b"Linux version 6.1 x"), None);
    }
}
