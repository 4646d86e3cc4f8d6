//! The PKCS#7/CMS SignedData that wraps an `SpcIndirectDataContent`, built the way sbsign
//! does (sbsigntools 0.9.4 `src/idc.c`): version 1, SHA-256 digest algorithm, the signer
//! certificate(s), one SignerInfo v1 with IssuerAndSerialNumber and rsaEncryption. Signed
//! attributes are only contentType and messageDigest – no signingTime – so the same input
//! always gives the same bytes.

use super::AuthenticodeError;
use super::spc::{SPC_INDIRECT_DATA, SpcIndirectDataContent};
use crate::signer::cms as cms_build;
use crate::signer::{CertifiedSigner, HashAlg};
use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::attr::Attribute;

/// id-signedData.
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-contentType attribute.
pub const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest attribute.
pub const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

fn der_err(e: der::Error) -> AuthenticodeError {
    AuthenticodeError::Der(e.to_string())
}

/// DER ContentInfo(SignedData) signing `spc` with `signer`.
pub fn build(
    spc: &SpcIndirectDataContent,
    signer: &CertifiedSigner,
) -> Result<Vec<u8>, AuthenticodeError> {
    let econtent = spc.to_any().map_err(der_err)?;
    // messageDigest covers the content octets of the SEQUENCE, without tag and length.
    let content_digest = Sha256::digest(econtent.value());

    let content_type = Attribute {
        oid: ID_CONTENT_TYPE,
        values: SetOfVec::try_from(vec![Any::encode_from(&SPC_INDIRECT_DATA).map_err(der_err)?])
            .map_err(der_err)?,
    };
    let message_digest = Attribute {
        oid: ID_MESSAGE_DIGEST,
        values: SetOfVec::try_from(vec![
            Any::encode_from(&OctetString::new(content_digest.to_vec()).map_err(der_err)?)
                .map_err(der_err)?,
        ])
        .map_err(der_err)?,
    };
    let signed_attrs = SetOfVec::try_from(vec![content_type, message_digest]).map_err(der_err)?;
    // The signature covers the attributes DER-encoded with the SET OF tag (RFC 5652 §5.4).
    let to_sign = signed_attrs.to_der().map_err(der_err)?;
    let signature = signer.sign(HashAlg::Sha256, &to_sign)?;

    let mut certificates = vec![signer.certificate().clone()];
    certificates.extend(signer.extra_certificates().iter().cloned());
    let signed_data = cms_build::signed_data(cms_build::Signed {
        certificates: &certificates,
        embed_certificates: true,
        digest_alg: cms_build::SHA256,
        content_type: SPC_INDIRECT_DATA,
        content: Some(econtent),
        signed_attrs: Some(signed_attrs),
        signature,
    })
    .map_err(der_err)?;
    let ci = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(der_err)?,
    };
    ci.to_der().map_err(der_err)
}

/// Parse DER (or PEM `PKCS7`) ContentInfo into its SignedData.
pub fn parse(blob: &[u8]) -> Result<SignedData, AuthenticodeError> {
    let der_bytes: Vec<u8>;
    let input = if blob.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(blob)
            .map_err(|_| AuthenticodeError::Der("PEM signature is not UTF-8".into()))?;
        let (_, doc) = der::Document::from_pem(text).map_err(der_err)?;
        der_bytes = doc.as_bytes().to_vec();
        &der_bytes[..]
    } else {
        // Signatures in a certificate table may be followed by zero padding.
        let len = der_len(blob).unwrap_or(blob.len());
        &blob[..len.min(blob.len())]
    };
    let ci = ContentInfo::from_der(input).map_err(der_err)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(AuthenticodeError::Der(format!(
            "ContentInfo type is {}, not signedData",
            ci.content_type
        )));
    }
    ci.content.decode_as::<SignedData>().map_err(der_err)
}

/// Total length of the DER TLV at the start of `b` (definite lengths only).
fn der_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    if first < 0x80 {
        return Some(2 + first as usize);
    }
    // A length of more than eight bytes cannot describe anything in memory; checked
    // arithmetic because the bytes come from the file (the `pe_uki` fuzz target overflowed it).
    let n = (first & 0x7f) as usize;
    if n > std::mem::size_of::<usize>() {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = len.checked_mul(256)? | *b.get(2 + i)? as usize;
    }
    (2 + n).checked_add(len)
}

/// The DER ContentInfo bytes of a PKCS#7 given as DER (possibly zero-padded) or PEM,
/// unchanged so an external signature is embedded byte for byte.
pub fn der_blob(blob: &[u8]) -> Result<Vec<u8>, AuthenticodeError> {
    if blob.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(blob)
            .map_err(|_| AuthenticodeError::Der("PEM signature is not UTF-8".into()))?;
        let (_, doc) = der::Document::from_pem(text).map_err(der_err)?;
        return Ok(doc.as_bytes().to_vec());
    }
    let len = der_len(blob).ok_or_else(|| AuthenticodeError::Der("truncated DER".into()))?;
    blob.get(..len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| AuthenticodeError::Der("truncated DER".into()))
}
