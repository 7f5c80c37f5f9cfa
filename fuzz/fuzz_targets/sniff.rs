//! Fuzzes protocol sniffing on transparent connections: prefixes decide
//! as the whole does.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_proxy::fuzz::sniff(data));
