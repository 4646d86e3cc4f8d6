//! Digest: the composefs fs-verity digest bootc puts on the kernel command line, from layers.
//!
//! [`compute`] streams every layer once (in parallel, see [`pipeline`]), builds the tree with
//! composefs-oci's semantics, applies `transform_for_oci` and the boot transform with SELinux
//! labels from the image's own policy ([`finish`]), and returns the fs-verity SHA-512 of the EROFS
//! image in the requested format, exactly as bootc's `compute-composefs-digest-from-storage` and
//! `generate_boot_image` do (bootc 1.16.9 `crates/lib/src/cli.rs`,
//! `crates/lib/src/bootc_composefs/repo.rs`; composefs-oci 0.9.0 `boot::generate_boot_image`).

mod finish;
mod image;
mod layer_cache;
mod pipeline;
mod plain;

pub use image::{layer_inputs, of_image};
pub use layer_cache::{DEFAULT_BUDGET, LayerCache};
pub use plain::{PlainTree, layer_digest_of_tar};

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::content_digest::ContentDigest;
use crate::tree::{CaptureSet, CapturedFiles};

/// EROFS image format the digest is computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErofsVersion {
    /// Default of bootc ≥ 1.16.4 for new installs.
    #[default]
    V1,
    /// Hosts installed by bootc ≤ 1.16.3 (legacy repositories).
    V2,
}

impl ErofsVersion {
    pub fn number(self) -> u8 {
        match self {
            ErofsVersion::V1 => 1,
            ErofsVersion::V2 => 2,
        }
    }

    pub(crate) fn format(self) -> composefs::erofs::format::FormatVersion {
        match self {
            ErofsVersion::V1 => composefs::erofs::format::FormatVersion::V1,
            ErofsVersion::V2 => composefs::erofs::format::FormatVersion::V2,
        }
    }
}

impl std::str::FromStr for ErofsVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1" | "v1" | "V1" => Ok(ErofsVersion::V1),
            "2" | "v2" | "V2" => Ok(ErofsVersion::V2),
            _ => Err(format!("unknown EROFS version {s:?} (expected 1 or 2)")),
        }
    }
}

/// Which composefs-rs release's digest semantics to follow where releases differ.
///
/// They differ in one place (composefs-boot `empty_toplevel_dirs`): when it empties `/boot`
/// and `/sysroot` it copies `/usr`'s mtime seconds to them; 0.9.4 also copies the nanoseconds.
/// With EROFS V1 (which stores nanoseconds) the digests differ exactly when those directories'
/// sub-second mtimes differ from `/usr`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComposefsCompat {
    /// composefs-rs 0.9.0, identical to commit 0fbc853 that bootc 1.16.7–1.16.9 pin.
    #[default]
    V0_9_0,
    /// composefs-rs 0.9.4 (crates.io, 2026-10-09).
    V0_9_4,
}

impl ComposefsCompat {
    pub fn as_str(self) -> &'static str {
        match self {
            ComposefsCompat::V0_9_0 => "0.9.0",
            ComposefsCompat::V0_9_4 => "0.9.4",
        }
    }
}

impl std::str::FromStr for ComposefsCompat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "0.9.0" => Ok(ComposefsCompat::V0_9_0),
            "0.9.4" => Ok(ComposefsCompat::V0_9_4),
            _ => Err(format!(
                "unknown composefs-rs compatibility {s:?} (expected 0.9.0 or 0.9.4)"
            )),
        }
    }
}

/// Why a layer could not be opened (the source's own error, shown as it is).
pub type OpenError = Box<dyn std::error::Error + Send + Sync>;

/// Opens a layer's compressed bytes.
pub type OpenLayer = Box<dyn FnOnce() -> Result<Box<dyn Read + Send>, OpenError> + Send>;

/// One layer as the digest needs it, independent of where the bytes come from.
pub struct LayerInput {
    /// The compressed blob digest; used in messages.
    pub digest: String,
    pub media_type: String,
    /// The config's `rootfs.diff_ids` entry for this layer.
    pub diff_id: String,
    /// Compressed bytes, already verified against `digest` by the source while they stream.
    pub open: OpenLayer,
}

