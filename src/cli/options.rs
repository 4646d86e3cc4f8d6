//! Flags shared by several subcommands: platform and registry connection options, spelled as
//! skopeo spells them, and the signing key and certificate.

use anyhow::Context;
use bootseal::cmdline::ArgForm;
use bootseal::digest::{ComposefsCompat, ErofsVersion};
use bootseal::manifest::Platform;
use bootseal::registry::{AuthOptions, RegistryOptions, RetryPolicy};
use bootseal::signer::pkcs11::ObjectType;
use bootseal::signer::{
    self, CertifiedSigner, KeyLocation, OfflineSigner, OpenOptions, Pkcs11Options,
};
use bootseal::source::SourceOptions;
use clap::{ArgAction, Args};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use x509_cert::Certificate;

/// Retry and timeout flags, for every registry a command talks to.
#[derive(Args, Debug, Clone)]
pub struct NetworkArgs {
    /// Retries of a failed registry request (429, 5xx, dropped or stalled connections), with
    /// exponential backoff
    #[arg(long, value_name = "N", default_value_t = RetryPolicy::default().retries)]
    pub retry_times: u32,
    /// Seconds a registry connection may take to open or stay silent before it is dropped
    /// and retried
    #[arg(long, value_name = "SECONDS", default_value_t = bootseal::registry::DEFAULT_TIMEOUT.as_secs_f64())]
    pub timeout: f64,
}

impl NetworkArgs {
    /// Connection options for one registry: these retry and timeout flags plus its TLS
    /// setting, CA directory and credentials.
    fn registry_options(
        &self,
        tls_verify: bool,
        cert_dir: &Option<PathBuf>,
        creds: &Option<String>,
        authfile: &Option<PathBuf>,
    ) -> RegistryOptions {
        let mut opts = RegistryOptions {
            tls_verify,
            cert_dir: cert_dir.clone(),
            auth: AuthOptions {
                creds: creds.clone(),
                authfile: authfile.clone(),
            },
            ..RegistryOptions::default()
        };
        opts.retry.retries = self.retry_times;
        if self.timeout.is_finite() && self.timeout > 0.0 {
            opts.timeout = Duration::from_secs_f64(self.timeout.min(86_400.0));
        }
        opts
    }
}

/// Registry options for reading an image (`--tls-verify`, `--cert-dir`, `--creds`, `--authfile`).
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Require HTTPS and verify certificates (`--tls-verify=false` also allows plain HTTP)
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    /// Directory of *.crt CA certificates to trust for the registry
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Credentials USER:PASS (better: an auth file; argv is visible to other users)
    #[arg(long, value_name = "USER:PASS")]
    pub creds: Option<String>,
    /// containers-auth.json file to read credentials from
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

impl RegistryArgs {
    pub fn source_options(&self) -> SourceOptions {
        SourceOptions {
            registry: self.network.registry_options(
                self.tls_verify,
                &self.cert_dir,
                &self.creds,
                &self.authfile,
            ),
        }
    }
}

/// Registry options of a copy from a source to a destination (skopeo copy's spelling).
#[derive(Args, Debug, Clone)]
pub struct CopyRegistryArgs {
    /// TLS verification for both sides (false also allows plain HTTP)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub src_tls_verify: Option<bool>,
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub dest_tls_verify: Option<bool>,
    /// Source credentials USER:PASS
    #[arg(long)]
    pub src_creds: Option<String>,
    /// Destination credentials USER:PASS
    #[arg(long)]
    pub dest_creds: Option<String>,
    /// containers-auth.json for both sides
    #[arg(long, env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Directory of *.crt CA certificates (both sides)
    #[arg(long)]
    pub cert_dir: Option<PathBuf>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

impl CopyRegistryArgs {
    fn side(&self, verify: Option<bool>, creds: &Option<String>) -> RegistryOptions {
        self.network.registry_options(
            verify.or(self.tls_verify).unwrap_or(true),
            &self.cert_dir,
            creds,
            &self.authfile,
        )
    }

    pub fn source(&self) -> SourceOptions {
        SourceOptions {
            registry: self.side(self.src_tls_verify, &self.src_creds),
        }
    }

