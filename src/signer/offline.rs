//! Signing across an air gap: the signing request a run writes instead of signing, the
//! signatures file the signing room answers with, and [`OfflineSigner`], the [`Signer`] that
//! stands in for a key that is elsewhere.
//!
//! Every signature bootseal makes is RSASSA-PKCS1-v1_5 (deterministic, RFC 8017 §8.2) over
//! bytes it computes itself, so a run can be repeated: the first time, the signer *records*
//! each labelled request (id, what, the exact bytes whose hash is signed) and hands back a
//! zero placeholder of the key's length; the second time it is given the signatures and
//! *replays* each one after verifying it with the certificate's public key over the bytes it
//! computed again, so a signature of other bytes (another base image, other options, another
//! key, another request) is refused by id. The model is `systemd-sbsign
//! --prepare-offline-signing` / `--signed-data-signature` (systemd 257/258,
//! `src/sbsign/sbsign.c`, systemd-sbsign(1)): a file of data to sign that `openssl dgst
//! -sha256 -sign KEY` signs as is.
//!
//! A request whose bytes depend on a signature not made yet (the UKI's command line carries
//! the composefs digest over the signed systemd-boot) cannot be asked for in the same round:
//! it is listed as `pending`, after the ids it waits for, and asked for by the next run that
//! is given those signatures.

use super::{HashAlg, SignError, SignLabel, Signer, keys};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use der::EncodePem;
use rsa::RsaPublicKey;
use rsa::traits::PublicKeyParts;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use x509_cert::Certificate;

/// The `bootseal-signing-request` format version written and read.
pub const REQUEST_VERSION: u32 = 1;
/// The `bootseal-signatures` format version written and read.
pub const SIGNATURES_VERSION: u32 = 1;

/// A signing request file: what a run needs signed, and by which certificate's key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningRequest {
    #[serde(rename = "bootseal-signing-request")]
    pub version: u32,
    /// PEM of the certificate whose key must sign every entry.
    pub certificate: String,
    pub requests: Vec<RequestEntry>,
    /// Signatures the run will ask for once the ones named in `after` are supplied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingEntry>,
}

/// One signature to make.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestEntry {
    pub id: String,
    pub what: String,
    /// `rsa-pkcs1v15-sha256` (or -sha384/-sha512): RSASSA-PKCS1-v1_5 over that hash of `data`.
    pub algorithm: String,
    /// Base64 of the exact bytes to sign.
    pub data: String,
    /// Hex of the hash of `data`, for signers that take a digest (a KMS `Sign` call).
    pub sha256: String,
}

/// A signature that a later round asks for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingEntry {
    pub id: String,
    pub what: String,
    pub after: Vec<String>,
}

/// A signatures file: the signing room's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    #[serde(rename = "bootseal-signatures")]
    pub version: u32,
    pub signatures: Vec<SignatureEntry>,
}

/// One signature, base64.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    pub id: String,
    pub signature: String,
}

/// Why a request or signatures file was refused, or a signature not supplied.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error(
        "signature {id}: not in {files} (sign the request `--prepare-signing` writes, then give its signatures)"
    )]
    Missing { id: String, files: String },
    #[error(
        "signature {id}: does not verify with the key of certificate {subject} over the bytes computed here (a signature of another request, image, option set or key)"
    )]
    Mismatch { id: String, subject: String },
    #[error("request {id}: {reason}")]
    BadRequest { id: String, reason: String },
    #[error("an offline signer signs only named requests (this signature has no id)")]
    Unlabelled,
}

fn algorithm_name(hash: HashAlg) -> &'static str {
    match hash {
        HashAlg::Sha1 => "rsa-pkcs1v15-sha1",
        HashAlg::Sha256 => "rsa-pkcs1v15-sha256",
        HashAlg::Sha384 => "rsa-pkcs1v15-sha384",
        HashAlg::Sha512 => "rsa-pkcs1v15-sha512",
    }
}

