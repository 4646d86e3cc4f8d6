//! `bootseal build-uki --from IMAGE`: the first half of the external-signing workflow. Computes
//! the digest the sealed image will have and writes the unsigned UKI carrying it; with
//! `--bootloader-out` writes the image's unsigned systemd-boot to be signed first (its signed
//! bytes are part of the sealed tree, so they must be known before the digest).

use super::options::{ComposefsArgArgs, DigestFormatArgs, RegistryArgs, parse_platform};
use super::write_output;
use anyhow::{Context, bail};
use bootseal::manifest::Platform;
use bootseal::reference::ImageRef;
use bootseal::seal::{SealOptions, prepare_image};
use std::path::PathBuf;

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
    #[arg(long)]
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
    pub enroll: super::enroll::EnrollArgs,
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

pub fn run(args: &super::build_uki::Args) -> anyhow::Result<()> {
    let a = &args.image;
    let image = ImageRef::parse(a.from.as_deref().expect("--from")).map_err(anyhow::Error::msg)?;
    let source_opts = a.registry.source_options();
    let stub = match (&args.stub, &a.stub_from) {
        (Some(p), _) => Some(super::read_pe(p, "stub")?),
        (None, Some(img)) => Some(stub_from_image(img, a)?),
        (None, None) => None,
    };
    if let Some(out) = &a.bootloader_out {
        let opts = SealOptions {
            sign_bootloader: false,
            stub: stub.clone(),
            erofs_version: a.format.erofs_version,
            compat: a.format.composefs_compat,
            dumpfile: false,
            ..Default::default()
        };
        let prepared = prepare_image(&image, &source_opts, &a.platform, &opts)?;
        let (path, bytes) =
            prepared.inputs.systemd_boot.as_ref().with_context(|| {
                format!("{image}: no systemd-boot under /usr/lib/systemd/boot/efi")
            })?;
        write_output(out, bytes)?;
        eprintln!(
            "bootseal: wrote {path} of {image} to {}; sign it, then pass it as --bootloader",
            out.display()
        );
        if args.output.is_none() {
            return Ok(());
        }
    }
    if a.bootloader.is_none() && !a.no_sign_bootloader {
        bail!(
            "the sealed tree includes the signed systemd-boot, so its digest needs it: give --bootloader SIGNED.efi \
             (get the unsigned one with --bootloader-out) or --no-sign-bootloader"
        );
    }
    let opts = SealOptions {
        kargs: a.kargs.clone(),
        keep_kernel: a.keep_kernel,
        sign_bootloader: !a.no_sign_bootloader,
        bootloader: a
            .bootloader
            .as_ref()
            .map(|p| super::read_pe(p, "bootloader"))
            .transpose()?,
        stub,
        allow_section_overlap: args.allow_section_overlap,
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
        ..Default::default()
    };
    let prepared = prepare_image(&image, &source_opts, &a.platform, &opts)?;
    let uki = prepared.unsigned_uki(&opts)?;
    let addons = prepared.unsigned_addons(&opts)?;
    write_output(
        args.output.as_deref().context("-o/--output is required")?,
        &uki,
    )?;
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
    println!("{}", prepared.digest_hex);
    Ok(())
}
