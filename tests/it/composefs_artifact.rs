//! `--composefs-sign artifact`: the composefs metadata referrer of the sealing spec
//! (composefs-oci 0.9.0 `sealing_spec.rs`), pushed after the sealed manifest; in the test
//! registry (distribution 2.8, no referrers API) through the referrers tag schema, in OCI
//! layouts as an `index.json` entry. Its signatures are `fsverity sign`'s bytes, `verify`
//! discovers it, and `sync` neither duplicates nor re-uploads it.

use crate::common;
use crate::composefs_meta::{fsverity_sign, verify_checks_with};

use common::image_builder::{BuiltImage, E};
use common::registry::{Registry, Variant};
use common::sync_repo::{
    access_log_len, manifest_digest, outcomes, push_bootc, sync_cmd, writes_since,
};
use common::{keypair, require_tool, run_ok, scratch};
use serde_json::Value;
use std::process::Command;

const ARTIFACT_TYPE: &str = "application/vnd.composefs.metadata.v1";
const SIG_TYPE: &str = "application/vnd.composefs.signature.v1+pkcs7";

fn raw(reg: &Registry, repo_ref: &str) -> Option<Vec<u8>> {
    reg.raw_manifest(repo_ref)
}

fn blob(reg: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    run_ok(Command::new("curl").args([
        "-sf",
        &format!("http://{}/v2/{repo}/blobs/{digest}", reg.host),
    ]))
    .stdout
}

/// The referrers index the tag schema keeps for `subject` in `repo`.
fn referrers_index(reg: &Registry, repo: &str, subject: &str) -> Option<Value> {
    raw(reg, &format!("{repo}:{}", subject.replacen(':', "-", 1)))
        .map(|b| serde_json::from_slice(&b).unwrap())
}