fn parse_algorithm(name: &str) -> Option<HashAlg> {
    [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ]
    .into_iter()
    .find(|h| algorithm_name(*h) == name)
}

impl SigningRequest {
    /// Read and check a request file: version, certificate, and each entry's hash over its data.
    pub fn read(path: &Path) -> Result<(Self, Certificate), OfflineError> {
        let file_err = |reason: String| OfflineError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
        let req: SigningRequest = serde_json::from_slice(&text)
            .map_err(|e| file_err(format!("not a bootseal signing request: {e}")))?;
        if req.version != REQUEST_VERSION {
            return Err(file_err(format!(
                "bootseal-signing-request {} (this bootseal reads {REQUEST_VERSION})",
                req.version
            )));
        }
        let cert = keys::load_certificate(req.certificate.as_bytes())
            .map_err(|e| file_err(format!("certificate: {e}")))?;
        for entry in &req.requests {
            entry.to_sign()?;
        }
        Ok((req, cert))
    }

    /// Sign every entry with `key` (which must be the certificate's key: checked by the
    /// caller through [`super::CertifiedSigner::new`]).
    pub fn sign_all(&self, key: &dyn Signer) -> Result<Signatures, SignError> {
        let mut signatures = Vec::new();
        for entry in &self.requests {
            let (hash, data) = entry.to_sign()?;
            let sig = key.sign(hash, &data)?;
            signatures.push(SignatureEntry {
                id: entry.id.clone(),
                signature: B64.encode(sig),
            });
        }
        Ok(Signatures {
            version: SIGNATURES_VERSION,
            signatures,
        })
    }
}

impl RequestEntry {
    /// The hash and bytes to sign, after checking the algorithm and that `sha256` is their hash.
    pub fn to_sign(&self) -> Result<(HashAlg, Vec<u8>), OfflineError> {
        let bad = |reason: String| OfflineError::BadRequest {
            id: self.id.clone(),
            reason,
        };
        let hash = parse_algorithm(&self.algorithm)
            .ok_or_else(|| bad(format!("unknown algorithm {:?}", self.algorithm)))?;
        let data = B64
            .decode(&self.data)
            .map_err(|e| bad(format!("data is not base64: {e}")))?;
        if hex::encode(hash.digest(&data)) != self.sha256.to_ascii_lowercase() {
            return Err(bad("sha256 is not the hash of data".into()));
        }
        Ok((hash, data))
    }
}

impl Signatures {
    /// Read a signatures file.
    pub fn read(path: &Path) -> Result<Self, OfflineError> {
        let file_err = |reason: String| OfflineError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
        let sigs: Signatures = serde_json::from_slice(&text)
            .map_err(|e| file_err(format!("not a bootseal signatures file: {e}")))?;
        if sigs.version != SIGNATURES_VERSION {
            return Err(file_err(format!(
                "bootseal-signatures {} (this bootseal reads {SIGNATURES_VERSION})",
                sigs.version
            )));
        }
        Ok(sigs)
    }
}

