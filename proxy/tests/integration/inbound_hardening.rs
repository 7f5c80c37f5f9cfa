//! The inbound proxy attacked as an outsider would: connections that never
//! finish a first request head, the peer identity header in trailers and in
//! underscore spellings, bare-LF request heads, and malformed chunked
//! bodies. Real sockets on 127.0.0.1; the application records what reaches it.

use crate::support;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::certs::{self, Ca};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const POLICY: &str = r#"
mesh { trust-domain "example.org" }

server web {
  port 8080
  protocol http
  route api   { method GET, POST  path prefix "/api" }
}

allow anyone { to web.api  from any }
"#;

/// Far below the 300 s idle timeout, far above the header read timeouts
/// used here: a connection still open after this was not cut off by them.
const CUT_OFF: Duration = Duration::from_secs(10);

/// What one request brought to the application.
#[derive(Clone, Debug, Default)]
struct Seen {
    path: String,
    /// `name: value` of every header or trailer passing for the identity
    /// header (`_` read as `-`, any case), prefixed `head ` or `trailer `.
    identities: Vec<String>,
    /// Whether the body failed to arrive whole.
    body_failed: bool,
}

#[derive(Clone, Default)]
struct Record(Arc<Mutex<Vec<Seen>>>);

impl Record {
    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
    fn paths(&self) -> Vec<String> {
        self.all().into_iter().map(|s| s.path).collect()
    }
}

fn passes_for_identity(name: &str) -> bool {
    name.replace('_', "-")
        .eq_ignore_ascii_case("x-sluice-peer-identity")
}

fn identities(prefix: &str, headers: &HeaderMap) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| passes_for_identity(n.as_str()))
        .map(|(n, v)| format!("{prefix} {n}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect()
}

/// An HTTP/1.1 and h2c application that records every request, its
/// identity headers and trailers, then answers 200.
async fn recording_app() -> (SocketAddr, Record) {
    let record = Record::default();
    let rec = record.clone();
    let addr = local_server(move |stream| {
        let rec = rec.clone();
        async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let rec = rec.clone();
                async move {
                    let path = req.uri().path().to_owned();
                    let mut seen = Seen {
                        path,
                        identities: identities("head", req.headers()),
                        body_failed: false,
                    };
                    match req.into_body().collect().await {
                        Ok(body) => {
                            if let Some(t) = body.trailers() {
                                seen.identities.extend(identities("trailer", t));
                            }
                        }
                        Err(_) => seen.body_failed = true,
                    }
                    rec.0.lock().unwrap().push(seen);
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"app",
                    ))))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
    (addr, record)
}

/// A proxy with a plaintext listener in front of a recording application.
async fn plaintext(dir: &TempDir, limits: &str) -> (sluice_proxy::Proxy, SocketAddr, Record) {
    let (app, record) = recording_app().await;
    std::fs::write(dir.path("policy.bundle"), compile(POLICY)).unwrap();
    let toml = format!(
        "[policy]\nbundle = \"policy.bundle\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[limits]\n{limits}\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 8080\napp = \"{app}\"\ntls = \"plaintext\"\n"
    );
    let proxy = start_proxy(dir, &toml).await;
    let addr = proxy.inbound_addrs()[0];
    (proxy, addr, record)
}

/// Waits until the peer closes `stream` (reading and dropping what it
/// sends); the time it took, or `None` when it was still open after `CUT_OFF`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(CUT_OFF, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok().map(|()| start.elapsed())
}

/// A frame of HTTP/2: length, type, flags, stream 1 unless SETTINGS.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Openings that never complete a first request head.
fn stalled_openings() -> Vec<(&'static str, Vec<u8>)> {
    let settings = h2_frame(0x4, 0, 0, &[]);
    let mut preface_settings = H2_PREFACE.to_vec();
    preface_settings.extend_from_slice(&settings);
    // HEADERS without END_HEADERS, then nothing (the CONTINUATION never comes).
    let mut partial_headers = preface_settings.clone();
    partial_headers.extend_from_slice(&h2_frame(0x1, 0, 1, &[0x82, 0x86]));
    vec![
        ("nothing", Vec::new()),
        ("one byte", b"P".to_vec()),
        ("part of the HTTP/2 preface", b"PRI * HTTP/2.0\r\n".to_vec()),
        ("the HTTP/2 preface only", H2_PREFACE.to_vec()),
        ("the HTTP/2 preface and SETTINGS", preface_settings),
        ("HTTP/2 HEADERS without END_HEADERS", partial_headers),
        (
            "part of an HTTP/1.1 head",
            b"GET /api/x HTTP/1.1\r\nHost: a\r\n".to_vec(),
        ),
        (
            "part of a bare-LF HTTP/1.1 head",
            b"GET /api/x HTTP/1.1\nHost: a\n".to_vec(),
        ),
    ]
}