impl LayerInput {
    /// An uncompressed in-memory tar layer (e.g. the seal pipeline's whiteouts).
    pub fn from_tar(tar: Arc<[u8]>) -> Self {
        let digest = ContentDigest::sha256_of(&tar).to_string();
        Self {
            digest: digest.clone(),
            media_type: "application/vnd.oci.image.layer.v1.tar".to_string(),
            diff_id: digest,
            open: Box::new(move || Ok(Box::new(std::io::Cursor::new(tar)) as Box<dyn Read + Send>)),
        }
    }
}

/// What to compute besides the digest.
#[derive(Debug, Clone, Default)]
pub struct DigestOptions {
    pub erofs_version: ErofsVersion,
    /// composefs-rs release whose semantics the digest follows.
    pub compat: ComposefsCompat,
    /// Files whose contents the caller wants back (see [`CaptureSet`]).
    pub capture: CaptureSet,
    /// Uncompressed tar layers applied after the image's layers, in order.
    pub extra_layers: Vec<Arc<[u8]>>,
    /// Keep the EROFS image bytes in the report (for fsck.erofs and debugging).
    pub keep_erofs: bool,
    /// Keep the composefs dumpfile of the final tree in the report.
    pub keep_dumpfile: bool,
    /// Layers processed at once; `None` means the number of CPUs.
    pub parallelism: Option<usize>,
    /// Parsed layers shared with other digests of the same run (`sync`).
    pub layer_cache: Option<Arc<LayerCache>>,
    /// Also compute each layer's own `layer` digest (composefs OCI sealing spec;
    /// [`DigestReport::layer_digests`]).
    pub layer_digests: bool,
}

/// Wall-clock time per phase.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Decompress, hash, parse and apply all layers.
    pub layers: Duration,
    /// OCI and boot transforms, SELinux labelling.
    pub transforms: Duration,
    /// EROFS serialisation and its fs-verity digest.
    pub erofs: Duration,
    pub total: Duration,
}

/// The digest and what was measured on the way.
#[derive(Debug)]
pub struct DigestReport {
    pub image: String,
    /// fs-verity SHA-512 of the EROFS image, 128 lowercase hex digits.
    pub digest_hex: String,
    pub erofs_version: ErofsVersion,
    pub layer_count: usize,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// Regular files larger than 64 bytes (stored as external objects) and their bytes.
    pub external_files: u64,
    pub external_bytes: u64,
    pub timings: Timings,
    /// Things that may make the digest differ between bootc versions.
    pub warnings: Vec<String>,
    pub captured: CapturedFiles,
    pub erofs: Option<Vec<u8>>,
    pub dumpfile: Option<String>,
    /// With [`DigestOptions::layer_digests`]: each of the image's layers' own digest, in layer
    /// order (not those applied with [`Ingested::apply_tar`]: see [`layer_digest_of_tar`]);
    /// Err says why a layer has no tree of its own.
    pub layer_digests: Vec<Result<String, String>>,
}

impl DigestReport {
    /// The machine-readable summary (`bootseal digest --json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "image": self.image,
            "digest": self.digest_hex,
            "erofs_version": self.erofs_version.number(),
            "layers": self.layer_count,
            "compressed_bytes": self.compressed_bytes,
            "uncompressed_bytes": self.uncompressed_bytes,
            "external_files": self.external_files,
            "external_bytes": self.external_bytes,
            "timings_ms": {
                "layers": self.timings.layers.as_millis() as u64,
                "transforms": self.timings.transforms.as_millis() as u64,
                "erofs": self.timings.erofs.as_millis() as u64,
                "total": self.timings.total.as_millis() as u64,
            },
            "warnings": self.warnings,
        })
    }
}

/// A one-line error naming the image, and where known the layer and the tar path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestError {
    pub image: String,
    pub layer: Option<String>,
    pub path: Option<String>,
    pub message: String,
}

impl std::fmt::Display for DigestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.image)?;
        if let Some(layer) = &self.layer {
            write!(f, ": layer {layer}")?;
        }
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for DigestError {}

impl From<crate::source::SourceError> for DigestError {
    fn from(e: crate::source::SourceError) -> Self {
        DigestError::image(&e.image, e.message)
    }
}

