//! Test support: compiling policies, starting the proxy in process, and
//! small upstream servers on 127.0.0.1 (real sockets everywhere).
#![allow(dead_code)]

pub use sluice_identity::test_certs as certs;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_proxy::{reload, Config, Proxy};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sluice-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles policy source into bundle bytes.
pub fn compile(policy: &str) -> Vec<u8> {
    let (ast, diags) = sluice_lang::parse::parse_str("test.sluice", policy);
    assert!(
        diags
            .iter()
            .all(|d| d.severity != sluice_lang::Severity::Error),
        "{diags:?}"
    );
    match sluice_compiler::compile(&ast, &sluice_compiler::Config::default()) {
        Ok(c) => c.bundle,
        Err(d) => panic!("policy does not compile: {d:?}"),
    }
}

/// Writes a file atomically (temporary file, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Starts a proxy from a TOML configuration whose relative paths are in `dir`.
pub async fn start_proxy(dir: &TempDir, toml: &str) -> Proxy {
    let config = Config::parse(toml, &dir.0).unwrap();
    Proxy::start(config, reload::bundle_file_loader())
        .await
        .unwrap()
}

/// An HTTP/1.1 and HTTP/2 (prior knowledge) upstream that echoes what it
/// received in response headers: `x-seen-path`, `x-seen-identity` (all
/// values joined by `|`), `x-seen-version`, and the body.
pub async fn echo_server() -> (SocketAddr, std::sync::Arc<AtomicUsize>) {
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let addr = local_server(move |stream| {
        let seen = seen.clone();
        async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                seen.fetch_add(1, Ordering::Relaxed);
                async move {
                    let path = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default();
                    let ids = peer_identities(req.headers());
                    let version = format!("{:?}", req.version());
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let mut r = Response::new(Full::new(body));
                    r.headers_mut().insert("x-seen-path", path.parse().unwrap());
                    r.headers_mut()
                        .insert("x-seen-identity", ids.parse().unwrap());
                    r.headers_mut()
                        .insert("x-seen-version", version.parse().unwrap());
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
    (addr, count)
}

/// The `x-sluice-peer-identity` values of `headers`, joined by `|`.
pub fn peer_identities(headers: &http::HeaderMap) -> String {
    let ids: Vec<String> = headers
        .get_all("x-sluice-peer-identity")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    ids.join("|")
}

/// A TCP upstream that answers each line with `echo: LINE`.
pub async fn tcp_echo_server() -> SocketAddr {
    local_server(echo_each_read).await
}

/// Answers each read on `stream` with `echo: ` and the bytes read, until
/// the peer closes.
pub async fn echo_each_read(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut out = b"echo: ".to_vec();
                out.extend_from_slice(&buf[..n]);
                if stream.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Serves every connection `listener` accepts with `serve`, each in a task
/// of its own, until the listener fails; the listener's address.
pub fn serve_each<F, Fut>(listener: TcpListener, serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// [`serve_each`] on a new listener on `127.0.0.1` (any free port).
pub async fn local_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    serve_each(TcpListener::bind("127.0.0.1:0").await.unwrap(), serve)
}

/// What a test client saw.
#[derive(Debug)]
pub struct Seen {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Seen {
    /// The status and the `x-sluice-error` header (empty when absent).
    pub fn status_and_error(&self) -> (u16, &str) {
        (self.status, self.header("x-sluice-error"))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Sends one HTTP/1.1 request over a new plaintext connection.
pub async fn http1(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Seen {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(target)
        .header("host", "app.local");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    collect(resp).await
}

/// A new plaintext connection to `addr` speaking HTTP/2 with prior
/// knowledge (h2c); its connection task runs in the background.
pub async fn h2c_connect<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// Collects a response.
pub async fn collect(resp: Response<Incoming>) -> Seen {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Seen {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Sends raw bytes and returns everything read until the peer closes or
/// `timeout` passes.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], timeout: std::time::Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// GETs an admin path; returns status and body.
pub async fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    let seen = http1(admin, "GET", path, &[]).await;
    (
        seen.status,
        String::from_utf8_lossy(&seen.body).into_owned(),
    )
}

/// POSTs `/reload`; returns status and body.
pub async fn admin_reload(admin: SocketAddr) -> (u16, String) {
    let seen = http1(admin, "POST", "/reload", &[]).await;
    (
        seen.status,
        String::from_utf8_lossy(&seen.body).into_owned(),
    )
}

/// An HTTP/1.1 upstream that answers 200 after `delay`.
pub async fn slow_server(delay: std::time::Duration) -> SocketAddr {
    local_server(move |stream| async move {
        let service = hyper::service::service_fn(move |_req: Request<Incoming>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"slow"))))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    })
    .await
}

/// [`start_proxy`] resolving names (service endpoints, egress destinations)
/// with `resolver` instead of the system's.
pub async fn start_proxy_with_resolver(
    dir: &TempDir,
    toml: &str,
    resolver: std::sync::Arc<dyn sluice_proxy::outbound::resolve::Resolve>,
) -> Proxy {
    let config = Config::parse(toml, &dir.0).unwrap();
    Proxy::start_with_resolver(config, reload::bundle_file_loader(), resolver)
        .await
        .unwrap()
}

/// The sum of the samples of metric `name` (Prometheus text format) whose
/// labels include every `label="value"` of `labels`; 0 when there is none.
pub fn metric_sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labelset, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let wanted = labels
                .iter()
                .all(|(k, v)| labelset.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            wanted.then(|| value.trim().parse::<f64>().ok()).flatten()
        })
        .sum()
}
