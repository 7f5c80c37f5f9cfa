//! Decisions turned into answers and forwarded requests. Pure functions,
//! no I/O.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Uri};
use http_body_util::Full;
use sluice_runtime::normalize::{normalize_path, split_target};
use sluice_runtime::{Decision, Headers, Reason, Scratch};

/// The header carrying the verified peer identity to the application.
pub(crate) const PEER_IDENTITY: HeaderName = HeaderName::from_static("x-sluice-peer-identity");

/// The header telling why the proxy answered instead of the application.
pub(crate) const PROXY_ERROR: HeaderName = HeaderName::from_static("x-sluice-error");

/// [`Headers`] over an `http::HeaderMap`, without copying.
pub(crate) struct HeaderMapHeaders<'a>(pub &'a HeaderMap);

impl Headers for HeaderMapHeaders<'_> {
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        for value in self.0.get_all(name) {
            f(value.as_bytes());
        }
    }
}

/// The decision's outcome as a metric label: `allow`, `deny`,
/// `would-deny` (allowed by audit), `no-route` or `bad-path`.
pub(crate) fn outcome(d: &Decision<'_>) -> &'static str {
    match (d.reason, d.allow, d.audit) {
        (Reason::NoRoute, false, _) => "no-route",
        (Reason::BadPath, false, _) => "bad-path",
        (_, true, true) => "would-deny",
        (_, true, false) => "allow",
        (_, false, _) => "deny",
    }
}

/// The answer to a denied request: gRPC trailers-only when the decision
/// has a gRPC status, else the HTTP status with a one-line body.
pub(crate) fn deny_response(d: &Decision<'_>) -> Response<Full<Bytes>> {
    let denial = d.denial();
    if let Some((grpc, message)) = denial.grpc {
        return grpc_response(grpc, message, denial.error);
    }
    let status = StatusCode::from_u16(denial.http_status).unwrap_or(StatusCode::FORBIDDEN);
    text_response(status, denial.body, denial.error)
}

/// A trailers-only gRPC answer (HTTP 200, status in the headers, no body).
pub(crate) fn grpc_response(
    grpc_status: u8,
    message: &str,
    why: &'static str,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(u16::from(grpc_status)));
    if let Ok(v) = HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
    h.insert(PROXY_ERROR, HeaderValue::from_static(why));
    r
}

/// A plain-text answer from the proxy itself.
pub(crate) fn text_response(
    status: StatusCode,
    body: &'static str,
    why: &'static str,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(PROXY_ERROR, HeaderValue::from_static(why));
    r
}

/// The answer to a request whose body the client sent malformed (bad
/// chunked encoding) or cut short: 400, and the connection is closed.
pub(crate) fn bad_body_response() -> Response<Full<Bytes>> {
    let mut r = text_response(
        StatusCode::BAD_REQUEST,
        "malformed or incomplete request body\n",
        "bad-request",
    );
    r.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Why a request's framing or target is ambiguous (request smuggling), if
/// it is: both `Content-Length` and `Transfer-Encoding`, several
/// `Content-Length`, or several `Host` (RFC 9112 section 3.2).
pub(crate) fn ambiguous_framing(headers: &HeaderMap) -> Option<&'static str> {
    let lengths = headers.get_all(http::header::CONTENT_LENGTH).iter().count();
    if lengths > 1 {
        return Some("several content-length headers\n");
    }
    if lengths == 1 && headers.contains_key(http::header::TRANSFER_ENCODING) {
        return Some("both content-length and transfer-encoding\n");
    }
    if headers.get_all(http::header::HOST).iter().nth(1).is_some() {
        return Some("several host headers\n");
    }
    None
}

/// Whether the request asks for a gRPC answer (`content-type: application/grpc…`).
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().len() >= 16 && v.as_bytes()[..16].eq_ignore_ascii_case(b"application/grpc")
    })
}

/// The request target forwarded to the application: the normalized path
/// and the query as sent, or `None` when the path cannot be normalized.
/// The path is the one the runtime normalized deciding this request
/// (`decided`, see [`Scratch::normalized_path`]); only when that decision
/// normalized none (an inbound request on a port no server covers) is it
/// normalized here, in `buf`.
pub(crate) fn forwarded_target(
    target: &[u8],
    decided: &Scratch,
    buf: &mut Vec<u8>,
) -> Option<Bytes> {
    let (path, query) = split_target(target);
    let path = match decided.normalized_path() {
        Some(normalized) => normalized,
        None => {
            normalize_path(path, buf).ok()?;
            buf.as_slice()
        }
    };
    let mut out = Vec::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    out.extend_from_slice(path);
    if let Some(q) = query {
        out.push(b'?');
        out.extend_from_slice(q);
    }
    Some(Bytes::from(out))
}

