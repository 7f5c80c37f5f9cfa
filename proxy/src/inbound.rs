//! Inbound listeners: accept, TLS (or sniff it, when permissive), then
//! either relay TCP or serve HTTP/1.1 and HTTP/2 through one hyper stack
//! assembled in [`serve_http`].
//!
//! Per connection the peer is classified once per bundle generation; per
//! request the current bundle is read once and kept until the response
//! head is sent, so a reload never changes a request's decision halfway.

use crate::activity::{Activity, Tracked};
use crate::candidate;
use crate::config::{AppProtocol, InboundConfig, Protocol, TlsMode};
use crate::decision_log::LoggedRequest;
use crate::enforce;
use crate::framing::FramingWatch;
use crate::report;
use crate::request_body::{self, ClientBody};
use crate::server::{self, h1_buffer_size, Accepted, Admission};
use crate::state::Shared;
use crate::store::LoadedBundle;
use crate::workers::{Dispatch, Job};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_runtime::{Decision, Http, Inbound, Peer, PeerClass, RequestError, Scratch};
use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// The body of every response the proxy sends: the application's, or its own.
pub(crate) type ResponseBody = Either<Incoming, Full<Bytes>>;

/// One inbound listener, bound.
pub(crate) struct Listener {
    listener: TcpListener,
    config: InboundConfig,
    h2: Client<AppConnector, ClientBody>,
    app_authority: String,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Listener {
    /// Binds the listener's address.
    pub(crate) async fn bind(config: InboundConfig, shared: &Shared) -> std::io::Result<Listener> {
        let listener = TcpListener::bind(config.listen).await?;
        let connector = AppConnector { addr: config.app };
        let h2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        let tls = match (&shared.identity, config.tls) {
            (Some(id), TlsMode::Mtls | TlsMode::Permissive) => {
                Some(tokio_rustls::TlsAcceptor::from(id.server_config()))
            }
            _ => None,
        };
        Ok(Listener {
            listener,
            app_authority: config.app.to_string(),
            config,
            h2,
            tls,
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until shutdown; each is served on one of the
    /// worker threads (see [`crate::workers`]), whole.
    pub(crate) async fn run(self, shared: Arc<Shared>, workers: Arc<Dispatch>) {
        let listener = Arc::new(self);
        let accepting = &listener.listener;
        server::admit(accepting, &shared, Admission::Traffic, |accepted, permit| {
            let Accepted {
                stream,
                peer,
                first_head_by,
            } = accepted;
            // Off this runtime's reactor: the worker registers it with its own.
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot hand the connection to a worker");
                    return;
                }
            };
            let listener = listener.clone();
            let shared = shared.clone();
            let job: Job = Box::new(move || {
                Box::pin(async move {
                    let _permit = permit;
                    let stream = match TcpStream::from_std(stream) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "a worker cannot take the connection");
                            return;
                        }
                    };
                    let accepted = Accepted {
                        stream,
                        peer,
                        first_head_by,
                    };
                    listener.handle(accepted, &shared).await;
                })
            });
            // False only once the workers have stopped: the connection closes.
            let _ = workers.send(job);
        })
        .await;
    }

    async fn handle(self: Arc<Self>, accepted: Accepted, shared: &Arc<Shared>) {
        let Accepted {
            stream,
            peer: addr,
            // One deadline from accept for every step before the first
            // request head: sniffing, the TLS handshake, protocol
            // detection, the head.
            first_head_by: deadline,
        } = accepted;
        let activity = Arc::new(Activity::new());
        let ip = addr.ip().to_canonical();
        let use_tls = match self.config.tls {
            TlsMode::Plaintext => false,
            TlsMode::Mtls => true,
            TlsMode::Permissive => {
                let mut first = [0u8; 1];
                match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
                    Ok(Ok(1)) => first[0] == 0x16,
                    Ok(_) => return,
                    Err(_) => {
                        shared.metrics.connections_refused.inc(["timeout"]);
                        return;
                    }
                }
            }
        };
        let max_head = h1_buffer_size(&shared.limits);
        if use_tls {
            // Boxed: the TLS path's futures (the handshake, hyper over a TLS
            // stream) are about three times the plaintext path's, and every
            // connection's task is as large as the largest path it may take.
            Box::pin(async move {
                let stream = Tracked::new(stream, activity.clone(), None);
                let Some(acceptor) = &self.tls else {
                    shared.metrics.connections_refused.inc(["handshake"]);
                    return;
                };
                let tls = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        shared.metrics.connections_refused.inc(["handshake"]);
                        tracing::info!(peer = %ip, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        shared.metrics.connections_refused.inc(["timeout"]);
                        return;
                    }
                };
                let identity = sluice_identity::peer_identity(tls.get_ref().1);
                let alpn_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let watch = (!alpn_h2).then(|| FramingWatch::new(max_head));
                let tls = Tracked::new(tls, activity.clone(), watch);
                self.serve(tls, (ip, identity), alpn_h2, activity, deadline, shared)
                    .await;
            })
            .await;
        } else {
            let stream = Tracked::new(stream, activity.clone(), Some(FramingWatch::new(max_head)));
            self.serve(stream, (ip, None), false, activity, deadline, shared)
                .await;
        }
    }

    async fn serve<IO>(
        self: Arc<Self>,
        io: IO,
        (ip, identity): (IpAddr, Option<String>),
        alpn_h2: bool,
        activity: Arc<Activity>,
        first_head_by: tokio::time::Instant,
        shared: &Arc<Shared>,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some(loaded) = shared.store.current() else {
            return;
        };
        let tcp = match self.config.protocol {
            Protocol::Tcp => true,
            Protocol::Http => false,
            Protocol::Auto => is_tcp_port(&loaded, self.config.port),
        };
        let conn = Arc::new(Conn {
            listener: self.clone(),
            shared: shared.clone(),
            ip,
            identity,
            class: Mutex::new(None),
            candidate_class: Mutex::new(None),
            activity: activity.clone(),
            upstream_h1: Arc::new(Mutex::new(None)),
        });
        if tcp {
            relay_tcp(io, conn, loaded, activity).await;
        } else {
            drop(loaded);
            serve_http(io, conn, alpn_h2, activity, first_head_by).await;
        }
    }
}

