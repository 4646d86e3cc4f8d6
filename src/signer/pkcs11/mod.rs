//! Keys and certificates on a PKCS#11 token (HSM, smart card, cloud KMS module), named by a
//! `pkcs11:` URI (RFC 7512), through the `cryptoki` crate. The private key never leaves the
//! token: it signs a DigestInfo with `CKM_RSA_PKCS`, or hashes and signs with
//! `CKM_SHA256_RSA_PKCS` (and its SHA-1/384/512 siblings) when that is all the key allows.
//!
//! Errors say what to do: which module was tried and why, the tokens present when none
//! matches, the objects present when none matches, wrong or locked PIN, a key without
//! `CKA_SIGN`. The PIN is never part of any message.

mod key;
mod module;
mod uri;

pub use key::Pkcs11Key;
pub use module::MODULE_ENV;
pub use uri::{ObjectType, Pkcs11Uri};

use cryptoki::error::{Error, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::RawAuthPin;
use module::Token;
use std::path::PathBuf;
use thiserror::Error;
use x509_cert::Certificate;

/// How to reach tokens, besides what the URI says.
#[derive(Clone, Debug, Default)]
pub struct Pkcs11Options {
    /// `--pkcs11-module`: used when the URI names no module.
    pub module: Option<PathBuf>,
    /// Let the token hash (`CKM_SHA256_RSA_PKCS`) even when it offers `CKM_RSA_PKCS`.
    pub hash_on_token: bool,
    /// Where to look for p11-kit's proxy module (default: the distributions' library dirs).
    pub proxy_candidates: Option<Vec<PathBuf>>,
}

/// Why a token key or certificate could not be used.
#[derive(Debug, Error)]
pub enum Pkcs11Error {
    #[error("bad pkcs11: URI: {reason}")]
    Uri { reason: String },
    #[error("cannot read the PIN from pin-source {path}: {reason}")]
    PinSource { path: String, reason: String },
    #[error(
        "no PKCS#11 module: give module-path in the URI, --pkcs11-module or {}, or install p11-kit's proxy module (looked for {searched})",
        MODULE_ENV
    )]
    NoModule { searched: String },
    #[error("no PKCS#11 module named {name:?} (looked in {searched})")]
    ModuleName { name: String, searched: String },
    #[error("cannot load PKCS#11 module {path} (from {origin}): {reason}")]
    ModuleLoad {
        path: String,
        origin: &'static str,
        reason: String,
    },
    #[error("PKCS#11 module {path}: {reason}")]
    Module { path: String, reason: String },
    #[error("no token matches {selector} in PKCS#11 module {module}; tokens found: {found}")]
    NoToken {
        module: String,
        selector: String,
        found: String,
    },
    #[error(
        "several tokens in PKCS#11 module {module} match; name one with token= or serial= in the URI: {found}"
    )]
    AmbiguousToken { module: String, found: String },
    #[error(
        "token '{token}' needs a PIN: give pin-value or pin-source in the URI, --key-pass-file or --key-pass-env"
    )]
    PinNeeded { token: String },
    #[error("wrong PIN for token '{token}'{hint}")]
    WrongPin { token: String, hint: &'static str },
    #[error("the user PIN of token '{token}' is locked; unlock it with the security officer PIN")]
    PinLocked { token: String },
    #[error("cannot log in to token '{token}': {reason}")]
    Login { token: String, reason: String },
    #[error("token '{token}' has no {what} matching {selector}; {what}s on it: {found}")]
    NoObject {
        token: String,
        what: &'static str,
        selector: String,
        found: String,
    },
    #[error(
        "token '{token}' has several {what}s matching {selector}; name one with object= or id=: {found}"
    )]
    AmbiguousObject {
        token: String,
        what: &'static str,
        selector: String,
        found: String,
    },
    #[error("{key} is not an RSA key ({key_type}); only RSA 2048/3072/4096 keys are supported")]
    NotRsa { key: String, key_type: String },
    #[error("{key} is RSA {bits} bits; use 2048, 3072 or 4096")]
    KeySize { key: String, bits: usize },
    #[error("{key} is not allowed to sign: {reason}")]
    NotAllowedToSign { key: String, reason: String },
    #[error("{key}: the token shows neither the key's modulus nor a public key object with its id")]
    NoPublicKey { key: String },
    #[error("{key}: the token offers neither CKM_RSA_PKCS nor CKM_{hash}_RSA_PKCS for this key")]
    NoMechanism { key: String, hash: &'static str },
    #[error("{key}: the token's signature does not verify with the key's public key")]
    BadSignature { key: String },
    #[error("certificate {object} on token '{token}' cannot be parsed: {reason}")]
    Certificate {
        object: String,
        token: String,
        reason: String,
    },
    #[error("token '{token}': {operation} failed: {reason}")]
    Token {
        token: String,
        operation: &'static str,
        reason: String,
    },
}

