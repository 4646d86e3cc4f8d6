//! The seal fingerprint: one digest of everything besides the base image that decides what a
//! seal produces (the signing certificate, the supplied binaries, the enrollment payloads, every
//! seal option and the bootseal version). Sealed manifests carry it in [`FINGERPRINT_ANNOTATION`]
//! so `sync` can tell an up-to-date destination tag from one sealed differently, without reading
//! its layers.

use super::{SealOptions, UkiSource};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
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

fn hash_of_cert(cert: Option<&Certificate>) -> serde_json::Value {
    // A certificate that cannot be encoded cannot have been parsed; hash nothing rather than
    // panic, and keep it distinct from "no certificate".
    match cert.map(|c| c.to_der()) {
        Some(Ok(der)) => hash_of(Some(&der)),
        Some(Err(_)) => "unencodable".into(),
        None => serde_json::Value::Null,
    }
}

impl SealOptions {
    /// `sha256:…` over a canonical JSON of every field that changes the output: certificates
    /// (DER), supplied UKI, boot loader and stub and the enrollment files (by digest), and
    /// every option's value. The struct is destructured without `..`, so a new field does not
    /// compile until it is placed here or named as not changing the output.
    /// The crate version is in: a newer bootseal may seal differently, so it reseals.
    pub fn fingerprint(&self) -> String {
        let SealOptions {
            platforms,
            signer,
            cert,
            kargs,
            keep_kernel,
            sign_bootloader,
            uki,
            bootloader,
            stub,
            allow_section_overlap,
            labels,
            compression,
            erofs_version,
            compat,
            composefs_arg,
            allow_missing_verity,
            source_date_epoch,
            enrollment,
            dumpfile,
            addons,
            addon_scope,
            composefs,
            // Not output: the per-tag base name follows the base image, which
            // `org.opencontainers.image.base.digest` already pins; parallelism, progress
            // display and the layer cache change how fast, never what.
            base_name: _,
            jobs: _,
            progress: _,
            layer_cache: _,
            // An offline signer is `signer` too (its certificate is covered there) and gives
            // the same signatures as the key itself; request ids only name them.
            offline: _,
            request_prefix: _,
        } = self;
        let uki = match uki {
            UkiSource::Build => None,
            UkiSource::Signed(b) => Some(b.as_slice()),
        };
        let enrollment = enrollment.as_ref().map(|e| {
            serde_json::json!({
                "name": e.name,
                "files": e.files.iter().map(|(name, bytes)| {
                    serde_json::json!({"name": name, "sha256": hash_of(Some(bytes.as_slice()))})
                }).collect::<Vec<_>>(),
            })
        });
        // Every composefs metadata field changes the sealed manifest (or the artifact, which
        // `sync` must push again when the key changes).
        let crate::composefs_meta::MetadataOptions {
            enabled: composefs_enabled,
            layer_digests: composefs_layer_digests,
            sign: composefs_sign,
            signer: composefs_signer,
        } = composefs;
        let record = serde_json::json!({
            "bootseal": env!("CARGO_PKG_VERSION"),
            "signer_certificate": hash_of_cert(signer.as_ref().map(|s| s.certificate())),
            "verify_certificate": hash_of_cert(cert.as_ref()),
            "uki": hash_of(uki),
            "bootloader": hash_of(bootloader.as_deref()),
            "stub": hash_of(stub.as_deref()),
            "platforms": platforms.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "kargs": kargs,
            "keep_kernel": keep_kernel,
            "sign_bootloader": sign_bootloader,
            "allow_section_overlap": allow_section_overlap,
            "labels": labels,
            "compression": compression,
            "erofs_version": erofs_version.number(),
            "compat": compat.as_str(),
            "composefs_arg": composefs_arg,
            "allow_missing_verity": allow_missing_verity,
            "source_date_epoch": source_date_epoch,
            "enrollment": enrollment,
            "dumpfile": dumpfile,
            "addons": addons.iter().map(|a| match a {
                super::AddonSource::Cmdline(text) => serde_json::json!({ "cmdline": text }),
                super::AddonSource::File { name, bytes } =>
                    serde_json::json!({ "file": name, "sha256": hash_of(Some(bytes.as_slice())) }),
            }).collect::<Vec<_>>(),
            "addon_scope": addon_scope,
            "composefs_metadata": composefs_enabled,
            "composefs_layer_digests": composefs_layer_digests,
            "composefs_sign": composefs_sign,
            "composefs_certificate": hash_of_cert(composefs_signer.as_ref().map(|s| s.certificate())),
        });
        let bytes = serde_json::to_vec(&record).expect("JSON of plain values");
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::ArgForm;
    use crate::composefs_meta::SignMode;
    use crate::compression::Compression;
    use crate::digest::{ComposefsCompat, ErofsVersion};
    use crate::efi_keys::Enrollment;
    use crate::manifest::Platform;

    fn with(f: impl FnOnce(&mut SealOptions)) -> SealOptions {
        let mut o = SealOptions::default();
        f(&mut o);
        o
    }

    /// One variation per output-changing field: each must move the fingerprint, and no two
    /// variations may collide.
    #[test]
    fn every_output_option_changes_the_fingerprint() {
        let base = SealOptions::default().fingerprint();
        assert_eq!(base, SealOptions::default().fingerprint(), "stable");
        let pair = crate::efi_keys::create::generate("fingerprint", 2048, 1).unwrap();
        let cert = pair.cert.clone();
        let signer = std::sync::Arc::new(
            crate::signer::CertifiedSigner::new(
                Box::new(crate::signer::FileKey::from_key(pair.key, "test key")),
                pair.cert,
            )
            .unwrap(),
        );
        let enrollment = |name: &str, bytes: &[u8]| Enrollment::unchecked(name, bytes);
        let changed: Vec<(&str, SealOptions)> = vec![
            (
                "platforms",
                with(|o| o.platforms = vec![Platform::parse("linux/arm64").unwrap()]),
            ),
            ("signer", with(|o| o.signer = Some(signer.clone()))),
            ("cert", with(|o| o.cert = Some(cert.clone()))),
            ("kargs", with(|o| o.kargs = vec!["quiet".into()])),
            ("keep_kernel", with(|o| o.keep_kernel = true)),
            ("sign_bootloader", with(|o| o.sign_bootloader = false)),
            ("uki", with(|o| o.uki = UkiSource::Signed(vec![1]))),
            ("bootloader", with(|o| o.bootloader = Some(vec![2]))),
            ("stub", with(|o| o.stub = Some(vec![1, 2, 3]))),
            (
                "allow_section_overlap",
                with(|o| o.allow_section_overlap = true),
            ),
            (
                "labels",
                with(|o| o.labels = vec![("a".into(), "b".into())]),
            ),
            (
                "compression gzip",
                with(|o| o.compression = Some(Compression::Gzip)),
            ),
            (
                "compression zstd",
                with(|o| o.compression = Some(Compression::Zstd)),
            ),
            (
                "compression none",
                with(|o| o.compression = Some(Compression::None)),
            ),
            (
                "erofs_version",
                with(|o| o.erofs_version = ErofsVersion::V2),
            ),
            ("compat", with(|o| o.compat = ComposefsCompat::V0_9_4)),
            (
                "composefs_arg",
                with(|o| o.composefs_arg = ArgForm::ComposefsDigest),
            ),
            (
                "allow_missing_verity",
                with(|o| o.allow_missing_verity = true),
            ),
            ("source_date_epoch", with(|o| o.source_date_epoch = Some(1))),
            (
                "enrollment",
                with(|o| o.enrollment = Some(enrollment("auto", b"keys-1"))),
            ),
            (
                "enrollment keys",
                with(|o| o.enrollment = Some(enrollment("auto", b"keys-2"))),
            ),
            (
                "enrollment name",
                with(|o| o.enrollment = Some(enrollment("fleet", b"keys-1"))),
            ),
            ("dumpfile", with(|o| o.dumpfile = false)),
            (
                "addons",
                with(|o| o.addons = vec![super::super::AddonSource::Cmdline("quiet".into())]),
            ),
            (
                "addon_scope",
                with(|o| o.addon_scope = super::super::AddonScope::Global),
            ),
            (
                "no composefs metadata",
                with(|o| o.composefs.enabled = false),
            ),
            (
                "composefs layer digests",
                with(|o| o.composefs.layer_digests = true),
            ),
            (
                "composefs inline signatures",
                with(|o| o.composefs.sign = Some(SignMode::Inline)),
            ),
            (
                "composefs artifact",
                with(|o| o.composefs.sign = Some(SignMode::Artifact)),
            ),
            (
                "composefs key",
                with(|o| o.composefs.signer = Some(signer.clone())),
            ),
        ];
        let mut seen = std::collections::BTreeMap::new();
        seen.insert(base.clone(), "default");
        for (what, opts) in &changed {
            let fp = opts.fingerprint();
            if let Some(other) = seen.insert(fp, what) {
                panic!("{what} gives the same fingerprint as {other}");
            }
        }
    }

    #[test]
    fn options_that_do_not_change_the_output_leave_it_alone() {
        let base = SealOptions::default().fingerprint();
        let renamed = with(|o| {
            o.base_name = Some("example/x:1".into());
            o.jobs = 9;
            o.progress = crate::progress::Progress::new(crate::progress::Mode::Lines);
            o.layer_cache = Some(std::sync::Arc::new(crate::digest::LayerCache::new(1 << 20)));
            o.request_prefix = "x:".into();
        });
        assert_eq!(
            renamed.fingerprint(),
            base,
            "per-tag name, jobs, progress, cache"
        );
    }
}
