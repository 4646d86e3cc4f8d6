//! `bootseal digest IMAGE`: the composefs digest, as `bootc container compute-composefs-digest`.

use super::options::{DigestFormatArgs, RegistryArgs, parse_platform};
use bootseal::digest::{self, DigestOptions};
use bootseal::manifest::Platform;
use bootseal::reference::ImageRef;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// docker://HOST/REPO:TAG, HOST/REPO@DIGEST, oci:DIR[:TAG] or oci-archive:FILE[:TAG]
    image: String,
    #[command(flatten)]
    format: DigestFormatArgs,
    /// Platform to select from a multi-arch index
    #[arg(long, default_value = "linux/amd64", value_parser = parse_platform)]
    platform: Platform,
    /// Print a JSON report (digest, layer count, bytes read, timings)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let image = ImageRef::parse(&args.image).map_err(anyhow::Error::msg)?;
    let opts = DigestOptions {
        erofs_version: args.format.erofs_version,
        compat: args.format.composefs_compat,
        ..Default::default()
    };
    let report = digest::of_image(
        &image,
        &args.registry.source_options(),
        &args.platform,
        &opts,
    )?;
    for w in &report.warnings {
        eprintln!("bootseal: warning: {w}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        println!("{}", report.digest_hex);
    }
    Ok(())
}
