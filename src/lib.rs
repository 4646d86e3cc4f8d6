//! bootseal: turn an unsealed bootc container image into a sealed one, working on registry blobs.

pub mod authenticode;
pub mod cli;
pub mod keys;
pub mod pe;
pub mod uki;
