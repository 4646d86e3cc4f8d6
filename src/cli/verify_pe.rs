//! `bootseal verify-pe`: flags for [`bootseal::authenticode::verify`].

use super::read_input;
use anyhow::Context;
use bootseal::authenticode;
use std::path::PathBuf;

/// Verify a PE image's Authenticode signature: image hash, CMS signature, chain to CERT.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Signed PE image.
    pub file: PathBuf,
    /// Trusted certificate (PEM or DER) the signature must chain to.
    #[arg(long)]
    pub cert: PathBuf,
}

/// Run `verify-pe`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let image = read_input(&args.file, "PE image")?;
    let cert = super::read_certificate(&args.cert)?;
    let index = authenticode::verify(&image, &cert)
        .with_context(|| format!("{} does not verify", args.file.display()))?;
    println!(
        "{}: signature {index} verified, chains to {}",
        args.file.display(),
        cert.tbs_certificate.subject
    );
    Ok(())
}
