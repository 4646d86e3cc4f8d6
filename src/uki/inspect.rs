//! Reading a UKI (or any PE): its section table, `.cmdline`, `.uname`, os-release name,
//! embedded stub version, predicted PCR 11 and Authenticode signatures. Used by
//! `bootseal inspect` and by verification in the seal pipeline.

use super::UkiError;
use super::pcr::{self, Bank};
use crate::authenticode::{self, SignatureSummary};
use crate::pe::PeHeaders;
use serde::Serialize;

/// One row of the section table.
#[derive(Debug, Clone, Serialize)]
pub struct SectionInfo {
    pub name: String,
    pub virtual_address: u32,
    pub virtual_size: u32,
    pub pointer_to_raw_data: u32,
    pub size_of_raw_data: u32,
    pub characteristics: u32,
}

/// What `inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct UkiReport {
    pub arch: Option<&'static str>,
    pub stub_version: Option<u32>,
    pub size_of_image: u32,
    pub sections: Vec<SectionInfo>,
    pub cmdline: Option<String>,
    pub uname: Option<String>,
    pub os_release_name: Option<String>,
    pub os_release_pretty_name: Option<String>,
    pub sbat: Option<String>,
    /// Authenticode SHA-256 image digest (hex).
    pub image_digest: String,
    /// Predicted PCR 11 (`systemd-measure calculate --json` shape, all banks, sections
    /// only plus the default phase paths), if the stub version is known.
    pub pcr11: Option<serde_json::Value>,
    pub signatures: Vec<SignatureSummary>,
}

/// Value of `key` in an os-release text, shell quotes removed.
pub fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once('=')?;
        if k.trim() != key {
            return None;
        }
        let v = v.trim();
        let unq = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        Some(unq.replace("\\\"", "\"").replace("\\\\", "\\"))
    })
}

fn text_of(pe: &PeHeaders, image: &[u8], name: &str) -> Option<String> {
    let s = pe.section(name)?;
    let data = pe.section_data(image, s).ok()?;
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    Some(String::from_utf8_lossy(&data[..end]).into_owned())
}

/// Read a UKI (or any PE image).
pub fn inspect(image: &[u8]) -> Result<UkiReport, UkiError> {
    let pe = PeHeaders::parse(image).map_err(|e| UkiError::NotUki(e.to_string()))?;
    let sections = pe
        .sections
        .iter()
        .map(|s| SectionInfo {
            name: s.display_name(),
            virtual_address: s.virtual_address,
            virtual_size: s.virtual_size,
            pointer_to_raw_data: s.pointer_to_raw_data,
            size_of_raw_data: s.size_of_raw_data,
            characteristics: s.characteristics,
        })
        .collect();
    let os_release = text_of(&pe, image, ".osrel");
    let stub_version = super::stub::version(image);
    let pcr11 = stub_version.map(|v| {
        let mut named: Vec<(String, &[u8])> = Vec::new();
        for s in &pe.sections {
            if let Ok(d) = pe.section_data(image, s) {
                named.push((s.name_str(), d));
            }
        }
        let refs: Vec<(&str, &[u8])> = named.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        let mut phases = vec![""];
        phases.extend(pcr::DEFAULT_PHASES);
        pcr::to_json(&pcr::predict(v, &refs, &Bank::ALL, &phases))
    });
    let image_digest = authenticode::image_hash(image)
        .map(hex::encode)
        .map_err(|e| UkiError::NotUki(e.to_string()))?;
    let signatures =
        authenticode::signatures(image).map_err(|e| UkiError::NotUki(e.to_string()))?;
    Ok(UkiReport {
        arch: super::stub::arch(image),
        stub_version,
        size_of_image: pe.size_of_image,
        sections,
        cmdline: text_of(&pe, image, ".cmdline"),
        uname: text_of(&pe, image, ".uname"),
        os_release_name: os_release
            .as_deref()
            .and_then(|t| os_release_value(t, "NAME")),
        os_release_pretty_name: os_release
            .as_deref()
            .and_then(|t| os_release_value(t, "PRETTY_NAME")),
        sbat: text_of(&pe, image, ".sbat"),
        image_digest,
        pcr11,
        signatures,
    })
}
