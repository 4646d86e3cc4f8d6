//! The composefs sealing metadata flags of `seal` and `sync`: digests by default,
//! `--no-composefs-metadata`, `--composefs-layer-digests`, `--composefs-sign inline|artifact`
//! and a separate `.fs-verity` keyring key.

use anyhow::bail;
use bootseal::composefs_meta::{MetadataOptions, SignMode};
use bootseal::signer::{self, KeyLocation, OpenOptions};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ComposefsMetaArgs {
    /// Leave out the composefs sealing annotations (merged, merged.bootable and config
    /// fs-verity digests) that sealed OCI manifests carry by default
    #[arg(long)]
    no_composefs_metadata: bool,
    /// Also annotate every layer descriptor with its own composefs EROFS digest
    #[arg(long)]
    composefs_layer_digests: bool,
    /// Sign the composefs digests for the kernel's .fs-verity keyring: inline (`.sig`
    /// annotations) or artifact (a referrer manifest that also signs the manifest)
    #[arg(long, value_name = "inline|artifact")]
    composefs_sign: Option<SignMode>,
    /// Key for the composefs signatures (file or pkcs11: URI; default: --key)
    #[arg(long, value_name = "FILE|URI", requires = "composefs_cert")]
    composefs_key: Option<PathBuf>,
    /// Certificate of --composefs-key (the one loaded into the .fs-verity keyring)
    #[arg(long, value_name = "FILE|URI", requires = "composefs_key")]
    composefs_cert: Option<PathBuf>,
}

impl ComposefsMetaArgs {
    /// The metadata options; `offline` says whether the seal's key signs elsewhere.
    pub fn options(
        &self,
        key_opts: &OpenOptions,
        offline: bool,
    ) -> anyhow::Result<MetadataOptions> {
        if self.no_composefs_metadata
            && (self.composefs_sign.is_some() || self.composefs_layer_digests)
        {
            bail!(
                "--no-composefs-metadata excludes --composefs-sign and --composefs-layer-digests"
            );
        }
        let signer = match (&self.composefs_key, &self.composefs_cert) {
            (Some(k), Some(c)) => Some(signer::open_certified(
                &KeyLocation::parse(k)?,
                &KeyLocation::parse(c)?,
                key_opts,
            )?),
            _ => None,
        };
        if signer.is_some() && self.composefs_sign.is_none() {
            bail!("--composefs-key/--composefs-cert need --composefs-sign inline|artifact");
        }
        if offline && self.composefs_sign.is_some() && signer.is_none() {
            // The merged digest covers the signed UKI, so its signature could only be asked
            // for after the signing room's answer: a third pass.
            bail!(
                "--composefs-sign with offline signing needs --composefs-key/--composefs-cert: \
                 the merged digest covers the UKI signed offline"
            );
        }
        Ok(MetadataOptions {
            enabled: !self.no_composefs_metadata,
            layer_digests: self.composefs_layer_digests,
            sign: self.composefs_sign,
            signer,
        })
    }
}
