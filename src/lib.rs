//! bootseal: turn an unsealed bootc container image into a sealed one, working on registry blobs.
//!
//! Modules follow the pipeline left to right: image reference -> source -> layer stream -> tree
//! -> digest -> UKI -> signature -> new layer -> sink; `seal` strings them together, `sync` runs
//! it over a repository's tags, and `cli` only parses flags.

pub mod authenticode;
pub mod cli;
pub mod cmdline;
pub mod digest;
pub mod efi_keys;
pub mod layer_stream;
pub mod layer_writer;
pub mod manifest;
pub mod mutate;
pub mod pe;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod seal;
pub mod signer;
pub mod sink;
pub mod source;
pub mod sync;
pub mod tree;
pub mod uki;
pub mod verify;

/// Key and certificate files; kept at the crate root for existing callers.
pub use signer::keys;
