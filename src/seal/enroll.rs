//! Secure Boot enrollment payloads in the sealed layer (`seal --enroll-keys`): PK.auth,
//! KEK.auth and db.auth under `/usr/lib/bootc/install/secureboot-keys/<name>/`, where
//! `bootc install` picks them up, inside the composefs digest like every other file.

use super::SealOptions;
use crate::efi_keys::Enrollment;
use crate::efi_keys::enrollment::INSTALL_DIR;
use crate::layer_writer::LayerEntry;
use std::ffi::OsStr;
use std::sync::Arc;

/// Layer entries for `enrollment`: the directories the base lacks (a tar entry for an existing
/// directory would replace its metadata), then the three files.
pub fn layer_entries(
    fs: &composefs::tree::FileSystem<crate::tree::ObjectId>,
    enrollment: &Enrollment,
) -> Vec<LayerEntry> {
    let mut entries = Vec::new();
    let mut dir = String::new();
    for part in format!("{INSTALL_DIR}/{}", enrollment.name).split('/') {
        if !dir.is_empty() {
            dir.push('/');
        }
        dir.push_str(part);
        let exists = matches!(fs.root.get_directory_opt(OsStr::new(&dir)), Ok(Some(_)));
        if !exists {
            entries.push(LayerEntry::Directory {
                path: dir.clone(),
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime_nsec: 0,
            });
        }
    }
    for (path, bytes) in enrollment.layer_paths() {
        entries.push(LayerEntry::File {
            path,
            mode: 0o644,
            uid: 0,
            gid: 0,
            content: Arc::from(bytes),
        });
    }
    entries
}

/// Refuse an enrollment whose db would not boot this image: the certificate the UKI and
/// systemd-boot are signed with (the signer's, else `--cert`) must be in db or issued by a db
/// certificate. Without any certificate (external signing) there is nothing to compare.
pub fn check_trusted(enrollment: &Enrollment, opts: &SealOptions) -> Result<(), String> {
    let cert = match (&opts.signer, &opts.cert) {
        (Some(s), _) => s.certificate(),
        (None, Some(c)) => c,
        (None, None) => return Ok(()),
    };
    match enrollment.trusts(cert) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "--enroll-keys: db.auth does not enroll the signing certificate {} (nor its issuer); \
             the sealed image would not boot on a machine enrolled with it",
            cert.tbs_certificate.subject
        )),
        Err(e) => Err(format!("--enroll-keys: {e}")),
    }
}

/// Where `verify` looks for enrollment payloads (absolute, as captured).
pub const PAYLOADS: &str = "/usr/lib/bootc/install/secureboot-keys/*/*.auth";

/// `verify`'s view of the enrollment payloads an image carries: per name, whether PK.auth,
/// KEK.auth and db.auth parse and chain, and whether the UKI and the signed boot loaders
/// (path, bytes) chain to a certificate that db.auth enrolls. No payload: no checks.
pub fn verify_checks(
    captured: &crate::tree::CapturedFiles,
    uki: Option<&[u8]>,
    bootloaders: &[(String, Vec<u8>)],
) -> Vec<super::policy::Check> {
    use std::collections::BTreeMap;
    // name -> (file name, its bytes or why they could not be read)
    type Files = Vec<(String, Result<Vec<u8>, String>)>;
    let mut by_name: BTreeMap<String, Files> = BTreeMap::new();
    for path in captured.matching(PAYLOADS) {
        let mut parts = path.rsplitn(3, '/');
        let (Some(file), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        by_name
            .entry(name.to_string())
            .or_default()
            .push((file.to_string(), captured.read(path)));
    }
    let mut checks = Vec::new();
    let mut check = |name: String, ok: bool, detail: String| {
        checks.push(super::policy::Check { name, ok, detail })
    };
    for (name, files) in by_name {
        let label = format!("enrollment payload {name}");
        let mut given = Vec::new();
        for (f, r) in files {
            match r {
                Ok(b) => given.push((f, b)),
                Err(e) => check(label.clone(), false, e),
            }
        }
        let e = match Enrollment::from_files(&name, given) {
            Ok(e) => e,
            Err(err) => {
                check(label, false, format!("{INSTALL_DIR}/{name}: {err}"));
                continue;
            }
        };
        let db = match e.db_certificates() {
            Ok(db) => db,
            Err(err) => {
                check(label, false, err.to_string());
                continue;
            }
        };
        let subjects: Vec<String> = db
            .iter()
            .map(|c| c.tbs_certificate.subject.to_string())
            .collect();
        check(
            label,
            true,
            format!(
                "/{INSTALL_DIR}/{name}/{{PK,KEK,db}}.auth chain PK -> KEK -> db; db: {}",
                subjects.join("; ")
            ),
        );
        let chains = |bytes: &[u8]| {
            db.iter()
                .any(|c| crate::authenticode::verify(bytes, c).is_ok())
        };
        if let Some(uki) = uki {
            let ok = chains(uki);
            check(
                format!("UKI signature chains to db of {name}"),
                ok,
                if ok {
                    "a machine enrolled from this payload boots the UKI".into()
                } else {
                    "no UKI signature chains to a db.auth certificate: this payload would \
                     lock the image out"
                        .into()
                },
            );
        }
        for (path, bytes) in bootloaders {
            let ok = chains(bytes);
            check(
                format!("bootloader signature chains to db of {name}"),
                ok,
                path.clone(),
            );
        }
    }
    checks
}
