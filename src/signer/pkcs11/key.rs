//! [`Pkcs11Key`]: a [`Signer`] whose RSA private key stays inside a PKCS#11 token.
//!
//! Opening checks everything that would otherwise fail halfway through a seal: the key is
//! RSA 2048/3072/4096, `CKA_SIGN` is set, its public key is readable (from the private key
//! object, or the public key object with the same id), and the token offers a mechanism
//! (`CKM_RSA_PKCS` over a DigestInfo, else `CKM_SHAx_RSA_PKCS` over the message, honouring
//! `CKA_ALLOWED_MECHANISMS`). Every signature is verified with the public key before use.

use super::{
    Login, ObjectType, Pkcs11Error, Pkcs11Options, Pkcs11Uri, TokenSession, find_object,
    open_session,
};
use crate::signer::{HashAlg, SignError, Signer};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use std::sync::Mutex;

/// How signatures are asked of the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `CKM_RSA_PKCS` over a DigestInfo hashed here: works for every hash.
    DigestInfo,
    /// `CKM_SHAx_RSA_PKCS` over the message: the token hashes.
    HashOnToken,
}

/// An RSA private key on a token, with a logged-in session to it.
pub struct Pkcs11Key {
    session: Mutex<Session>,
    key: ObjectHandle,
    public: RsaPublicKey,
    name: String,
    mode: Mode,
    /// Hash-and-sign mechanisms the token (and key) allow, for [`Mode::HashOnToken`].
    hash_mechanisms: Vec<MechanismType>,
}

fn hash_mechanism(hash: HashAlg) -> (MechanismType, Mechanism<'static>) {
    match hash {
        HashAlg::Sha1 => (MechanismType::SHA1_RSA_PKCS, Mechanism::Sha1RsaPkcs),
        HashAlg::Sha256 => (MechanismType::SHA256_RSA_PKCS, Mechanism::Sha256RsaPkcs),
        HashAlg::Sha384 => (MechanismType::SHA384_RSA_PKCS, Mechanism::Sha384RsaPkcs),
        HashAlg::Sha512 => (MechanismType::SHA512_RSA_PKCS, Mechanism::Sha512RsaPkcs),
    }
}

fn short_hash_name(hash: HashAlg) -> &'static str {
    match hash {
        HashAlg::Sha1 => "SHA1",
        HashAlg::Sha256 => "SHA256",
        HashAlg::Sha384 => "SHA384",
        HashAlg::Sha512 => "SHA512",
    }
}