    pub fn destination(&self) -> RegistryOptions {
        self.side(self.dest_tls_verify, &self.dest_creds)
    }
}

/// Parses `--platform` values.
pub fn parse_platform(s: &str) -> Result<Platform, String> {
    Platform::parse(s)
}

/// Which digest: EROFS version and the composefs-rs release whose semantics it follows.
#[derive(Args, Debug, Clone)]
pub struct DigestFormatArgs {
    /// EROFS format of the digest: 1 (bootc >= 1.16.4 installs) or 2 (hosts installed by bootc <= 1.16.3)
    #[arg(long, default_value = "1", value_name = "1|2")]
    pub erofs_version: ErofsVersion,
    /// composefs-rs release whose digest semantics to follow: 0.9.0 (bootc 1.16.7-1.16.9) or 0.9.4
    #[arg(long, default_value = "0.9.0", value_name = "0.9.0|0.9.4")]
    pub composefs_compat: ComposefsCompat,
}

/// How the sealed command line spells the composefs argument.
#[derive(Args, Debug, Clone)]
pub struct ComposefsArgArgs {
    /// composefs argument form: `composefs` (composefs=<digest>, what bootc 1.16 writes and reads)
    /// or `composefs.digest` (composefs.digest=v<N>-sha512-12:<digest>, self-describing)
    #[arg(long, default_value = "composefs", value_name = "FORM")]
    pub composefs_arg: ArgForm,
    /// Write the insecure form (composefs=?<digest>): the image is mounted even where its files
    /// lack fs-verity, as `bootc container ukify --allow-missing-verity` does
    #[arg(long)]
    pub allow_missing_verity: bool,
}

/// Signing key and certificate (`--key`, `--cert`): files, or objects on a PKCS#11 token
/// named by `pkcs11:` URIs (RFC 7512).
#[derive(Args, Debug, Clone, Default)]
pub struct SigningArgs {
    /// Signing key: RSA key file (PEM/DER; PKCS#1, PKCS#8, encrypted PKCS#8) or a pkcs11: URI
    #[arg(long, value_name = "FILE|URI")]
    pub key: Option<PathBuf>,
    /// Certificate of the signing key: PEM/DER file or a pkcs11: URI (default for a pkcs11:
    /// key: the certificate object with the key's label/id)
    #[arg(long, value_name = "FILE|URI")]
    pub cert: Option<PathBuf>,
    /// File holding the passphrase of an encrypted key, or the token PIN
    #[arg(long, value_name = "FILE")]
    pub key_pass_file: Option<PathBuf>,
    /// Environment variable holding the passphrase of an encrypted key, or the token PIN
    #[arg(long, value_name = "VAR")]
    pub key_pass_env: Option<String>,
    /// PKCS#11 module for pkcs11: URIs without module-path (default: $BOOTSEAL_PKCS11_MODULE,
    /// else p11-kit's proxy module)
    #[arg(long, value_name = "PATH")]
    pub pkcs11_module: Option<PathBuf>,
}

impl SigningArgs {
    /// Passphrase/PIN and module settings for opening the key and certificate.
    pub fn open_options(&self) -> anyhow::Result<OpenOptions> {
        Ok(OpenOptions {
            passphrase: super::passphrase(
                self.key_pass_file.as_deref(),
                self.key_pass_env.as_deref(),
            )?,
            pkcs11: Pkcs11Options {
                module: self.pkcs11_module.clone(),
                ..Default::default()
            },
        })
    }

    /// The `--cert` certificate, if given.
    pub fn certificate(&self, opts: &OpenOptions) -> anyhow::Result<Option<Certificate>> {
        self.cert
            .as_deref()
            .map(|c| super::read_certificate_with(c, opts))
            .transpose()
    }

