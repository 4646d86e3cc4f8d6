//! Authenticode signatures for PE images (UKIs, systemd-boot, kernels), written the way
//! sbsign writes them and checked the way UEFI firmware checks them (sbsigntools 0.9.4
//! `src/image.c`, `src/idc.c`; EDK2 `DxeImageVerificationLib`).
//!
//! Flow: [`table::prepare`] pads the unsigned image to 8 bytes → [`hash::image_hash`] →
//! [`spc::SpcIndirectDataContent`] → [`signed_data::build`] with a [`CertifiedSigner`]
//! → [`table::append_entry`] (WIN_CERTIFICATE, directory 4, checksum).

pub mod hash;
pub mod signed_data;
pub mod spc;
pub mod table;
pub mod verify;

use crate::pe::PeError;
use crate::signer::CertifiedSigner;
use crate::signer::keys::KeyError;
use thiserror::Error;
use x509_cert::Certificate;

pub use hash::image_hash;

/// Why signing or verifying failed.
#[derive(Debug, Error)]
pub enum AuthenticodeError {
    #[error(transparent)]
    Pe(#[from] PeError),
    #[error(
        "image already has a certificate table with {0} signature(s); use --append to add another"
    )]
    AlreadySigned(usize),
    #[error("bad certificate table: {0}")]
    BadTable(&'static str),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Sign(#[from] crate::signer::SignError),
    #[error("malformed PKCS#7: {0}")]
    Der(String),
    #[error("image has no Authenticode signature")]
    NotSigned,
    #[error("signature {index}: image digest mismatch: signed {signed}, image is {actual}")]
    DigestMismatch {
        index: usize,
        signed: String,
        actual: String,
    },
    #[error("signature {index}: {reason}")]
    Invalid { index: usize, reason: String },
    #[error("no signature chains to the certificate {subject}")]
    Untrusted { subject: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error(
        "PKCS#7 blob is {0} bytes; UEFI firmware only accepts 256 B to 64 KiB (2-byte DER length)"
    )]
    BlobSize(usize),
}

/// Sign `image` with `signer`; with `append` an already signed image gets one more
/// signature, otherwise a signed image is refused.
pub fn sign(
    image: &[u8],
    signer: &CertifiedSigner,
    append: bool,
) -> Result<Vec<u8>, AuthenticodeError> {
    sign_owned(with_room(image), signer, append)
}

/// [`sign`] taking the image by value: the signature is appended in place (give the Vec
/// some spare capacity, e.g. 64 KiB, to avoid a reallocation of a large image).
pub fn sign_owned(
    image: Vec<u8>,
    signer: &CertifiedSigner,
    append: bool,
) -> Result<Vec<u8>, AuthenticodeError> {
    let mut prepared = table::prepare(image, append)?;
    let digest = hash::image_hash(&prepared)?;
    let spc = spc::SpcIndirectDataContent::for_sha256(&digest)
        .map_err(|e| AuthenticodeError::Der(e.to_string()))?;
    let p7 = signed_data::build(&spc, signer)?;
    check_blob_size(&p7)?;
    table::append_entry(&mut prepared, &p7)?;
    Ok(prepared)
}

/// The digest an external signer must put in its SpcIndirectDataContent for `image`
/// (the image as it will be once padded for its certificate table).
pub fn detached_digest(image: &[u8]) -> Result<[u8; 32], AuthenticodeError> {
    let pe = crate::pe::PeHeaders::parse(image)?;
    if pe.cert_table != (0, 0) || image.len().is_multiple_of(8) {
        return hash::image_hash(image);
    }
    // The zero padding to 8 bytes is hashed too (it becomes part of the image).
    let mut padded = with_room(image);
    padded.resize(image.len().div_ceil(8) * 8, 0);
    hash::image_hash(&padded)
}

/// A copy of `image` with spare capacity for padding and a certificate entry.
fn with_room(image: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(image.len() + 64 * 1024);
    v.extend_from_slice(image);
    v
}