/// Log the user in: with the PIN if there is one, not at all for tokens without login. A wrong
/// PIN is never retried, so bootseal cannot be what locks a token.
fn login(
    module: &module::Module,
    session: &Session,
    token: &Token,
    pin: Option<&[u8]>,
) -> Result<(), Pkcs11Error> {
    let name = token.label().to_string();
    if token.info.user_pin_locked() {
        return Err(Pkcs11Error::PinLocked { token: name });
    }
    let Some(pin) = pin else {
        if !token.info.login_required() {
            return Ok(());
        }
        if !token.info.protected_authentication_path() {
            return Err(Pkcs11Error::PinNeeded { token: name });
        }
        // A PIN pad or biometric reader: the user authenticates on the device.
        return match session.login(UserType::User, None) {
            Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(e) => Err(Pkcs11Error::Login {
                token: name,
                reason: e.to_string(),
            }),
        };
    };
    let raw = RawAuthPin::new(Box::new(pin.to_vec()));
    match session.login_with_raw(UserType::User, &raw) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(Error::Pkcs11(
            RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
            _,
        )) => {
            // The token may have locked the PIN on this very attempt.
            let now = module.ctx.get_token_info(token.slot).ok();
            Err(match now {
                Some(i) if i.user_pin_locked() => Pkcs11Error::PinLocked { token: name },
                Some(i) if i.user_pin_final_try() => Pkcs11Error::WrongPin {
                    token: name,
                    hint: " (one try left before the PIN locks)",
                },
                Some(i) if i.user_pin_count_low() => Pkcs11Error::WrongPin {
                    token: name,
                    hint: " (it failed before too; tokens that count failures lock the PIN)",
                },
                _ => Pkcs11Error::WrongPin {
                    token: name,
                    hint: "",
                },
            })
        }
        Err(Error::Pkcs11(RvError::PinLocked, _)) => Err(Pkcs11Error::PinLocked { token: name }),
        Err(e) => Err(Pkcs11Error::Login {
            token: name,
            reason: e.to_string(),
        }),
    }
}

/// Label and id of an object, for listings: `'db' id %01`.
fn describe_object(session: &Session, handle: ObjectHandle) -> String {
    let attrs = session
        .get_attributes(handle, &[AttributeType::Label, AttributeType::Id])
        .unwrap_or_default();
    let mut label = String::from("(no label)");
    let mut id = String::new();
    for a in attrs {
        match a {
            Attribute::Label(l) => label = format!("'{}'", String::from_utf8_lossy(&l)),
            Attribute::Id(i) if !i.is_empty() => {
                id = format!(
                    " id {}",
                    i.iter().map(|b| format!("%{b:02X}")).collect::<String>()
                )
            }
            _ => {}
        }
    }
    format!("{label}{id}")
}

