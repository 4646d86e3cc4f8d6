//! Layer compression: one type for how a layer blob is compressed, owning the media types
//! that name it, both ways: reading (any layer media type the OCI image-spec `media-types.md`
//! and Docker schema2 define, distributable or not) and writing (the one type a manifest of a
//! given family uses for a new layer).

mod gunzip;

pub(crate) use gunzip::MultiGunzip;

use crate::manifest::{
    DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST,
};

/// containers/image's `DockerV2SchemaLayerMediaTypeUncompressed`.
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    /// A plain tar (`…layer.v1.tar`).
    None,
}

impl Compression {
    /// The compression a layer of `media_type` is read with; any other media type is an error.
    pub fn from_media_type(media_type: &str) -> Result<Self, String> {
        Ok(match media_type {
            OCI_LAYER_TAR
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | DOCKER_LAYER_TAR => Compression::None,
            OCI_LAYER_GZIP
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | DOCKER_LAYER_GZIP
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            OCI_LAYER_ZSTD | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Compression::Zstd
            }
            other => return Err(format!("unknown layer media type {other:?}")),
        })
    }

    /// The media type of a new layer compressed this way in a manifest of
    /// `manifest_media_type`; Docker schema2 has no zstd layer type.
    pub fn layer_media_type(self, manifest_media_type: &str) -> Result<&'static str, String> {
        match (manifest_media_type, self) {
            (OCI_MANIFEST, Compression::Gzip) => Ok(OCI_LAYER_GZIP),
            (OCI_MANIFEST, Compression::Zstd) => Ok(OCI_LAYER_ZSTD),
            (OCI_MANIFEST, Compression::None) => Ok(OCI_LAYER_TAR),
            (DOCKER_MANIFEST, Compression::Gzip) => Ok(DOCKER_LAYER_GZIP),
            (DOCKER_MANIFEST, Compression::None) => Ok(DOCKER_LAYER_TAR),
            (DOCKER_MANIFEST, Compression::Zstd) => Err(
                "a Docker schema2 manifest cannot carry a zstd layer; use --layer-compression gzip"
                    .into(),
            ),
            (other, _) => Err(format!("cannot add a layer to a manifest of type {other}")),
        }
    }

    /// The default for a new layer in a manifest family. The layer is mostly the UKI,
    /// already-compressed data: gzip gains nothing on it at ~35 MB/s, zstd passes it through
    /// at hundreds of MB/s (README, "Performance"). Docker schema2 has no zstd layer type, so
    /// it keeps gzip.
    pub fn default_for(manifest_media_type: &str) -> Compression {
        if manifest_media_type == DOCKER_MANIFEST {
            Compression::Gzip
        } else {
            Compression::Zstd
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gzip" => Ok(Self::Gzip),
            "zstd" => Ok(Self::Zstd),
            "none" => Ok(Self::None),
            _ => Err(format!(
                "unknown compression {s:?} (expected gzip, zstd or none)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_read_back_the_same_way() {
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let written = c.layer_media_type(OCI_MANIFEST).unwrap();
            assert_eq!(Compression::from_media_type(written).unwrap(), c);
            if let Ok(docker) = c.layer_media_type(DOCKER_MANIFEST) {
                assert_eq!(Compression::from_media_type(docker).unwrap(), c);
            }
        }
        assert!(Compression::Zstd.layer_media_type(DOCKER_MANIFEST).is_err());
        assert!(Compression::Gzip.layer_media_type("text/plain").is_err());
        assert!(Compression::from_media_type("application/octet-stream").is_err());
    }
}
