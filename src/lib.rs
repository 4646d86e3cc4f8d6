//! bootseal: turn an unsealed bootc container image into a sealed one, working on registry blobs.
//!
//! Modules follow the pipeline left to right: layer stream -> tree -> digest.

pub mod digest;
pub mod layer_stream;
pub mod tree;
pub mod verify;
