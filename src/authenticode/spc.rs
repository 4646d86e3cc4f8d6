//! `SpcIndirectDataContent`, the Authenticode payload that carries the image hash
//! (Authenticode PE specification, "SpcIndirectDataContent"; OIDs 1.3.6.1.4.1.311.2.1.x).

use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;

/// SPC_INDIRECT_DATA_OBJID.
pub const SPC_INDIRECT_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
/// SPC_PE_IMAGE_DATAOBJ.
pub const SPC_PE_IMAGE_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
/// id-sha256.
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// `SpcPeImageData` exactly as sbsign writes it: empty flags BIT STRING and
/// `file [0] { [2] { [0] IMPLICIT BMPString "<<<Obsolete>>>" } }`.
const SBSIGN_PE_IMAGE_DATA: &[u8] = &[
    0x30, 0x25, 0x03, 0x01, 0x00, 0xa0, 0x20, 0xa2, 0x1e, 0x80, 0x1c, 0x00, b'<', 0x00, b'<', 0x00,
    b'<', 0x00, b'O', 0x00, b'b', 0x00, b's', 0x00, b'o', 0x00, b'l', 0x00, b'e', 0x00, b't', 0x00,
    b'e', 0x00, b'>', 0x00, b'>', 0x00, b'>',
];

/// `SpcAttributeTypeAndOptionalValue`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SpcAttributeTypeAndOptionalValue {
    pub value_type: ObjectIdentifier,
    pub value: Option<Any>,
}

/// `DigestInfo` (RFC 8017).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct DigestInfo {
    pub digest_algorithm: AlgorithmIdentifierOwned,
    pub digest: OctetString,
}

/// `SpcIndirectDataContent`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SpcIndirectDataContent {
    pub data: SpcAttributeTypeAndOptionalValue,
    pub message_digest: DigestInfo,
}

impl SpcIndirectDataContent {
    /// The content for a SHA-256 image hash, as sbsign builds it.
    pub fn for_sha256(image_hash: &[u8; 32]) -> der::Result<Self> {
        Ok(SpcIndirectDataContent {
            data: SpcAttributeTypeAndOptionalValue {
                value_type: SPC_PE_IMAGE_DATA,
                value: Some(Any::from_der(SBSIGN_PE_IMAGE_DATA)?),
            },
            message_digest: DigestInfo {
                digest_algorithm: AlgorithmIdentifierOwned {
                    oid: SHA256,
                    parameters: Some(Any::null()),
                },
                digest: OctetString::new(image_hash.to_vec())?,
            },
        })
    }

    /// DER as an `Any` (for the CMS eContent).
    pub fn to_any(&self) -> der::Result<Any> {
        Any::from_der(&self.to_der()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pe_image_data_parses() {
        let any = Any::from_der(SBSIGN_PE_IMAGE_DATA).unwrap();
        assert_eq!(any.value().len(), 0x25);
        let spc = SpcIndirectDataContent::for_sha256(&[7; 32]).unwrap();
        let der = spc.to_der().unwrap();
        // 30 68 … : 106 bytes in total for a SHA-256 hash (same length as sbsign's).
        assert_eq!(der.len(), 106);
        assert_eq!(SpcIndirectDataContent::from_der(&der).unwrap(), spc);
    }
}
