//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod image_builder;
pub mod layout_input;
pub mod realistic;
pub mod reference;
pub mod reference_check;

use std::process::Command;

/// Fails the test with a clear message when a required system tool is missing.
pub fn require_tool(name: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "required tool `{name}` is not installed (CI must install it)"
    );
}

/// Our digest of an OCI layout image.
pub fn our_digest(
    image: &image_builder::BuiltImage,
    opts: &bootseal::digest::DigestOptions,
) -> Result<bootseal::digest::DigestReport, bootseal::digest::DigestError> {
    let layers = layout_input::layer_inputs(&image.dir, &image.tag);
    bootseal::digest::compute(&image.oci_ref(), layers, opts)
}
