//! Fuzzes outbound authority parsing (`host:port`, `[v6]:port`, the
//! original port of a transparent connection).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_proxy::fuzz::authority(data));
