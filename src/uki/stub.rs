//! Facts about the systemd-stub: its version (which decides what it measures) and
//! architecture.

use crate::pe::PeHeaders;

/// The systemd version of a stub, from `.sdmagic` (`#### LoaderInfo: systemd-stub 257.3
/// ####`) or, failing that, from `MajorImageVersion` as set by elf2efi (≥ 253).
pub fn version(stub: &[u8]) -> Option<u32> {
    let pe = PeHeaders::parse(stub).ok()?;
    if let Some(s) = pe.section(".sdmagic")
        && let Ok(data) = pe.section_data(stub, s)
    {
        let text = String::from_utf8_lossy(data);
        if let Some(rest) = text.split("systemd-stub ").nth(1) {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(v) = digits.parse() {
                return Some(v);
            }
        }
    }
    (pe.major_image_version >= 252).then_some(u32::from(pe.major_image_version))
}

/// EFI architecture name of a PE image's machine type (x64, aa64, …).
pub fn arch(image: &[u8]) -> Option<&'static str> {
    match PeHeaders::parse(image).ok()?.machine {
        0x8664 => Some("x64"),
        0xaa64 => Some("aa64"),
        0x014c => Some("ia32"),
        0x01c2 | 0x01c4 => Some("arm"),
        0x5064 => Some("riscv64"),
        0x6264 => Some("loongarch64"),
        _ => None,
    }
}
