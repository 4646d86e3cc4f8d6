//! `bootseal sign`: flags for [`bootseal::authenticode`] signing, detached digest and attach.

use super::options::{OfflineArgs, SigningArgs};
use super::{read_input, read_input_with_room, write_output};
use anyhow::{Context, bail};
use bootseal::authenticode;
use bootseal::signer::{CertifiedSigner, SignLabel, Signer};
use std::path::PathBuf;
use std::sync::Arc;

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
    #[command(flatten)]
    pub offline: OfflineArgs,
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
    let opts = args.signing.open_options()?;
    let cert = args.signing.certificate(&opts)?;
    let key_flag = args.signing.key.as_ref().map(|_| "--key");
    if let Some(offline) = args.offline.open(cert.as_ref(), key_flag)? {
        let cert = cert.context("--prepare-signing/--signatures need --cert")?;
        return sign_offline(&args, image, offline, cert);
    }
    let output = args.output.as_deref().context("missing -o/--output")?;
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

/// `sign --prepare-signing REQ.json` (one request, id `authenticode`; nothing else written) or
/// `sign --signatures SIGS.json -o OUT` (the signature checked, then embedded).
fn sign_offline(
    args: &Args,
    image: Vec<u8>,
    offline: Arc<bootseal::signer::OfflineSigner>,
    cert: x509_cert::Certificate,
) -> anyhow::Result<()> {
    let output = match (&args.offline.prepare_signing, args.output.as_deref()) {
        (None, None) => bail!("missing -o/--output"),
        (Some(_), Some(o)) => bail!(
            "-o {}: a --prepare-signing run writes only the request",
            o.display()
        ),
        (_, o) => o,
    };
    let signer = CertifiedSigner::new_shared(Arc::clone(&offline) as Arc<dyn Signer>, cert)?
        .labelled(SignLabel {
            id: "authenticode".into(),
            what: format!("Authenticode of {}", args.input.display()),
            after: Vec::new(),
        });
    let signed = authenticode::sign_owned(image, &signer, args.append)
        .with_context(|| format!("cannot sign {}", args.input.display()))?;
    match output {
        Some(out) => {
            args.offline.warn_unused(&offline);
            write_output(out, &signed)
        }
        None => args.offline.write_request(&offline),
    }
}
