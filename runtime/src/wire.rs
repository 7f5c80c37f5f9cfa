//! Requests and decisions as JSON (spec section 10): one set of wire types
//! with serde derives, behind the `serde` feature.
//!
//! [`Request`] is tagged by `direction`; its shapes are closed (an unknown
//! field is an error, usually a typo) and `null` counts as absent for every
//! optional field. `headers` is read as an object or as a list of
//! `[name, value]` pairs and written as a list of pairs. The string type `S`
//! and the headers type `H` are parameters so that writers can borrow: the
//! owned defaults ([`String`], [`HeaderList`]) are what readers get.
//!
//! [`Decision`] is written with every field of section 10 in order; a field
//! that does not apply is `null`. `backends` is a list exactly when the
//! reason is `service` (the only decisions that have backends), else `null`.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

use crate::{Headers, Http, Inbound, Outbound};

/// A request: inbound or outbound, tagged by `direction`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "direction",
    rename_all = "lowercase",
    expecting = "a request object with a `direction` (`inbound` or `outbound`)"
)]
pub enum Request<S = String, H = HeaderList> {
    /// `"direction": "inbound"`
    Inbound(InboundRequest<S, H>),
    /// `"direction": "outbound"`
    Outbound(OutboundRequest<S, H>),
}

/// An inbound request: HTTP when `method` and `path` are given, else a
/// connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an inbound request object")]
pub struct InboundRequest<S = String, H = HeaderList> {
    /// The destination port.
    #[serde(deserialize_with = "port")]
    pub port: u16,
    /// The method, e.g. `GET`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<S>,
    /// The raw request target, e.g. `/metrics?x=1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<S>,
    /// The headers in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<H>,
    /// The calling peer; absent is a peer with neither IP nor identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<Peer<S>>,
}

/// An outbound request: HTTP (authority, method, path), a tunnel (authority
/// only) or TCP (ip and port); HTTP and tunnels may give `ip` too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an outbound request object")]
pub struct OutboundRequest<S = String, H = HeaderList> {
    /// `Host`/`:authority`, or the `CONNECT` target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<S>,
    /// The address the proxy will connect to.
    #[serde(
        default,
        deserialize_with = "optional_ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip: Option<IpAddr>,
    /// The destination port (TCP).
    #[serde(
        default,
        deserialize_with = "optional_port",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u16>,
    /// The method, e.g. `GET`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<S>,
    /// The raw request target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<S>,
    /// The headers in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<H>,
}

/// The calling peer of an inbound request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "`peer` as an object")]
pub struct Peer<S = String> {
    /// The peer's IP; without it the peer matches no `network`.
    #[serde(
        default,
        deserialize_with = "optional_ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip: Option<IpAddr>,
    /// The peer's verified identity; without it the peer is unauthenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<S>,
}

impl<S> Default for Peer<S> {
    fn default() -> Self {
        Peer {
            ip: None,
            identity: None,
        }
    }
}

/// Owned request headers, in order, as `(name, value)` pairs: read from an
/// object or a list of pairs, written as a list of pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct HeaderList(pub Vec<(String, String)>);

impl Headers for HeaderList {
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        self.0[..].for_each_value(name, f);
    }
}

/// A request whose `method`, `path` and `headers` do not go together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeError(&'static str);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ShapeError {}

/// Method, path and headers go together: all or nothing (headers may be
/// left out of an HTTP request).
fn check_http<S, H>(
    method: &Option<S>,
    path: &Option<S>,
    headers: &Option<H>,
) -> Result<(), ShapeError> {
    match (method, path, headers) {
        (Some(_), Some(_), _) | (None, None, None) => Ok(()),
        (None, None, Some(_)) => Err(ShapeError(
            "`headers` needs `method` and `path` (a connection has no headers)",
        )),
        (Some(_), None, _) => Err(ShapeError("`method` needs `path` too")),
        (None, Some(_), _) => Err(ShapeError("`path` needs `method` too")),
    }
}

/// The runtime view of method, path and headers, when both method and
/// path are given.
fn as_http<'r, S: AsRef<str>, H: Headers>(
    method: &'r Option<S>,
    path: &'r Option<S>,
    headers: &'r Option<H>,
) -> Option<Http<'r>> {
    match (method, path) {
        (Some(method), Some(path)) => Some(Http {
            method: method.as_ref(),
            path: path.as_ref().as_bytes(),
            headers: match headers {
                Some(h) => h,
                None => &crate::NoHeaders,
            },
        }),
        _ => None,
    }
}

