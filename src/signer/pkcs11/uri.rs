//! `pkcs11:` URIs (RFC 7512): which module, token and object a key or certificate is, and
//! where its PIN comes from. Parsing is strict: an attribute this code does not know, a
//! repeated attribute or a bad percent-escape is refused by name rather than matched loosely.
//! A URI is shown (in errors, reports) without `pin-value`.

use super::Pkcs11Error;
use std::fmt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The object class a URI's `type` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    Private,
    Public,
    Cert,
    SecretKey,
    Data,
}

impl ObjectType {
    fn parse(v: &str) -> Option<Self> {
        Some(match v {
            "private" => ObjectType::Private,
            "public" => ObjectType::Public,
            "cert" => ObjectType::Cert,
            "secret-key" => ObjectType::SecretKey,
            "data" => ObjectType::Data,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Private => "private",
            ObjectType::Public => "public",
            ObjectType::Cert => "cert",
            ObjectType::SecretKey => "secret-key",
            ObjectType::Data => "data",
        }
    }
}

/// A parsed `pkcs11:` URI. Absent attributes match anything.
#[derive(Clone, Default)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub library_manufacturer: Option<String>,
    pub library_description: Option<String>,
    pub library_version: Option<(u8, u8)>,
    pub slot_description: Option<String>,
    pub slot_manufacturer: Option<String>,
    pub slot_id: Option<u64>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub object_type: Option<ObjectType>,
    pub module_path: Option<PathBuf>,
    pub module_name: Option<String>,
    /// `pin-source`: a file holding the PIN (`file:` URI or a path).
    pub pin_source: Option<String>,
    pin_value: Option<Zeroizing<Vec<u8>>>,
}

