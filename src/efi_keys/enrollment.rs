//! The enrollment payload a sealed image carries for `bootc install`: PK.auth, KEK.auth and
//! db.auth at `/usr/lib/bootc/install/secureboot-keys/<name>/`, which bootc copies to the ESP's
//! `loader/keys/<name>/` and systemd-boot enrolls (`auto` without asking, with
//! `secure-boot-enroll force`; bootc 1.16.9 `crates/lib/src/bootc_composefs/boot.rs`,
//! systemd-boot `loader.conf(5)`). Only the three `.auth` files are ever read, so a key
//! directory's private keys can never end up in an image.

use super::EfiKeyError;
use super::auth::{ATTRIBUTES, AuthVariable, SecureBootVar};
use crate::bootc_paths::{SECUREBOOT_KEYS, in_layer};
use der::{Decode, Encode};
use std::path::Path;
use x509_cert::Certificate;

/// The payload files in enrollment order's reverse (PK last is what systemd-boot enrolls
/// last; listed as they are signed: PK by PK, KEK by PK, db by KEK).
pub const FILES: [(&str, SecureBootVar); 3] = [
    ("PK.auth", SecureBootVar::Pk),
    ("KEK.auth", SecureBootVar::Kek),
    ("db.auth", SecureBootVar::Db),
];

/// PK.auth, KEK.auth and db.auth under a name.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub name: String,
    /// (file name, bytes) in [`FILES`] order.
    pub files: Vec<(String, Vec<u8>)>,
    parsed: Vec<AuthVariable>,
}

/// A directory name bootc and systemd-boot can both use.
pub fn check_name(name: &str) -> Result<(), EfiKeyError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EfiKeyError::Malformed {
            what: "enrollment name",
            reason: format!(
                "{name:?}: use 1-64 of A-Z a-z 0-9 . _ - (bootc's default is \"auto\")"
            ),
        })
    }
}

fn certs_of(update: &AuthVariable, file: &str) -> Result<Vec<Certificate>, EfiKeyError> {
    update
        .enrolled_certificates()?
        .iter()
        .map(|der| {
            Certificate::from_der(der)
                .map_err(|e| EfiKeyError::Certificate(format!("{file}: enrolled certificate: {e}")))
        })
        .collect()
}

