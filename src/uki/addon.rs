//! UKI add-ons: systemd's add-on stub (`addonx64.efi.stub`, `addonaa64.efi.stub`) with a
//! `.cmdline` and a `.sbat`, laid out as `ukify build --stub addon….efi.stub --cmdline …`
//! without `--linux` lays it out (systemd 257 `src/ukify/ukify.py`, `make_uki`): the given
//! sections in ukify's order, then a `.sbat` merged from the texts alone (an add-on's SBAT
//! does not take the stub's), defaulting to ukify's `uki-addon` component line.
//! systemd-stub (>= 254) appends an add-on's `.cmdline` to the UKI's when it verifies.

use super::assemble::{self, NewSection};
use super::{UkiError, sbat};
use crate::pe::PeHeaders;

/// ukify 257's default SBAT for an add-on (`ADDON_SBAT`): the header and the `uki-addon` line.
pub const DEFAULT_ADDON_SBAT: &str = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nuki-addon,1,UKI Addon,addon,1,https://www.freedesktop.org/software/systemd/man/latest/systemd-stub.html\n";

/// What an add-on is made of.
#[derive(Default)]
pub struct AddonInputs<'a> {
    /// systemd's add-on stub, unsigned.
    pub stub: &'a [u8],
    /// The exact `.cmdline` bytes (see [`super::normalize_cmdline`] for ukify's text form).
    pub cmdline: &'a [u8],
    /// SBAT texts (each with its `sbat,` header line); None = [`DEFAULT_ADDON_SBAT`].
    pub sbat: Option<Vec<&'a str>>,
}

/// What the stub's `.sdmagic` says it is (`systemd-addon 257.13`, `systemd-stub 257.13`).
fn sdmagic(stub: &[u8]) -> Option<String> {
    let pe = PeHeaders::parse(stub).ok()?;
    let data = pe.section_data(stub, pe.section(".sdmagic")?).ok()?;
    let text = String::from_utf8_lossy(data);
    let inner = text.trim_matches(char::from(0)).trim();
    let inner = inner
        .trim_start_matches("#### LoaderInfo:")
        .trim_end_matches("####");
    Some(inner.trim().to_owned())
}

/// Assembles the unsigned add-on.
pub fn build_addon(inputs: &AddonInputs<'_>) -> Result<Vec<u8>, UkiError> {
    let pe = PeHeaders::parse(inputs.stub).map_err(UkiError::Stub)?;
    if let Some(magic) = sdmagic(inputs.stub)
        && !magic.starts_with("systemd-addon")
    {
        return Err(UkiError::NotAddonStub(format!(
            "its .sdmagic says \"{}\" (use addon<arch>.efi.stub from systemd-boot-efi >= 254)",
            crate::text::escape_controls(&magic)
        )));
    }
    if pe.section(".linux").is_some() {
        return Err(UkiError::NotAddonStub(
            "it already carries a .linux section (a UKI?)".into(),
        ));
    }
    let texts = inputs
        .sbat
        .clone()
        .unwrap_or_else(|| vec![DEFAULT_ADDON_SBAT]);
    let merged = sbat::merge(&[], &texts);
    let sections = [
        NewSection {
            name: ".cmdline",
            data: inputs.cmdline,
        },
        NewSection {
            name: ".sbat",
            data: &merged,
        },
    ];
    assemble::assemble(inputs.stub, &sections, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sbat_is_ukifys_addon_text() {
        let merged = sbat::merge(&[], &[DEFAULT_ADDON_SBAT]);
        assert_eq!(merged, format!("{DEFAULT_ADDON_SBAT}\0").into_bytes());
    }
}
