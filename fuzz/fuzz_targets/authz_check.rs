//! Fuzzes `sluice authz`'s input: raw bytes decoded as an Envoy
//! `CheckRequest`, mapped to a Sluice request and answered; never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_authz::fuzz::check(data));
