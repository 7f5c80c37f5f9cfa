//! Replays the checked-in fuzz corpus (`fuzz/corpus/authz_check`) through
//! the function the `authz_check` fuzz target calls, and checks that the
//! corpus seeds are the check requests built here (run with
//! `SLUICE_WRITE_CORPUS=1` to write them again).

use prost::Message;
use sluice_authz::pb::{
    attribute_context, Address, AttributeContext, CheckRequest, EnvoyAddress, HeaderMap,
    HeaderValue, PortSpecifier, SocketAddress,
};

fn socket(ip: &str, port: u32) -> Option<EnvoyAddress> {
    Some(EnvoyAddress {
        address: Some(Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    })
}

/// Check requests as Envoy sends them: HTTP/1.1, HTTP/2 with raw headers,
/// gRPC, a connection, and partial ones.
fn seeds() -> Vec<(&'static str, CheckRequest)> {
    let peer = |principal: &str| attribute_context::Peer {
        address: socket("10.1.2.3", 41000),
        principal: principal.into(),
        ..Default::default()
    };
    let check = |http: Option<attribute_context::HttpRequest>, principal: &str| CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(peer(principal)),
            destination: Some(attribute_context::Peer {
                address: socket("10.1.2.4", 8080),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http,
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let h1 = attribute_context::HttpRequest {
        method: "GET".into(),
        path: "/api/v1/items?page=2".into(),
        host: "web.shop".into(),
        protocol: "HTTP/1.1".into(),
        headers: [
            ("host", "web.shop"),
            (":path", "/api/v1/items?page=2"),
            (":method", "GET"),
            ("x-tenant", "acme"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect(),
        ..Default::default()
    };
    let raw = |pairs: &[(&str, &str)]| HeaderMap {
        headers: pairs
            .iter()
            .map(|(k, v)| HeaderValue {
                key: (*k).into(),
                raw_value: v.as_bytes().to_vec(),
                ..Default::default()
            })
            .collect(),
    };
    let h2 = attribute_context::HttpRequest {
        method: "POST".into(),
        path: "/api/%2e%2e/admin".into(),
        protocol: "HTTP/2".into(),
        header_map: Some(raw(&[
            (":authority", "web.shop"),
            ("x-tenant", "a"),
            ("x-tenant", "b"),
        ])),
        ..Default::default()
    };
    let grpc = attribute_context::HttpRequest {
        method: "POST".into(),
        path: "/billing.v1.Invoices/Get".into(),
        protocol: "HTTP/2".into(),
        header_map: Some(raw(&[
            ("content-type", "application/grpc+proto"),
            ("te", "trailers"),
        ])),
        ..Default::default()
    };
    let mut no_port = check(Some(h1.clone()), "");
    if let Some(a) = no_port.attributes.as_mut() {
        a.destination = None;
    }
    vec![
        (
            "http1",
            check(Some(h1), "spiffe://example.org/ns/shop/sa/web"),
        ),
        ("http2-raw", check(Some(h2), "")),
        (
            "grpc",
            check(Some(grpc), "spiffe://example.org/ns/billing/sa/api"),
        ),
        (
            "connection",
            check(None, "spiffe://example.org/ns/db/sa/client"),
        ),
        ("no-port", no_port),
        ("empty", CheckRequest::default()),
    ]
}

#[test]
fn seeds_run_and_match_the_checked_in_corpus() {
    let dir = sluice_testkit::repository().join("fuzz/corpus/authz_check");
    for (name, check) in seeds() {
        let bytes = check.encode_to_vec();
        sluice_authz::fuzz::check(&bytes);
        let path = dir.join(name);
        if std::env::var_os("SLUICE_WRITE_CORPUS").is_some() {
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (SLUICE_WRITE_CORPUS=1 writes it)", path.display())
        });
        // Maps encode in hash order: compare decoded, not bytes.
        let decoded = CheckRequest::decode(on_disk.as_slice()).unwrap();
        assert_eq!(
            decoded, check,
            "{name}: the seed differs from the corpus file"
        );
    }
}

#[test]
fn corpus_replays() {
    assert!(sluice_testkit::replay_corpus("authz_check", sluice_authz::fuzz::check) >= 6);
}

#[test]
fn truncated_and_garbage_inputs_never_panic() {
    for (_, check) in seeds() {
        let bytes = check.encode_to_vec();
        for cut in 0..bytes.len() {
            sluice_authz::fuzz::check(&bytes[..cut]);
        }
    }
    sluice_authz::fuzz::check(&[0xff; 64]);
}
