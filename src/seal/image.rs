//! Sealing one platform's image: a pure transformation from the base image (read through a
//! source) to a new image value — new top layer, config and manifest — nothing written yet.

use super::boot_inputs::{self, BootInputs};
use super::{SealError, SealOptions, UkiSource};
use crate::authenticode;
use crate::bootc_paths;
use crate::cmdline;
use crate::compression::Compression;
use crate::digest::{self, DigestOptions};
use crate::layer_writer::{LayerContents, LayerEntry, WrittenLayer};
use crate::manifest::Descriptor;
use crate::mutate::{self, HistoryEntry, ImageDate};
use crate::signer::SignLabel;
use crate::source::{ImageSource, ResolvedImage};
use crate::uki::{self, UkiInputs};
use std::sync::Arc;

/// One platform's sealed image, ready to be written to a sink.
pub struct SealedImage {
    pub base: ResolvedImage,
    /// The new top layer's entries.
    pub layer: Arc<LayerContents>,
    /// The new image: layer blob, config and manifest.
    pub image: mutate::NewImage,
    pub written: WrittenLayer,
    pub digest_hex: String,
    pub cmdline: String,
    pub kver: String,
    pub warnings: Vec<String>,
    /// The composefs metadata referrer to write after the manifest (`--composefs-sign
    /// artifact`).
    pub artifact: Option<crate::composefs_meta::artifact::Artifact>,
}

/// A base image analysed for sealing: its boot inputs, the new layer without the UKI, and the
/// composefs digest of the final tree. The step the external-signing workflow stops at.
pub struct Prepared {
    pub base: ResolvedImage,
    pub inputs: BootInputs,
    pub stub: Vec<u8>,
    pub layer: LayerContents,
    pub digest_hex: String,
    pub cmdline: String,
    /// The date of the new config, history entry and layer.
    pub date: ImageDate,
    pub warnings: Vec<String>,
    /// The composefs dumpfile of the bootable tree the digest is computed from (with
    /// [`SealOptions::dumpfile`]).
    pub dumpfile: Option<String>,
    /// A copy of the base tree for the composefs `merged` digest (see `super::composefs`).
    pub plain: Option<crate::digest::PlainTree>,
    /// The base layers' own composefs digests, when asked for.
    pub layer_digests: Vec<Result<String, String>>,
}

/// The sealed image's date: `SOURCE_DATE_EPOCH` when given, else the base's own (its config's
/// `created` or newest history date), else 1970-01-01: deterministic in every case, so sealing
/// stays reproducible without the image looking 56 years old.
fn sealed_date(config: &serde_json::Value, opts: &SealOptions) -> ImageDate {
    match opts.source_date_epoch {
        Some(epoch) => ImageDate::from_unix(epoch),
        None => mutate::base_date(config).unwrap_or_else(|| ImageDate::from_unix(0)),
    }
}

