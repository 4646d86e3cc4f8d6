//! `bootseal seal` registry -> registry against a real docker-registry, read back with skopeo:
//! the pulled image's composefs digest (composefs-oci's own pipeline) is the UKI's composefs=,
//! sbverify accepts the UKI and systemd-boot, only new bytes are uploaded, runs are
//! reproducible, and a killed push leaves the destination tag where it was.

use crate::common;

use common::image_builder::BuiltImage;
use common::reference::reference_digest;
use common::registry::{Registry, Variant};
use common::{bootc_image, bootseal, keypair, run_ok, scratch, stdout_of};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// `seal --json --quiet` from one repository of `reg` to another, with its TLS/credential flags.
fn registry_seal_cmd(reg: &Registry, from: &str, to: &str, keys: &common::KeyPair) -> Command {
    let mut c = common::seal_cmd(&reg.image(from), &reg.image(to), keys);
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["--json", "--quiet"])
        .args(
            reg.bootseal_flags()
                .iter()
                .map(|f| f.replace("--creds", "--src-creds")),
        )
        .args(
            reg.bootseal_flags()
                .iter()
                .filter(|f| f.starts_with("--creds"))
                .map(|f| f.replace("--creds", "--dest-creds")),
        );
    c
}

fn top_layer_file(image: &BuiltImage, dir: &Path, member: &str) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    let top = image.layers.last().unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&top.path)
            .arg("-C")
            .arg(dir)
            .arg(member),
    );
    std::fs::read(dir.join(member)).unwrap()
}

