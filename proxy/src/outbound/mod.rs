//! The outbound side: what the local application sends out. Explicit
//! (HTTP proxy and `CONNECT`) and transparent (`SO_ORIGINAL_DST`) listeners,
//! routing of declared services (`forward`), egress control for
//! everything else (`egress`).

mod balance;
mod body;
mod breaker;
mod egress;
mod forward;
mod pool;
pub mod resolve;
mod retry;
mod services;
pub mod transparent;

use crate::config::{OutboundConfig, OutboundMode};
use crate::enforce;
use crate::server::{self, Accepted, Admission};
use crate::state::Shared;
use crate::store::LoadedBundle;
use body::ReplayBody;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pool::Pool;
use resolve::Resolve;
use services::Services;
use sluice_runtime::{
    Authority, Decision, Http, Outbound as OutboundRequest, RequestError, RouteId, Scratch,
    ServiceId,
};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// The body of every outbound response: an upstream's, or the proxy's own.
pub(crate) type OutBody = Either<ReplayBody, Full<Bytes>>;

/// The proxy's own listening addresses: the outbound side never connects
/// to them, so a request cannot loop through the proxy.
#[derive(Clone, Debug, Default)]
pub(crate) struct OwnAddrs(Vec<SocketAddr>);

impl OwnAddrs {
    /// These listening addresses.
    pub(crate) fn new(addrs: Vec<SocketAddr>) -> OwnAddrs {
        OwnAddrs(addrs)
    }

    /// Whether connecting to `addr` would reach one of the proxy's
    /// listeners. A listener on an unspecified address (`0.0.0.0`, `::`) is
    /// reached on its port through any loopback address; its other local
    /// addresses are not known here.
    pub(crate) fn contains(&self, addr: SocketAddr) -> bool {
        // Connecting to `0.0.0.0` or `::` reaches this host, like loopback.
        let ip = addr.ip().to_canonical();
        let local = ip.is_loopback() || ip.is_unspecified();
        self.0.iter().any(|own| {
            own.port() == addr.port()
                && (own.ip().to_canonical() == ip
                    || (own.ip().is_unspecified() && local)
                    || (own.ip().is_loopback() && ip.is_unspecified()))
        })
    }
}

/// What every outbound listener shares.
pub(crate) struct Context {
    /// What inbound and outbound share: policy, identity, metrics, limits.
    pub shared: Arc<Shared>,
    /// Declared services' run-time state.
    pub services: Arc<Services>,
    /// Connections to upstreams.
    pub pool: Pool,
    /// The proxy's own listeners, never connected to.
    pub own: OwnAddrs,
}

impl Context {
    /// A context resolving names with `resolver`; `own` are the proxy's
    /// listening addresses.
    pub(crate) fn new(shared: Arc<Shared>, resolver: Arc<dyn Resolve>, own: OwnAddrs) -> Context {
        let pool = Pool::new(
            shared.limits.connect_timeout(),
            shared.identity.clone(),
            own.clone(),
        );
        Context {
            services: Arc::new(Services::new(resolver)),
            pool,
            shared,
            own,
        }
    }

    /// The resolver.
    pub(crate) fn resolver(&self) -> &dyn Resolve {
        &**self.services.resolver()
    }
}

/// One outbound listener, bound.
pub(crate) struct Listener {
    listener: TcpListener,
    config: OutboundConfig,
    local: SocketAddr,
}

/// How a connection reached the proxy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    /// The application's address.
    pub client: SocketAddr,
    /// The original destination (transparent mode).
    pub original: Option<SocketAddr>,
}