#[test]
fn artifact_in_registry_by_tag_schema_verified_and_synced_idempotently() {
    require_tool("fsverity");
    require_tool("curl");
    let tmp = scratch();
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Plain);
    push_bootc(&reg, tmp.path(), "os/base:1", Vec::new());
    let sync = |extra: &[&str]| {
        let mut args = vec!["--composefs-sign", "artifact"];
        args.extend(extra);
        let out = sync_cmd(&reg.image("os/base"), &reg.image("os/sealed"), &keys, &args)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outcomes(&out)
    };
    assert!(sync(&[])["1"].starts_with("sealed"));
    let subject = manifest_digest(&reg, "os/sealed:1");
    let subject_bytes = raw(&reg, "os/sealed:1").unwrap();

    // The tag schema's index lists the artifact once; the artifact has the spec's shape.
    let index = referrers_index(&reg, "os/sealed", &subject).expect("referrers tag");
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["artifactType"], ARTIFACT_TYPE);
    let artifact_digest = entries[0]["digest"].as_str().unwrap().to_owned();
    let a: Value =
        serde_json::from_slice(&raw(&reg, &format!("os/sealed@{artifact_digest}")).unwrap())
            .unwrap();
    assert_eq!(a["artifactType"], ARTIFACT_TYPE);
    assert_eq!(
        a["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(
        a["config"]["digest"],
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(a["subject"]["digest"], subject.as_str());
    assert_eq!(a["subject"]["size"], subject_bytes.len());
    let layers = a["layers"].as_array().unwrap();
    let keys_in_order: Vec<String> = layers
        .iter()
        .map(|l| {
            assert_eq!(l["mediaType"], SIG_TYPE);
            l["annotations"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(
        keys_in_order,
        [
            "composefs.manifest.fsverity-sha512-12",
            "composefs.config.fsverity-sha512-12",
            "composefs.merged.erofs.v1.fsverity-sha512-12",
            "composefs.merged.bootable.erofs.v1.fsverity-sha512-12",
        ]
    );
    // The manifest signature is `fsverity sign` of the sealed manifest's bytes as stored.
    let manifest_file = tmp.path().join("sealed-manifest.json");
    std::fs::write(&manifest_file, &subject_bytes).unwrap();
    let sig = blob(&reg, "os/sealed", layers[0]["digest"].as_str().unwrap());
    assert_eq!(sig, fsverity_sign(&manifest_file, &keys));
    let m: Value = serde_json::from_slice(&subject_bytes).unwrap();
    assert!(
        !m["annotations"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.ends_with(".sig")),
        "artifact mode leaves the inline annotations unsigned"
    );

    // verify discovers it through the tag schema and checks every signature.
    let image = reg.image("os/sealed:1");
    let flags = ["--tls-verify=false"];
    let (ok, checks) = verify_checks_with(&image, &keys.cert, &flags);
    assert!(ok, "{checks:?}");
    for name in [
        "composefs artifact",
        "composefs manifest signature",
        "composefs config signature",
        "composefs merged signature",
        "composefs merged.bootable signature",
    ] {
        assert!(
            checks.iter().any(|c| c.0 == name && c.1),
            "{name}: {checks:?}"
        );
    }
    assert!(checks.iter().any(|c| c.2.contains("referrers tag sha256-")));

    // A rerun writes nothing: no upload, no duplicate referrer.
    let mark = access_log_len(&reg);
    assert!(sync(&[])["1"].starts_with("unchanged"));
    assert_eq!(writes_since(&reg, mark), Vec::<String>::new());
    let again = referrers_index(&reg, "os/sealed", &subject).unwrap();
    assert_eq!(again["manifests"].as_array().unwrap().len(), 1);

    // A moved tag gets a new artifact for its new manifest.
    push_bootc(
        &reg,
        tmp.path(),
        "os/base:1",
        vec![E::file("etc/moved", "yes")],
    );
    assert!(sync(&[])["1"].starts_with("sealed"));
    let moved = manifest_digest(&reg, "os/sealed:1");
    assert_ne!(moved, subject);
    let index = referrers_index(&reg, "os/sealed", &moved).expect("new referrers tag");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_ne!(index["manifests"][0]["digest"], artifact_digest.as_str());
    let (ok, checks) = verify_checks_with(&image, &keys.cert, &flags);
    assert!(ok, "{checks:?}");

    // Mirrored into an OCI layout: the artifact is an index.json entry; verify finds it
    // there; a rerun adds nothing.
    let layout = tmp.path().join("mirror");
    let to = format!("oci:{}", layout.display());
    let mirror = || {
        let out = sync_cmd(
            &reg.image("os/base"),
            &to,
            &keys,
            &["--composefs-sign", "artifact"],
        )
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outcomes(&out)
    };
    assert!(mirror()["1"].starts_with("sealed"));
    let index_json = || -> Value {
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap()
    };
    let artifacts = |v: &Value| {
        v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["artifactType"] == ARTIFACT_TYPE)
            .count()
    };
    assert_eq!(artifacts(&index_json()), 1);
    let sealed = BuiltImage::load(&layout, "1");
    assert_eq!(
        sealed.manifest_digest, moved,
        "the mirror is the same sealed image"
    );
    let (ok, checks) = verify_checks_with(&format!("{to}:1"), &keys.cert, &[]);
    assert!(ok, "{checks:?}");
    assert!(
        checks
            .iter()
            .any(|c| c.0 == "composefs artifact" && c.2.contains("index.json"))
    );
    assert!(mirror()["1"].starts_with("unchanged"));
    assert_eq!(artifacts(&index_json()), 1);
}

/// composefs-rs agrees: composefs-oci 0.9.0 pulls our artifact from the layout (as an
/// artifact, untouched), keeps it in its referrer index for our image (`add_referrer`,
/// `list_referrers`), and serves its signature blobs back byte for byte. composefs-oci's pull
/// does not look for referrers itself (it takes one reference), so the artifact is pulled by a
/// tag given to it here in the layout's index.json; its layout import also selects entries by
/// platform (ocidir `open_image_this_platform`) and a referrer's entry has none, so the entry
/// is given the subject's `linux/amd64` too.
#[test]
fn composefs_oci_stores_our_artifact_as_a_referrer_of_our_image() {
    use composefs_oci::oci_image::{add_referrer, list_referrers};
    let tmp = scratch();
    let built = common::bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    run_ok(
        common::seal_cmd(
            &built.image.oci_ref(),
            &format!("oci:{}:sealed", out.display()),
            &keys,
        )
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["--composefs-sign", "artifact"]),
    );
    let index_path = out.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["artifactType"] == ARTIFACT_TYPE)
        .expect("the artifact's index.json entry");
    let artifact_digest = entry["digest"].as_str().unwrap().to_owned();
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "artifact"});
    entry["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let sealed = BuiltImage::load(&out, "sealed");
    let pulled = common::reference::pull(&sealed).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (artifact, _) = rt
        .block_on(composefs_oci::pull_image(
            &pulled.repo,
            &format!("oci:{}:artifact", out.display()),
            None,
            None,
            std::sync::Arc::new(composefs_oci::NullReporter),
        ))
        .unwrap();
    assert_eq!(artifact.manifest_digest.to_string(), artifact_digest);
    let subject: composefs_oci::OciDigest = sealed.manifest_digest.parse().unwrap();
    add_referrer(&pulled.repo, &subject, &artifact.manifest_digest).unwrap();
    let listed = list_referrers(&pulled.repo, &subject).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0.to_string(), artifact_digest);

    let a: Value = serde_json::from_slice(
        &std::fs::read(crate::composefs_meta::blob_path(&out, &artifact_digest)).unwrap(),
    )
    .unwrap();
    assert_eq!(a["subject"]["digest"], sealed.manifest_digest.as_str());
    for layer in a["layers"].as_array().unwrap() {
        let d = layer["digest"].as_str().unwrap();
        // Non-tar layers are stored as objects behind an `oci-layer-<digest>` splitstream
        // (composefs-oci 0.9.0 `oci_layout::import_layer_from_file`).
        let mut theirs = Vec::new();
        pulled
            .repo
            .open_stream(&format!("oci-layer-{d}"), None, None)
            .unwrap()
            .cat(&pulled.repo, &mut theirs)
            .unwrap();
        let ours = std::fs::read(crate::composefs_meta::blob_path(&out, d)).unwrap();
        assert_eq!(theirs, ours, "{d}");
    }
}

