//! Reading images from a registry (OCI distribution-spec) with `oci-client`: manifests by
//! exact bytes with our own Accept list, blobs as verified streams bridged to blocking readers.

use super::{ImageSource, SourceError};
use crate::auth::{self, AuthOptions};
use crate::manifest::{Descriptor, Document, MANIFEST_TYPES};
use futures_util::TryStreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::runtime::Runtime;

/// Connection options, named as skopeo names them.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// `--tls-verify`: when false, certificates are not checked and plain HTTP is used if the
    /// registry does not speak TLS.
    pub tls_verify: bool,
    /// `--cert-dir`: a directory of `*.crt` CA certificates to trust.
    pub cert_dir: Option<PathBuf>,
    pub auth: AuthOptions,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            tls_verify: true,
            cert_dir: None,
            auth: AuthOptions::default(),
        }
    }
}

/// The CA certificates skopeo would trust for `registry`: `--cert-dir`, else
/// `/etc/containers/certs.d/<registry>/` (containers-certs.d(5)).
pub fn extra_roots(registry: &str, cert_dir: Option<&Path>) -> Result<Vec<Certificate>, String> {
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
        .map(|p| {
            std::fs::read(&p)
                .map(|data| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                })
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}

/// Builds an oci-client for one registry with the given TLS settings and protocol.
pub fn build_client(
    registry: &str,
    opts: &RegistryOptions,
    plain_http: bool,
) -> Result<Client, String> {
    let config = ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: !opts.tls_verify,
        extra_root_certificates: extra_roots(registry, opts.cert_dir.as_deref())?,
        platform_resolver: None,
        ..Default::default()
    };
    Ok(Client::new(config))
}

/// An image in a registry.
pub struct RegistrySource {
    reference: Reference,
    auth: RegistryAuth,
    opts: RegistryOptions,
    runtime: Arc<Runtime>,
    /// The client, decided on first use (HTTPS, or HTTP when TLS verification is off and the
    /// registry does not answer TLS).
    client: OnceLock<Client>,
}

impl RegistrySource {
    pub fn new(reference: Reference, opts: &RegistryOptions) -> Result<Self, SourceError> {
        let name = format!("docker://{}", reference.whole());
        let auth = auth::resolve(
            reference.resolve_registry(),
            reference.repository(),
            &opts.auth,
        )
        .map_err(|m| SourceError::new(&name, m))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| SourceError::new(&name, format!("starting I/O runtime: {e}")))?;
        Ok(RegistrySource {
            reference,
            auth,
            opts: opts.clone(),
            runtime: Arc::new(runtime),
            client: OnceLock::new(),
        })
    }

    fn err(&self, m: impl Into<String>) -> SourceError {
        SourceError::new(self.name(), m)
    }

    fn client(&self) -> Result<&Client, SourceError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let registry = self.reference.resolve_registry();
        let https = build_client(registry, &self.opts, false).map_err(|m| self.err(m))?;
        let chosen = if self.opts.tls_verify {
            https
        } else {
            // skopeo's --tls-verify=false also allows plain HTTP: try TLS, fall back.
            // Probe with the auth handshake (as the sink does) rather than a manifest GET that
            // root_manifest would then repeat.
            let probe = self.runtime.block_on(https.auth(
                &self.reference,
                &self.auth,
                oci_client::RegistryOperation::Pull,
            ));
            match probe {
                Err(oci_client::errors::OciDistributionError::RequestError(_)) => {
                    build_client(registry, &self.opts, true).map_err(|m| self.err(m))?
                }
                _ => https,
            }
        };
        Ok(self.client.get_or_init(|| chosen))
    }

    fn pull_manifest(&self, reference: &Reference) -> Result<Document, SourceError> {
        let client = self.client()?;
        let (bytes, _digest) = self
            .runtime
            .block_on(client.pull_manifest_raw(reference, &self.auth, MANIFEST_TYPES))
            .map_err(|e| self.err(describe_error(&e)))?;
        Document::parse(bytes.to_vec(), None)
            .map_err(|m| self.err(format!("manifest {}: {m}", reference.whole())))
    }
}

/// One line for an oci-client error, with the authentication case made explicit.
pub(crate) fn describe_error(e: &oci_client::errors::OciDistributionError) -> String {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::AuthenticationFailure(m) => format!("registry authentication failed: {m}"),
        E::UnauthorizedError { url } => format!("registry authentication failed for {url}"),
        E::RequestError(r) => {
            // reqwest's own message hides the cause (certificate, refused connection).
            let mut msg = format!("cannot reach registry: {r}");
            let mut cause = std::error::Error::source(r);
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
        other => other.to_string(),
    }
}

impl ImageSource for RegistrySource {
    fn name(&self) -> String {
        format!("docker://{}", self.reference.whole())
    }

    fn registry_reference(&self) -> Option<Reference> {
        Some(self.reference.clone())
    }

    fn root_manifest(&self) -> Result<Document, SourceError> {
        let doc = self.pull_manifest(&self.reference)?;
        if let Some(want) = self.reference.digest()
            && doc.digest() != want
        {
            return Err(self.err(format!(
                "manifest digest mismatch: expected {want}, got {}",
                doc.digest()
            )));
        }
        Ok(doc)
    }

    fn manifest(&self, desc: &Descriptor) -> Result<Document, SourceError> {
        let r = self.reference.clone_with_digest(desc.digest.clone());
        let doc = self.pull_manifest(&r)?;
        if doc.digest() != desc.digest {
            return Err(self.err(format!(
                "manifest digest mismatch: expected {}, got {}",
                desc.digest,
                doc.digest()
            )));
        }
        Ok(doc)
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send>, SourceError> {
        let client = self.client()?;
        let oci_desc = OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size as i64,
            ..Default::default()
        };
        let runtime = self.runtime.clone();
        let stream = runtime
            .block_on(async {
                client
                    .store_auth_if_needed(self.reference.resolve_registry(), &self.auth)
                    .await;
                client.pull_blob_stream(&self.reference, &oci_desc).await
            })
            .map_err(|e| self.err(format!("blob {}: {}", desc.digest, describe_error(&e))))?;
        let reader =
            tokio_util::io::StreamReader::new(stream.stream.map_err(std::io::Error::other));
        let bridge =
            tokio_util::io::SyncIoBridge::new_with_handle(reader, runtime.handle().clone());
        super::verified(
            KeepAlive {
                inner: bridge,
                _runtime: runtime,
            },
            desc,
        )
        .map_err(|m| SourceError::new(self.name(), m))
    }
}

/// Keeps the runtime alive as long as a reader bridged onto it exists.
struct KeepAlive<R> {
    inner: R,
    _runtime: Arc<Runtime>,
}

impl<R: Read> Read for KeepAlive<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}
