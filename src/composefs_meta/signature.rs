//! fs-verity built-in signatures: DER PKCS#7 SignedData over the kernel's
//! `struct fsverity_formatted_digest` ("FSVerity", le16 algorithm, le16 size, digest; Linux
//! `fs/verity/signature.c`, `include/uapi/linux/fsverity.h`), detached, no signed attributes,
//! no certificates, SHA-512: byte for byte what `fsverity sign --hash-alg=sha512` (fsverity-utils
//! 1.5, `lib/sign_digest.c`) writes for the same key and certificate (RSA PKCS#1 v1.5 is
//! deterministic). What `FS_IOC_ENABLE_VERITY` takes and checks against the `.fs-verity`
//! keyring, and what the composefs sealing spec puts in `.sig` annotations and artifact layers.

use cms::signed_data::{SignedData, SignerIdentifier};
use der::Decode;
use x509_cert::Certificate;

use super::Role;
use crate::signer::{CertifiedSigner, HashAlg, SignError, SignLabel, cms as cms_build, keys};

/// `FS_VERITY_HASH_ALG_SHA512` (Linux `include/uapi/linux/fsverity.h`).
const FS_VERITY_HASH_ALG_SHA512: u16 = 2;

/// `struct fsverity_formatted_digest` for a SHA-512 fs-verity digest.
pub fn formatted_digest(digest: &[u8]) -> Vec<u8> {
    formatted(FS_VERITY_HASH_ALG_SHA512, digest)
}

fn formatted(alg: u16, digest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + digest.len());
    out.extend_from_slice(b"FSVerity");
    out.extend_from_slice(&alg.to_le_bytes());
    out.extend_from_slice(&(digest.len() as u16).to_le_bytes());
    out.extend_from_slice(digest);
    out
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("the {role} digest {digest:?} is not 128 hex digits")]
    BadDigest { role: Role, digest: String },
    #[error("signing the {role} digest: {source}")]
    Sign {
        role: Role,
        #[source]
        source: SignError,
    },
    #[error("encoding the {role} signature: {message}")]
    Encode { role: Role, message: String },
}

fn digest_bytes(role: Role, digest_hex: &str) -> Result<Vec<u8>, SignatureError> {
    match hex::decode(digest_hex) {
        Ok(b) if b.len() == 64 => Ok(b),
        _ => Err(SignatureError::BadDigest {
            role,
            digest: digest_hex.chars().take(140).collect(),
        }),
    }
}

/// The fs-verity signature of the `role` object whose SHA-512 fs-verity digest is `digest_hex`.
/// `request_id` names it for an offline signer (`composefs.merged`).
pub fn sign(
    signer: &CertifiedSigner,
    role: Role,
    digest_hex: &str,
    request_id: String,
) -> Result<Vec<u8>, SignatureError> {
    let message = formatted_digest(&digest_bytes(role, digest_hex)?);
    let label = SignLabel {
        id: request_id,
        what: format!("fs-verity signature of the composefs {role} digest {digest_hex}"),
        after: Vec::new(),
    };
    let signature = signer
        .labelled(label)
        .sign(HashAlg::Sha512, &message)
        .map_err(|source| SignatureError::Sign { role, source })?;
    let encode = |e: der::Error| SignatureError::Encode {
        role,
        message: e.to_string(),
    };
    let signed_data = cms_build::signed_data(cms_build::Signed {
        certificates: std::slice::from_ref(signer.certificate()),
        embed_certificates: false,
        digest_alg: cms_build::SHA512,
        content_type: ID_DATA,
        content: None,
        signed_attrs: None,
        signature,
    })
    .map_err(encode)?;
    cms_build::content_info_der(&signed_data).map_err(encode)
}

/// id-data (RFC 5652 §4): the detached content's type, as PKCS7_sign writes it.
const ID_DATA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");

/// Why a signature does not check out; the caller names the role.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("not a DER PKCS#7 signature: {0}")]
    Malformed(String),
    #[error("signed by {0}, not by the given certificate")]
    OtherSigner(String),
    #[error("does not verify against the given certificate for this digest")]
    Mismatch,
}

