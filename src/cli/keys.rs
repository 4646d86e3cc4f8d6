//! `bootseal keys`: create a Secure Boot key set (PK, KEK, db with .esl/.auth) and sign
//! variable updates for key rotation ([`bootseal::efi_keys`]).

use super::{passphrase, write_output};
use anyhow::{Context, bail};
use bootseal::efi_keys::{self, EfiTime, Guid, SecureBootVar, esl};
use clap::Subcommand;
use der::Encode;
use std::path::PathBuf;
use std::sync::Arc;

/// Secure Boot keys and enrollment payloads.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create PK, KEK and db key pairs, signature lists and setup-mode .auth updates in DIR
    Create(CreateArgs),
    /// Sign an update (.auth) of PK, KEK, db or dbx with the key that owns that variable
    Auth(AuthArgs),
}

/// `keys create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Directory to write PK.key PK.crt PK.cer PK.esl PK.auth, KEK.*, db.*, GUID.txt into
    pub dir: PathBuf,
    /// Certificate subjects are "CN=<TEXT> PK", "CN=<TEXT> KEK", "CN=<TEXT> db"
    #[arg(long, value_name = "TEXT", default_value = "bootseal")]
    pub subject_prefix: String,
    /// RSA key size
    #[arg(long, default_value = "2048", value_parser = bits_parser())]
    pub bits: usize,
    /// SignatureOwner GUID of the list entries (default: random)
    #[arg(long, value_name = "GUID")]
    pub owner_guid: Option<String>,
    /// Certificate lifetime in days
    #[arg(long, default_value_t = 3650)]
    pub days: u64,
    /// Only a db key, for a machine whose PK and KEK exist: db.* in DIR, db.auth an append
    /// update signed by --kek-key (the PK signs KEK updates only, so it is not needed)
    #[arg(long, requires_all = ["kek_key", "kek_cert"])]
    pub db_only: bool,
    /// With --db-only: the machine's KEK private key (a file or a pkcs11: URI)
    #[arg(long, value_name = "KEY", requires = "db_only")]
    pub kek_key: Option<PathBuf>,
    /// With --db-only: the certificate of --kek-key
    #[arg(long, value_name = "FILE", requires = "db_only")]
    pub kek_cert: Option<PathBuf>,
    /// File holding the passphrase of an encrypted --kek-key
    #[arg(long, requires = "db_only")]
    pub key_pass_file: Option<PathBuf>,
    /// Environment variable holding the passphrase of an encrypted --kek-key
    #[arg(long, requires = "db_only")]
    pub key_pass_env: Option<String>,
}

/// `keys auth`.
#[derive(Debug, clap::Args)]
pub struct AuthArgs {
    /// Variable to update: PK, KEK, db or dbx
    #[arg(long, value_name = "VAR")]
    pub var: String,
    /// Private key owning the variable (PK for PK and KEK, a KEK for db and dbx): a file or a
    /// pkcs11: URI; none with --prepare-signing/--signatures
    #[arg(long, value_name = "FILE")]
    pub signer_key: Option<PathBuf>,
    /// Certificate of --signer-key
    #[arg(long, value_name = "FILE")]
    pub signer_cert: PathBuf,
    /// File holding the passphrase of an encrypted --signer-key
    #[arg(long)]
    pub key_pass_file: Option<PathBuf>,
    /// Environment variable holding the passphrase of an encrypted --signer-key
    #[arg(long)]
    pub key_pass_env: Option<String>,
    /// Certificates (PEM or DER) to put in the variable; none with --append is refused, none
    /// without it deletes the variable
    pub certs: Vec<PathBuf>,
    /// Add to the variable (EFI_VARIABLE_APPEND_WRITE) instead of replacing it
    #[arg(long)]
    pub append: bool,
    /// SignatureOwner GUID of the new entries (default: random)
    #[arg(long, value_name = "GUID")]
    pub owner_guid: Option<String>,
    /// Output .auth file (not with --prepare-signing)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The owner key is elsewhere: sign the update's bytes from a request (both runs need the
    /// same SOURCE_DATE_EPOCH and --owner-guid, which the signed bytes hold)
    #[command(flatten)]
    pub offline: super::options::OfflineArgs,
}

/// 2048, 3072 or 4096.
fn bits_parser() -> impl clap::builder::TypedValueParser<Value = usize> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["2048", "3072", "4096"])
        .map(|s| s.parse::<usize>().unwrap_or(2048))
}

/// Run `keys`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Create(a) => create(a),
        KeysCommand::Auth(a) => auth(a),
    }
}

