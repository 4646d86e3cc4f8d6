//! Credentials found as the container tools find them, against real registries: an htpasswd
//! docker-registry reached through a docker-credential helper on PATH named in `credHelpers`
//! and as the default `credsStore`; a token registry (tests/tools/token_server.py) with an
//! identity token, exchanged with an OAuth2 refresh grant and never presented as a bearer token.

use crate::common;

use common::registry::{PASS, Registry, USER, Variant};
use common::{bootc_image, bootseal, keypair, scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A `docker-credential-bootseal-test` script in `dir/bin` that knows `host` only and logs the
/// server URLs it was asked about to `dir/helper.log`.
fn install_helper(dir: &Path, host: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("docker-credential-bootseal-test");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nserver=$(cat)\necho \"$server\" >> {log}\nif [ \"$server\" = '{host}' ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASS}\"}}' \"$server\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
            log = dir.join("helper.log").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn with_path(cmd: &mut Command, bin: &Path) {
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", bin.display()))
        .env_remove("REGISTRY_AUTH_FILE")
        .env("HOME", bin.parent().unwrap())
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("DOCKER_CONFIG");
}

fn digest(reg: &Registry, bin: &Path, extra: &[String]) -> Output {
    let mut c = bootseal();
    c.arg("digest")
        .arg(reg.image("os/base:1"))
        .arg("--tls-verify=false")
        .args(extra);
    with_path(&mut c, bin);
    c.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn credential_helpers_reach_an_htpasswd_registry() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Htpasswd);
    reg.push_layout(&built.image.oci_ref(), "os/base:1");
    let bin = install_helper(tmp.path(), &reg.host);
    let authfile = |name: &str, json: serde_json::Value| {
        let f = tmp.path().join(name);
        std::fs::write(&f, json.to_string()).unwrap();
        format!("--authfile={}", f.display())
    };

    let expected = ok(&digest(&reg, &bin, &[format!("--creds={USER}:{PASS}")]));
    let helpers = authfile(
        "helpers.json",
        serde_json::json!({"credHelpers": {reg.host.clone(): "bootseal-test"}}),
    );
    let out = digest(&reg, &bin, std::slice::from_ref(&helpers));
    assert_eq!(ok(&out), expected);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "warning: sending credentials to {} over plain HTTP",
            reg.host
        )),
        "{stderr}"
    );
    let store = authfile(
        "store.json",
        serde_json::json!({"credsStore": "bootseal-test"}),
    );
    assert_eq!(
        ok(&digest(&reg, &bin, std::slice::from_ref(&store))),
        expected
    );
    let log = std::fs::read_to_string(tmp.path().join("helper.log")).unwrap();
    assert!(log.lines().all(|l| l == reg.host), "{log}");
    assert_eq!(log.lines().count(), 2, "{log}");

    // Without a matching entry: anonymous, refused by the registry.
    let none = authfile(
        "none.json",
        serde_json::json!({"credHelpers": {"elsewhere.example": "bootseal-test"}}),
    );
    let out = digest(&reg, &bin, &[none]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A whole seal, both sides credentialed by the helper.
    let mut seal = common::seal_cmd(&reg.image("os/base:1"), &reg.image("os/sealed:1"), &keys);
    seal.args(["--quiet", "--tls-verify=false", &helpers]);
    with_path(&mut seal, &bin);
    ok(&seal.output().unwrap());
    assert!(reg.raw_manifest("os/sealed:1").is_some());
}

#[test]
fn identity_token_is_exchanged_for_access_tokens() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Token);
    reg.push_layout(&built.image.oci_ref(), "os/base:1");
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let auth = tmp.path().join("auth.json");
    let write_auth = |token: &str| {
        std::fs::write(
            &auth,
            serde_json::json!({"auths": {reg.host.clone(): {"identitytoken": token}}}).to_string(),
        )
        .unwrap();
    };
    let token_log = || std::fs::read_to_string(reg.token_log.as_ref().unwrap()).unwrap();

    write_auth(&format!("identity-{PASS}"));
    let mut seal = common::seal_cmd(&reg.image("os/base:1"), &reg.image("os/sealed:1"), &keys);
    seal.args(["--quiet", "--tls-verify=false"])
        .arg(format!("--authfile={}", auth.display()));
    with_path(&mut seal, &bin);
    ok(&seal.output().unwrap());
    assert!(reg.raw_manifest("os/sealed:1").is_some());
    let log = token_log();
    assert!(!log.contains("bearer_presented"), "{log}");
    let grants: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["grant"] == "refresh_token")
        .collect();
    // Push on the destination was granted through the exchange, and the mount asked for pull
    // on the source in the same token.
    assert!(
        grants.iter().any(|g| g["access"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "os/sealed" && a["actions"].to_string().contains("push"))),
        "{log}"
    );
    assert!(
        grants.iter().any(|g| {
            let scopes = g["scopes"].to_string();
            scopes.contains("repository:os/sealed:pull,push")
                && scopes.contains("repository:os/base:pull")
        }),
        "{log}"
    );
    assert!(
        reg.access_log().contains("mount="),
        "base layers were mounted"
    );

    // A wrong identity token is refused at the token endpoint, and said so.
    write_auth("identity-wrong");
    let mut c = bootseal();
    c.arg("digest")
        .arg(reg.image("os/base:1"))
        .arg("--tls-verify=false")
        .arg(format!("--authfile={}", auth.display()));
    with_path(&mut c, &bin);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("registry authentication failed"),
        "{stderr}"
    );
    assert!(token_log().contains("\"refused\": true"), "{}", token_log());
}
