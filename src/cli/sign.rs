//! `bootseal sign`: flags for [`bootseal::authenticode`] signing, detached digest and attach.

use super::options::SigningArgs;
use super::{read_input, read_input_with_room, write_output};
use anyhow::{Context, bail};
use bootseal::authenticode;
use std::path::PathBuf;

/// Sign a PE image for UEFI Secure Boot (Authenticode, like sbsign).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// PE image to sign.
    pub input: PathBuf,
    /// Output file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub signing: SigningArgs,
    /// Add a signature to an already signed image instead of refusing it.
    #[arg(long)]
    pub append: bool,
    /// Print the Authenticode SHA-256 digest to sign externally, write nothing.
    #[arg(long, conflicts_with_all = ["attach", "key", "output"])]
    pub detached_digest: bool,
    /// Embed this PKCS#7 SignedData (DER or PEM) made elsewhere, after verifying it.
    #[arg(long, conflicts_with = "key")]
    pub attach: Option<PathBuf>,
}

/// Run `sign`.
pub fn run(args: Args) -> anyhow::Result<()> {
    // Spare capacity for the padding and the certificate entry: signing appends in place.
    let image = read_input_with_room(&args.input, "PE image", 64 * 1024)?;
    if args.detached_digest {
        let d = authenticode::detached_digest(&image)
            .with_context(|| format!("{}", args.input.display()))?;
        println!("{}", hex::encode(d));
        return Ok(());
    }
    let output = args.output.as_deref().context("missing -o/--output")?;
    let opts = args.signing.open_options()?;
    let cert = args.signing.certificate(&opts)?;
    let signed = if let Some(p7_path) = &args.attach {
        let p7 = read_input(p7_path, "PKCS#7 signature")?;
        authenticode::attach(&image, &p7, cert.as_ref(), args.append).with_context(|| {
            format!(
                "cannot attach {} to {}",
                p7_path.display(),
                args.input.display()
            )
        })?
    } else {
        let Some(signer) = args.signing.signer(cert.as_ref(), &opts)? else {
            bail!("give --key and --cert, --attach, or --detached-digest");
        };
        authenticode::sign_owned(image, &signer, args.append)
            .with_context(|| format!("cannot sign {}", args.input.display()))?
    };
    write_output(output, &signed)
}
