//! Requests and decisions as JSON (spec section 10).
//!
//! A request is parsed from a [`serde_json::Value`] (conformance files convert
//! their TOML tables to one) into owned data, which then lends the runtime's
//! borrowed request types. A [`Decision`] becomes a [`DecisionJson`] that
//! serializes with a fixed field order.

use serde::Serialize;
use serde_json::{Map, Value};
use sluice_runtime::{Decision, Headers, Http, Inbound, Outbound, Peer, Reason};
use std::net::IpAddr;

/// A parsed request: inbound or outbound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `"direction": "inbound"`
    Inbound(InboundRequest),
    /// `"direction": "outbound"`
    Outbound(OutboundRequest),
}

/// Owned request headers, in order, as `(name, value)` pairs.
///
/// A wrapper is needed because a slice cannot be turned into a
/// `&dyn Headers` (it is unsized); this type delegates to the slice impl.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderList(pub Vec<(String, String)>);

impl Headers for HeaderList {
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        self.0[..].for_each_value(name, f);
    }
}

/// Method, path (with query) and headers of an HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The raw request target, e.g. `/metrics?x=1`.
    pub path: String,
    /// The headers in order.
    pub headers: HeaderList,
}

impl HttpRequest {
    /// The runtime view of this request, borrowing from it.
    pub fn as_http(&self) -> Http<'_> {
        Http {
            method: &self.method,
            path: self.path.as_bytes(),
            headers: &self.headers,
        }
    }
}

/// The calling peer of an inbound request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerRequest {
    /// The peer's IP, when given.
    pub ip: Option<IpAddr>,
    /// The peer's verified identity, when given.
    pub identity: Option<String>,
}

impl PeerRequest {
    /// The runtime view of this peer.
    pub fn as_peer(&self) -> Peer<'_> {
        Peer {
            ip: self.ip,
            identity: self.identity.as_deref(),
        }
    }
}

/// An inbound request: HTTP when `http` is set, else a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundRequest {
    /// The destination port.
    pub port: u16,
    /// Method, path and headers; `None` for a connection.
    pub http: Option<HttpRequest>,
    /// The calling peer.
    pub peer: PeerRequest,
}

impl InboundRequest {
    /// The runtime view of this request.
    pub fn as_inbound(&self) -> Inbound<'_> {
        Inbound {
            port: self.port,
            http: self.http.as_ref().map(HttpRequest::as_http),
        }
    }
}

/// An outbound request: HTTP, tunnel (authority only) or TCP (ip and port).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundRequest {
    /// `Host`/`:authority`, or the `CONNECT` target.
    pub authority: Option<String>,
    /// The address the proxy will connect to.
    pub ip: Option<IpAddr>,
    /// The destination port (TCP).
    pub port: Option<u16>,
    /// Method, path and headers of an HTTP request.
    pub http: Option<HttpRequest>,
}

impl OutboundRequest {
    /// The runtime view of this request.
    pub fn as_outbound(&self) -> Outbound<'_> {
        Outbound {
            authority: self.authority.as_deref(),
            ip: self.ip,
            port: self.port,
            http: self.http.as_ref().map(HttpRequest::as_http),
        }
    }
}

/// Parses one request from JSON text.
pub fn parse_request(text: &str) -> Result<Request, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the request is not valid JSON: {e}"))?;
    request_from_value(&value)
}

const INBOUND_FIELDS: &[&str] = &["direction", "port", "method", "path", "headers", "peer"];
const OUTBOUND_FIELDS: &[&str] = &[
    "direction",
    "authority",
    "ip",
    "port",
    "method",
    "path",
    "headers",
];
const PEER_FIELDS: &[&str] = &["ip", "identity"];

