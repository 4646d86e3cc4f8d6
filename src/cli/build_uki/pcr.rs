//! The PCR 11 flags of `build-uki`: banks and phases for `--measure` and `.pcrsig`, and the
//! key that signs the policies. Both ways of building (from files, from an image) honour them.

use crate::cli::{passphrase, read_input};
use anyhow::Context;
use bootseal::uki::{self, Bank, PcrSigning, UkiInputs, pcr};
use std::path::PathBuf;

/// PCR 11 prediction and policy signing.
#[derive(Debug, clap::Args)]
pub struct PcrArgs {
    /// Print the predicted PCR 11 values.
    #[arg(long)]
    pub measure: bool,
    /// With --measure: print JSON like `ukify --measure --json=short`.
    #[arg(long, requires = "measure")]
    pub json: bool,
    /// PCR banks for --measure and .pcrsig (comma-separated; default all four).
    #[arg(long, value_delimiter = ',')]
    pub pcr_banks: Vec<String>,
    /// Phase paths for --measure and .pcrsig (comma-separated, e.g. enter-initrd:leave-initrd).
    #[arg(long, value_delimiter = ',')]
    pub phases: Vec<String>,
    /// Private key to sign PCR 11 policies (.pcrsig): RSA key file or pkcs11: URI; adds .pcrpkey.
    #[arg(long, value_name = "FILE|URI")]
    pub pcr_private_key: Option<PathBuf>,
    /// Public key to embed as .pcrpkey (default: derived from --pcr-private-key).
    #[arg(long, requires = "pcr_private_key")]
    pub pcr_public_key: Option<PathBuf>,
    /// File holding the passphrase of an encrypted --pcr-private-key.
    #[arg(long, requires = "pcr_private_key")]
    pub pcr_key_pass_file: Option<PathBuf>,
    /// Environment variable holding the passphrase of an encrypted --pcr-private-key.
    #[arg(long, requires = "pcr_private_key")]
    pub pcr_key_pass_env: Option<String>,
    /// PKCS#11 module for a pkcs11: --pcr-private-key without module-path (default:
    /// $BOOTSEAL_PKCS11_MODULE, else p11-kit's proxy module).
    #[arg(long, value_name = "PATH", requires = "pcr_private_key")]
    pub pkcs11_module: Option<PathBuf>,
}

/// Banks and phases as given, with ukify's defaults.
pub struct PcrPlan {
    pub banks: Vec<Bank>,
    pub phases: Vec<String>,
}

impl PcrArgs {
    pub fn plan(&self) -> anyhow::Result<PcrPlan> {
        let mut banks = Vec::new();
        for b in &self.pcr_banks {
            banks.push(Bank::parse(b).with_context(|| format!("unknown PCR bank {b:?}"))?);
        }
        if banks.is_empty() {
            banks = Bank::ALL.to_vec();
        }
        let phases = if self.phases.is_empty() {
            pcr::DEFAULT_PHASES.iter().map(|s| s.to_string()).collect()
        } else {
            self.phases.clone()
        };
        Ok(PcrPlan { banks, phases })
    }

    /// The `.pcrsig` signer, when `--pcr-private-key` is given.
    pub fn signing(&self, plan: &PcrPlan) -> anyhow::Result<Option<PcrSigning>> {
        let Some(path) = &self.pcr_private_key else {
            return Ok(None);
        };
        let pass = passphrase(
            self.pcr_key_pass_file.as_deref(),
            self.pcr_key_pass_env.as_deref(),
        )?;
        let location = bootseal::signer::KeyLocation::parse(path)?;
        let opts = bootseal::signer::OpenOptions {
            passphrase: pass,
            pkcs11: bootseal::signer::Pkcs11Options {
                module: self.pkcs11_module.clone(),
                ..Default::default()
            },
        };
        let key = bootseal::signer::open_key(&location, &opts)
            .with_context(|| format!("--pcr-private-key {location}"))?;
        let public = self
            .pcr_public_key
            .as_deref()
            .map(|p| read_input(p, "PCR public key"))
            .transpose()?;
        let mut s = PcrSigning::new(key, public);
        s.banks = plan.banks.clone();
        s.phases = plan.phases.clone();
        Ok(Some(s))
    }

    /// With `--measure`: print the predicted PCR 11 values of the UKI `inputs` make.
    pub fn print_measurements(&self, plan: &PcrPlan, inputs: &UkiInputs) -> anyhow::Result<()> {
        if !self.measure {
            return Ok(());
        }
        let phase_refs: Vec<&str> = std::iter::once("")
            .chain(plan.phases.iter().map(String::as_str))
            .collect();
        let values = uki::measure(inputs, &plan.banks, &phase_refs)?;
        if self.json {
            println!("{}", pcr::to_json(&values));
        } else {
            for v in &values {
                let phase = if v.phase.is_empty() {
                    "(sections)"
                } else {
                    &v.phase
                };
                println!("11:{}={}  # {phase}", v.bank.name(), hex::encode(&v.value));
            }
        }
        Ok(())
    }
}
