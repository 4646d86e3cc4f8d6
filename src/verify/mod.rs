//! `verify`: the sealed-image checks, made as a registry admission hook or a mirror would: recompute
//! the composefs digest from the layers, read the one UKI's `.cmdline` with composefs-boot's
//! parser (one composefs token, this digest, fs-verity required unless allowed), check the
//! kernel is the UKI's alone, and check the signatures against a certificate.

mod addons;
mod composefs;
mod enrollment;

use crate::authenticode;
use crate::bootc_paths::{self, KERNELS, SECUREBOOT_PAYLOADS, SIGNED_BOOTLOADERS, UKIS};
use crate::cmdline::{self, ComposefsArg, Expected};
use crate::digest::{self, ComposefsCompat, DigestOptions, ErofsVersion};
use crate::source::{self, ImageSource, ResolvedImage};
use crate::tree::CaptureSet;
use crate::uki;
use serde::Serialize;
use std::sync::Arc;
use x509_cert::Certificate;

/// Why an image could not be checked at all (a failed check is a [`Verdict`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error(transparent)]
    Digest(#[from] digest::DigestError),
}

/// One check and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The verdict on one image.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub image: String,
    pub manifest: String,
    pub composefs_digest: String,
    pub uki: Option<String>,
    pub cmdline: Option<String>,
    /// The composefs argument as composefs-boot reads it (digest, insecure form, version).
    pub composefs_argument: Option<ComposefsArg>,
    pub checks: Vec<Check>,
    pub ok: bool,
    /// The UKI's bytes (for `--save-uki`).
    #[serde(skip)]
    pub uki_bytes: Option<Vec<u8>>,
}

/// What a sealed image is checked against.
#[derive(Default)]
pub struct PolicyOptions {
    /// Certificate the UKI and systemd-boot must be signed with.
    pub cert: Option<Certificate>,
    pub erofs_version: ErofsVersion,
    pub compat: ComposefsCompat,
    /// Accept the `?` form of the composefs argument (fs-verity optional at boot).
    pub allow_missing_verity: bool,
    /// Certificate the composefs fs-verity signatures must be made with (default: `cert`).
    pub composefs_cert: Option<Certificate>,
}

