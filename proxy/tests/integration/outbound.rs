//! The outbound proxy end to end on 127.0.0.x: routing of declared services
//! (header routes, weighted splits), retries and their budget, circuit
//! breaking, failover, timeouts, `max-in-flight`, endpoint names, and egress
//! control (HTTP and `CONNECT`). Upstreams are small hyper or raw tokio
//! servers written here, misbehaving on purpose and counting what reaches
//! them.
//!
//! These tests take a lock and run one at a time among themselves: several
//! depend on time (breaker backoff, timeouts) and others load the machine
//! (10,000 requests), which must not overlap on a 2-core box. Time is
//! judged with lower bounds (a timer never fires early) and generous upper
//! bounds only, or by the order of events, so that a loaded machine slows
//! the tests down without failing them.

use crate::support;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_proxy::outbound::resolve::StaticResolver;
use sluice_proxy::Proxy;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

/// One test at a time (see the module documentation).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long any single request may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Upstreams
// ---------------------------------------------------------------------------

type Reply = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;
/// Answers the `n`-th request (from 0) an upstream received: head and body.
type Handler = Arc<dyn Fn(usize, http::request::Parts, Bytes) -> Reply + Send + Sync>;

/// A response with `status`, naming the upstream in `x-backend`.
fn respond(status: u16, backend: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("x-backend", backend.parse().unwrap());
    r
}

/// A handler answering at once with the status `f(n)`.
fn status_handler(name: &'static str, f: impl Fn(usize) -> u16 + Send + Sync + 'static) -> Handler {
    Arc::new(move |n, _, _| {
        let status = f(n);
        Box::pin(async move { respond(status, name, "") })
    })
}

/// A handler answering 200 at once, echoing the body, the `Host` it saw
/// (`x-seen-host`), the target (`x-seen-path`) and the version (`x-seen-version`).
fn ok_handler(name: &'static str) -> Handler {
    Arc::new(move |_, parts, body| {
        Box::pin(async move {
            let mut r = respond(200, name, body);
            let host = parts.headers.get("host").cloned();
            let h = r.headers_mut();
            if let Some(host) = host {
                h.insert("x-seen-host", host);
            }
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            h.insert("x-seen-path", path.parse().unwrap());
            h.insert(
                "x-seen-version",
                format!("{:?}", parts.version).parse().unwrap(),
            );
            r
        })
    })
}

/// An HTTP/1.1 and h2c upstream that can be killed (listener dropped and
/// every connection closed) and restarted on the same address.
struct Upstream {
    addr: SocketAddr,
    handler: Handler,
    /// HTTP requests received.
    hits: Arc<AtomicUsize>,
    /// TCP connections accepted.
    conns: Arc<AtomicUsize>,
    /// Connections open now.
    open: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    accept: Option<tokio::task::JoinHandle<()>>,
}

/// Binds `addr` with `SO_REUSEADDR`, so that a killed upstream can come back
/// on its port while its old connections sit in TIME_WAIT.
fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket
        .bind(addr)
        .unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
    socket.listen(1024).unwrap()
}

impl Upstream {
    /// Starts on `addr` (port 0: any free port).
    async fn start(addr: &str, handler: Handler) -> Upstream {
        let (stop, _) = watch::channel(false);
        let mut up = Upstream {
            addr: addr.parse().unwrap(),
            handler,
            hits: Arc::new(AtomicUsize::new(0)),
            conns: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(AtomicUsize::new(0)),
            stop,
            accept: None,
        };
        up.listen();
        up
    }

