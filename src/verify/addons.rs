//! The add-ons of a sealed image, as `verify` checks them: each is in the `.extra.d` directory
//! of the image's one UKI or global, carries an acceptable command line, is signed by the
//! certificate (when given), and with all of them, in systemd-stub's order, the kernel's
//! command line still reads as the sealed digest.

use super::Check;
use crate::authenticode;
use crate::bootc_paths::{GLOBAL_ADDON_DIR, GLOBAL_ADDONS, UKI_ADDONS};
use crate::cmdline::{self, Expected};
use crate::uki;

/// `verify`'s checks of a sealed image's add-ons: each is in the `.extra.d` directory of the
/// image's one UKI (`uki_path`) or global, carries an acceptable command line, is signed by
/// `cert` (when given), and with all of them the kernel's command line still reads as the
/// sealed digest. Nothing when the image has no add-ons.
pub(crate) fn checks(
    captured: &crate::tree::CapturedFiles,
    uki_path: &str,
    uki_cmdline: &str,
    cert: Option<&x509_cert::Certificate>,
    expected: Expected<'_>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        checks.push(Check {
            name: name.into(),
            ok,
            detail,
        })
    };
    let own_dir = format!("{uki_path}.extra.d/");
    let mut global = Vec::new();
    let mut per_uki = Vec::new();
    for path in captured
        .matching(GLOBAL_ADDONS)
        .into_iter()
        .chain(captured.matching(UKI_ADDONS))
    {
        let is_global = path.starts_with(GLOBAL_ADDON_DIR);
        if !is_global && !path.starts_with(&own_dir) {
            check(
                "add-on placement",
                false,
                format!("{path} is not in {own_dir}, the UKI's add-on directory: no stub loads it"),
            );
            continue;
        }
        let bytes = match captured.read(path) {
            Ok(b) => b,
            Err(e) => {
                check("add-on readable", false, format!("{path}: {e}"));
                continue;
            }
        };
        let line = match uki::addon_cmdline(&bytes, path)
            .and_then(|l| cmdline::check_addon_cmdline(&l, path).map(|()| l))
        {
            Ok(l) => l,
            Err(e) => {
                check("add-on command line", false, e);
                continue;
            }
        };
        check(
            "add-on command line",
            true,
            format!("{path}: {}", crate::text::escape_controls(&line)),
        );
        if let Some(cert) = cert {
            match authenticode::verify(&bytes, cert) {
                Ok(_) => check("add-on signature", true, path.to_string()),
                Err(e) => check("add-on signature", false, format!("{path}: {e}")),
            }
        }
        let name = path.rsplit('/').next().unwrap_or(path).to_owned();
        if is_global {
            global.push((name, line));
        } else {
            per_uki.push((name, line));
        }
    }
    if global.is_empty() && per_uki.is_empty() {
        return checks;
    }
    global.sort();
    per_uki.sort();
    let lines: Vec<&str> = global
        .iter()
        .chain(&per_uki)
        .map(|(_, l)| l.as_str())
        .collect();
    let effective = cmdline::effective_cmdline(uki_cmdline, &lines);
    match cmdline::check_sealed(&effective, expected) {
        Ok(_) => check(
            "command line with add-ons",
            true,
            crate::text::escape_controls(&effective),
        ),
        Err(e) => check("command line with add-ons", false, e),
    }
    checks
}
