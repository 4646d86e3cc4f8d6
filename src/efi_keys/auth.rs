//! Time-based authenticated variable updates (`.auth`, UEFI §8.2.2): EFI_VARIABLE_AUTHENTICATION_2
//! = EFI_TIME ‖ WIN_CERTIFICATE_UEFI_GUID {dwLength, wRevision 0x0200, wCertificateType 0x0EF1,
//! CertType EFI_CERT_TYPE_PKCS7_GUID, CertData}, followed by the variable data (signature lists).
//!
//! CertData is a DER PKCS#7 SignedData *without* the ContentInfo wrapper and with detached
//! content, signed over VariableName (UTF-16LE, no NUL) ‖ VendorGuid ‖ Attributes (u32 LE) ‖
//! TimeStamp ‖ data, with no signed attributes — exactly what efitools' `sign-efi-sig-list`
//! writes (OpenSSL `PKCS7_DETACHED|PKCS7_NOATTR`, then the outer ContentInfo stripped), so
//! the same key, certificate and time give the same bytes.

use super::EfiKeyError;
use super::esl;
use super::guid::{self, Guid};
use crate::signer::{CertifiedSigner, HashAlg};
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// id-data: the (detached) content type.
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const SHA256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

/// EFI_VARIABLE_NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS |
/// TIME_BASED_AUTHENTICATED_WRITE_ACCESS.
pub const ATTRIBUTES: u32 = 0x01 | 0x02 | 0x04 | 0x20;
/// EFI_VARIABLE_APPEND_WRITE: add the lists to the variable instead of replacing it.
pub const APPEND_WRITE: u32 = 0x40;
/// WIN_CERT_TYPE_EFI_GUID.
const WIN_CERT_TYPE_EFI_GUID: u16 = 0x0ef1;

/// The Secure Boot variables an update can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureBootVar {
    Pk,
    Kek,
    Db,
    Dbx,
}

impl SecureBootVar {
    /// The variable name as firmware knows it.
    pub fn name(self) -> &'static str {
        match self {
            SecureBootVar::Pk => "PK",
            SecureBootVar::Kek => "KEK",
            SecureBootVar::Db => "db",
            SecureBootVar::Dbx => "dbx",
        }
    }

    /// Its vendor GUID.
    pub fn vendor(self) -> Guid {
        match self {
            SecureBootVar::Pk | SecureBootVar::Kek => guid::GLOBAL_VARIABLE,
            SecureBootVar::Db | SecureBootVar::Dbx => guid::IMAGE_SECURITY_DATABASE,
        }
    }

    /// From the name (`PK`, `KEK`, `db`, `dbx`; case-insensitive).
    pub fn parse(name: &str) -> Option<SecureBootVar> {
        match name.to_ascii_lowercase().as_str() {
            "pk" => Some(SecureBootVar::Pk),
            "kek" => Some(SecureBootVar::Kek),
            "db" => Some(SecureBootVar::Db),
            "dbx" => Some(SecureBootVar::Dbx),
            _ => None,
        }
    }
}

/// EFI_TIME as time-based authenticated writes require it: UTC, Pad1/Nanosecond/TimeZone/
/// Daylight/Pad2 all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EfiTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl EfiTime {
    /// From seconds since the Unix epoch (UTC).
    pub fn from_unix(secs: u64) -> EfiTime {
        let c = crate::civil_time::Civil::from_unix(secs);
        EfiTime {
            year: c.year as u16,
            month: c.month,
            day: c.day,
            hour: c.hour,
            minute: c.minute,
            second: c.second,
        }
    }

    /// Now, or `SOURCE_DATE_EPOCH` when set (reproducible builds).
    pub fn now() -> EfiTime {
        let secs = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            });
        EfiTime::from_unix(secs)
    }

    /// The 16 on-disk bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..2].copy_from_slice(&self.year.to_le_bytes());
        b[2] = self.month;
        b[3] = self.day;
        b[4] = self.hour;
        b[5] = self.minute;
        b[6] = self.second;
        b
    }

    fn from_bytes(b: &[u8; 16]) -> EfiTime {
        EfiTime {
            year: u16::from_le_bytes([b[0], b[1]]),
            month: b[2],
            day: b[3],
            hour: b[4],
            minute: b[5],
            second: b[6],
        }
    }
}

