//! Registry credentials, found the way the container tools find them (containers-auth.json(5),
//! docker's config.json): `--creds USER:PASS` wins; else the first of `--authfile`,
//! `REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `$XDG_CONFIG_HOME` or `~/.config/containers/auth.json`, `~/.docker/config.json` that knows
//! the registry. In each file: `credHelpers[host]`, then the most specific `auths` key
//! (`host/ns/repo` … `host`, URL forms, Docker Hub's `https://index.docker.io/v1/`), then the
//! default helper `credsStore`. Helpers speak docker's credential-helper protocol. Secrets are
//! never printed.

use base64::Engine;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where credentials may come from, as given on the command line.
#[derive(Clone, Debug, Default)]
pub struct AuthOptions {
    /// `USER:PASS` (or `USER` alone for an empty password), from `--creds`.
    pub creds: Option<String>,
    /// `--authfile`; when set, only this file is read.
    pub authfile: Option<PathBuf>,
}

/// What to authenticate with.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        user: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`, or a helper's `<token>` user): exchanged at
    /// the token endpoint for access tokens, never sent to the registry itself.
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user}, ***)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(***)"),
        }
    }
}

/// The credentials to use for `registry/repository`; anonymous when nothing matches.
pub fn resolve(
    registry: &str,
    repository: &str,
    opts: &AuthOptions,
) -> Result<Credentials, String> {
    if let Some(creds) = &opts.creds {
        let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
        if user.is_empty() {
            return Err("--creds: expected USER:PASS".into());
        }
        return Ok(Credentials::Basic {
            user: user.into(),
            password: pass.into(),
        });
    }
    for file in auth_files(opts) {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if opts.authfile.is_some() => {
                return Err(format!("--authfile {}: {e}", file.display()));
            }
            Err(_) => continue,
        };
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("auth file {}: not valid JSON: {e}", file.display()))?;
        if let Some(found) = lookup(&json, registry, repository)
            .map_err(|e| format!("auth file {}: {e}", file.display()))?
        {
            return Ok(found);
        }
    }
    Ok(Credentials::Anonymous)
}

fn auth_files(opts: &AuthOptions) -> Vec<PathBuf> {
    if let Some(f) = &opts.authfile {
        return vec![f.clone()];
    }
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let mut files = Vec::new();
    if let Some(f) = env("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    }
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        files.push(Path::new(&d).join("containers/auth.json"));
    }
    let home = env("HOME");
    match (env("XDG_CONFIG_HOME"), &home) {
        (Some(c), _) => files.push(Path::new(&c).join("containers/auth.json")),
        (None, Some(h)) => files.push(Path::new(h).join(".config/containers/auth.json")),
        (None, None) => {}
    }
    if let Some(d) = env("DOCKER_CONFIG") {
        files.push(Path::new(&d).join("config.json"));
    } else if let Some(h) = &home {
        files.push(Path::new(h).join(".docker/config.json"));
    }
    files
}

fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// The server URL a credential helper is asked about (docker asks Docker Hub's by its v1 URL).
fn helper_server(registry: &str) -> String {
    if is_docker_hub(registry) {
        "https://index.docker.io/v1/".into()
    } else {
        registry.into()
    }
}

/// Finds the credentials for a repository in one auth file.
fn lookup(json: &Value, registry: &str, repository: &str) -> Result<Option<Credentials>, String> {
    let mut hosts = vec![registry.to_owned()];
    if is_docker_hub(registry) {
        hosts.extend(
            [
                "docker.io",
                "index.docker.io",
                "https://index.docker.io/v1/",
            ]
            .map(String::from),
        );
    }
    if let Some(helpers) = json.get("credHelpers").and_then(Value::as_object)
        && let Some(name) = hosts
            .iter()
            .find_map(|h| helpers.get(h).and_then(Value::as_str))
    {
        return run_helper(name, &helper_server(registry));
    }
    if let Some(auths) = json.get("auths").and_then(Value::as_object) {
        for key in auth_keys(registry, repository) {
            if let Some(entry) = auths.get(&key)
                && let Some(found) =
                    decode_entry(entry).map_err(|e| format!("entry {key:?}: {e}"))?
            {
                return Ok(Some(found));
            }
        }
    }
    if let Some(store) = json
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return run_helper(store, &helper_server(registry));
    }
    Ok(None)
}

