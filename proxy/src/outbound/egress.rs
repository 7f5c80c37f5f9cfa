//! Egress control for destinations that are not declared services.
//!
//! A name is resolved first, every address is checked against the egress
//! rules, and the proxy connects only to an address it checked: no second
//! lookup happens between the check and the connection, so DNS rebinding
//! cannot slip a denied address past the rules.

use super::body::ReplayBody;
use super::resolve;
use super::{decide, decide_compared, failure, own, Context, OutBody};
use crate::enforce;
use crate::store::LoadedBundle;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sluice_runtime::{Authority, Http, Outbound as OutboundRequest};
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// Why no address of a destination may be used.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The name did not resolve.
    Dns(std::io::Error),
    /// Every address is denied; the rule that denied the first one.
    Denied {
        /// The denying rule, if a rule (not the default) decided.
        rule: Option<String>,
    },
    /// The authority is not `host[:port]`.
    BadAuthority,
    /// Every allowed address is one of the proxy's own listeners.
    Loop,
}

/// The addresses of `authority` that the egress rules allow, in resolver
/// order. `http` is the request for an HTTP destination (`None` for a tunnel).
pub(crate) async fn checked_addresses(
    ctx: &Context,
    loaded: &LoadedBundle,
    authority: &str,
    http: Option<(&str, &[u8], &http::HeaderMap)>,
) -> Result<Vec<SocketAddr>, Refused> {
    let split = Authority::split(authority).ok_or(Refused::BadAuthority)?;
    let addrs = resolve::addresses(ctx.resolver(), split.host, split.port_or_80())
        .await
        .map_err(Refused::Dns)?;
    let mut allowed = Vec::new();
    let mut first_rule = None;
    let mut own = false;
    for addr in addrs {
        if ctx.own.contains(addr) {
            own = true;
            continue;
        }
        let ok = check(loaded, authority, addr, http, |allow, rule| {
            if !allow && first_rule.is_none() {
                first_rule = Some(rule.map(str::to_owned));
            }
            allow
        });
        if ok {
            allowed.push(addr);
        }
    }
    if allowed.is_empty() && own && first_rule.is_none() {
        return Err(Refused::Loop);
    }
    if allowed.is_empty() {
        return Err(Refused::Denied {
            rule: first_rule.flatten(),
        });
    }
    Ok(allowed)
}

fn check<R>(
    loaded: &LoadedBundle,
    authority: &str,
    addr: SocketAddr,
    http: Option<(&str, &[u8], &http::HeaderMap)>,
    f: impl FnOnce(bool, Option<&str>) -> R,
) -> R {
    let headers = http.map(|(_, _, h)| enforce::HeaderMapHeaders(h));
    let request = OutboundRequest {
        authority: Some(authority),
        ip: Some(addr.ip()),
        port: None,
        http: match (http, &headers) {
            (Some((method, path, _)), Some(headers)) => Some(Http {
                method,
                path,
                headers,
            }),
            _ => None,
        },
    };
    decide(loaded, &request, |d, _, _| match d {
        Ok(d) => f(d.allow, d.rule),
        Err(_) => f(false, None),
    })
}

/// Forwards an allowed HTTP request to a checked address of its authority.
pub(crate) async fn http(
    ctx: &Context,
    loaded: &LoadedBundle,
    authority: String,
    target: Bytes,
    req: Request<Incoming>,
) -> Response<OutBody> {
    let grpc = enforce::is_grpc(req.headers());
    let checked = checked_addresses(
        ctx,
        loaded,
        &authority,
        Some((req.method().as_str(), &target, req.headers())),
    )
    .await;
    let addrs = match checked {
        Ok(a) => a,
        Err(refused) => return refused_answer(ctx, &authority, refused, grpc, "http"),
    };
    let h2 = req.version() == http::Version::HTTP_2;
    let (parts, body) = req.into_parts();
    let Some(upstream) = upstream_request(
        parts,
        &authority,
        target,
        ReplayBody::client(body),
        h2,
        false,
    ) else {
        return own(enforce::text_response(
            StatusCode::BAD_REQUEST,
            "bad request target\n",
            "bad-request",
        ));
    };
    match ctx.pool.send(addrs[0], None, h2, upstream).await {
        Ok(mut r) => {
            enforce::prepare_response_headers(r.headers_mut());
            r.map(|b| Either::Left(ReplayBody::streaming(b)))
        }
        Err(e) if crate::request_body::caused_by_client_body(&e) => {
            tracing::debug!(authority, error = %e, "malformed request body");
            ctx.shared.metrics.outbound_errors.inc(["bad-request"]);
            own(enforce::bad_body_response())
        }
        Err(e) => {
            tracing::info!(authority, addr = %addrs[0], error = %e, "egress upstream failed");
            ctx.shared.metrics.outbound_errors.inc(["connect"]);
            failure(
                grpc,
                StatusCode::BAD_GATEWAY,
                14,
                "the destination could not be reached\n",
                "connect",
            )
        }
    }
}

