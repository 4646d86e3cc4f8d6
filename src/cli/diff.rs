//! `bootseal diff A B`: which entries of two bootable trees differ, and in what. Each side is an
//! image (its tree computed as `digest` computes it) or a composefs dumpfile.

use super::options::{RegistryArgs, parse_platform};
use anyhow::Context;
use bootseal::diff::{self, EntryDiff};
use bootseal::digest::{self, ComposefsCompat, DigestOptions};
use bootseal::manifest::Platform;
use bootseal::reference::ImageRef;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// First side: an image (docker://…, oci:DIR[:TAG], oci-archive:FILE[:TAG]) or a composefs
    /// dumpfile (an existing file, e.g. a sealed image's /boot/<kver>.dump)
    a: String,
    /// Second side, as the first
    b: String,
    /// composefs-rs release whose semantics to build an image's tree with: 0.9.0 (bootc
    /// 1.16.7-1.16.9) or 0.9.4 (a dumpfile side is compared as written)
    #[arg(long, default_value = "0.9.0", value_name = "0.9.0|0.9.4")]
    composefs_compat: ComposefsCompat,
    /// Platform to select from a multi-arch index
    #[arg(long, default_value = "linux/amd64", value_parser = parse_platform)]
    platform: Platform,
    /// Print a JSON report instead of one line per entry
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// A side's name (for messages) and its dumpfile.
fn load(arg: &str, args: &Args) -> anyhow::Result<(String, String)> {
    let path = Path::new(arg);
    if path.is_file() {
        let bytes = super::read_input(path, "dumpfile")?;
        let text = String::from_utf8(bytes)
            .map_err(|e| anyhow::anyhow!("dumpfile {arg}: not UTF-8 text ({e})"))?;
        return Ok((arg.to_string(), text));
    }
    let image = ImageRef::parse(arg)
        .map_err(|e| anyhow::anyhow!("{arg}: neither a dumpfile nor an image reference: {e}"))?;
    let opts = DigestOptions {
        compat: args.composefs_compat,
        keep_dumpfile: true,
        ..Default::default()
    };
    let report = digest::of_image(
        &image,
        &args.registry.source_options(),
        &args.platform,
        &opts,
    )?;
    let dump = report
        .dumpfile
        .with_context(|| format!("{arg}: no dumpfile computed"))?;
    Ok((arg.to_string(), dump))
}

/// Exit status 0 when the trees are the same, 1 when they differ (errors are the caller's 2).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (a_name, a) = load(&args.a, &args)?;
    let (b_name, b) = load(&args.b, &args)?;
    let diffs: Vec<EntryDiff> = diff::diff(&a_name, &a, &b_name, &b)?;
    let compat = args.composefs_compat.as_str();
    if args.json {
        let report = serde_json::json!({
            "a": a_name,
            "b": b_name,
            "composefs_compat": compat,
            "differences": diffs,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for d in &diffs {
            println!("{d}");
        }
        eprintln!(
            "bootseal: {} {} between {a_name} and {b_name} (bootable trees; images read with composefs-rs {compat} semantics)",
            diffs.len(),
            if diffs.len() == 1 {
                "entry differs"
            } else {
                "entries differ"
            },
        );
    }
    Ok(if diffs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