impl std::fmt::Display for EfiTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The bytes the SignedData signs.
pub fn signed_message(var: SecureBootVar, attributes: u32, time: EfiTime, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + data.len());
    for u in var.name().encode_utf16() {
        m.extend_from_slice(&u.to_le_bytes());
    }
    m.extend_from_slice(&var.vendor().0);
    m.extend_from_slice(&attributes.to_le_bytes());
    m.extend_from_slice(&time.to_bytes());
    m.extend_from_slice(data);
    m
}

fn der_err(e: der::Error) -> EfiKeyError {
    EfiKeyError::Malformed {
        what: "PKCS#7 SignedData",
        reason: e.to_string(),
    }
}

/// Build the `.auth` file: `data` (signature lists; empty deletes the variable) signed by
/// `signer` for `var`, with `append` setting EFI_VARIABLE_APPEND_WRITE.
pub fn build(
    var: SecureBootVar,
    data: &[u8],
    time: EfiTime,
    append: bool,
    signer: &CertifiedSigner,
) -> Result<Vec<u8>, EfiKeyError> {
    let attributes = ATTRIBUTES | if append { APPEND_WRITE } else { 0 };
    let message = signed_message(var, attributes, time, data);
    let signature = signer
        .sign(HashAlg::Sha256, &message)
        .map_err(|e| EfiKeyError::Sign(e.to_string()))?;
    // sign-efi-sig-list embeds the signer's certificate alone and signs the message directly.
    let signed_data = crate::signer::cms::signed_data(crate::signer::cms::Signed {
        certificates: std::slice::from_ref(signer.certificate()),
        embed_certificates: true,
        digest_alg: crate::signer::cms::SHA256,
        content_type: ID_DATA,
        content: None,
        signed_attrs: None,
        signature,
    })
    .map_err(der_err)?;
    let p7 = signed_data.to_der().map_err(der_err)?;

    let win_cert_len = 4 + 2 + 2 + 16 + p7.len();
    let mut out = Vec::with_capacity(16 + win_cert_len + data.len());
    out.extend_from_slice(&time.to_bytes());
    out.extend_from_slice(&(win_cert_len as u32).to_le_bytes());
    out.extend_from_slice(&0x0200u16.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_TYPE_EFI_GUID.to_le_bytes());
    out.extend_from_slice(&guid::CERT_TYPE_PKCS7.0);
    out.extend_from_slice(&p7);
    out.extend_from_slice(data);
    Ok(out)
}

/// A parsed `.auth` file.
#[derive(Debug, Clone)]
pub struct AuthVariable {
    pub time: EfiTime,
    pub signed_data: SignedData,
    /// The variable data after the authentication header (signature lists).
    pub data: Vec<u8>,
}

impl AuthVariable {
    /// Parse an `.auth` file, checking every header field.
    pub fn parse(b: &[u8]) -> Result<AuthVariable, EfiKeyError> {
        let what = "EFI_VARIABLE_AUTHENTICATION_2";
        let fixed = 16 + 4 + 2 + 2 + 16;
        if b.len() < fixed {
            return Err(EfiKeyError::Truncated {
                what,
                offset: 0,
                need: fixed - b.len(),
            });
        }
        let bad = |reason: String| EfiKeyError::Malformed { what, reason };
        let time_bytes: &[u8; 16] = b[..16].try_into().expect("16 bytes");
        if time_bytes[7..].iter().any(|&x| x != 0) {
            return Err(bad(
                "TimeStamp Pad1/Nanosecond/TimeZone/Daylight/Pad2 must be zero".into(),
            ));
        }
        let len = u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")) as usize;
        let revision = u16::from_le_bytes([b[20], b[21]]);
        let cert_type = u16::from_le_bytes([b[22], b[23]]);
        if revision != 0x0200 {
            return Err(bad(format!("wRevision {revision:#06x}, expected 0x0200")));
        }
        if cert_type != WIN_CERT_TYPE_EFI_GUID {
            return Err(bad(format!(
                "wCertificateType {cert_type:#06x}, expected 0x0ef1 (WIN_CERT_TYPE_EFI_GUID)"
            )));
        }
        if b[24..40] != guid::CERT_TYPE_PKCS7.0 {
            return Err(bad(format!(
                "CertType {}, expected EFI_CERT_TYPE_PKCS7_GUID",
                Guid(b[24..40].try_into().expect("16 bytes"))
            )));
        }
        if len < 24 || 16 + len > b.len() {
            return Err(bad(format!(
                "dwLength {len} does not fit the {} byte file",
                b.len()
            )));
        }
        let p7 = &b[40..16 + len];
        let signed_data = match SignedData::from_der(p7) {
            Ok(sd) => sd,
            // Some tools keep the ContentInfo wrapper; EDK2 accepts both.
            Err(_) => crate::authenticode::signed_data::parse(p7)
                .map_err(|e| bad(format!("CertData: {e}")))?,
        };
        Ok(AuthVariable {
            time: EfiTime::from_bytes(time_bytes),
            signed_data,
            data: b[16 + len..].to_vec(),
        })
    }

