//! The one registry client (OCI distribution-spec over HTTP) that sources, sinks and mounts
//! share: one connection pool per registry, TLS or plain HTTP decided once by a probe,
//! credentials as the container tools find them, bearer tokens per scope, retries with backoff
//! on every request kind, connect and idle-read timeouts, resumable blob reads and restartable
//! uploads.

mod api;
mod blob;
mod client;
pub mod credentials;
pub mod retry;
mod token;
mod upload;

pub use blob::BlobReader;
pub use client::RegistryClient;
pub use credentials::{AuthOptions, Credentials};
pub use retry::RetryPolicy;
pub use upload::Mount;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connection options, named as skopeo names them.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// `--tls-verify`: when false, certificates are not checked and plain HTTP is used if a
    /// probe finds the registry does not speak TLS.
    pub tls_verify: bool,
    /// `--cert-dir`: a directory of `*.crt` CA certificates to trust.
    pub cert_dir: Option<PathBuf>,
    pub auth: AuthOptions,
    /// `--retry-times` and the backoff around it.
    pub retry: RetryPolicy,
    /// `--timeout`: the longest a connection may take to open or stay silent mid-request.
    pub timeout: Duration,
}

/// The default `--timeout`: generous, since a registry may take long to answer a large PUT.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            tls_verify: true,
            cert_dir: None,
            auth: AuthOptions::default(),
            retry: RetryPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A failed registry operation, in one line naming the registry's own error when it gave one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RegistryError(pub String);

/// The CA certificates skopeo would trust for `registry`: `--cert-dir`, else
/// `/etc/containers/certs.d/<registry>/` (containers-certs.d(5)), as PEM.
pub fn extra_roots(registry: &str, cert_dir: Option<&Path>) -> Result<Vec<Vec<u8>>, String> {
    let dir = match cert_dir {
        Some(d) => d.to_owned(),
        None => Path::new("/etc/containers/certs.d").join(registry),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return match cert_dir {
            Some(d) => Err(format!("--cert-dir {}: cannot read directory", d.display())),
            None => Ok(Vec::new()),
        };
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display())))
        .collect()
}

/// Statuses worth another attempt: rate limits, timeouts and server-side failures.
pub(crate) fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status) && status != 501
}

/// The registry's own error from a response body (`{"errors":[{"code","message"}]}`), as
/// `: CODE: message; …`, or a short printable prefix of any other body.
pub(crate) fn error_text(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(errors) = json.get("errors").and_then(|e| e.as_array())
    {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| {
                let field = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("");
                match (field("code"), field("message")) {
                    ("", m) => m.to_owned(),
                    (c, "") => c.to_owned(),
                    (c, m) => format!("{c}: {m}"),
                }
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return format!(": {}", parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(body);
    let line: String = text
        .split(['\n', '\r'])
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if line.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", line.trim())
    }
}

/// reqwest's message with its causes (it hides the interesting one: certificate, refused
/// connection, timeout).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}

/// A request that got no HTTP answer: worth retrying unless TLS itself was refused (a bad
/// certificate does not get better by asking again).
pub(crate) fn transport_failure(what: &str, e: &reqwest::Error) -> retry::Failure {
    let message = format!("{what}: {}", describe(e));
    let lower = message.to_ascii_lowercase();
    if !e.is_timeout() && (lower.contains("certificate") || lower.contains("handshake")) {
        retry::Failure::permanent(message)
    } else {
        retry::Failure::transient(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_are_quoted() {
        assert_eq!(
            error_text(br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#),
            ": TOOMANYREQUESTS: slow down"
        );
        assert_eq!(error_text(b"<html>\nBad gateway\n"), ": <html>");
        assert_eq!(error_text(b""), "");
        assert!(transient_status(503) && transient_status(429) && !transient_status(404));
    }
}
