//! A signing key read from a PEM/DER file into memory ([`keys::load_private_key`]).
//!
//! Signatures use RSA blinding with OS randomness (`sign_with_rng`), so the private-key
//! operation's timing does not depend on what is signed; PKCS#1 v1.5 padding has no random
//! part, so the signature bytes are the same as without blinding. The file's bytes are
//! zeroized once parsed; the key itself zeroizes on drop (`rsa::RsaPrivateKey`).

use super::{HashAlg, SignError, Signer, keys};
use rsa::rand_core::OsRng;
use rsa::{RsaPrivateKey, RsaPublicKey};
use std::path::Path;
use zeroize::Zeroizing;

/// An RSA private key held in memory.
pub struct FileKey {
    key: RsaPrivateKey,
    public: RsaPublicKey,
    name: String,
}

impl FileKey {
    /// Read and parse the key file at `path` (`passphrase` for encrypted PKCS#8).
    pub fn load(path: &Path, passphrase: Option<&[u8]>) -> Result<Self, SignError> {
        let data = Zeroizing::new(std::fs::read(path).map_err(|source| SignError::Read {
            what: "private key",
            path: path.display().to_string(),
            source,
        })?);
        let name = format!("private key {}", path.display());
        let key = keys::load_private_key(&data, passphrase).map_err(|source| SignError::Key {
            what: name.clone(),
            source,
        })?;
        Ok(Self::from_key(key, name))
    }

    /// Wrap a parsed key; `name` says what it is in messages.
    pub fn from_key(key: RsaPrivateKey, name: impl Into<String>) -> Self {
        let public = key.to_public_key();
        FileKey {
            key,
            public,
            name: name.into(),
        }
    }
}

impl Signer for FileKey {
    fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn sign_digest(&self, hash: HashAlg, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        // Checked here so the error names the hash rather than rsa's generic one.
        hash.digest_info(digest)?;
        self.key
            .sign_with_rng(&mut OsRng, hash.pkcs1v15(), digest)
            .map_err(|e| SignError::Crypto {
                key: self.name.clone(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::Pkcs1v15Sign;

    #[test]
    fn blinded_signatures_equal_unblinded_ones() {
        let key = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        let digest = HashAlg::Sha256.digest(b"signed attributes");
        let plain = key
            .sign(Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
            .unwrap();
        let signer = FileKey::from_key(key, "test key");
        for _ in 0..3 {
            assert_eq!(signer.sign_digest(HashAlg::Sha256, &digest).unwrap(), plain);
        }
        assert!(signer.sign_digest(HashAlg::Sha512, &digest).is_err());
    }
}
