//! Who makes an RSA signature: one [`Signer`] trait for every signature bootseal makes
//! (Authenticode for UKIs and systemd-boot, `.pcrsig` PCR policies, EFI variable
//! payloads), implemented by a key file ([`FileKey`]), by a key that never leaves a PKCS#11
//! token ([`pkcs11::Pkcs11Key`]), and by a key in another room ([`OfflineSigner`]: requests
//! written out, signatures made there verified and replayed). [`CertifiedSigner`] pairs a
//! signer with its X.509 certificate after checking they belong together, and names each
//! signature it makes ([`SignLabel`]) for the offline signer. The external path (a digest
//! signed elsewhere, attached with `sign --attach` or given to `seal --uki`) needs no signer.
//!
//! Every signature is RSASSA-PKCS1-v1_5 (RFC 8017 §8.2) over a DigestInfo; it is deterministic,
//! so a key file and the same key inside a token give byte-identical signatures.
//! Key material, passphrases and PINs are never formatted into errors or logs.

pub(crate) mod cms;
pub mod file;
pub mod keys;
pub mod offline;
pub mod pkcs11;

pub use file::FileKey;
pub use keys::KeyError;
pub use offline::{OfflineError, OfflineSigner};
pub use pkcs11::{Pkcs11Error, Pkcs11Options, Pkcs11Uri};

use rsa::RsaPublicKey;
use rsa::pkcs1v15::Pkcs1v15Sign;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use x509_cert::Certificate;
use zeroize::Zeroizing;

/// The hash inside a PKCS#1 v1.5 signature's DigestInfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// The hash of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The PKCS#1 v1.5 signature scheme for this hash (its DigestInfo prefix and length).
    pub fn pkcs1v15(self) -> Pkcs1v15Sign {
        match self {
            HashAlg::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
            HashAlg::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
            HashAlg::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
            HashAlg::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }

    /// DER DigestInfo { algorithm, digest } for `digest` (what `CKM_RSA_PKCS` signs).
    pub fn digest_info(self, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        let scheme = self.pkcs1v15();
        if scheme.hash_len != Some(digest.len()) {
            return Err(SignError::DigestLength {
                hash: self.name(),
                len: digest.len(),
                expected: scheme.hash_len.unwrap_or(0),
            });
        }
        let mut v = scheme.prefix.to_vec();
        v.extend_from_slice(digest);
        Ok(v)
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }
}

/// Why a signing key could not be opened, or a signature not made.
#[derive(Debug, Error)]
pub enum SignError {
    #[error("{what}: {source}")]
    Key {
        what: String,
        #[source]
        source: KeyError,
    },
    #[error(transparent)]
    Pkcs11(#[from] Pkcs11Error),
    #[error("private key does not match the certificate (subject {subject}; key: {key})")]
    Mismatch { key: String, subject: String },
    #[error("certificate (subject {subject}): {source}")]
    Certificate {
        subject: String,
        #[source]
        source: KeyError,
    },
    #[error("a {hash} digest is {expected} bytes, not {len}")]
    DigestLength {
        hash: &'static str,
        len: usize,
        expected: usize,
    },
    #[error(transparent)]
    Offline(#[from] OfflineError),
    #[error("{key}: signing failed: {reason}")]
    Crypto { key: String, reason: String },
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// An RSA private key that signs: in memory, in a token, or anywhere else.
pub trait Signer: Send + Sync {
    /// The public half of the key.
    fn public_key(&self) -> &RsaPublicKey;

    /// What the key is, for messages (a file name, a token and object); never secrets.
    fn describe(&self) -> String;

    /// RSASSA-PKCS1-v1_5 signature over a digest already computed with `hash`.
    fn sign_digest(&self, hash: HashAlg, digest: &[u8]) -> Result<Vec<u8>, SignError>;

    /// RSASSA-PKCS1-v1_5 signature over `message` hashed with `hash`. Signers that can only
    /// hash on their own (a token offering `CKM_SHA256_RSA_PKCS` but not `CKM_RSA_PKCS`)
    /// override this.
    fn sign(&self, hash: HashAlg, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_digest(hash, &hash.digest(message))
    }

    /// [`Signer::sign`] for the signature `label` names. Only signers that sign elsewhere
    /// ([`OfflineSigner`]) look at the name; the others sign at once.
    fn sign_labelled(
        &self,
        label: &SignLabel,
        hash: HashAlg,
        message: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        let _ = label;
        self.sign(hash, message)
    }
}

/// What one signature is, for a signing request: a stable `id` (`uki`,
/// `linux/arm64:systemd-boot`), a sentence saying what it signs, and the ids of signatures
/// whose values the signed bytes depend on (the UKI's command line carries a digest over the
/// signed systemd-boot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignLabel {
    pub id: String,
    pub what: String,
    pub after: Vec<String>,
}

/// A signer paired with the certificate of its public key (and intermediates to embed), as
/// CMS SignedData (Authenticode, EFI variable authentication) needs it.
pub struct CertifiedSigner {
    key: Arc<dyn Signer>,
    cert: Certificate,
    extra: Vec<Certificate>,
    label: Option<SignLabel>,
}

impl CertifiedSigner {
    /// Pair `key` with `cert`; fails unless the certificate carries the key's public key, so
    /// a mismatch is found before anything is signed or uploaded.
    pub fn new(key: Box<dyn Signer>, cert: Certificate) -> Result<Self, SignError> {
        Self::new_shared(Arc::from(key), cert)
    }

    /// [`CertifiedSigner::new`] for a signer shared with others (an [`OfflineSigner`] that
    /// collects the requests of a whole run).
    pub fn new_shared(key: Arc<dyn Signer>, cert: Certificate) -> Result<Self, SignError> {
        let subject = cert.tbs_certificate.subject.to_string();
        let cert_key =
            keys::certificate_rsa_key(&cert).map_err(|source| SignError::Certificate {
                subject: subject.clone(),
                source,
            })?;
        if &cert_key != key.public_key() {
            return Err(SignError::Mismatch {
                key: key.describe(),
                subject,
            });
        }
        Ok(CertifiedSigner {
            key,
            cert,
            extra: Vec::new(),
            label: None,
        })
    }

    /// The same key and certificates, naming the signatures it makes `label`.
    pub fn labelled(&self, label: SignLabel) -> Self {
        CertifiedSigner {
            key: Arc::clone(&self.key),
            cert: self.cert.clone(),
            extra: self.extra.clone(),
            label: Some(label),
        }
    }

    /// RSASSA-PKCS1-v1_5 over `message` hashed with `hash`, under this signer's label.
    pub fn sign(&self, hash: HashAlg, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.label {
            Some(label) => self.key.sign_labelled(label, hash, message),
            None => self.key.sign(hash, message),
        }
    }

    /// Add intermediate certificates to embed (like `sbsign --addcert`).
    pub fn with_extra_certificates(mut self, extra: Vec<Certificate>) -> Self {
        self.extra = extra;
        self
    }

    pub fn key(&self) -> &dyn Signer {
        self.key.as_ref()
    }

    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    pub fn extra_certificates(&self) -> &[Certificate] {
        &self.extra
    }
}

/// Where a key or certificate comes from, as given on the command line: a file, or a
/// `pkcs11:` URI (RFC 7512).
#[derive(Clone, Debug)]
pub enum KeyLocation {
    File(PathBuf),
    Pkcs11(Box<Pkcs11Uri>),
}

impl KeyLocation {
    /// `pkcs11:…` is a token object, anything else a file path.
    pub fn parse(arg: &Path) -> Result<Self, SignError> {
        match arg.to_str() {
            Some(s) if s.starts_with("pkcs11:") => {
                Ok(KeyLocation::Pkcs11(Box::new(Pkcs11Uri::parse(s)?)))
            }
            _ => Ok(KeyLocation::File(arg.to_path_buf())),
        }
    }
}

impl std::fmt::Display for KeyLocation {
    /// The location for messages: a path, or the URI without its PIN.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyLocation::File(p) => write!(f, "{}", p.display()),
            KeyLocation::Pkcs11(u) => write!(f, "{u}"),
        }
    }
}

