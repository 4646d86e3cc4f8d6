//! The second reference: composefs-rs 0.9.4 from crates.io, built from
//! `tests/tools/composefs-094` (its own workspace: cargo allows one semver-compatible version of
//! a crate per build, and bootseal pins =0.9.0). Gives the digest and the command-line reading of
//! bootc builds that link 0.9.4.

use super::image_builder::BuiltImage;
use super::run_ok;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The reference binary, built once per test process.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let manifest =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tools/composefs-094/Cargo.toml");
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("composefs-094");
        run_ok(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--quiet", "--locked", "--manifest-path"])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&target),
        );
        target.join("debug/composefs-094-reference")
    })
    .clone()
}

/// composefs-oci 0.9.4's bootable image id of `image` (EROFS `version`).
pub fn digest(image: &BuiltImage, version: u8) -> String {
    let out = run_ok(
        Command::new(binary())
            .arg("digest")
            .arg(image.oci_ref())
            .arg(version.to_string()),
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What composefs-boot 0.9.4 reads from `cmdline`: `{digest, insecure, variant}`, `null`, or
/// `{error}`.
pub fn read_cmdline(cmdline: &str) -> serde_json::Value {
    let out = run_ok(Command::new(binary()).arg("cmdline").arg(cmdline));
    serde_json::from_slice(&out.stdout).unwrap()
}