/// Embed a PKCS#7 SignedData made elsewhere, after checking it signs this image (digest,
/// attributes, RSA signature) and, if `trusted` is given, that it chains to that
/// certificate. Nothing is returned unless every check passed.
pub fn attach(
    image: &[u8],
    pkcs7: &[u8],
    trusted: Option<&Certificate>,
    append: bool,
) -> Result<Vec<u8>, AuthenticodeError> {
    let mut prepared = table::prepare(with_room(image), append)?;
    let digest = hash::image_hash(&prepared)?;
    let sd = signed_data::parse(pkcs7)?;
    let verified = verify::verify_signed_data(&sd, &digest, 0)?;
    if let Some(t) = trusted
        && !crate::cert_chain::chains_to(&verified.signer, &verified.certificates, t)
    {
        return Err(AuthenticodeError::Untrusted {
            subject: t.tbs_certificate.subject.to_string(),
        });
    }
    let blob = signed_data::der_blob(pkcs7)?;
    check_blob_size(&blob)?;
    table::append_entry(&mut prepared, &blob)?;
    Ok(prepared)
}

fn check_blob_size(blob: &[u8]) -> Result<(), AuthenticodeError> {
    // EDK2 HashPeImageByType reads the digest OID at a fixed offset assuming `30 82 xx xx`.
    if blob.len() < 256 || blob.len() > 0xffff + 4 || blob.get(1) != Some(&0x82) {
        return Err(AuthenticodeError::BlobSize(blob.len()));
    }
    Ok(())
}

/// One signature found in an image, as `inspect` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignatureSummary {
    pub index: usize,
    pub signer_subject: Option<String>,
    pub signer_issuer: Option<String>,
    pub signer_serial: Option<String>,
    /// Image digest the signature carries (hex), if readable.
    pub signed_digest: Option<String>,
    /// True if digest, attributes and RSA signature check out (trust not considered).
    pub valid: bool,
    /// Why it is not valid.
    pub problem: Option<String>,
}

/// List and self-check every signature of `image`.
pub fn signatures(image: &[u8]) -> Result<Vec<SignatureSummary>, AuthenticodeError> {
    let entries = table::entries(image)?;
    let digest = hash::image_hash(image)?;
    let mut out = Vec::new();
    for (index, e) in entries.iter().enumerate() {
        let mut s = SignatureSummary {
            index,
            signer_subject: None,
            signer_issuer: None,
            signer_serial: None,
            signed_digest: None,
            valid: false,
            problem: None,
        };
        match signed_data::parse(&e.blob)
            .and_then(|sd| verify::verify_signed_data(&sd, &digest, index))
        {
            Ok(v) => {
                s.signer_subject = Some(v.signer.tbs_certificate.subject.to_string());
                s.signer_issuer = Some(v.signer.tbs_certificate.issuer.to_string());
                s.signer_serial = Some(hex::encode(
                    v.signer.tbs_certificate.serial_number.as_bytes(),
                ));
                s.signed_digest = Some(hex::encode(&v.signed_digest));
                s.valid = true;
            }
            Err(err) => s.problem = Some(err.to_string()),
        }
        out.push(s);
    }
    Ok(out)
}

/// Verify that at least one signature of `image` is valid and chains to `trusted`;
/// returns the index of the first such signature.
pub fn verify(image: &[u8], trusted: &Certificate) -> Result<usize, AuthenticodeError> {
    let entries = table::entries(image)?;
    if entries.is_empty() {
        return Err(AuthenticodeError::NotSigned);
    }
    let digest = hash::image_hash(image)?;
    let mut last_err = None;
    for (index, e) in entries.iter().enumerate() {
        if e.cert_type != table::WIN_CERT_TYPE_PKCS_SIGNED_DATA {
            last_err = Some(AuthenticodeError::Invalid {
                index,
                reason: format!(
                    "certificate type {:#06x} is not PKCS_SIGNED_DATA",
                    e.cert_type
                ),
            });
            continue;
        }
        match signed_data::parse(&e.blob)
            .and_then(|sd| verify::verify_signed_data(&sd, &digest, index))
        {
            Ok(v) if crate::cert_chain::chains_to(&v.signer, &v.certificates, trusted) => {
                return Ok(index);
            }
            Ok(_) => {
                last_err = Some(AuthenticodeError::Untrusted {
                    subject: trusted.tbs_certificate.subject.to_string(),
                })
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or(AuthenticodeError::NotSigned))
}