fn is_tcp_port(loaded: &LoadedBundle, port: u16) -> bool {
    loaded.bundle().server_protocol(port) == Some(sluice_runtime::Protocol::Tcp)
}

/// One accepted connection: who the peer is, and its classification.
struct Conn {
    listener: Arc<Listener>,
    shared: Arc<Shared>,
    ip: IpAddr,
    identity: Option<String>,
    /// The peer's classification and the bundle generation it was made for.
    class: Mutex<Option<(u64, PeerClass)>>,
    /// The peer's classification by the candidate bundle, and the
    /// candidate generation it was made for.
    candidate_class: Mutex<Option<(u64, PeerClass)>>,
    /// Byte activity and framing of the client side.
    activity: Arc<Activity>,
    /// This connection's own HTTP/1.1 connection to the application: an
    /// HTTP/1.1 client sends one request at a time, so it needs no pool.
    /// Released after [`UPSTREAM_IDLE`] without a byte on the client side.
    upstream_h1: Arc<Mutex<Option<http1::SendRequest<ClientBody>>>>,
}

thread_local! {
    /// Scratch space per worker thread, for the bundle generation it was made for.
    static SCRATCH: RefCell<Option<(u64, Scratch, Vec<u8>)>> = const { RefCell::new(None) };
}

impl Conn {
    fn peer(&self) -> Peer<'_> {
        Peer {
            ip: Some(self.ip),
            identity: self.identity.as_deref(),
        }
    }

    /// Decides `request` under `loaded`, counting and logging it; `f` sees
    /// the decision, the scratch space it was decided with and a path buffer.
    fn decide<R>(
        &self,
        loaded: &LoadedBundle,
        request: &Inbound<'_>,
        f: impl FnOnce(&Result<Decision<'_>, RequestError<'_>>, &Scratch, &mut Vec<u8>) -> R,
    ) -> R {
        let bundle = loaded.bundle();
        let mut class = self.class.lock().unwrap_or_else(|e| e.into_inner());
        if class
            .as_ref()
            .is_none_or(|(g, _)| *g != loaded.generation())
        {
            let mut c = bundle.create_peer_class();
            bundle.classify(&self.peer(), &mut c);
            *class = Some((loaded.generation(), c));
        }
        let Some((_, class)) = class.as_ref() else {
            unreachable!("classified above")
        };
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
            let d = bundle.decide_inbound(request, class, scratch);
            f(&d, scratch, buf)
        })
    }

    /// Counts and logs the decision `d` of `request`, comparing it with
    /// the candidate bundle's when one is loaded.
    fn record(
        &self,
        loaded: &LoadedBundle,
        request: &Inbound<'_>,
        logged: &LoggedRequest<'_>,
        d: &Decision<'_>,
    ) {
        report::inbound_decision(&self.shared, loaded, logged, d, |c, f| {
            candidate::decide_inbound(c, &self.candidate_class, &self.peer(), request, f)
        });
    }
}

