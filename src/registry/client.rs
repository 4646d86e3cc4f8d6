//! A connection to one registry for one repository's credentials: the HTTP client (pooled
//! connections, timeouts, TLS roots), the scheme decided once by probing `/v2/`, the
//! authentication challenge, bearer tokens cached per scope, and the retry loop every request
//! goes through.

use super::credentials::{self, Credentials};
use super::retry::{Attempts, Failure, RetryPolicy, parse_retry_after};
use super::token::{self, Challenge};
use super::{
    RegistryError, RegistryOptions, describe, error_text, extra_roots, transient_status,
    transport_failure,
};
use reqwest::blocking::{Client, RequestBuilder, Response};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A registry connection; cheap to share behind an `Arc` across threads.
pub struct RegistryClient {
    /// `host[:port]` as used in URLs.
    host: String,
    /// `https://host` or `http://host`.
    base: String,
    http: Client,
    credentials: Credentials,
    challenge: Mutex<Challenge>,
    /// Bearer tokens by scope string. A mount's wider scope has its own entry, so it never
    /// replaces the push token.
    tokens: Mutex<HashMap<String, String>>,
    pub(super) retry: RetryPolicy,
    pub(super) timeout: Duration,
    warned_plain_http: AtomicBool,
}

/// Schemes already decided by a probe, per registry host (`--tls-verify=false` only): the
/// source and the sink of one run probe a registry once.
fn probed_schemes() -> &'static Mutex<HashMap<String, &'static str>> {
    static PROBED: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    PROBED.get_or_init(Default::default)
}