/// The one object of `class` the URI's `object`/`id` select.
fn find_object(
    session: &Session,
    token: &Token,
    class: ObjectClass,
    what: &'static str,
    uri: &Pkcs11Uri,
) -> Result<ObjectHandle, Pkcs11Error> {
    let token_err = |operation, e: Error| Pkcs11Error::Token {
        token: token.label().to_string(),
        operation,
        reason: e.to_string(),
    };
    let mut template = vec![Attribute::Class(class)];
    if let Some(l) = &uri.object {
        template.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    let found = session
        .find_objects(&template)
        .map_err(|e| token_err("C_FindObjects", e))?;
    let list = |hs: &[ObjectHandle]| {
        if hs.is_empty() {
            "none".to_string()
        } else {
            hs.iter()
                .map(|h| describe_object(session, *h))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match found.len() {
        1 => Ok(found[0]),
        0 => {
            let all = session
                .find_objects(&[Attribute::Class(class)])
                .map_err(|e| token_err("C_FindObjects", e))?;
            Err(Pkcs11Error::NoObject {
                token: token.label().to_string(),
                what,
                selector: uri.object_text(),
                found: list(&all),
            })
        }
        _ => Err(Pkcs11Error::AmbiguousObject {
            token: token.label().to_string(),
            what,
            selector: uri.object_text(),
            found: list(&found),
        }),
    }
}

/// When to log in to a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Login {
    /// Always (with the PIN if there is one; tokens without login need none): signing keys.
    Required,
    /// Only with the URI's PIN, or with the fallback PIN if the token requires a login:
    /// public objects such as certificates.
    IfPin,
}

/// A session on the token a URI names, logged in as asked.
pub(crate) struct TokenSession {
    pub module: module::Module,
    pub token: module::Token,
    pub session: Session,
}

/// The one way to a token: check the URI names an object of type `want` (if it names a type
/// at all), load the module, select the token, open a read-only session and log in. The PIN is
/// the URI's, else `fallback_pin` (`--key-pass-file`/`--key-pass-env`).
pub(crate) fn open_session(
    uri: &Pkcs11Uri,
    opts: &Pkcs11Options,
    want: (ObjectType, &str),
    fallback_pin: Option<&[u8]>,
    when: Login,
) -> Result<TokenSession, Pkcs11Error> {
    let (want, what) = want;
    if let Some(t) = uri.object_type
        && t != want
    {
        return Err(Pkcs11Error::Uri {
            reason: format!("{what} needs type={}, not type={}", want.name(), t.name()),
        });
    }
    let module = module::load(uri, opts)?;
    let token = module::select_token(&module, uri)?;
    let session = module
        .ctx
        .open_ro_session(token.slot)
        .map_err(|e| Pkcs11Error::Token {
            token: token.label().to_string(),
            operation: "C_OpenSession",
            reason: e.to_string(),
        })?;
    let uri_pin = uri.pin()?;
    let pin = match (uri_pin.as_deref().map(Vec::as_slice), fallback_pin, when) {
        (Some(p), _, _) => Some(p),
        (None, Some(f), Login::Required) => Some(f),
        (None, Some(f), Login::IfPin) if token.info.login_required() => Some(f),
        _ => None,
    };
    if when == Login::Required || pin.is_some() {
        login(&module, &session, &token, pin)?;
    }
    Ok(TokenSession {
        module,
        token,
        session,
    })
}

/// Read the X.509 certificate object a `pkcs11:` URI names. The token is logged in to only
/// with the URI's PIN, or with `fallback_pin` if the token requires a login.
pub fn read_certificate(
    uri: &Pkcs11Uri,
    opts: &Pkcs11Options,
    fallback_pin: Option<&[u8]>,
) -> Result<Certificate, Pkcs11Error> {
    let TokenSession { token, session, .. } = open_session(
        uri,
        opts,
        (ObjectType::Cert, "a certificate"),
        fallback_pin,
        Login::IfPin,
    )?;
    let handle = find_object(
        &session,
        &token,
        ObjectClass::CERTIFICATE,
        "certificate",
        uri,
    )?;
    let value = session
        .get_attributes(handle, &[AttributeType::Value])
        .map_err(|e| Pkcs11Error::Token {
            token: token.label().to_string(),
            operation: "C_GetAttributeValue",
            reason: e.to_string(),
        })?;
    let der_bytes = value
        .into_iter()
        .find_map(|a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        })
        .unwrap_or_default();
    use der::Decode;
    Certificate::from_der(&der_bytes).map_err(|e| Pkcs11Error::Certificate {
        object: describe_object(&session, handle),
        token: token.label().to_string(),
        reason: e.to_string(),
    })
}
