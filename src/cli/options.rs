//! Flags shared by the subcommands that read images: platform and registry connection options,
//! spelled as skopeo spells them.

use crate::auth::AuthOptions;
use crate::cmdline::ArgForm;
use crate::digest::{ComposefsCompat, ErofsVersion};
use crate::manifest::Platform;
use crate::source::{RegistryOptions, SourceOptions};
use clap::{ArgAction, Args};
use std::path::PathBuf;

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
}

impl RegistryArgs {
    pub fn source_options(&self) -> SourceOptions {
        SourceOptions {
            registry: RegistryOptions {
                tls_verify: self.tls_verify,
                cert_dir: self.cert_dir.clone(),
                auth: AuthOptions {
                    creds: self.creds.clone(),
                    authfile: self.authfile.clone(),
                },
            },
        }
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
