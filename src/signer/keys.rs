//! Signing keys and X.509 certificates read from PEM or DER: RSA private keys in PKCS#1
//! (`BEGIN RSA PRIVATE KEY`, as `ukify genkey` writes), PKCS#8 (`BEGIN PRIVATE KEY`, as
//! `openssl req -nodes` writes) or encrypted PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`,
//! PBES2, including DES-EDE3-CBC as in Debian's OVMF snakeoil key).
//!
//! Key material is never formatted into errors or logs.

use der::{Decode, DecodePem, Encode};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use thiserror::Error;
use x509_cert::Certificate;

/// OID rsaEncryption (RFC 8017).
pub const RSA_ENCRYPTION: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Why a key or certificate could not be used.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("private key is not RSA ({0}); only RSA 2048/3072/4096 keys are supported")]
    NotRsa(String),
    #[error("private key is encrypted; give a passphrase (--key-pass-file or --key-pass-env)")]
    PassphraseNeeded,
    #[error("cannot decrypt private key: wrong passphrase or unsupported encryption")]
    Decrypt,
    #[error("cannot parse private key: {0}")]
    Parse(String),
    #[error("RSA key size {0} bits is not supported (use 2048, 3072 or 4096)")]
    KeySize(usize),
    #[error("cannot parse certificate: {0}")]
    Certificate(String),
    #[error("cannot parse public key: {0}")]
    PublicKey(String),
    #[error("private key does not match the certificate (subject {subject})")]
    Mismatch { subject: String },
    #[error("certificate public key is not RSA")]
    CertNotRsa,
}

/// First PEM label in `data`, if it is PEM.
fn pem_label(data: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(data).ok()?;
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let end = text[start..].find("-----")?;
    Some(text[start..start + end].to_string())
}

/// Extract the first PEM block with its label as a standalone string.
fn pem_block(data: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(data).ok()?;
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start..];
    let end_marker = rest.find("-----END ")?;
    let end = end_marker
        + rest[end_marker..]
            .find('\n')
            .unwrap_or(rest.len() - end_marker);
    Some(&rest[..end])
}

/// Name the algorithm of a PKCS#8 PrivateKeyInfo that is not RSA, for the error message.
fn pkcs8_algorithm(der_bytes: &[u8]) -> Option<der::oid::ObjectIdentifier> {
    pkcs8::PrivateKeyInfo::from_der(der_bytes)
        .ok()
        .map(|i| i.algorithm.oid)
}

fn describe_oid(oid: der::oid::ObjectIdentifier) -> String {
    const_oid::db::DB
        .by_oid(&oid)
        .map(str::to_string)
        .unwrap_or_else(|| oid.to_string())
}

fn check_size(key: RsaPrivateKey) -> Result<RsaPrivateKey, KeyError> {
    let bits = key.size() * 8;
    if !(2048..=4096).contains(&bits) || !bits.is_multiple_of(1024) {
        return Err(KeyError::KeySize(bits));
    }
    Ok(key)
}

fn from_pkcs8_der(der_bytes: &[u8]) -> Result<RsaPrivateKey, KeyError> {
    match pkcs8_algorithm(der_bytes) {
        Some(oid) if oid != RSA_ENCRYPTION => Err(KeyError::NotRsa(describe_oid(oid))),
        _ => RsaPrivateKey::from_pkcs8_der(der_bytes).map_err(|e| KeyError::Parse(e.to_string())),
    }
}

