//! Verification of Authenticode signatures: the signed image digest against our own image
//! hash, the CMS signed attributes (contentType, messageDigest), the RSA signature with the
//! embedded signer certificate, and the certificate chain to a trusted certificate — the
//! checks EDK2's `DxeImageVerificationLib` + `Pkcs7Verify` make for a `db` certificate.

use super::AuthenticodeError;
use super::signed_data::{ID_CONTENT_TYPE, ID_MESSAGE_DIGEST};
use super::spc::{SHA256, SPC_INDIRECT_DATA, SpcIndirectDataContent};
use crate::signer::keys;
use cms::cert::CertificateChoices;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::Encode;
use der::asn1::{ObjectIdentifier, OctetString};
use rsa::pkcs1v15::Pkcs1v15Sign;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// What a valid SignedData proved.
#[derive(Debug, Clone)]
pub struct VerifiedSignature {
    /// The image digest carried in SpcIndirectDataContent.
    pub signed_digest: Vec<u8>,
    pub signer: Certificate,
    /// All certificates embedded in the SignedData.
    pub certificates: Vec<Certificate>,
}

fn invalid(index: usize, reason: impl Into<String>) -> AuthenticodeError {
    AuthenticodeError::Invalid {
        index,
        reason: reason.into(),
    }
}

fn embedded_certs(sd: &SignedData) -> Vec<Certificate> {
    sd.certificates
        .as_ref()
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => Some(c.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Check one SignedData against the image digest: content, attributes and RSA signature.
/// `index` only names the signature in errors.
pub fn verify_signed_data(
    sd: &SignedData,
    image_digest: &[u8],
    index: usize,
) -> Result<VerifiedSignature, AuthenticodeError> {
    let eci = &sd.encap_content_info;
    if eci.econtent_type != SPC_INDIRECT_DATA {
        return Err(invalid(
            index,
            format!("content type {} is not SpcIndirectData", eci.econtent_type),
        ));
    }
    let econtent = eci
        .econtent
        .as_ref()
        .ok_or_else(|| invalid(index, "no SpcIndirectDataContent"))?;
    let spc: SpcIndirectDataContent = econtent
        .decode_as()
        .map_err(|e| invalid(index, format!("bad SpcIndirectDataContent: {e}")))?;
    if spc.message_digest.digest_algorithm.oid != SHA256 {
        return Err(AuthenticodeError::Unsupported(format!(
            "signature {index} uses image digest algorithm {}; only SHA-256 is supported",
            spc.message_digest.digest_algorithm.oid
        )));
    }
    let signed_digest = spc.message_digest.digest.as_bytes().to_vec();
    if signed_digest != image_digest {
        return Err(AuthenticodeError::DigestMismatch {
            index,
            signed: hex::encode(&signed_digest),
            actual: hex::encode(image_digest),
        });
    }
    let si = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| invalid(index, "no SignerInfo"))?;
    if si.digest_alg.oid != SHA256 {
        return Err(AuthenticodeError::Unsupported(format!(
            "signature {index}: SignerInfo digest {} (only SHA-256 supported)",
            si.digest_alg.oid
        )));
    }
    let certificates = embedded_certs(sd);
    let signer = match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => certificates.iter().find(|c| {
            c.tbs_certificate.issuer == ias.issuer
                && c.tbs_certificate.serial_number == ias.serial_number
        }),
        SignerIdentifier::SubjectKeyIdentifier(_) => None,
    }
    .ok_or_else(|| invalid(index, "signer certificate not found in the signature"))?
    .clone();

    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| invalid(index, "no signed attributes"))?;
    let attr_value = |oid: ObjectIdentifier| {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.iter().next())
    };
    let ct = attr_value(ID_CONTENT_TYPE)
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
        .ok_or_else(|| invalid(index, "no contentType attribute"))?;
    if ct != SPC_INDIRECT_DATA {
        return Err(invalid(
            index,
            "contentType attribute is not SpcIndirectData",
        ));
    }
    let md = attr_value(ID_MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| invalid(index, "no messageDigest attribute"))?;
    if md.as_bytes() != Sha256::digest(econtent.value()).as_slice() {
        return Err(invalid(
            index,
            "messageDigest does not match SpcIndirectDataContent",
        ));
    }
    let msg = attrs
        .to_der()
        .map_err(|e| AuthenticodeError::Der(e.to_string()))?;
    let pubkey = keys::certificate_rsa_key(&signer)?;
    pubkey
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&msg),
            si.signature.as_bytes(),
        )
        .map_err(|_| {
            invalid(
                index,
                "RSA signature does not verify with the signer certificate",
            )
        })?;
    Ok(VerifiedSignature {
        signed_digest,
        signer,
        certificates,
    })
}
