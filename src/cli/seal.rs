//! `bootseal seal --from SRC --to DST --key KEY --cert CERT`: the unsealed image in, the sealed
//! image out, in one pass.

use super::options::{
    ComposefsArgArgs, DigestFormatArgs, OfflineArgs, SigningArgs, parse_platform,
};
use super::read_pe;
use anyhow::{Context, bail};
use bootseal::compression::Compression;
use bootseal::manifest::Platform;
use bootseal::reference::ImageRef;
use bootseal::registry::RegistryOptions;
use bootseal::seal::{self, SealOptions, UkiSource};
use bootseal::signer::{CertifiedSigner, OfflineSigner};
use bootseal::source;
use bootseal::source::SourceOptions;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The unsealed image (docker://, oci:DIR[:TAG], oci-archive:FILE[:TAG])
    #[arg(long)]
    from: String,
    /// Where to write the sealed image
    #[arg(long)]
    to: String,
    #[command(flatten)]
    seal: SealFlags,
    /// Parallel blob transfers
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Write DST@sha256:… to this file
    #[arg(long)]
    digestfile: Option<PathBuf>,
    /// Print a JSON report
    #[arg(long)]
    json: bool,
}

/// The flags that decide how an image is sealed and how registries are reached: shared by
/// `seal` and `sync` (flattened into both).
#[derive(clap::Args, Debug)]
pub struct SealFlags {
    /// Secure Boot key and certificate (files or pkcs11: URIs); --cert also checks
    /// --uki/--bootloader signatures
    #[command(flatten)]
    signing: SigningArgs,
    #[command(flatten)]
    pub offline: OfflineArgs,
    /// Extra kernel argument (repeatable), after the image's kargs.d arguments
    #[arg(long = "karg", value_name = "ARG")]
    kargs: Vec<String>,
    /// Platform to seal from a multi-arch index (repeatable; default linux/amd64)
    #[arg(long = "platform", value_parser = parse_platform)]
    platforms: Vec<Platform>,
    /// A UKI built with `bootseal build-uki` and signed elsewhere
    #[arg(long)]
    uki: Option<PathBuf>,
    /// systemd-boot signed elsewhere
    #[arg(long)]
    bootloader: Option<PathBuf>,
    /// Use this systemd stub instead of the image's
    #[arg(long)]
    stub: Option<PathBuf>,
    /// Write the merged .sbat over the stub's own even where it overlaps the next section
    /// (ukify's layout; systemd 252 stubs then warn at boot). Default: move it after the stub's sections
    #[arg(long)]
    allow_section_overlap: bool,
    /// Leave /usr/lib/modules/<kver>/{vmlinuz,initramfs.img} in place
    #[arg(long)]
    keep_kernel: bool,
    /// Do not add a signed systemd-boot
    #[arg(long)]
    no_sign_bootloader: bool,
    /// Kernel arguments to deliver as a signed UKI add-on built from the image's add-on stub
    /// (repeatable: one add-on each)
    #[arg(long = "addon-cmdline", value_name = "TEXT")]
    addon_cmdlines: Vec<String>,
    /// A UKI add-on built elsewhere (NAME.addon.efi); signed with --key unless it already
    /// verifies against --cert (repeatable)
    #[arg(long = "addon", value_name = "FILE")]
    addon_files: Vec<PathBuf>,
    /// Where the add-ons go: uki (/boot/EFI/Linux/<kver>.efi.extra.d, this UKI only) or global
    /// (/boot/loader/addons, every UKI)
    #[arg(long, default_value = "uki", value_name = "uki|global")]
    addon_scope: seal::AddonScope,
    /// Do not write /boot/<kver>.dump (the composefs dumpfile of the sealed tree, which bootc
    /// diffs against its own when it finds the UKI's digest wrong)
    #[arg(long)]
    no_dumpfile: bool,
    /// Label to set (repeatable); default containers.bootc=sealed
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// New layer compression: gzip, zstd or none (default: zstd for OCI images, gzip for
    /// Docker schema2, which has no zstd layers)
    #[arg(long = "layer-compression", alias = "compression", value_name = "C")]
    compression: Option<Compression>,
    #[command(flatten)]
    format: DigestFormatArgs,
    #[command(flatten)]
    composefs: ComposefsArgArgs,
    #[command(flatten)]
    composefs_meta: super::composefs_meta::ComposefsMetaArgs,
    /// No progress output
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: super::options::CopyRegistryArgs,
    #[command(flatten)]
    enroll: super::enroll::EnrollArgs,
}

fn parse_label(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("--label {s:?}: expected K=V"))?;
    if k.is_empty() {
        bail!("--label {s:?}: empty key");
    }
    Ok((k.into(), v.into()))
}

impl SealFlags {
    /// How to reach the source registry.
    pub fn source_options(&self) -> SourceOptions {
        self.registry.source()
    }

    /// How to reach the destination registry.
    pub fn dest_options(&self) -> RegistryOptions {
        self.registry.destination()
    }

