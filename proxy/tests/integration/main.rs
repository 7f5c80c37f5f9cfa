//! The proxy's integration tests, one test binary: real sockets on
//! 127.0.0.1, the proxy started in process. Each module covers one part
//! of the proxy; `support` holds what they share. (The fuzz corpus replay
//! is `tests/fuzz_corpus.rs`, as in the other fuzzed crates.)

mod app_protocol;
mod grpc;
mod http_enforcement;
mod inbound_hardening;
mod limits;
mod mtls;
mod outbound;
mod outbound_tls;
mod reload;
mod remote_policy;
mod support;
mod upgrade;
mod workload_api;