/// Opens one connection per stalled opening at once and asserts each is
/// closed after a 300 ms header read timeout (never before), within `CUT_OFF`.
async fn assert_stalled_openings_closed(addr: SocketAddr) {
    let mut waits = Vec::new();
    for (what, bytes) in stalled_openings() {
        let connecting = Instant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        waits.push(tokio::spawn(async move {
            let closed = closed_within(&mut s).await.map(|_| connecting.elapsed());
            (what, closed)
        }));
    }
    for wait in waits {
        let (what, took) = wait.await.unwrap();
        let took = took.unwrap_or_else(|| panic!("{what}: still open after {CUT_OFF:?}"));
        // The timeout runs from accept, after `connecting`: never earlier.
        assert!(
            took >= Duration::from_millis(250),
            "{what}: closed after {took:?}, before the timeout"
        );
    }
}

#[tokio::test]
async fn plaintext_connections_without_a_first_request_head_are_closed() {
    let dir = TempDir::new("stalled");
    let (proxy, addr, record) = plaintext(&dir, "header-read-timeout-ms = 300").await;
    assert_stalled_openings_closed(addr).await;
    assert!(record.all().is_empty());
    let (_, metrics) = admin_get(proxy.admin_addr(), "/metrics").await;
    // Partial HTTP/1.1 heads may be closed by hyper's own header timer.
    assert!(
        metric_sum(
            &metrics,
            "sluice_connections_refused_total",
            &[("reason", "timeout")]
        ) >= 6.0,
        "{metrics}"
    );
    proxy.shutdown().await;
}

