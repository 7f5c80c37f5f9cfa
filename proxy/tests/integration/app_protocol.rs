//! `app-protocol` of inbound listeners: each mode against an application
//! that speaks only that protocol, with HTTP/1.1 and HTTP/2 (prior
//! knowledge) clients over real sockets on 127.0.0.1.

use crate::support;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::net::TcpStream;

const POLICY: &str = r#"
server web {
  port 8080
  protocol http
  route all { path prefix "/" }
}
allow anyone { to web.all  from any }
"#;

/// An application that speaks only HTTP/1.1 (`h2c`: only HTTP/2 with prior
/// knowledge). It echoes the body and tells in headers the version, the
/// authority (`Host` or `:authority`), the path and the peer identity
/// headers it received. Returns its address and its request count.
async fn app(h2c: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let addr = local_server(move |stream| {
        let seen = seen.clone();
        async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    let authority = req
                        .uri()
                        .authority()
                        .map(|a| a.to_string())
                        .or_else(|| {
                            req.headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .map(str::to_owned)
                        })
                        .unwrap_or_default();
                    let ids = peer_identities(req.headers());
                    let version = format!("{:?}", req.version());
                    let path = req.uri().path().to_owned();
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let mut r = Response::new(Full::new(body));
                    let h = r.headers_mut();
                    h.insert("x-seen-version", version.parse().unwrap());
                    h.insert("x-seen-authority", authority.parse().unwrap());
                    h.insert("x-seen-path", path.parse().unwrap());
                    h.insert("x-seen-identity", ids.parse().unwrap());
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let io = TokioIo::new(stream);
            let _ = if h2c {
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await
            } else {
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
            };
        }
    })
    .await;
    (addr, count)
}

/// A proxy with one plaintext inbound listener for `app` and the given
/// `app-protocol` line (empty: not written).
async fn proxy(dir: &TempDir, app: SocketAddr, app_protocol: &str) -> sluice_proxy::Proxy {
    std::fs::write(dir.path("policy.bundle"), compile(POLICY)).unwrap();
    let toml = format!(
        r#"
[policy]
bundle = "policy.bundle"
watch = false
[admin]
listen = "127.0.0.1:0"
[[inbound]]
listen = "127.0.0.1:0"
port = 8080
app = "{app}"
tls = "plaintext"
{app_protocol}
"#
    );
    start_proxy(dir, &toml).await
}