/// A multi-platform index: the sealed platform's manifest gets its artifact (its subject is
/// that manifest, written before the index is tagged); the platform left as it was gets none.
#[test]
fn a_sealed_index_platform_gets_its_own_artifact() {
    let tmp = scratch();
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Plain);
    common::sync_repo::push_multi(&reg, tmp.path(), "os/multi:1");
    run_ok(
        common::seal_cmd(
            &reg.image("os/multi:1"),
            &reg.image("os/multi-sealed:1"),
            &keys,
        )
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args([
            "--quiet",
            "--tls-verify=false",
            "--composefs-sign",
            "artifact",
        ]),
    );
    let index: Value = serde_json::from_slice(&raw(&reg, "os/multi-sealed:1").unwrap()).unwrap();
    let by_arch = |arch: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let amd = referrers_index(&reg, "os/multi-sealed", &by_arch("amd64")).expect("amd64 referrers");
    assert_eq!(amd["manifests"].as_array().unwrap().len(), 1);
    assert!(referrers_index(&reg, "os/multi-sealed", &by_arch("arm64")).is_none());
    let (ok, checks) = verify_checks_with(
        &reg.image("os/multi-sealed:1"),
        &keys.cert,
        &["--tls-verify=false"],
    );
    assert!(ok, "{checks:?}");
    assert!(
        checks
            .iter()
            .any(|c| c.0 == "composefs manifest signature" && c.1)
    );
}

/// A registry that serves the OCI 1.1 referrers API (simulated in front of the test
/// registry, which does not: the fault proxy answers `GET /v2/…/referrers/…`): the artifact is
/// pushed by digest and found through the API, no `sha256-<hex>` tag is written, and `verify`
/// finds it through the API with the `artifactType` filter.
#[test]
fn a_registry_serving_the_referrers_api_gets_no_tag_schema() {
    use common::fault_proxy::{Fault, FaultProxy, Rule};
    let tmp = scratch();
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Plain);
    push_bootc(&reg, tmp.path(), "os/base:1", Vec::new());
    let proxy = FaultProxy::start(&reg.host);
    let index = |manifests: Value| Fault::Respond {
        status: 200,
        content_type: "application/vnd.oci.image.index.v1+json".into(),
        body: serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }))
        .unwrap(),
    };
    proxy.set_rules(vec![Rule::new(
        "GET",
        "/referrers/",
        index(serde_json::json!([])),
        usize::MAX,
    )]);
    let out = run_ok(
        common::seal_cmd(
            &format!("docker://{}/os/base:1", proxy.host),
            &format!("docker://{}/os/sealed:1", proxy.host),
            &keys,
        )
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["--json", "--quiet", "--tls-verify=false"])
        .args(["--composefs-sign", "artifact"]),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let how = report["platforms"][0]["composefs_artifact"]
        .as_str()
        .unwrap();
    assert!(how.ends_with("(referrers API)"), "{how}");
    assert!(!proxy.injected().is_empty());
    let subject = manifest_digest(&reg, "os/sealed:1");
    assert!(
        referrers_index(&reg, "os/sealed", &subject).is_none(),
        "no tag schema where the API is served"
    );
    let artifact = how.split_whitespace().next().unwrap().to_owned();
    let size = raw(&reg, &format!("os/sealed@{artifact}")).unwrap().len();
    proxy.set_rules(vec![Rule::new(
        "GET",
        "/referrers/",
        index(serde_json::json!([{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": artifact, "size": size, "artifactType": ARTIFACT_TYPE,
        }])),
        usize::MAX,
    )]);
    proxy.clear_log();
    let (ok, checks) = verify_checks_with(
        &format!("docker://{}/os/sealed:1", proxy.host),
        &keys.cert,
        &["--tls-verify=false"],
    );
    assert!(ok, "{checks:?}");
    assert!(
        checks
            .iter()
            .any(|c| c.0 == "composefs artifact" && c.2.contains("(referrers API)")),
        "{checks:?}"
    );
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.starts_with("GET ")
                && r.contains(&format!("/referrers/{subject}?artifactType="))),
        "{:?}",
        proxy.requests()
    );
}

/// An `oci-archive:` destination keeps the artifact in its index.json, where `verify` finds it.
#[test]
fn an_oci_archive_carries_the_artifact() {
    let tmp = scratch();
    let built = common::bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let archive = format!("oci-archive:{}:s", tmp.path().join("sealed.tar").display());
    run_ok(
        common::seal_cmd(&built.image.oci_ref(), &archive, &keys)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["--composefs-sign", "artifact"]),
    );
    let (ok, checks) = verify_checks_with(&archive, &keys.cert, &[]);
    assert!(ok, "{checks:?}");
    assert!(
        checks
            .iter()
            .any(|c| c.0 == "composefs artifact" && c.1 && c.2.contains("(index.json)")),
        "{checks:?}"
    );
    assert!(
        checks
            .iter()
            .any(|c| c.0 == "composefs manifest signature" && c.1)
    );
}
