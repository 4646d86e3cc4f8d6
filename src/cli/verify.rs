//! `bootseal verify IMAGE [--cert CERT]`: recompute and check a sealed image; non-zero exit on
//! any failed check.

use super::options::{DigestFormatArgs, RegistryArgs, parse_platform};
use super::write_output;
use anyhow::bail;
use bootseal::manifest::Platform;
use bootseal::reference::ImageRef;
use bootseal::verify::{PolicyOptions, verify_image};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The sealed image
    image: String,
    /// Certificate the UKI and systemd-boot must be signed with
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Certificate the composefs fs-verity signatures must be made with (default: --cert)
    #[arg(long)]
    composefs_cert: Option<PathBuf>,
    #[arg(long, default_value = "linux/amd64", value_parser = parse_platform)]
    platform: Platform,
    #[command(flatten)]
    format: DigestFormatArgs,
    /// Accept a UKI whose composefs argument is the insecure form (composefs=?<digest>)
    #[arg(long)]
    allow_missing_verity: bool,
    /// Also write the image's UKI to this file
    #[arg(long)]
    save_uki: Option<PathBuf>,
    /// Print the verdict as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let image = ImageRef::parse(&args.image).map_err(anyhow::Error::msg)?;
    let cert = args
        .cert
        .as_deref()
        .map(super::read_certificate)
        .transpose()?;
    let policy = PolicyOptions {
        cert,
        erofs_version: args.format.erofs_version,
        compat: args.format.composefs_compat,
        allow_missing_verity: args.allow_missing_verity,
        composefs_cert: args
            .composefs_cert
            .as_deref()
            .map(super::read_certificate)
            .transpose()?,
    };
    let verdict = verify_image(
        &image,
        &args.registry.source_options(),
        &args.platform,
        &policy,
    )?;
    if let (Some(path), Some(bytes)) = (&args.save_uki, &verdict.uki_bytes) {
        write_output(path, bytes)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        println!("{} ({})", verdict.image, verdict.manifest);
        for c in &verdict.checks {
            println!(
                "  [{}] {}: {}",
                if c.ok { "ok" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        if let Some(arg) = verdict.composefs_argument.as_ref().filter(|a| a.insecure) {
            println!(
                "  note: {} is the insecure form: fs-verity is not enforced at boot",
                arg.token
            );
        }
        println!(
            "{}",
            if verdict.ok
                && verdict
                    .composefs_argument
                    .as_ref()
                    .is_some_and(|a| a.insecure)
            {
                "verdict: sealed and valid (insecure: fs-verity optional, --allow-missing-verity)"
            } else if verdict.ok {
                "verdict: sealed and valid"
            } else {
                "verdict: NOT valid"
            }
        );
    }
    if !verdict.ok {
        bail!("{}: verification failed", verdict.image);
    }
    Ok(())
}
