//! Unified Kernel Image assembly like `ukify build` (systemd 257.3 `src/ukify/ukify.py`,
//! `make_uki`), PCR 11 prediction (systemd 257.3 `src/boot/stub.c`, `measure_sections`) and a
//! reader for existing UKIs.
//!
//! [`build`] takes all inputs as bytes; where they come from (files, an image) is the
//! caller's business.

pub mod addon;
pub mod assemble;
pub mod inspect;
pub mod kernel;
pub mod pcr;
pub mod pcrsig;
pub mod sbat;
pub mod stub;

use crate::pe::PeError;
use assemble::NewSection;
use thiserror::Error;

pub use addon::{AddonInputs, build_addon};
pub use inspect::{UkiReport, inspect};
pub use pcr::{Bank, PcrValue};
pub use pcrsig::PcrSigning;

/// Why a UKI could not be built or read.
#[derive(Debug, Error)]
pub enum UkiError {
    #[error("stub is not a usable PE image: {0}")]
    Stub(PeError),
    #[error("stub's layout cannot be extended: {0}")]
    StubLayout(String),
    #[error("stub already carries a certificate table (signed); use an unsigned systemd-stub")]
    StubSigned,
    #[error("kernel is not an EFI-stub PE image: {0}")]
    Kernel(PeError),
    #[error("kernel image is truncated: {0}")]
    KernelTruncated(PeError),
    #[error(
        "no room in the stub's PE header for section {name} ({sections} section headers already, SizeOfHeaders {size_of_headers:#x})"
    )]
    NoHeaderRoom {
        name: String,
        sections: usize,
        size_of_headers: u32,
    },
    #[error("{0} is too large for a PE image")]
    TooLarge(String),
    #[error("cannot tell the systemd-stub version (no .sdmagic); give it explicitly")]
    UnknownStubVersion,
    #[error("PCR signature: {0}")]
    PcrSign(String),
    #[error("not a UKI: {0}")]
    NotUki(String),
    #[error("not an add-on stub: {0}")]
    NotAddonStub(String),
}

/// Everything a UKI is made of, as bytes.
#[derive(Default)]
pub struct UkiInputs<'a> {
    /// systemd-stub (`linuxx64.efi.stub`), unsigned.
    pub stub: &'a [u8],
    /// The kernel (EFI-stub PE bzImage / Image), embedded verbatim.
    pub linux: &'a [u8],
    /// The initrd, embedded verbatim; None for none.
    pub initrd: Option<&'a [u8]>,
    /// The image's os-release, embedded verbatim as `.osrel`.
    pub os_release: &'a [u8],
    /// The exact `.cmdline` bytes (see [`normalize_cmdline`] for ukify's text form).
    pub cmdline: Option<&'a [u8]>,
    /// Kernel release for `.uname`; read from the kernel image if None (omitted if not found).
    pub uname: Option<&'a str>,
    /// Extra SBAT texts (each with the `sbat,` header line); None = ukify's default `uki` line.
    pub sbat: Option<Vec<&'a str>>,
    /// Add `.pcrpkey` and a signed `.pcrsig`.
    pub pcr_signing: Option<PcrSigning>,
    /// systemd version of the stub; read from its `.sdmagic` if None.
    pub stub_version: Option<u32>,
    /// Where the merged `.sbat` does not fit the stub's own `.sbat` in memory (systemd 252's
    /// 512-byte-aligned stubs), write it there anyway and overlap the next section, as ukify
    /// does, instead of moving it after the stub's sections (see [`assemble`]).
    pub allow_section_overlap: bool,
}

/// ukify's treatment of a command line given as text: words joined by single spaces,
/// no trailing newline.
pub fn normalize_cmdline(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The sections ukify would add, in file order, without `.pcrsig`.
struct Plan<'a> {
    sections: Vec<(&'static str, std::borrow::Cow<'a, [u8]>)>,
}

