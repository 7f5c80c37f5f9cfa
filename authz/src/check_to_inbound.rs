//! A decoded `CheckRequest` viewed as the runtime's inbound request.
//!
//! | `CheckRequest`                                          | Sluice                  |
//! |---------------------------------------------------------|-------------------------|
//! | `attributes.source.principal`                           | peer identity           |
//! | `attributes.source.address` (socket address)            | peer IP                 |
//! | `attributes.destination.address` port, or [`MapConfig::port`] | server port       |
//! | `attributes.request.http.method`, `.path`               | method, raw target      |
//! | `.header_map` (raw, one value each), else `.headers`    | headers                 |
//! | `:authority`, when no `host` was sent                   | `host` header           |
//! | no `attributes.request.http` (network filter)           | a connection (TCP)      |
//!
//! Nothing is copied: a [`CheckView`] borrows the request.

use crate::pb::{attribute_context, Address, CheckRequest, HeaderValue, PortSpecifier};
use sluice_runtime::{Headers, Http, Inbound, Peer};
use std::collections::HashMap;
use std::net::IpAddr;

/// How checks are mapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapConfig {
    /// The policy's server port for every check; `None` takes the port of
    /// `attributes.destination.address`.
    pub port: Option<u16>,
}

/// Why a `CheckRequest` cannot be mapped to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The request has no `attributes`.
    NoAttributes,
    /// No port is configured and `attributes.destination.address` has none.
    NoPort,
    /// The destination port is larger than 65535.
    BadPort {
        /// The port as sent.
        port: u32,
    },
    /// `attributes.request.http` has an empty `method`.
    NoMethod,
    /// `attributes.request.http` has an empty `path`.
    NoPath,
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapError::NoAttributes => f.write_str("the check request has no `attributes`"),
            MapError::NoPort => {
                f.write_str("the check request has no destination port and no `port` is configured")
            }
            MapError::BadPort { port } => {
                write!(f, "the destination port `{port}` is not a TCP port")
            }
            MapError::NoMethod => f.write_str("the check request's http request has no method"),
            MapError::NoPath => f.write_str("the check request's http request has no path"),
        }
    }
}

impl std::error::Error for MapError {}

/// The headers of a check: Envoy's raw `header_map` (sent with
/// `encode_raw_headers: true`, one entry per header line) or its
/// `headers` map (names in lowercase, repeated headers joined with `,`).
#[derive(Clone, Copy, Debug)]
pub enum CheckHeaders<'a> {
    /// `attributes.request.http.header_map.headers`.
    List(&'a [HeaderValue]),
    /// `attributes.request.http.headers`.
    Map(&'a HashMap<String, String>),
}

impl CheckHeaders<'_> {
    /// Calls `f` with each value of `name` (lowercase), as sent.
    fn each_sent(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        match self {
            CheckHeaders::List(list) => {
                for h in list.iter().filter(|h| h.key.eq_ignore_ascii_case(name)) {
                    f(header_value(h));
                }
            }
            // Envoy's map has lowercase names (its contract).
            CheckHeaders::Map(map) => {
                if let Some(v) = map.get(name) {
                    f(v.as_bytes());
                }
            }
        }
    }

    /// Calls `f` with each header name, as sent.
    pub fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
        match self {
            CheckHeaders::List(list) => list.iter().for_each(|h| f(&h.key)),
            CheckHeaders::Map(map) => map.keys().for_each(|k| f(k)),
        }
    }
}

/// A raw header's value: Envoy fills `raw_value` only; other clients may
/// fill `value`.
pub fn header_value(h: &HeaderValue) -> &[u8] {
    if h.raw_value.is_empty() {
        h.value.as_bytes()
    } else {
        &h.raw_value
    }
}

impl Headers for CheckHeaders<'_> {
    /// Envoy sends an HTTP/1.1 `Host` as `:authority`, as for HTTP/2, so
    /// `host` is `:authority` when no `host` was sent; no other
    /// pseudo-header is a header to the policy.
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        let mut any = false;
        self.each_sent(name, &mut |v| {
            any = true;
            f(v);
        });
        if !any && name == "host" {
            self.each_sent(":authority", f);
        }
    }
}

/// The HTTP part of a check.
#[derive(Clone, Copy, Debug)]
struct HttpView<'a> {
    method: &'a str,
    target: &'a str,
    headers: CheckHeaders<'a>,
}

/// A `CheckRequest` as the runtime's request and peer, borrowing from it.
#[derive(Clone, Copy, Debug)]
pub struct CheckView<'a> {
    port: u16,
    peer: Peer<'a>,
    http: Option<HttpView<'a>>,
}

