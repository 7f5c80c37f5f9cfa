//! Sluice fleet: carrying policy bundles between machines.
//!
//! A bundle travels as an OCI artifact (an image manifest whose layers are
//! the compiled bundle and its policy source), signed in cosign's key-based
//! format (a simple-signing payload under the `sha256-<hex>.sig` tag,
//! ECDSA P-256 with SHA-256). The CLI pushes, pulls, signs and makes keys
//! with this crate; the proxy polls with it ([`fetch`]). See
//! `docs/distribution.md`.

pub mod artifact;
pub mod fetch;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
pub mod keys;
pub mod layout;
pub mod registry;
pub mod signature;
pub mod source;
