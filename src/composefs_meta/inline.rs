//! Inline composefs metadata (the spec's "composefs-meta-included" mode): the annotations a
//! sealed image manifest carries, as (key, value) lists for `mutate` to place: the merged
//! digests in the manifest's top-level `annotations`, the config digest on the config
//! descriptor, each layer's digest on its descriptor, with `.sig` (base64 DER) beside each
//! signed digest. No manifest digest: it would describe the bytes it is part of.

use base64::Engine;

use super::signature::{self, SignatureError};
use super::{Role, verity_hex};
use crate::signer::CertifiedSigner;

/// Who signs inline, and the prefix of the offline signing request ids (`TAG:` in `sync`,
/// `linux/arm64:` for one platform of several).
pub(crate) struct InlineSigner<'a> {
    pub signer: &'a CertifiedSigner,
    pub request_prefix: String,
}

impl InlineSigner<'_> {
    fn annotate(
        &self,
        role: Role,
        digest_hex: &str,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), SignatureError> {
        let id = format!("{}composefs.{}", self.request_prefix, role.name());
        let sig = signature::sign(self.signer, role, digest_hex, id)?;
        out.push((
            role.signature_key(),
            base64::engine::general_purpose::STANDARD.encode(sig),
        ));
        Ok(())
    }
}

/// The manifest's top-level annotations: `merged` and `merged.bootable` (each when known),
/// signed when `signer` is given.
pub(crate) fn manifest_annotations(
    merged: Option<&str>,
    bootable: Option<&str>,
    signer: Option<&InlineSigner>,
) -> Result<Vec<(String, String)>, SignatureError> {
    let mut out = Vec::new();
    for (role, digest) in [(Role::Merged, merged), (Role::MergedBootable, bootable)] {
        let Some(digest) = digest else { continue };
        out.push((role.digest_key(), digest.to_owned()));
        if let Some(s) = signer {
            s.annotate(role, digest, &mut out)?;
        }
    }
    Ok(out)
}

/// The config descriptor's annotations for the config `bytes`.
pub(crate) fn config_annotations(
    bytes: &[u8],
    signer: Option<&InlineSigner>,
) -> Result<Vec<(String, String)>, SignatureError> {
    let digest = verity_hex(bytes);
    let mut out = vec![(Role::Config.digest_key(), digest.clone())];
    if let Some(s) = signer {
        s.annotate(Role::Config, &digest, &mut out)?;
    }
    Ok(out)
}

/// Each layer descriptor's annotations from its own digest; a layer without one (Err: why)
/// gets none and a warning naming it.
pub(crate) fn layer_annotations(
    layers: &[(String, Result<String, String>)],
) -> (Vec<Vec<(String, String)>>, Vec<String>) {
    let mut warnings = Vec::new();
    let annotations = layers
        .iter()
        .map(|(blob, own)| match own {
            Ok(digest) => vec![(Role::Layer.digest_key(), digest.clone())],
            Err(why) => {
                warnings.push(format!(
                    "layer {blob} has no composefs layer digest: it is not a tree of its own \
                     under composefs-oci's rules ({why})"
                ));
                Vec::new()
            }
        })
        .collect();
    (annotations, warnings)
}