/// What to do with an HTTP request once decided.
enum Verdict {
    Answer(Response<Full<Bytes>>),
    Forward(Bytes),
}

async fn handle_request(
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, std::convert::Infallible> {
    let start = Instant::now();
    conn.activity.requested.store(true, Ordering::Relaxed);
    let response = match conn.shared.store.current() {
        None => Either::Right(enforce::text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "no policy loaded\n",
            "not-ready",
        )),
        Some(loaded) => {
            let verdict = decide_http(&conn, &loaded, &req);
            match verdict {
                Verdict::Answer(r) => Either::Right(r),
                Verdict::Forward(target) => forward(&conn, req, target).await,
            }
        }
    };
    conn.shared.metrics.request_latency.observe(start.elapsed());
    Ok(match response {
        Either::Left(r) => r.map(Either::Left),
        Either::Right(r) => r.map(Either::Right),
    })
}

fn decide_http(conn: &Conn, loaded: &LoadedBundle, req: &Request<Incoming>) -> Verdict {
    let smuggling = conn
        .activity
        .ambiguous
        .load(Ordering::Relaxed)
        .then_some("ambiguous request framing\n");
    if let Some(why) = smuggling.or_else(|| enforce::ambiguous_framing(req.headers())) {
        conn.shared.metrics.bad_requests.inc(["framing"]);
        let mut r = enforce::text_response(StatusCode::BAD_REQUEST, why, "bad-request");
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        return Verdict::Answer(r);
    }
    let target = req
        .uri()
        .path_and_query()
        .map_or(&b""[..], |pq| pq.as_str().as_bytes());
    let headers = enforce::HeaderMapHeaders(req.headers());
    let request = Inbound {
        port: conn.listener.config.port,
        http: Some(Http {
            method: req.method().as_str(),
            path: target,
            headers: &headers,
        }),
    };
    let logged = LoggedRequest {
        port: conn.listener.config.port,
        http: Some((req.method().as_str(), target, req.headers())),
        ip: Some(conn.ip),
        identity: conn.identity.as_deref(),
    };
    conn.decide(loaded, &request, |d, scratch, buf| match d {
        Ok(d) => {
            conn.record(loaded, &request, &logged, d);
            if !d.allow {
                return Verdict::Answer(enforce::deny_response(d));
            }
            match enforce::forwarded_target(target, scratch, buf) {
                Some(t) => Verdict::Forward(t),
                None => Verdict::Answer(bad_path(req.headers())),
            }
        }
        Err(_) => Verdict::Answer(bad_path(req.headers())),
    })
}

fn bad_path(headers: &http::HeaderMap) -> Response<Full<Bytes>> {
    if enforce::is_grpc(headers) {
        enforce::grpc_response(13, "malformed request path", "bad-path")
    } else {
        enforce::text_response(StatusCode::BAD_REQUEST, "bad request path\n", "bad-path")
    }
}