/// Reads a request from a JSON value shaped as in spec section 10.
///
/// Unknown fields are errors (they are usually typos); `null` counts as
/// absent for every optional field.
pub fn request_from_value(value: &Value) -> Result<Request, String> {
    let Value::Object(obj) = value else {
        return Err(format!("a request must be an object, not {}", kind(value)));
    };
    let direction = match get(obj, "direction") {
        None => return Err("the request has no `direction` (`inbound` or `outbound`)".into()),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(format!("`direction` must be a string, not {}", kind(other))),
    };
    match direction {
        "inbound" => {
            check_fields(obj, INBOUND_FIELDS, "an inbound request")?;
            let port = match get(obj, "port") {
                Some(v) => port(v)?,
                None => return Err("an inbound request needs a `port`".into()),
            };
            let peer = match get(obj, "peer") {
                None => PeerRequest::default(),
                Some(Value::Object(p)) => {
                    check_fields(p, PEER_FIELDS, "a peer")?;
                    PeerRequest {
                        ip: get(p, "ip").map(|v| ip(v, "peer.ip")).transpose()?,
                        identity: get(p, "identity")
                            .map(|v| string(v, "peer.identity"))
                            .transpose()?,
                    }
                }
                Some(other) => {
                    return Err(format!("`peer` must be an object, not {}", kind(other)))
                }
            };
            Ok(Request::Inbound(InboundRequest {
                port,
                http: http(obj)?,
                peer,
            }))
        }
        "outbound" => {
            check_fields(obj, OUTBOUND_FIELDS, "an outbound request")?;
            Ok(Request::Outbound(OutboundRequest {
                authority: get(obj, "authority")
                    .map(|v| string(v, "authority"))
                    .transpose()?,
                ip: get(obj, "ip").map(|v| ip(v, "ip")).transpose()?,
                port: get(obj, "port").map(port).transpose()?,
                http: http(obj)?,
            }))
        }
        other => Err(format!(
            "`direction` must be `inbound` or `outbound`, not `{other}`"
        )),
    }
}

/// A field's value, treating `null` as absent.
fn get<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn check_fields(obj: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), String> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("`{k}` is not a field of {what}")),
        None => Ok(()),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string(value: &Value, field: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("`{field}` must be a string, not {}", kind(other))),
    }
}

fn port(value: &Value) -> Result<u16, String> {
    value
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| format!("`port` must be an integer from 0 to 65535, not `{value}`"))
}

fn ip(value: &Value, field: &str) -> Result<IpAddr, String> {
    let text = string(value, field)?;
    text.parse()
        .map_err(|_| format!("`{field}` is not an IP address: `{text}`"))
}

/// Method, path and headers of a request object, all or nothing.
fn http(obj: &Map<String, Value>) -> Result<Option<HttpRequest>, String> {
    let method = get(obj, "method")
        .map(|v| string(v, "method"))
        .transpose()?;
    let path = get(obj, "path").map(|v| string(v, "path")).transpose()?;
    let headers = get(obj, "headers").map(headers).transpose()?;
    match (method, path) {
        (Some(method), Some(path)) => Ok(Some(HttpRequest {
            method,
            path,
            headers: headers.unwrap_or_default(),
        })),
        (None, None) if headers.is_none() => Ok(None),
        (None, None) => {
            Err("`headers` needs `method` and `path` (a connection has no headers)".into())
        }
        (Some(_), None) => Err("`method` needs `path` too".into()),
        (None, Some(_)) => Err("`path` needs `method` too".into()),
    }
}

/// `{"name": "value", ...}` or `[["name", "value"], ...]`.
fn headers(value: &Value) -> Result<HeaderList, String> {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(name, v)| match v {
                Value::String(s) => Ok((name.clone(), s.clone())),
                other => Err(format!(
                    "header `{name}` must have a string value, not {}",
                    kind(other)
                )),
            })
            .collect::<Result<_, _>>()
            .map(HeaderList),
        Value::Array(items) => items
            .iter()
            .map(|item| match item.as_array().map(Vec::as_slice) {
                Some([Value::String(n), Value::String(v)]) => Ok((n.clone(), v.clone())),
                _ => Err(format!(
                    "each header in a list must be a `[name, value]` pair of strings, not `{item}`"
                )),
            })
            .collect::<Result<_, _>>()
            .map(HeaderList),
        other => Err(format!(
            "`headers` must be an object or a list of `[name, value]` pairs, not {}",
            kind(other)
        )),
    }
}

/// A backend in a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackendJson {
    /// The backend's name.
    pub name: String,
    /// Its weight.
    pub weight: u32,
}

/// A decision as JSON, fields in the order of spec section 10; fields that do
/// not apply are `null`. `backends` is a list only for reason `service`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecisionJson {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// `rule`, `default`, `service`, `no-route` or `bad-path`.
    pub reason: &'static str,
    /// The inbound server.
    pub server: Option<String>,
    /// The route taken.
    pub route: Option<String>,
    /// The deciding rule.
    pub rule: Option<String>,
    /// Allowed only by audit mode.
    pub audit: bool,
    /// Status of an HTTP denial.
    pub http_status: Option<u16>,
    /// gRPC status of a denial answered in gRPC.
    pub grpc_status: Option<u8>,
    /// The routing service.
    pub service: Option<String>,
    /// The taken route's backends (reason `service` only).
    pub backends: Option<Vec<BackendJson>>,
    /// Whole-request timeout in milliseconds.
    pub timeout_ms: Option<u64>,
}

