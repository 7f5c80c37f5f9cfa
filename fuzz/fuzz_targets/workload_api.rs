//! Fuzzes the SPIFFE Workload API client's gRPC frame reader and the
//! decoding of its messages into identity updates.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_identity::fuzz::workload_api(data));