impl<'a> CheckView<'a> {
    /// Maps `check`; fails when it lacks what a decision needs.
    pub fn from_check(check: &'a CheckRequest, config: &MapConfig) -> Result<Self, MapError> {
        let attributes = check.attributes.as_ref().ok_or(MapError::NoAttributes)?;
        let port = match config.port {
            Some(p) => p,
            None => match attributes.destination.as_ref().and_then(socket_port) {
                None | Some(0) => return Err(MapError::NoPort),
                Some(p) => u16::try_from(p).map_err(|_| MapError::BadPort { port: p })?,
            },
        };
        let source = attributes.source.as_ref();
        let peer = Peer {
            ip: source.and_then(socket_ip),
            identity: source
                .map(|s| s.principal.as_str())
                .filter(|p| !p.is_empty()),
        };
        let http = match attributes.request.as_ref().and_then(|r| r.http.as_ref()) {
            None => None,
            Some(h) => {
                if h.method.is_empty() {
                    return Err(MapError::NoMethod);
                }
                if h.path.is_empty() {
                    return Err(MapError::NoPath);
                }
                let headers = match &h.header_map {
                    Some(m) if !m.headers.is_empty() => CheckHeaders::List(&m.headers),
                    _ => CheckHeaders::Map(&h.headers),
                };
                Some(HttpView {
                    method: &h.method,
                    target: &h.path,
                    headers,
                })
            }
        };
        Ok(CheckView { port, peer, http })
    }

    /// The request to decide: HTTP, or a connection when the check has no
    /// HTTP attributes.
    pub fn inbound(&self) -> Inbound<'_> {
        Inbound {
            port: self.port,
            http: self.http.as_ref().map(|h| Http {
                method: h.method,
                path: h.target.as_bytes(),
                headers: &h.headers,
            }),
        }
    }

    /// The calling peer.
    pub fn peer(&self) -> Peer<'a> {
        self.peer
    }

    /// The policy's server port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Method, raw target and headers, for an HTTP check.
    pub fn http(&self) -> Option<(&'a str, &'a str, CheckHeaders<'a>)> {
        self.http.map(|h| (h.method, h.target, h.headers))
    }

    /// Whether the checked request is gRPC (`content-type:
    /// application/grpc…`), so a denial answers in gRPC.
    pub fn is_grpc(&self) -> bool {
        self.http
            .is_some_and(|h| sluice_runtime::is_grpc_content_type(&h.headers))
    }
}

fn socket_address(peer: &attribute_context::Peer) -> Option<&crate::pb::SocketAddress> {
    match peer.address.as_ref()?.address.as_ref()? {
        Address::SocketAddress(s) => Some(s),
        _ => None,
    }
}

fn socket_port(peer: &attribute_context::Peer) -> Option<u32> {
    match socket_address(peer)?.port_specifier.as_ref()? {
        PortSpecifier::PortValue(p) => Some(*p),
        PortSpecifier::NamedPort(_) => None,
    }
}