impl DecisionJson {
    /// Copies a runtime decision.
    pub fn from_decision(d: &Decision<'_>) -> Self {
        DecisionJson {
            decision: if d.allow { "allow" } else { "deny" },
            reason: d.reason.as_str(),
            server: d.server.map(str::to_owned),
            route: d.route.map(str::to_owned),
            rule: d.rule.map(str::to_owned),
            audit: d.audit,
            http_status: d.http_status,
            grpc_status: d.grpc_status,
            service: d.service.map(str::to_owned),
            backends: (d.reason == Reason::Service).then(|| {
                d.backends
                    .iter()
                    .map(|b| BackendJson {
                        name: b.name.to_owned(),
                        weight: b.weight,
                    })
                    .collect()
            }),
            timeout_ms: d.timeout_ms,
        }
    }

    /// One line of JSON, without a newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| error_line(&e.to_string()))
    }

    /// The decision as a JSON value (an object).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
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

/// `{"error":"..."}`, the line printed for a request that has no decision.
pub fn error_line(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::WeightedBackend;

    fn inbound(text: &str) -> InboundRequest {
        match parse_request(text) {
            Ok(Request::Inbound(r)) => r,
            other => panic!("not inbound: {other:?}"),
        }
    }

    fn outbound(text: &str) -> OutboundRequest {
        match parse_request(text) {
            Ok(Request::Outbound(r)) => r,
            other => panic!("not outbound: {other:?}"),
        }
    }

    fn err(text: &str) -> String {
        parse_request(text).expect_err(text)
    }

    #[test]
    fn inbound_http_with_peer() {
        let r = inbound(
            r#"{"direction":"inbound","port":8080,"method":"GET","path":"/metrics?x=1",
                "headers":{"x-tenant":"acme"},"peer":{"ip":"10.1.2.3","identity":"spiffe://td/a"}}"#,
        );
        assert_eq!(r.port, 8080);
        let http = r.http.as_ref().unwrap();
        assert_eq!(http.method, "GET");
        assert_eq!(http.path, "/metrics?x=1");
        assert_eq!(http.headers.0, vec![("x-tenant".into(), "acme".into())]);
        assert_eq!(r.peer.ip, Some("10.1.2.3".parse().unwrap()));
        let peer = r.peer.as_peer();
        assert_eq!(peer.identity, Some("spiffe://td/a"));
        let rt = r.as_inbound();
        assert_eq!(rt.port, 8080);
        let rt_http = rt.http.unwrap();
        assert_eq!(rt_http.path, b"/metrics?x=1");
        let mut seen = Vec::new();
        rt_http
            .headers
            .for_each_value("x-tenant", &mut |v| seen.push(v.to_vec()));
        assert_eq!(seen, vec![b"acme".to_vec()]);
    }

    #[test]
    fn header_list_keeps_order_and_case() {
        let r = inbound(
            r#"{"direction":"inbound","port":80,"method":"GET","path":"/",
                "headers":[["x-list","a"],["X-List","b"],["other","c"]]}"#,
        );
        let http = r.http.unwrap();
        let mut seen = Vec::new();
        http.headers.for_each_value("x-list", &mut |v| {
            seen.push(String::from_utf8_lossy(v).into_owned())
        });
        assert_eq!(seen, ["a", "b"]);
    }

    #[test]
    fn inbound_connection_and_optional_peer() {
        let r = inbound(r#"{"direction":"inbound","port":5432}"#);
        assert!(r.http.is_none());
        assert_eq!(r.peer, PeerRequest::default());
        assert!(r.as_inbound().http.is_none());
        let r = inbound(r#"{"direction":"inbound","port":5432,"peer":{}}"#);
        assert_eq!(r.peer, PeerRequest::default());
        let r =
            inbound(r#"{"direction":"inbound","port":5432,"peer":{"ip":"::1","identity":null}}"#);
        assert_eq!(r.peer.ip, Some("::1".parse().unwrap()));
        assert_eq!(r.peer.identity, None);
    }

    #[test]
    fn outbound_shapes() {
        let http = outbound(
            r#"{"direction":"outbound","authority":"payments.prod:8080","method":"GET","path":"/","headers":{}}"#,
        );
        assert_eq!(http.authority.as_deref(), Some("payments.prod:8080"));
        assert!(http.http.is_some());
        let tunnel = outbound(r#"{"direction":"outbound","authority":"github.com:443"}"#);
        assert!(tunnel.http.is_none());
        assert_eq!(tunnel.as_outbound().authority, Some("github.com:443"));
        let tcp = outbound(r#"{"direction":"outbound","ip":"10.20.0.5","port":5432}"#);
        let rt = tcp.as_outbound();
        assert_eq!(rt.ip, Some("10.20.0.5".parse().unwrap()));
        assert_eq!(rt.port, Some(5432));
        assert!(rt.authority.is_none() && rt.http.is_none());
        let with_ip = outbound(
            r#"{"direction":"outbound","authority":"metadata.local","ip":"169.254.169.254","method":"GET","path":"/"}"#,
        );
        assert_eq!(with_ip.ip, Some("169.254.169.254".parse().unwrap()));
    }

    #[test]
    fn malformed_requests_are_errors() {
        assert!(err("{").contains("not valid JSON"));
        assert!(err("[1]").contains("must be an object"));
        assert!(err(r#"{"port":1}"#).contains("no `direction`"));
        assert!(err(r#"{"direction":"sideways"}"#).contains("`sideways`"));
        assert!(err(r#"{"direction":"inbound"}"#).contains("needs a `port`"));
        assert!(err(r#"{"direction":"inbound","port":70000}"#).contains("`70000`"));
        assert!(err(r#"{"direction":"inbound","port":-1}"#).contains("`port`"));
        assert!(err(r#"{"direction":"inbound","port":"80"}"#).contains("`port`"));
        assert!(err(r#"{"direction":"inbound","port":80,"method":"GET"}"#).contains("needs `path`"));
        assert!(err(r#"{"direction":"inbound","port":80,"path":"/"}"#).contains("needs `method`"));
        assert!(
            err(r#"{"direction":"inbound","port":80,"headers":{}}"#).contains("`headers` needs")
        );
        assert!(err(r#"{"direction":"inbound","port":80,"authority":"x"}"#)
            .contains("`authority` is not a field of an inbound request"));
        assert!(
            err(r#"{"direction":"inbound","port":80,"peer":{"ip":"10.0.0.300"}}"#)
                .contains("`10.0.0.300`")
        );
        assert!(
            err(r#"{"direction":"inbound","port":80,"peer":{"name":"x"}}"#)
                .contains("`name` is not a field of a peer")
        );
        assert!(err(r#"{"direction":"inbound","port":80,"peer":"x"}"#).contains("`peer` must be"));
        assert!(err(r#"{"direction":"outbound","peer":{}}"#).contains("`peer` is not a field"));
        assert!(err(r#"{"direction":"outbound","authority":7}"#)
            .contains("`authority` must be a string"));
        assert!(err(r#"{"direction":"outbound","authority":"a","method":"GET","path":"/","headers":{"a":1}}"#)
            .contains("header `a`"));
        assert!(err(r#"{"direction":"outbound","authority":"a","method":"GET","path":"/","headers":[["a"]]}"#)
            .contains("`[name, value]`"));
        assert!(err(
            r#"{"direction":"outbound","authority":"a","method":"GET","path":"/","headers":"a"}"#
        )
        .contains("`headers` must be"));
    }

    #[test]
    fn decision_json_field_order_and_nulls() {
        let mut d = Decision::new(false, Reason::NoRoute);
        d.server = Some("web");
        d.http_status = Some(404);
        let line = DecisionJson::from_decision(&d).to_line();
        assert_eq!(
            line,
            r#"{"decision":"deny","reason":"no-route","server":"web","route":null,"rule":null,"audit":false,"http_status":404,"grpc_status":null,"service":null,"backends":null,"timeout_ms":null}"#
        );
    }

    #[test]
    fn decision_json_service_backends() {
        let backends = [
            WeightedBackend {
                name: "stable",
                weight: 90,
            },
            WeightedBackend {
                name: "canary",
                weight: 0,
            },
        ];
        let mut d = Decision::new(true, Reason::Service);
        d.service = Some("payments");
        d.route = Some("main");
        d.backends = &backends;
        d.timeout_ms = Some(2000);
        let j = DecisionJson::from_decision(&d);
        assert_eq!(
            j.to_line(),
            r#"{"decision":"allow","reason":"service","server":null,"route":"main","rule":null,"audit":false,"http_status":null,"grpc_status":null,"service":"payments","backends":[{"name":"stable","weight":90},{"name":"canary","weight":0}],"timeout_ms":2000}"#
        );
        let v = j.to_value();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut fields: Vec<_> = DECISION_FIELDS.iter().map(|s| s.to_string()).collect();
        fields.sort();
        assert_eq!(keys, fields);
    }

    #[test]
    fn error_lines_escape() {
        assert_eq!(error_line("bad \"x\""), r#"{"error":"bad \"x\""}"#);
    }
}
