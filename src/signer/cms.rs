//! The one CMS SignedData shape bootseal signs with (RFC 5652): version 1, SHA-256, the signer
//! named by IssuerAndSerialNumber, rsaEncryption, its certificate (and any chain) embedded.
//! Authenticode wraps an `SpcIndirectDataContent` in it with signed attributes, as sbsign does;
//! EFI authenticated variables sign their message directly, detached, as efitools'
//! `sign-efi-sig-list` does. Callers compute the signature; this only assembles.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

/// id-sha256 (NIST hash algorithm OID).
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// An algorithm identifier with explicit NULL parameters, as OpenSSL writes them.
pub fn algorithm(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::null()),
    }
}

/// What one signer signed.
pub struct Signed<'a> {
    /// The signer's certificate, then any intermediates to embed.
    pub certificates: &'a [Certificate],
    /// `eContentType`, and the content itself (None: detached).
    pub content_type: ObjectIdentifier,
    pub content: Option<Any>,
    /// Signed attributes; None when the signature covers the content directly.
    pub signed_attrs: Option<SignedAttributes>,
    /// The RSASSA-PKCS1-v1_5 SHA-256 signature.
    pub signature: Vec<u8>,
}

/// The SignedData for `signed`.
pub fn signed_data(signed: Signed) -> der::Result<SignedData> {
    let Some(cert) = signed.certificates.first() else {
        return Err(der::ErrorKind::Failed.into());
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: algorithm(SHA256),
        signed_attrs: signed.signed_attrs,
        signature_algorithm: algorithm(crate::signer::keys::RSA_ENCRYPTION),
        signature: OctetString::new(signed.signature)?,
        unsigned_attrs: None,
    };
    let certs: Vec<CertificateChoices> = signed
        .certificates
        .iter()
        .cloned()
        .map(CertificateChoices::Certificate)
        .collect();
    Ok(SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![algorithm(SHA256)])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: signed.content_type,
            econtent: signed.content,
        },
        certificates: Some(CertificateSet::try_from(certs)?),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info])?,
    })
}
