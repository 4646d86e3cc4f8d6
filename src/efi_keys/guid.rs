//! EFI GUIDs: parsed from and printed as the 8-4-4-4-12 text form, stored in the mixed-endian
//! byte order of `EFI_GUID` (first three fields little-endian, the last eight bytes as written).

use super::EfiKeyError;
use std::fmt;

/// An `EFI_GUID` as its 16 on-disk bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

/// EFI_CERT_X509_GUID: a signature list of DER X.509 certificates.
pub const CERT_X509: Guid = Guid::from_fields(
    0xa5c0_59a1,
    0x94e4,
    0x4aa7,
    [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72],
);
/// EFI_CERT_SHA256_GUID: a signature list of image hashes.
pub const CERT_SHA256: Guid = Guid::from_fields(
    0xc1c4_1626,
    0x504c,
    0x4092,
    [0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28],
);
/// EFI_CERT_TYPE_PKCS7_GUID: WIN_CERTIFICATE_UEFI_GUID carrying a PKCS#7 SignedData.
pub const CERT_TYPE_PKCS7: Guid = Guid::from_fields(
    0x4aaf_d29d,
    0x68df,
    0x49ee,
    [0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7],
);
/// EFI_GLOBAL_VARIABLE: vendor GUID of PK and KEK.
pub const GLOBAL_VARIABLE: Guid = Guid::from_fields(
    0x8be4_df61,
    0x93ca,
    0x11d2,
    [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
);
/// EFI_IMAGE_SECURITY_DATABASE_GUID: vendor GUID of db and dbx.
pub const IMAGE_SECURITY_DATABASE: Guid = Guid::from_fields(
    0xd719_b2cb,
    0x3d3a,
    0x4596,
    [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f],
);

impl Guid {
    /// From the four fields of the text form.
    pub const fn from_fields(a: u32, b: u16, c: u16, d: [u8; 8]) -> Guid {
        let a = a.to_le_bytes();
        let b = b.to_le_bytes();
        let c = c.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ])
    }

    /// Parse `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (case-insensitive).
    pub fn parse(text: &str) -> Result<Guid, EfiKeyError> {
        let bad = || EfiKeyError::BadGuid(text.to_string());
        let t = text.trim();
        let groups: Vec<&str> = t.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if groups.len() != 5 || groups.iter().zip(lens).any(|(g, l)| g.len() != l) {
            return Err(bad());
        }
        let hexed = hex::decode(groups.concat()).map_err(|_| bad())?;
        let a = u32::from_be_bytes(hexed[0..4].try_into().map_err(|_| bad())?);
        let b = u16::from_be_bytes([hexed[4], hexed[5]]);
        let c = u16::from_be_bytes([hexed[6], hexed[7]]);
        let d: [u8; 8] = hexed[8..16].try_into().map_err(|_| bad())?;
        Ok(Guid::from_fields(a, b, c, d))
    }

    /// A random (version 4) GUID.
    pub fn random() -> Guid {
        use rsa::rand_core::{OsRng, RngCore};
        let mut b = [0u8; 16];
        OsRng.fill_bytes(&mut b);
        // Version 4 and RFC 4122 variant, in the text form's field order.
        b[7] = (b[7] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid(b)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{}-{}",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            hex::encode(&b[8..10]),
            hex::encode(&b[10..16])
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_byte_order() {
        let g = Guid::parse("A5C059A1-94E4-4AA7-87B5-AB155C2BF072").unwrap();
        assert_eq!(g, CERT_X509);
        assert_eq!(g.to_string(), "a5c059a1-94e4-4aa7-87b5-ab155c2bf072");
        assert_eq!(&g.0[..4], &[0xa1, 0x59, 0xc0, 0xa5]);
        assert_eq!(&g.0[8..], &[0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72]);
        for bad in [
            "",
            "a5c059a1-94e4-4aa7-87b5",
            "g5c059a1-94e4-4aa7-87b5-ab155c2bf072",
        ] {
            assert!(Guid::parse(bad).is_err(), "{bad}");
        }
        let r = Guid::random();
        assert_eq!(Guid::parse(&r.to_string()).unwrap(), r);
    }
}