    /// The offline signer `--prepare-signing`/`--signatures` ask for (one per run: `sync`
    /// shares it between its workers, so one request covers every tag).
    pub fn offline_signer(&self) -> anyhow::Result<Option<Arc<OfflineSigner>>> {
        let key_opts = self.signing.open_options()?;
        let cert = self.signing.certificate(&key_opts)?;
        self.offline
            .open(cert.as_ref(), self.signing.key.as_ref().map(|_| "--key"))
    }

    /// The seal options these flags describe (loading the key and supplied binaries); with
    /// `offline`, its signer stands in for the key.
    pub fn seal_options(
        &self,
        base_name: Option<String>,
        jobs: usize,
        progress: bootseal::progress::Mode,
        offline: Option<&Arc<OfflineSigner>>,
    ) -> anyhow::Result<SealOptions> {
        let args = self;
        let key_opts = args.signing.open_options()?;
        let cert = args.signing.certificate(&key_opts)?;
        let signer = match (offline, &cert) {
            (Some(o), Some(c)) => Some(Arc::new(CertifiedSigner::new_shared(
                Arc::clone(o) as Arc<dyn bootseal::signer::Signer>,
                c.clone(),
            )?)),
            _ => args.signing.signer(cert.as_ref(), &key_opts)?,
        };
        let uki = match &args.uki {
            Some(p) => UkiSource::Signed(read_pe(p, "UKI")?),
            None => UkiSource::Build,
        };
        if signer.is_none() && args.uki.is_none() {
            bail!("missing signing key: give --key and --cert, or a signed --uki");
        }
        let mut labels = vec![("containers.bootc".to_owned(), "sealed".to_owned())];
        for l in &args.labels {
            let (k, v) = parse_label(l)?;
            labels.retain(|(old, _)| *old != k);
            labels.push((k, v));
        }
        let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => Some(
                v.trim()
                    .parse()
                    .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number"))?,
            ),
            Err(_) => None,
        };
        Ok(SealOptions {
            platforms: if args.platforms.is_empty() {
                vec![Platform::parse("linux/amd64").expect("valid")]
            } else {
                args.platforms.clone()
            },
            signer,
            cert,
            kargs: args.kargs.clone(),
            keep_kernel: args.keep_kernel,
            sign_bootloader: !args.no_sign_bootloader,
            uki,
            bootloader: args
                .bootloader
                .as_ref()
                .map(|p| read_pe(p, "bootloader"))
                .transpose()?,
            stub: args.stub.as_ref().map(|p| read_pe(p, "stub")).transpose()?,
            allow_section_overlap: args.allow_section_overlap,
            labels,
            compression: args.compression,
            erofs_version: args.format.erofs_version,
            compat: args.format.composefs_compat,
            composefs_arg: args.composefs.composefs_arg,
            allow_missing_verity: args.composefs.allow_missing_verity,
            source_date_epoch,
            base_name,
            jobs: jobs.max(1),
            progress: bootseal::progress::Progress::new(progress),
            layer_cache: None,
            enrollment: args.enroll.load()?,
            offline: offline.cloned(),
            request_prefix: String::new(),
            dumpfile: !args.no_dumpfile,
            addons: args.addons()?,
            addon_scope: args.addon_scope,
            composefs: args.composefs_meta.options(&key_opts, offline.is_some())?,
        })
    }
}

impl SealFlags {
    /// `--addon-cmdline` add-ons, then `--addon` files, in the order given.
    fn addons(&self) -> anyhow::Result<Vec<seal::AddonSource>> {
        let mut out: Vec<seal::AddonSource> = self
            .addon_cmdlines
            .iter()
            .map(|t| seal::AddonSource::Cmdline(t.clone()))
            .collect();
        for p in &self.addon_files {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .with_context(|| format!("--addon {}: not a file name", p.display()))?;
            out.push(seal::AddonSource::File {
                name,
                bytes: read_pe(p, "add-on")?,
            });
        }
        Ok(out)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let from = ImageRef::parse(&args.from).map_err(anyhow::Error::msg)?;
    let to = ImageRef::parse(&args.to).map_err(anyhow::Error::msg)?;
    let src_opts = args.seal.source_options();
    let dst_opts = args.seal.dest_options();
    let offline = args.seal.offline_signer()?;
    let opts = args.seal.seal_options(
        from.registry_name(),
        args.jobs,
        bootseal::progress::Mode::detect(args.seal.quiet),
        offline.as_ref(),
    )?;
    let source = source::open(&from, &src_opts)?;
    if let Some(signer) = offline.as_ref().filter(|o| o.recording()) {
        // Nothing is opened at the destination: the request is all this run writes.
        seal::rehearse(source, &opts)?;
        args.seal.offline.warn_unused(signer);
        return args.seal.offline.write_request(signer);
    }
    let sink = bootseal::sink::open(&to, &dst_opts)?;
    let report = seal::seal(source, sink.as_ref(), &to, &opts)?;
    sink.commit()?;
    if let Some(signer) = &offline {
        args.seal.offline.warn_unused(signer);
    }
    if let Some(f) = &args.digestfile {
        std::fs::write(f, &report.digest).with_context(|| format!("writing {}", f.display()))?;
    }
    if !args.seal.quiet {
        for p in &report.platforms {
            for w in &p.warnings {
                eprintln!("bootseal: warning: {}: {w}", p.platform);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.reference);
    }
    Ok(())
}