    /// The signature lists the update carries.
    pub fn lists(&self) -> Result<Vec<esl::SignatureList>, EfiKeyError> {
        esl::parse(&self.data)
    }

    /// The DER certificates the update enrolls.
    pub fn enrolled_certificates(&self) -> Result<Vec<Vec<u8>>, EfiKeyError> {
        Ok(esl::certificates(&self.lists()?)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect())
    }

    /// Check the signature against `signer` for writing `var` with `attributes`: the
    /// SignerInfo names `signer` and its RSA signature verifies (over the content directly,
    /// or over signed attributes whose messageDigest matches the content).
    pub fn verify(
        &self,
        var: SecureBootVar,
        attributes: u32,
        signer: &Certificate,
    ) -> Result<(), EfiKeyError> {
        let bad = |reason: String| EfiKeyError::Malformed {
            what: "authenticated variable signature",
            reason,
        };
        let message = signed_message(var, attributes, self.time, &self.data);
        let key = crate::signer::keys::certificate_rsa_key(signer)
            .map_err(|e| EfiKeyError::Certificate(e.to_string()))?;
        let content_hash = Sha256::digest(&message);
        for si in self.signed_data.signer_infos.0.iter() {
            let SignerIdentifier::IssuerAndSerialNumber(ias) = &si.sid else {
                continue;
            };
            if ias.issuer != signer.tbs_certificate.issuer
                || ias.serial_number != signer.tbs_certificate.serial_number
            {
                continue;
            }
            if si.digest_alg.oid != SHA256_OID {
                return Err(bad(format!(
                    "digest algorithm {} is not SHA-256",
                    si.digest_alg.oid
                )));
            }
            let signed_hash = match &si.signed_attrs {
                None => content_hash.to_vec(),
                Some(attrs) => {
                    let md = attrs
                        .iter()
                        .find(|a| a.oid == ID_MESSAGE_DIGEST)
                        .and_then(|a| a.values.get(0))
                        .and_then(|v| v.decode_as::<OctetString>().ok())
                        .ok_or_else(|| bad("signed attributes lack messageDigest".into()))?;
                    if md.as_bytes() != content_hash.as_slice() {
                        return Err(bad("messageDigest does not match the variable".into()));
                    }
                    Sha256::digest(attrs.to_der().map_err(der_err)?).to_vec()
                }
            };
            use rsa::pkcs1v15::Pkcs1v15Sign;
            return key
                .verify(
                    Pkcs1v15Sign::new::<Sha256>(),
                    &signed_hash,
                    si.signature.as_bytes(),
                )
                .map_err(|_| bad(format!("RSA signature does not verify for {}", var.name())));
        }
        Err(bad(format!(
            "no signer is {} (serial {})",
            signer.tbs_certificate.subject, signer.tbs_certificate.serial_number
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efi_time_from_unix() {
        assert_eq!(
            EfiTime::from_unix(1_735_689_600).to_string(),
            "2025-01-01 00:00:00 UTC"
        );
        assert_eq!(
            EfiTime::from_unix(951_782_400 + 3661).to_string(),
            "2000-02-29 01:01:01 UTC"
        );
        let b = EfiTime::from_unix(0).to_bytes();
        assert_eq!(b, [0xb2, 0x07, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn hostile_headers_are_named() {
        assert!(AuthVariable::parse(&[0u8; 10]).is_err());
        let mut b = vec![0u8; 64];
        b[16..20].copy_from_slice(&1000u32.to_le_bytes());
        b[20..22].copy_from_slice(&0x0200u16.to_le_bytes());
        b[22..24].copy_from_slice(&0x0ef1u16.to_le_bytes());
        b[24..40].copy_from_slice(&guid::CERT_TYPE_PKCS7.0);
        assert!(
            AuthVariable::parse(&b)
                .unwrap_err()
                .to_string()
                .contains("dwLength")
        );
        b[22] = 2;
        assert!(
            AuthVariable::parse(&b)
                .unwrap_err()
                .to_string()
                .contains("wCertificateType")
        );
    }
}
