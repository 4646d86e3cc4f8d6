//! `seal`: the whole pipeline. Read the base image from a source, compute its composefs digest
//! over the final tree, build and sign the UKI (and systemd-boot), produce the new top layer,
//! config and manifest as new values, then write them to a sink: base blobs first (mounted or
//! copied), the new layer streamed, the config, and the manifest (or index) last.

pub mod addons;
mod boot_inputs;
mod composefs;
pub(crate) mod enroll;
mod fingerprint;
mod image;
mod write;

pub use addons::{AddonScope, AddonSource};
pub use boot_inputs::{BootInputs, capture_set, efi_arch};
pub use fingerprint::{BASE_DIGEST_ANNOTATION, FINGERPRINT_ANNOTATION};
pub use image::{
    Prepared, SealedImage, addon_stub_from_image, prepare, prepare_image, seal_image,
    stub_from_image,
};
pub use write::{SealReport, rehearse, seal};

use crate::cmdline::{ArgForm, Expected};
use crate::compression::Compression;
use crate::digest::{ComposefsCompat, DigestError, ErofsVersion};
use crate::manifest::Platform;
use crate::signer::{CertifiedSigner, OfflineSigner};
use crate::source::SourceError;
use std::sync::Arc;
use x509_cert::Certificate;

/// Where the UKI comes from.
#[derive(Clone, Debug, Default)]
pub enum UkiSource {
    /// Built here from the image's kernel, initramfs, os-release and stub, then signed.
    #[default]
    Build,
    /// Built and signed elsewhere (`--uki`); checked against the digest computed here.
    Signed(Vec<u8>),
}

/// Everything `seal` needs besides the source and destination.
pub struct SealOptions {
    pub platforms: Vec<Platform>,
    /// Signs the UKI and systemd-boot (key file or PKCS#11 token).
    pub signer: Option<Arc<CertifiedSigner>>,
    /// Verifies supplied signed binaries (`--uki`, `--bootloader`).
    pub cert: Option<Certificate>,
    pub kargs: Vec<String>,
    pub keep_kernel: bool,
    pub sign_bootloader: bool,
    pub uki: UkiSource,
    pub bootloader: Option<Vec<u8>>,
    pub stub: Option<Vec<u8>>,
    /// Write the merged `.sbat` in place even where it overlaps the next stub section (ukify's
    /// layout) instead of moving it after the stub's sections (see `uki::assemble`).
    pub allow_section_overlap: bool,
    pub labels: Vec<(String, String)>,
    /// The new layer's compression; None: by manifest family ([`Compression::default_for`]).
    pub compression: Option<Compression>,
    pub erofs_version: ErofsVersion,
    /// composefs-rs release whose digest semantics to follow.
    pub compat: ComposefsCompat,
    /// Spelling of the composefs argument on the UKI's command line.
    pub composefs_arg: ArgForm,
    /// Write (and accept in `--uki`) the `?` form: fs-verity optional at boot.
    pub allow_missing_verity: bool,
    /// `SOURCE_DATE_EPOCH`: the date of the new config, history entry and layer mtimes. None
    /// dates them like the base image (`mutate::base_date`), else 1970-01-01.
    pub source_date_epoch: Option<u64>,
    /// The base image's registry name (`HOST/REPO:TAG`) for `org.opencontainers.image.base.name`;
    /// None for local layouts and archives, whose paths the image-spec does not define there.
    pub base_name: Option<String>,
    pub jobs: usize,
    pub progress: crate::progress::Progress,
    /// Secure Boot enrollment payloads to carry for `bootc install` (`--enroll-keys`).
    pub enrollment: Option<crate::efi_keys::Enrollment>,
    /// Parsed base layers shared between the seals of one run (`sync`); None reads every layer.
    pub layer_cache: Option<std::sync::Arc<crate::digest::LayerCache>>,
    /// The key is elsewhere: `signer` holds this offline signer, which replays supplied
    /// signatures and, when recording (`--prepare-signing`), collects the requests; a
    /// recording run writes nothing.
    pub offline: Option<Arc<OfflineSigner>>,
    /// Put before each signing request id (`sync`: `TAG:`), so one request covers many seals.
    pub request_prefix: String,
    /// Write `/boot/<kver>.dump`, the composefs dumpfile of the tree the digest is computed
    /// from, which bootc prints a diff against when the UKI's digest does not match its own.
    pub dumpfile: bool,
    /// UKI add-ons to build or take, sign and place (`--addon-cmdline`, `--addon`).
    pub addons: Vec<AddonSource>,
    /// Where the add-ons go (`--addon-scope`).
    pub addon_scope: AddonScope,
    /// The composefs sealing metadata to write (digests by default; `--composefs-sign`).
    pub composefs: crate::composefs_meta::MetadataOptions,
}

impl Default for SealOptions {
    fn default() -> Self {
        SealOptions {
            platforms: vec![Platform::parse("linux/amd64").expect("valid")],
            signer: None,
            cert: None,
            kargs: Vec::new(),
            keep_kernel: false,
            sign_bootloader: true,
            uki: UkiSource::Build,
            bootloader: None,
            stub: None,
            allow_section_overlap: false,
            labels: vec![("containers.bootc".into(), "sealed".into())],
            compression: None,
            erofs_version: ErofsVersion::V1,
            compat: ComposefsCompat::V0_9_0,
            composefs_arg: ArgForm::Composefs,
            allow_missing_verity: false,
            source_date_epoch: None,
            base_name: None,
            jobs: 4,
            progress: crate::progress::Progress::new(crate::progress::Mode::Quiet),
            enrollment: None,
            layer_cache: None,
            offline: None,
            request_prefix: String::new(),
            dumpfile: true,
            addons: Vec::new(),
            addon_scope: AddonScope::Uki,
            composefs: crate::composefs_meta::MetadataOptions::digests(),
        }
    }
}

impl SealOptions {
    /// The signing request id of signature `name` for `platform`: the request prefix, then
    /// the platform when the seal covers several (`linux/arm64:uki`).
    pub fn request_id(&self, platform: &Platform, name: &str) -> String {
        match self.platforms.len() > 1 {
            true => format!("{}{platform}:{name}", self.request_prefix),
            false => format!("{}{name}", self.request_prefix),
        }
    }

    /// What the sealed command line must say for `digest_hex`.
    pub fn expected<'a>(&self, digest_hex: &'a str) -> Expected<'a> {
        Expected {
            digest_hex,
            erofs_version: self.erofs_version,
            allow_missing_verity: self.allow_missing_verity,
        }
    }
}

/// Why sealing failed; nothing was tagged.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("{image}: {message}")]
    Image { image: String, message: String },
    /// A `--prepare-signing` run: sealed up to the signatures, nothing written.
    #[error("{destination}: not written: {count} signature(s) to make first")]
    AwaitingSignatures { destination: String, count: usize },
    #[error("{destination}: {message}")]
    Destination {
        destination: String,
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_name_the_platform_only_when_a_seal_has_several() {
        let amd = Platform::parse("linux/amd64").unwrap();
        let arm = Platform::parse("linux/arm64").unwrap();
        let one = SealOptions::default();
        assert_eq!(one.request_id(&amd, "uki"), "uki");
        let two = SealOptions {
            platforms: vec![amd.clone(), arm.clone()],
            request_prefix: "v1:".into(),
            ..Default::default()
        };
        assert_eq!(two.request_id(&arm, "uki"), "v1:linux/arm64:uki");
        assert_eq!(
            two.request_id(&amd, "systemd-boot"),
            "v1:linux/amd64:systemd-boot"
        );
    }
}
