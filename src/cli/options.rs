//! Flags shared by the subcommands that read images: platform and registry connection options,
//! spelled as skopeo spells them.

use crate::auth::AuthOptions;
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
