//! The registry client as a library (what `bootseal sync` builds on), against a real
//! docker-registry behind the fault proxy: manifests pushed under several tags, the tag list
//! read back (with a 503 retried). docker-registry 2.8 ignores `n` and sends every tag in one
//! answer, so following `Link` pages is covered by the unit test of the header parser only.

use crate::common;

use bootseal::manifest::{OCI_MANIFEST, sha256_digest};
use bootseal::registry::{RegistryClient, RegistryOptions};
use common::fault_proxy::{FaultProxy, Rule, status};
use common::registry::{Registry, Variant};

#[test]
fn tags_are_listed_and_a_busy_answer_is_retried() {
    let reg = Registry::start(Variant::Plain);
    let proxy = FaultProxy::start(&reg.host);
    let reference: oci_client::Reference = format!("{}/lib/tags:x", proxy.host).parse().unwrap();
    let opts = RegistryOptions {
        tls_verify: false,
        ..RegistryOptions::default()
    };
    let client = RegistryClient::connect(&reference, &opts).unwrap();
    assert!(client.plain_http());

    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = sha256_digest(config);
    let body = bytes::Bytes::from_static(config);
    client
        .upload_blob("lib/tags", &config_digest, config.len() as u64, &mut || {
            Ok(body.clone().into())
        })
        .unwrap();
    assert!(
        client
            .has_blob("lib/tags", &config_digest, "repository:lib/tags:pull")
            .unwrap()
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [],
    });
    let bytes = bytes::Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let mut tags: Vec<String> = (0..5).map(|i| format!("v{i}")).collect();
    for t in &tags {
        client
            .put_manifest("lib/tags", t, bytes.clone(), OCI_MANIFEST)
            .unwrap();
    }

    proxy.clear_log();
    proxy.set_rules(vec![Rule::new(
        "GET",
        "/tags/list",
        status(503, None, "busy"),
        1,
    )]);
    let mut listed = client.list_tags("lib/tags", 2).unwrap();
    listed.sort();
    tags.sort();
    assert_eq!(listed, tags);
    let pages = proxy
        .requests()
        .iter()
        .filter(|r| r.contains("/tags/list"))
        .count();
    assert_eq!(
        pages,
        2,
        "one answer plus one retried: {:?}",
        proxy.requests()
    );
    assert_eq!(proxy.injected().len(), 1);
}
