//! UEFI Secure Boot key material: the EFI signature lists (`.esl`) and time-based authenticated
//! variable updates (`.auth`) that put PK, KEK and db into firmware, and the PK/KEK/db key set
//! `bootseal keys create` writes. Layouts follow the UEFI specification (§8.2.2 "Variable
//! authentication", §32.4 "Signature database") as efitools' `cert-to-efi-sig-list.c` and
//! `sign-efi-sig-list.c` write them.

pub mod auth;
pub mod create;
pub mod enrollment;
pub mod esl;
pub mod guid;

use thiserror::Error;

pub use auth::{AuthVariable, EfiTime, SecureBootVar};
pub use enrollment::Enrollment;
pub use guid::Guid;

/// Why an EFI key structure could not be built or parsed.
#[derive(Debug, Error)]
pub enum EfiKeyError {
    #[error("bad GUID {0:?}: expected 8-4-4-4-12 hex digits")]
    BadGuid(String),
    #[error("{what}: truncated at byte {offset} (need {need} more bytes)")]
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
    },
    #[error("{what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("{0}")]
    Io(String),
}