async fn forward(
    conn: &Conn,
    req: Request<Incoming>,
    target: Bytes,
) -> Either<Response<Incoming>, Response<Full<Bytes>>> {
    let listener = &conn.listener;
    let (mut parts, body) = req.into_parts();
    let grpc = enforce::is_grpc(&parts.headers);
    let authority = parts.uri.authority().map(|a| a.as_str()).or_else(|| {
        parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    let fallback = &listener.app_authority;
    let uri = enforce::upstream_uri(authority, fallback, target.clone())
        .or_else(|| enforce::upstream_uri(None, fallback, target));
    let Some(uri) = uri else {
        return Either::Right(bad_path(&parts.headers));
    };
    let app_protocol = listener.config.app_protocol;
    let to_h2 = match app_protocol {
        AppProtocol::Auto => parts.version == http::Version::HTTP_2,
        AppProtocol::Http1 => false,
        AppProtocol::H2c => true,
    };
    if grpc && app_protocol == AppProtocol::Http1 {
        tracing::warn!(app = %listener.config.app, "a gRPC request on a listener whose app-protocol is http1; gRPC needs HTTP/2");
        return Either::Right(enforce::grpc_response(
            13,
            "grpc needs http/2 but the listener's app-protocol is http1",
            "app-protocol",
        ));
    }
    let upgrade = crate::upgrade::requested(parts.version, &parts.headers);
    if upgrade.is_some() && to_h2 {
        return Either::Right(crate::upgrade::not_possible(
            "the application speaks h2c: an HTTP/1.1 upgrade cannot be forwarded\n",
        ));
    }
    parts.uri = uri;
    enforce::prepare_headers(&mut parts.headers, conn.identity.as_deref());
    let client_upgrade = upgrade.and_then(|protocol| {
        crate::upgrade::restore_request_headers(&mut parts.headers, protocol);
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    });
    if to_h2 {
        // The authority travels as `:authority`.
        parts.headers.remove(http::header::HOST);
        parts.version = http::Version::HTTP_2;
    }
    let upstream = Request::from_parts(parts, ClientBody::new(body));
    let result = if let Some(client) = client_upgrade {
        // The relay outlives this connection's task: it holds a permit of its own.
        let Ok(permit) = conn.shared.connections.clone().try_acquire_owned() else {
            conn.shared.metrics.connections_refused.inc(["limit"]);
            return Either::Right(enforce::text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections\n",
                "limit",
            ));
        };
        forward_upgrade(conn, upstream, client, permit).await
    } else if to_h2 {
        listener
            .h2
            .request(upstream)
            .await
            .map_err(Failed::from_error)
    } else {
        forward_h1(conn, upstream).await
    };
    match result {
        Ok(mut response) => {
            enforce::prepare_response_headers(response.headers_mut());
            crate::upgrade::restore_switch_headers(&mut response);
            Either::Left(response)
        }
        Err(Failed {
            client_body: true,
            message,
        }) => {
            // The client's body was malformed (bad chunked encoding) or
            // ended early: the client's fault, not the application's.
            conn.shared.metrics.bad_requests.inc(["body"]);
            tracing::debug!(ip = %conn.ip, error = %message, "malformed request body");
            Either::Right(enforce::bad_body_response())
        }
        Err(Failed { message: e, .. }) => {
            conn.shared.metrics.upstream_errors.inc(["connect"]);
            tracing::warn!(app = %listener.config.app, error = %e, "the application could not be reached");
            Either::Right(if grpc {
                enforce::grpc_response(14, "the application could not be reached", "upstream")
            } else {
                enforce::text_response(
                    StatusCode::BAD_GATEWAY,
                    "the application could not be reached\n",
                    "upstream",
                )
            })
        }
    }
}

/// Why a forwarded request got no response from the application.
struct Failed {
    /// The client's request body failed (malformed or incomplete).
    client_body: bool,
    message: String,
}

impl Failed {
    fn from_error(e: impl std::error::Error + 'static) -> Failed {
        Failed {
            client_body: request_body::caused_by_client_body(&e),
            message: e.to_string(),
        }
    }

    fn connect(message: String) -> Failed {
        Failed {
            client_body: false,
            message,
        }
    }
}

/// Sends an HTTP/1.1 request over the connection's own upstream connection,
/// opening it (again) when needed. A request that a reused connection
/// closed before sending is sent once more on a new connection.
async fn forward_h1(
    conn: &Conn,
    mut req: Request<ClientBody>,
) -> Result<Response<Incoming>, Failed> {
    to_origin_form(conn, &mut req);
    let reused = conn
        .upstream_h1
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let mut sender = match reused {
        Some(mut s) => match s.ready().await {
            Ok(()) => s,
            Err(_) => connect_h1(conn).await.map_err(Failed::connect)?,
        },
        None => connect_h1(conn).await.map_err(Failed::connect)?,
    };
    let response = match sender.try_send_request(req).await {
        Ok(r) => Ok(r),
        Err(mut e) => match e.take_message() {
            Some(req) => {
                sender = connect_h1(conn).await.map_err(Failed::connect)?;
                sender.send_request(req).await.map_err(Failed::from_error)
            }
            None => Err(Failed::from_error(e.into_error())),
        },
    };
    *conn.upstream_h1.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
    response
}

/// Makes `req` an HTTP/1.1 request as the application expects it from a
/// client: origin-form target, and a `Host` (from the authority of an
/// HTTP/2 client's request, else the application's address) when missing.
fn to_origin_form(conn: &Conn, req: &mut Request<ClientBody>) {
    if !req.headers().contains_key(http::header::HOST) {
        let authority = req
            .uri()
            .authority()
            .map_or(conn.listener.app_authority.as_str(), |a| a.as_str());
        if let Ok(host) = http::HeaderValue::from_str(authority) {
            req.headers_mut().insert(http::header::HOST, host);
        }
    }
    let pq = req.uri().path_and_query().cloned();
    if let Some(pq) = pq {
        *req.uri_mut() = http::Uri::from(pq);
    }
    *req.version_mut() = http::Version::HTTP_11;
}

/// Sends an allowed upgrade request on a new HTTP/1.1 connection of its
/// own; on `101` the client's and the application's upgraded connections
/// are relayed (see [`crate::upgrade`]), the relay holding `permit`.
async fn forward_upgrade(
    conn: &Conn,
    mut req: Request<ClientBody>,
    client: hyper::upgrade::OnUpgrade,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Response<Incoming>, Failed> {
    to_origin_form(conn, &mut req);
    let app = conn.listener.config.app;
    let connect = tokio::time::timeout(
        conn.shared.limits.connect_timeout(),
        TcpStream::connect(app),
    );
    let stream = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Failed::connect(e.to_string())),
        Err(_) => return Err(Failed::connect("connect timed out".into())),
    };
    let _ = stream.set_nodelay(true);
    let mut response = crate::upgrade::send(TokioIo::new(stream), req)
        .await
        .map_err(Failed::from_error)?;
    let relay = crate::upgrade::Relay::new(&conn.shared, permit);
    crate::upgrade::relay_if_switched(&mut response, client, relay);
    Ok(response)
}