/// One request over a new connection: HTTP/2 with prior knowledge when
/// `h2`, else HTTP/1.1 (`Host: app.local`). `headers` are added.
async fn send(
    addr: SocketAddr,
    h2: bool,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Seen {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut req = Request::builder().method(method);
    req = if h2 {
        req.uri(format!("http://app.local{path}"))
    } else {
        req.uri(path).header("host", "app.local")
    };
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let exchange = async {
        let resp = if h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            sender.send_request(req).await.unwrap()
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            sender.send_request(req).await.unwrap()
        };
        collect(resp).await
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("an answer within 20 s")
}

#[tokio::test]
async fn auto_forwards_in_the_clients_protocol() {
    let dir = TempDir::new("app-protocol-auto");
    let (h1_app, h1_count) = app(false).await;
    let (h2_app, _) = app(true).await;
    let to_h1 = proxy(&dir, h1_app, "").await;
    let to_h2 = proxy(&dir, h2_app, "app-protocol = \"auto\"").await;
    let h1_proxy = to_h1.inbound_addrs()[0];
    let h2_proxy = to_h2.inbound_addrs()[0];

    let r = send(h1_proxy, false, "GET", "/a", &[], "").await;
    assert_eq!(
        (r.status, r.header("x-seen-version")),
        (200, "HTTP/1.1"),
        "{r:?}"
    );
    let r = send(h2_proxy, true, "GET", "/a", &[], "").await;
    assert_eq!(
        (r.status, r.header("x-seen-version")),
        (200, "HTTP/2.0"),
        "{r:?}"
    );
    // An HTTP/2 client of an HTTP/1.1-only application: what `http1` is for.
    let before = h1_count.load(Ordering::SeqCst);
    let r = send(h1_proxy, true, "GET", "/a", &[], "").await;
    assert_eq!(r.status_and_error(), (502, "upstream"), "{r:?}");
    assert_eq!(h1_count.load(Ordering::SeqCst), before);
    to_h1.shutdown().await;
    to_h2.shutdown().await;
}

#[tokio::test]
async fn http1_forwards_http2_clients_over_http1() {
    let dir = TempDir::new("app-protocol-http1");
    let (h1_app, count) = app(false).await;
    let proxy = proxy(&dir, h1_app, "app-protocol = \"http1\"").await;
    let addr = proxy.inbound_addrs()[0];

    for h2 in [true, false] {
        let forged = [("x-sluice-peer-identity", "spiffe://evil.org/x")];
        let r = send(addr, h2, "POST", "/orders/1?x=1", &forged, "a body").await;
        assert_eq!(r.status, 200, "h2 {h2}: {r:?}");
        assert_eq!(r.header("x-seen-version"), "HTTP/1.1", "h2 {h2}");
        assert_eq!(r.header("x-seen-authority"), "app.local", "h2 {h2}");
        assert_eq!(r.header("x-seen-path"), "/orders/1", "h2 {h2}");
        assert_eq!(
            r.header("x-seen-identity"),
            "",
            "h2 {h2}: the forged identity is removed"
        );
        assert_eq!(&r.body[..], b"a body", "h2 {h2}");
    }
    // Several requests on one HTTP/2 connection, in parallel.
    let sender = h2c_connect(addr).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let mut sender = sender.clone();
            tokio::spawn(async move {
                let req = Request::builder()
                    .uri(format!("http://app.local/n/{i}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                collect(sender.send_request(req).await.unwrap()).await
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let r = tokio::time::timeout(Duration::from_secs(20), task).await;
        all.push(r.expect("an answer within 20 s").unwrap());
    }
    for (i, r) in all.iter().enumerate() {
        assert_eq!(
            (r.status, r.header("x-seen-path")),
            (200, format!("/n/{i}").as_str())
        );
        assert_eq!(r.header("x-seen-version"), "HTTP/1.1");
    }

    // gRPC needs HTTP/2: a clear gRPC error, nothing forwarded.
    let before = count.load(Ordering::SeqCst);
    let grpc = [("content-type", "application/grpc"), ("te", "trailers")];
    let r = send(addr, true, "POST", "/billing.v1.Billing/Charge", &grpc, "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("grpc-status"), "13", "{r:?}");
    assert_eq!(r.header("x-sluice-error"), "app-protocol", "{r:?}");
    assert!(r.header("grpc-message").contains("http1"), "{r:?}");
    assert_eq!(count.load(Ordering::SeqCst), before);
    proxy.shutdown().await;
}

#[tokio::test]
async fn h2c_forwards_http1_clients_over_h2c() {
    let dir = TempDir::new("app-protocol-h2c");
    let (h2_app, _) = app(true).await;
    let proxy = proxy(&dir, h2_app, "app-protocol = \"h2c\"").await;
    let addr = proxy.inbound_addrs()[0];
    for h2 in [false, true] {
        let forged = [("x-sluice-peer-identity", "spiffe://evil.org/x")];
        let r = send(addr, h2, "POST", "/orders/1", &forged, "a body").await;
        assert_eq!(r.status, 200, "h2 {h2}: {r:?}");
        assert_eq!(r.header("x-seen-version"), "HTTP/2.0", "h2 {h2}");
        assert_eq!(r.header("x-seen-authority"), "app.local", "h2 {h2}");
        assert_eq!(r.header("x-seen-identity"), "", "h2 {h2}");
        assert_eq!(&r.body[..], b"a body", "h2 {h2}");
    }
    // Keep-alive: several HTTP/1.1 requests on one client connection.
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    for i in 0..3 {
        let req = Request::builder()
            .uri(format!("/k/{i}"))
            .header("host", "app.local")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = collect(sender.send_request(req).await.unwrap()).await;
        assert_eq!((r.status, r.header("x-seen-version")), (200, "HTTP/2.0"));
    }
    proxy.shutdown().await;
}
