//! `bootseal seal --from SRC --to DST --key KEY --cert CERT`: the unsealed image in, the sealed
//! image out, in one pass.

use super::options::{ComposefsArgArgs, DigestFormatArgs, SigningArgs, parse_platform};
use super::read_pe;
use crate::auth::AuthOptions;
use crate::layer_writer::LayerCompression;
use crate::manifest::Platform;
use crate::reference::ImageRef;
use crate::seal::{self, SealOptions, UkiSource};
use crate::source::{self, RegistryOptions, SourceOptions};
use anyhow::{Context, bail};
use clap::ArgAction;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The unsealed image (docker://, oci:DIR[:TAG], oci-archive:FILE[:TAG])
    #[arg(long)]
    from: String,
    /// Where to write the sealed image
    #[arg(long)]
    to: String,
    /// Secure Boot key and certificate (files or pkcs11: URIs); --cert also checks
    /// --uki/--bootloader signatures
    #[command(flatten)]
    signing: SigningArgs,
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
    /// Label to set (repeatable); default containers.bootc=sealed
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// New layer compression: gzip or zstd
    #[arg(long, default_value = "gzip")]
    compression: LayerCompression,
    #[command(flatten)]
    format: DigestFormatArgs,
    #[command(flatten)]
    composefs: ComposefsArgArgs,
    /// Parallel blob transfers
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Write DST@sha256:… to this file
    #[arg(long)]
    digestfile: Option<PathBuf>,
    /// Print a JSON report
    #[arg(long)]
    json: bool,
    /// No progress output
    #[arg(long, short)]
    quiet: bool,
    /// TLS verification for both sides (false also allows plain HTTP)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    tls_verify: Option<bool>,
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    src_tls_verify: Option<bool>,
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    dest_tls_verify: Option<bool>,
    /// Source credentials USER:PASS
    #[arg(long)]
    src_creds: Option<String>,
    /// Destination credentials USER:PASS
    #[arg(long)]
    dest_creds: Option<String>,
    /// containers-auth.json for both sides
    #[arg(long, env = "REGISTRY_AUTH_FILE")]
    authfile: Option<PathBuf>,
    /// Directory of *.crt CA certificates (both sides)
    #[arg(long)]
    cert_dir: Option<PathBuf>,
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let from = ImageRef::parse(&args.from).map_err(anyhow::Error::msg)?;
    let to = ImageRef::parse(&args.to).map_err(anyhow::Error::msg)?;
    let registry = |verify: Option<bool>, creds: &Option<String>| RegistryOptions {
        tls_verify: verify.or(args.tls_verify).unwrap_or(true),
        cert_dir: args.cert_dir.clone(),
        auth: AuthOptions {
            creds: creds.clone(),
            authfile: args.authfile.clone(),
        },
    };
    let src_opts = SourceOptions {
        registry: registry(args.src_tls_verify, &args.src_creds),
    };
    let dst_opts = registry(args.dest_tls_verify, &args.dest_creds);

    let key_opts = args.signing.open_options()?;
    let cert = args.signing.certificate(&key_opts)?;
    let signer = args.signing.signer(cert.as_ref(), &key_opts)?;
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
    let opts = SealOptions {
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
        base_name: from.registry_name(),
        jobs: args.jobs.max(1),
        progress: crate::progress::Progress::new(crate::progress::Mode::detect(args.quiet)),
    };
    let source = source::open(&from, &src_opts)?;
    let sink = crate::sink::open(&to, &dst_opts)?;
    let report = seal::seal(source, sink.as_ref(), &to, &opts)?;
    sink.commit()?;
    if let Some(f) = &args.digestfile {
        std::fs::write(f, &report.digest).with_context(|| format!("writing {}", f.display()))?;
    }
    if !args.quiet {
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