/// Reads `base`, finds its boot inputs, signs systemd-boot, and computes the digest over the
/// base layers plus the new layer (the UKI is not in it yet, which is fine: the boot
/// transform empties /boot: composefs-boot 0.9.0 `transform_for_boot`).
pub fn prepare(
    source: &Arc<dyn ImageSource>,
    base: ResolvedImage,
    opts: &SealOptions,
) -> Result<Prepared, SealError> {
    let name = base.name.clone();
    let err = |m: String| SealError::Image {
        image: name.clone(),
        message: m,
    };
    let mut dopts = DigestOptions {
        erofs_version: opts.erofs_version,
        compat: opts.compat,
        capture: boot_inputs::capture_set(),
        layer_cache: opts.layer_cache.clone(),
        layer_digests: super::composefs::layer_digests(opts, &base),
        ..Default::default()
    };
    super::composefs::check(opts, &base).map_err(err)?;
    let layers: Vec<digest::LayerInput> = digest::layer_inputs(source, &base)
        .into_iter()
        .zip(&base.layers)
        .map(|(layer, desc)| {
            let (progress, label, size, open) = (
                opts.progress.clone(),
                short(&desc.digest),
                desc.size,
                layer.open,
            );
            digest::LayerInput {
                open: Box::new(move || Ok(progress.reader(label, size, open()?))),
                ..layer
            }
        })
        .collect();
    let mut ingested = digest::ingest(&name, layers, &dopts)?;
    let captured = ingested.captured(&boot_inputs::capture_set());
    let inputs =
        boot_inputs::find(&captured, ingested.tree(), &base.platform.architecture).map_err(err)?;
    let stub = match (&opts.stub, &inputs.stub) {
        (Some(s), _) => s.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => {
            return Err(err(format!(
                "not a bootc image: no systemd stub at {} (give --stub)",
                boot_inputs::stub_path(&base.platform.architecture)
            )));
        }
    };
    let signed_bootloader = signed_bootloader(&inputs, &base.platform, opts).map_err(err)?;
    let date = sealed_date(&base.config, opts);
    let mut layer = sealing_layer(&inputs, signed_bootloader, date.unix, opts);
    if let Some(enrollment) = &opts.enrollment {
        super::enroll::check_trusted(enrollment, opts).map_err(err)?;
        layer
            .entries
            .extend(super::enroll::layer_entries(ingested.tree(), enrollment));
    }
    let plain = super::composefs::erofs_digests(opts, &base).then(|| ingested.plain_copy());
    ingested
        .apply_tar(&layer.tar_bytes().map_err(|e| err(e.to_string()))?)
        .map_err(SealError::from)?;
    dopts.capture = Default::default();
    dopts.keep_dumpfile = opts.dumpfile;
    let report = ingested.finish(&dopts)?;
    let image_kargs =
        cmdline::from_kargs_d(&inputs.kargs_d, &base.platform.architecture).map_err(err)?;
    let cmdline = cmdline::sealed_cmdline(
        opts.expected(&report.digest_hex),
        opts.composefs_arg,
        &image_kargs,
        &opts.kargs,
    )
    .map_err(err)?;
    Ok(Prepared {
        base,
        inputs,
        stub,
        layer,
        digest_hex: report.digest_hex,
        cmdline,
        date,
        warnings: report.warnings,
        dumpfile: report.dumpfile,
        plain,
        layer_digests: report.layer_digests,
    })
}

impl Prepared {
    /// The unsigned UKI for this image (what `build-uki --from` writes).
    pub fn unsigned_uki(&self, opts: &SealOptions) -> Result<Vec<u8>, SealError> {
        self.build_uki(&self.uki_inputs(opts), opts)
    }

    /// What the sealed UKI is built from: the image's kernel, initramfs, os-release and stub,
    /// and the sealed command line. Callers may add `.pcrsig` signing before [`Self::build_uki`].
    pub fn uki_inputs(&self, opts: &SealOptions) -> UkiInputs<'_> {
        UkiInputs {
            stub: &self.stub,
            linux: &self.inputs.kernel,
            initrd: Some(&self.inputs.initrd),
            os_release: &self.inputs.os_release,
            cmdline: Some(self.cmdline.as_bytes()),
            uname: Some(&self.inputs.kver),
            allow_section_overlap: opts.allow_section_overlap,
            ..Default::default()
        }
    }

    /// The UKI `inputs` make, with errors naming the image's files.
    pub fn build_uki(&self, inputs: &UkiInputs, opts: &SealOptions) -> Result<Vec<u8>, SealError> {
        uki::build(inputs).map_err(|e| {
            // Name the files a refusal is about (the stub and kernel as the image has them).
            let stub = match &opts.stub {
                Some(_) => "given with --stub".to_owned(),
                None => boot_inputs::stub_path(&self.base.platform.architecture),
            };
            SealError::Image {
                image: self.base.name.clone(),
                message: format!(
                    "building the UKI from kernel /usr/lib/modules/{}/vmlinuz and stub {stub}: {e}",
                    self.inputs.kver
                ),
            }
        })
    }
}

