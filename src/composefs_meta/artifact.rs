//! The composefs metadata artifact (placeholder, filled in below).