/// Write `value` as pretty JSON with a final newline.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), OfflineError> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| OfflineError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    text.push(b'\n');
    std::fs::write(path, text).map_err(|e| OfflineError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[derive(Default)]
struct Book {
    requests: Vec<RequestEntry>,
    pending: Vec<PendingEntry>,
    /// Ids answered with a placeholder.
    placeholders: BTreeSet<String>,
    /// Supplied ids that were used.
    used: BTreeSet<String>,
    /// Ids asked for without a signature in a run that does not record.
    missing: BTreeSet<String>,
}

/// A [`Signer`] for a key that is elsewhere: replays supplied signatures after verifying
/// them, and (when `recording`) records what else is asked for.
pub struct OfflineSigner {
    public: RsaPublicKey,
    cert: Certificate,
    subject: String,
    supplied: BTreeMap<String, Vec<u8>>,
    files: String,
    recording: bool,
    book: Mutex<Book>,
}

impl OfflineSigner {
    /// A signer for `cert`'s key, with the signatures of `files` (merged; an id given twice
    /// with different signatures is refused). `recording`: requests without a signature are
    /// recorded and answered with a placeholder; otherwise they are an error.
    pub fn new(cert: Certificate, files: &[&Path], recording: bool) -> Result<Self, SignError> {
        let subject = cert.tbs_certificate.subject.to_string();
        let public = keys::certificate_rsa_key(&cert).map_err(|source| SignError::Certificate {
            subject: subject.clone(),
            source,
        })?;
        let mut supplied = BTreeMap::new();
        for path in files {
            for entry in Signatures::read(path)?.signatures {
                let sig = B64
                    .decode(&entry.signature)
                    .map_err(|e| OfflineError::File {
                        path: path.display().to_string(),
                        reason: format!("signature {}: not base64: {e}", entry.id),
                    })?;
                if let Some(old) = supplied.insert(entry.id.clone(), sig.clone())
                    && old != sig
                {
                    return Err(OfflineError::File {
                        path: path.display().to_string(),
                        reason: format!("signature {} is given twice, differently", entry.id),
                    }
                    .into());
                }
            }
        }
        let files = match files {
            [] => "the signatures given (none: --signatures FILE)".to_owned(),
            _ => files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        Ok(OfflineSigner {
            public,
            cert,
            subject,
            supplied,
            files,
            recording,
            book: Mutex::new(Book::default()),
        })
    }

    /// Whether requests without a signature are recorded (a `--prepare-signing` run).
    pub fn recording(&self) -> bool {
        self.recording
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The request for everything asked for without a signature so far, sorted by id.
    pub fn request(&self) -> Result<SigningRequest, OfflineError> {
        let certificate =
            self.cert
                .to_pem(der::pem::LineEnding::LF)
                .map_err(|e| OfflineError::File {
                    path: "certificate".into(),
                    reason: e.to_string(),
                })?;
        let book = self.book();
        // By id: the same run gives the same file, whatever order parallel seals asked in.
        let mut requests = book.requests.clone();
        requests.sort_by(|a, b| a.id.cmp(&b.id));
        let mut pending = book.pending.clone();
        pending.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(SigningRequest {
            version: REQUEST_VERSION,
            certificate,
            requests,
            pending,
        })
    }

    /// Supplied signatures nothing asked for (a stale or foreign entry), sorted.
    pub fn unused(&self) -> Vec<String> {
        let book = self.book();
        self.supplied
            .keys()
            .filter(|id| !book.used.contains(*id))
            .cloned()
            .collect()
    }

    /// Ids starting with `prefix` that were asked for and not supplied: recorded or pending
    /// in a recording run, refused otherwise.
    pub fn unsigned(&self, prefix: &str) -> Vec<String> {
        let book = self.book();
        let ids = book.placeholders.iter().chain(&book.missing);
        let mut out: Vec<String> = ids.filter(|id| id.starts_with(prefix)).cloned().collect();
        out.sort();
        out.dedup();
        out
    }

    fn placeholder(&self) -> Vec<u8> {
        vec![0; self.public.size()]
    }
}

impl Signer for OfflineSigner {
    fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    fn describe(&self) -> String {
        format!("offline key of {}", self.subject)
    }

    fn sign_digest(&self, _hash: HashAlg, _digest: &[u8]) -> Result<Vec<u8>, SignError> {
        Err(OfflineError::Unlabelled.into())
    }

    fn sign(&self, _hash: HashAlg, _message: &[u8]) -> Result<Vec<u8>, SignError> {
        Err(OfflineError::Unlabelled.into())
    }

    fn sign_labelled(
        &self,
        label: &SignLabel,
        hash: HashAlg,
        message: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        let mut book = self.book();
        if let Some(sig) = self.supplied.get(&label.id) {
            self.public
                .verify(hash.pkcs1v15(), &hash.digest(message), sig)
                .map_err(|_| OfflineError::Mismatch {
                    id: label.id.clone(),
                    subject: self.subject.clone(),
                })?;
            book.used.insert(label.id.clone());
            return Ok(sig.clone());
        }
        if !self.recording {
            book.missing.insert(label.id.clone());
            return Err(OfflineError::Missing {
                id: label.id.clone(),
                files: self.files.clone(),
            }
            .into());
        }
        let waiting: Vec<String> = label
            .after
            .iter()
            .filter(|a| book.placeholders.contains(*a))
            .cloned()
            .collect();
        if !waiting.is_empty() {
            book.pending.push(PendingEntry {
                id: label.id.clone(),
                what: label.what.clone(),
                after: waiting,
            });
        } else if !book.requests.iter().any(|r| r.id == label.id) {
            book.requests.push(RequestEntry {
                id: label.id.clone(),
                what: label.what.clone(),
                algorithm: algorithm_name(hash).into(),
                data: B64.encode(message),
                sha256: hex::encode(hash.digest(message)),
            });
        }
        book.placeholders.insert(label.id.clone());
        Ok(self.placeholder())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::FileKey;

    fn label(id: &str, after: &[&str]) -> SignLabel {
        SignLabel {
            id: id.into(),
            what: format!("test {id}"),
            after: after.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_recorded_request_signed_elsewhere_replays_and_a_wrong_one_is_refused() {
        let pair = crate::efi_keys::create::generate("offline test", 2048, 1).unwrap();
        let rec = OfflineSigner::new(pair.cert.clone(), &[], true).unwrap();
        let ph = rec
            .sign_labelled(&label("a", &[]), HashAlg::Sha256, b"first")
            .unwrap();
        assert_eq!(ph, vec![0; 256]);
        rec.sign_labelled(&label("b", &["a"]), HashAlg::Sha256, b"second")
            .unwrap();
        let req = rec.request().unwrap();
        assert_eq!(req.requests.len(), 1);
        assert_eq!(req.pending[0].after, vec!["a".to_owned()]);
        let (hash, data) = req.requests[0].to_sign().unwrap();
        assert_eq!(data, b"first");
        let file = FileKey::from_key(pair.key, "k");
        let good = file.sign(hash, &data).unwrap();

        let mut replay = OfflineSigner::new(pair.cert, &[], false).unwrap();
        replay.supplied.insert("a".to_owned(), good.clone());
        assert_eq!(
            replay
                .sign_labelled(&label("a", &[]), HashAlg::Sha256, b"first")
                .unwrap(),
            good
        );
        let e = replay
            .sign_labelled(&label("a", &[]), HashAlg::Sha256, b"other")
            .unwrap_err();
        assert!(
            e.to_string().starts_with("signature a: does not verify"),
            "{e}"
        );
        let e = replay
            .sign_labelled(&label("b", &[]), HashAlg::Sha256, b"second")
            .unwrap_err();
        assert!(e.to_string().starts_with("signature b: not in"), "{e}");
        assert!(replay.unused().is_empty());
    }

    #[test]
    fn a_request_entry_whose_hash_or_algorithm_is_wrong_is_refused_by_id() {
        let data = b"signed attributes";
        let good = RequestEntry {
            id: "uki".into(),
            what: "test".into(),
            algorithm: "rsa-pkcs1v15-sha256".into(),
            data: B64.encode(data),
            sha256: hex::encode(HashAlg::Sha256.digest(data)),
        };
        assert_eq!(good.to_sign().unwrap(), (HashAlg::Sha256, data.to_vec()));
        let tampered = RequestEntry {
            data: B64.encode(b"signed attributeS"),
            ..good.clone()
        };
        let e = tampered.to_sign().unwrap_err().to_string();
        assert_eq!(e, "request uki: sha256 is not the hash of data");
        let other = RequestEntry {
            algorithm: "rsa-pss-sha256".into(),
            ..good
        };
        let e = other.to_sign().unwrap_err().to_string();
        assert_eq!(e, "request uki: unknown algorithm \"rsa-pss-sha256\"");
    }
}
