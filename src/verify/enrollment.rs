//! The enrollment payloads a sealed image carries, as `verify` checks them: per name, whether
//! PK.auth, KEK.auth and db.auth parse and chain, and whether the UKI and the signed boot
//! loaders chain to a certificate that db.auth enrolls.

use super::Check;
use crate::bootc_paths::{SECUREBOOT_KEYS, SECUREBOOT_PAYLOADS};
use crate::efi_keys::Enrollment;

/// The checks of every payload in `captured`, against the UKI and the signed boot loaders
/// (path, bytes). No payload: no checks.
pub(crate) fn checks(
    captured: &crate::tree::CapturedFiles,
    uki: Option<&[u8]>,
    bootloaders: &[(String, Vec<u8>)],
) -> Vec<Check> {
    use std::collections::BTreeMap;
    // name -> (file name, its bytes or why they could not be read)
    type Files = Vec<(String, Result<Vec<u8>, String>)>;
    let mut by_name: BTreeMap<String, Files> = BTreeMap::new();
    for path in captured.matching(SECUREBOOT_PAYLOADS) {
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
    let mut check =
        |name: String, ok: bool, detail: String| checks.push(Check { name, ok, detail });
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
                check(label, false, format!("{SECUREBOOT_KEYS}/{name}: {err}"));
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
                "{SECUREBOOT_KEYS}/{name}/{{PK,KEK,db}}.auth chain PK -> KEK -> db; db: {}",
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
