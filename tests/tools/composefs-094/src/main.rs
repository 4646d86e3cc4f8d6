//! composefs-rs 0.9.4 as an independent reference for bootseal's tests.
//!
//! `composefs-094-reference digest oci:DIR:TAG 1|2` prints the bootable image id that
//! composefs-oci 0.9.4's own pipeline computes (pull into a throw-away repository,
//! create_filesystem, transform_for_boot, compute_image_id), as bootc built on 0.9.4 would.
//! `composefs-094-reference cmdline LINE` prints, as JSON, what composefs-boot 0.9.4's
//! `ComposefsCmdline::from_cmdline` reads from a kernel command line.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use composefs::erofs::format::FormatVersion;
use composefs::fsverity::{Algorithm, FsVerityHashValue, Sha512HashValue};
use composefs::repository::{Repository, RepositoryConfig};
use composefs_boot::BootOps;
use composefs_boot::cmdline::ComposefsCmdline;

fn digest(imgref: &str, version: &str) -> Result<String> {
    let format = match version {
        "1" => FormatVersion::V1,
        "2" => FormatVersion::V2,
        v => bail!("no EROFS version {v}"),
    };
    let tmp = tempfile::tempdir()?;
    let (repo, _) = Repository::<Sha512HashValue>::init_path(
        rustix::fs::CWD,
        tmp.path().join("repo"),
        RepositoryConfig::new(Algorithm::SHA512).set_insecure(),
    )?;
    let repo = Arc::new(repo);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pulled = rt.block_on(composefs_oci::pull(
        &repo,
        imgref,
        None,
        composefs_oci::PullOptions::default(),
    ))?;
    let mut fs = composefs_oci::image::create_filesystem(
        &repo,
        &pulled.config_digest,
        Some(&pulled.config_verity),
        &Default::default(),
    )?;
    fs.transform_for_boot(&repo)?;
    Ok(fs.compute_image_id(format).to_hex())
}

fn cmdline(line: &str) -> Result<String> {
    let value = match ComposefsCmdline::<Sha512HashValue>::from_cmdline(line) {
        Ok(Some(parsed)) => serde_json::json!({
            "digest": parsed.digest().to_hex(),
            "insecure": parsed.is_insecure(),
            "variant": match parsed {
                ComposefsCmdline::V1 { .. } => "V1",
                ComposefsCmdline::V2 { .. } => "V2",
            },
        }),
        Ok(None) => serde_json::json!(null),
        Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
    };
    Ok(value.to_string())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["digest", imgref, version] => digest(imgref, version).context("composefs-oci 0.9.4")?,
        ["cmdline", line] => cmdline(line)?,
        _ => bail!("usage: composefs-094-reference digest IMGREF 1|2 | cmdline LINE"),
    };
    println!("{out}");
    Ok(())
}