/// Sends `bytes` and reads until the proxy closes; errors (a refused
/// connection being closed at once) end the exchange with what was read.
async fn try_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return out;
    };
    if s.write_all(bytes).await.is_err() {
        return out;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn silent_connections_cannot_lock_out_the_listener() {
    let dir = TempDir::new("lockout");
    let (proxy, addr, record) =
        plaintext(&dir, "header-read-timeout-ms = 300\nmax-connections = 20").await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // Every permit is held; once the silent connections are cut off, a
    // real client gets through.
    let start = Instant::now();
    let ok = loop {
        let out = try_exchange(
            addr,
            b"GET /api/in HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        if out.starts_with(b"HTTP/1.1 200") {
            break true;
        }
        if start.elapsed() > CUT_OFF {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        ok,
        "the listener stayed locked out for {:?}",
        start.elapsed()
    );
    assert_eq!(record.paths(), ["/api/in"]);
    drop(silent);
    proxy.shutdown().await;
}

#[tokio::test]
async fn tls_connections_without_a_first_request_head_are_closed() {
    let dir = TempDir::new("stalled-tls");
    let (app, record) = recording_app().await;
    let ca = Ca::new("example.org");
    let server = ca
        .intermediate()
        .svid("spiffe://example.org/ns/default/sa/web");
    server.write(&dir.0, "web");
    ca.write_bundle(&dir.0, "example.org");
    let client = ca
        .intermediate()
        .svid("spiffe://example.org/ns/shop/sa/frontend");
    std::fs::write(dir.path("policy.bundle"), compile(POLICY)).unwrap();
    let listener = |ip: &str, tls: &str| {
        format!("[[inbound]]\nlisten = \"{ip}:0\"\nport = 8080\napp = \"{app}\"\ntls = \"{tls}\"\n")
    };
    let toml = format!(
        "[policy]\nbundle = \"policy.bundle\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[limits]\nheader-read-timeout-ms = 300\n[identity]\ncert = \"web.pem\"\nkey = \"web.key\"\ntrust-bundles = {{ \"example.org\" = \"example.org.pem\" }}\n{}{}",
        listener("127.0.0.1", "mtls"),
        listener("127.0.0.2", "permissive"),
    );
    let proxy = start_proxy(&dir, &toml).await;
    let (mtls, permissive) = (proxy.inbound_addrs()[0], proxy.inbound_addrs()[1]);

    // A handshake, then nothing, part of a head, or part of the preface.
    for addr in [mtls, permissive] {
        for (alpn, bytes) in [
            ("http/1.1", &b""[..]),
            ("http/1.1", b"GET /api/x HTTP/1.1\r\n"),
            ("http/1.1", b"PRI * HTTP/2.0\r\n"),
            ("h2", b""),
            ("h2", H2_PREFACE),
        ] {
            let config = certs::client_config(&ca, Some(&client), &[alpn]);
            let mut tls = certs::connect(addr, config).await.unwrap();
            tls.write_all(bytes).await.unwrap();
            tls.flush().await.unwrap();
            let took = closed_within(&mut tls).await;
            assert!(
                took.is_some(),
                "{addr} {alpn} {bytes:?}: still open after {CUT_OFF:?}"
            );
        }
    }
    // A handshake that never ends, and (permissive) plaintext that stalls.
    for (addr, bytes) in [
        (mtls, &[0x16u8, 0x03, 0x01][..]),
        (permissive, &[0x16u8][..]),
        (permissive, b"PRI * HTTP/2.0\r\n"),
        (permissive, b""),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        assert!(
            closed_within(&mut s).await.is_some(),
            "{addr} {bytes:?}: still open after {CUT_OFF:?}"
        );
    }
    // A real client still gets through.
    let config = certs::client_config(&ca, Some(&client), &["http/1.1"]);
    let mut tls = certs::connect(mtls, config).await.unwrap();
    tls.write_all(b"GET /api/ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(CUT_OFF, tls.read_to_end(&mut out)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(record.paths(), ["/api/ok"]);
    proxy.shutdown().await;
}

/// Sends `stream` raw and returns what the proxy answered (until it closes).
async fn raw(addr: SocketAddr, stream: &[u8]) -> String {
    raw_exchange(addr, stream, Duration::from_secs(5)).await
}

#[tokio::test]
async fn identity_in_http1_trailers_and_underscore_spellings_never_reaches_the_application() {
    let dir = TempDir::new("trailers-h1");
    let (proxy, addr, record) = plaintext(&dir, "").await;
    let spellings = [
        "x-sluice-peer-identity",
        "X-Sluice-Peer-Identity",
        "x_sluice_peer_identity",
        "X_Sluice_Peer_Identity",
        "x-sluice-peer_identity",
    ];
    // In chunked trailers, each declared in `Trailer` so that they are
    // forwarded at all.
    let mut req = format!(
        "POST /api/trailers HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nTrailer: {}, x-kept\r\n\r\n4\r\nabcd\r\n0\r\n",
        spellings.join(", ")
    );
    for (i, name) in spellings.iter().enumerate() {
        req.push_str(&format!("{name}: spiffe://example.org/forged/{i}\r\n"));
    }
    req.push_str("x-kept: 1\r\n\r\n");
    let out = raw(addr, req.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let seen = record.all();
    let last = seen.last().unwrap();
    assert!(last.identities.is_empty() && !last.body_failed, "{last:?}");
    // In the head.
    let mut head = String::from("GET /api/head HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
    for (i, name) in spellings.iter().enumerate() {
        head.push_str(&format!("{name}: spiffe://example.org/forged/{i}\r\n"));
    }
    head.push_str("\r\n");
    let out = raw(addr, head.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let seen = record.all();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert!(s.identities.is_empty(), "{s:?}");
        assert!(!s.body_failed, "{s:?}");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn identity_in_http2_trailers_and_underscore_spellings_never_reaches_the_application() {
    let dir = TempDir::new("trailers-h2");
    let (proxy, addr, record) = plaintext(&dir, "").await;
    let mut sender = h2c_connect(addr).await;
    let forged = |headers: &mut HeaderMap| {
        for name in [
            "x-sluice-peer-identity",
            "x_sluice_peer_identity",
            "x-sluice-peer_identity",
            "x_sluice-peer-identity",
        ] {
            headers.append(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static("spiffe://example.org/forged"),
            );
        }
    };
    let mut trailers = HeaderMap::new();
    forged(&mut trailers);
    trailers.insert("x-kept", http::HeaderValue::from_static("1"));
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"abcd"))),
        Ok(Frame::trailers(trailers)),
    ];
    let mut req = Request::builder()
        .method("POST")
        .uri("http://app.local/api/h2")
        .body(StreamBody::new(tokio_stream::iter(frames)))
        .unwrap();
    forged(req.headers_mut());
    let r = collect(sender.send_request(req).await.unwrap()).await;
    assert_eq!(r.status, 200);
    let seen = record.all();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/api/h2");
    assert!(seen[0].identities.is_empty(), "{:?}", seen[0]);
    assert!(!seen[0].body_failed);
    proxy.shutdown().await;
}

#[tokio::test]
async fn bare_lf_heads_get_every_framing_check() {
    let dir = TempDir::new("bare-lf");
    let (proxy, addr, record) = plaintext(&dir, "").await;
    let refused: [&[u8]; 5] = [
        b"POST /api/upload HTTP/1.1\nHost: a\nContent-Length: 4\nContent-Length: 4\n\nabcd",
        b"POST /api/upload HTTP/1.1\nHost: a\nContent-Length: 4\nTransfer-Encoding: chunked\n\n0\r\n\r\n",
        b"POST /api/upload HTTP/1.1\r\nHost: a\nContent-Length: 4\r\nContent-Length: 4\n\r\nabcd",
        // Pipelined: a clean bare-LF request, then an ambiguous one.
        b"GET /api/first HTTP/1.1\nHost: a\n\nPOST /api/upload HTTP/1.1\nHost: a\nContent-Length: 1\nContent-Length: 1\n\nx",
        // A clean request whose body looks like a head, then an ambiguous one.
        b"POST /api/first HTTP/1.1\nHost: a\nContent-Length: 39\n\nGET /api/upload HTTP/1.1\nHost: b\n\nxxxxxPOST /api/upload HTTP/1.1\nHost: a\nContent-Length: 1\nTransfer-Encoding: chunked\n\n0\r\n\r\n",
    ];
    for stream in refused {
        let out = raw(addr, stream).await;
        assert!(
            out.contains("HTTP/1.1 400"),
            "{}\n{out}",
            String::from_utf8_lossy(stream)
        );
        assert!(out.contains("x-sluice-error: bad-request"), "{out}");
        assert!(
            !record.paths().contains(&"/api/upload".to_owned()),
            "{:?}",
            record.paths()
        );
    }
    // Split across reads, one byte at a time.
    let stream = refused[0];
    let mut s = TcpStream::connect(addr).await.unwrap();
    for b in stream {
        // The proxy may answer and close before the body: stop writing then.
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        !record.paths().contains(&"/api/upload".to_owned()),
        "{:?}",
        record.paths()
    );
    // The clean bare-LF twin is forwarded.
    let out = raw(
        addr,
        b"POST /api/clean HTTP/1.1\nHost: a\nContent-Length: 4\nConnection: close\n\nabcd",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(record.paths().contains(&"/api/clean".to_owned()));
    let (_, metrics) = admin_get(proxy.admin_addr(), "/metrics").await;
    assert!(
        metric_sum(
            &metrics,
            "sluice_inbound_bad_requests_total",
            &[("reason", "framing")]
        ) >= 6.0,
        "{metrics}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn malformed_chunked_bodies_are_bad_requests_not_upstream_errors() {
    let dir = TempDir::new("bad-chunks");
    let (proxy, addr, _record) = plaintext(&dir, "").await;
    let head = "POST /api/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let bodies: [(&str, &[u8]); 6] = [
        (
            "a chunk size past 64 bits",
            b"10000000000000000\r\nabcd\r\n0\r\n\r\n",
        ),
        ("data longer than its size", b"4\r\nabcdefgh\r\n0\r\n\r\n"),
        ("a bare-LF chunk-size line", b"4\nabcd\r\n0\r\n\r\n"),
        ("a bare LF after chunk data", b"4\r\nabcd\n0\r\n\r\n"),
        (
            "a CR in a chunk extension",
            b"4;a=b\rc\r\nabcd\r\n0\r\n\r\n",
        ),
        (
            "an LF in a chunk extension",
            b"4;a=b\nc\r\nabcd\r\n0\r\n\r\n",
        ),
    ];
    for (what, body) in bodies {
        // The head first, so that the request is forwarded before the
        // malformed body arrives.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(b"2\r\nok\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.write_all(body).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 400"), "{what}: {out}");
        assert!(out.contains("x-sluice-error: bad-request"), "{what}: {out}");
        // Sent at once, too.
        let mut whole = head.as_bytes().to_vec();
        whole.extend_from_slice(body);
        let out = raw(addr, &whole).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{what} (at once): {out}");
        assert!(
            out.contains("x-sluice-error: bad-request"),
            "{what} (at once): {out}"
        );
    }
    let (_, metrics) = admin_get(proxy.admin_addr(), "/metrics").await;
    assert_eq!(
        metric_sum(&metrics, "sluice_upstream_errors_total", &[]),
        0.0,
        "{metrics}"
    );
    assert!(
        metric_sum(&metrics, "sluice_inbound_bad_requests_total", &[]) >= 12.0,
        "{metrics}"
    );
    assert!(
        metric_sum(
            &metrics,
            "sluice_inbound_bad_requests_total",
            &[("reason", "body")]
        ) >= 1.0,
        "{metrics}"
    );
    // A well-formed chunked body still goes through.
    let out = raw(
        addr,
        b"POST /api/upload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    proxy.shutdown().await;
}

/// The explicit outbound listener shares the connection limit, so it closes
/// connections without a first request head at the same deadline.
#[tokio::test]
async fn outbound_connections_without_a_first_request_head_are_closed() {
    let dir = TempDir::new("stalled-outbound");
    std::fs::write(dir.path("policy.bundle"), compile(POLICY)).unwrap();
    let toml = "[policy]\nbundle = \"policy.bundle\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[limits]\nheader-read-timeout-ms = 300\nmax-connections = 20\n[[outbound]]\nlisten = \"127.0.0.1:0\"\nmode = \"explicit\"\n";
    let proxy = start_proxy(&dir, toml).await;
    let addr = proxy.outbound_addrs()[0];
    assert_stalled_openings_closed(addr).await;
    proxy.shutdown().await;
}
