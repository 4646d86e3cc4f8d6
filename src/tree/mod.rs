//! Tree: OCI tar layers turned into one in-memory composefs tree, with composefs-oci semantics.
//!
//! [`parse::parse_layer`] runs per layer (in parallel, see `digest`) and yields a compact entry
//! list; [`apply::TreeBuilder`] applies those lists strictly in layer order. Contents of files
//! chosen by a [`CaptureSet`] are stashed on the way and read back through [`CapturedFiles`].

pub mod apply;
pub mod capture;
pub mod parse;
pub mod path;

use std::fmt;

pub use apply::TreeBuilder;
pub use capture::{Blob, CaptureSet, CapturedFile, CapturedFiles};
pub use parse::{ParsedLayer, parse_layer};

/// fs-verity object ids in bootc's composefs repositories are SHA-512 (bootc 1.16.9
/// `crates/lib/src/store/mod.rs`, `ComposefsRepository`).
pub type ObjectId = composefs::fsverity::Sha512HashValue;

/// Something wrong inside one layer: the tar path (when known) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    pub path: Option<String>,
    pub message: String,
}

impl EntryError {
    /// An error about the layer as a whole (decompression, digest, truncation).
    pub fn layer(message: impl Into<String>) -> Self {
        Self {
            path: None,
            message: crate::text::escape_controls(&message.into()),
        }
    }

    /// An error about one tar path (a very long one shortened, see
    /// [`path::shorten_for_message`]).
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: Some(path::shorten_for_message(path.into())),
            message: crate::text::escape_controls(&message.into()),
        }
    }

    /// Names the last good entry when the error has no path of its own.
    pub(crate) fn after(mut self, last: &Option<String>) -> Self {
        if self.path.is_none()
            && let Some(p) = last
        {
            self.path = Some(path::shorten_for_message(format!("after {p}")));
        }
        self
    }
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for EntryError {}
