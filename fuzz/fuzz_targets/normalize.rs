//! Fuzzes path normalization and checks its invariants.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_runtime::fuzz::normalize(data));