/// Checks `sig` as the kernel would for a file of SHA-512 fs-verity digest `digest_hex`
/// signed by `cert`: one signer, SHA-256 or SHA-512, no signed attributes (the kernel accepts
/// them, `fsverity sign` never writes them; refused here rather than half-checked).
pub fn check(sig: &[u8], digest_hex: &str, cert: &Certificate) -> Result<(), CheckError> {
    let malformed = |m: String| CheckError::Malformed(m);
    let digest = hex::decode(digest_hex)
        .ok()
        .filter(|d| d.len() == 64)
        .ok_or_else(|| malformed(format!("digest {digest_hex:.20}… is not SHA-512 hex")))?;
    let ci = cms::content_info::ContentInfo::from_der(sig).map_err(|e| malformed(e.to_string()))?;
    if ci.content_type != cms_build::ID_SIGNED_DATA {
        return Err(malformed(format!(
            "content type {} is not signedData",
            ci.content_type
        )));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| malformed(e.to_string()))?;
    let infos: Vec<_> = sd.signer_infos.0.iter().collect();
    let [info] = infos.as_slice() else {
        return Err(malformed(format!(
            "{} signers where the kernel takes one",
            infos.len()
        )));
    };
    if info.signed_attrs.is_some() {
        return Err(malformed("signed attributes are not supported".into()));
    }
    let hash = match info.digest_alg.oid {
        o if o == cms_build::SHA512 => HashAlg::Sha512,
        o if o == cms_build::SHA256 => HashAlg::Sha256,
        o => {
            return Err(malformed(format!(
                "digest algorithm {o} is not SHA-256/512"
            )));
        }
    };
    match &info.sid {
        SignerIdentifier::IssuerAndSerialNumber(ias)
            if ias.issuer == cert.tbs_certificate.issuer
                && ias.serial_number == cert.tbs_certificate.serial_number => {}
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            return Err(CheckError::OtherSigner(format!(
                "issuer {} serial {}",
                ias.issuer, ias.serial_number
            )));
        }
        SignerIdentifier::SubjectKeyIdentifier(_) => {
            return Err(malformed("signer named by key identifier".into()));
        }
    }
    let key = keys::certificate_rsa_key(cert).map_err(|e| malformed(e.to_string()))?;
    let message = formatted_digest(&digest);
    key.verify(
        hash.pkcs1v15(),
        &hash.digest(&message),
        info.signature.as_bytes(),
    )
    .map_err(|_| CheckError::Mismatch)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_digest_is_the_kernels_layout() {
        let d = [0xabu8; 64];
        let f = formatted_digest(&d);
        assert_eq!(&f[..8], b"FSVerity");
        assert_eq!(&f[8..12], &[2, 0, 64, 0]);
        assert_eq!(&f[12..], &d[..]);
    }

    #[test]
    fn sign_then_check_and_failures_name_why() {
        let pair = crate::efi_keys::create::generate("fsverity", 2048, 1).unwrap();
        let other = crate::efi_keys::create::generate("other", 2048, 2).unwrap();
        let cert = pair.cert.clone();
        let signer = CertifiedSigner::new(
            Box::new(crate::signer::FileKey::from_key(pair.key, "k")),
            pair.cert,
        )
        .unwrap();
        let digest = "ab".repeat(64);
        let sig = sign(&signer, Role::Merged, &digest, "m".into()).unwrap();
        check(&sig, &digest, &cert).unwrap();
        assert_eq!(
            check(&sig, &"cd".repeat(64), &cert),
            Err(CheckError::Mismatch)
        );
        assert!(matches!(
            check(&sig, &digest, &other.cert),
            Err(CheckError::OtherSigner(_))
        ));
        assert!(matches!(
            check(&sig[..sig.len() - 1], &digest, &cert),
            Err(CheckError::Malformed(_))
        ));
        let mut longer = sig.clone();
        longer.push(0);
        assert!(matches!(
            check(&longer, &digest, &cert),
            Err(CheckError::Malformed(_))
        ));
        assert!(matches!(
            sign(&signer, Role::Config, "xyz", "c".into()),
            Err(SignatureError::BadDigest { .. })
        ));
    }
}
