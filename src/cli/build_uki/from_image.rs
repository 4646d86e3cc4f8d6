//! `bootseal build-uki --from IMAGE`: the first half of the external-signing workflow. Computes
//! the digest the sealed image will have and writes the unsigned UKI carrying it; with
//! `--bootloader-out` writes the image's unsigned systemd-boot to be signed first (its signed
//! bytes are part of the sealed tree, so they must be known before the digest). The image is
//! read once, whichever of the two outputs are asked for.

use super::pcr::PcrArgs;
use crate::cli::options::{ComposefsArgArgs, DigestFormatArgs, RegistryArgs, parse_platform};
use crate::cli::{read_pe, write_output};
use anyhow::{Context, bail};
use bootseal::manifest::Platform;
use bootseal::reference::ImageRef;
use bootseal::seal::{SealOptions, prepare_image};
use std::path::{Path, PathBuf};

/// The flags of `build-uki` that take the inputs from an image.
#[derive(Debug, clap::Args)]
pub struct FromImageArgs {
    /// Take kernel, initramfs, os-release and stub from this bootc image
    #[arg(long, value_name = "IMAGE")]
    pub from: Option<String>,
    /// Take the stub from this image (e.g. a buildroot) instead
    #[arg(long, value_name = "IMAGE")]
    pub stub_from: Option<String>,
    /// Platform to select from a multi-arch index
    #[arg(long, default_value = "linux/amd64", value_parser = parse_platform)]
    pub platform: Platform,
    /// With --from: extra kernel argument after the image's kargs.d ones (repeatable)
    #[arg(long = "karg", value_name = "ARG")]
    pub kargs: Vec<String>,
    /// With --from: systemd-boot already signed for this image (as `seal --bootloader`)
    #[arg(long, value_name = "FILE")]
    pub bootloader: Option<PathBuf>,
    /// With --from: the sealed image will carry no signed systemd-boot
    #[arg(long, conflicts_with = "bootloader")]
    pub no_sign_bootloader: bool,
    /// With --from: write the image's unsigned systemd-boot here, for signing
    #[arg(long, value_name = "FILE")]
    pub bootloader_out: Option<PathBuf>,
    /// With --from: the sealed image keeps vmlinuz and initramfs.img
    #[arg(long)]
    pub keep_kernel: bool,
    /// With --from: kernel arguments for a UKI add-on built from the image's add-on stub
    /// (repeatable), checked with the UKI's command line and written unsigned to --addon-out
    #[arg(long = "addon-cmdline", value_name = "TEXT", requires = "addon_out")]
    pub addon_cmdlines: Vec<String>,
    /// With --from: where the add-ons will go (uki or global; decides the stub version needed)
    #[arg(long, default_value = "uki", value_name = "uki|global")]
    pub addon_scope: bootseal::seal::AddonScope,
    /// With --from: directory for the unsigned add-ons; sign each, keep its name, and pass it
    /// to `seal --uki … --addon`
    #[arg(long, value_name = "DIR")]
    pub addon_out: Option<PathBuf>,
    #[command(flatten)]
    pub format: DigestFormatArgs,
    #[command(flatten)]
    pub composefs: ComposefsArgArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub enroll: crate::cli::enroll::EnrollArgs,
}

/// `--stub-from IMAGE`: the stub for the platform's architecture out of another image.
pub fn stub_from_image(image: &str, args: &FromImageArgs) -> anyhow::Result<Vec<u8>> {
    let reference = ImageRef::parse(image).map_err(anyhow::Error::msg)?;
    Ok(bootseal::seal::stub_from_image(
        &reference,
        &args.registry.source_options(),
        &args.platform,
    )?)
}

impl FromImageArgs {
    /// Flags that only `--from` uses, refused without it rather than ignored. (Checked here:
    /// some live in groups other commands share, and clap lets a `requires` go unmet when the
    /// required flag conflicts with one given, as `--from` does with `--linux`.)
    pub fn refuse_image_only_flags(&self) -> anyhow::Result<()> {
        let given = [
            ("--karg", !self.kargs.is_empty()),
            ("--bootloader", self.bootloader.is_some()),
            ("--no-sign-bootloader", self.no_sign_bootloader),
            ("--bootloader-out", self.bootloader_out.is_some()),
            ("--keep-kernel", self.keep_kernel),
            ("--addon-cmdline", !self.addon_cmdlines.is_empty()),
            ("--addon-out", self.addon_out.is_some()),
            (
                "--erofs-version",
                self.format.erofs_version != Default::default(),
            ),
            (
                "--composefs-compat",
                self.format.composefs_compat != Default::default(),
            ),
            (
                "--composefs-arg",
                self.composefs.composefs_arg != Default::default(),
            ),
            (
                "--allow-missing-verity",
                self.composefs.allow_missing_verity,
            ),
            ("--enroll-keys", self.enroll.enroll_keys.is_some()),
        ];
        match given.iter().find(|(_, set)| *set) {
            Some((flag, _)) => bail!("{flag} applies to --from IMAGE only"),
            None => Ok(()),
        }
    }
}

