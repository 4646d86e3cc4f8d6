//! `verify`'s composefs sealing metadata checks (composefs-oci 0.9.0 `sealing_spec.rs`): every
//! digest an image's manifest (inline) or its referrer artifact claims is compared with what is
//! recomputed here, and every signature is checked as the kernel's `.fs-verity` keyring would
//! check it, against the recomputed digest, so a swapped, truncated or foreign signature fails
//! naming its role.

use base64::Engine;
use serde_json::Value;
use x509_cert::Certificate;

use super::Check;
use crate::composefs_meta::{ARTIFACT_TYPE, Role, artifact, signature, verity_hex};
use crate::source::ImageSource;

/// One role's claim: where it was found, the digest claimed, the signature given.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub role: Role,
    /// `manifest`, `config descriptor`, `layer 2 (sha256:…)`, `artifact sha256:…`.
    pub place: String,
    /// For a `layer` claim: which layer of the image.
    pub layer: Option<usize>,
    pub digest: Option<String>,
    /// The signature's bytes, or why they could not be read (bad base64).
    pub signature: Option<Result<Vec<u8>, String>>,
}

/// Every composefs claim of an image, and the composefs keys that were not understood.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    pub claims: Vec<Claim>,
    pub unknown: Vec<String>,
}

impl Claims {
    pub fn wants(&self, role: Role) -> bool {
        self.claims.iter().any(|c| c.role == role)
    }

    /// Adds the claims of one annotations object found at `place`.
    pub fn add_annotations(&mut self, annotations: &Value, place: &str, layer: Option<usize>) {
        let Some(map) = annotations.as_object() else {
            return;
        };
        for (key, value) in map {
            if !key.starts_with("composefs.") {
                continue;
            }
            let Some((role, is_sig)) = Role::parse_key(key) else {
                self.unknown.push(format!("{place}: {key}"));
                continue;
            };
            let text = value.as_str().unwrap_or_default();
            let claim = self.entry(role, place, layer);
            match is_sig {
                true => {
                    claim.signature = Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .map_err(|e| format!("{key} is not base64: {e}")),
                    )
                }
                false => claim.digest = Some(text.to_owned()),
            }
        }
    }

    fn entry(&mut self, role: Role, place: &str, layer: Option<usize>) -> &mut Claim {
        let found = self
            .claims
            .iter()
            .position(|c| c.role == role && c.place == place && c.layer == layer);
        let index = found.unwrap_or_else(|| {
            self.claims.push(Claim {
                role,
                place: place.to_owned(),
                layer,
                digest: None,
                signature: None,
            });
            self.claims.len() - 1
        });
        &mut self.claims[index]
    }

    /// The inline claims of an image manifest: top level, config and layer descriptors.
    pub fn inline(manifest: &Value) -> Self {
        let mut claims = Claims::default();
        claims.add_annotations(&manifest["annotations"], "manifest", None);
        claims.add_annotations(
            &manifest["config"]["annotations"],
            "config descriptor",
            None,
        );
        if let Some(layers) = manifest["layers"].as_array() {
            for (i, layer) in layers.iter().enumerate() {
                let place = format!(
                    "layer {i} ({})",
                    layer["digest"].as_str().unwrap_or("no digest")
                );
                claims.add_annotations(&layer["annotations"], &place, Some(i));
            }
        }
        claims
    }
}

