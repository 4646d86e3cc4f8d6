//! `bootseal keys create`: a fresh PK, KEK and db (RSA key pairs with self-signed
//! certificates, like the openssl recipe in the Arch/Fedora Secure Boot guides), their
//! signature lists and the setup-mode enrollment updates PK.auth (signed by PK), KEK.auth
//! (by PK) and db.auth (by KEK). With `--db-only`, a db key alone for a machine whose PK and
//! KEK already exist: its db.auth appends the new certificate, signed by that KEK.

use super::auth::{self, EfiTime, SecureBootVar};
use super::{EfiKeyError, Guid, esl};
use crate::signer::{CertifiedSigner, FileKey};
use der::{Decode, Encode, EncodePem};
use rsa::RsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use x509_cert::Certificate;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

/// The three keys, in enrollment-signing order.
pub const KEY_NAMES: [&str; 3] = ["PK", "KEK", "db"];
/// Extensions written per key.
const EXTENSIONS: [&str; 5] = ["key", "crt", "cer", "esl", "auth"];

/// What to create.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Certificate subjects are `CN=<prefix> PK` etc.
    pub subject_prefix: String,
    /// RSA modulus size: 2048, 3072 or 4096.
    pub bits: usize,
    /// SignatureOwner of every list entry.
    pub owner: Guid,
    /// TimeStamp of the updates.
    pub time: EfiTime,
    /// Certificate lifetime.
    pub valid_days: u64,
}

/// A key pair with its self-signed certificate.
pub struct KeyPair {
    pub key: RsaPrivateKey,
    pub cert: Certificate,
}

fn io(path: &Path, e: impl std::fmt::Display) -> EfiKeyError {
    EfiKeyError::Io(format!("{}: {e}", path.display()))
}

/// Escape an RFC 4514 attribute value.
fn escape_rdn(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
        {
            out.push('\\');
        }
        out.push(c);
    }
    if out.ends_with(' ') {
        out.pop();
        out.push_str("\\ ");
    }
    out
}

/// A new RSA key and a self-signed CA certificate `CN=<common_name>` for it.
pub fn generate(common_name: &str, bits: usize, valid_days: u64) -> Result<KeyPair, EfiKeyError> {
    use rsa::rand_core::{OsRng, RngCore};
    let cert_err = |e: &dyn std::fmt::Display| EfiKeyError::Certificate(e.to_string());
    let key = RsaPrivateKey::new(&mut OsRng, bits).map_err(|e| cert_err(&e))?;
    let subject =
        Name::from_str(&format!("CN={}", escape_rdn(common_name))).map_err(|e| cert_err(&e))?;
    let spki_der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| cert_err(&e))?;
    let spki =
        SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes()).map_err(|e| cert_err(&e))?;
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x01; // positive, 16 significant bytes
    let serial = SerialNumber::new(&serial).map_err(|e| cert_err(&e))?;
    let validity =
        Validity::from_now(Duration::from_secs(valid_days * 86_400)).map_err(|e| cert_err(&e))?;
    let signing_key = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let builder =
        CertificateBuilder::new(Profile::Root, serial, validity, subject, spki, &signing_key)
            .map_err(|e| cert_err(&e))?;
    let cert = builder
        .build::<rsa::pkcs1v15::Signature>()
        .map_err(|e| cert_err(&e))?;
    Ok(KeyPair { key, cert })
}

/// The files `create` writes into `dir`.
pub fn output_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = KEY_NAMES
        .iter()
        .flat_map(|n| EXTENSIONS.iter().map(move |e| dir.join(format!("{n}.{e}"))))
        .collect();
    v.push(dir.join("GUID.txt"));
    v
}

/// Write a new file, refusing to replace one; `mode` applies on Unix.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), EfiKeyError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = o.open(path).map_err(|e| io(path, e))?;
    f.write_all(bytes).map_err(|e| io(path, e))
}

/// Create the key set in `dir` (made if missing). Refuses before writing anything if any
/// output file already exists.
pub fn create(dir: &Path, opts: &CreateOptions) -> Result<Vec<PathBuf>, EfiKeyError> {
    check_bits(opts.bits)?;
    let files = output_files(dir);
    refuse_existing(&files)?;
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;

    let pairs: Vec<KeyPair> = KEY_NAMES
        .iter()
        .map(|n| {
            let cn = format!("{} {n}", opts.subject_prefix).trim().to_string();
            generate(&cn, opts.bits, opts.valid_days)
        })
        .collect::<Result<_, _>>()?;
    let signer = |i: usize| {
        CertifiedSigner::new(
            Box::new(FileKey::from_key(pairs[i].key.clone(), KEY_NAMES[i])),
            pairs[i].cert.clone(),
        )
        .map_err(|e| EfiKeyError::Sign(e.to_string()))
    };
    let pk_signer = signer(0)?;
    let kek_signer = signer(1)?;

    let vars = [SecureBootVar::Pk, SecureBootVar::Kek, SecureBootVar::Db];
    for (i, name) in KEY_NAMES.iter().enumerate() {
        let by = if i == 2 { &kek_signer } else { &pk_signer };
        write_key(dir, name, vars[i], &pairs[i], opts, false, by)?;
    }
    write_new(
        &dir.join("GUID.txt"),
        format!("{}\n", opts.owner).as_bytes(),
        0o644,
    )?;
    Ok(files)
}