/// `build-uki --from`: `stub` is `--stub`, `output` is `-o`.
pub fn run(
    a: &FromImageArgs,
    stub: Option<&Path>,
    pcr: &PcrArgs,
    allow_section_overlap: bool,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let image = ImageRef::parse(a.from.as_deref().expect("--from")).map_err(anyhow::Error::msg)?;
    let source_opts = a.registry.source_options();
    let stub = match (stub, &a.stub_from) {
        (Some(p), _) => Some(read_pe(p, "stub")?),
        (None, Some(img)) => Some(stub_from_image(img, a)?),
        (None, None) => None,
    };
    if output.is_some() && a.bootloader.is_none() && !a.no_sign_bootloader {
        bail!(
            "the sealed tree includes the signed systemd-boot, so its digest needs it: give --bootloader SIGNED.efi \
             (get the unsigned one with --bootloader-out) or --no-sign-bootloader"
        );
    }
    if output.is_none() && (pcr.measure || pcr.pcr_private_key.is_some()) {
        bail!("--measure and --pcr-private-key describe the UKI: give -o/--output too");
    }
    // Only --bootloader-out: the digest is not needed, so no signed systemd-boot either.
    let sign_bootloader = output.is_some() && !a.no_sign_bootloader;
    let opts = SealOptions {
        kargs: a.kargs.clone(),
        keep_kernel: a.keep_kernel,
        sign_bootloader,
        bootloader: a
            .bootloader
            .as_ref()
            .map(|p| read_pe(p, "bootloader"))
            .transpose()?,
        stub,
        allow_section_overlap,
        erofs_version: a.format.erofs_version,
        compat: a.format.composefs_compat,
        composefs_arg: a.composefs.composefs_arg,
        allow_missing_verity: a.composefs.allow_missing_verity,
        enrollment: a.enroll.load()?,
        // The dumpfile goes into the sealed layer, which `seal --uki` writes.
        dumpfile: false,
        addons: a
            .addon_cmdlines
            .iter()
            .map(|t| bootseal::seal::AddonSource::Cmdline(t.clone()))
            .collect(),
        addon_scope: a.addon_scope,
        // The composefs sealing metadata belongs to the sealed manifest `seal --uki` writes;
        // here it would only cost a copy of the tree.
        composefs: Default::default(),
        ..Default::default()
    };
    let prepared = prepare_image(&image, &source_opts, &a.platform, &opts)?;
    if let Some(out) = &a.bootloader_out {
        let (path, bytes) = prepared.inputs.systemd_boot.as_ref().with_context(|| {
            format!(
                "{image}: no systemd-boot under {}",
                bootseal::bootc_paths::SYSTEMD_EFI
            )
        })?;
        write_output(out, bytes)?;
        eprintln!(
            "bootseal: wrote {path} of {image} to {}; sign it, then pass it as --bootloader",
            out.display()
        );
    }
    let Some(output) = output else {
        return Ok(());
    };
    let plan = pcr.plan()?;
    let mut inputs = prepared.uki_inputs(&opts);
    inputs.pcr_signing = pcr.signing(&plan)?;
    let uki = prepared.build_uki(&inputs, &opts)?;
    let addons = prepared.unsigned_addons(&opts)?;
    write_output(output, &uki)?;
    if let Some(dir) = &a.addon_out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, bytes) in &addons {
            write_output(&dir.join(name), bytes)?;
            eprintln!("bootseal: wrote add-on {}", dir.join(name).display());
        }
    }
    for w in &prepared.warnings {
        eprintln!("bootseal: warning: {w}");
    }
    pcr.print_measurements(&plan, &inputs)?;
    println!("{}", prepared.digest_hex);
    Ok(())
}
