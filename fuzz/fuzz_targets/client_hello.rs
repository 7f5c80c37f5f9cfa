//! Fuzzes the TLS ClientHello reader that takes the SNI of transparent
//! connections.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_proxy::fuzz::client_hello(data));
