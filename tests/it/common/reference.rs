//! The reference: composefs-oci 0.9.0's own pipeline, as bootc runs it (bootc 1.16.9
//! `crates/lib/src/bootc_composefs/repo.rs` and `update.rs`).
//!
//! A throw-away insecure SHA-512 repository; `pull_image` of `oci:DIR:TAG` (composefs-oci reads
//! OCI layouts itself, no skopeo); `create_filesystem`; `transform_for_boot`; `compute_image_id`.
//! For V1 also `generate_boot_image`, bootc's install path, which must agree.

use std::sync::Arc;

use composefs::erofs::format::FormatVersion;
use composefs::fsverity::{Algorithm, FsVerityHashValue, Sha512HashValue};
use composefs::repository::{Repository, RepositoryConfig};
use composefs_boot::BootOps;

use super::image_builder::BuiltImage;

pub fn format(version: u8) -> FormatVersion {
    match version {
        1 => FormatVersion::V1,
        2 => FormatVersion::V2,
        v => panic!("no EROFS version {v}"),
    }
}

/// composefs-oci's digest of `image`, or its error as text.
pub fn try_reference_digest(image: &BuiltImage, version: u8) -> Result<String, String> {
    reference_pipeline(image, version, true)
}

/// The reference without the extra `generate_boot_image` cross-check (for timing).
pub fn reference_digest_plain(image: &BuiltImage, version: u8) -> String {
    reference_pipeline(image, version, false)
        .unwrap_or_else(|e| panic!("reference pipeline failed on {}: {e}", image.oci_ref()))
}

/// `image` as composefs-oci sees it: pulled into a throw-away insecure SHA-512 repository
/// (`pull_image` of `oci:DIR:TAG`) and turned into its tree by `create_filesystem`, before any
/// boot transform. The repository is deleted with `dir`: bind it (`dir: _dir`) while the
/// repository is used, since `..` drops it at once.
pub struct Pulled {
    pub dir: tempfile::TempDir,
    pub repo: Arc<Repository<Sha512HashValue>>,
    pub manifest_digest: composefs_oci::OciDigest,
    pub fs: composefs::tree::FileSystem<Sha512HashValue>,
}

pub fn pull(image: &BuiltImage) -> Result<Pulled, String> {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _) = Repository::<Sha512HashValue>::init_path(
        rustix::fs::CWD,
        dir.path().join("repo"),
        RepositoryConfig::new(Algorithm::SHA512).set_insecure(),
    )
    .map_err(|e| format!("{e:#}"))?;
    let repo = Arc::new(repo);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (pull, _) = rt
        .block_on(composefs_oci::pull_image(
            &repo,
            &image.oci_ref(),
            None,
            None,
            Arc::new(composefs_oci::NullReporter),
        ))
        .map_err(|e| format!("{e:#}"))?;
    let fs = composefs_oci::image::create_filesystem(
        &repo,
        &pull.config_digest,
        Some(&pull.config_verity),
        &Default::default(),
    )
    .map_err(|e| format!("{e:#}"))?;
    Ok(Pulled {
        dir,
        repo,
        manifest_digest: pull.manifest_digest,
        fs,
    })
}

fn reference_pipeline(
    image: &BuiltImage,
    version: u8,
    check_install_path: bool,
) -> Result<String, String> {
    let Pulled {
        dir: _dir,
        repo,
        manifest_digest,
        mut fs,
    } = pull(image)?;
    fs.transform_for_boot(&repo).map_err(|e| format!("{e:#}"))?;
    let id = fs.compute_image_id(format(version)).to_hex();
    if version == 1 && check_install_path {
        let installed =
            composefs_oci::generate_boot_image(&repo, &manifest_digest, &Default::default())
                .map_err(|e| format!("{e:#}"))?;
        assert_eq!(
            installed.to_hex(),
            id,
            "generate_boot_image disagrees with create_filesystem"
        );
    }
    Ok(id)
}

pub fn reference_digest(image: &BuiltImage, version: u8) -> String {
    try_reference_digest(image, version)
        .unwrap_or_else(|e| panic!("reference pipeline failed on {}: {e}", image.oci_ref()))
}

/// composefs-rs's dumpfile of `image`'s bootable tree, as `cfsctl oci dump --bootable` builds
/// it: composefs-oci pulls the layout, `create_filesystem`, composefs-boot `transform_for_boot`,
/// composefs `write_dumpfile`.
pub fn reference_dumpfile(image: &BuiltImage) -> String {
    let Pulled {
        dir: _dir,
        repo,
        mut fs,
        ..
    } = pull(image).unwrap();
    fs.transform_for_boot(&repo).unwrap();
    let mut out = Vec::new();
    composefs::dumpfile::write_dumpfile(&mut out, &fs).unwrap();
    String::from_utf8(out).unwrap()
}
