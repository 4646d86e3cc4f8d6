//! bootseal: turn an unsealed bootc container image into a sealed one, working on registry blobs.
//!
//! Modules follow the pipeline left to right: image reference -> source -> layer stream -> tree
//! -> digest -> UKI -> signature -> new layer -> sink; `seal` strings them together and `cli`
//! only parses flags.

pub mod auth;
pub mod authenticode;
pub mod cli;
pub mod cmdline;
pub mod digest;
pub mod layer_stream;
pub mod layer_writer;
pub mod manifest;
pub mod mutate;
pub mod pe;
pub mod progress;
pub mod reference;
pub mod seal;
pub mod signer;
pub mod sink;
pub mod source;
pub mod tree;
pub mod uki;
pub mod verify;

/// Key and certificate files; kept at the crate root for existing callers.
pub use signer::keys;
