//! Fuzzes path normalization: checks its invariants, and that the
//! reference interpreter's normalizer accepts and rejects the same targets
//! with the same output.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sluice_runtime::fuzz::normalize_against(data, sluice_reference::normalize_target)
});