/// The URI sent to the application: scheme `http`, the client's authority
/// (or `fallback`), and `target`.
pub(crate) fn upstream_uri(authority: Option<&str>, fallback: &str, target: Bytes) -> Option<Uri> {
    let authority = authority.unwrap_or(fallback);
    let pq = http::uri::PathAndQuery::from_maybe_shared(target).ok()?;
    Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(pq)
        .build()
        .ok()
}

/// Removes hop-by-hop headers (and those named by `connection`) and any
/// client-sent peer identity, then adds the verified one.
pub(crate) fn prepare_headers(headers: &mut HeaderMap, identity: Option<&str>) {
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let keep_te = headers
        .get(http::header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in [
        http::header::CONNECTION,
        http::header::TRANSFER_ENCODING,
        http::header::UPGRADE,
        http::header::PROXY_AUTHORIZATION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    if !keep_te {
        headers.remove(http::header::TE);
    }
    remove_peer_identity(headers);
    if let Some(id) = identity.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(PEER_IDENTITY, id);
    }
}

/// Whether a header named `name` passes for the peer identity header once
/// `_` is read as `-` (as CGI and WSGI frameworks do), in any case. Compares
/// bytes; allocates nothing.
pub(crate) fn is_peer_identity_name(name: &[u8]) -> bool {
    sluice_runtime::passes_for_header(name, PEER_IDENTITY.as_str())
}

/// Removes every header passing for the peer identity header
/// ([`is_peer_identity_name`]), from a head or trailers. Allocates nothing
/// when there is none.
pub(crate) fn remove_peer_identity(headers: &mut HeaderMap) {
    while let Some(name) = headers
        .keys()
        .find(|n| is_peer_identity_name(n.as_str().as_bytes()))
        .cloned()
    {
        headers.remove(&name);
    }
}

/// Removes hop-by-hop headers from a response of the application.
pub(crate) fn prepare_response_headers(headers: &mut HeaderMap) {
    for name in [
        http::header::CONNECTION,
        http::header::TRANSFER_ENCODING,
        http::header::UPGRADE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::{Http, Inbound, NoHeaders, Peer};

    #[test]
    fn grpc_denials_are_trailers_only() {
        let mut d = Decision::new(false, Reason::Rule);
        d.http_status = Some(403);
        d.grpc_status = Some(7);
        let r = deny_response(&d);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "7");
        assert_eq!(r.headers()["content-type"], "application/grpc");
        d.grpc_status = None;
        d.reason = Reason::NoRoute;
        d.http_status = Some(404);
        assert_eq!(deny_response(&d).status(), 404);
        assert_eq!(outcome(&d), "no-route");
    }

    /// A policy with one HTTP server, `web` on port 8080, that allows
    /// every request; no server covers any other port.
    fn web_on_8080() -> sluice_runtime::AlignedBytes {
        let policy =
            "server web { port 8080 protocol http default allow route all { path prefix \"/\" } }";
        let (ast, diags) = sluice_lang::parse::parse_str("web.sluice", policy);
        assert!(diags.is_empty(), "{diags:?}");
        let compiled = sluice_compiler::compile(&ast, &sluice_compiler::Config::default());
        sluice_runtime::AlignedBytes::new(&compiled.expect("the policy compiles").bundle)
    }

    #[test]
    fn targets_are_normalized_and_queries_kept() {
        let bytes = web_on_8080();
        let bundle = sluice_runtime::Bundle::from_bytes(bytes.as_bytes()).unwrap();
        // No decision yet: the proxy normalizes the path itself.
        let scratch = bundle.create_scratch();
        let mut buf = Vec::new();
        let t = forwarded_target(b"/a//b/../c/%2e%2e/d?x=%2F#frag", &scratch, &mut buf).unwrap();
        assert_eq!(&t[..], b"/a/d?x=%2F");
        assert!(forwarded_target(b"/a%2Fb", &scratch, &mut buf).is_none());
        let u = upstream_uri(Some("web:80"), "127.0.0.1:1", t).unwrap();
        assert_eq!(u.to_string(), "http://web:80/a/d?x=%2F");
    }

    #[test]
    fn forwarded_paths_are_the_runtimes_normalized_paths() {
        let bytes = web_on_8080();
        let bundle = sluice_runtime::Bundle::from_bytes(bytes.as_bytes()).unwrap();
        let mut class = bundle.create_peer_class();
        bundle.classify(&Peer::default(), &mut class);
        let mut scratch = bundle.create_scratch();
        let mut buf = Vec::new();
        let target = b"/a/./b/%2e%2e/c//d?q=%2F";
        for port in [8080, 9090] {
            let request = Inbound {
                port,
                http: Some(Http {
                    method: "GET",
                    path: target,
                    headers: &NoHeaders,
                }),
            };
            let d = bundle
                .decide_inbound(&request, &class, &mut scratch)
                .unwrap();
            assert!(d.allow, "port {port}");
            let forwarded = forwarded_target(target, &scratch, &mut buf).unwrap();
            assert_eq!(&forwarded[..], b"/a/c/d?q=%2F", "port {port}");
            match port {
                // A server covers the port: the runtime's path, not normalized again.
                8080 => {
                    assert_eq!(scratch.normalized_path(), Some(&b"/a/c/d"[..]));
                    assert!(buf.is_empty());
                }
                // No server: the runtime normalized nothing; the proxy did, in `buf`.
                _ => {
                    assert_eq!(scratch.normalized_path(), None);
                    assert_eq!(buf, b"/a/c/d");
                }
            }
            buf.clear();
        }
    }

    #[test]
    fn ambiguous_requests_are_named() {
        let mut h = HeaderMap::new();
        assert_eq!(ambiguous_framing(&h), None);
        h.append(http::header::HOST, HeaderValue::from_static("a"));
        assert_eq!(ambiguous_framing(&h), None);
        h.append(http::header::HOST, HeaderValue::from_static("b"));
        assert_eq!(ambiguous_framing(&h), Some("several host headers\n"));
        let mut h = HeaderMap::new();
        h.append(http::header::CONTENT_LENGTH, HeaderValue::from_static("1"));
        h.append(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(ambiguous_framing(&h).is_some());
    }

    #[test]
    fn forged_identity_is_replaced() {
        let mut h = HeaderMap::new();
        h.append(PEER_IDENTITY, HeaderValue::from_static("spiffe://evil/x"));
        h.append(PEER_IDENTITY, HeaderValue::from_static("spiffe://evil/y"));
        h.insert("connection", HeaderValue::from_static("x-drop, keep-alive"));
        h.insert("x-drop", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        prepare_headers(&mut h, None);
        assert!(h.get(PEER_IDENTITY).is_none());
        assert!(h.get("x-drop").is_none());
        assert_eq!(h["te"], "trailers");
        prepare_headers(&mut h, Some("spiffe://example.org/a"));
        assert_eq!(h.get_all(PEER_IDENTITY).iter().count(), 1);
    }

    #[test]
    fn underscore_spellings_of_the_identity_are_removed() {
        for name in [
            "x-sluice-peer-identity",
            "X-Sluice-Peer-Identity",
            "x_sluice_peer_identity",
            "X_Sluice_Peer_Identity",
            "x-sluice-peer_identity",
            "x_SLUICE-peer_IDENTITY",
        ] {
            assert!(is_peer_identity_name(name.as_bytes()), "{name}");
        }
        for name in [
            "x-sluice-peer-identit",
            "x-sluice-peer-identityy",
            "x-sluice-peer.identity",
            "x-sluice-peer identity",
            "",
        ] {
            assert!(!is_peer_identity_name(name.as_bytes()), "{name}");
        }
        let mut h = HeaderMap::new();
        for name in [
            "x_sluice_peer_identity",
            "x-sluice-peer_identity",
            "x_sluice-peer-identity",
        ] {
            h.append(
                HeaderName::from_static(name),
                HeaderValue::from_static("spiffe://evil/x"),
            );
        }
        h.append("x-sluice-peer", HeaderValue::from_static("kept"));
        prepare_headers(&mut h, Some("spiffe://example.org/a"));
        let names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-sluice-peer", "x-sluice-peer-identity"]);
        assert_eq!(h[PEER_IDENTITY], "spiffe://example.org/a");
    }
}
