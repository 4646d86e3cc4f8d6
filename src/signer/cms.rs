//! The one CMS SignedData shape bootseal signs with (RFC 5652): version 1, one digest
//! algorithm (SHA-256, or SHA-512 for fs-verity), the signer named by IssuerAndSerialNumber,
//! rsaEncryption, its certificate (and any chain) embedded or not. Authenticode wraps an
//! `SpcIndirectDataContent` in it with signed attributes, as sbsign does; EFI authenticated
//! variables sign their message directly, detached, as efitools' `sign-efi-sig-list` does;
//! fs-verity signatures sign the kernel's `fsverity_formatted_digest` directly, detached, with
//! no certificate, as `fsverity sign` (fsverity-utils 1.5 `sign_pkcs7`, flags
//! `PKCS7_DETACHED | PKCS7_NOATTR | PKCS7_NOCERTS`) does. Callers compute the signature; this
//! only assembles.

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

/// id-sha512 (NIST hash algorithm OID).
pub const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// id-signedData (RFC 5652 §5.1), the ContentInfo type of a SignedData.
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

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
    /// Embed `certificates` (false: the SignedData names the signer only).
    pub embed_certificates: bool,
    /// The digest algorithm of `digestAlgorithms` and the SignerInfo.
    pub digest_alg: ObjectIdentifier,
    /// `eContentType`, and the content itself (None: detached).
    pub content_type: ObjectIdentifier,
    pub content: Option<Any>,
    /// Signed attributes; None when the signature covers the content directly.
    pub signed_attrs: Option<SignedAttributes>,
    /// The RSASSA-PKCS1-v1_5 signature with `digest_alg`.
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
        digest_alg: algorithm(signed.digest_alg),
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
        digest_algorithms: SetOfVec::try_from(vec![algorithm(signed.digest_alg)])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: signed.content_type,
            econtent: signed.content,
        },
        certificates: match signed.embed_certificates {
            true => Some(CertificateSet::try_from(certs)?),
            false => None,
        },
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info])?,
    })
}

/// DER ContentInfo wrapping `signed_data` (what PKCS#7 signature files hold).
pub fn content_info_der(signed_data: &SignedData) -> der::Result<Vec<u8>> {
    use der::Encode;
    cms::content_info::ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(signed_data)?,
    }
    .to_der()
}
