//! Writing to a registry (OCI distribution-spec push): HEAD before every blob, cross-repository
//! mount on the same registry, streamed copy otherwise, retries with backoff on transient
//! failures, and the manifest last, only once every blob it names answers HEAD.

use super::{Sink, SinkError, referenced_blobs};
use crate::auth;
use crate::manifest::{Descriptor, Document};
use crate::source::{ImageSource, RegistryOptions, build_client, describe_error};
use bytes::Bytes;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::{RegistryToken, RegistryTokenType};
use oci_client::{Client, Reference, RegistryOperation};
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::runtime::Runtime;

const ATTEMPTS: u32 = 4;
const CHUNK: usize = 1 << 20;

/// A repository being pushed to.
pub struct RegistrySink {
    reference: Reference,
    auth: RegistryAuth,
    client: Client,
    runtime: Arc<Runtime>,
    written: AtomicU64,
    mounted: AtomicU64,
    /// `http` or `https`, as decided when connecting.
    scheme: &'static str,
    opts: RegistryOptions,
}

impl RegistrySink {
    pub fn new(reference: Reference, opts: &RegistryOptions) -> Result<Self, SinkError> {
        let name = format!("docker://{}", reference.whole());
        let err = |m: String| SinkError(format!("{name}: {m}"));
        let auth = auth::resolve(
            reference.resolve_registry(),
            reference.repository(),
            &opts.auth,
        )
        .map_err(err)?;
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| err(e.to_string()))?,
        );
        let registry = reference.resolve_registry().to_owned();
        let https = build_client(&registry, opts, false).map_err(err)?;
        let probe = runtime.block_on(https.auth(&reference, &auth, RegistryOperation::Push));
        let (client, scheme) = match probe {
            Err(OciDistributionError::RequestError(_)) if !opts.tls_verify => {
                let http = build_client(&registry, opts, true).map_err(err)?;
                runtime
                    .block_on(http.auth(&reference, &auth, RegistryOperation::Push))
                    .map_err(|e| err(describe_error(&e)))?;
                (http, "http")
            }
            Err(e) => return Err(err(describe_error(&e))),
            Ok(_) => (https, "https"),
        };
        Ok(RegistrySink {
            reference,
            auth,
            client,
            runtime,
            written: AtomicU64::new(0),
            mounted: AtomicU64::new(0),
            scheme,
            opts: opts.clone(),
        })
    }

    /// Blobs made present by a cross-repository mount.
    pub fn blobs_mounted(&self) -> u64 {
        self.mounted.load(Ordering::Relaxed)
    }

    /// Runs `op` until it succeeds, fails permanently, or runs out of attempts.
    fn retry<T>(
        &self,
        what: &str,
        mut op: impl FnMut() -> Result<T, OciDistributionError>,
    ) -> Result<T, SinkError> {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            match op() {
                Ok(v) => return Ok(v),
                Err(e) if attempt < ATTEMPTS && transient(&e) => {
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                Err(e) => {
                    return Err(SinkError(format!(
                        "{}: {what}: {}",
                        self.name(),
                        describe_error(&e)
                    )));
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    fn try_mount(&self, desc: &Descriptor, from: &Reference) -> bool {
        if from.resolve_registry() != self.reference.resolve_registry()
            || from.repository() == self.reference.repository()
        {
            return false;
        }
        let ok = self
            .runtime
            .block_on(async {
                // On token registries the push token must also grant pull on the source
                // repository, or the mount is refused (401); oci-client asks for the
                // destination scope only, so fetch a token covering both, as skopeo and
                // go-containerregistry do (research/registry.md §1.4).
                if let Some(token) = self.mount_token(from).await {
                    self.client
                        .tokens
                        .insert(
                            &self.reference,
                            RegistryOperation::Push,
                            RegistryTokenType::Bearer(RegistryToken::Token { token }),
                        )
                        .await;
                }
                self.client
                    .mount_blob(&self.reference, from, &desc.digest)
                    .await
            })
            .is_ok();
        ok && self
            .runtime
            .block_on(self.client.blob_exists(&self.reference, &desc.digest))
            .unwrap_or(false)
    }

    /// A bearer token for push on the destination and pull on `from`, when the registry uses
    /// token auth (distribution's token-auth specification); None otherwise.
    async fn mount_token(&self, from: &Reference) -> Option<String> {
        let mut builder =
            reqwest::Client::builder().danger_accept_invalid_certs(!self.opts.tls_verify);
        let roots = crate::source::extra_roots(
            self.reference.resolve_registry(),
            self.opts.cert_dir.as_deref(),
        )
        .ok()?;
        for cert in roots {
            builder =
                builder.add_root_certificate(reqwest::Certificate::from_pem(&cert.data).ok()?);
        }
        let http = builder.build().ok()?;
        let ping = http
            .get(format!(
                "{}://{}/v2/",
                self.scheme,
                self.reference.resolve_registry()
            ))
            .send()
            .await
            .ok()?;
        let challenge = ping
            .headers()
            .get("www-authenticate")?
            .to_str()
            .ok()?
            .to_owned();
        let params = challenge.strip_prefix("Bearer ")?;
        let param = |name: &str| {
            params.split(',').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_owned())
            })
        };
        let realm = param("realm")?;
        let mut request = http.get(realm).query(&[
            ("service", param("service").unwrap_or_default()),
            (
                "scope",
                format!("repository:{}:push,pull", self.reference.repository()),
            ),
            ("scope", format!("repository:{}:pull", from.repository())),
        ]);
        if let RegistryAuth::Basic(user, pass) = &self.auth {
            request = request.basic_auth(user, Some(pass));
        }
        let body = request
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .bytes()
            .await
            .ok()?;
        let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
        json.get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
    }

    fn upload(
        &self,
        desc: &Descriptor,
        reader: Box<dyn Read + Send>,
    ) -> Result<(), OciDistributionError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, OciDistributionError>>(4);
        let pump = std::thread::spawn(move || {
            let mut reader = reader;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    match reader.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) => {
                            let _ = tx.blocking_send(Err(OciDistributionError::IoError(e)));
                            return;
                        }
                    }
                }
                if filled == 0 {
                    return;
                }
                buf.truncate(filled);
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return;
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let result = self.runtime.block_on(self.client.push_blob_stream(
            &self.reference,
            stream,
            &desc.digest,
            Some(desc.size),
        ));
        let _ = pump.join();
        result?;
        Ok(())
    }

    fn check_present(&self, desc: &Descriptor) -> Result<(), SinkError> {
        if !self.has_blob(desc)? {
            return Err(SinkError(format!(
                "{}: blob {} is not present after upload",
                self.name(),
                desc.digest
            )));
        }
        Ok(())
    }
}