impl Pkcs11Uri {
    /// Parse `pkcs11:PATH[?QUERY]`.
    pub fn parse(text: &str) -> Result<Self, Pkcs11Error> {
        let bad = |reason: String| Pkcs11Error::Uri { reason };
        let rest = text
            .strip_prefix("pkcs11:")
            .ok_or_else(|| bad("does not start with \"pkcs11:\"".into()))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Pkcs11Uri::default();
        let mut seen: Vec<String> = Vec::new();
        let mut once = |name: &str| {
            if seen.iter().any(|s| s == name) {
                return Err(bad(format!("attribute {name:?} appears twice")));
            }
            seen.push(name.to_string());
            Ok(())
        };
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, raw) = attr
                .split_once('=')
                .ok_or_else(|| bad(format!("path attribute {attr:?} has no '='")))?;
            once(name)?;
            let bytes = percent_decode(raw).map_err(|e| bad(format!("{name}: {e}")))?;
            let text = || {
                String::from_utf8(bytes.clone())
                    .map_err(|_| bad(format!("{name}: value is not UTF-8")))
            };
            match name {
                "token" => uri.token = Some(text()?),
                "manufacturer" => uri.manufacturer = Some(text()?),
                "serial" => uri.serial = Some(text()?),
                "model" => uri.model = Some(text()?),
                "library-manufacturer" => uri.library_manufacturer = Some(text()?),
                "library-description" => uri.library_description = Some(text()?),
                "library-version" => {
                    let t = text()?;
                    let (major, minor) = t.split_once('.').unwrap_or((&t, "0"));
                    uri.library_version = Some((
                        major
                            .parse()
                            .map_err(|_| bad(format!("library-version {t:?} is not M[.N]")))?,
                        minor
                            .parse()
                            .map_err(|_| bad(format!("library-version {t:?} is not M[.N]")))?,
                    ));
                }
                "slot-description" => uri.slot_description = Some(text()?),
                "slot-manufacturer" => uri.slot_manufacturer = Some(text()?),
                "slot-id" => {
                    let t = text()?;
                    uri.slot_id = Some(
                        t.parse()
                            .map_err(|_| bad(format!("slot-id {t:?} is not a number")))?,
                    );
                }
                "object" => uri.object = Some(text()?),
                "id" => uri.id = Some(bytes),
                "type" => {
                    let t = text()?;
                    uri.object_type = Some(ObjectType::parse(&t).ok_or_else(|| {
                        bad(format!(
                            "type {t:?} is not one of private, public, cert, secret-key, data"
                        ))
                    })?);
                }
                other => return Err(bad(format!("unknown path attribute {other:?}"))),
            }
        }
        for attr in query.unwrap_or("").split('&').filter(|a| !a.is_empty()) {
            let (name, raw) = attr.split_once('=').ok_or_else(|| {
                // Never echo what might be a PIN.
                bad("a query attribute has no '='".into())
            })?;
            once(name)?;
            let bytes =
                Zeroizing::new(percent_decode(raw).map_err(|e| bad(format!("{name}: {e}")))?);
            let text = || {
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| bad(format!("{name}: value is not UTF-8")))
            };
            match name {
                "module-path" => uri.module_path = Some(PathBuf::from(text()?)),
                "module-name" => uri.module_name = Some(text()?),
                "pin-source" => uri.pin_source = Some(text()?),
                "pin-value" => uri.pin_value = Some(bytes.clone()),
                other => return Err(bad(format!("unknown query attribute {other:?}"))),
            }
        }
        if uri.pin_value.is_some() && uri.pin_source.is_some() {
            return Err(bad("give pin-value or pin-source, not both".into()));
        }
        Ok(uri)
    }

    /// The PIN the URI carries (`pin-value`, or the first line of the `pin-source` file).
    pub fn pin(&self) -> Result<Option<Zeroizing<Vec<u8>>>, Pkcs11Error> {
        if let Some(v) = &self.pin_value {
            return Ok(Some(v.clone()));
        }
        let Some(source) = &self.pin_source else {
            return Ok(None);
        };
        let path = source.strip_prefix("file://").unwrap_or(source);
        let path = path.strip_prefix("file:").unwrap_or(path);
        let mut pin = Zeroizing::new(std::fs::read(path).map_err(|e| Pkcs11Error::PinSource {
            path: path.to_string(),
            reason: e.to_string(),
        })?);
        while pin.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            pin.pop();
        }
        Ok(Some(pin))
    }

    /// True if the URI names a token in any way (else any single token will do).
    pub fn names_token(&self) -> bool {
        self.token.is_some()
            || self.manufacturer.is_some()
            || self.serial.is_some()
            || self.model.is_some()
            || self.slot_description.is_some()
            || self.slot_manufacturer.is_some()
            || self.slot_id.is_some()
    }

    /// The token-selecting part of the URI, for messages (`token=ci;serial=…`).
    pub fn token_text(&self) -> String {
        let text = self.to_string();
        let path = text
            .strip_prefix("pkcs11:")
            .unwrap_or(&text)
            .split('?')
            .next()
            .unwrap_or("");
        let parts: Vec<&str> = path
            .split(';')
            .filter(|a| {
                !a.is_empty() && !["object=", "id=", "type="].iter().any(|p| a.starts_with(p))
            })
            .collect();
        if parts.is_empty() {
            "any token".into()
        } else {
            parts.join(";")
        }
    }

    /// The object-selecting part of the URI, for messages (`object='db';id=%01`).
    pub fn object_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(o) = &self.object {
            parts.push(format!("object={}", percent_encode(o.as_bytes())));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id={}", percent_encode_all(id)));
        }
        if let Some(t) = self.object_type {
            parts.push(format!("type={}", t.name()));
        }
        if parts.is_empty() {
            "any object".into()
        } else {
            parts.join(";")
        }
    }
}

