//! `--enroll-keys DIR [--enroll-name NAME]` for `seal` and `build-uki --from` (the same flags
//! on both, so the digest `build-uki --from` computes for external signing matches the seal).

use anyhow::Context;
use bootseal::efi_keys::Enrollment;
use std::path::PathBuf;

/// Secure Boot enrollment payloads to carry in the sealed image.
#[derive(Debug, Clone, clap::Args)]
pub struct EnrollArgs {
    /// Carry DIR's PK.auth, KEK.auth and db.auth (e.g. from `bootseal keys create`; never a
    /// private key) at /usr/lib/bootc/install/secureboot-keys/NAME/ for `bootc install`
    #[arg(long, value_name = "DIR")]
    pub enroll_keys: Option<PathBuf>,
    /// NAME of that directory; systemd-boot enrolls `auto` by itself
    /// (loader.conf `secure-boot-enroll force`)
    #[arg(
        long,
        value_name = "NAME",
        default_value = "auto",
        requires = "enroll_keys"
    )]
    pub enroll_name: String,
}

impl EnrollArgs {
    /// The payloads, read and checked, or None without `--enroll-keys`.
    pub fn load(&self) -> anyhow::Result<Option<Enrollment>> {
        let Some(dir) = &self.enroll_keys else {
            return Ok(None);
        };
        Enrollment::load(dir, &self.enroll_name)
            .map(Some)
            .with_context(|| format!("--enroll-keys {}", dir.display()))
    }
}