impl<S, H> Request<S, H> {
    /// Checks what the types cannot: `method`, `path` and `headers` come
    /// together or not at all.
    pub fn check(&self) -> Result<(), ShapeError> {
        match self {
            Request::Inbound(r) => check_http(&r.method, &r.path, &r.headers),
            Request::Outbound(r) => check_http(&r.method, &r.path, &r.headers),
        }
    }
}

impl<S: AsRef<str>, H: Headers> InboundRequest<S, H> {
    /// The runtime view of this request (HTTP when method and path are
    /// given), borrowing from it.
    pub fn as_inbound(&self) -> Inbound<'_> {
        Inbound {
            port: self.port,
            http: as_http(&self.method, &self.path, &self.headers),
        }
    }

    /// The runtime view of the peer (no IP, no identity when absent).
    pub fn as_peer(&self) -> crate::Peer<'_> {
        match &self.peer {
            Some(p) => crate::Peer {
                ip: p.ip,
                identity: p.identity.as_ref().map(AsRef::as_ref),
            },
            None => crate::Peer {
                ip: None,
                identity: None,
            },
        }
    }
}

impl<S: AsRef<str>, H: Headers> OutboundRequest<S, H> {
    /// The runtime view of this request, borrowing from it.
    pub fn as_outbound(&self) -> Outbound<'_> {
        Outbound {
            authority: self.authority.as_ref().map(AsRef::as_ref),
            ip: self.ip,
            port: self.port,
            http: as_http(&self.method, &self.path, &self.headers),
        }
    }
}

/// A backend of a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Backend<S = String> {
    /// The backend's name.
    pub name: S,
    /// Its weight.
    pub weight: u32,
}

/// A decision, fields in the order of spec section 10; fields that do not
/// apply are `null`, and `backends` is a list only for reason `service`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision<S = String> {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// `rule`, `default`, `service`, `no-route` or `bad-path`.
    pub reason: &'static str,
    /// The inbound server.
    pub server: Option<S>,
    /// The route taken.
    pub route: Option<S>,
    /// The deciding rule.
    pub rule: Option<S>,
    /// Allowed only by audit mode.
    pub audit: bool,
    /// Status of an HTTP denial.
    pub http_status: Option<u16>,
    /// gRPC status of a denial answered in gRPC.
    pub grpc_status: Option<u8>,
    /// The routing service.
    pub service: Option<S>,
    /// The taken route's backends (reason `service` only).
    pub backends: Option<Vec<Backend<S>>>,
    /// Whole-request timeout in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// The names of every decision field, in output order.
pub const DECISION_FIELDS: &[&str] = &[
    "decision",
    "reason",
    "server",
    "route",
    "rule",
    "audit",
    "http_status",
    "grpc_status",
    "service",
    "backends",
    "timeout_ms",
];

impl<'a, S: From<&'a str>> Decision<S> {
    /// The wire form of a runtime decision (`S = &str` borrows its names,
    /// `S = String` copies them).
    pub fn from_runtime(d: &crate::Decision<'a>) -> Self {
        Decision {
            decision: if d.allow { "allow" } else { "deny" },
            reason: d.reason.as_str(),
            server: d.server.map(S::from),
            route: d.route.map(S::from),
            rule: d.rule.map(S::from),
            audit: d.audit,
            http_status: d.http_status,
            grpc_status: d.grpc_status,
            service: d.service.map(S::from),
            backends: (d.reason == crate::Reason::Service).then(|| {
                d.backends
                    .iter()
                    .map(|b| Backend {
                        name: S::from(b.name),
                        weight: b.weight,
                    })
                    .collect()
            }),
            timeout_ms: d.timeout_ms,
        }
    }
}

fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    d.deserialize_u16(PortVisitor)
}

fn optional_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    Option::<WirePort>::deserialize(d).map(|p| p.map(|p| p.0))
}

fn optional_ip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    Option::<WireIp>::deserialize(d).map(|ip| ip.map(|ip| ip.0))
}

/// A port read with a message that names the field.
struct WirePort(u16);

impl<'de> Deserialize<'de> for WirePort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        port(d).map(WirePort)
    }
}

struct PortVisitor;

