//! composefs OCI sealing metadata: the fs-verity digests (and signatures) a sealed image carries
//! so that registries, admission policies, composefs-rs and the kernel can check it before any
//! boot, as the composefs OCI sealing specification defines them (composefs-oci 0.9.0
//! `src/sealing_spec.rs`, a documentation module of the crate bootseal pins).
//!
//! Keys are role-prefixed: `composefs.{role}.erofs.v1.fsverity-sha512-12` for EROFS images
//! (`layer`, `merged`, `merged.bootable`), `composefs.{role}.fsverity-sha512-12` for JSON
//! objects (`config`, `manifest`); a signature's key is its digest's key plus `.sig`. Inline,
//! they are annotations of the image manifest ([`inline`]); as an artifact, a referrer manifest
//! of signature layers ([`artifact`]). Signatures are [`signature`]s.
//!
//! Only SHA-512 over 4 KiB blocks is written: the algorithm composefs-rs repositories and
//! bootc use, and the one the UKI's `composefs=` digest is. Only EROFS format V1 images are
//! named `erofs.v1`: composefs-rs's `FormatVersion::V1` writes `composefs_version = 1` in its
//! header, while its V2 (`--erofs-version 2`) is a different layout whose spec name
//! (`erofs.v2`?) the spec leaves to "a future version"; with V2 only the config digest, which
//! has no EROFS format, is written.

pub mod artifact;
pub(crate) mod inline;
pub mod signature;

use std::sync::Arc;

use composefs::fsverity::{FsVerityHashValue, Sha512HashValue};

use crate::signer::CertifiedSigner;

/// The digest algorithm and block size of every key bootseal writes (`fsverity-sha512-12`).
pub const ALGORITHM: &str = "fsverity-sha512-12";

/// The `artifactType` of a composefs metadata referrer.
pub const ARTIFACT_TYPE: &str = "application/vnd.composefs.metadata.v1";

/// The media type of a signature layer in a composefs metadata referrer.
pub const SIGNATURE_MEDIA_TYPE: &str = "application/vnd.composefs.signature.v1+pkcs7";

/// What a digest covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The image manifest's bytes (artifact mode only: inline it would describe itself).
    Manifest,
    /// The image config's bytes as stored in the registry.
    Config,
    /// One layer's own tree as an EROFS image.
    Layer,
    /// The merged tree of all layers as an EROFS image (composefs-oci's non-bootable id).
    Merged,
    /// The merged tree after the boot transform: the UKI's `composefs=` digest.
    MergedBootable,
}

impl Role {
    /// Every role, in the spec's artifact layer order (layers have no artifact entry).
    pub const ALL: [Role; 5] = [
        Role::Manifest,
        Role::Config,
        Role::Merged,
        Role::MergedBootable,
        Role::Layer,
    ];

    /// The role as the keys spell it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Manifest => "manifest",
            Role::Config => "config",
            Role::Layer => "layer",
            Role::Merged => "merged",
            Role::MergedBootable => "merged.bootable",
        }
    }

    /// Whether the object is an EROFS image (its key names the EROFS format).
    pub fn is_erofs(self) -> bool {
        matches!(self, Role::Layer | Role::Merged | Role::MergedBootable)
    }

    /// `composefs.{role}[.erofs.v1].fsverity-sha512-12`.
    pub fn digest_key(self) -> String {
        match self.is_erofs() {
            true => format!("composefs.{}.erofs.v1.{ALGORITHM}", self.name()),
            false => format!("composefs.{}.{ALGORITHM}", self.name()),
        }
    }

    /// The digest key plus `.sig`.
    pub fn signature_key(self) -> String {
        format!("{}.sig", self.digest_key())
    }

    /// The role and whether it is a signature, for a key bootseal writes; None for any other
    /// key (another algorithm, another EROFS version, not composefs).
    pub fn parse_key(key: &str) -> Option<(Role, bool)> {
        Role::ALL.into_iter().find_map(|role| {
            if key == role.digest_key() {
                Some((role, false))
            } else if key == role.signature_key() {
                Some((role, true))
            } else {
                None
            }
        })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where signatures go (`--composefs-sign`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignMode {
    /// `.sig` annotations beside the digests in the image manifest (config, merged,
    /// merged.bootable).
    Inline,
    /// A referrer manifest whose layers are the signatures of manifest, config, merged and
    /// merged.bootable, pushed after the image.
    Artifact,
}

impl std::str::FromStr for SignMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "inline" => Ok(SignMode::Inline),
            "artifact" => Ok(SignMode::Artifact),
            _ => Err(format!(
                "unknown composefs signature mode {s:?} (expected inline or artifact)"
            )),
        }
    }
}

/// What composefs metadata a seal writes.
#[derive(Clone, Default)]
pub struct MetadataOptions {
    /// Write the digests at all (`--no-composefs-metadata` turns them off).
    pub enabled: bool,
    /// Also each layer's own EROFS digest on its descriptor (`--composefs-layer-digests`).
    pub layer_digests: bool,
    /// Sign, and where the signatures go (`--composefs-sign`).
    pub sign: Option<SignMode>,
    /// The `.fs-verity` keyring key (`--composefs-key`/`--composefs-cert`); None: the seal's.
    pub signer: Option<Arc<CertifiedSigner>>,
}

impl MetadataOptions {
    /// The default of `seal`: digests, no layer digests, no signatures.
    pub fn digests() -> Self {
        MetadataOptions {
            enabled: true,
            ..Default::default()
        }
    }
}

/// fs-verity SHA-512 (4 KiB blocks, no salt) of `bytes`, lowercase hex: `fsverity digest
/// --hash-alg=sha512` of a file holding them.
pub fn verity_hex(bytes: &[u8]) -> String {
    composefs::fsverity::compute_verity::<Sha512HashValue>(bytes).to_hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_specs() {
        assert_eq!(
            Role::MergedBootable.digest_key(),
            "composefs.merged.bootable.erofs.v1.fsverity-sha512-12"
        );
        assert_eq!(
            Role::Config.signature_key(),
            "composefs.config.fsverity-sha512-12.sig"
        );
        assert_eq!(
            Role::Layer.digest_key(),
            "composefs.layer.erofs.v1.fsverity-sha512-12"
        );
        for role in Role::ALL {
            assert_eq!(Role::parse_key(&role.digest_key()), Some((role, false)));
            assert_eq!(Role::parse_key(&role.signature_key()), Some((role, true)));
        }
        assert_eq!(
            Role::parse_key("composefs.merged.erofs.v2.fsverity-sha512-12"),
            None
        );
        assert_eq!(Role::parse_key("composefs.config.fsverity-sha256-12"), None);
    }
}