impl Listener {
    /// Binds the listener's address.
    pub(crate) async fn bind(config: OutboundConfig) -> std::io::Result<Listener> {
        let listener = TcpListener::bind(config.listen).await?;
        let local = listener.local_addr()?;
        Ok(Listener {
            listener,
            config,
            local,
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Accepts connections until shutdown.
    pub(crate) async fn run(self, ctx: Arc<Context>) {
        let shared = ctx.shared.clone();
        let listener = Arc::new(self);
        let accepting = &listener.listener;
        server::accept_loop(accepting, &shared, Admission::Traffic, |accepted| {
            let ctx = ctx.clone();
            let listener = listener.clone();
            async move { listener.handle(accepted, ctx).await }
        })
        .await;
    }

    async fn handle(&self, accepted: Accepted, ctx: Arc<Context>) {
        // One deadline from accept for protocol detection and the first request head.
        let Accepted {
            stream,
            peer: client,
            first_head_by,
        } = accepted;
        match self.config.mode {
            OutboundMode::Explicit => {
                let origin = Origin {
                    client,
                    original: None,
                };
                serve_http(stream, origin, ctx, false, first_head_by).await;
            }
            OutboundMode::Transparent => {
                let original = match transparent::original_dst(&stream) {
                    Ok(a) if a != self.local => a,
                    Ok(_) => {
                        tracing::debug!(%client, "not a redirected connection; closing");
                        return;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        tracing::debug!(%client, "not a redirected connection; closing");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%client, error = %e, "no original destination; closing");
                        return;
                    }
                };
                let origin = Origin {
                    client,
                    original: Some(original),
                };
                let timeout = ctx.shared.limits.header_read_timeout();
                match transparent::sniff(&stream, timeout).await {
                    Ok(transparent::Sniffed::Http1) => {
                        serve_http(stream, origin, ctx, false, first_head_by).await
                    }
                    Ok(transparent::Sniffed::Http2) => {
                        serve_http(stream, origin, ctx, true, first_head_by).await
                    }
                    Ok(transparent::Sniffed::Tls { sni }) => {
                        egress::transparent_tls(stream, original, sni, &ctx).await
                    }
                    Ok(transparent::Sniffed::Opaque) => {
                        egress::transparent_tcp(stream, original, &ctx).await
                    }
                    Err(e) => {
                        tracing::debug!(%client, error = %e, "connection ended before a byte")
                    }
                }
            }
        }
    }
}

/// Serves the application's HTTP/1.1 and h2c requests: the outbound stack, in one place.
///
/// A connection whose first request head has not arrived by `first_head_by`
/// (an HTTP/2 preface without a complete HEADERS frame included) is closed;
/// later HTTP/1.1 heads are bounded by hyper's header read timeout.
async fn serve_http<IO>(
    io: IO,
    origin: Origin,
    ctx: Arc<Context>,
    h2_only: bool,
    first_head_by: tokio::time::Instant,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = server::http_builder(&ctx.shared.limits, h2_only);
    let service_ctx = ctx.clone();
    let requested = Arc::new(AtomicBool::new(false));
    let seen = requested.clone();
    let service = hyper::service::service_fn(move |req| {
        seen.store(true, Ordering::Relaxed);
        let ctx = service_ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(handle_request(ctx, origin, req).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let first_head = tokio::time::sleep_until(first_head_by);
    tokio::pin!(first_head);
    let mut awaiting_first = true;
    let mut closing = false;
    loop {
        tokio::select! {
            r = connection.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "outbound connection ended with an error");
                }
                return;
            }
            _ = ctx.shared.shutdown.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = &mut first_head, if awaiting_first => {
                awaiting_first = false;
                if !requested.load(Ordering::Relaxed) {
                    ctx.shared.metrics.connections_refused.inc(["timeout"]);
                    tracing::debug!(client = %origin.client, "no request head before the header read timeout; closing");
                    return;
                }
            }
        }
    }
}

/// Where a decision sent a request: ids into the bundle it was decided
/// under, so that the decision need not be borrowed while the request is
/// forwarded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Routed {
    /// The service.
    pub service: ServiceId,
    /// The route taken.
    pub route: RouteId,
    /// The whole-request timeout.
    pub timeout: Option<Duration>,
}

enum Verdict {
    Answer(Response<Full<Bytes>>),
    Service(Routed, Bytes),
    Egress(Bytes),
}

async fn handle_request(
    ctx: Arc<Context>,
    origin: Origin,
    req: Request<Incoming>,
) -> Response<OutBody> {
    let start = std::time::Instant::now();
    let response = handle_request_inner(&ctx, origin, req).await;
    ctx.shared.metrics.request_latency.observe(start.elapsed());
    response
}

async fn handle_request_inner(
    ctx: &Arc<Context>,
    origin: Origin,
    mut req: Request<Incoming>,
) -> Response<OutBody> {
    let Some(loaded) = ctx.shared.store.current() else {
        return own(enforce::text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "no policy loaded\n",
            "not-ready",
        ));
    };
    if req.method() == http::Method::CONNECT {
        return egress::connect(ctx, &loaded, req).await;
    }
    if let Some(why) = enforce::ambiguous_framing(req.headers()) {
        return own(enforce::text_response(
            StatusCode::BAD_REQUEST,
            why,
            "bad-request",
        ));
    }
    let Some(authority) = request_authority(&req, origin.original) else {
        return own(enforce::text_response(
            StatusCode::BAD_REQUEST,
            "the request names no authority (Host)\n",
            "bad-request",
        ));
    };
    let target = req
        .uri()
        .path_and_query()
        .map_or(&b"/"[..], |pq| pq.as_str().as_bytes())
        .to_vec();
    let verdict = {
        let headers = enforce::HeaderMapHeaders(req.headers());
        let request = OutboundRequest {
            authority: Some(&authority),
            ip: None,
            port: None,
            http: Some(Http {
                method: req.method().as_str(),
                path: &target,
                headers: &headers,
            }),
        };
        decide_compared(
            &ctx.shared,
            &loaded,
            &request,
            Some(req.headers()),
            |d, scratch, buf| match d {
                Err(_) => Verdict::Answer(enforce::text_response(
                    StatusCode::BAD_REQUEST,
                    "malformed authority\n",
                    "bad-request",
                )),
                Ok(d) => {
                    let mut forwarded = || enforce::forwarded_target(&target, scratch, buf);
                    if let Some(service) = d.service_id {
                        // An allowed service decision always took a route.
                        let (true, Some(route)) = (d.allow, d.route_id) else {
                            return Verdict::Answer(enforce::deny_response(d));
                        };
                        let routed = Routed {
                            service,
                            route,
                            timeout: d.timeout_ms.map(Duration::from_millis),
                        };
                        match forwarded() {
                            Some(t) => Verdict::Service(routed, t),
                            None => Verdict::Answer(enforce::deny_response(d)),
                        }
                    } else {
                        ctx.shared.metrics.egress.inc([
                            "http",
                            d.rule.unwrap_or(""),
                            if d.allow { "allow" } else { "deny" },
                        ]);
                        if !d.allow {
                            if d.reason != sluice_runtime::Reason::BadPath {
                                tracing::info!(authority, rule = d.rule.unwrap_or(""), client = %origin.client, "egress denied");
                            }
                            return Verdict::Answer(enforce::deny_response(d));
                        }
                        match forwarded() {
                            Some(t) => Verdict::Egress(t),
                            None => Verdict::Answer(enforce::text_response(
                                StatusCode::BAD_REQUEST,
                                "bad request path\n",
                                "bad-path",
                            )),
                        }
                    }
                }
            },
        )
    };
    // An allowed HTTP/1.1 upgrade: the client's side of it, and a permit
    // for the relay, which outlives this connection's task.
    let client_upgrade = match (
        &verdict,
        crate::upgrade::requested(req.version(), req.headers()),
    ) {
        (Verdict::Answer(_), _) | (_, None) => None,
        (_, Some(_)) => match ctx.shared.connections.clone().try_acquire_owned() {
            Ok(permit) => Some((hyper::upgrade::on(&mut req), permit)),
            Err(_) => {
                ctx.shared.metrics.connections_refused.inc(["limit"]);
                return own(enforce::text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many connections\n",
                    "limit",
                ));
            }
        },
    };
    let mut response = match verdict {
        Verdict::Answer(r) => own(r),
        Verdict::Service(routed, target) => {
            forward::forward(ctx, &loaded, routed, authority, target, req).await
        }
        Verdict::Egress(target) => egress::http(ctx, &loaded, authority, target, req).await,
    };
    if let Some((client, permit)) = client_upgrade {
        crate::upgrade::restore_switch_headers(&mut response);
        let relay = crate::upgrade::Relay::new(&ctx.shared, permit);
        crate::upgrade::relay_if_switched(&mut response, client, relay);
    }
    response
}