impl DigestError {
    fn image(image: &str, message: impl Into<String>) -> Self {
        Self {
            image: image.to_string(),
            layer: None,
            path: None,
            message: message.into(),
        }
    }
}

/// Computes the composefs digest of the image made of `layers` (in `diff_ids` order) plus
/// `opts.extra_layers`.
pub fn compute(
    image_name: &str,
    layers: Vec<LayerInput>,
    opts: &DigestOptions,
) -> Result<DigestReport, DigestError> {
    ingest(image_name, layers, opts)?.finish(opts)
}

/// Layers applied to a tree, before the transforms: the point where a caller may look at the
/// image's files (kernel, stub, os-release) and add a layer of its own before the digest.
pub struct Ingested {
    image: String,
    built: pipeline::BuiltTree,
    capture: CaptureSet,
    layer_count: usize,
    start: Instant,
    layers_time: Duration,
}

/// Streams and applies `layers` then `opts.extra_layers`, stashing the files `opts.capture`
/// (plus the SELinux policy) names.
pub fn ingest(
    image_name: &str,
    mut layers: Vec<LayerInput>,
    opts: &DigestOptions,
) -> Result<Ingested, DigestError> {
    let start = Instant::now();
    layers.extend(opts.extra_layers.iter().cloned().map(LayerInput::from_tar));
    let layer_count = layers.len();

    let mut capture = opts.capture.clone();
    capture.extend(&CaptureSet::selinux_policy());
    let parallelism = opts.parallelism.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let built = pipeline::build_tree(
        image_name,
        layers,
        &capture,
        parallelism,
        opts.layer_cache.as_deref(),
        opts.layer_digests.then_some(opts.erofs_version),
    )?;
    Ok(Ingested {
        image: image_name.to_string(),
        built,
        capture,
        layer_count,
        start,
        layers_time: start.elapsed(),
    })
}

impl Ingested {
    /// The files of the tree as it is now that `set` names (their contents only if they were
    /// also in the capture set given to [`ingest`]).
    pub fn captured(&self, set: &CaptureSet) -> CapturedFiles {
        CapturedFiles::collect(&self.built.tree.fs, set, &self.built.tree.stash)
    }

    /// The tree as it is now (before the OCI and boot transforms).
    pub fn tree(&self) -> &composefs::tree::FileSystem<crate::tree::ObjectId> {
        &self.built.tree.fs
    }

    /// Applies one more uncompressed tar layer, e.g. the seal pipeline's own layer.
    pub fn apply_tar(&mut self, tar: &[u8]) -> Result<(), DigestError> {
        let layer_digest = ContentDigest::sha256_of(tar).to_string();
        let to_err = |e: crate::tree::EntryError| DigestError {
            image: self.image.clone(),
            layer: Some(layer_digest.clone()),
            path: e.path.clone(),
            message: e.message.clone(),
        };
        let cancel = std::sync::atomic::AtomicBool::new(false);
        let mut reader = tar;
        let parsed =
            crate::tree::parse_layer(&mut reader, &self.capture, &cancel).map_err(&to_err)?;
        self.built.uncompressed_bytes += parsed.uncompressed_bytes;
        self.built.tree.apply(parsed).map_err(&to_err)?;
        self.layer_count += 1;
        Ok(())
    }

    /// Transforms the tree as bootc does and computes the digest.
    pub fn finish(self, opts: &DigestOptions) -> Result<DigestReport, DigestError> {
        let pipeline::BuiltTree {
            tree,
            compressed_bytes,
            uncompressed_bytes,
            external_files,
            external_bytes,
            layer_digests,
        } = self.built;
        let finished = finish::finish_on_own_stack(tree, opts)
            .map_err(|message| DigestError::image(&self.image, message))?;
        let mut timings = finished.timings;
        timings.layers = self.layers_time;
        timings.total = self.start.elapsed();
        Ok(DigestReport {
            image: self.image,
            digest_hex: finished.digest_hex,
            erofs_version: opts.erofs_version,
            layer_count: self.layer_count,
            compressed_bytes,
            uncompressed_bytes,
            external_files,
            external_bytes,
            timings,
            warnings: finished.warnings,
            captured: finished.captured,
            erofs: finished.erofs,
            dumpfile: finished.dumpfile,
            layer_digests,
        })
    }
}
