//! Secure Boot enrollment payloads in the sealed layer (`seal --enroll-keys`): PK.auth,
//! KEK.auth and db.auth under `/usr/lib/bootc/install/secureboot-keys/<name>/`, where
//! `bootc install` picks them up, inside the composefs digest like every other file.

use super::SealOptions;
use crate::bootc_paths::{SECUREBOOT_KEYS, in_layer};
use crate::efi_keys::Enrollment;
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
    let install_dir = in_layer(SECUREBOOT_KEYS);
    for part in format!("{install_dir}/{}", enrollment.name).split('/') {
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
