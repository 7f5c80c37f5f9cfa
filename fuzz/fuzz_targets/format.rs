//! Fuzzes the policy formatter (`sluice fmt`): idempotent, keeps every token
//! and comment, never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_lang::format::fuzz_format(data));
