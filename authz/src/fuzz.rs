//! The entry point of the `authz_check` fuzz target and of the corpus
//! replay test (`authz/tests/fuzz_corpus.rs`); not public API.

use crate::check_to_inbound::{CheckView, MapConfig};
use crate::decision_to_response as respond;
use crate::pb::CheckRequest;
use prost::Message;
use sluice_runtime::{Decision, Reason};

/// Decodes `data` as a `CheckRequest` the way tonic does, maps it with and
/// without a configured port, and builds every answer for it. Must never
/// panic.
pub fn check(data: &[u8]) {
    let Ok(check) = CheckRequest::decode(data) else {
        return;
    };
    for config in [MapConfig::default(), MapConfig { port: Some(8080) }] {
        match CheckView::from_check(&check, &config) {
            Ok(view) => {
                let request = view.inbound();
                if let Some(http) = request.http {
                    let mut n = 0usize;
                    for name in ["content-type", "x-tenant", "host"] {
                        http.headers.for_each_value(name, &mut |v| n += v.len());
                    }
                    std::hint::black_box((http.method, http.path, n));
                }
                let d = Decision {
                    server: Some("web"),
                    route: Some("api"),
                    rule: Some("r"),
                    http_status: Some(403),
                    grpc_status: view.is_grpc().then_some(7),
                    ..Decision::new(data.len().is_multiple_of(2), Reason::Rule)
                };
                let all = respond::AddHeaders {
                    peer_identity: true,
                    route: true,
                    rule: true,
                };
                let answer = respond::decided(&Ok(d), &view, &all);
                std::hint::black_box(answer.encode_to_vec());
                std::hint::black_box(respond::not_ready(view.is_grpc()));
            }
            Err(e) => {
                std::hint::black_box(respond::bad_check(&e).encode_to_vec());
            }
        }
    }
}
