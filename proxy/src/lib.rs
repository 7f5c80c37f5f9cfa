//! The Sluice proxy: enforces a compiled policy bundle on real traffic.
//!
//! Depends on `sluice-runtime` only; the `sluice` binary compiles a policy
//! source when the configuration names one and hands the bundle bytes over.