/// `auths` keys for a repository, most specific first.
fn auth_keys(registry: &str, repository: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut path = format!("{registry}/{repository}");
    loop {
        keys.push(path.clone());
        match path.rsplit_once('/') {
            Some((head, _)) => path = head.to_owned(),
            None => break,
        }
    }
    for scheme in ["https://", "http://"] {
        keys.push(format!("{scheme}{registry}"));
        keys.push(format!("{scheme}{registry}/v1/"));
        keys.push(format!("{scheme}{registry}/v2/"));
    }
    if is_docker_hub(registry) {
        for k in [
            "docker.io",
            "index.docker.io",
            "https://index.docker.io/v1/",
            "registry-1.docker.io",
        ] {
            keys.push(k.into());
        }
    }
    keys
}

fn decode_entry(entry: &Value) -> Result<Option<Credentials>, String> {
    if let Some(tok) = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return Ok(Some(Credentials::IdentityToken(tok.into())));
    }
    if let Some(b64) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| "\"auth\" is not base64".to_owned())?;
        let text = String::from_utf8(raw).map_err(|_| "\"auth\" is not UTF-8".to_owned())?;
        let (user, pass) = text
            .split_once(':')
            .ok_or("\"auth\" does not decode to USER:PASS")?;
        return Ok(Some(Credentials::Basic {
            user: user.into(),
            password: pass.into(),
        }));
    }
    Ok(None)
}

/// `docker-credential-NAME get` with the server URL on stdin; JSON `{Username, Secret}` out.
/// "not found" answers count as no credentials; a user of `<token>` marks an identity token.
fn run_helper(name: &str, server: &str) -> Result<Option<Credentials>, String> {
    if name.is_empty() || name.contains('/') {
        return Err(format!("credential helper name {name:?} is not valid"));
    }
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("credential helper {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("credential helper {program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let said = format!(
            "{} {}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if said.to_ascii_lowercase().contains("not found") {
            return Ok(None);
        }
        return Err(format!(
            "credential helper {program} failed for {server}: {}",
            said.trim()
        ));
    }
    let json: Value = serde_json::from_str(&stdout)
        .map_err(|_| format!("credential helper {program}: output is not JSON"))?;
    let field = |k: &str| json.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (user, secret) = (field("Username"), field("Secret"));
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if user == "<token>" {
        Credentials::IdentityToken(secret)
    } else {
        Credentials::Basic {
            user,
            password: secret,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic {
            user: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn most_specific_entry_wins_and_creds_override() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &file,
            serde_json::json!({"auths": {
                "reg.example:5000": {"auth": enc("host:h")},
                "reg.example:5000/team": {"auth": enc("team:t")},
                "https://index.docker.io/v1/": {"auth": enc("hub:x")},
                "tok.example": {"identitytoken": "refresh-me"},
            }})
            .to_string(),
        )
        .unwrap();
        let opts = AuthOptions {
            creds: None,
            authfile: Some(file.clone()),
        };
        let r = |reg: &str, repo: &str| resolve(reg, repo, &opts).unwrap();
        assert_eq!(r("reg.example:5000", "team/app"), basic("team", "t"));
        assert_eq!(r("reg.example:5000", "other/app"), basic("host", "h"));
        assert_eq!(r("docker.io", "library/debian"), basic("hub", "x"));
        assert_eq!(
            r("tok.example", "a"),
            Credentials::IdentityToken("refresh-me".into())
        );
        assert_eq!(r("elsewhere", "x"), Credentials::Anonymous);
        let opts = AuthOptions {
            creds: Some("u:p:q".into()),
            authfile: Some(file),
        };
        assert_eq!(
            resolve("reg.example:5000", "team/app", &opts).unwrap(),
            basic("u", "p:q")
        );
    }
}
