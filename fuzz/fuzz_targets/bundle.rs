//! Fuzzes the bundle loader (and decisions on whatever loads).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_runtime::fuzz::load_bundle(data));