impl Enrollment {
    /// Read PK.auth, KEK.auth and db.auth from `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<Enrollment, EfiKeyError> {
        let files = FILES
            .iter()
            .map(|(f, _)| {
                let p = dir.join(f);
                std::fs::read(&p)
                    .map(|b| (f.to_string(), b))
                    .map_err(|e| EfiKeyError::Io(format!("{}: {e}", p.display())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Enrollment::from_files(name, files)
    }

    /// From the three files' bytes (file name, bytes), in any order; checks that each parses
    /// and that the updates chain: PK.auth signed by the PK it enrolls, KEK.auth by that PK,
    /// db.auth by a KEK that KEK.auth enrolls — what firmware in setup mode ends up requiring.
    pub fn from_files(
        name: &str,
        mut given: Vec<(String, Vec<u8>)>,
    ) -> Result<Enrollment, EfiKeyError> {
        check_name(name)?;
        let mut files = Vec::new();
        let mut parsed = Vec::new();
        for (f, _) in FILES {
            let i = given
                .iter()
                .position(|(n, _)| n == f)
                .ok_or_else(|| EfiKeyError::Io(format!("enrollment {name:?}: {f} is missing")))?;
            let (n, bytes) = given.swap_remove(i);
            let update = AuthVariable::parse(&bytes).map_err(|e| EfiKeyError::Malformed {
                what: "enrollment payload",
                reason: format!("{f}: {e}"),
            })?;
            files.push((n, bytes));
            parsed.push(update);
        }
        let e = Enrollment {
            name: name.to_string(),
            files,
            parsed,
        };
        e.check_chain()?;
        Ok(e)
    }

    fn check_chain(&self) -> Result<(), EfiKeyError> {
        let [pk, kek, db] = [&self.parsed[0], &self.parsed[1], &self.parsed[2]];
        let pk_certs = certs_of(pk, "PK.auth")?;
        let [pk_cert] = pk_certs.as_slice() else {
            return Err(EfiKeyError::Malformed {
                what: "PK.auth",
                reason: format!(
                    "enrolls {} certificates; PK holds exactly one",
                    pk_certs.len()
                ),
            });
        };
        let chain_err = |file: &str, by: &str, e: EfiKeyError| EfiKeyError::Malformed {
            what: "enrollment payload",
            reason: format!("{file} is not signed by {by}: {e}"),
        };
        pk.verify(SecureBootVar::Pk, ATTRIBUTES, pk_cert)
            .map_err(|e| chain_err("PK.auth", "the PK it enrolls", e))?;
        kek.verify(SecureBootVar::Kek, ATTRIBUTES, pk_cert)
            .map_err(|e| chain_err("KEK.auth", "PK", e))?;
        let kek_certs = certs_of(kek, "KEK.auth")?;
        let mut last = None;
        for k in &kek_certs {
            match db.verify(SecureBootVar::Db, ATTRIBUTES, k) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(chain_err(
            "db.auth",
            "a KEK in KEK.auth",
            last.unwrap_or(EfiKeyError::Malformed {
                what: "KEK.auth",
                reason: "enrolls no certificate".into(),
            }),
        ))
    }

    /// The certificates db.auth puts into db.
    pub fn db_certificates(&self) -> Result<Vec<Certificate>, EfiKeyError> {
        certs_of(&self.parsed[2], "db.auth")
    }

    /// Whether firmware with this db accepts images signed by `signer`: the certificate itself
    /// is in db, or it is issued (and signed) by a db certificate.
    pub fn trusts(&self, signer: &Certificate) -> Result<bool, EfiKeyError> {
        let der = signer
            .to_der()
            .map_err(|e| EfiKeyError::Certificate(e.to_string()))?;
        for db in self.db_certificates()? {
            if db
                .to_der()
                .map_err(|e| EfiKeyError::Certificate(e.to_string()))?
                == der
            {
                return Ok(true);
            }
            if crate::cert_chain::issued_by(signer, &db) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The files' paths in a layer: `usr/lib/bootc/install/secureboot-keys/<name>/<file>`.
    pub fn layer_paths(&self) -> impl Iterator<Item = (String, &[u8])> {
        self.files.iter().map(|(f, b)| {
            let dir = in_layer(SECUREBOOT_KEYS);
            (format!("{dir}/{}/{f}", self.name), b.as_slice())
        })
    }
}

#[cfg(test)]
impl Enrollment {
    /// Three files of `bytes` that are never parsed: for tests that only carry an enrollment.
    pub(crate) fn unchecked(name: &str, bytes: &[u8]) -> Enrollment {
        Enrollment {
            name: name.to_string(),
            files: FILES
                .iter()
                .map(|(f, _)| (f.to_string(), bytes.to_vec()))
                .collect(),
            parsed: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::efi_keys::create::{CreateOptions, create, generate};
    use crate::efi_keys::{EfiTime, Guid};

    #[test]
    fn chain_trust_and_names() {
        let d = tempfile::tempdir().unwrap();
        let opts = CreateOptions {
            subject_prefix: "t".into(),
            bits: 2048,
            owner: Guid::random(),
            time: EfiTime::from_unix(1_767_323_045),
            valid_days: 30,
        };
        create(d.path(), &opts).unwrap();
        let e = Enrollment::load(d.path(), "auto").unwrap();
        let cert = |n: &str| {
            crate::signer::keys::load_certificate(
                &std::fs::read(d.path().join(format!("{n}.crt"))).unwrap(),
            )
            .unwrap()
        };
        assert!(e.trusts(&cert("db")).unwrap());
        assert!(!e.trusts(&cert("KEK")).unwrap());
        assert!(!e.trusts(&generate("other", 2048, 1).unwrap().cert).unwrap());
        // A signer issued by the db key with a SHA-384 signature: firmware accepts it, so
        // enrollment must too (it once accepted SHA-256 only).
        let db_key = crate::signer::keys::load_private_key(
            &std::fs::read(d.path().join("db.key")).unwrap(),
            None,
        )
        .unwrap();
        let leaf = crate::cert_chain::tests::leaf_signed_with(
            &cert("db"),
            &db_key,
            crate::signer::HashAlg::Sha384,
        );
        assert!(e.trusts(&leaf).unwrap(), "SHA-384 signed by db");
        for bad in ["", "..", "a/b", "x y"] {
            assert!(Enrollment::load(d.path(), bad).is_err(), "{bad}");
        }
        // db.auth signed by PK instead of KEK breaks the chain.
        let mut files = e.files.clone();
        files[2].1 = files[1].1.clone();
        let err = Enrollment::from_files("auto", files)
            .unwrap_err()
            .to_string();
        assert!(err.contains("db.auth"), "{err}");
        assert_eq!(
            e.layer_paths().map(|(p, _)| p).collect::<Vec<_>>(),
            [
                "usr/lib/bootc/install/secureboot-keys/auto/PK.auth",
                "usr/lib/bootc/install/secureboot-keys/auto/KEK.auth",
                "usr/lib/bootc/install/secureboot-keys/auto/db.auth"
            ]
        );
    }
}