/// How long a client connection keeps its own upstream HTTP/1.1 connection
/// without a byte either way on the client side. Then the upstream
/// connection is released (its buffers, its task, its socket: about half of
/// an idle client connection's memory); the next request opens a new one.
const UPSTREAM_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

async fn connect_h1(conn: &Conn) -> Result<http1::SendRequest<ClientBody>, String> {
    let stream = TcpStream::connect(conn.listener.config.app)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let activity = conn.activity.clone();
    let slot = Arc::downgrade(&conn.upstream_h1);
    tokio::spawn(async move {
        tokio::pin!(connection);
        let mut wait = UPSTREAM_IDLE;
        loop {
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if activity.idle_for() < UPSTREAM_IDLE {
                wait = activity.until_idle(UPSTREAM_IDLE);
                continue;
            }
            // Idle: drop the parked sender, and hyper closes the connection
            // (after the response in flight, if any). While a request has
            // the sender out of the slot, look again later.
            let parked = slot
                .upgrade()
                .and_then(|s| s.lock().unwrap_or_else(|e| e.into_inner()).take());
            if parked.is_some() || slot.strong_count() == 0 {
                drop(parked);
                let _ = connection.await;
                return;
            }
            wait = UPSTREAM_IDLE;
        }
    });
    Ok(sender)
}