/// Checks a sealed image read through `source`.
pub fn verify(
    source: &Arc<dyn ImageSource>,
    image: ResolvedImage,
    policy: &PolicyOptions,
) -> Result<Verdict, VerifyError> {
    let cert = policy.cert.as_ref();
    let capture = CaptureSet::new()
        .with(UKIS)
        .with(SIGNED_BOOTLOADERS)
        .with(KERNELS)
        .with(SECUREBOOT_PAYLOADS)
        .with(bootc_paths::UKI_ADDONS)
        .with(bootc_paths::GLOBAL_ADDONS);
    let mut claims = composefs::Claims::inline(&image.manifest.json);
    let artifact_checks =
        composefs::discover(source.as_ref(), &image.manifest_digest(), &mut claims);
    // The spec's EROFS keys name format V1: layer and merged digests are recomputed as V1.
    let v1 = policy.erofs_version == ErofsVersion::V1;
    let opts = DigestOptions {
        erofs_version: policy.erofs_version,
        compat: policy.compat,
        capture: capture.clone(),
        layer_digests: v1 && claims.wants(crate::composefs_meta::Role::Layer),
        ..Default::default()
    };
    let ingested = digest::ingest(&image.name, digest::layer_inputs(source, &image), &opts)?;
    let captured = ingested.captured(&capture);
    let plain = claims
        .wants(crate::composefs_meta::Role::Merged)
        .then(|| ingested.plain_copy());
    let report = ingested.finish(&opts)?;
    let composefs_checks = composefs::checks(
        &claims,
        &composefs::Computed {
            manifest_bytes: &image.manifest.bytes,
            config_bytes: &image.config_bytes,
            merged: plain.map(|p| p.digest(ErofsVersion::V1).map_err(|e| e.to_string())),
            bootable: match v1 {
                true => Ok(report.digest_hex.clone()),
                false => Err("verify --erofs-version 2 computes a V2 digest".into()),
            },
            layers: &report.layer_digests,
        },
        policy.composefs_cert.as_ref().or(cert),
    );
    let mut checks = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        checks.push(Check {
            name: name.into(),
            ok,
            detail,
        })
    };

    let ukis = captured.matching(UKIS);
    let (uki_path, uki_bytes) = match ukis.as_slice() {
        [one] => match captured.read(one) {
            Ok(b) => (Some(one.to_string()), Some(b)),
            Err(e) => {
                check("one UKI", false, format!("{one}: {e}"));
                (Some(one.to_string()), None)
            }
        },
        [] => {
            check(
                "one UKI",
                false,
                format!("no UKI in {}", bootc_paths::UKI_DIR),
            );
            (None, None)
        }
        many => {
            check(
                "one UKI",
                false,
                format!("{} UKIs: {}", many.len(), many.join(", ")),
            );
            (None, None)
        }
    };
    let mut cmdline = None;
    let mut composefs_argument = None;
    let mut addon_checks = Vec::new();
    if let (Some(path), Some(bytes)) = (&uki_path, &uki_bytes) {
        check("one UKI", true, path.clone());
        match uki::inspect(bytes) {
            Ok(info) => {
                let line = info.cmdline.clone().unwrap_or_default();
                let expected = Expected {
                    digest_hex: &report.digest_hex,
                    erofs_version: policy.erofs_version,
                    allow_missing_verity: policy.allow_missing_verity,
                };
                match cmdline::check_sealed(&line, expected) {
                    Ok(arg) => {
                        let verity = if arg.insecure {
                            "INSECURE form: fs-verity optional at boot, accepted by --allow-missing-verity"
                        } else {
                            "fs-verity required at boot"
                        };
                        check(
                            "composefs digest",
                            true,
                            format!("{} matches the layers ({verity})", arg.token),
                        );
                        composefs_argument = Some(arg);
                    }
                    Err(e) => {
                        check("composefs digest", false, e);
                        composefs_argument = cmdline::read_composefs(&line).ok();
                    }
                }
                let kernels = captured.matching(KERNELS);
                let uname = info.uname.clone().unwrap_or_default();
                let expected = bootc_paths::kernel(&uname);
                let ok = !uname.is_empty() && kernels.iter().all(|k| *k == expected);
                check(
                    "one kernel",
                    ok,
                    if ok {
                        format!(
                            "UKI kernel {uname}; no other kernel in {}",
                            bootc_paths::MODULES
                        )
                    } else {
                        format!(
                            "UKI kernel {uname:?}, image kernels: [{}]",
                            kernels.join(", ")
                        )
                    },
                );
                addon_checks = addons::checks(
                    &captured,
                    path,
                    &line,
                    cert,
                    Expected {
                        digest_hex: &report.digest_hex,
                        erofs_version: policy.erofs_version,
                        allow_missing_verity: policy.allow_missing_verity,
                    },
                );
                cmdline = Some(line);
            }
            Err(e) => check("UKI readable", false, e.to_string()),
        }
        if let Some(cert) = cert {
            match authenticode::verify(bytes, cert) {
                Ok(_) => check(
                    "UKI signature",
                    true,
                    "valid, chains to the certificate".into(),
                ),
                Err(e) => check("UKI signature", false, e.to_string()),
            }
        }
    }
    if let Some(cert) = cert {
        for path in captured.matching(SIGNED_BOOTLOADERS) {
            let result = captured
                .read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| authenticode::verify(&b, cert).map_err(|e| e.to_string()));
            match result {
                Ok(_) => check("bootloader signature", true, path.to_string()),
                Err(e) => check("bootloader signature", false, format!("{path}: {e}")),
            }
        }
    }
    checks.extend(addon_checks);
    checks.extend(artifact_checks);
    checks.extend(composefs_checks);
    // Enrollment payloads (`seal --enroll-keys`): checked whether or not --cert is given.
    let bootloaders: Vec<(String, Vec<u8>)> = captured
        .matching(SIGNED_BOOTLOADERS)
        .into_iter()
        .filter_map(|p| captured.read(p).ok().map(|b| (p.to_string(), b)))
        .collect();
    checks.extend(enrollment::checks(
        &captured,
        uki_bytes.as_deref(),
        &bootloaders,
    ));
    let ok = checks.iter().all(|c| c.ok);
    Ok(Verdict {
        image: image.name.clone(),
        manifest: image.manifest_digest(),
        composefs_digest: report.digest_hex,
        uki: uki_path,
        cmdline,
        composefs_argument,
        checks,
        ok,
        uki_bytes,
    })
}

/// Resolves and verifies an image by reference.
pub fn verify_image(
    image: &crate::reference::ImageRef,
    source_opts: &source::SourceOptions,
    platform: &crate::manifest::Platform,
    policy: &PolicyOptions,
) -> Result<Verdict, VerifyError> {
    let source = source::open(image, source_opts)?;
    let resolved = source::resolve(source.as_ref(), platform)?;
    verify(&source, resolved, policy)
}
