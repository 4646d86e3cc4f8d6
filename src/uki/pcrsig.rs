//! `.pcrpkey` and `.pcrsig`: signed TPM2 PolicyPCR digests for the predicted PCR 11 values,
//! as `systemd-measure sign` computes them and ukify embeds them (`build_policy_digest` in
//! systemd 257.3 `src/measure/measure.c`, `combine_signatures` in its `src/ukify/ukify.py`).
//!
//! For each bank and phase path: `pol = SHA256(0³² ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION
//! {1, bank alg, 3, 00 08 00} ‖ SHA256(PCR 11))`, `sig` = RSA PKCS#1 v1.5 over
//! H_bank(`pol`), `pkfp` = SHA-256 of the PKCS#1 RSAPublicKey DER. The signature is made by a
//! [`Signer`]: a key file or a key on a PKCS#11 token.

use super::UkiError;
use super::pcr::{self, Bank};
use crate::signer::{HashAlg, Signer};
use base64::Engine;
use rsa::RsaPublicKey;
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256};

/// `TPM_CC_PolicyPCR`.
const TPM_CC_POLICY_PCR: u32 = 0x0000_017F;

/// Key and choices for signing PCR 11 policies.
pub struct PcrSigning {
    pub signer: Box<dyn Signer>,
    /// PEM public key to embed as `.pcrpkey` verbatim; derived from the private key if None.
    pub public_key_pem: Option<Vec<u8>>,
    /// Banks to sign for (systemd-measure's default: all four).
    pub banks: Vec<Bank>,
    /// Phase paths to sign for (systemd-measure's default: [`pcr::DEFAULT_PHASES`]).
    pub phases: Vec<String>,
}

impl PcrSigning {
    /// Signing with systemd-measure's defaults for banks and phases.
    pub fn new(signer: Box<dyn Signer>, public_key_pem: Option<Vec<u8>>) -> Self {
        PcrSigning {
            signer,
            public_key_pem,
            banks: Bank::ALL.to_vec(),
            phases: pcr::DEFAULT_PHASES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The `.pcrpkey` contents.
    pub fn pcrpkey(&self) -> Result<Vec<u8>, UkiError> {
        match &self.public_key_pem {
            Some(p) => Ok(p.clone()),
            None => self
                .signer
                .public_key()
                .to_public_key_pem(LineEnding::LF)
                .map(String::into_bytes)
                .map_err(|e| UkiError::PcrSign(e.to_string())),
        }
    }

    fn public_key(&self) -> Result<RsaPublicKey, UkiError> {
        let public = match &self.public_key_pem {
            Some(p) => crate::signer::keys::load_public_key(p)
                .map_err(|e| UkiError::PcrSign(e.to_string()))?,
            None => self.signer.public_key().clone(),
        };
        if &public != self.signer.public_key() {
            return Err(UkiError::PcrSign(
                "PCR public key does not match the PCR private key".into(),
            ));
        }
        Ok(public)
    }
}

/// TPM2 PolicyPCR digest (policy session hash SHA-256) for PCR 11 = `pcr_value` in `bank`.
pub fn policy_digest(bank: Bank, pcr_value: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(TPM_CC_POLICY_PCR.to_be_bytes());
    h.update(1u32.to_be_bytes()); // TPML_PCR_SELECTION.count
    h.update(bank.tpm_alg().to_be_bytes());
    h.update([3u8, 0x00, 0x08, 0x00]); // sizeofSelect, bitmap with bit 11 set
    h.update(Sha256::digest(pcr_value));
    h.finalize().into()
}

/// The signature hash systemd-measure uses for a bank: the bank's own.
fn bank_hash(bank: Bank) -> HashAlg {
    match bank {
        Bank::Sha1 => HashAlg::Sha1,
        Bank::Sha256 => HashAlg::Sha256,
        Bank::Sha384 => HashAlg::Sha384,
        Bank::Sha512 => HashAlg::Sha512,
    }
}

/// The `.pcrsig` JSON text, formatted as Python's `json.dumps` writes it in ukify.
pub fn pcrsig_json(
    signing: &PcrSigning,
    stub_version: u32,
    sections: &[(&str, &[u8])],
) -> Result<String, UkiError> {
    let public = signing.public_key()?;
    let pkcs1 = public
        .to_pkcs1_der()
        .map_err(|e| UkiError::PcrSign(e.to_string()))?;
    let pkfp = hex::encode(Sha256::digest(pkcs1.as_bytes()));
    let mut banks = signing.banks.clone();
    banks.sort();
    banks.dedup();
    let mut out = String::from("{");
    for (bi, bank) in banks.iter().enumerate() {
        let base = pcr::sections_value(*bank, stub_version, sections);
        if bi > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("\"{}\": [", bank.name()));
        for (pi, phase) in signing.phases.iter().enumerate() {
            let value = pcr::phase_value(*bank, &base, phase);
            let pol = policy_digest(*bank, &value);
            let sig = signing
                .signer
                .sign(bank_hash(*bank), &pol)
                .map_err(|e| UkiError::PcrSign(e.to_string()))?;
            if pi > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!(
                "{{\"pcrs\": [11], \"pkfp\": \"{pkfp}\", \"pol\": \"{}\", \"sig\": \"{}\"}}",
                hex::encode(pol),
                base64::engine::general_purpose::STANDARD.encode(sig)
            ));
        }
        out.push(']');
    }
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_digest_kat() {
        // Expected value computed by systemd-measure 257.3 (`sign`) for this PCR value.
        let pcr = hex::decode("f79c679d9711a03b6c4c7644c892d5852d85ba51e28a1e8b74d4ebfca5d3f60f")
            .unwrap();
        assert_eq!(
            hex::encode(policy_digest(Bank::Sha256, &pcr)),
            "e641dbdb784700b29efbafe69ca45d153f638607dc68452fb53eb9599211f006"
        );
    }
}
