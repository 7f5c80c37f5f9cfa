//! Fuzzes the policy parser and diagnostic rendering.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_lang::fuzz_parse(data));