impl Prepared {
    fn addon_context<'a>(
        &'a self,
        uki_cmdline: &'a str,
        stub_version: Option<u32>,
        opts: &SealOptions,
    ) -> super::addons::AddonContext<'a> {
        super::addons::AddonContext {
            kver: &self.inputs.kver,
            platform: &self.base.platform,
            uki_cmdline,
            stub_version,
            addon_stub: self.inputs.addon_stub.as_deref(),
            global_in_image: &self.inputs.global_addons,
            expected: opts.expected(&self.digest_hex),
        }
    }

    /// The add-ons of `opts` for the UKI [`Prepared::unsigned_uki`] builds, checked and
    /// unsigned: (file name, bytes), for signing elsewhere (`build-uki --from --addon-out`).
    pub fn unsigned_addons(&self, opts: &SealOptions) -> Result<Vec<(String, Vec<u8>)>, SealError> {
        let version = crate::uki::stub::version(&self.stub);
        let built = super::addons::build(opts, &self.addon_context(&self.cmdline, version, opts))
            .map_err(|message| SealError::Image {
            image: self.base.name.clone(),
            message,
        })?;
        Ok(built
            .into_iter()
            .map(|a| {
                let name = a.path.rsplit('/').next().unwrap_or_default().to_owned();
                (name, a.bytes)
            })
            .collect())
    }
}

/// Builds the sealed image of `base`.
pub fn seal_image(
    source: &Arc<dyn ImageSource>,
    base: ResolvedImage,
    opts: &SealOptions,
) -> Result<SealedImage, SealError> {
    let prepared = prepare(source, base, opts)?;
    let name = prepared.base.name.clone();
    let err = |m: String| SealError::Image {
        image: name.clone(),
        message: m,
    };
    let (uki_bytes, uki_cmdline, stub_version) = match &opts.uki {
        UkiSource::Build => {
            let unsigned = prepared.unsigned_uki(opts)?;
            let signed = match &opts.signer {
                Some(s) => {
                    let platform = &prepared.base.platform;
                    // The command line carries the digest over the signed systemd-boot.
                    let after = match (opts.sign_bootloader, &opts.bootloader) {
                        (true, None) => vec![opts.request_id(platform, "systemd-boot")],
                        _ => Vec::new(),
                    };
                    let label = SignLabel {
                        id: opts.request_id(platform, "uki"),
                        what: format!(
                            "Authenticode of /boot/EFI/Linux/{}.efi ({platform})",
                            prepared.inputs.kver
                        ),
                        after,
                    };
                    authenticode::sign(&unsigned, &s.labelled(label), false)
                        .map_err(|e| err(format!("signing the UKI: {e}")))?
                }
                None => unsigned,
            };
            let version = uki::stub::version(&prepared.stub);
            (signed, prepared.cmdline.clone(), version)
        }
        UkiSource::Signed(bytes) => {
            check_supplied_uki(bytes, &prepared.digest_hex, opts).map_err(err)?;
            let report = uki::inspect(bytes).map_err(|e| err(format!("--uki: {e}")))?;
            (
                bytes.clone(),
                report.cmdline.unwrap_or_default(),
                report.stub_version,
            )
        }
    };
    let addons = super::addons::prepare(
        opts,
        &prepared.addon_context(&uki_cmdline, stub_version, opts),
    )
    .map_err(err)?;
    let Prepared {
        base,
        inputs,
        mut layer,
        digest_hex,
        cmdline,
        date,
        mut warnings,
        dumpfile,
        plain,
        layer_digests,
        ..
    } = prepared;
    layer.entries.insert(
        3,
        LayerEntry::File {
            path: bootc_paths::in_layer(&bootc_paths::uki(&inputs.kver)).into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            content: Arc::from(uki_bytes),
        },
    );
    // The add-ons (and their directories) follow the UKI.
    layer
        .entries
        .splice(4..4, super::addons::layer_entries(addons));
    if let Some(dump) = dumpfile {
        // bootc (>= 1.16.7, `print_uki_dumpfile_diff` in crates/lib/src/bootc_composefs/boot.rs)
        // reads `/boot/<UKI file name with .efi replaced by .dump>` when the UKI's composefs=
        // differs from the digest it computed, and diffs it against its own tree. /boot is
        // emptied by the boot transform, so this file leaves the digest as it is.
        layer.entries.insert(
            1,
            LayerEntry::File {
                path: format!("boot/{}.dump", inputs.kver),
                mode: 0o644,
                uid: 0,
                gid: 0,
                content: Arc::from(dump.into_bytes()),
            },
        );
    }

    let compression = opts
        .compression
        .unwrap_or_else(|| Compression::default_for(&base.manifest.media_type));
    let media_type = compression
        .layer_media_type(&base.manifest.media_type)
        .map_err(err)?;
    let (written, layer_blob) = layer
        .compress(compression)
        .map_err(|e| err(format!("writing the new layer: {e}")))?;
    let layer_descriptor = Descriptor {
        media_type: media_type.into(),
        digest: written.digest.clone(),
        size: written.size,
        platform: None,
        annotations: None,
    };
    let digests = super::composefs::digests(
        opts,
        &base,
        (plain, layer_digests),
        &layer,
        &written.digest,
        &digest_hex,
    )?;
    let composefs = super::composefs::edits(opts, &base, &digests).map_err(err)?;
    warnings.extend(composefs.warnings);
    let history = HistoryEntry {
        created: date.text,
        created_by: format!("bootseal seal (composefs={digest_hex})"),
        comment: format!("sealed UKI {}", bootc_paths::uki(&inputs.kver)),
    };
    let mut annotations = vec![
        (
            "org.opencontainers.image.base.digest".to_owned(),
            base.manifest_digest(),
        ),
        (super::FINGERPRINT_ANNOTATION.to_owned(), opts.fingerprint()),
    ];
    if let Some(name) = &opts.base_name {
        annotations.push((
            "org.opencontainers.image.base.name".to_owned(),
            name.clone(),
        ));
    }
    annotations.extend(composefs.manifest);
    let config_annotations =
        |bytes: &[u8]| super::composefs::config_annotations(opts, &base, bytes);
    let image = mutate::append_layer(
        &base,
        layer_descriptor,
        layer_blob,
        &written.diff_id,
        &mutate::Edits {
            history: &history,
            labels: &opts.labels,
            annotations: &annotations,
            config_annotations: &config_annotations,
            layer_annotations: &composefs.layers,
        },
    )
    .map_err(err)?;
    let artifact = super::composefs::artifact(opts, &base, &digests, &image).map_err(err)?;
    Ok(SealedImage {
        artifact,
        base,
        layer: Arc::new(layer),
        image,
        written,
        digest_hex,
        cmdline,
        kver: inputs.kver,
        warnings,
    })
}

