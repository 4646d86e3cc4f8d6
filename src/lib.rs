//! bootseal: turn an unsealed bootc container image into a sealed one, working on registry blobs.
pub mod auth;
pub mod kargs;
pub mod manifest;
pub mod reference;
pub mod source;
pub mod verify;
