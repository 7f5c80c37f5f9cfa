//! Requests and decision summaries that the reference's test files share.

#![allow(dead_code)] // each test file uses its own part

use sluice_reference::{Decision, Direction, Request};

/// An inbound HTTP request to `port`.
pub fn http(port: u16, method: &str, path: &str) -> Request {
    Request {
        method: Some(method.to_string()),
        path: Some(path.to_string()),
        ..Request::inbound(port)
    }
}

/// An outbound HTTP request to `authority`.
pub fn out_http(authority: &str, method: &str, path: &str) -> Request {
    Request {
        authority: Some(authority.to_string()),
        method: Some(method.to_string()),
        path: Some(path.to_string()),
        ..Request::outbound()
    }
}

/// `r` with the header `name: value` added.
pub fn with_header(mut r: Request, name: &str, value: &str) -> Request {
    r.headers.push((name.to_string(), value.to_string()));
    r
}

/// `r` as a gRPC request (`content-type: application/grpc`).
pub fn grpc(r: Request) -> Request {
    with_header(r, "content-type", "application/grpc")
}

/// `r` from a peer with the SPIFFE ID `id`.
pub fn with_identity(mut r: Request, id: &str) -> Request {
    r.peer_identity = Some(id.to_string());
    r
}

/// A request from generated parts: `peer` is the peer's address (as text)
/// and identity, `destination` the authority and the address (as text).
pub fn request_of(
    inbound: bool,
    port: Option<u16>,
    method: Option<String>,
    path: Option<String>,
    headers: Vec<(String, String)>,
    peer: (Option<&str>, Option<String>),
    destination: (Option<String>, Option<&str>),
) -> Request {
    let (peer_ip, peer_identity) = peer;
    let (authority, ip) = destination;
    Request {
        direction: if inbound {
            Direction::Inbound
        } else {
            Direction::Outbound
        },
        port,
        method,
        path,
        headers,
        peer_ip: peer_ip.map(|i| i.parse().unwrap()),
        peer_identity,
        authority,
        ip: ip.map(|i| i.parse().unwrap()),
    }
}

/// A decision's (allow, reason, rule, audit, HTTP status, gRPC status).
pub fn summary(
    d: &Decision,
) -> (
    bool,
    &'static str,
    Option<&str>,
    bool,
    Option<u16>,
    Option<u8>,
) {
    (
        d.allow,
        d.reason,
        d.rule.as_deref(),
        d.audit,
        d.http_status,
        d.grpc_status,
    )
}