/// Load an RSA private key from PEM or DER; `passphrase` is used for encrypted PKCS#8.
pub fn load_private_key(data: &[u8], passphrase: Option<&[u8]>) -> Result<RsaPrivateKey, KeyError> {
    let key = match pem_label(data).as_deref() {
        Some("RSA PRIVATE KEY") => {
            let pem = pem_block(data).unwrap_or_default();
            RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| KeyError::Parse(e.to_string()))?
        }
        Some("PRIVATE KEY") => {
            let pem = pem_block(data).unwrap_or_default();
            let (_, doc) =
                der::SecretDocument::from_pem(pem).map_err(|e| KeyError::Parse(e.to_string()))?;
            from_pkcs8_der(doc.as_bytes())?
        }
        Some("ENCRYPTED PRIVATE KEY") => {
            let pass = passphrase.ok_or(KeyError::PassphraseNeeded)?;
            let pem = pem_block(data).unwrap_or_default();
            let (_, doc) =
                der::Document::from_pem(pem).map_err(|e| KeyError::Parse(e.to_string()))?;
            let enc = pkcs8::EncryptedPrivateKeyInfo::from_der(doc.as_bytes())
                .map_err(|e| KeyError::Parse(e.to_string()))?;
            let plain = enc.decrypt(pass).map_err(|_| KeyError::Decrypt)?;
            from_pkcs8_der(plain.as_bytes())?
        }
        Some(label @ ("EC PRIVATE KEY" | "DSA PRIVATE KEY" | "OPENSSH PRIVATE KEY")) => {
            return Err(KeyError::NotRsa(label.to_string()));
        }
        Some(other) => return Err(KeyError::Parse(format!("unexpected PEM block {other:?}"))),
        None => {
            if pkcs8::EncryptedPrivateKeyInfo::from_der(data).is_ok()
                && pkcs8::PrivateKeyInfo::from_der(data).is_err()
            {
                let pass = passphrase.ok_or(KeyError::PassphraseNeeded)?;
                let enc = pkcs8::EncryptedPrivateKeyInfo::from_der(data)
                    .map_err(|e| KeyError::Parse(e.to_string()))?;
                let plain = enc.decrypt(pass).map_err(|_| KeyError::Decrypt)?;
                from_pkcs8_der(plain.as_bytes())?
            } else if pkcs8::PrivateKeyInfo::from_der(data).is_ok() {
                from_pkcs8_der(data)?
            } else {
                RsaPrivateKey::from_pkcs1_der(data)
                    .map_err(|_| KeyError::Parse("neither PEM nor PKCS#1/PKCS#8 DER".into()))?
            }
        }
    };
    check_size(key)
}

/// Load an X.509 certificate from PEM or DER.
pub fn load_certificate(data: &[u8]) -> Result<Certificate, KeyError> {
    match pem_label(data).as_deref() {
        Some("CERTIFICATE") => {
            let pem = pem_block(data).unwrap_or_default();
            Certificate::from_pem(pem).map_err(|e| KeyError::Certificate(e.to_string()))
        }
        Some(other) => Err(KeyError::Certificate(format!(
            "expected a CERTIFICATE PEM block, found {other:?}"
        ))),
        None => Certificate::from_der(data).map_err(|e| KeyError::Certificate(e.to_string())),
    }
}

/// The RSA public key inside a certificate.
pub fn certificate_rsa_key(cert: &Certificate) -> Result<RsaPublicKey, KeyError> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(KeyError::CertNotRsa);
    }
    let der_bytes = spki
        .to_der()
        .map_err(|e| KeyError::Certificate(e.to_string()))?;
    use rsa::pkcs8::DecodePublicKey;
    RsaPublicKey::from_public_key_der(&der_bytes).map_err(|e| KeyError::PublicKey(e.to_string()))
}

/// Fail unless `key` is the private half of `cert`'s public key.
pub fn check_key_matches(key: &RsaPrivateKey, cert: &Certificate) -> Result<(), KeyError> {
    let pubkey = certificate_rsa_key(cert)?;
    if pubkey != key.to_public_key() {
        return Err(KeyError::Mismatch {
            subject: cert.tbs_certificate.subject.to_string(),
        });
    }
    Ok(())
}

/// Load an RSA public key from PEM (`PUBLIC KEY` SPKI or `RSA PUBLIC KEY` PKCS#1).
pub fn load_public_key(data: &[u8]) -> Result<RsaPublicKey, KeyError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let pem = pem_block(data).ok_or_else(|| KeyError::PublicKey("not PEM".into()))?;
    match pem_label(data).as_deref() {
        Some("PUBLIC KEY") => {
            RsaPublicKey::from_public_key_pem(pem).map_err(|e| KeyError::PublicKey(e.to_string()))
        }
        Some("RSA PUBLIC KEY") => {
            RsaPublicKey::from_pkcs1_pem(pem).map_err(|e| KeyError::PublicKey(e.to_string()))
        }
        _ => Err(KeyError::PublicKey(
            "expected a PUBLIC KEY PEM block".into(),
        )),
    }
}