fn socket_ip(peer: &attribute_context::Peer) -> Option<IpAddr> {
    let text = socket_address(peer)?.address.as_str();
    // Envoy writes IPv6 without brackets; accept them anyway.
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{AttributeContext, EnvoyAddress, HeaderMap, SocketAddress};

    fn addr(ip: &str, port: u32) -> Option<EnvoyAddress> {
        Some(EnvoyAddress {
            address: Some(Address::SocketAddress(SocketAddress {
                address: ip.into(),
                port_specifier: Some(PortSpecifier::PortValue(port)),
                ..Default::default()
            })),
        })
    }

    fn check(http: Option<attribute_context::HttpRequest>) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(attribute_context::Peer {
                    address: addr("10.0.0.7", 51000),
                    principal: "spiffe://example.org/ns/shop/sa/web".into(),
                    ..Default::default()
                }),
                destination: Some(attribute_context::Peer {
                    address: addr("10.0.0.9", 8080),
                    ..Default::default()
                }),
                request: Some(attribute_context::Request {
                    http,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    fn http(headers: &[(&str, &str)]) -> attribute_context::HttpRequest {
        attribute_context::HttpRequest {
            method: "POST".into(),
            path: "/api/../v1/items?x=1".into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            protocol: "HTTP/1.1".into(),
            ..Default::default()
        }
    }

    fn values(h: &dyn Headers, name: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        h.for_each_value(name, &mut |v| out.push(v.to_vec()));
        out
    }

    #[test]
    fn an_http_check_maps_to_an_inbound_request_and_its_peer() {
        let c = check(Some(http(&[("x-tenant", "acme"), (":path", "/x")])));
        let v = CheckView::from_check(&c, &MapConfig::default()).unwrap();
        assert_eq!(v.port(), 8080);
        assert_eq!(v.peer().ip, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(
            v.peer().identity,
            Some("spiffe://example.org/ns/shop/sa/web")
        );
        let r = v.inbound();
        let h = r.http.unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.path, b"/api/../v1/items?x=1");
        assert_eq!(values(h.headers, "x-tenant"), [b"acme".to_vec()]);
        assert!(values(h.headers, "x-other").is_empty());
        assert!(!v.is_grpc());
    }

    #[test]
    fn host_is_the_authority_unless_a_host_was_sent() {
        let c = check(Some(http(&[(":authority", "web.shop")])));
        let v = CheckView::from_check(&c, &MapConfig::default()).unwrap();
        let r = v.inbound();
        assert_eq!(
            values(r.http.unwrap().headers, "host"),
            [b"web.shop".to_vec()]
        );
        let c = check(Some(http(&[(":authority", "a"), ("host", "b")])));
        let v = CheckView::from_check(&c, &MapConfig::default()).unwrap();
        let r = v.inbound();
        assert_eq!(values(r.http.unwrap().headers, "host"), [b"b".to_vec()]);
    }

    #[test]
    fn a_configured_port_wins_over_the_destination() {
        let c = check(Some(http(&[])));
        let v = CheckView::from_check(&c, &MapConfig { port: Some(9000) }).unwrap();
        assert_eq!(v.port(), 9000);
    }

    #[test]
    fn raw_headers_keep_each_value_and_prefer_raw_bytes() {
        let mut h = http(&[("x-tenant", "joined,values")]);
        h.header_map = Some(HeaderMap {
            headers: vec![
                HeaderValue {
                    key: "x-tenant".into(),
                    raw_value: b"a".to_vec(),
                    ..Default::default()
                },
                HeaderValue {
                    key: "X-Tenant".into(),
                    value: "b".into(),
                    ..Default::default()
                },
                HeaderValue {
                    key: "content-type".into(),
                    raw_value: b"application/grpc+proto".to_vec(),
                    ..Default::default()
                },
            ],
        });
        let c = check(Some(h));
        let v = CheckView::from_check(&c, &MapConfig::default()).unwrap();
        let r = v.inbound();
        assert_eq!(
            values(r.http.unwrap().headers, "x-tenant"),
            [b"a".to_vec(), b"b".to_vec()]
        );
        assert!(v.is_grpc());
    }

    #[test]
    fn a_check_without_http_is_a_connection() {
        let c = check(None);
        let v = CheckView::from_check(&c, &MapConfig::default()).unwrap();
        assert!(v.inbound().http.is_none());
        assert!(!v.is_grpc());
    }

    #[test]
    fn peers_without_principal_or_ip_are_unauthenticated_and_unaddressed() {
        let mut c = check(Some(http(&[])));
        let source = c.attributes.as_mut().unwrap().source.as_mut().unwrap();
        source.principal.clear();
        source.address = Some(EnvoyAddress {
            address: Some(Address::Pipe(
                envoy_types::pb::envoy::config::core::v3::Pipe {
                    path: "/run/app.sock".into(),
                    mode: 0,
                },
            )),
        });
        let v = CheckView::from_check(&c, &MapConfig::default()).unwrap();
        assert_eq!(v.peer(), Peer::default());
    }

    #[test]
    fn ipv6_sources_are_parsed_with_or_without_brackets_and_made_canonical() {
        for (text, want) in [
            ("::1", "::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::ffff:10.1.2.3", "10.1.2.3"),
        ] {
            let mut c = check(None);
            c.attributes
                .as_mut()
                .unwrap()
                .source
                .as_mut()
                .unwrap()
                .address = addr(text, 1);
            let v = CheckView::from_check(&c, &MapConfig::default()).unwrap();
            assert_eq!(v.peer().ip, Some(want.parse().unwrap()), "{text}");
        }
    }

    #[test]
    fn checks_missing_what_a_decision_needs_are_named() {
        let empty = CheckRequest::default();
        assert_eq!(
            CheckView::from_check(&empty, &MapConfig::default()).unwrap_err(),
            MapError::NoAttributes
        );
        let mut c = check(None);
        c.attributes.as_mut().unwrap().destination = None;
        assert_eq!(
            CheckView::from_check(&c, &MapConfig::default()).unwrap_err(),
            MapError::NoPort
        );
        c.attributes.as_mut().unwrap().destination = Some(attribute_context::Peer {
            address: addr("10.0.0.9", 70000),
            ..Default::default()
        });
        assert_eq!(
            CheckView::from_check(&c, &MapConfig::default()).unwrap_err(),
            MapError::BadPort { port: 70000 }
        );
        let mut h = http(&[]);
        h.method.clear();
        assert_eq!(
            CheckView::from_check(&check(Some(h)), &MapConfig::default()).unwrap_err(),
            MapError::NoMethod
        );
        let mut h = http(&[]);
        h.path.clear();
        assert_eq!(
            CheckView::from_check(&check(Some(h)), &MapConfig::default()).unwrap_err(),
            MapError::NoPath
        );
        assert_eq!(
            MapError::BadPort { port: 70000 }.to_string(),
            "the destination port `70000` is not a TCP port"
        );
    }
}
