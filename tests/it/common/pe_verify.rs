//! The independent PE signature verifiers (sbverify, osslsigncode, pesign) run on one image.

use super::{bootseal, pesign_hash, require_tool, run_ok, stdout_of};
use std::path::Path;
use std::process::Command;

/// sbverify, osslsigncode and pesign accept `signed` for `cert` (common name `cn`), pesign's
/// image digest is ours, and `bootseal verify-pe` agrees.
pub fn check_with_tools(signed: &Path, cert: &Path, cn: &str) {
    require_tool("sbverify");
    require_tool("osslsigncode");
    require_tool("pesign");
    run_ok(Command::new("sbverify").arg("--cert").arg(cert).arg(signed));
    let o = stdout_of(
        Command::new("osslsigncode")
            .arg("verify")
            .arg("-CAfile")
            .arg(cert)
            .arg("-in")
            .arg(signed),
    );
    assert!(
        o.contains("Signature verification: ok"),
        "osslsigncode: {o}"
    );
    // osslsigncode recomputes the PE checksum: it prints one "PE checksum" line when the
    // stored value is right, and "Current"/"Calculated … MISMATCH" lines when it is not.
    assert!(
        o.lines().any(|l| l.starts_with("PE checksum")),
        "PE checksum: {o}"
    );
    assert!(!o.contains("MISMATCH"), "PE checksum: {o}");
    let p = stdout_of(Command::new("pesign").arg("-S").arg("-i").arg(signed));
    assert!(
        p.contains(&format!("The signer's common name is {}", cn)),
        "pesign -S: {p}"
    );
    let inspect = stdout_of(bootseal().arg("inspect").arg("--json").arg(signed));
    let j: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(j["image_digest"].as_str().unwrap(), pesign_hash(signed));
    assert_eq!(j["signatures"][0]["valid"], true);
    run_ok(
        bootseal()
            .arg("verify-pe")
            .arg(signed)
            .arg("--cert")
            .arg(cert),
    );
}