impl Pkcs11Key {
    /// Find and log in to the key `uri` names. The PIN is the URI's, else `fallback_pin`
    /// (`--key-pass-file`/`--key-pass-env`), else none (tokens without login).
    pub fn open(
        uri: &Pkcs11Uri,
        opts: &Pkcs11Options,
        fallback_pin: Option<&[u8]>,
    ) -> Result<Self, Pkcs11Error> {
        let TokenSession {
            module,
            token,
            session,
        } = open_session(
            uri,
            opts,
            (ObjectType::Private, "a signing key"),
            fallback_pin,
            Login::Required,
        )?;
        let token_err = |operation, e: Error| Pkcs11Error::Token {
            token: token.label().to_string(),
            operation,
            reason: e.to_string(),
        };
        let key = find_object(
            &session,
            &token,
            ObjectClass::PRIVATE_KEY,
            "private key",
            uri,
        )?;
        let name = format!(
            "PKCS#11 key {} on token '{}'",
            super::describe_object(&session, key),
            token.label()
        );
        let attrs = session
            .get_attributes(
                key,
                &[
                    AttributeType::KeyType,
                    AttributeType::Sign,
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                    AttributeType::Id,
                    AttributeType::AllowedMechanisms,
                    AttributeType::AlwaysAuthenticate,
                ],
            )
            .map_err(|e| token_err("C_GetAttributeValue", e))?;
        let mut key_type = None;
        let mut can_sign = true;
        let (mut n, mut e, mut id) = (None, None, None);
        let mut allowed: Vec<MechanismType> = Vec::new();
        let mut always_authenticate = false;
        for a in attrs {
            match a {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::Sign(s) => can_sign = s,
                Attribute::Modulus(m) => n = Some(m),
                Attribute::PublicExponent(x) => e = Some(x),
                Attribute::Id(i) => id = Some(i),
                Attribute::AllowedMechanisms(m) => allowed = m,
                Attribute::AlwaysAuthenticate(a) => always_authenticate = a,
                _ => {}
            }
        }
        if let Some(t) = key_type
            && t != KeyType::RSA
        {
            return Err(Pkcs11Error::NotRsa {
                key: name,
                key_type: t.to_string(),
            });
        }
        if always_authenticate {
            // C_Login(CKU_CONTEXT_SPECIFIC) between C_SignInit and C_Sign for every signature
            // (a YubiKey's PIV slot 9c): not supported.
            return Err(Pkcs11Error::NotAllowedToSign {
                key: name,
                reason: "it needs the PIN again for every signature (CKA_ALWAYS_AUTHENTICATE), which bootseal does not support; use a key without it (e.g. PIV slot 9a)".into(),
            });
        }
        if !can_sign {
            return Err(Pkcs11Error::NotAllowedToSign {
                key: name,
                reason: "its CKA_SIGN is false".into(),
            });
        }
        let (n, e) = match (n, e) {
            (Some(n), Some(e)) if !n.is_empty() && !e.is_empty() => (n, e),
            _ => public_key_object(&session, id.as_deref())
                .ok_or_else(|| Pkcs11Error::NoPublicKey { key: name.clone() })?,
        };
        let public = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
            .map_err(|_| Pkcs11Error::NoPublicKey { key: name.clone() })?;
        let bits = public.size() * 8;
        if !matches!(bits, 2048 | 3072 | 4096) {
            return Err(Pkcs11Error::KeySize { key: name, bits });
        }
        let offered = module
            .ctx
            .get_mechanism_list(token.slot)
            .map_err(|e| token_err("C_GetMechanismList", e))?;
        let permitted = |m: &MechanismType| allowed.is_empty() || allowed.contains(m);
        let usable = |m: &MechanismType| offered.contains(m) && permitted(m);
        let hash_mechanisms: Vec<MechanismType> = [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ]
        .into_iter()
        .map(|h| hash_mechanism(h).0)
        .filter(usable)
        .collect();
        let raw = usable(&MechanismType::RSA_PKCS);
        let token_hashes = opts.hash_on_token && !hash_mechanisms.is_empty();
        let mode = if raw && !token_hashes {
            Mode::DigestInfo
        } else if !hash_mechanisms.is_empty() {
            Mode::HashOnToken
        } else if !allowed.is_empty() {
            return Err(Pkcs11Error::NotAllowedToSign {
                key: name,
                reason: format!(
                    "its CKA_ALLOWED_MECHANISMS ({}) include neither CKM_RSA_PKCS nor CKM_SHA*_RSA_PKCS",
                    allowed
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        } else {
            return Err(Pkcs11Error::NoMechanism {
                key: name,
                hash: "SHA256",
            });
        };
        Ok(Pkcs11Key {
            session: Mutex::new(session),
            key,
            public,
            name,
            mode,
            hash_mechanisms,
        })
    }

    /// True if the token hashes (`CKM_SHAx_RSA_PKCS`) rather than signing a DigestInfo.
    pub fn hashes_on_token(&self) -> bool {
        self.mode == Mode::HashOnToken
    }

    fn token_sign(&self, mechanism: &Mechanism<'_>, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        session.sign(mechanism, self.key, data).map_err(|e| {
            SignError::from(match e {
                Error::Pkcs11(RvError::KeyFunctionNotPermitted, _) => {
                    Pkcs11Error::NotAllowedToSign {
                        key: self.name.clone(),
                        reason: "the token refused with CKR_KEY_FUNCTION_NOT_PERMITTED".into(),
                    }
                }
                other => Pkcs11Error::Token {
                    token: self.name.clone(),
                    operation: "C_Sign",
                    reason: other.to_string(),
                },
            })
        })
    }

    fn checked(&self, hash: HashAlg, digest: &[u8], sig: Vec<u8>) -> Result<Vec<u8>, SignError> {
        self.public
            .verify(hash.pkcs1v15(), digest, &sig)
            .map_err(|_| Pkcs11Error::BadSignature {
                key: self.name.clone(),
            })?;
        Ok(sig)
    }
}

/// Modulus and exponent of the public key object with the private key's id.
fn public_key_object(session: &Session, id: Option<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
    let id = id.filter(|i| !i.is_empty())?;
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(id.to_vec()),
        ])
        .ok()?;
    let handle = *found.first()?;
    let attrs = session
        .get_attributes(
            handle,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )
        .ok()?;
    let (mut n, mut e) = (None, None);
    for a in attrs {
        match a {
            Attribute::Modulus(m) => n = Some(m),
            Attribute::PublicExponent(x) => e = Some(x),
            _ => {}
        }
    }
    Some((n?, e?))
}

impl Signer for Pkcs11Key {
    fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn sign_digest(&self, hash: HashAlg, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        let info = hash.digest_info(digest)?;
        if self.mode == Mode::HashOnToken {
            return Err(Pkcs11Error::NoMechanism {
                key: self.name.clone(),
                hash: short_hash_name(hash),
            }
            .into());
        }
        let sig = self.token_sign(&Mechanism::RsaPkcs, &info)?;
        self.checked(hash, digest, sig)
    }

    fn sign(&self, hash: HashAlg, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let digest = hash.digest(message);
        if self.mode == Mode::DigestInfo {
            return self.sign_digest(hash, &digest);
        }
        let (kind, mechanism) = hash_mechanism(hash);
        if !self.hash_mechanisms.contains(&kind) {
            return Err(Pkcs11Error::NoMechanism {
                key: self.name.clone(),
                hash: short_hash_name(hash),
            }
            .into());
        }
        let sig = self.token_sign(&mechanism, message)?;
        self.checked(hash, &digest, sig)
    }
}