/// The request sent upstream: origin form for HTTP/1.1, absolute for
/// HTTP/2 (`https` when `tls`), hop-by-hop headers removed (but those of
/// an HTTP/1.1 upgrade put back), `Host` kept.
pub(crate) fn upstream_request(
    mut parts: http::request::Parts,
    authority: &str,
    target: Bytes,
    body: ReplayBody,
    h2: bool,
    tls: bool,
) -> Option<Request<ReplayBody>> {
    // An absolute-form target names the authority; `Host` follows it
    // (RFC 9112 section 3.2.2), and is added when missing.
    let absolute = parts.uri.authority().is_some();
    let pq = http::uri::PathAndQuery::from_maybe_shared(target).ok()?;
    parts.uri = if h2 {
        http::Uri::builder()
            .scheme(if tls { "https" } else { "http" })
            .authority(authority)
            .path_and_query(pq)
            .build()
            .ok()?
    } else {
        http::Uri::from_maybe_shared(Bytes::copy_from_slice(pq.as_str().as_bytes())).ok()?
    };
    let upgrade = if h2 {
        None
    } else {
        crate::upgrade::requested(parts.version, &parts.headers)
    };
    enforce::prepare_headers(&mut parts.headers, None);
    if let Some(protocol) = upgrade {
        crate::upgrade::restore_request_headers(&mut parts.headers, protocol);
    }
    if h2 {
        parts.headers.remove(http::header::HOST);
        parts.version = http::Version::HTTP_2;
    } else {
        parts.version = http::Version::HTTP_11;
        if absolute || !parts.headers.contains_key(http::header::HOST) {
            parts.headers.insert(
                http::header::HOST,
                http::HeaderValue::from_str(authority).ok()?,
            );
        }
    }
    Some(Request::from_parts(parts, body))
}

fn refused_answer(
    ctx: &Context,
    authority: &str,
    refused: Refused,
    grpc: bool,
    kind: &'static str,
) -> Response<OutBody> {
    match refused {
        Refused::Dns(e) => {
            tracing::info!(authority, error = %e, "egress name does not resolve");
            ctx.shared.metrics.outbound_errors.inc(["dns"]);
            failure(
                grpc,
                StatusCode::BAD_GATEWAY,
                14,
                "the destination's name does not resolve\n",
                "dns",
            )
        }
        Refused::Denied { rule } => {
            let rule = rule.as_deref().unwrap_or("");
            ctx.shared.metrics.egress.inc([kind, rule, "deny"]);
            tracing::info!(
                authority,
                rule,
                "egress denied: no resolved address is allowed"
            );
            failure(
                grpc,
                StatusCode::FORBIDDEN,
                7,
                "forbidden by policy\n",
                "forbidden",
            )
        }
        Refused::Loop => {
            tracing::warn!(authority, "refused: the destination is the proxy itself");
            ctx.shared.metrics.outbound_errors.inc(["loop"]);
            failure(
                grpc,
                StatusCode::LOOP_DETECTED,
                14,
                "the destination is the proxy itself\n",
                "loop",
            )
        }
        Refused::BadAuthority => own(enforce::text_response(
            StatusCode::BAD_REQUEST,
            "malformed authority\n",
            "bad-request",
        )),
    }
}