#[test]
fn registry_to_registry_end_to_end() {
    common::require_tool("sbverify");
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Plain);
    reg.push_layout(&built.image.oci_ref(), "os/base:1");

    let report: Value = serde_json::from_slice(
        &run_ok(&mut registry_seal_cmd(
            &reg,
            "os/base:1",
            "os/sealed:1",
            &keys,
        ))
        .stdout,
    )
    .unwrap();
    let digest = report["digest"].as_str().unwrap();
    assert_eq!(
        report["reference"],
        format!("docker://{}/os/sealed@{digest}", reg.host)
    );

    // Read back with skopeo and check with independent tools.
    let pulled_dir = tmp.path().join("pulled");
    reg.pull_layout("os/sealed:1", &pulled_dir, "p");
    let pulled = BuiltImage::load(&pulled_dir, "p");
    let raw = reg.raw_manifest("os/sealed:1").unwrap();
    assert_eq!(
        bootseal::manifest::sha256_digest(&raw),
        digest,
        "the tag names what seal printed"
    );
    let kver = &built.kver;
    let x = tmp.path().join("x");
    let uki = top_layer_file(&pulled, &x, &format!("boot/EFI/Linux/{kver}.efi"));
    let uki_path = x.join(format!("boot/EFI/Linux/{kver}.efi"));
    let cmdline =
        String::from_utf8(common::objcopy_section(&uki_path, ".cmdline", tmp.path())).unwrap();
    let reference = reference_digest(&pulled, 1);
    assert_eq!(
        cmdline,
        format!("composefs={reference} rw console=ttyS0 panic=-1")
    );
    assert!(!uki.is_empty());
    let sd = "usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed";
    top_layer_file(&pulled, &x, sd);
    for f in [uki_path.clone(), x.join(sd)] {
        run_ok(
            Command::new("sbverify")
                .arg("--cert")
                .arg(&keys.cert)
                .arg(&f),
        );
    }

    // Base layers existed in the registry (mounted across repositories): only the new layer,
    // the config and the manifest were uploaded.
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    let new_layer = manifest["layers"].as_array().unwrap().last().unwrap()["size"]
        .as_u64()
        .unwrap();
    let config = manifest["config"]["size"].as_u64().unwrap();
    assert_eq!(
        report["bytes_written"].as_u64().unwrap(),
        new_layer + config + raw.len() as u64
    );
    assert!(
        reg.access_log().contains("mount="),
        "base layers were mounted"
    );

    // Reproducible: a second run gives the same manifest digest.
    let again: Value = serde_json::from_slice(
        &run_ok(&mut registry_seal_cmd(
            &reg,
            "os/base:1",
            "os/sealed:2",
            &keys,
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(again["digest"], report["digest"]);

    // bootseal verify over the registry agrees.
    let verdict = stdout_of(
        bootseal()
            .arg("verify")
            .args(reg.bootseal_flags())
            .arg("--cert")
            .arg(&keys.cert)
            .arg(reg.image("os/sealed:1")),
    );
    assert!(verdict.contains("verdict: sealed and valid"), "{verdict}");
}

#[test]
fn killed_push_leaves_the_tag_unchanged() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let src = Registry::start(Variant::Plain);
    let dst = Registry::start(Variant::Plain);
    src.push_layout(&built.image.oci_ref(), "os/base:1");
    dst.push_layout(&built.image.oci_ref(), "os/target:1");
    let before = dst.raw_manifest("os/target:1").unwrap();
    let mut cmd = bootseal();
    cmd.args([
        "seal",
        "--quiet",
        "--tls-verify=false",
        "--allow-section-overlap",
        "--from",
    ])
    .arg(src.image("os/base:1"))
    .arg("--to")
    .arg(format!("docker://{}/os/other:1", dst.host))
    .arg("--key")
    .arg(&keys.key)
    .arg("--cert")
    .arg(&keys.cert);
    // Seal into a fresh repository (every blob is copied across registries), and kill the
    // process as soon as the first upload starts.
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !dst.access_log().contains("/os/other/blobs/uploads") {
        assert!(start.elapsed().as_secs() < 60, "no upload started");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        dst.raw_manifest("os/other:1").is_none(),
        "no tag was created by the killed run"
    );
    assert_eq!(
        dst.raw_manifest("os/target:1").unwrap(),
        before,
        "other tags untouched"
    );

    // A refused media type: Docker schema2 cannot carry zstd; nothing is written.
    let out = bootseal()
        .args([
            "seal",
            "--tls-verify=false",
            "--allow-section-overlap",
            "--compression",
            "zstd",
            "--from",
        ])
        .arg(format!("oci:{}:base", built.image.dir.display()))
        .arg("--to")
        .arg(format!("docker://{}/os/zstd:1", dst.host))
        .arg("--key")
        .arg(&keys.key)
        .arg("--cert")
        .arg(&keys.cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "OCI manifests take zstd layers: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zstd_manifest: Value =
        serde_json::from_slice(&dst.raw_manifest("os/zstd:1").unwrap()).unwrap();
    assert_eq!(
        zstd_manifest["layers"].as_array().unwrap().last().unwrap()["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
}

#[test]
fn errors_name_what_is_wrong_and_push_nothing() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let other = keypair(tmp.path(), "other", 2048);
    let reg = Registry::start(Variant::Htpasswd);
    reg.push_layout(&built.image.oci_ref(), "os/base:1");
    let run = |extra: &[&str], key: &Path, cert: &Path| {
        let out = bootseal()
            .args([
                "seal",
                "--tls-verify=false",
                "--allow-section-overlap",
                "--from",
            ])
            .arg(reg.image("os/base:1"))
            .arg("--to")
            .arg(reg.image("os/bad:1"))
            .args(extra)
            .arg("--key")
            .arg(key)
            .arg("--cert")
            .arg(cert)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(reg.raw_manifest("os/bad:1").is_none());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let creds = [
        "--src-creds",
        "testuser:testpass",
        "--dest-creds",
        "testuser:testpass",
    ];
    let mismatch = run(&creds, &keys.key, &other.cert);
    assert!(mismatch.contains("does not match"), "{mismatch}");
    let auth = run(
        &[
            "--src-creds",
            "testuser:nope",
            "--dest-creds",
            "testuser:testpass",
        ],
        &keys.key,
        &keys.cert,
    );
    assert!(
        auth.contains(&format!("docker://{}/os/base:1", reg.host))
            && auth.to_lowercase().contains("auth"),
        "{auth}"
    );
    let missing = run(&creds, &tmp.path().join("no.key"), &keys.cert);
    assert!(missing.contains("no.key"), "{missing}");
}

/// The sealed UKI read back from the registry boots under OVMF with Secure Boot enforced and
/// the kernel reports the composefs= digest composefs-oci computes for the pulled image.
#[test]
fn sealed_uki_from_registry_boots_under_secure_boot() {
    use common::secureboot::{DB_CERT, DB_KEY, Verdict, boot};
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let reg = Registry::start(Variant::Plain);
    reg.push_layout(&built.image.oci_ref(), "os/base:1");
    run_ok(
        bootseal()
            .env("SNAKEOIL_PASS", "snakeoil")
            .args([
                "seal",
                "--quiet",
                "--tls-verify=false",
                "--allow-section-overlap",
                "--from",
            ])
            .arg(reg.image("os/base:1"))
            .arg("--to")
            .arg(reg.image("os/sealed:boot"))
            .args([
                "--key",
                DB_KEY,
                "--cert",
                DB_CERT,
                "--key-pass-env",
                "SNAKEOIL_PASS",
            ]),
    );
    let pulled_dir = tmp.path().join("pulled");
    reg.pull_layout("os/sealed:boot", &pulled_dir, "p");
    let pulled = BuiltImage::load(&pulled_dir, "p");
    let member = format!("boot/EFI/Linux/{}.efi", built.kver);
    let x = tmp.path().join("x");
    top_layer_file(&pulled, &x, &member);
    let reference = reference_digest(&pulled, 1);
    match boot(&x.join(&member)) {
        Verdict::Booted(line) => assert!(
            line.contains(&format!("composefs={reference} rw console=ttyS0")),
            "{line}"
        ),
        v => panic!("the sealed UKI did not boot: {v:?}"),
    }
}

/// On a bearer-token registry, base layers are mounted across repositories with a token that
/// covers both (the registry answers 201), so only the new blobs are uploaded.
#[test]
fn token_registry_mounts_base_layers_across_repositories() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Token);
    reg.push_layout(&built.image.oci_ref(), "team/base:1");
    let report: Value = serde_json::from_slice(
        &run_ok(&mut registry_seal_cmd(
            &reg,
            "team/base:1",
            "mirror/sealed:1",
            &keys,
        ))
        .stdout,
    )
    .unwrap();
    let log = reg.access_log();
    let mounts: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("\"POST /v2/mirror/sealed/blobs/uploads/?mount=")
                && l.contains("from=team%2Fbase")
        })
        .collect();
    assert_eq!(mounts.len(), built.image.layers.len(), "{log}");
    assert!(mounts.iter().all(|l| l.contains("\" 201 ")), "{mounts:#?}");
    let tokens = std::fs::read_to_string(reg.token_log.as_ref().unwrap()).unwrap();
    assert!(
        tokens
            .lines()
            .any(|l| l.contains("repository:mirror/sealed:pull,push")
                && l.contains("repository:team/base:pull")),
        "{tokens}"
    );
    let raw = reg.raw_manifest("mirror/sealed:1").unwrap();
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    let new_layer = manifest["layers"].as_array().unwrap().last().unwrap()["size"]
        .as_u64()
        .unwrap();
    assert_eq!(
        report["bytes_written"].as_u64().unwrap(),
        new_layer + manifest["config"]["size"].as_u64().unwrap() + raw.len() as u64
    );
}

