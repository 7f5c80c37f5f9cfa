//! `CheckRequest`s as Envoy's `ext_authz` HTTP filter sends them (issue 15),
//! for the `sluice authz` benchmarks: the decision benchmarks' realistic
//! inbound request ([`crate::realistic_inbound`] from
//! [`crate::realistic_peer`]) and the denials the load and zero-allocation
//! tests check.
//!
//! Envoy (HTTP/1.1 downstream, `encode_raw_headers` off) fills
//! `attributes.source` (the peer's socket address and, under mTLS, its
//! principal), `attributes.destination` (the listener's address and
//! principal), `attributes.request.time` and `attributes.request.http`:
//! id, method, the `headers` map (lowercase names, pseudo-headers
//! included), path (the raw target with its query), host, scheme,
//! protocol and size.

use crate::{PEER_IDENTITY, REQUEST_HEADERS, REQUEST_PATH, WEB_PORT};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use envoy_types::pb::google::protobuf::Timestamp;
use std::collections::HashMap;

/// The peer's source port in every check.
pub const PEER_PORT: u32 = 51_234;
/// The address of the listener Envoy received the request on.
pub const DESTINATION_IP: &str = "10.0.7.21";
/// The principal of the local workload (Envoy's own certificate).
pub const DESTINATION_PRINCIPAL: &str = "spiffe://prod.example.com/ns/web/sa/web";
/// The `Host` of the HTTP requests.
pub const HOST: &str = "web.prod.svc.cluster.local:8080";
/// The anonymous peer's IPv4 address (no principal: default deny).
pub const ANONYMOUS_IP: &str = "192.0.2.1";

/// What a check asks: the HTTP request and who sends it.
#[derive(Clone, Copy, Debug)]
pub struct Check<'a> {
    /// The method.
    pub method: &'a str,
    /// The raw request target, query included.
    pub path: &'a str,
    /// The request's own headers (beside the pseudo-headers and the ones
    /// Envoy adds).
    pub headers: &'a [(&'a str, &'a str)],
    /// The source principal (`""`: none).
    pub principal: &'a str,
    /// The source address.
    pub peer_ip: &'a str,
    /// The destination port (the policy's server port).
    pub port: u32,
}

/// [`PEER_IP`] as Envoy writes it in `source.address`.
pub const PEER_IP_TEXT: &str = "2001:db8:4:1::17";

/// The gRPC request headers of the gRPC denial.
pub static GRPC_HEADERS: [(&str, &str); 2] =
    [("content-type", "application/grpc"), ("te", "trailers")];

impl Check<'static> {
    /// The decision benchmarks' allowed inbound request (`GET`
    /// [`REQUEST_PATH`] to `web` from [`PEER_IDENTITY`]): allowed by rule
    /// `svc7-items-checkout` on route `svc7-items`.
    pub fn allowed() -> Self {
        Check {
            method: "GET",
            path: REQUEST_PATH,
            headers: &REQUEST_HEADERS,
            principal: PEER_IDENTITY,
            peer_ip: PEER_IP_TEXT,
            port: u32::from(WEB_PORT),
        }
    }

    /// The same request from an anonymous peer ([`ANONYMOUS_IP`], no
    /// principal): denied by `web`'s default (403).
    pub fn denied() -> Self {
        Check {
            principal: "",
            peer_ip: ANONYMOUS_IP,
            ..Check::allowed()
        }
    }

    /// A gRPC call (`content-type: application/grpc`) of the anonymous peer
    /// on route `svc7`: denied by the default, gRPC status 7.
    pub fn grpc_denied() -> Self {
        Check {
            method: "POST",
            path: "/api/v1/svc7/x",
            headers: &GRPC_HEADERS,
            ..Check::denied()
        }
    }

    /// A path no route of `web` takes: 404.
    pub fn no_route() -> Self {
        Check {
            path: "/nothing/here",
            ..Check::allowed()
        }
    }
}

fn socket(ip: &str, port: u32) -> Option<Address> {
    Some(Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..SocketAddress::default()
        })),
    })
}

/// The `CheckRequest` Envoy sends for `check` received over HTTP/1.1: ten
/// headers with [`REQUEST_HEADERS`] (`:authority`, `:method`, `:path`,
/// `:scheme`, `user-agent`, `accept`, `x-forwarded-proto`, `x-request-id`
/// and the request's own).
pub fn check_request(check: &Check<'_>) -> CheckRequest {
    let request_id = "6f1c2a9e-4b7d-4e21-9c55-0d8e3b1f7a42";
    let mut headers: HashMap<String, String> = [
        (":authority", HOST),
        (":method", check.method),
        (":path", check.path),
        (":scheme", "http"),
        ("user-agent", "checkout-frontend/2.14.1 (rust hyper)"),
        ("accept", "application/json"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", request_id),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in check.headers {
        headers.insert(k.to_string(), v.to_string());
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: socket(check.peer_ip, PEER_PORT),
                principal: check.principal.to_string(),
                ..Peer::default()
            }),
            destination: Some(Peer {
                address: socket(DESTINATION_IP, check.port),
                principal: DESTINATION_PRINCIPAL.to_string(),
                ..Peer::default()
            }),
            request: Some(Request {
                time: Some(Timestamp {
                    seconds: 1_796_000_000,
                    nanos: 123_456_000,
                }),
                http: Some(HttpRequest {
                    id: "9182736450192837465".to_string(),
                    method: check.method.to_string(),
                    headers,
                    path: check.path.to_string(),
                    host: HOST.to_string(),
                    scheme: "http".to_string(),
                    protocol: "HTTP/1.1".to_string(),
                    size: 0,
                    ..HttpRequest::default()
                }),
            }),
            ..AttributeContext::default()
        }),
    }
}

/// [`check_request`] of [`Check::allowed`].
pub fn realistic_check_request() -> CheckRequest {
    check_request(&Check::allowed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PEER_IP;
    use prost::Message;
    use std::net::IpAddr;

    #[test]
    fn the_peer_address_text_is_the_realistic_peer_ip() {
        assert_eq!(PEER_IP_TEXT.parse::<IpAddr>().ok(), Some(PEER_IP));
    }

    #[test]
    fn the_realistic_check_has_ten_headers_and_round_trips() {
        let request = realistic_check_request();
        let http = request
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .expect("an http request");
        assert_eq!(http.headers.len(), 10);
        assert_eq!(http.headers["x-tenant"], "acme-retail");
        let bytes = request.encode_to_vec();
        assert_eq!(CheckRequest::decode(bytes.as_slice()).ok(), Some(request));
    }
}