impl Visitor<'_> for PortVisitor {
    type Value = u16;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`port` as an integer from 0 to 65535")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u16, E> {
        u16::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u16, E> {
        u16::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
}

/// An IP address read from a string, with the text in the message.
struct WireIp(IpAddr);

impl<'de> Deserialize<'de> for WireIp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IpVisitor;
        impl Visitor<'_> for IpVisitor {
            type Value = IpAddr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IP address as a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IpAddr, E> {
                v.parse()
                    .map_err(|_| E::custom(format!("not an IP address: `{v}`")))
            }
        }
        d.deserialize_str(IpVisitor).map(WireIp)
    }
}

impl<'de> Deserialize<'de> for HeaderList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;
        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = HeaderList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`headers` as an object or a list of `[name, value]` pairs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderList, A::Error> {
                let mut list = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(name) = map.next_key::<String>()? {
                    let value = map.next_value::<String>().map_err(|e| {
                        de::Error::custom(format!("header `{name}` must have a string value: {e}"))
                    })?;
                    list.push((name, value));
                }
                Ok(HeaderList(list))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HeaderList, A::Error> {
                let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(pair) = seq.next_element::<(String, String)>().map_err(|e| {
                    de::Error::custom(format!(
                        "each header in a list must be a `[name, value]` pair of strings: {e}"
                    ))
                })? {
                    list.push(pair);
                }
                Ok(HeaderList(list))
            }
        }
        d.deserialize_any(HeadersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Request {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn requests_read_both_header_forms_and_null_as_absent() {
        let object = read(
            r#"{"direction":"inbound","port":80,"method":"GET","path":"/",
                "headers":{"a":"1","b":"2"},"peer":{"ip":null,"identity":"spiffe://td/x"}}"#,
        );
        let list = read(
            r#"{"direction":"inbound","port":80,"method":"GET","path":"/",
                "headers":[["a","1"],["b","2"]],"peer":{"identity":"spiffe://td/x"}}"#,
        );
        assert_eq!(object, list);
        let Request::Inbound(r) = &list else {
            panic!("not inbound")
        };
        assert!(r.as_inbound().http.is_some());
        assert_eq!(r.as_peer().identity, Some("spiffe://td/x"));
        let tcp = read(r#"{"direction":"outbound","ip":"10.0.0.1","port":5432,"method":null}"#);
        let Request::Outbound(o) = &tcp else {
            panic!("not outbound")
        };
        assert!(o.as_outbound().http.is_none() && o.as_outbound().port == Some(5432));
    }

    #[test]
    fn requests_write_what_they_read() {
        let text = r#"{"direction":"inbound","port":8080,"method":"GET","path":"/a?b","headers":[["x","1"],["x","2"]],"peer":{"ip":"10.1.2.3"}}"#;
        assert_eq!(serde_json::to_string(&read(text)).unwrap(), text);
        let tunnel = r#"{"direction":"outbound","authority":"github.com:443"}"#;
        assert_eq!(serde_json::to_string(&read(tunnel)).unwrap(), tunnel);
    }

    #[test]
    fn shapes_are_closed_and_checked() {
        for bad in [
            r#"{"direction":"inbound","port":80,"authority":"a"}"#,
            r#"{"direction":"outbound","peer":{}}"#,
            r#"{"direction":"inbound","port":80,"peer":{"name":"x"}}"#,
            r#"{"direction":"inbound","port":65536}"#,
            r#"{"direction":"inbound"}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
        let partial = read(r#"{"direction":"inbound","port":80,"method":"GET"}"#);
        assert_eq!(
            partial.check(),
            Err(ShapeError("`method` needs `path` too"))
        );
    }

    #[test]
    fn backends_are_a_list_only_for_service() {
        let backends = [crate::WeightedBackend {
            name: "stable",
            id: crate::BackendId::new(0),
            weight: 100,
        }];
        let mut d = crate::Decision::new(true, crate::Reason::Service);
        d.backends = &backends;
        let routed = Decision::<&str>::from_runtime(&d);
        assert_eq!(
            routed.backends,
            Some(vec![Backend {
                name: "stable",
                weight: 100
            }])
        );
        let d = crate::Decision::new(false, crate::Reason::NoRoute);
        let line = serde_json::to_string(&Decision::<&str>::from_runtime(&d)).unwrap();
        assert!(line.contains(r#""backends":null"#), "{line}");
    }
}
