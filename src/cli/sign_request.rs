//! `bootseal sign-request REQ.json --key KEY -o SIGS.json`: the signing room's side of an
//! air-gapped seal. Signs every entry of a signing request with a key file or a PKCS#11 key,
//! after checking the key belongs to the request's certificate and each entry's hash.

use super::options::SigningArgs;
use anyhow::Context;
use bootseal::signer::offline::{SigningRequest, write_json};
use bootseal::signer::{self, CertifiedSigner, KeyLocation};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The signing request (`seal|sync|sign|keys auth --prepare-signing` wrote it)
    pub request: PathBuf,
    /// Where to write the signatures (JSON, for --signatures)
    #[arg(short, long)]
    pub output: PathBuf,
    /// The key (file or pkcs11: URI); --cert is taken from the request
    #[command(flatten)]
    pub signing: SigningArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (request, cert) = SigningRequest::read(&args.request)?;
    let key_arg = args
        .signing
        .key
        .as_ref()
        .context("missing --key (a key file or a pkcs11: URI)")?;
    if let Some(c) = &args.signing.cert {
        anyhow::bail!(
            "--cert {}: the certificate comes from the request",
            c.display()
        );
    }
    let opts = args.signing.open_options()?;
    let location = KeyLocation::parse(key_arg)?;
    let key = signer::open_key(&location, &opts).with_context(|| format!("--key {location}"))?;
    // Refuses a key of another certificate before anything is signed.
    let paired =
        CertifiedSigner::new(key, cert).with_context(|| format!("{}", args.request.display()))?;
    let signatures = request.sign_all(paired.key())?;
    write_json(&args.output, &signatures)?;
    eprintln!(
        "bootseal: signed {} request(s) of {} into {}",
        signatures.signatures.len(),
        args.request.display(),
        args.output.display()
    );
    if !request.pending.is_empty() {
        eprintln!(
            "bootseal: the request also names {} signature(s) asked for in the next round",
            request.pending.len()
        );
    }
    Ok(())
}