fn owner(text: Option<&str>) -> anyhow::Result<Guid> {
    Ok(match text {
        Some(t) => Guid::parse(t).context("--owner-guid")?,
        None => Guid::random(),
    })
}

fn create(a: CreateArgs) -> anyhow::Result<()> {
    let opts = efi_keys::create::CreateOptions {
        subject_prefix: a.subject_prefix,
        bits: a.bits,
        owner: owner(a.owner_guid.as_deref())?,
        time: EfiTime::now(),
        valid_days: a.days,
    };
    let files = match (a.db_only, &a.kek_key, &a.kek_cert) {
        (true, Some(key), Some(cert)) => {
            let kek = open_signer(
                key,
                cert,
                a.key_pass_file.as_deref(),
                a.key_pass_env.as_deref(),
            )
            .with_context(|| format!("--kek-key {}", key.display()))?;
            efi_keys::create::create_db_only(&a.dir, &opts, &kek)
        }
        _ => efi_keys::create::create(&a.dir, &opts),
    }
    .with_context(|| format!("cannot create Secure Boot keys in {}", a.dir.display()))?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}

fn auth(a: AuthArgs) -> anyhow::Result<()> {
    let var = SecureBootVar::parse(&a.var)
        .with_context(|| format!("--var {:?}: expected PK, KEK, db or dbx", a.var))?;
    if a.append && a.certs.is_empty() {
        bail!("--append needs at least one certificate");
    }
    match (&a.offline.prepare_signing, &a.output) {
        (Some(_), Some(out)) => bail!(
            "-o {}: a --prepare-signing run writes only the request",
            out.display()
        ),
        (None, None) => bail!("missing -o/--output"),
        _ => {}
    }
    let owner = owner(a.owner_guid.as_deref())?;
    let mut data = Vec::new();
    for c in &a.certs {
        let cert = super::read_certificate(c)?;
        let der = cert
            .to_der()
            .with_context(|| format!("certificate {}", c.display()))?;
        data.extend(esl::x509_list(owner, &der));
    }
    let cert = super::read_certificate(&a.signer_cert)?;
    let key_flag = a.signer_key.as_ref().map(|_| "--signer-key");
    let offline = a.offline.open(Some(&cert), key_flag)?;
    let signer = match (&offline, &a.signer_key) {
        (Some(o), _) => {
            if std::env::var_os("SOURCE_DATE_EPOCH").is_none()
                || (!a.certs.is_empty() && a.owner_guid.is_none())
            {
                bail!(
                    "--prepare-signing/--signatures: set SOURCE_DATE_EPOCH and --owner-guid, so both runs sign the same bytes"
                );
            }
            let shared = Arc::clone(o) as Arc<dyn bootseal::signer::Signer>;
            let label = bootseal::signer::SignLabel {
                id: format!("auth:{}", var.name()),
                what: format!(
                    "EFI variable update of {} ({} list(s))",
                    var.name(),
                    a.certs.len()
                ),
                after: Vec::new(),
            };
            Arc::new(bootseal::signer::CertifiedSigner::new_shared(shared, cert)?.labelled(label))
        }
        (None, Some(key)) => open_signer(
            key,
            &a.signer_cert,
            a.key_pass_file.as_deref(),
            a.key_pass_env.as_deref(),
        )
        .with_context(|| format!("signer key {}", key.display()))?,
        (None, None) => bail!("missing --signer-key (or --prepare-signing/--signatures)"),
    };
    let update = efi_keys::auth::build(var, &data, EfiTime::now(), a.append, &signer)
        .with_context(|| format!("cannot sign the {} update", var.name()))?;
    match (&offline, &a.output) {
        (_, Some(out)) => write_output(out, &update),
        (Some(o), None) => a.offline.write_request(o),
        (None, None) => bail!("missing -o/--output"),
    }
}

/// A variable's owner key: a file or a pkcs11: URI, like every other key bootseal takes.
fn open_signer(
    key: &std::path::Path,
    cert: &std::path::Path,
    pass_file: Option<&std::path::Path>,
    pass_env: Option<&str>,
) -> anyhow::Result<std::sync::Arc<bootseal::signer::CertifiedSigner>> {
    let opts = bootseal::signer::OpenOptions {
        passphrase: passphrase(pass_file, pass_env)?,
        ..Default::default()
    };
    let signer = bootseal::signer::open_certified(
        &bootseal::signer::KeyLocation::parse(key)?,
        &bootseal::signer::KeyLocation::parse(cert)?,
        &opts,
    )?;
    Ok(signer)
}