/// systemd-boot signed with the sealing key (or the one supplied), or None when not wanted.
fn signed_bootloader(
    inputs: &BootInputs,
    platform: &crate::manifest::Platform,
    opts: &SealOptions,
) -> Result<Option<(String, Vec<u8>)>, String> {
    if !opts.sign_bootloader {
        return Ok(None);
    }
    let Some((path, unsigned)) = &inputs.systemd_boot else {
        return Err(format!(
            "image has no systemd-boot under {} (use --no-sign-bootloader)",
            bootc_paths::SYSTEMD_EFI
        ));
    };
    let signed = match (&opts.bootloader, &opts.signer) {
        (Some(supplied), _) => {
            if let Some(cert) = &opts.cert {
                authenticode::verify(supplied, cert)
                    .map_err(|e| format!("--bootloader: signature check failed: {e}"))?;
            }
            supplied.clone()
        }
        (None, Some(signer)) => {
            let label = SignLabel {
                id: opts.request_id(platform, "systemd-boot"),
                what: format!("Authenticode of {path}.signed ({platform})"),
                after: Vec::new(),
            };
            authenticode::sign(unsigned, &signer.labelled(label), false)
                .map_err(|e| format!("signing {path}: {e}"))?
        }
        (None, None) => return Err(
            "systemd-boot must be signed: give --key/--cert, --bootloader, or --no-sign-bootloader"
                .into(),
        ),
    };
    // `bootctl install` prefers `<name>.efi.signed` beside the unsigned file.
    Ok(Some((format!("{path}.signed"), signed)))
}

