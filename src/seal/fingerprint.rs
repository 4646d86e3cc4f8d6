//! The seal fingerprint: one digest of everything besides the base image that decides what a
//! seal produces (the signing certificate, the supplied binaries, every seal option and the
//! bootseal version). Sealed manifests carry it in [`FINGERPRINT_ANNOTATION`] so `sync` can
//! tell an up-to-date destination tag from one sealed differently, without reading its layers.

use super::{SealOptions, UkiSource};
use sha2::{Digest, Sha256};
use x509_cert::der::Encode;

/// The manifest (and index) annotation holding [`SealOptions::fingerprint`].
pub const FINGERPRINT_ANNOTATION: &str = "dev.bootseal.seal-fingerprint";

/// The image-spec annotation naming the manifest (or index) a sealed image was made from.
pub const BASE_DIGEST_ANNOTATION: &str = "org.opencontainers.image.base.digest";

fn hash_of(bytes: Option<&[u8]>) -> serde_json::Value {
    match bytes {
        Some(b) => format!("sha256:{}", hex::encode(Sha256::digest(b))).into(),
        None => serde_json::Value::Null,
    }
}

impl SealOptions {
    /// `sha256:…` over a canonical JSON of the certificate (DER), supplied UKI, boot loader and
    /// stub (by digest) and every option that changes the output. The base name is left out:
    /// it follows the base image, which `org.opencontainers.image.base.digest` already pins.
    /// The crate version is in: a newer bootseal may seal differently, so it reseals.
    pub fn fingerprint(&self) -> String {
        let cert = self
            .signer
            .as_ref()
            .map(|s| s.certificate())
            .or(self.cert.as_ref())
            .and_then(|c| c.to_der().ok());
        let uki = match &self.uki {
            UkiSource::Build => None,
            UkiSource::Signed(b) => Some(b.as_slice()),
        };
        let record = serde_json::json!({
            "bootseal": env!("CARGO_PKG_VERSION"),
            "certificate": hash_of(cert.as_deref()),
            "uki": hash_of(uki),
            "bootloader": hash_of(self.bootloader.as_deref()),
            "stub": hash_of(self.stub.as_deref()),
            "platforms": self.platforms.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "kargs": self.kargs,
            "keep_kernel": self.keep_kernel,
            "sign_bootloader": self.sign_bootloader,
            "allow_section_overlap": self.allow_section_overlap,
            "labels": self.labels,
            "compression": format!("{:?}", self.compression),
            "erofs_version": format!("{:?}", self.erofs_version),
            "compat": format!("{:?}", self.compat),
            "composefs_arg": format!("{:?}", self.composefs_arg),
            "allow_missing_verity": self.allow_missing_verity,
            "source_date_epoch": self.source_date_epoch,
            "dumpfile": self.dumpfile,
            "addons": self.addons.iter().map(|a| match a {
                super::AddonSource::Cmdline(text) => serde_json::json!({ "cmdline": text }),
                super::AddonSource::File { name, bytes } =>
                    serde_json::json!({ "file": name, "digest": hash_of(Some(bytes)) }),
            }).collect::<Vec<_>>(),
            "addon_scope": format!("{:?}", self.addon_scope),
        });
        let bytes = serde_json::to_vec(&record).expect("JSON of plain values");
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_changes_the_fingerprint() {
        let base = SealOptions::default().fingerprint();
        assert_eq!(base, SealOptions::default().fingerprint(), "stable");
        let changed = [
            SealOptions {
                kargs: vec!["quiet".into()],
                ..Default::default()
            },
            SealOptions {
                keep_kernel: true,
                ..Default::default()
            },
            SealOptions {
                stub: Some(vec![1, 2, 3]),
                ..Default::default()
            },
            SealOptions {
                source_date_epoch: Some(1),
                ..Default::default()
            },
            SealOptions {
                compression: Some(crate::layer_writer::LayerCompression::Zstd),
                ..Default::default()
            },
            SealOptions {
                labels: vec![("a".into(), "b".into())],
                ..Default::default()
            },
            SealOptions {
                dumpfile: false,
                ..Default::default()
            },
            SealOptions {
                addons: vec![super::super::AddonSource::Cmdline("quiet".into())],
                ..Default::default()
            },
        ];
        for opts in changed {
            assert_ne!(opts.fingerprint(), base);
        }
        let renamed = SealOptions {
            base_name: Some("example/x:1".into()),
            jobs: 9,
            ..Default::default()
        };
        assert_eq!(
            renamed.fingerprint(),
            base,
            "per-tag name and jobs are not options"
        );
    }
}
