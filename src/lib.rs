//! bootseal: turn an unsealed bootc container image into a sealed one, working on registry blobs.
//!
//! Modules follow the pipeline left to right: image reference -> source (through `registry`,
//! checked by `content_digest`) -> layer stream -> tree -> digest -> command line (`cmdline`) ->
//! UKI (`uki`, `pe`) -> signature (`authenticode`, `signer`; `efi_keys` for Secure Boot
//! enrollment payloads) -> new layer -> `mutate` -> sink; `seal` strings them together, `sync`
//! runs it over a repository's tags; `diff` compares two trees' composefs dumpfiles (from
//! `digest` or a file); the binary's `cli` only parses flags.

pub mod authenticode;
pub mod bootc_paths;
pub mod cert_chain;
pub mod civil_time;
pub mod cmdline;
pub mod composefs_meta;
pub mod compression;
pub mod content_digest;
pub mod diff;
pub mod digest;
pub mod efi_keys;
pub mod erofs;
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
pub mod text;
pub mod tree;
pub mod uki;
pub mod verify;
pub(crate) mod worker_pool;