/// Serves HTTP/1.1 and HTTP/2 on one connection: the stack, in one place.
///
/// A connection whose first request head has not been read by the
/// activity's deadline (protocol detection included: a partial HTTP/2
/// preface, an HTTP/2 connection without a complete HEADERS frame) is
/// closed; later HTTP/1.1 heads are bounded by hyper's header read timeout.
async fn serve_http<IO>(
    io: IO,
    conn: Arc<Conn>,
    alpn_h2: bool,
    activity: Arc<Activity>,
    first_head_by: tokio::time::Instant,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &conn.shared.limits;
    let builder = server::http_builder(limits, alpn_h2);
    let idle = limits.idle_timeout();
    let first_head = tokio::time::sleep_until(first_head_by);
    tokio::pin!(first_head);
    let mut awaiting_first = true;
    let service_conn = conn.clone();
    let service = hyper::service::service_fn(move |req| handle_request(service_conn.clone(), req));
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            r = connection.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = conn.shared.shutdown.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = &mut first_head, if awaiting_first => {
                awaiting_first = false;
                if !activity.requested.load(Ordering::Relaxed) {
                    conn.shared.metrics.connections_refused.inc(["timeout"]);
                    tracing::debug!(ip = %conn.ip, "no request head before the header read timeout; closing");
                    return;
                }
            }
            _ = tokio::time::sleep(activity.until_idle(idle)), if !closing => {
                if activity.idle_for() >= idle {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Relays an allowed TCP connection; closes it when a new bundle denies it.
async fn relay_tcp<IO>(
    mut io: IO,
    conn: Arc<Conn>,
    loaded: Arc<LoadedBundle>,
    activity: Arc<Activity>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let port = conn.listener.config.port;
    let logged = LoggedRequest {
        port,
        http: None,
        ip: Some(conn.ip),
        identity: conn.identity.as_deref(),
    };
    let decide = |loaded: &LoadedBundle, record: bool| -> (bool, String) {
        let request = Inbound { port, http: None };
        conn.decide(loaded, &request, |d, _, _| match d {
            Ok(d) => {
                if record {
                    conn.record(loaded, &request, &logged, d);
                }
                (d.allow, d.server.unwrap_or("").to_owned())
            }
            Err(_) => (false, String::new()),
        })
    };
    let mut changes = conn.shared.store.subscribe();
    changes.mark_unchanged();
    let (allowed, _) = decide(&loaded, true);
    drop(loaded);
    if !allowed {
        return;
    }
    let app = conn.listener.config.app;
    let mut upstream = match tokio::time::timeout(
        conn.shared.limits.tcp_connect_timeout(),
        TcpStream::connect(app),
    )
    .await
    {
        Ok(Ok(s)) => s,
        _ => {
            conn.shared.metrics.upstream_errors.inc(["connect"]);
            tracing::warn!(app = %app, "the application could not be reached");
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let idle = conn.shared.limits.idle_timeout();
    let copy = tokio::io::copy_bidirectional(&mut io, &mut upstream);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            _ = &mut copy => return,
            r = changes.changed() => {
                if r.is_err() {
                    return;
                }
                let Some(loaded) = conn.shared.store.current() else { continue };
                let (allowed, server) = decide(&loaded, false);
                if !allowed {
                    conn.shared.metrics.connections_revoked.inc([server.as_str()]);
                    tracing::info!(
                        server,
                        identity = conn.identity.as_deref().unwrap_or("-"),
                        ip = %conn.ip,
                        bundle = loaded.hash(),
                        "open connection closed: the new bundle denies it"
                    );
                    return;
                }
            }
            _ = tokio::time::sleep(activity.until_idle(idle)) => {
                if activity.idle_for() >= idle {
                    return;
                }
            }
            _ = conn.shared.shutdown.cancelled() => return,
        }
    }
}

/// Connects to the local application, whatever the request's authority.
#[derive(Clone, Debug)]
pub(crate) struct AppConnector {
    addr: SocketAddr,
}

impl tower_service::Service<http::Uri> for AppConnector {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<TokioIo<TcpStream>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let addr = self.addr;
        Box::pin(async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(TokioIo::new(s))
        })
    }
}
