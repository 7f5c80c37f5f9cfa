//! Requests and decisions as JSON (spec section 10), with the runtime's
//! wire types ([`sluice_runtime::wire`]).
//!
//! A request is read from JSON text or from a [`serde_json::Value`]
//! (conformance files convert their TOML tables to one) into owned data,
//! which then lends the runtime's borrowed request types. A runtime decision
//! becomes a [`DecisionJson`] that serializes with a fixed field order.

use serde::Deserialize;
use serde_json::Value;
pub use sluice_runtime::wire::{
    HeaderList, InboundRequest, OutboundRequest, Peer as PeerRequest, DECISION_FIELDS,
};

/// A parsed request: inbound or outbound.
pub type Request = sluice_runtime::wire::Request;

/// A backend in a decision.
pub type BackendJson = sluice_runtime::wire::Backend;

/// A decision as JSON, fields in the order of spec section 10; fields that do
/// not apply are `null`. `backends` is a list only for reason `service`.
pub type DecisionJson = sluice_runtime::wire::Decision;

/// Parses one request from JSON text.
pub fn parse_request(text: &str) -> Result<Request, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result = Request::deserialize(&mut de).and_then(|r| de.end().map(|()| r));
    match result {
        Err(e) if e.is_syntax() || e.is_eof() => Err(format!("the request is not valid JSON: {e}")),
        // serde also reads a tagged enum from a list; the spec's shape is
        // an object
        _ if !text.trim_start().starts_with('{') => Err(NOT_AN_OBJECT.into()),
        Err(e) => Err(e.to_string()),
        Ok(request) => checked(request),
    }
}

const NOT_AN_OBJECT: &str = "a request must be an object";

/// Reads a request from a JSON value shaped as in spec section 10.
///
/// Unknown fields are errors (they are usually typos); `null` counts as
/// absent for every optional field.
pub fn request_from_value(value: &Value) -> Result<Request, String> {
    if !value.is_object() {
        return Err(NOT_AN_OBJECT.into());
    }
    checked(Request::deserialize(value).map_err(|e| e.to_string())?)
}

/// The request when its `method`, `path` and `headers` go together.
fn checked(request: Request) -> Result<Request, String> {
    request.check().map_err(|e| e.to_string())?;
    Ok(request)
}

/// JSON output of a [`DecisionJson`].
pub trait DecisionJsonExt {
    /// One line of JSON, without a newline.
    fn to_line(&self) -> String;
    /// The decision as a JSON value (an object).
    fn to_value(&self) -> Value;
}

impl DecisionJsonExt for DecisionJson {
    fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| error_line(&e.to_string()))
    }

    fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// `{"error":"..."}`, the line printed for a request that has no decision.
pub fn error_line(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::{BackendId, Decision, Reason, WeightedBackend};

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
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.path.as_deref(), Some("/metrics?x=1"));
        assert_eq!(
            r.headers.as_ref().unwrap().0,
            vec![("x-tenant".into(), "acme".into())]
        );
        assert_eq!(
            r.peer.as_ref().unwrap().ip,
            Some("10.1.2.3".parse().unwrap())
        );
        let peer = r.as_peer();
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
        let rt = r.as_inbound();
        let http = rt.http.unwrap();
        let mut seen = Vec::new();
        http.headers.for_each_value("x-list", &mut |v| {
            seen.push(String::from_utf8_lossy(v).into_owned())
        });
        assert_eq!(seen, ["a", "b"]);
    }

    #[test]
    fn inbound_connection_and_optional_peer() {
        let r = inbound(r#"{"direction":"inbound","port":5432}"#);
        assert!(r.method.is_none() && r.path.is_none() && r.headers.is_none());
        assert_eq!(r.peer, None);
        assert!(r.as_inbound().http.is_none());
        let r = inbound(r#"{"direction":"inbound","port":5432,"peer":{}}"#);
        assert_eq!(r.peer, Some(PeerRequest::default()));
        let r =
            inbound(r#"{"direction":"inbound","port":5432,"peer":{"ip":"::1","identity":null}}"#);
        assert_eq!(r.as_peer().ip, Some("::1".parse().unwrap()));
        assert_eq!(r.as_peer().identity, None);
    }

    #[test]
    fn outbound_shapes() {
        let http = outbound(
            r#"{"direction":"outbound","authority":"payments.prod:8080","method":"GET","path":"/","headers":{}}"#,
        );
        assert_eq!(http.authority.as_deref(), Some("payments.prod:8080"));
        assert!(http.as_outbound().http.is_some());
        let tunnel = outbound(r#"{"direction":"outbound","authority":"github.com:443"}"#);
        assert!(tunnel.as_outbound().http.is_none());
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
        assert!(err(r#"["inbound",80]"#).contains("must be an object"));
        assert!(err(r#"{"port":1}"#).contains("missing field `direction`"));
        assert!(err(r#"{"direction":"sideways"}"#).contains("`sideways`"));
        assert!(err(r#"{"direction":"inbound"}"#).contains("missing field `port`"));
        assert!(err(r#"{"direction":"inbound","port":70000}"#).contains("`70000`"));
        assert!(err(r#"{"direction":"inbound","port":-1}"#).contains("`port`"));
        assert!(err(r#"{"direction":"inbound","port":"80"}"#).contains("`port`"));
        assert!(err(r#"{"direction":"inbound","port":80,"method":"GET"}"#).contains("needs `path`"));
        assert!(err(r#"{"direction":"inbound","port":80,"path":"/"}"#).contains("needs `method`"));
        assert!(
            err(r#"{"direction":"inbound","port":80,"headers":{}}"#).contains("`headers` needs")
        );
        assert!(err(r#"{"direction":"inbound","port":80,"authority":"x"}"#)
            .contains("unknown field `authority`"));
        assert!(
            err(r#"{"direction":"inbound","port":80,"peer":{"ip":"10.0.0.300"}}"#)
                .contains("`10.0.0.300`")
        );
        assert!(
            err(r#"{"direction":"inbound","port":80,"peer":{"name":"x"}}"#)
                .contains("unknown field `name`")
        );
        assert!(err(r#"{"direction":"inbound","port":80,"peer":"x"}"#)
            .contains("expected `peer` as an object"));
        assert!(err(r#"{"direction":"outbound","peer":{}}"#).contains("unknown field `peer`"));
        assert!(err(r#"{"direction":"outbound","authority":7}"#).contains("expected a string"));
        assert!(err(r#"{"direction":"outbound","authority":"a","method":"GET","path":"/","headers":{"a":1}}"#)
            .contains("header `a`"));
        assert!(err(r#"{"direction":"outbound","authority":"a","method":"GET","path":"/","headers":[["a"]]}"#)
            .contains("`[name, value]`"));
        assert!(err(
            r#"{"direction":"outbound","authority":"a","method":"GET","path":"/","headers":"a"}"#
        )
        .contains("expected `headers` as an object or a list"));
    }

    #[test]
    fn decision_json_field_order_and_nulls() {
        let mut d = Decision::new(false, Reason::NoRoute);
        d.server = Some("web");
        d.http_status = Some(404);
        let line = DecisionJson::from_runtime(&d).to_line();
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
                id: BackendId::new(0),
                weight: 90,
            },
            WeightedBackend {
                name: "canary",
                id: BackendId::new(1),
                weight: 0,
            },
        ];
        let mut d = Decision::new(true, Reason::Service);
        d.service = Some("payments");
        d.route = Some("main");
        d.backends = &backends;
        d.timeout_ms = Some(2000);
        let j = DecisionJson::from_runtime(&d);
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
