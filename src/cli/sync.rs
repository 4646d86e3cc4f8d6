//! `bootseal sync --from SRC --to DST`: seal every bootc tag of a repository (or layout) into
//! another, leaving tags already sealed from the same source with the same key and options alone.

use super::seal::SealFlags;
use anyhow::{Context, bail};
use bootseal::sync::{self, Outcome, Repo, Shard, SyncRequest};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source: docker://HOST/REPO (every tag), docker://HOST/REPO:TAG, oci:DIR (every tagged image)
    #[arg(long)]
    from: String,
    /// Destination: docker://HOST/REPO or oci:DIR; each tag keeps its name
    #[arg(long)]
    to: String,
    /// Only tags matching this regular expression (anchor it with ^…$ for whole names)
    #[arg(long, value_name = "REGEX")]
    tags: Option<String>,
    /// Tags sealed at once (each with up to 4 blob transfers)
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// This worker's part of the tags: I/N, or env:VAR/N (e.g. env:JOB_COMPLETION_INDEX/4)
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Plan only: report what would be sealed, write nothing
    #[arg(long)]
    dry_run: bool,
    /// Reseal every tag, even those the destination records as up to date
    #[arg(long)]
    force: bool,
    /// Print a JSON report instead of one line per tag
    #[arg(long)]
    json: bool,
    /// Memory for parsed layers reused between tags, in MiB (0: read every layer for every tag)
    #[arg(long, value_name = "MIB", default_value_t = bootseal::digest::DEFAULT_BUDGET >> 20)]
    layer_cache_mib: usize,
    #[command(flatten)]
    seal: SealFlags,
}

/// Blob transfers per sealed tag.
const BLOB_JOBS: usize = 4;

pub fn run(args: Args) -> anyhow::Result<()> {
    let from = Repo::parse(&args.from, "--from").map_err(anyhow::Error::msg)?;
    let to = Repo::parse(&args.to, "--to").map_err(anyhow::Error::msg)?;
    let tags = args
        .tags
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--tags")?;
    let shard = args
        .shard
        .as_deref()
        .map(Shard::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    // Fail on a bad key or flag before listing anything.
    let offline = args.seal.offline_signer()?;
    args.seal.seal_options(
        None,
        BLOB_JOBS,
        bootseal::progress::Mode::Quiet,
        offline.as_ref(),
    )?;
    let request = SyncRequest {
        from,
        to,
        tags,
        shard,
        jobs: args.jobs.max(1),
        dry_run: args.dry_run,
        force: args.force,
        source: args.seal.source_options(),
        dest: args.seal.dest_options(),
        layer_cache_budget: args.layer_cache_mib << 20,
        prepare_signing: offline.as_ref().is_some_and(|o| o.recording()),
    };
    let make_options = || {
        args.seal
            .seal_options(
                None,
                BLOB_JOBS,
                bootseal::progress::Mode::Quiet,
                offline.as_ref(),
            )
            .map_err(|e| super::one_line(&e))
    };
    let json = args.json;
    let report = sync::sync(&request, &make_options, &|r| {
        if !json {
            println!("{r}");
        }
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !args.seal.quiet {
        let count = |f: fn(&Outcome) -> bool| report.tags.iter().filter(|t| f(&t.outcome)).count();
        eprintln!(
            "bootseal: {} tags listed, {} considered: {} sealed, {} unchanged, {} skipped, {} failed, {} awaiting signatures; {} layers reused{}",
            report.listed,
            report.tags.len(),
            count(|o| matches!(o, Outcome::Sealed { .. })),
            count(|o| matches!(o, Outcome::Unchanged { .. })),
            count(|o| matches!(o, Outcome::Skipped { .. })),
            report.failed(),
            count(|o| matches!(o, Outcome::Unsigned { .. })),
            report.layers_reused,
            if args.dry_run { " (dry run)" } else { "" },
        );
    }
    if let Some(signer) = &offline {
        if signer.recording() {
            args.seal.offline.write_request(signer)?;
        } else {
            args.seal.offline.warn_unused(signer);
        }
    }
    if report.failed() > 0 {
        bail!("{} of {} tags failed", report.failed(), report.tags.len());
    }
    Ok(())
}
