//! Registry credentials, found the way skopeo finds them (containers-auth.json(5)):
//! `--creds USER:PASS`, else the first of `--authfile`, `REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.docker/config.json` that has an entry for the
//! registry (most specific `host/namespace/repo` key first). Secrets are never printed.

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where credentials may come from, as given on the command line.
#[derive(Clone, Debug, Default)]
pub struct AuthOptions {
    /// `USER:PASS` (or `USER` alone for an empty password), from `--creds`.
    pub creds: Option<String>,
    /// `--authfile`; when set, only this file is read.
    pub authfile: Option<PathBuf>,
}

/// The credentials to use for `registry/repository`; anonymous when nothing matches.
pub fn resolve(
    registry: &str,
    repository: &str,
    opts: &AuthOptions,
) -> Result<RegistryAuth, String> {
    if let Some(creds) = &opts.creds {
        let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
        if user.is_empty() {
            return Err("--creds: expected USER:PASS".into());
        }
        return Ok(RegistryAuth::Basic(user.into(), pass.into()));
    }
    for file in auth_files(opts) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("auth file {}: not valid JSON: {e}", file.display()))?;
        if let Some(auth) = lookup(&json, registry, repository)
            .map_err(|e| format!("auth file {}: {e}", file.display()))?
        {
            return Ok(auth);
        }
    }
    Ok(RegistryAuth::Anonymous)
}

fn auth_files(opts: &AuthOptions) -> Vec<PathBuf> {
    if let Some(f) = &opts.authfile {
        return vec![f.clone()];
    }
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(Path::new(&d).join("containers/auth.json"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        files.push(Path::new(&h).join(".docker/config.json"));
    }
    files
}

/// Finds the entry for a repository in an auth file's `auths`, trying `host/ns/repo`, then
/// each shorter namespace prefix, then `host`, then Docker's legacy URL forms.
fn lookup(json: &Value, registry: &str, repository: &str) -> Result<Option<RegistryAuth>, String> {
    let Some(auths) = json.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let mut keys: Vec<String> = Vec::new();
    let mut path = format!("{registry}/{repository}");
    loop {
        keys.push(path.clone());
        match path.rsplit_once('/') {
            Some((head, _)) => path = head.to_owned(),
            None => break,
        }
    }
    keys.push(format!("https://{registry}"));
    keys.push(format!("http://{registry}"));
    if registry == "docker.io" {
        keys.push("https://index.docker.io/v1/".into());
    }
    for key in keys {
        if let Some(entry) = auths.get(&key) {
            return decode_entry(entry).map_err(|e| format!("entry {key:?}: {e}"));
        }
    }
    Ok(None)
}

fn decode_entry(entry: &Value) -> Result<Option<RegistryAuth>, String> {
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
        return Ok(Some(RegistryAuth::Basic(user.into(), pass.into())));
    }
    if let Some(tok) = entry.get("identitytoken").and_then(Value::as_str) {
        return Ok(Some(RegistryAuth::Bearer(tok.into())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(a: RegistryAuth) -> (String, String) {
        match a {
            RegistryAuth::Basic(u, p) => (u, p),
            other => panic!("expected basic, got {other:?}"),
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
            }})
            .to_string(),
        )
        .unwrap();
        let opts = AuthOptions {
            creds: None,
            authfile: Some(file.clone()),
        };
        assert_eq!(
            basic(resolve("reg.example:5000", "team/app", &opts).unwrap()),
            ("team".into(), "t".into())
        );
        assert_eq!(
            basic(resolve("reg.example:5000", "other/app", &opts).unwrap()),
            ("host".into(), "h".into())
        );
        assert!(matches!(
            resolve("elsewhere", "x", &opts).unwrap(),
            RegistryAuth::Anonymous
        ));
        let opts = AuthOptions {
            creds: Some("u:p:q".into()),
            authfile: Some(file),
        };
        assert_eq!(
            basic(resolve("reg.example:5000", "team/app", &opts).unwrap()),
            ("u".into(), "p:q".into())
        );
    }
}