impl fmt::Display for Pkcs11Uri {
    /// The URI in canonical order, without `pin-value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path: Vec<String> = Vec::new();
        let mut text = |name: &str, v: &Option<String>| {
            if let Some(v) = v {
                path.push(format!("{name}={}", percent_encode(v.as_bytes())));
            }
        };
        text("token", &self.token);
        text("manufacturer", &self.manufacturer);
        text("serial", &self.serial);
        text("model", &self.model);
        text("library-manufacturer", &self.library_manufacturer);
        text("library-description", &self.library_description);
        text("slot-description", &self.slot_description);
        text("slot-manufacturer", &self.slot_manufacturer);
        text("object", &self.object);
        if let Some((a, b)) = self.library_version {
            path.push(format!("library-version={a}.{b}"));
        }
        if let Some(s) = self.slot_id {
            path.push(format!("slot-id={s}"));
        }
        if let Some(t) = self.object_type {
            path.push(format!("type={}", t.name()));
        }
        if let Some(id) = &self.id {
            path.push(format!("id={}", percent_encode_all(id)));
        }
        let mut query = Vec::new();
        if let Some(p) = &self.module_path {
            query.push(format!(
                "module-path={}",
                percent_encode(p.to_string_lossy().as_bytes())
            ));
        }
        if let Some(n) = &self.module_name {
            query.push(format!("module-name={}", percent_encode(n.as_bytes())));
        }
        if let Some(s) = &self.pin_source {
            query.push(format!("pin-source={}", percent_encode(s.as_bytes())));
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Uri({self})")
    }
}

fn percent_decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("bad percent-escape (expected %XX)")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Percent-encode all but RFC 3986 unreserved characters and those RFC 7512 allows
/// unescaped in values (`:[]@!$'()*+,=` and `/` in paths).
fn percent_encode(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        if c.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,=/".contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

/// `%XX` for every byte (how ids are usually written).
fn percent_encode_all(b: &[u8]) -> String {
    b.iter().map(|c| format!("%{c:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7512_examples_parse() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.serial.as_deref(), Some(""));
        assert_eq!(u.object_type, Some(ObjectType::Cert));
        assert_eq!(
            u.id.as_deref(),
            Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..])
        );
        assert_eq!(u.pin_source.as_deref(), Some("file:/etc/token_pin"));
        let u = Pkcs11Uri::parse(
            "pkcs11:slot-id=3;object=a?module-path=/usr/lib/x.so&pin-value=12%2034",
        )
        .unwrap();
        assert_eq!(u.slot_id, Some(3));
        assert_eq!(
            u.pin().unwrap().as_deref().map(Vec::as_slice),
            Some(&b"12 34"[..])
        );
        assert_eq!(
            u.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/x.so"))
        );
        assert!(Pkcs11Uri::parse("pkcs11:").unwrap().object.is_none());
    }

    #[test]
    fn the_pin_is_never_shown() {
        let u =
            Pkcs11Uri::parse("pkcs11:token=t;object=k?pin-value=s3cr3t&module-path=/m.so").unwrap();
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert_eq!(u.to_string(), "pkcs11:token=t;object=k?module-path=/m.so");
        let e = Pkcs11Uri::parse("pkcs11:token=t?pin-value=s3cr3t&pin-value=x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
        let e = Pkcs11Uri::parse("pkcs11:token=t?s3cr3t")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn bad_uris_are_refused_by_name() {
        for (uri, what) in [
            ("pkcs11:tokn=a", "unknown path attribute \"tokn\""),
            ("pkcs11:token=a;token=b", "appears twice"),
            ("pkcs11:id=%G1", "bad percent-escape"),
            ("pkcs11:type=key", "type \"key\""),
            ("pkcs11:slot-id=x", "slot-id"),
            (
                "pkcs11:object=a?module=x",
                "unknown query attribute \"module\"",
            ),
            ("pkcs11:object=a?pin-value=1&pin-source=/f", "not both"),
        ] {
            let e = Pkcs11Uri::parse(uri).unwrap_err().to_string();
            assert!(e.contains(what), "{uri}: {e}");
        }
    }
}