    /// The `--key` signer paired with `cert`, if a key was given; a key that does not match
    /// the certificate is refused here, before anything is built or uploaded. A token key
    /// without `--cert` is paired with the certificate object its URI names (same
    /// `object`/`id`, `type=cert`).
    pub fn signer(
        &self,
        cert: Option<&Certificate>,
        opts: &OpenOptions,
    ) -> anyhow::Result<Option<Arc<CertifiedSigner>>> {
        let Some(key_arg) = &self.key else {
            return Ok(None);
        };
        let location = KeyLocation::parse(key_arg)?;
        let cert = match (cert, &location) {
            (Some(c), _) => c.clone(),
            (None, KeyLocation::Pkcs11(uri)) => {
                let mut cert_uri = (**uri).clone();
                cert_uri.object_type = Some(ObjectType::Cert);
                signer::open_certificate(&KeyLocation::Pkcs11(Box::new(cert_uri)), opts)
                    .with_context(|| format!("--key {location} without --cert"))?
            }
            (None, KeyLocation::File(_)) => anyhow::bail!("--key needs --cert"),
        };
        let key = signer::open_key(&location, opts).with_context(|| format!("--key {location}"))?;
        let paired = CertifiedSigner::new(key, cert)?;
        Ok(Some(Arc::new(paired)))
    }
}

/// Signing across an air gap: `--prepare-signing` writes what must be signed, `--signatures`
/// gives it back signed; the key never meets this host (see `bootseal::signer::offline`).
#[derive(Args, Debug, Clone, Default)]
pub struct OfflineArgs {
    /// Do everything up to the signatures and write what the --cert key must sign to this
    /// file (a signing request, JSON); nothing is written to the destination. No --key
    #[arg(long, value_name = "REQ.json")]
    pub prepare_signing: Option<PathBuf>,
    /// Signatures made elsewhere from a signing request (`bootseal sign-request`, openssl, a
    /// KMS), each checked against --cert over the bytes computed here (repeatable). No --key
    #[arg(long = "signatures", value_name = "SIGS.json")]
    pub signatures: Vec<PathBuf>,
}

impl OfflineArgs {
    /// The offline signer these flags ask for, if any: needs `cert` and refuses a key
    /// (`key_flag` names the key option given, if one was).
    pub fn open(
        &self,
        cert: Option<&Certificate>,
        key_flag: Option<&str>,
    ) -> anyhow::Result<Option<Arc<OfflineSigner>>> {
        if self.prepare_signing.is_none() && self.signatures.is_empty() {
            return Ok(None);
        }
        if let Some(flag) = key_flag {
            anyhow::bail!(
                "{flag} and --prepare-signing/--signatures exclude each other: the key signs here, or elsewhere"
            );
        }
        let Some(cert) = cert else {
            anyhow::bail!(
                "--prepare-signing/--signatures need --cert (the certificate of the key that signs elsewhere)"
            );
        };
        let files: Vec<&Path> = self.signatures.iter().map(PathBuf::as_path).collect();
        let signer = OfflineSigner::new(cert.clone(), &files, self.prepare_signing.is_some())?;
        Ok(Some(Arc::new(signer)))
    }

    /// After a `--prepare-signing` run: write the request, and say what it holds and what next.
    pub fn write_request(&self, signer: &OfflineSigner) -> anyhow::Result<()> {
        let Some(path) = &self.prepare_signing else {
            return Ok(());
        };
        let request = signer.request()?;
        bootseal::signer::offline::write_json(path, &request)?;
        let ids = |v: Vec<&String>| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        let now = ids(request.requests.iter().map(|r| &r.id).collect());
        if request.requests.is_empty() {
            eprintln!(
                "bootseal: wrote {}: nothing left to sign; run again with --signatures only",
                path.display()
            );
        } else {
            eprintln!(
                "bootseal: wrote {}: {} signature(s) to make ({now}); nothing was written to the destination",
                path.display(),
                request.requests.len()
            );
        }
        if !request.pending.is_empty() {
            eprintln!(
                "bootseal: {} more after those ({}): run again with their --signatures and --prepare-signing",
                request.pending.len(),
                ids(request.pending.iter().map(|p| &p.id).collect())
            );
        }
        Ok(())
    }

    /// Warn about supplied signatures nothing asked for.
    pub fn warn_unused(&self, signer: &OfflineSigner) {
        let unused = signer.unused();
        if !unused.is_empty() {
            eprintln!(
                "bootseal: warning: signatures not asked for by this run: {}",
                unused.join(", ")
            );
        }
    }
}