/// The authority a request is for: the absolute-form URI's, else `Host`
/// (HTTP/1.1) or `:authority` (HTTP/2), else the original destination. In
/// transparent mode a `Host` without a port takes the original port.
fn request_authority(req: &Request<Incoming>, original: Option<SocketAddr>) -> Option<String> {
    let named = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    authority_with_port(named, original)
}

/// The authority from the one a request names and the original
/// destination: a named authority without a port takes the original port;
/// no name at all is the original destination.
pub(crate) fn authority_with_port(
    named: Option<String>,
    original: Option<SocketAddr>,
) -> Option<String> {
    match (named, original) {
        (Some(a), Some(orig)) if Authority::split(&a).is_some_and(|s| s.port.is_none()) => {
            Some(format!("{a}:{}", orig.port()))
        }
        (Some(a), _) => Some(a),
        (None, Some(orig)) => Some(orig.to_string()),
        (None, None) => None,
    }
}

thread_local! {
    /// Scratch space per worker thread, for the bundle generation it was made for.
    static SCRATCH: RefCell<Option<(u64, Scratch, Vec<u8>)>> = const { RefCell::new(None) };
}

/// Decides an outbound request under `loaded`; `f` sees the decision, the
/// scratch space it was decided with and a path buffer.
pub(crate) fn decide<R>(
    loaded: &LoadedBundle,
    request: &OutboundRequest<'_>,
    f: impl FnOnce(&Result<Decision<'_>, RequestError<'_>>, &Scratch, &mut Vec<u8>) -> R,
) -> R {
    let bundle = loaded.bundle();
    SCRATCH.with_borrow_mut(|slot| {
        if slot
            .as_ref()
            .is_none_or(|(g, _, _)| *g != loaded.generation())
        {
            *slot = Some((
                loaded.generation(),
                bundle.create_scratch(),
                Vec::with_capacity(256),
            ));
        }
        let Some((_, scratch, buf)) = slot.as_mut() else {
            unreachable!("filled above")
        };
        let d = bundle.decide_outbound(request, scratch);
        f(&d, scratch, buf)
    })
}