/// The files [`create_db_only`] writes into `dir`.
pub fn db_only_files(dir: &Path) -> Vec<PathBuf> {
    EXTENSIONS
        .iter()
        .map(|e| dir.join(format!("db.{e}")))
        .collect()
}

/// A new db key for a machine whose PK and KEK exist: `db.key db.crt db.cer db.esl db.auth`
/// in `dir`, db.auth an append update (EFI_VARIABLE_APPEND_WRITE, as `sign-efi-sig-list -a`
/// writes) signed by `kek`, so enrolling it keeps the db entries already there. Refuses
/// before writing anything if any output file exists.
pub fn create_db_only(
    dir: &Path,
    opts: &CreateOptions,
    kek: &CertifiedSigner,
) -> Result<Vec<PathBuf>, EfiKeyError> {
    check_bits(opts.bits)?;
    let files = db_only_files(dir);
    refuse_existing(&files)?;
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let cn = format!("{} db", opts.subject_prefix).trim().to_string();
    let pair = generate(&cn, opts.bits, opts.valid_days)?;
    write_key(dir, "db", SecureBootVar::Db, &pair, opts, true, kek)?;
    Ok(files)
}

/// Keys are never overwritten: refuses before anything is written if one of `files` exists.
fn refuse_existing(files: &[PathBuf]) -> Result<(), EfiKeyError> {
    match files.iter().find(|p| p.symlink_metadata().is_ok()) {
        Some(existing) => Err(EfiKeyError::Io(format!(
            "{} already exists; refusing to overwrite Secure Boot keys",
            existing.display()
        ))),
        None => Ok(()),
    }
}

fn check_bits(bits: usize) -> Result<(), EfiKeyError> {
    if matches!(bits, 2048 | 3072 | 4096) {
        return Ok(());
    }
    Err(EfiKeyError::Certificate(format!(
        "RSA key size {bits} is not supported (use 2048, 3072 or 4096)"
    )))
}

/// One key's files: NAME.key (0600), .crt, .cer, .esl and the .auth update signed by `by`.
fn write_key(
    dir: &Path,
    name: &str,
    var: SecureBootVar,
    pair: &KeyPair,
    opts: &CreateOptions,
    append: bool,
    by: &CertifiedSigner,
) -> Result<(), EfiKeyError> {
    let cert_err = |e: &dyn std::fmt::Display| EfiKeyError::Certificate(e.to_string());
    let cert_der = pair.cert.to_der().map_err(|e| cert_err(&e))?;
    let list = esl::x509_list(opts.owner, &cert_der);
    let update = auth::build(var, &list, opts.time, append, by)?;
    let key_pem = pair
        .key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| cert_err(&e))?;
    let cert_pem = pair
        .cert
        .to_pem(der::pem::LineEnding::LF)
        .map_err(|e| cert_err(&e))?;
    write_new(&dir.join(format!("{name}.key")), key_pem.as_bytes(), 0o600)?;
    write_new(&dir.join(format!("{name}.crt")), cert_pem.as_bytes(), 0o644)?;
    write_new(&dir.join(format!("{name}.cer")), &cert_der, 0o644)?;
    write_new(&dir.join(format!("{name}.esl")), &list, 0o644)?;
    write_new(&dir.join(format!("{name}.auth")), &update, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::efi_keys::AuthVariable;

    #[test]
    fn created_updates_verify_against_their_signers_only() {
        let d = tempfile::tempdir().unwrap();
        let opts = CreateOptions {
            subject_prefix: "unit".into(),
            bits: 2048,
            owner: Guid::random(),
            time: EfiTime::from_unix(1_767_323_045),
            valid_days: 30,
        };
        create(d.path(), &opts).unwrap();
        let cert = |n: &str| {
            crate::signer::keys::load_certificate(
                &std::fs::read(d.path().join(format!("{n}.crt"))).unwrap(),
            )
            .unwrap()
        };
        let db = AuthVariable::parse(&std::fs::read(d.path().join("db.auth")).unwrap()).unwrap();
        assert_eq!(db.time, opts.time);
        assert_eq!(
            db.enrolled_certificates().unwrap(),
            vec![cert("db").to_der().unwrap()]
        );
        db.verify(SecureBootVar::Db, auth::ATTRIBUTES, &cert("KEK"))
            .unwrap();
        assert!(
            db.verify(SecureBootVar::Db, auth::ATTRIBUTES, &cert("PK"))
                .is_err()
        );
        assert!(
            db.verify(SecureBootVar::Kek, auth::ATTRIBUTES, &cert("KEK"))
                .is_err()
        );
        let pk = AuthVariable::parse(&std::fs::read(d.path().join("PK.auth")).unwrap()).unwrap();
        pk.verify(SecureBootVar::Pk, auth::ATTRIBUTES, &cert("PK"))
            .unwrap();
        assert!(create(d.path(), &opts).is_err());
    }
}