/// Secrets and settings for opening a key, besides its location.
#[derive(Default)]
pub struct OpenOptions {
    /// Passphrase of an encrypted key file, or the token PIN when the URI names none.
    pub passphrase: Option<Zeroizing<Vec<u8>>>,
    /// PKCS#11 module and mechanism choices.
    pub pkcs11: Pkcs11Options,
}

/// Open the signing key at `location`.
pub fn open_key(location: &KeyLocation, opts: &OpenOptions) -> Result<Box<dyn Signer>, SignError> {
    match location {
        KeyLocation::File(path) => Ok(Box::new(FileKey::load(
            path,
            opts.passphrase.as_deref().map(Vec::as_slice),
        )?)),
        KeyLocation::Pkcs11(uri) => Ok(Box::new(pkcs11::Pkcs11Key::open(
            uri,
            &opts.pkcs11,
            opts.passphrase.as_deref().map(Vec::as_slice),
        )?)),
    }
}

/// Read the certificate at `location` (a PEM/DER file, or a certificate object on a token).
pub fn open_certificate(
    location: &KeyLocation,
    opts: &OpenOptions,
) -> Result<Certificate, SignError> {
    match location {
        KeyLocation::File(path) => {
            let data = std::fs::read(path).map_err(|source| SignError::Read {
                what: "certificate",
                path: path.display().to_string(),
                source,
            })?;
            keys::load_certificate(&data).map_err(|source| SignError::Key {
                what: format!("certificate {}", path.display()),
                source,
            })
        }
        KeyLocation::Pkcs11(uri) => Ok(pkcs11::read_certificate(
            uri,
            &opts.pkcs11,
            opts.passphrase.as_deref().map(Vec::as_slice),
        )?),
    }
}

/// Open key and certificate and pair them (see [`CertifiedSigner::new`]).
pub fn open_certified(
    key: &KeyLocation,
    cert: &KeyLocation,
    opts: &OpenOptions,
) -> Result<Arc<CertifiedSigner>, SignError> {
    let certificate = open_certificate(cert, opts)?;
    let signer = open_key(key, opts)?;
    Ok(Arc::new(CertifiedSigner::new(signer, certificate)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_info_is_the_rfc8017_encoding() {
        // RFC 8017 §9.2 note 1: the DER prefixes of DigestInfo.
        let d = HashAlg::Sha256.digest_info(&[0u8; 32]).unwrap();
        assert_eq!(
            hex::encode(&d[..19]),
            "3031300d060960864801650304020105000420"
        );
        let d = HashAlg::Sha1.digest_info(&[0u8; 20]).unwrap();
        assert_eq!(hex::encode(&d[..15]), "3021300906052b0e03021a05000414");
        assert!(HashAlg::Sha384.digest_info(&[0u8; 32]).is_err());
    }

    #[test]
    fn a_pkcs11_uri_is_not_a_file() {
        assert!(matches!(
            KeyLocation::parse(Path::new("pkcs11:token=a;object=b")).unwrap(),
            KeyLocation::Pkcs11(_)
        ));
        assert!(matches!(
            KeyLocation::parse(Path::new("./pkcs11:x")).unwrap(),
            KeyLocation::File(_)
        ));
    }
}
