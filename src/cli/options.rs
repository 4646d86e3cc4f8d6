//! Flags shared by the subcommands that read or write images: platform and registry connection
//! options, spelled as skopeo spells them.

use crate::cmdline::ArgForm;
use crate::digest::{ComposefsCompat, ErofsVersion};
use crate::manifest::Platform;
use crate::registry::{AuthOptions, RegistryOptions, RetryPolicy};
use crate::source::SourceOptions;
use clap::{ArgAction, Args};
use std::path::PathBuf;
use std::time::Duration;

/// Retry and timeout flags, for every registry a command talks to.
#[derive(Args, Debug, Clone)]
pub struct NetworkArgs {
    /// Retries of a failed registry request (429, 5xx, dropped or stalled connections), with
    /// exponential backoff
    #[arg(long, value_name = "N", default_value_t = RetryPolicy::default().retries)]
    pub retry_times: u32,
    /// Seconds a registry connection may take to open or stay silent before it is dropped
    /// and retried
    #[arg(long, value_name = "SECONDS", default_value_t = crate::registry::DEFAULT_TIMEOUT.as_secs_f64())]
    pub timeout: f64,
}

impl NetworkArgs {
    fn apply(&self, mut opts: RegistryOptions) -> RegistryOptions {
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
            registry: self.network.apply(RegistryOptions {
                tls_verify: self.tls_verify,
                cert_dir: self.cert_dir.clone(),
                auth: AuthOptions {
                    creds: self.creds.clone(),
                    authfile: self.authfile.clone(),
                },
                ..RegistryOptions::default()
            }),
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
        self.network.apply(RegistryOptions {
            tls_verify: verify.or(self.tls_verify).unwrap_or(true),
            cert_dir: self.cert_dir.clone(),
            auth: AuthOptions {
                creds: creds.clone(),
                authfile: self.authfile.clone(),
            },
            ..RegistryOptions::default()
        })
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