impl RegistryClient {
    /// Connects to the registry of `reference` (probing TLS, then plain HTTP if allowed) with
    /// the credentials the container tools would use for its repository.
    pub fn connect(
        reference: &oci_client::Reference,
        opts: &RegistryOptions,
    ) -> Result<RegistryClient, RegistryError> {
        let registry = reference.resolve_registry();
        let credentials =
            credentials::resolve(reference.registry(), reference.repository(), &opts.auth)
                .map_err(RegistryError)?;
        let mut builder = Client::builder()
            .user_agent(concat!("bootseal/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(opts.timeout.min(Duration::from_secs(30)))
            // Blocking reqwest applies this to sending a request and to each body read, so it
            // bounds silence, not the length of a download.
            .timeout(opts.timeout)
            .danger_accept_invalid_certs(!opts.tls_verify);
        for pem in extra_roots(registry, opts.cert_dir.as_deref()).map_err(RegistryError)? {
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| RegistryError(format!("CA certificate for {registry}: {e}")))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| RegistryError(format!("{registry}: HTTP client: {}", describe(&e))))?;
        let mut client = RegistryClient {
            host: registry.to_owned(),
            base: format!("https://{registry}"),
            http,
            credentials,
            challenge: Mutex::new(Challenge::None),
            tokens: Mutex::new(HashMap::new()),
            retry: opts.retry,
            timeout: opts.timeout,
            warned_plain_http: AtomicBool::new(false),
        };
        client.probe(opts.tls_verify)?;
        Ok(client)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether requests go over plain HTTP.
    pub fn plain_http(&self) -> bool {
        self.base.starts_with("http:")
    }

    /// Pings `/v2/` to learn the scheme and the authentication challenge. With TLS
    /// verification off, plain HTTP is used only if HTTPS fails at the connection level and
    /// HTTP then answers (decided once per registry, never after a later failure).
    fn probe(&mut self, tls_verify: bool) -> Result<(), RegistryError> {
        let known = probed_schemes()
            .lock()
            .ok()
            .and_then(|m| m.get(&self.host).copied());
        let mut attempts = Attempts::new(self.retry);
        loop {
            let result = match (tls_verify, known) {
                (false, Some(scheme)) => self.ping(scheme),
                (true, _) => self.ping("https"),
                (false, None) => match self.ping("https") {
                    Err(https) if !https.transient_status => match self.ping("http") {
                        Ok(r) => Ok(r),
                        Err(_) => Err(https),
                    },
                    other => other,
                },
            };
            match result {
                Ok((scheme, challenge)) => {
                    self.base = format!("{scheme}://{}", self.host);
                    *self.challenge.lock().expect("lock") = challenge;
                    if !tls_verify && let Ok(mut m) = probed_schemes().lock() {
                        m.insert(self.host.clone(), scheme);
                    }
                    return Ok(());
                }
                Err(p) => attempts
                    .back_off(p.failure)
                    .map_err(|m| RegistryError(format!("{}: {m}", self.host)))?,
            }
        }
    }

    fn ping(&self, scheme: &'static str) -> Result<(&'static str, Challenge), PingFailure> {
        let url = format!("{scheme}://{}/v2/", self.host);
        let response = self.http.get(&url).send().map_err(|e| PingFailure {
            failure: transport_failure(&format!("cannot reach registry at {url}"), &e),
            transient_status: false,
        })?;
        let status = response.status().as_u16();
        if transient_status(status) {
            let retry_after = retry_after(&response);
            let body = response.bytes().unwrap_or_default();
            return Err(PingFailure {
                failure: Failure {
                    retry_after,
                    ..Failure::transient(format!("GET {url}: HTTP {status}{}", error_text(&body)))
                },
                transient_status: true,
            });
        }
        Ok((scheme, challenge_of(&response)))
    }

    /// `base` + `path` (`/v2/…`), or an absolute URL as given (upload locations).
    pub(super) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends a request, retrying transient failures (429, 5xx, connection trouble, timeouts)
    /// with backoff. Returns any response that is not transient; the caller checks its status.
    /// `build` is called once per attempt and may be called again after a token refresh.
    pub fn send(
        &self,
        what: &str,
        scope: &str,
        build: &mut dyn FnMut(&Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut attempts = Attempts::new(self.retry);
        loop {
            match self.send_once(what, scope, build) {
                Ok(r) => return Ok(r),
                Err(f) => attempts.back_off(f).map_err(RegistryError)?,
            }
        }
    }

    /// One attempt (plus one re-send after a 401 that asks for a new token or scheme).
    pub(super) fn send_once(
        &self,
        what: &str,
        scope: &str,
        build: &mut dyn FnMut(&Client) -> RequestBuilder,
    ) -> Result<Response, Failure> {
        let mut refreshed = false;
        loop {
            let request = self.authorize(build(&self.http), scope)?;
            let response = request.send().map_err(|e| transport_failure(what, &e))?;
            let status = response.status().as_u16();
            if status == 401 && !refreshed {
                refreshed = true;
                self.renew_credentials(&response, scope);
                continue;
            }
            return transient_or_ok(what, response);
        }
    }

    /// After a 401: adopt the scheme the registry now asks for and drop the cached token of
    /// `scope`, so the next request authenticates afresh.
    fn renew_credentials(&self, response: &Response, scope: &str) {
        let challenge = challenge_of(response);
        if challenge != Challenge::None {
            *self.challenge.lock().expect("lock") = challenge;
        }
        self.tokens.lock().expect("lock").remove(scope);
    }

    /// One attempt whose request cannot be built twice (its body is a stream): a 401 drops the
    /// cached token and comes back as a transient failure, so the caller starts over.
    pub(super) fn send_one_shot(
        &self,
        what: &str,
        scope: &str,
        build: impl FnOnce(&Client) -> RequestBuilder,
    ) -> Result<Response, Failure> {
        let request = self.authorize(build(&self.http), scope)?;
        let response = request.send().map_err(|e| transport_failure(what, &e))?;
        let status = response.status().as_u16();
        if status == 401 {
            self.renew_credentials(&response, scope);
            return Err(Failure::transient(format!(
                "{what}: HTTP 401 (credentials renewed for the next attempt)"
            )));
        }
        transient_or_ok(what, response)
    }

    /// Adds credentials as the registry's challenge asks: Basic, or a bearer token for `scope`.
    fn authorize(&self, request: RequestBuilder, scope: &str) -> Result<RequestBuilder, Failure> {
        let challenge = self.challenge.lock().expect("lock").clone();
        match challenge {
            Challenge::None => Ok(request),
            Challenge::Basic => match &self.credentials {
                Credentials::Basic { user, password } => {
                    self.warn_plain_http();
                    Ok(request.basic_auth(user, Some(password)))
                }
                Credentials::IdentityToken(_) => Err(Failure::permanent(format!(
                    "{}: an identity token needs a token-authenticating registry, this one asks for Basic authentication",
                    self.host
                ))),
                Credentials::Anonymous => Ok(request),
            },
            Challenge::Bearer { realm, service } => {
                if let Some(t) = self.tokens.lock().expect("lock").get(scope) {
                    return Ok(request.bearer_auth(t));
                }
                if self.credentials != Credentials::Anonymous && realm.starts_with("http:") {
                    self.warn_plain_http();
                }
                let token = token::fetch(
                    &self.http,
                    &realm,
                    service.as_deref(),
                    scope,
                    &self.credentials,
                )?;
                self.tokens
                    .lock()
                    .expect("lock")
                    .insert(scope.to_owned(), token.clone());
                Ok(request.bearer_auth(token))
            }
        }
    }

    /// One line per registry and process, however many clients send credentials there.
    fn warn_plain_http(&self) {
        static WARNED: OnceLock<Mutex<std::collections::HashSet<String>>> = OnceLock::new();
        if !self.plain_http() || self.warned_plain_http.swap(true, Ordering::Relaxed) {
            return;
        }
        let first = WARNED
            .get_or_init(Default::default)
            .lock()
            .map(|mut w| w.insert(self.host.clone()))
            .unwrap_or(true);
        if first {
            eprintln!(
                "bootseal: warning: sending credentials to {} over plain HTTP (--tls-verify=false)",
                self.host
            );
        }
    }

    /// Reads a response that should have one of `ok` statuses; otherwise the error, in one
    /// line with the registry's own message.
    pub(super) fn expect(
        &self,
        what: &str,
        response: Response,
        ok: &[u16],
    ) -> Result<Response, RegistryError> {
        let status = response.status();
        if ok.contains(&status.as_u16()) {
            return Ok(response);
        }
        let body = response.bytes().unwrap_or_default();
        let prefix = if status.as_u16() == 401 || status.as_u16() == 403 {
            "registry authentication failed: "
        } else {
            ""
        };
        Err(RegistryError(format!(
            "{prefix}{what}: HTTP {status}{}",
            error_text(&body)
        )))
    }
}

struct PingFailure {
    failure: Failure,
    /// The scheme works (an HTTP answer came back), the server is just busy.
    transient_status: bool,
}

fn challenge_of(response: &Response) -> Challenge {
    response
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(Challenge::parse)
        .find(|c| *c != Challenge::None)
        .unwrap_or_default()
}

/// A transient status (429, 5xx) as a retryable failure carrying its Retry-After and the
/// registry's own error text; any other response as it is, for the caller to judge.
fn transient_or_ok(what: &str, response: Response) -> Result<Response, Failure> {
    let status = response.status().as_u16();
    if !transient_status(status) {
        return Ok(response);
    }
    let retry_after = retry_after(&response);
    let body = response.bytes().unwrap_or_default();
    Err(Failure {
        retry_after,
        ..Failure::transient(format!("{what}: HTTP {status}{}", error_text(&body)))
    })
}

pub(super) fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}