/// A Docker schema2 image stays Docker schema2; it cannot carry a zstd layer, which is refused
/// before anything is written.
#[test]
fn docker_schema2_family_is_kept_and_zstd_refused() {
    let tmp = scratch();
    // Docker schema2 has no zstd layers: the same image with gzip everywhere.
    let (mut img, _, _, _) = bootc_image::layers(tmp.path(), Vec::new());
    for l in &mut img.layers {
        l.compression = common::image_builder::Compression::Gzip;
    }
    let image = img.write(&tmp.path().join("layout"), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Plain);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--format", "v2s2", "--dest-tls-verify=false"])
            .arg(image.oci_ref())
            .arg(reg.image("os/docker:1")),
    );
    let zstd = bootseal()
        .args([
            "seal",
            "--tls-verify=false",
            "--allow-section-overlap",
            "--compression",
            "zstd",
            "--from",
        ])
        .arg(reg.image("os/docker:1"))
        .arg("--to")
        .arg(reg.image("os/docker-sealed:1"))
        .arg("--key")
        .arg(&keys.key)
        .arg("--cert")
        .arg(&keys.cert)
        .output()
        .unwrap();
    assert!(!zstd.status.success());
    assert!(
        String::from_utf8_lossy(&zstd.stderr)
            .contains("Docker schema2 manifest cannot carry a zstd layer")
    );
    assert!(reg.raw_manifest("os/docker-sealed:1").is_none());
    run_ok(&mut registry_seal_cmd(
        &reg,
        "os/docker:1",
        "os/docker-sealed:1",
        &keys,
    ));
    let m: Value =
        serde_json::from_slice(&reg.raw_manifest("os/docker-sealed:1").unwrap()).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["layers"].as_array().unwrap().last().unwrap()["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let verdict = stdout_of(
        bootseal()
            .args(["verify", "--tls-verify=false"])
            .arg("--cert")
            .arg(&keys.cert)
            .arg(reg.image("os/docker-sealed:1")),
    );
    assert!(verdict.contains("verdict: sealed and valid"), "{verdict}");
}
