//! EFI_SIGNATURE_LIST (UEFI §32.4.1): a header {SignatureType GUID, SignatureListSize u32,
//! SignatureHeaderSize u32, SignatureSize u32}, then SignatureSize-byte EFI_SIGNATURE_DATA
//! entries {SignatureOwner GUID, data}. An X.509 list holds one certificate per list (entries
//! of one list share a size), so several certificates are several lists back to back, as
//! efitools' `cert-to-efi-sig-list` and firmware variables hold them.

use super::EfiKeyError;
use super::guid::{self, Guid};

const HEADER: usize = 16 + 4 + 4 + 4;

/// One signature (entry) of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Who added it (the `--owner-guid`).
    pub owner: Guid,
    /// The DER certificate for [`guid::CERT_X509`], the hash for [`guid::CERT_SHA256`].
    pub data: Vec<u8>,
}

/// One EFI_SIGNATURE_LIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureList {
    pub signature_type: Guid,
    pub signatures: Vec<Signature>,
}

/// The signature list for one DER certificate.
pub fn x509_list(owner: Guid, cert_der: &[u8]) -> Vec<u8> {
    encode(&SignatureList {
        signature_type: guid::CERT_X509,
        signatures: vec![Signature {
            owner,
            data: cert_der.to_vec(),
        }],
    })
}

/// Encode one list. All signatures must have the same data length (true for one entry).
pub fn encode(list: &SignatureList) -> Vec<u8> {
    let sig_size = 16 + list.signatures.first().map_or(0, |s| s.data.len());
    let total = HEADER + sig_size * list.signatures.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&list.signature_type.0);
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(sig_size as u32).to_le_bytes());
    for s in &list.signatures {
        out.extend_from_slice(&s.owner.0);
        out.extend_from_slice(&s.data);
    }
    out
}

fn u32_at(b: &[u8], at: usize, what: &'static str) -> Result<u32, EfiKeyError> {
    let bytes = b.get(at..at + 4).ok_or(EfiKeyError::Truncated {
        what,
        offset: at,
        need: at + 4 - b.len().min(at + 4),
    })?;
    Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
}

/// Parse a concatenation of signature lists (an `.esl` file or a variable's data).
pub fn parse(mut b: &[u8]) -> Result<Vec<SignatureList>, EfiKeyError> {
    let what = "EFI_SIGNATURE_LIST";
    let mut lists = Vec::new();
    let mut base = 0usize;
    while !b.is_empty() {
        if b.len() < HEADER {
            return Err(EfiKeyError::Truncated {
                what,
                offset: base,
                need: HEADER - b.len(),
            });
        }
        let signature_type = Guid(b[..16].try_into().expect("16 bytes"));
        let list_size = u32_at(b, 16, what)? as usize;
        let header_size = u32_at(b, 20, what)? as usize;
        let sig_size = u32_at(b, 24, what)? as usize;
        let bad = |reason: String| EfiKeyError::Malformed {
            what,
            reason: format!("list at byte {base}: {reason}"),
        };
        if list_size > b.len() {
            return Err(bad(format!(
                "SignatureListSize {list_size} exceeds the {} bytes left",
                b.len()
            )));
        }
        if sig_size < 16 {
            return Err(bad(format!("SignatureSize {sig_size} is below 16")));
        }
        let body = list_size
            .checked_sub(HEADER + header_size)
            .ok_or_else(|| bad(format!("SignatureListSize {list_size} below its header")))?;
        if body % sig_size != 0 {
            return Err(bad(format!(
                "{body} bytes of signatures are not a multiple of SignatureSize {sig_size}"
            )));
        }
        let entries = &b[HEADER + header_size..list_size];
        let signatures = entries
            .chunks_exact(sig_size)
            .map(|e| Signature {
                owner: Guid(e[..16].try_into().expect("16 bytes")),
                data: e[16..].to_vec(),
            })
            .collect();
        lists.push(SignatureList {
            signature_type,
            signatures,
        });
        b = &b[list_size..];
        base += list_size;
    }
    Ok(lists)
}

/// The DER certificates in X.509 lists (other list types are skipped).
pub fn certificates(lists: &[SignatureList]) -> Vec<&[u8]> {
    lists
        .iter()
        .filter(|l| l.signature_type == guid::CERT_X509)
        .flat_map(|l| l.signatures.iter().map(|s| s.data.as_slice()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_sizes() {
        let owner = Guid::random();
        let one = x509_list(owner, b"cert-one");
        let two = x509_list(owner, b"second certificate");
        let both = [one.clone(), two].concat();
        let lists = parse(&both).unwrap();
        assert_eq!(lists.len(), 2);
        assert_eq!(
            certificates(&lists),
            vec![&b"cert-one"[..], b"second certificate"]
        );
        assert_eq!(lists[0].signatures[0].owner, owner);
        assert_eq!(
            u32::from_le_bytes(one[16..20].try_into().unwrap()) as usize,
            one.len()
        );

        assert!(parse(&one[..20]).is_err());
        let mut huge = one.clone();
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&huge).unwrap_err().to_string().contains("exceeds"));
        let mut zero = one.clone();
        zero[24..28].copy_from_slice(&0u32.to_le_bytes());
        assert!(parse(&zero).unwrap_err().to_string().contains("below 16"));
        let mut small = one;
        small[16..20].copy_from_slice(&4u32.to_le_bytes());
        assert!(parse(&small).is_err());
    }
}
