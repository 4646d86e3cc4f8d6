//! Sealing an image index: the selected platform is resealed, the others keep their digests
//! and are copied whole, and the new index names both.

use crate::common;

use common::image_builder::write_blob;
use common::{bootc_image, bootseal, keypair, run_ok, scratch, seal_cmd, stdout_of};
use serde_json::{Value, json};

#[test]
fn index_reseals_selected_platform_and_keeps_the_others() {
    let tmp = scratch();
    let dir = tmp.path().join("layout");
    let (amd, _, _, _) = bootc_image::layers(tmp.path(), Vec::new());
    let amd = amd.write(&dir, "amd64");
    let (mut arm, _, _, _) =
        bootc_image::layers(tmp.path(), vec![common::image_builder::E::dir("opt")]);
    arm.architecture = "arm64".into();
    let arm = arm.write(&dir, "arm64");
    let entry = |digest: &str, arch: &str| {
        let size = std::fs::metadata(
            dir.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
        .len();
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
               "platform": {"os": "linux", "architecture": arch}})
    };
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&amd.manifest_digest, "amd64"), entry(&arm.manifest_digest, "arm64")]});
    let (index_digest, index_size) = write_blob(&dir, &serde_json::to_vec(&index).unwrap());
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index_size,
            "annotations": {"org.opencontainers.image.ref.name": "multi"}}]})).unwrap(),
    )
    .unwrap();

    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    run_ok(
        seal_cmd(
            &format!("oci:{}:multi", dir.display()),
            &format!("oci:{}:sealed", out.display()),
            &keys,
        )
        .args(["--platform", "linux/amd64"]),
    );
    let top: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let idx_digest = top["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let new_index: Value =
        serde_json::from_slice(&std::fs::read(out.join("blobs/sha256").join(idx_digest)).unwrap())
            .unwrap();
    let entries = new_index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_ne!(
        entries[0]["digest"],
        amd.manifest_digest.as_str(),
        "amd64 was resealed"
    );
    assert_eq!(entries[0]["platform"]["architecture"], "amd64");
    assert_eq!(
        entries[1]["digest"],
        arm.manifest_digest.as_str(),
        "arm64 keeps its digest"
    );
    for l in &arm.layers {
        assert!(
            out.join("blobs/sha256")
                .join(l.digest.trim_start_matches("sha256:"))
                .is_file()
        );
    }
    // The sealed platform verifies; the untouched one is still unsealed.
    let verdict = stdout_of(
        bootseal()
            .args(["verify", "--platform", "linux/amd64"])
            .arg(format!("oci:{}:sealed", out.display()))
            .arg("--cert")
            .arg(&keys.cert),
    );
    assert!(verdict.contains("verdict: sealed and valid"), "{verdict}");
    let arm_verify = bootseal()
        .args(["verify", "--platform", "linux/arm64"])
        .arg(format!("oci:{}:sealed", out.display()))
        .output()
        .unwrap();
    assert!(!arm_verify.status.success());

    // A platform the index lacks is refused by name.
    let missing = seal_cmd(
        &format!("oci:{}:multi", dir.display()),
        &format!("oci:{}:x", out.display()),
        &keys,
    )
    .args(["--platform", "linux/s390x"])
    .output()
    .unwrap();
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains(
            "index has no manifest for platform linux/s390x (it has: linux/amd64, linux/arm64)"
        ),
        "{err}"
    );
}
