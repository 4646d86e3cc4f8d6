//! `bootseal seal` through a fault-injecting proxy in front of a real docker-registry: 503s, a
//! 429 with Retry-After, a blob body cut mid-stream, a read stalled past `--timeout`, a 500 on
//! the upload chunk, a 503 on the mount and a 502 on the manifest PUT are all retried, and the
//! sealed manifest is byte-identical to a clean run's. When retries run out, the seal fails in
//! bounded time with one line quoting the registry's error, and the tag does not move.

use crate::common;

use common::fault_proxy::{Fault, FaultProxy, Rule, status};
use common::registry::{Registry, Variant};
use common::{bootc_image, keypair, scratch};
use serde_json::Value;
use std::process::Output;
use std::time::{Duration, Instant};

/// The bootc test image as `os/base:1` in a registry, a key pair, and a fault proxy in front
/// (no rules yet). The scratch directory lives as long as the first element.
fn base_behind_proxy() -> (tempfile::TempDir, common::KeyPair, Registry, FaultProxy) {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Plain);
    reg.push_layout(&built.image.oci_ref(), "os/base:1");
    let proxy = FaultProxy::start(&reg.host);
    (tmp, keys, reg, proxy)
}

fn seal(
    proxy: &FaultProxy,
    from: &str,
    to: &str,
    keys: &common::KeyPair,
    extra: &[&str],
) -> Output {
    let mut c = common::seal_cmd(
        &format!("docker://{}/{from}", proxy.host),
        &format!("docker://{}/{to}", proxy.host),
        keys,
    );
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["--json", "--quiet", "--tls-verify=false"])
        .args(extra);
    c.output().unwrap()
}

fn digest_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "seal failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["digest"].as_str().unwrap().to_owned()
}

#[test]
fn injected_faults_are_retried_and_the_result_matches_a_clean_run() {
    let (_tmp, keys, reg, proxy) = base_behind_proxy();

    // The clean run goes through the same proxy, so the base name recorded in the sealed
    // manifest is the same in both runs.
    let started = Instant::now();
    let clean = digest_of(&seal(&proxy, "os/base:1", "os/clean:1", &keys, &[]));
    eprintln!("clean run: {:?}", started.elapsed());
    assert!(proxy.injected().is_empty());
    let requests = proxy.requests();
    // The source tag is read once; everything after goes by digest (no tag race).
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.starts_with("GET /v2/os/base/manifests/") && !r.contains("sha256:"))
            .count(),
        1,
        "{requests:#?}"
    );
    // HTTPS was tried once for the registry (source and sink share the decision), then plain
    // HTTP: never a fallback after a failed request.
    assert_eq!(
        requests.iter().filter(|r| *r == "TLS handshake").count(),
        1,
        "{requests:#?}"
    );

    proxy.clear_log();
    proxy.set_rules(vec![
        Rule::new("GET", "/manifests/", status(503, None, "warming up"), 2),
        Rule::new("HEAD", "/blobs/", status(429, Some(1), "slow down"), 1),
        Rule::new("GET", "/blobs/", Fault::CutBody, 1),
        Rule::new("GET", "/blobs/", Fault::Stall(Duration::from_secs(6)), 1),
        Rule::new("POST", "mount=", status(503, None, "mount busy"), 1),
        Rule::new(
            "PATCH",
            "/blobs/uploads/",
            status(500, None, "chunk lost"),
            1,
        ),
        Rule::new("PUT", "/manifests/", status(502, None, "bad gateway"), 1),
    ]);
    let start = Instant::now();
    let out = seal(
        &proxy,
        "os/base:1",
        "os/faulty:1",
        &keys,
        &["--timeout", "2"],
    );
    let elapsed = start.elapsed();
    let injected = proxy.injected();
    eprintln!("faulty run: {elapsed:?}, injected: {injected:#?}");
    let faulty = digest_of(&out);
    for kind in [
        "503 GET",
        "429 HEAD",
        "cut GET",
        "stall GET",
        "503 POST",
        "500 PATCH",
        "502 PUT",
    ] {
        assert!(
            injected.iter().any(|i| i.starts_with(kind)),
            "{kind} was not injected: {injected:?}"
        );
    }
    assert_eq!(
        injected.iter().filter(|i| i.starts_with("503 GET")).count(),
        2
    );
    assert_eq!(faulty, clean, "same manifest as the clean run");
    let raw = reg.raw_manifest("os/faulty:1").unwrap();
    assert_eq!(bootseal::manifest::sha256_digest(&raw), clean);
    // The cut and the stalled reads were resumed with Range requests, not restarted at once.
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET") && r.ends_with(" range")),
        "a cut read was resumed with Range: {requests:?}"
    );
    assert!(
        requests.iter().filter(|r| r.starts_with("POST")).count() >= 3,
        "the failed upload session was replaced by a new one: {requests:?}"
    );
    // Retry-After: 1 was honoured and the stall waited for the 2 s timeout.
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn exhausted_retries_fail_in_bounded_time_naming_the_registry_error() {
    let (_tmp, keys, reg, proxy) = base_behind_proxy();
    digest_of(&seal(&proxy, "os/base:1", "os/sealed:1", &keys, &[]));
    let before = reg.raw_manifest("os/sealed:1").unwrap();

    proxy.set_rules(vec![Rule::new(
        "PUT",
        "/manifests/",
        status(503, None, "registry is in read-only maintenance"),
        usize::MAX,
    )]);
    let start = Instant::now();
    let out = seal(
        &proxy,
        "os/base:1",
        "os/sealed:1",
        &keys,
        &["--retry-times", "2", "--label", "changed=yes"],
    );
    let elapsed = start.elapsed();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("exhausted run: {elapsed:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("HTTP 503") && stderr.contains("registry is in read-only maintenance"),
        "{stderr}"
    );
    assert!(stderr.contains("giving up after 3 attempts"), "{stderr}");
    assert_eq!(
        proxy
            .injected()
            .iter()
            .filter(|i| i.starts_with("503 PUT"))
            .count(),
        3
    );
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
    assert_eq!(
        reg.raw_manifest("os/sealed:1").unwrap(),
        before,
        "the tag did not move"
    );
}

#[test]
fn a_permanent_error_is_not_retried() {
    let (_tmp, keys, _reg, proxy) = base_behind_proxy();
    proxy.set_rules(vec![Rule::new(
        "GET",
        "/manifests/",
        status(403, None, "denied by policy"),
        usize::MAX,
    )]);
    let out = seal(&proxy, "os/base:1", "os/sealed:1", &keys, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("denied by policy"), "{stderr}");
    assert_eq!(proxy.injected().len(), 1, "{:?}", proxy.injected());
}