/// Finds the composefs metadata artifacts whose subject is `subject` (the image manifest's
/// digest) and adds their claims; one check per artifact (or per failure to read one).
pub(crate) fn discover(source: &dyn ImageSource, subject: &str, claims: &mut Claims) -> Vec<Check> {
    let mut out = Vec::new();
    let fail = |detail: String| Check {
        name: "composefs artifact".into(),
        ok: false,
        detail,
    };
    let (found, how) = match source.referrers(subject, ARTIFACT_TYPE) {
        Ok(f) => f,
        Err(e) => return vec![fail(format!("looking for referrers: {e}"))],
    };
    for desc in found {
        let place = format!("artifact {}", desc.digest);
        let parsed = source
            .manifest(&desc)
            .map_err(|e| e.to_string())
            .and_then(|doc| artifact::parse(&doc.json));
        let parsed = match parsed {
            Ok(p) if p.subject == subject => p,
            Ok(p) => {
                out.push(fail(format!(
                    "{place}: its subject is {}, not {subject}",
                    p.subject
                )));
                continue;
            }
            Err(e) => {
                out.push(fail(format!("{place}: {e}")));
                continue;
            }
        };
        let roles: Vec<Role> = parsed.entries.iter().map(|e| e.0).collect();
        // The spec: signatures of the merged EROFS come with the manifest's and config's.
        let complete = roles.contains(&Role::Manifest) && roles.contains(&Role::Config);
        out.push(Check {
            name: "composefs artifact".into(),
            ok: complete,
            detail: format!(
                "{place} ({how}): {}{}",
                roles
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                if complete {
                    ""
                } else {
                    "; the spec requires manifest and config signatures"
                }
            ),
        });
        for (role, digest, layer) in parsed.entries {
            let sig = source.read_blob(&layer).map_err(|e| e.to_string());
            claims.claims.push(Claim {
                role,
                place: place.clone(),
                layer: None,
                digest: Some(digest),
                signature: Some(sig),
            });
        }
    }
    out
}

/// What was recomputed; None where it could not be (the reason says why).
pub(crate) struct Computed<'a> {
    pub manifest_bytes: &'a [u8],
    pub config_bytes: &'a [u8],
    pub merged: Option<Result<String, String>>,
    pub bootable: Result<String, String>,
    pub layers: &'a [Result<String, String>],
}

impl Computed<'_> {
    fn of(&self, claim: &Claim) -> Result<String, String> {
        match claim.role {
            Role::Manifest => Ok(verity_hex(self.manifest_bytes)),
            Role::Config => Ok(verity_hex(self.config_bytes)),
            Role::MergedBootable => self.bootable.clone(),
            Role::Merged => self
                .merged
                .clone()
                .unwrap_or_else(|| Err("not computed".into())),
            Role::Layer => match claim.layer.and_then(|i| self.layers.get(i)) {
                Some(Ok(d)) => Ok(d.clone()),
                Some(Err(why)) => Err(format!("the layer is no tree of its own: {why}")),
                None => Err("not computed".into()),
            },
        }
    }
}

/// One check per claimed digest and per signature; `cert` checks signatures (None: reported
/// as present but unchecked).
pub(crate) fn checks(
    claims: &Claims,
    computed: &Computed,
    cert: Option<&Certificate>,
) -> Vec<Check> {
    let mut out = Vec::new();
    for claim in &claims.claims {
        let recomputed = computed.of(claim);
        let at = &claim.place;
        if let Some(digest) = &claim.digest {
            let (ok, detail) = match &recomputed {
                Ok(r) if r == digest => (true, format!("{at}: {digest:.16}… matches")),
                Ok(r) => (
                    false,
                    format!("{at}: claims {digest:.16}…, recomputed {r:.16}…"),
                ),
                Err(why) => (false, format!("{at}: cannot recompute: {why}")),
            };
            out.push(Check {
                name: format!("composefs {} digest", claim.role),
                ok,
                detail,
            });
        }
        let Some(sig) = &claim.signature else {
            continue;
        };
        let (ok, detail) = match (sig, &recomputed, cert) {
            (Err(e), _, _) => (false, format!("{at}: {e}")),
            (Ok(_), Err(why), _) => (false, format!("{at}: no digest to check against: {why}")),
            (Ok(bytes), Ok(_), None) => (
                true,
                format!("{at}: {} bytes, not checked (no --cert)", bytes.len()),
            ),
            (Ok(bytes), Ok(digest), Some(cert)) => match signature::check(bytes, digest, cert) {
                Ok(()) => (true, format!("{at}: valid for the recomputed digest")),
                Err(e) => (false, format!("{at}: {e}")),
            },
        };
        out.push(Check {
            name: format!("composefs {} signature", claim.role),
            ok,
            detail,
        });
    }
    if !claims.unknown.is_empty() {
        out.push(Check {
            name: "composefs keys not checked".into(),
            ok: true,
            detail: format!(
                "only fsverity-sha512-12 and erofs.v1 keys are recomputed here: {}",
                claims.unknown.join(", ")
            ),
        });
    }
    out
}