fn plan<'a>(inputs: &'a UkiInputs<'a>) -> Result<Plan<'a>, UkiError> {
    use std::borrow::Cow;
    check_stub(inputs.stub)?;
    kernel::check(inputs.linux)?;
    let mut sections: Vec<(&'static str, Cow<'a, [u8]>)> = Vec::new();
    sections.push((".osrel", Cow::Borrowed(inputs.os_release)));
    if let Some(c) = inputs.cmdline {
        sections.push((".cmdline", Cow::Borrowed(c)));
    }
    let uname = match inputs.uname {
        Some(u) => Some(u.to_string()),
        None => kernel::release(inputs.linux),
    };
    if let Some(u) = uname {
        sections.push((".uname", Cow::Owned(u.into_bytes())));
    }
    if let Some(s) = &inputs.pcr_signing {
        sections.push((".pcrpkey", Cow::Owned(s.pcrpkey()?)));
    }
    sections.push((".linux", Cow::Borrowed(inputs.linux)));
    if let Some(i) = inputs.initrd {
        sections.push((".initrd", Cow::Borrowed(i)));
    }
    let texts = inputs
        .sbat
        .clone()
        .unwrap_or_else(|| vec![sbat::DEFAULT_UKI_SBAT]);
    sections.push((
        ".sbat",
        Cow::Owned(sbat::merge(&[inputs.stub, inputs.linux], &texts)),
    ));
    Ok(Plan { sections })
}

fn check_stub(stub: &[u8]) -> Result<(), UkiError> {
    crate::pe::PeHeaders::parse(stub).map_err(UkiError::Stub)?;
    Ok(())
}

fn stub_version(inputs: &UkiInputs<'_>) -> Result<u32, UkiError> {
    inputs
        .stub_version
        .or_else(|| stub::version(inputs.stub))
        .ok_or(UkiError::UnknownStubVersion)
}

/// Assemble the unsigned UKI.
pub fn build(inputs: &UkiInputs<'_>) -> Result<Vec<u8>, UkiError> {
    let plan = plan(inputs)?;
    let mut pcrsig = None;
    if let Some(signing) = &inputs.pcr_signing {
        let version = stub_version(inputs)?;
        let measured: Vec<(&str, &[u8])> = plan
            .sections
            .iter()
            .map(|(n, d)| (*n, d.as_ref()))
            .collect();
        pcrsig = Some(pcrsig::pcrsig_json(signing, version, &measured)?);
    }
    let mut sections: Vec<NewSection<'_>> = plan
        .sections
        .iter()
        .map(|(name, data)| NewSection {
            name,
            data: data.as_ref(),
        })
        .collect();
    if let Some(j) = &pcrsig {
        sections.push(NewSection {
            name: ".pcrsig",
            data: j.as_bytes(),
        });
    }
    assemble::assemble(inputs.stub, &sections, inputs.allow_section_overlap)
}

/// Predict PCR 11 for the UKI these inputs make, for the stub they embed.
pub fn measure(
    inputs: &UkiInputs<'_>,
    banks: &[Bank],
    phases: &[&str],
) -> Result<Vec<PcrValue>, UkiError> {
    let plan = plan(inputs)?;
    let version = stub_version(inputs)?;
    let mut measured: Vec<(&str, &[u8])> = plan
        .sections
        .iter()
        .map(|(n, d)| (*n, d.as_ref()))
        .collect();
    // The stub measures its own merged .sbat in place; it is in the plan already.
    measured.dedup_by_key(|(n, _)| *n);
    Ok(pcr::predict(version, &measured, banks, phases))
}

/// An add-on's `.cmdline` text (empty if it has none); `what` names it in errors.
pub(crate) fn addon_cmdline(bytes: &[u8], what: &str) -> Result<String, String> {
    let report = inspect(bytes).map_err(|e| format!("add-on {what}: {e}"))?;
    if report.sections.iter().any(|s| s.name == ".linux") {
        return Err(format!(
            "add-on {what} has a .linux section: it is a UKI, not an add-on"
        ));
    }
    Ok(report.cmdline.unwrap_or_default())
}
