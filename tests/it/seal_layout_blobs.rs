//! How an OCI layout sink makes base blobs present: blobs the seal read (and verified) for the
//! digest are hard-linked into the destination, not read again; blobs it did not read (an
//! untouched platform of an index) are still copied through the digest check, so a corrupted
//! one fails the seal by name and no tag is written.

use crate::common;

use common::image_builder::write_blob;
use common::{bootc_image, keypair, run_ok, scratch, seal_cmd};
use serde_json::json;
use std::os::unix::fs::MetadataExt;

#[test]
fn read_blobs_are_linked_and_unread_blobs_are_still_verified() {
    let tmp = scratch();
    let dir = tmp.path().join("layout");
    let (amd, _, _, _) = bootc_image::layers(tmp.path(), Vec::new());
    let amd = amd.write(&dir, "amd64");
    let blob = |digest: &str| {
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let keys = keypair(tmp.path(), "db", 2048);
    // A seal of the amd64 image alone: its layers were read for the digest and are linked.
    let single = tmp.path().join("single");
    run_ok(&mut seal_cmd(
        &format!("oci:{}:amd64", dir.display()),
        &format!("oci:{}:sealed", single.display()),
        &keys,
    ));
    for l in &amd.layers {
        let (a, b) = (
            std::fs::metadata(blob(&l.digest)).unwrap(),
            std::fs::metadata(
                single
                    .join("blobs/sha256")
                    .join(l.digest.trim_start_matches("sha256:")),
            )
            .unwrap(),
        );
        assert_eq!(
            (a.dev(), a.ino()),
            (b.dev(), b.ino()),
            "{} is linked",
            l.digest
        );
    }

    let (mut arm, _, _, _) =
        bootc_image::layers(tmp.path(), vec![common::image_builder::E::dir("opt")]);
    arm.architecture = "arm64".into();
    let arm = arm.write(&dir, "arm64");
    let entry = |digest: &str, arch: &str| {
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
               "size": std::fs::metadata(blob(digest)).unwrap().len(),
               "platform": {"os": "linux", "architecture": arch}})
    };
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&amd.manifest_digest, "amd64"), entry(&arm.manifest_digest, "arm64")]});
    let (index_digest, index_size) = write_blob(&dir, &serde_json::to_vec(&index).unwrap());
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest,
            "size": index_size, "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}))
        .unwrap(),
    )
    .unwrap();

    // The index: the untouched arm64 platform is copied first, before anything was read, so
    // its blobs (shared ones included) are copied through the digest check.
    let out = tmp.path().join("out");
    run_ok(
        seal_cmd(
            &format!("oci:{}:multi", dir.display()),
            &format!("oci:{}:sealed", out.display()),
            &keys,
        )
        .args(["--platform", "linux/amd64"]),
    );
    let out_blob = |digest: &str| {
        out.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    // arm64-only layers were never read for the digest: copied, a file of their own.
    let arm_only: Vec<_> = arm
        .layers
        .iter()
        .filter(|l| amd.layers.iter().all(|a| a.digest != l.digest))
        .collect();
    assert!(!arm_only.is_empty());
    for l in &arm_only {
        let (a, b) = (
            std::fs::metadata(blob(&l.digest)).unwrap(),
            std::fs::metadata(out_blob(&l.digest)).unwrap(),
        );
        assert_ne!(a.ino(), b.ino());
        assert_eq!(
            std::fs::read(blob(&l.digest)).unwrap(),
            std::fs::read(out_blob(&l.digest)).unwrap()
        );
    }

    // Corrupt an arm64-only layer (same size): sealing amd64 must refuse to copy it.
    let victim = &arm_only[0];
    let mut bytes = std::fs::read(blob(&victim.digest)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(blob(&victim.digest), &bytes).unwrap();
    let out2 = tmp.path().join("out2");
    let failed = seal_cmd(
        &format!("oci:{}:multi", dir.display()),
        &format!("oci:{}:sealed", out2.display()),
        &keys,
    )
    .args(["--platform", "linux/amd64"])
    .output()
    .unwrap();
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains(&victim.digest), "{err}");
    assert!(
        !out2.join("index.json").exists()
            || !std::fs::read_to_string(out2.join("index.json"))
                .unwrap()
                .contains("sealed"),
        "no tag written"
    );
}
