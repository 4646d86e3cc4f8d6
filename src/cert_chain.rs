//! Certificate chains as UEFI firmware checks them: one rule for "is this certificate issued by
//! that one", used wherever bootseal decides whether firmware would trust a signer (Authenticode
//! verification of UKIs and boot loaders, and the db that `--enroll-keys` enrolls).
//!
//! EDK2 hands chain building to OpenSSL (`CryptoPkg/Library/BaseCryptLib/Pk/CryptPkcs7VerifyCommon.c`,
//! `Pkcs7Verify`), which accepts RSA certificate signatures over SHA-1, SHA-256, SHA-384 and
//! SHA-512; the issuer name must equal the parent's subject.

use crate::signer::HashAlg;
use crate::signer::keys;
use der::Encode;
use der::asn1::ObjectIdentifier;
use x509_cert::Certificate;

/// The RSA certificate signature algorithms firmware verifies, by OID (RFC 8017 appendix C).
const RSA_SIGNATURE_ALGORITHMS: [(ObjectIdentifier, HashAlg); 4] = [
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5"),
        HashAlg::Sha1,
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11"),
        HashAlg::Sha256,
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12"),
        HashAlg::Sha384,
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13"),
        HashAlg::Sha512,
    ),
];

/// Is `child` issued by `parent`: its issuer is `parent`'s subject and its signature, in an
/// algorithm firmware accepts, verifies with `parent`'s RSA key?
pub fn issued_by(child: &Certificate, parent: &Certificate) -> bool {
    if child.tbs_certificate.issuer != parent.tbs_certificate.subject {
        return false;
    }
    let oid = child.signature_algorithm.oid;
    let Some((_, hash)) = RSA_SIGNATURE_ALGORITHMS.iter().find(|(o, _)| *o == oid) else {
        return false;
    };
    let (Ok(key), Ok(tbs), Some(sig)) = (
        keys::certificate_rsa_key(parent),
        child.tbs_certificate.to_der(),
        child.signature.as_bytes(),
    ) else {
        return false;
    };
    key.verify(hash.pkcs1v15(), &hash.digest(&tbs), sig).is_ok()
}

/// True if `signer` is `trusted` or chains up to it through `pool` (at most 8 links, so a
/// hostile pool cannot make it loop).
pub fn chains_to(signer: &Certificate, pool: &[Certificate], trusted: &Certificate) -> bool {
    let mut current = signer.clone();
    for _ in 0..8 {
        if current == *trusted || issued_by(&current, trusted) {
            return true;
        }
        match pool
            .iter()
            .find(|p| **p != current && issued_by(&current, p))
        {
            Some(next) => current = next.clone(),
            None => return false,
        }
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsa::RsaPrivateKey;
    use std::str::FromStr;
    use std::time::Duration;
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
    use x509_cert::time::Validity;

    /// A leaf certificate for a new key, issued by `issuer_key` as `issuer`, its signature
    /// made over `hash` (e.g. a db CA that signs with SHA-384). The builder signs with SHA-256;
    /// the TBS is then relabelled and signed again, since rsa's builder has no SHA-1.
    pub(crate) fn leaf_signed_with(
        issuer: &Certificate,
        issuer_key: &RsaPrivateKey,
        hash: HashAlg,
    ) -> Certificate {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let spki_der = key.to_public_key().to_public_key_der().unwrap();
        let spki = SubjectPublicKeyInfoOwned::try_from(spki_der.as_bytes()).unwrap();
        let signing_key = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(issuer_key.clone());
        let builder = CertificateBuilder::new(
            Profile::Leaf {
                issuer: issuer.tbs_certificate.subject.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            SerialNumber::new(&[7]).unwrap(),
            Validity::from_now(Duration::from_secs(86_400)).unwrap(),
            Name::from_str("CN=leaf").unwrap(),
            spki,
            &signing_key,
        )
        .unwrap();
        let mut cert = builder.build::<rsa::pkcs1v15::Signature>().unwrap();
        let (oid, _) = RSA_SIGNATURE_ALGORITHMS
            .iter()
            .find(|(_, h)| *h == hash)
            .unwrap();
        cert.tbs_certificate.signature.oid = *oid;
        cert.signature_algorithm.oid = *oid;
        let tbs = cert.tbs_certificate.to_der().unwrap();
        let sig = issuer_key
            .sign(hash.pkcs1v15(), &hash.digest(&tbs))
            .unwrap();
        cert.signature = der::asn1::BitString::from_bytes(&sig).unwrap();
        cert
    }

    #[test]
    fn every_algorithm_firmware_accepts_and_nothing_else() {
        let ca = crate::efi_keys::create::generate("ca", 2048, 1).unwrap();
        let other = crate::efi_keys::create::generate("other", 2048, 1).unwrap();
        for hash in [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            let leaf = leaf_signed_with(&ca.cert, &ca.key, hash);
            assert!(issued_by(&leaf, &ca.cert), "{}", hash.name());
            assert!(chains_to(&leaf, &[], &ca.cert));
            assert!(!issued_by(&leaf, &other.cert), "another key");
        }
        // The right name but another key's signature.
        let forged = leaf_signed_with(&ca.cert, &other.key, HashAlg::Sha256);
        assert!(!issued_by(&forged, &ca.cert));
        // An algorithm outside the list (here: the OID relabelled as MD5 with RSA).
        let mut md5 = leaf_signed_with(&ca.cert, &ca.key, HashAlg::Sha256);
        md5.signature_algorithm.oid = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.4");
        assert!(!issued_by(&md5, &ca.cert));
    }
}
