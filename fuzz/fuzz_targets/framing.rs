//! Fuzzes the proxy's HTTP/1.1 request framing watch: the same verdict
//! however the bytes are split into reads.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_proxy::fuzz::framing(data));