/// [`decide`], with the candidate bundle (when one is loaded) deciding
/// `request` too: a disagreement is counted and logged (`headers` are the
/// HTTP request's, for the log line). Used for the decision that the
/// request or connection is enforced by, not for the checks of resolved
/// addresses that follow it.
pub(crate) fn decide_compared<R>(
    shared: &Shared,
    loaded: &LoadedBundle,
    request: &OutboundRequest<'_>,
    headers: Option<&http::HeaderMap>,
    f: impl FnOnce(&Result<Decision<'_>, RequestError<'_>>, &Scratch, &mut Vec<u8>) -> R,
) -> R {
    decide(loaded, request, |d, scratch, buf| {
        if let Some(c) = shared.candidate.as_ref().and_then(|c| c.store.current()) {
            crate::candidate::decide_outbound(&c, request, |cd| {
                if crate::candidate::compare(&shared.metrics, d, cd) {
                    if let Some(log) = &shared.decision_log {
                        log.write_outbound_disagreement(
                            loaded.hash(),
                            request,
                            headers,
                            d,
                            (c.hash(), cd),
                        );
                    }
                }
            });
        }
        f(d, scratch, buf)
    })
}

/// The proxy's own answer, as an outbound response.
pub(crate) fn own(r: Response<Full<Bytes>>) -> Response<OutBody> {
    r.map(Either::Right)
}

/// The answer when the proxy itself fails a request: gRPC trailers-only
/// (`grpc_status`) for a gRPC request, else `status` with a one-line body.
pub(crate) fn failure(
    grpc: bool,
    status: StatusCode,
    grpc_status: u8,
    message: &'static str,
    why: &'static str,
) -> Response<OutBody> {
    own(if grpc {
        enforce::grpc_response(grpc_status, message.trim_end(), why)
    } else {
        enforce::text_response(status, message, why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses_are_recognized() {
        let own = OwnAddrs::new(vec![
            "127.0.0.1:4140".parse().unwrap(),
            "0.0.0.0:4143".parse().unwrap(),
        ]);
        assert!(own.contains("127.0.0.1:4140".parse().unwrap()));
        assert!(!own.contains("127.0.0.2:4140".parse().unwrap()));
        assert!(own.contains("127.0.0.9:4143".parse().unwrap()));
        assert!(own.contains("[::ffff:127.0.0.1]:4140".parse().unwrap()));
        assert!(!own.contains("127.0.0.1:80".parse().unwrap()));
        assert!(own.contains("0.0.0.0:4140".parse().unwrap()));
        assert!(own.contains("[::]:4143".parse().unwrap()));
    }
}
