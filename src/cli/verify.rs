//! `bootseal verify IMAGE [--cert CERT]`: recompute and check a sealed image; non-zero exit on
//! any failed check.

use super::options::{RegistryArgs, parse_platform};
use super::write_output;
use crate::digest::ErofsVersion;
use crate::manifest::Platform;
use crate::reference::ImageRef;
use crate::seal::verify::verify_image;
use anyhow::bail;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The sealed image
    image: String,
    /// Certificate the UKI and systemd-boot must be signed with
    #[arg(long)]
    cert: Option<PathBuf>,
    #[arg(long, default_value = "linux/amd64", value_parser = parse_platform)]
    platform: Platform,
    /// EROFS format of the digest: 1 or 2
    #[arg(long, default_value = "1")]
    erofs_version: ErofsVersion,
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
    let verdict = verify_image(
        &image,
        &args.registry.source_options(),
        &args.platform,
        cert.as_ref(),
        args.erofs_version,
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
        println!(
            "{}",
            if verdict.ok {
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