/// Answers `CONNECT host:port`: 403 and no tunnel when denied, else 200
/// and bytes relayed to a checked address.
pub(crate) async fn connect(
    ctx: &Context,
    loaded: &LoadedBundle,
    req: Request<Incoming>,
) -> Response<OutBody> {
    let Some(authority) = req.uri().authority().map(|a| a.as_str().to_owned()) else {
        return own(enforce::text_response(
            StatusCode::BAD_REQUEST,
            "CONNECT needs host:port\n",
            "bad-request",
        ));
    };
    let first = {
        let request = OutboundRequest {
            authority: Some(&authority),
            ip: None,
            port: None,
            http: None,
        };
        decide_compared(&ctx.shared, loaded, &request, None, |d, _, _| match d {
            Ok(d) => Some((d.allow, d.rule.map(str::to_owned))),
            Err(_) => None,
        })
    };
    match first {
        None => {
            return own(enforce::text_response(
                StatusCode::BAD_REQUEST,
                "malformed authority\n",
                "bad-request",
            ))
        }
        Some((false, rule)) => {
            let rule = rule.as_deref().unwrap_or("");
            ctx.shared.metrics.egress.inc(["connect", rule, "deny"]);
            tracing::info!(authority, rule, "CONNECT denied");
            return own(enforce::text_response(
                StatusCode::FORBIDDEN,
                "forbidden by policy\n",
                "forbidden",
            ));
        }
        Some((true, _)) => {}
    }
    let addrs = match checked_addresses(ctx, loaded, &authority, None).await {
        Ok(a) => a,
        Err(refused) => return refused_answer(ctx, &authority, refused, false, "connect"),
    };
    let connect = tokio::time::timeout(
        ctx.shared.limits.connect_timeout(),
        TcpStream::connect(addrs[0]),
    );
    let upstream = match connect.await {
        Ok(Ok(s)) => s,
        _ => {
            ctx.shared.metrics.outbound_errors.inc(["connect"]);
            return own(enforce::text_response(
                StatusCode::BAD_GATEWAY,
                "the destination could not be reached\n",
                "connect",
            ));
        }
    };
    // The tunnel outlives the HTTP connection's task: it holds its own
    // connection permit, and ends when the proxy shuts down.
    let Ok(permit) = ctx.shared.connections.clone().try_acquire_owned() else {
        ctx.shared.metrics.connections_refused.inc(["limit"]);
        return own(enforce::text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections\n",
            "limit",
        ));
    };
    ctx.shared.metrics.egress.inc(["connect", "", "allow"]);
    let _ = upstream.set_nodelay(true);
    let shutdown = ctx.shared.shutdown.clone();
    ctx.shared.tasks.spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                let mut upstream = upstream;
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
        }
        drop(permit);
    });
    Response::new(Either::Right(Full::new(Bytes::new())))
}

/// A transparent TLS connection: decided as a tunnel to its SNI (resolved
/// and checked), or as TCP to the original destination when it has none.
pub(crate) async fn transparent_tls(
    stream: TcpStream,
    original: SocketAddr,
    sni: Option<String>,
    ctx: &Context,
) {
    let Some(sni) = sni else {
        return transparent_tcp(stream, original, ctx).await;
    };
    let Some(loaded) = ctx.shared.store.current() else {
        return;
    };
    let authority = format!("{sni}:{}", original.port());
    match checked_addresses(ctx, &loaded, &authority, None).await {
        Ok(addrs) => {
            ctx.shared.metrics.egress.inc(["tls", "", "allow"]);
            relay(stream, addrs[0], ctx).await
        }
        Err(Refused::Denied { rule }) => {
            let rule = rule.as_deref().unwrap_or("");
            ctx.shared.metrics.egress.inc(["tls", rule, "deny"]);
            tracing::info!(authority, rule, "transparent TLS connection denied");
        }
        Err(e) => tracing::info!(authority, error = ?e, "transparent TLS connection refused"),
    }
}

/// A transparent opaque TCP connection: decided by its original destination.
pub(crate) async fn transparent_tcp(stream: TcpStream, original: SocketAddr, ctx: &Context) {
    let Some(loaded) = ctx.shared.store.current() else {
        return;
    };
    let (allow, rule) = {
        let request = OutboundRequest {
            authority: None,
            ip: Some(original.ip().to_canonical()),
            port: Some(original.port()),
            http: None,
        };
        decide_compared(&ctx.shared, &loaded, &request, None, |d, _, _| match d {
            Ok(d) => (d.allow, d.rule.unwrap_or("").to_owned()),
            Err(_) => (false, String::new()),
        })
    };
    drop(loaded);
    ctx.shared
        .metrics
        .egress
        .inc(["tcp", &rule, if allow { "allow" } else { "deny" }]);
    if !allow {
        tracing::info!(destination = %original, rule, "transparent TCP connection denied");
        return;
    }
    relay(stream, original, ctx).await
}

async fn relay(mut stream: TcpStream, to: SocketAddr, ctx: &Context) {
    if ctx.own.contains(to) {
        ctx.shared.metrics.outbound_errors.inc(["loop"]);
        return;
    }
    let connect = tokio::time::timeout(ctx.shared.limits.connect_timeout(), TcpStream::connect(to));
    let Ok(Ok(mut upstream)) = connect.await else {
        ctx.shared.metrics.outbound_errors.inc(["connect"]);
        return;
    };
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
}
