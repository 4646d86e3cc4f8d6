//! `bootseal digest` over `docker://` against a real docker-registry equals `digest` over `oci:`
//! for the same image, in every auth/TLS variant; auth and TLS failures are clear errors.

use crate::common;

use common::image_builder::{Compression, E, OciImage, TarLayer};
use common::registry::{Registry, Variant};
use common::{bootseal, scratch, stdout_of};

fn image(dir: &std::path::Path) -> common::image_builder::BuiltImage {
    OciImage::new()
        .layer(
            TarLayer::with([
                E::dir("usr").mtime(1_700_000_000),
                E::dir("usr/bin"),
                E::dir("boot"),
                E::dir("sysroot"),
                E::dir("etc"),
                E::file("usr/bin/tool", vec![b't'; 70_000]).mode(0o755),
            ]),
            Compression::Gzip,
        )
        .layer(
            TarLayer::with([E::file("etc/motd", "hello\n"), E::whiteout("usr/bin/tool")]),
            Compression::Zstd,
        )
        .layer(
            TarLayer::with([E::file("usr/bin/tool2", vec![b'u'; 9000])]),
            Compression::None,
        )
        .write(&dir.join("layout"), "v1")
}

fn check_variant(variant: Variant) {
    let tmp = scratch();
    let built = image(tmp.path());
    let reg = Registry::start(variant);
    reg.push_layout(&built.oci_ref(), "team/os:v1");
    let local = stdout_of(bootseal().arg("digest").arg(built.oci_ref()));
    let remote = stdout_of(
        bootseal()
            .arg("digest")
            .args(reg.bootseal_flags())
            .arg(reg.image("team/os:v1")),
    );
    assert_eq!(remote, local, "{variant:?}");
    assert_eq!(local.trim().len(), 128);
    // By digest too, and V2 agrees across transports.
    // skopeo may re-serialise the manifest, so take the digest of what the registry holds.
    let raw = reg.raw_manifest("team/os:v1").expect("pushed manifest");
    let by_digest = format!(
        "docker://{}/team/os@{}",
        reg.host,
        bootseal::manifest::sha256_digest(&raw)
    );
    let remote_v2 = stdout_of(
        bootseal()
            .args(["digest", "--erofs-version", "2"])
            .args(reg.bootseal_flags())
            .arg(&by_digest),
    );
    let local_v2 = stdout_of(
        bootseal()
            .args(["digest", "--erofs-version", "2"])
            .arg(built.oci_ref()),
    );
    assert_eq!(remote_v2, local_v2);
    assert_ne!(remote_v2, remote);
}

#[test]
fn plain_registry() {
    check_variant(Variant::Plain);
}

#[test]
fn htpasswd_registry_and_wrong_password() {
    check_variant(Variant::Htpasswd);
    let tmp = scratch();
    let built = image(tmp.path());
    let reg = Registry::start(Variant::Htpasswd);
    reg.push_layout(&built.oci_ref(), "team/os:v1");
    let out = bootseal()
        .args(["digest", "--tls-verify=false", "--creds", "testuser:wrong"])
        .arg(reg.image("team/os:v1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Basic credentials over plain HTTP are announced once; the error is the other line.
    let (warnings, errors): (Vec<&str>, Vec<&str>) = stderr
        .lines()
        .partition(|l| l.starts_with("bootseal: warning: sending credentials"));
    assert_eq!(warnings.len(), 1, "{stderr}");
    let err = errors.join("\n");
    assert!(
        err.starts_with(&format!("bootseal: docker://{}/team/os:v1: ", reg.host)),
        "{err}"
    );
    assert!(err.to_lowercase().contains("auth"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn tls_registry_with_ca_without_ca_and_unverified() {
    check_variant(Variant::Tls);
    let tmp = scratch();
    let built = image(tmp.path());
    let reg = Registry::start(Variant::Tls);
    reg.push_layout(&built.oci_ref(), "os:v1");
    let untrusted = bootseal()
        .arg("digest")
        .arg(reg.image("os:v1"))
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
    let err = String::from_utf8_lossy(&untrusted.stderr);
    assert!(err.contains("cannot reach registry"), "{err}");
    assert!(
        err.to_lowercase().contains("certificate"),
        "the cause is named: {err}"
    );
    let unverified = stdout_of(
        bootseal()
            .args(["digest", "--tls-verify=false"])
            .arg(reg.image("os:v1")),
    );
    assert_eq!(
        unverified,
        stdout_of(bootseal().arg("digest").arg(built.oci_ref()))
    );
}

#[test]
fn token_registry() {
    check_variant(Variant::Token);
}

#[test]
fn missing_tag_is_a_clear_error() {
    let reg = Registry::start(Variant::Plain);
    let out = bootseal()
        .args(["digest", "--tls-verify=false"])
        .arg(reg.image("nothing:here"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("bootseal: docker://{}/nothing:here: ", reg.host)),
        "{err}"
    );
}
