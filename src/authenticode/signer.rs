//! Who produces the RSA signature inside an Authenticode SignedData. A trait, so a key held
//! in an HSM or an external signing service (PKCS#11 `CKM_SHA256_RSA_PKCS`, a KMS, …) can
//! stand in for the local PEM key without touching the CMS code.

use super::AuthenticodeError;
use crate::keys::{self, KeyError};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::Pkcs1v15Sign;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// Signs Authenticode signed attributes with RSA PKCS#1 v1.5 over SHA-256.
pub trait AuthenticodeSigner {
    /// The signing certificate (embedded in the SignedData and named by the SignerInfo).
    fn certificate(&self) -> &Certificate;

    /// Further certificates to embed (intermediates), signer's issuer first.
    fn extra_certificates(&self) -> &[Certificate] {
        &[]
    }

    /// RSA PKCS#1 v1.5 signature over SHA-256(`message`), where `message` is the DER of
    /// the signed attributes (a SET OF Attribute).
    fn sign_rsa_sha256(&self, message: &[u8]) -> Result<Vec<u8>, AuthenticodeError>;
}

/// A signer with the private key in memory, loaded from a PEM/DER file.
pub struct LocalKeySigner {
    key: RsaPrivateKey,
    cert: Certificate,
    extra: Vec<Certificate>,
}

impl LocalKeySigner {
    /// Pair a key with its certificate; fails if the key does not belong to the certificate.
    pub fn new(key: RsaPrivateKey, cert: Certificate) -> Result<Self, KeyError> {
        keys::check_key_matches(&key, &cert)?;
        Ok(LocalKeySigner {
            key,
            cert,
            extra: Vec::new(),
        })
    }

    /// Add intermediate certificates to embed (like `sbsign --addcert`).
    pub fn with_extra_certificates(mut self, extra: Vec<Certificate>) -> Self {
        self.extra = extra;
        self
    }
}

impl AuthenticodeSigner for LocalKeySigner {
    fn certificate(&self) -> &Certificate {
        &self.cert
    }

    fn extra_certificates(&self) -> &[Certificate] {
        &self.extra
    }

    fn sign_rsa_sha256(&self, message: &[u8]) -> Result<Vec<u8>, AuthenticodeError> {
        let digest = Sha256::digest(message);
        self.key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .map_err(|e| AuthenticodeError::Crypto(e.to_string()))
    }
}