/// Failures worth another attempt: connection trouble and server-side errors.
fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        _ => false,
    }
}

impl Sink for RegistrySink {
    fn name(&self) -> String {
        format!("docker://{}", self.reference.whole())
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool, SinkError> {
        self.retry(&format!("HEAD {}", desc.digest), || {
            self.runtime
                .block_on(self.client.blob_exists(&self.reference, &desc.digest))
        })
    }

    fn copy_blob(&self, desc: &Descriptor, source: &dyn ImageSource) -> Result<(), SinkError> {
        if let Some(from) = source.registry_reference()
            && self.try_mount(desc, &from)
        {
            self.mounted.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.retry(&format!("copying blob {}", desc.digest), || {
            let reader = source
                .open_blob(desc)
                .map_err(|e| OciDistributionError::GenericError(Some(e.to_string())))?;
            self.upload(desc, reader)
        })?;
        self.written.fetch_add(desc.size, Ordering::Relaxed);
        self.check_present(desc)
    }

    fn put_blob_stream(
        &self,
        desc: &Descriptor,
        reader: Box<dyn Read + Send>,
    ) -> Result<(), SinkError> {
        self.upload(desc, reader).map_err(|e| {
            SinkError(format!(
                "{}: uploading blob {}: {}",
                self.name(),
                desc.digest,
                describe_error(&e)
            ))
        })?;
        self.written.fetch_add(desc.size, Ordering::Relaxed);
        self.check_present(desc)
    }

    fn put_blob(&self, desc: &Descriptor, bytes: &[u8]) -> Result<(), SinkError> {
        if self.has_blob(desc)? {
            return Ok(());
        }
        let data = Bytes::copy_from_slice(bytes);
        self.retry(&format!("uploading blob {}", desc.digest), || {
            self.runtime.block_on(self.client.push_blob(
                &self.reference,
                data.clone(),
                &desc.digest,
            ))
        })?;
        self.written.fetch_add(desc.size, Ordering::Relaxed);
        self.check_present(desc)
    }

    fn put_manifest(&self, doc: &Document, tag: Option<&str>) -> Result<(), SinkError> {
        for blob in referenced_blobs(doc).map_err(SinkError)? {
            let present = match doc.kind {
                crate::manifest::DocumentKind::Image => self.has_blob(&blob)?,
                crate::manifest::DocumentKind::Index => {
                    let child = self.reference.clone_with_digest(blob.digest.clone());
                    self.runtime
                        .block_on(self.client.fetch_manifest_digest(&child, &self.auth))
                        .is_ok()
                }
            };
            if !present {
                return Err(SinkError(format!(
                    "{}: refusing to push manifest {}: {} is missing",
                    self.name(),
                    doc.digest(),
                    blob.digest
                )));
            }
        }
        let target = match tag {
            Some(t) => Reference::with_tag(
                self.reference.registry().into(),
                self.reference.repository().into(),
                t.into(),
            ),
            None => self.reference.clone_with_digest(doc.digest()),
        };
        let content_type = http::HeaderValue::from_str(&doc.media_type)
            .map_err(|e| SinkError(format!("media type {}: {e}", doc.media_type)))?;
        let body = Bytes::from(doc.bytes.clone());
        self.retry(&format!("pushing manifest {}", doc.digest()), || {
            self.runtime.block_on(self.client.push_manifest_raw(
                &target,
                body.clone(),
                content_type.clone(),
            ))
        })?;
        self.written
            .fetch_add(doc.bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}