/// The new layer without the UKI: `/boot` (the base's metadata), `boot/EFI/`, `boot/EFI/Linux/`,
/// the signed systemd-boot, and whiteouts of the kernel and initramfs the UKI replaces.
fn sealing_layer(
    inputs: &BootInputs,
    bootloader: Option<(String, Vec<u8>)>,
    mtime: u64,
    opts: &SealOptions,
) -> LayerContents {
    let b = inputs.boot_dir;
    let mut entries = vec![
        LayerEntry::Directory {
            path: "boot".into(),
            mode: b.mode,
            uid: b.uid,
            gid: b.gid,
            // /usr's nanoseconds: composefs-rs 0.9.0 keeps /boot's own, >= 0.9.4 copies /usr's
            // (composefs-boot `empty_toplevel_dirs`); equal, both give the same digest.
            mtime_nsec: inputs.usr_mtime_nsec,
        },
        LayerEntry::Directory {
            path: "boot/EFI".into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime_nsec: 0,
        },
        LayerEntry::Directory {
            path: bootc_paths::in_layer(bootc_paths::UKI_DIR).into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime_nsec: 0,
        },
    ];
    if let Some((path, bytes)) = bootloader {
        entries.push(LayerEntry::File {
            path: bootc_paths::in_layer(&path).into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            content: Arc::from(bytes),
        });
    }
    if !opts.keep_kernel {
        for name in ["vmlinuz", "initramfs.img"] {
            entries.push(LayerEntry::Whiteout {
                dir: bootc_paths::in_layer(&bootc_paths::module_dir(&inputs.kver)).into(),
                name: name.into(),
            });
        }
    }
    LayerContents { entries, mtime }
}

/// A UKI signed elsewhere must carry exactly this image's digest, as composefs-boot reads its
/// command line, and, with --cert, a valid signature.
fn check_supplied_uki(bytes: &[u8], digest_hex: &str, opts: &SealOptions) -> Result<(), String> {
    let report = uki::inspect(bytes).map_err(|e| format!("--uki: {e}"))?;
    let line = report.cmdline.unwrap_or_default();
    cmdline::check_sealed(&line, opts.expected(digest_hex)).map_err(|e| format!("--uki: {e}"))?;
    if let Some(cert) = &opts.cert {
        authenticode::verify(bytes, cert)
            .map_err(|e| format!("--uki: signature check failed: {e}"))?;
    }
    Ok(())
}

/// Opens `image` and prepares `platform` for sealing (used by `build-uki --from`).
pub fn prepare_image(
    image: &crate::reference::ImageRef,
    source_opts: &crate::source::SourceOptions,
    platform: &crate::manifest::Platform,
    opts: &SealOptions,
) -> Result<Prepared, SealError> {
    let source = crate::source::open(image, source_opts)?;
    let base = crate::source::resolve(source.as_ref(), platform)?;
    prepare(&source, base, opts)
}

/// The systemd stub for `platform` taken out of another image, e.g. a buildroot
/// (`build-uki --stub-from`): only that file is captured while the layers stream past.
pub fn stub_from_image(
    image: &crate::reference::ImageRef,
    source_opts: &crate::source::SourceOptions,
    platform: &crate::manifest::Platform,
) -> Result<Vec<u8>, SealError> {
    file_from_image(
        image,
        source_opts,
        platform,
        &boot_inputs::stub_path,
        "stub",
    )
}

/// systemd's add-on stub for `platform` taken out of an image (`build-addon --from`).
pub fn addon_stub_from_image(
    image: &crate::reference::ImageRef,
    source_opts: &crate::source::SourceOptions,
    platform: &crate::manifest::Platform,
) -> Result<Vec<u8>, SealError> {
    file_from_image(
        image,
        source_opts,
        platform,
        &boot_inputs::addon_stub_path,
        "add-on stub (systemd-boot-efi >= 254)",
    )
}

fn file_from_image(
    image: &crate::reference::ImageRef,
    source_opts: &crate::source::SourceOptions,
    platform: &crate::manifest::Platform,
    path_for: &dyn Fn(&str) -> String,
    what: &str,
) -> Result<Vec<u8>, SealError> {
    let source = crate::source::open(image, source_opts)?;
    let resolved = crate::source::resolve(source.as_ref(), platform)?;
    let err = |message: String| SealError::Image {
        image: resolved.name.clone(),
        message,
    };
    boot_inputs::efi_arch(&platform.architecture).map_err(err)?;
    let path = path_for(&platform.architecture);
    let capture = crate::tree::CaptureSet::new().with(&path);
    let opts = DigestOptions {
        capture: capture.clone(),
        ..Default::default()
    };
    let ingested = digest::ingest(
        &resolved.name,
        digest::layer_inputs(&source, &resolved),
        &opts,
    )?;
    ingested
        .captured(&capture)
        .read(&path)
        .map_err(|e| err(format!("no {what} at {path}: {e}")))
}

/// `sha256:0123456789ab` for progress labels.
fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}