    fn listen(&mut self) {
        let listener = bind(self.addr);
        self.addr = listener.local_addr().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        self.stop = stop;
        let (handler, hits, conns, open) = (
            self.handler.clone(),
            self.hits.clone(),
            self.conns.clone(),
            self.open.clone(),
        );
        self.accept = Some(tokio::spawn(async move {
            let mut stopped = stop_rx.clone();
            loop {
                let stream = tokio::select! {
                    r = listener.accept() => match r {
                        Ok((s, _)) => s,
                        Err(_) => continue,
                    },
                    _ = stopped.wait_for(|s| *s) => return,
                };
                conns.fetch_add(1, Ordering::SeqCst);
                open.fetch_add(1, Ordering::SeqCst);
                let (handler, hits, open) = (handler.clone(), hits.clone(), open.clone());
                let mut stopped = stop_rx.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let n = hits.fetch_add(1, Ordering::SeqCst);
                        let handler = handler.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            Ok::<_, std::convert::Infallible>(handler(n, parts, body).await)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }));
    }

    /// Stops accepting, closes the listener and every connection.
    async fn kill(&mut self) {
        self.stop.send_replace(true);
        if let Some(accept) = self.accept.take() {
            accept.await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.open.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "connections of {} do not close",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Listens again on the same address.
    fn restart(&mut self) {
        self.listen();
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// A TCP upstream on `ip` answering each read with `echo: ` and the bytes;
/// counts accepted connections.
async fn tcp_echo(ip: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let conns = Arc::new(AtomicUsize::new(0));
    let seen = conns.clone();
    let listener = bind(format!("{ip}:0").parse().unwrap());
    let addr = serve_each(listener, move |stream| {
        seen.fetch_add(1, Ordering::SeqCst);
        echo_each_read(stream)
    });
    (addr, conns)
}

// ---------------------------------------------------------------------------
// The proxy and its clients
// ---------------------------------------------------------------------------

/// Compiles `policy` and starts a proxy with one explicit outbound listener.
async fn proxy_for(name: &str, policy: &str, resolver: Arc<StaticResolver>) -> (TempDir, Proxy) {
    let dir = TempDir::new(&format!("outbound-{name}"));
    std::fs::write(dir.path("p.bundle"), compile(policy)).unwrap();
    let toml = r#"
[policy]
bundle = "p.bundle"
watch = false
[admin]
listen = "127.0.0.1:0"
[[outbound]]
listen = "127.0.0.1:0"
mode = "explicit"
[resolver]
refresh-ms = 100
[limits]
connect-timeout-ms = 2000
drain-timeout-ms = 2000
"#;
    let proxy = start_proxy_with_resolver(&dir, toml, resolver).await;
    (dir, proxy)
}

async fn metrics(proxy: &Proxy) -> String {
    let (status, body) = admin_get(proxy.admin_addr(), "/metrics").await;
    assert_eq!(status, 200);
    body
}

/// A keep-alive HTTP/1.1 client of the outbound listener (reconnects when
/// the proxy closed the connection).
struct Client {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client { addr, sender: None }
    }

    async fn connect(&mut self) -> Result<(), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).unwrap();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        Ok(())
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Seen, String> {
        self.connect().await?;
        let sender = self.sender.as_mut().unwrap();
        let sent = async {
            sender.ready().await.map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(collect(resp).await)
        };
        let result = match tokio::time::timeout(HANG, sent).await {
            Ok(r) => r,
            Err(_) => Err("no answer: the request hangs".to_owned()),
        };
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    /// An origin-form request with `Host: authority`.
    async fn request(
        &mut self,
        method: &str,
        authority: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &'static [u8],
    ) -> Result<Seen, String> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", authority);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        self.send(req.body(Full::new(Bytes::from_static(body))).unwrap())
            .await
    }

    /// An absolute-form GET of `uri` with `Host: host` and `headers`.
    async fn get_absolute(&mut self, uri: &str, host: &str, headers: &[(&str, &str)]) -> Seen {
        let mut req = Request::builder().uri(uri).header("host", host);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        self.send(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap()
    }

    async fn get(&mut self, authority: &str, path: &str) -> Seen {
        self.request("GET", authority, path, &[], b"")
            .await
            .unwrap()
    }
}

/// Sends raw bytes and reads a response head (up to the blank line).
async fn raw_head(stream: &mut TcpStream, bytes: &[u8]) -> String {
    stream.write_all(bytes).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(HANG, async {
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    });
    read.await.expect("a response head");
    String::from_utf8_lossy(&head).into_owned()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------
// 1. Header routes and the weighted split
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_routes_and_weighted_split() {
    let _serial = SERIAL.lock().await;
    let east = Upstream::start("127.0.0.1:0", ok_handler("east")).await;
    let canary = Upstream::start("127.0.0.1:0", ok_handler("canary")).await;
    let policy = format!(
        r#"
service payments {{
  authority "payments.prod:8080"
  backend east   {{ endpoint {east} }}
  backend canary {{ endpoint {canary} }}
  route beta {{ header "x-canary" = "1"  to canary }}
  route main {{ to east 90, canary 10 }}
}}
"#,
        east = east.addr,
        canary = canary.addr
    );
    let (_dir, proxy) = proxy_for("routing", &policy, Arc::new(StaticResolver::new())).await;
    let out = proxy.outbound_addrs()[0];

    // The header route: every request to the canary, the path forwarded.
    let mut c = Client::new(out);
    for _ in 0..50 {
        let r = c
            .request(
                "GET",
                "payments.prod:8080",
                "/pay/a//b?x=1",
                &[("x-canary", "1")],
                b"",
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.header("x-backend")), (200, "canary"), "{r:?}");
        assert_eq!(r.header("x-seen-path"), "/pay/a/b?x=1");
        assert_eq!(r.header("x-seen-host"), "payments.prod:8080");
    }
    // Absolute form, the host in another case: the same service.
    let r = c
        .get_absolute(
            "http://PAYMENTS.prod:8080/abs",
            "PAYMENTS.prod:8080",
            &[("x-canary", "1")],
        )
        .await;
    assert_eq!((r.status, r.header("x-backend")), (200, "canary"), "{r:?}");
    assert_eq!(r.header("x-seen-path"), "/abs");
    // h2c with prior knowledge, forwarded in HTTP/2.
    {
        let mut h2 = h2c_connect(out).await;
        let req = Request::builder()
            .uri("http://payments.prod:8080/h2")
            .header("x-canary", "1")
            .body(Full::new(Bytes::from_static(b"over h2")))
            .unwrap();
        let r = collect(h2.send_request(req).await.unwrap()).await;
        assert_eq!((r.status, r.header("x-backend")), (200, "canary"), "{r:?}");
        assert_eq!(r.header("x-seen-version"), "HTTP/2.0");
        assert_eq!(r.body, "over h2");
    }
    assert_eq!((east.hits(), canary.hits()), (0, 52));

    // The weighted split over 10,000 keep-alive requests from 8 clients.
    const N: usize = 10_000;
    const TASKS: usize = 8;
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            tokio::spawn(async move {
                let mut c = Client::new(out);
                let mut to_canary = 0usize;
                for i in 0..N / TASKS {
                    // A header that does not match the beta route changes nothing.
                    let headers: &[(&str, &str)] = if i % 2 == 0 {
                        &[("x-canary", "0")]
                    } else {
                        &[]
                    };
                    let r = c
                        .request("GET", "payments.prod:8080", "/pay", headers, b"")
                        .await
                        .unwrap();
                    assert_eq!(r.status, 200, "task {t}: {r:?}");
                    match r.header("x-backend") {
                        "canary" => to_canary += 1,
                        "east" => {}
                        other => panic!("answered by {other:?}"),
                    }
                }
                to_canary
            })
        })
        .collect();
    let mut to_canary = 0;
    for t in tasks {
        to_canary += t.await.unwrap();
    }
    let share = to_canary as f64 / N as f64;
    eprintln!(
        "split: {to_canary} of {N} to the canary ({:.2} %) in {:?}",
        share * 100.0,
        started.elapsed()
    );
    assert!(
        (share - 0.10).abs() <= 0.02,
        "canary share {share} is not 10 % ± 2 points"
    );
    assert_eq!(
        east.hits() + canary.hits(),
        N + 52,
        "each request reached exactly one upstream"
    );
    assert_eq!(canary.hits(), to_canary + 52);

    let m = metrics(&proxy).await;
    let main = |backend| {
        metric_sum(
            &m,
            "sluice_outbound_requests_total",
            &[
                ("service", "payments"),
                ("route", "main"),
                ("backend", backend),
                ("status", "2xx"),
            ],
        )
    };
    assert_eq!(main("east") as usize, N - to_canary, "{m}");
    assert_eq!(main("canary") as usize, to_canary, "{m}");
    let beta = metric_sum(
        &m,
        "sluice_outbound_requests_total",
        &[("route", "beta"), ("backend", "canary")],
    );
    assert_eq!(beta as usize, 52, "{m}");
    drop(c);
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------
// 2. Retries and the retry budget
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_the_retry_budget() {
    let _serial = SERIAL.lock().await;
    // 503 twice, then 200; every try must carry the body.
    let flaky_handler: Handler = Arc::new(|n, _, body| {
        Box::pin(async move {
            if body != "payload" {
                return respond(400, "flaky", "the body was not re-sent");
            }
            respond(if n < 2 { 503 } else { 200 }, "flaky", body)
        })
    });
    let flaky = Upstream::start("127.0.0.1:0", flaky_handler).await;
    let strict = Upstream::start("127.0.0.1:0", status_handler("strict", |_| 500)).await;
    let storm = Upstream::start("127.0.0.1:0", status_handler("storm", |_| 503)).await;
    // The storm's breaker never opens, so that only the budget holds retries back.
    let policy = format!(
        r#"
service flaky {{
  authority "flaky.prod"
  retry {{ attempts 3  on gateway-error }}
  backend b {{ endpoint {flaky} }}
  route all {{ to b }}
}}
service strict {{
  authority "strict.prod"
  retry {{ attempts 3  on gateway-error }}
  backend b {{ endpoint {strict} }}
  route all {{ to b }}
}}
service storm {{
  authority "storm.prod"
  retry {{ attempts 3  on 5xx  budget 20% }}
  circuit-breaker {{ consecutive-failures 1000000 }}
  backend b {{ endpoint {storm} }}
  route all {{ to b }}
}}
"#,
        flaky = flaky.addr,
        strict = strict.addr,
        storm = storm.addr
    );
    let (_dir, proxy) = proxy_for("retries", &policy, Arc::new(StaticResolver::new())).await;
    let out = proxy.outbound_addrs()[0];
    let mut c = Client::new(out);

    let r = c
        .request("POST", "flaky.prod", "/charge", &[], b"payload")
        .await
        .unwrap();
    assert_eq!((r.status, r.header("x-backend")), (200, "flaky"), "{r:?}");
    assert_eq!(r.body, "payload");
    assert_eq!(flaky.hits(), 3, "two 503s retried, then the 200");

    let r = c.get("strict.prod", "/x").await;
    assert_eq!((r.status, r.header("x-backend")), (500, "strict"), "{r:?}");
    assert_eq!(strict.hits(), 1, "500 is not a gateway error: no retry");

    // A retry storm: every request fails and wants 3 retries.
    const N: usize = 1_000;
    const TASKS: usize = 10;
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            tokio::spawn(async move {
                let mut c = Client::new(out);
                for _ in 0..N / TASKS {
                    let r = c.get("storm.prod", "/x").await;
                    assert_eq!((r.status, r.header("x-backend")), (503, "storm"), "{r:?}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let seen = storm.hits();
    let retries = seen - N;
    eprintln!("storm: {N} requests, {retries} retries in {elapsed:?}");
    // Budget: in each 10 s window, retries ≤ 20 % of the window's requests
    // + 10/s × 10 s. A slow machine may need more than one window.
    let windows = elapsed.as_secs() as usize / 10 + 1;
    let bound = N + N / 5 + 100 * windows + 5;
    assert!(
        seen <= bound,
        "upstream saw {seen} requests for {N} sent; at most {bound} expected"
    );
    assert!(
        retries >= 100,
        "the minimum of 10 retries a second is always allowed: {retries}"
    );

    let m = metrics(&proxy).await;
    let exhausted = metric_sum(
        &m,
        "sluice_outbound_retry_budget_exhausted_total",
        &[("service", "storm")],
    );
    assert!(exhausted > 0.0, "{m}");
    let counted = metric_sum(&m, "sluice_outbound_retries_total", &[("service", "storm")]);
    assert_eq!(counted as usize, retries, "{m}");
    assert_eq!(
        metric_sum(&m, "sluice_outbound_retries_total", &[("service", "flaky")]),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(
            &m,
            "sluice_outbound_retries_total",
            &[("service", "strict")]
        ),
        0.0,
        "{m}"
    );
    drop(c);
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------
// 3. Circuit breaking
// ---------------------------------------------------------------------------

const FAILING: u8 = 0;
const SLOW_OK: u8 = 1;
const OK: u8 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_ejects_probes_and_closes() {
    let _serial = SERIAL.lock().await;
    let mode = Arc::new(AtomicU8::new(FAILING));
    let m2 = mode.clone();
    let handler: Handler = Arc::new(move |_, _, _| {
        let mode = m2.load(Ordering::SeqCst);
        Box::pin(async move {
            match mode {
                FAILING => respond(503, "only", ""),
                SLOW_OK => {
                    // Long enough for every other client's request to
                    // arrive while the probe is in flight, even when slow.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    respond(200, "only", "probe")
                }
                _ => respond(200, "only", ""),
            }
        })
    });
    let up = Upstream::start("127.0.0.1:0", handler).await;
    let policy = format!(
        r#"
service cb {{
  authority "cb.prod"
  retry {{ attempts 0 }}
  circuit-breaker {{ consecutive-failures 3  backoff 3s 60s  jitter 0% }}
  backend only {{ endpoint {addr} }}
  route all {{ to only }}
}}
"#,
        addr = up.addr
    );
    let (_dir, proxy) = proxy_for("breaker", &policy, Arc::new(StaticResolver::new())).await;
    let out = proxy.outbound_addrs()[0];
    let mut c = Client::new(out);

    for _ in 0..2 {
        let r = c.get("cb.prod", "/x").await;
        assert_eq!((r.status, r.header("x-backend")), (503, "only"), "{r:?}");
    }
    let before_third = Instant::now();
    let r = c.get("cb.prod", "/x").await;
    let after_third = Instant::now();
    assert_eq!((r.status, r.header("x-backend")), (503, "only"), "{r:?}");
    assert_eq!(up.hits(), 3);

    // Ejected: the proxy itself answers 503, the endpoint sees nothing.
    // The ejection started after `before_third`, so it lasts at least until
    // `before_third + 3 s`; only answers received before then are judged.
    let mut refused = 0;
    while before_third.elapsed() < Duration::from_millis(2500) {
        let r = c.get("cb.prod", "/x").await;
        if before_third.elapsed() < Duration::from_secs(3) {
            assert_eq!(r.status_and_error(), (503, "no-endpoint"), "{r:?}");
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused >= 1, "{refused}");
    assert_eq!(up.hits(), 3, "no traffic reaches an ejected endpoint");

    // The endpoint recovers; after the backoff exactly one probe goes
    // through while the others are still refused.
    mode.store(SLOW_OK, Ordering::SeqCst);
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut c = Client::new(out);
        c.connect().await.unwrap();
        clients.push(c);
    }
    tokio::time::sleep(
        (after_third + Duration::from_millis(3100)).saturating_duration_since(Instant::now()),
    )
    .await;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| tokio::spawn(async move { c.get("cb.prod", "/probe").await }))
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let probes: Vec<_> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(probes.len(), 1, "exactly one probe: {answers:?}");
    assert_eq!(probes[0].body, "probe");
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status_and_error(), (503, "no-endpoint"), "{r:?}");
    }
    assert_eq!(up.hits(), 4, "one probe reached the endpoint");

    // The probe succeeded: the breaker is closed and traffic flows.
    mode.store(OK, Ordering::SeqCst);
    for _ in 0..20 {
        let r = c.get("cb.prod", "/x").await;
        assert_eq!((r.status, r.header("x-backend")), (200, "only"), "{r:?}");
    }
    assert_eq!(up.hits(), 24);

    let m = metrics(&proxy).await;
    let endpoint = up.addr.to_string();
    for state in ["open", "half-open", "closed"] {
        let n = metric_sum(
            &m,
            "sluice_outbound_breaker_transitions_total",
            &[
                ("service", "cb"),
                ("backend", "only"),
                ("endpoint", &endpoint),
                ("state", state),
            ],
        );
        assert_eq!(n, 1.0, "{state}: {m}");
    }
    drop(c);
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------
// 4. Failover
// ---------------------------------------------------------------------------

/// What one client request saw.
#[derive(Debug)]
struct Record {
    sent: Instant,
    done: Instant,
    /// Status and `x-backend` (empty for the proxy's own answers) and `x-sluice-error`.
    result: Result<(u16, String, String), String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_moves_traffic_and_brings_it_back() {
    let _serial = SERIAL.lock().await;
    let mut p1 = Upstream::start("127.0.0.1:0", ok_handler("primary")).await;
    let mut p2 = Upstream::start("127.0.0.1:0", ok_handler("primary")).await;
    let secondary = Upstream::start("127.0.0.1:0", ok_handler("secondary")).await;
    let policy = format!(
        r#"
service pay {{
  authority "pay.prod"
  retry {{ attempts 2  on reset, gateway-error }}
  circuit-breaker {{ consecutive-failures 1  backoff 200ms 1s  jitter 0% }}
  backend primary   {{ endpoint {p1}, {p2}  cluster "east"  failover secondary }}
  backend secondary {{ endpoint {s}  cluster "west" }}
  route all {{ to primary }}
}}
"#,
        p1 = p1.addr,
        p2 = p2.addr,
        s = secondary.addr
    );
    let (_dir, proxy) = proxy_for("failover", &policy, Arc::new(StaticResolver::new())).await;
    let out = proxy.outbound_addrs()[0];

    const CLIENTS: usize = 4;
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(Mutex::new(Vec::<Record>::new()));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, records) = (stop.clone(), records.clone());
            tokio::spawn(async move {
                let mut c = Client::new(out);
                while !stop.load(Ordering::SeqCst) {
                    let sent = Instant::now();
                    let result = c.request("GET", "pay.prod", "/x", &[], b"").await.map(|r| {
                        (
                            r.status,
                            r.header("x-backend").to_owned(),
                            r.header("x-sluice-error").to_owned(),
                        )
                    });
                    let done = Instant::now();
                    records.lock().unwrap().push(Record { sent, done, result });
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        p1.hits() + p2.hits() > 0 && secondary.hits() == 0,
        "traffic starts on the primary"
    );
    let killing = Instant::now();
    p1.kill().await;
    p2.kill().await;
    // From here on nothing can reach the primary's endpoints.
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let on_secondary = secondary.hits();
    assert!(on_secondary > 0, "traffic moved to the secondary");

    let restarted = Instant::now();
    let primary_before = p1.hits() + p2.hits();
    p1.restart();
    p2.restart();
    let deadline = Instant::now() + Duration::from_secs(8);
    while p1.hits() + p2.hits() == primary_before {
        assert!(
            Instant::now() < deadline,
            "traffic never came back to the restarted primary"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let back = Instant::now();
    eprintln!(
        "traffic back on the primary {:?} after the restart",
        back - restarted
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }

    let records = std::mem::take(&mut *records.lock().unwrap());
    let mut failures = Vec::new();
    for r in &records {
        match &r.result {
            Ok((200, backend, _)) => {
                // Before the kill on the primary; once the failover settled
                // and until the restart on the secondary; once traffic came
                // back (plus a margin) on the primary.
                if r.done < killing {
                    assert_eq!(backend, "primary", "{r:?}");
                } else if r.sent > killed + Duration::from_millis(300) && r.done < restarted {
                    assert_eq!(backend, "secondary", "{r:?}");
                } else if r.sent > back + Duration::from_secs(1) {
                    assert_eq!(backend, "primary", "{r:?}");
                }
            }
            _ => failures.push(r),
        }
    }
    eprintln!(
        "{} requests, {} failed: {failures:?}",
        records.len(),
        failures.len()
    );
    assert!(records.len() > 100, "{}", records.len());
    assert!(
        failures.len() <= CLIENTS,
        "too many client-visible failures: {failures:?}"
    );
    for f in &failures {
        let Ok((status, _, _)) = &f.result else {
            panic!("a request failed without an answer (hang or broken connection): {f:?}");
        };
        assert!(matches!(status, 502 | 503), "{f:?}");
        assert!(
            f.sent < killed + Duration::from_millis(250) && f.done >= killing,
            "only requests in flight at the kill may fail: {f:?}"
        );
    }

    let m = metrics(&proxy).await;
    let failovers = metric_sum(
        &m,
        "sluice_outbound_failovers_total",
        &[
            ("service", "pay"),
            ("primary", "primary"),
            ("backend", "secondary"),
        ],
    );
    assert!(failovers > 0.0, "{m}");
    assert!(
        metric_sum(
            &m,
            "sluice_outbound_breaker_transitions_total",
            &[("service", "pay"), ("state", "closed")]
        ) >= 1.0,
        "{m}"
    );
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------
// 5. Timeouts
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_per_try_timeouts() {
    let _serial = SERIAL.lock().await;
    let slow_handler: Handler = Arc::new(|_, parts, _| {
        Box::pin(async move {
            if !parts.uri.path().starts_with("/fast") {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            respond(200, "slow", "")
        })
    });
    let slow = Upstream::start("127.0.0.1:0", slow_handler).await;
    // The first try hangs for 1 s, the next answers at once.
    let slow_then_fast: Handler = Arc::new(|n, _, _| {
        Box::pin(async move {
            if n == 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                return respond(200, "pertry", "slow");
            }
            respond(200, "pertry", "fast")
        })
    });
    let pertry = Upstream::start("127.0.0.1:0", slow_then_fast).await;
    let policy = format!(
        r#"
service slow {{
  authority "slow.prod"
  backend b {{ endpoint {slow} }}
  backend p {{ endpoint {pertry} }}
  route quick  {{ path prefix "/quick"  to b  timeout 300ms }}
  route rpc    {{ grpc "quick.v1.Svc/*"  to b  timeout 300ms }}
  route pertry {{ path prefix "/pertry"  to p  retry {{ attempts 1  per-try-timeout 200ms  on gateway-error }} }}
  route fast   {{ path prefix "/fast"  to b }}
}}
"#,
        slow = slow.addr,
        pertry = pertry.addr
    );
    let (_dir, proxy) = proxy_for("timeouts", &policy, Arc::new(StaticResolver::new())).await;
    let out = proxy.outbound_addrs()[0];
    let mut c = Client::new(out);
    // Warm up: the connection, the service table, the upstream pool.
    assert_eq!(c.get("slow.prod", "/fast").await.status, 200);

    // `timeout 300ms` against an upstream that answers after 2 s: the proxy
    // answers 504 itself (so before the upstream's answer), never before
    // 300 ms. No tighter upper bound: a loaded machine may be late.
    for _ in 0..3 {
        let sent = Instant::now();
        let r = c.get("slow.prod", "/quick/x").await;
        let t = sent.elapsed();
        assert_eq!(r.status_and_error(), (504, "timeout"), "{r:?}");
        assert!(t >= Duration::from_millis(300) && t < HANG, "{t:?}");
    }

    // A gRPC request (h2c): HTTP 200, trailers-only, grpc-status 4.
    let mut h2 = h2c_connect(out).await;
    let req = Request::builder()
        .method("POST")
        .uri("http://slow.prod/quick.v1.Svc/Call")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let sent = Instant::now();
    let r = collect(h2.send_request(req).await.unwrap()).await;
    let t = sent.elapsed();
    assert_eq!((r.status, r.header("grpc-status")), (200, "4"), "{r:?}");
    assert_eq!(r.header("x-sluice-error"), "timeout", "{r:?}");
    assert!(t >= Duration::from_millis(300) && t < HANG, "{t:?}");

    // per-try-timeout 200ms: the hanging first try is abandoned and retried.
    let sent = Instant::now();
    let r = c.get("slow.prod", "/pertry/x").await;
    let t = sent.elapsed();
    assert_eq!((r.status, r.header("x-backend")), (200, "pertry"), "{r:?}");
    assert_eq!(
        r.body, "fast",
        "the retry answered, not the hanging first try"
    );
    assert!(t >= Duration::from_millis(200) && t < HANG, "{t:?}");
    assert_eq!(pertry.hits(), 2);
    let m = metrics(&proxy).await;
    assert_eq!(
        metric_sum(&m, "sluice_outbound_retries_total", &[("service", "slow")]),
        1.0,
        "{m}"
    );
    drop(c);
    drop(h2);
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------
// max-in-flight and endpoint names
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_fails_fast() {
    let _serial = SERIAL.lock().await;
    let handler: Handler = Arc::new(|_, _, _| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            respond(200, "b", "")
        })
    });
    let up = Upstream::start("127.0.0.1:0", handler).await;
    let policy = format!(
        r#"
service limited {{
  authority "limited.prod"
  backend b {{ endpoint {addr}  max-in-flight 2 }}
  route all {{ to b }}
}}
"#,
        addr = up.addr
    );
    let (_dir, proxy) = proxy_for("max-in-flight", &policy, Arc::new(StaticResolver::new())).await;
    let out = proxy.outbound_addrs()[0];
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut c = Client::new(out);
        c.connect().await.unwrap();
        holders.push(tokio::spawn(
            async move { c.get("limited.prod", "/hold").await },
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.hits() < 2 {
        assert!(
            Instant::now() < deadline,
            "the first two requests never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Refused at once: while both held requests are still in flight.
    let mut c = Client::new(out);
    for _ in 0..3 {
        let r = c.get("limited.prod", "/over").await;
        assert_eq!(r.status_and_error(), (503, "max-in-flight"), "{r:?}");
        assert!(
            holders.iter().all(|h| !h.is_finished()),
            "the refusal waited for a held request"
        );
    }
    for h in holders {
        assert_eq!(h.await.unwrap().status, 200);
    }
    assert_eq!(up.hits(), 2);
    assert_eq!(c.get("limited.prod", "/after").await.status, 200);
    drop(c);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_names_are_resolved_and_refreshed() {
    let _serial = SERIAL.lock().await;
    let first = Upstream::start("127.0.0.1:0", ok_handler("first")).await;
    let port = first.addr.port();
    let second = Upstream::start(&format!("127.0.0.3:{port}"), ok_handler("second")).await;
    let resolver = Arc::new(StaticResolver::new());
    resolver.set("api.internal", &[ip("127.0.0.1")]);
    let policy = format!(
        r#"
service api {{
  authority "api.prod"
  backend b {{ endpoint "api.internal:{port}" }}
  route all {{ to b }}
}}
"#
    );
    let (_dir, proxy) = proxy_for("names", &policy, resolver.clone()).await;
    let mut c = Client::new(proxy.outbound_addrs()[0]);
    for _ in 0..5 {
        let r = c.get("api.prod", "/x").await;
        assert_eq!((r.status, r.header("x-backend")), (200, "first"), "{r:?}");
    }
    // The name moves (refresh-ms = 100): traffic follows.
    resolver.set("api.internal", &[ip("127.0.0.3")]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.get("api.prod", "/x").await;
        assert_eq!(r.status, 200, "{r:?}");
        if r.header("x-backend") == "second" {
            break;
        }
        assert!(Instant::now() < deadline, "the new address was never used");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = first.hits();
    for _ in 0..10 {
        assert_eq!(c.get("api.prod", "/x").await.header("x-backend"), "second");
    }
    assert_eq!(
        first.hits(),
        before,
        "the old address gets nothing once the name moved"
    );
    assert!(second.hits() >= 11, "{}", second.hits());
    drop(c);
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------
// 6. Egress
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_rules_checked_on_resolved_addresses() {
    let _serial = SERIAL.lock().await;
    let web = Upstream::start("127.0.0.1:0", ok_handler("web")).await;
    let other_port = Upstream::start("127.0.0.1:0", ok_handler("other-port")).await;
    // Listening on 127.0.0.2: a denied network; it must never see a connection.
    let evil = Upstream::start("127.0.0.2:0", ok_handler("evil")).await;
    let (evil_tcp, evil_tcp_conns) = tcp_echo("127.0.0.2").await;
    let (tunnel, tunnel_conns) = tcp_echo("127.0.0.1").await;
    let (blocked, blocked_conns) = tcp_echo("127.0.0.1").await;
    let p = web.addr.port();
    let resolver = Arc::new(StaticResolver::new());
    for name in [
        "api.allowed.test",
        "denied.test",
        "a.b.example.com",
        "example.com",
        "tunnel.example.com",
        "blocked.test",
    ] {
        resolver.set(name, &[ip("127.0.0.1")]);
    }
    resolver.set("evil.example.com", &[ip("127.0.0.2")]);
    let policy = format!(
        r#"
egress {{
  default deny
  deny  lo  {{ network 127.0.0.2/32 }}
  allow api {{ host "api.allowed.test"  port {p} }}
  allow ok  {{ host "*.example.com" }}
}}
"#
    );
    let (_dir, proxy) = proxy_for("egress", &policy, resolver).await;
    let out = proxy.outbound_addrs()[0];
    let mut c = Client::new(out);

    // Allowed host, absolute form (as HTTP_PROXY clients send it).
    let r = c
        .get_absolute(
            &format!("http://api.allowed.test:{p}/hello?q=1"),
            &format!("api.allowed.test:{p}"),
            &[],
        )
        .await;
    assert_eq!((r.status, r.header("x-backend")), (200, "web"), "{r:?}");
    assert_eq!(r.header("x-seen-path"), "/hello?q=1");
    // Origin form with Host.
    let r = c.get(&format!("api.allowed.test:{p}"), "/o").await;
    assert_eq!((r.status, r.header("x-backend")), (200, "web"), "{r:?}");
    // The same host on a port its rule does not list.
    let r = c
        .get(
            &format!("api.allowed.test:{}", other_port.addr.port()),
            "/o",
        )
        .await;
    assert_eq!(r.status_and_error(), (403, "forbidden"), "{r:?}");
    // A host no rule allows.
    let r = c.get(&format!("denied.test:{p}"), "/o").await;
    assert_eq!(r.status_and_error(), (403, "forbidden"), "{r:?}");
    // The wildcard: subdomains (any depth) yes, the bare domain no.
    let r = c.get(&format!("a.b.example.com:{p}"), "/w").await;
    assert_eq!((r.status, r.header("x-backend")), (200, "web"), "{r:?}");
    assert_eq!(r.header("x-seen-host"), format!("a.b.example.com:{p}"));
    let r = c.get(&format!("example.com:{p}"), "/w").await;
    assert_eq!(r.status_and_error(), (403, "forbidden"), "{r:?}");
    assert_eq!(web.hits(), 3);
    assert_eq!(other_port.conns(), 0);
    // An allowed-looking name resolving into a denied network.
    let r = c
        .get(&format!("evil.example.com:{}", evil.addr.port()), "/steal")
        .await;
    assert_eq!(r.status_and_error(), (403, "forbidden"), "{r:?}");
    // A name that does not resolve.
    let r = c.get(&format!("unknown.example.com:{p}"), "/x").await;
    assert_eq!(r.status_and_error(), (502, "dns"), "{r:?}");

    // CONNECT allowed: a working tunnel.
    let mut s = TcpStream::connect(out).await.unwrap();
    let target = format!("tunnel.example.com:{}", tunnel.port());
    let head = raw_head(
        &mut s,
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    for line in ["ping\n", "second line\n"] {
        s.write_all(line.as_bytes()).await.unwrap();
        let want = format!("echo: {line}");
        let mut got = vec![0u8; want.len()];
        tokio::time::timeout(HANG, s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
    drop(s);
    assert_eq!(tunnel_conns.load(Ordering::SeqCst), 1);

    // CONNECT denied by host, and by the resolved address: 403, no tunnel.
    for target in [
        format!("blocked.test:{}", blocked.port()),
        format!("evil.example.com:{}", evil_tcp.port()),
    ] {
        let mut s = TcpStream::connect(out).await.unwrap();
        let head = raw_head(
            &mut s,
            format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 403"), "{target}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("x-sluice-error: forbidden"),
            "{head}"
        );
        // Whatever comes next is not relayed anywhere.
        let _ = s.write_all(b"hello?\n").await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        blocked_conns.load(Ordering::SeqCst),
        0,
        "a denied CONNECT reached its destination"
    );
    assert_eq!(
        evil_tcp_conns.load(Ordering::SeqCst),
        0,
        "a denied network was connected to"
    );
    assert_eq!(evil.conns(), 0, "a denied network was connected to");

    // A request to the proxy's own listener would loop: refused, 508.
    let r = c
        .get(&format!("tunnel.example.com:{}", out.port()), "/loop")
        .await;
    assert_eq!(r.status_and_error(), (508, "loop"), "{r:?}");
    // Two `Host` headers are ambiguous: 400, nothing forwarded.
    let hits = web.hits();
    let mut s = TcpStream::connect(out).await.unwrap();
    let head = raw_head(
        &mut s,
        format!("GET /two HTTP/1.1\r\nHost: api.allowed.test:{p}\r\nHost: denied.test:{p}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    drop(s);
    // Absolute form: `Host` is replaced by the URI's authority.
    let r = c
        .get_absolute(
            &format!("http://a.b.example.com:{p}/abs"),
            "somewhere.else",
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.header("x-seen-host")),
        (200, format!("a.b.example.com:{p}").as_str()),
        "{r:?}"
    );
    assert_eq!(web.hits(), hits + 1);

    let m = metrics(&proxy).await;
    let lo = metric_sum(
        &m,
        "sluice_egress_decisions_total",
        &[("rule", "lo"), ("decision", "deny")],
    );
    assert!(lo >= 2.0, "{m}");
    let allowed = metric_sum(
        &m,
        "sluice_egress_decisions_total",
        &[("kind", "http"), ("decision", "allow")],
    );
    assert!(allowed >= 3.0, "{m}");
    let denied_connect = metric_sum(
        &m,
        "sluice_egress_decisions_total",
        &[("kind", "connect"), ("decision", "deny")],
    );
    assert_eq!(denied_connect, 2.0, "{m}");
    drop(c);
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------
// Addresses that carry IPv4 (spec section 7, "Addresses")
// ---------------------------------------------------------------------------

/// IPv4-mapped, NAT64 and IPv4-compatible destinations are judged as the
/// IPv4 address they carry: an egress `deny` of that network refuses them
/// (403) before anything is dialed, in absolute form, with `Host` and with
/// `CONNECT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_networks_hold_for_ipv4_carried_in_ipv6() {
    let _serial = SERIAL.lock().await;
    // Listening on 127.0.0.2: a denied network; it must never see a connection.
    let evil = Upstream::start("127.0.0.2:0", ok_handler("evil")).await;
    let (evil_tcp, evil_tcp_conns) = tcp_echo("127.0.0.2").await;
    let policy = r#"
egress {
  default allow
  deny metadata { network 169.254.0.0/16, 10.0.0.0/8, 127.0.0.2/32 }
}
"#;
    let (_dir, proxy) = proxy_for("carried-ipv4", policy, Arc::new(StaticResolver::new())).await;
    let out = proxy.outbound_addrs()[0];
    let mut c = Client::new(out);
    let p = evil.addr.port();
    let hosts = [
        "[64:ff9b::a9fe:a9fe]".to_string(),
        "[64:ff9b::169.254.169.254]".to_string(),
        "[::10.0.0.1]".to_string(),
        "[::ffff:10.0.0.1]".to_string(),
        "[::ffff:a9fe:a9fe]".to_string(),
        "[::ffff:127.0.0.2]".to_string(),
        "[64:ff9b::7f00:2]".to_string(),
    ];
    for host in &hosts {
        let authority = format!("{host}:{p}");
        let r = c
            .get_absolute(
                &format!("http://{authority}/latest/meta-data"),
                &authority,
                &[],
            )
            .await;
        assert_eq!(
            r.status_and_error(),
            (403, "forbidden"),
            "{authority}: {r:?}"
        );
        let r = c.get(&authority, "/latest/meta-data").await;
        assert_eq!(
            r.status_and_error(),
            (403, "forbidden"),
            "{authority}: {r:?}"
        );
        let target = format!("{host}:{}", evil_tcp.port());
        let mut s = TcpStream::connect(out).await.unwrap();
        let head = raw_head(
            &mut s,
            format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 403"), "{target}: {head}");
    }
    assert_eq!(evil.conns(), 0, "a denied network was connected to");
    assert_eq!(
        evil_tcp_conns.load(Ordering::SeqCst),
        0,
        "a denied network was connected to"
    );
    let m = metrics(&proxy).await;
    let denied = metric_sum(
        &m,
        "sluice_egress_decisions_total",
        &[("rule", "metadata"), ("decision", "deny")],
    );
    assert_eq!(denied, 3.0 * hosts.len() as f64, "{m}");
    drop(c);
    proxy.shutdown().await;
}

/// A malformed chunked body (here data longer than its chunk size) is the
/// client's fault on both outbound paths: the body streamed to the backend,
/// and the body read first for retries. Each is answered 400 with
/// `x-sluice-error: bad-request` and `Connection: close`, and counted as
/// `sluice_outbound_errors_total{reason="bad-request"}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_bodies_are_bad_requests_outbound() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::start("127.0.0.1:0", ok_handler("up")).await;
    let policy = format!(
        r#"
service once {{
  authority "once.prod"
  retry {{ attempts 0 }}
  backend b {{ endpoint {up} }}
  route all {{ to b }}
}}
service again {{
  authority "again.prod"
  retry {{ attempts 2  on gateway-error }}
  backend b {{ endpoint {up} }}
  route all {{ to b }}
}}
"#,
        up = up.addr
    );
    let (_dir, proxy) = proxy_for("bad-body", &policy, Arc::new(StaticResolver::new())).await;
    let out = proxy.outbound_addrs()[0];
    for authority in ["once.prod", "again.prod"] {
        let request = format!(
            "POST /upload HTTP/1.1\r\nHost: {authority}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdefgh\r\n0\r\n\r\n"
        );
        let mut s = TcpStream::connect(out).await.unwrap();
        let head = raw_head(&mut s, request.as_bytes())
            .await
            .to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 400"), "{authority}: {head}");
        assert!(
            head.contains("x-sluice-error: bad-request"),
            "{authority}: {head}"
        );
        assert!(head.contains("connection: close"), "{authority}: {head}");
    }
    let m = metrics(&proxy).await;
    let bad = metric_sum(
        &m,
        "sluice_outbound_errors_total",
        &[("reason", "bad-request")],
    );
    assert_eq!(bad, 2.0, "{m}");
    proxy.shutdown().await;
}
