//! The admission webhook's HTTPS server around [`crate::admission`]:
//! `sluice inject --serve`.
//!
//! - `POST /mutate`: an AdmissionReview of a pod in a namespace that did not
//!   opt in; `POST /mutate/namespace-enabled` (or `/mutate?namespace=enabled`)
//!   for a namespace labelled `sluice.io/inject=enabled`. The answer is 200
//!   with the review's response, or 400 (413 when too large) with the reason
//!   when the review cannot be answered.
//! - `GET /healthz`: 200 `ok`, the Deployment's probes.
//!
//! TLS 1.2 and 1.3 with rustls (ring), HTTP/1.1. The certificate and key
//! are PEM files, read again when either file changes (checked at most every
//! [`CERT_RECHECK`]), so a renewed Secret is served without a restart; a
//! pair that does not load keeps the previous one in service.
//!
//! Limits: [`MAX_CONNECTIONS`] connections at once (more wait to be
//! accepted), [`HANDSHAKE_TIMEOUT`] for the TLS handshake,
//! [`HEADER_TIMEOUT`] and [`MAX_HEADER_BYTES`] for each request head,
//! [`crate::admission::MAX_REVIEW_BYTES`] and [`BODY_TIMEOUT`] for a body.
//! Shutdown (SIGTERM, SIGINT): the listener closes, open connections finish
//! the request in flight and close, for at most [`DRAIN_TIMEOUT`].

use crate::admission::{self, ReviewError};
use crate::inject::InjectConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Time for a client to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a client to send a request head (and between requests on a
/// kept-alive connection).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a client to send a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head: hyper's read buffer (its minimum is 8 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How long shutdown waits for open connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files are looked at for a change.
pub const CERT_RECHECK: Duration = Duration::from_secs(5);

/// What the webhook cannot start without.
#[derive(Debug)]
pub enum WebhookError {
    /// The listening address cannot be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The certificate or key does not load.
    Cert(CertError),
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookError::Bind { addr, error } => write!(f, "cannot listen on `{addr}`: {error}"),
            WebhookError::Cert(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for WebhookError {}

/// Why a certificate and key pair does not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertError {
    /// A file does not read or holds no PEM block of the kind needed.
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key is of a type or curve rustls cannot sign with.
    Key {
        /// The key file.
        path: PathBuf,
        /// rustls's error.
        reason: String,
    },
    /// The key is not the certificate's.
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Read { path, reason } => write!(f, "`{}`: {reason}", path.display()),
            CertError::Key { path, reason } => {
                write!(f, "`{}`: the key cannot sign: {reason}", path.display())
            }
            CertError::Mismatch { cert, key } => write!(
                f,
                "the key `{}` is not the key of the certificate `{}`",
                key.display(),
                cert.display()
            ),
        }
    }
}

impl std::error::Error for CertError {}

/// The ring provider, shared by every configuration this module builds.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8,
/// PKCS#1 or SEC1) into a pair rustls serves.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let files = read_pair(cert, key)?;
    parse_certified_key(cert, key, &files)
}

/// The bytes of the two files.
fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), CertError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| CertError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    };
    Ok((read(cert)?, read(key)?))
}

/// The pair from the files' bytes; the paths name them in errors.
fn parse_certified_key(
    cert: &Path,
    key: &Path,
    (cert_pem, key_pem): &(Vec<u8>, Vec<u8>),
) -> Result<CertifiedKey, CertError> {
    let read = |path: &Path, reason: String| CertError::Read {
        path: path.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| read(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(read(cert, "no CERTIFICATE block".to_owned()));
    }
    let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| read(key, e.to_string()))?;
    let signing = provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| CertError::Key {
            path: key.to_owned(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    if certified.keys_match().is_err() {
        return Err(CertError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        });
    }
    Ok(certified)
}

/// Serves the pair from two PEM files, loaded again when their contents
/// change. The files are read again at most every [`CERT_RECHECK`] (a few
/// kilobytes): comparing contents, not modification times, notices a change
/// made within the file system's timestamp granularity too.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<CertState>,
}

#[derive(Debug)]
struct CertState {
    checked: Instant,
    files: (Vec<u8>, Vec<u8>),
    current: Arc<CertifiedKey>,
}

impl ReloadingCert {
    /// Loads the pair; an error when it does not load.
    pub fn new(cert: &Path, key: &Path) -> Result<ReloadingCert, CertError> {
        let files = read_pair(cert, key)?;
        let current = Arc::new(parse_certified_key(cert, key, &files)?);
        Ok(ReloadingCert {
            cert: cert.to_owned(),
            key: key.to_owned(),
            state: Mutex::new(CertState {
                checked: Instant::now(),
                files,
                current,
            }),
        })
    }

    /// The pair in service, after loading the files again if they changed
    /// and [`CERT_RECHECK`] has passed since the last look.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= CERT_RECHECK {
            state.checked = Instant::now();
            match read_pair(&self.cert, &self.key) {
                Ok(files) if files != state.files => {
                    match parse_certified_key(&self.cert, &self.key, &files) {
                        Ok(pair) => {
                            state.files = files;
                            state.current = Arc::new(pair);
                            tracing::info!(cert = %self.cert.display(), "webhook certificate reloaded");
                        }
                        // Half-written files (the key before the
                        // certificate): the next look tries again, the old
                        // pair serves meanwhile.
                        Err(e) => tracing::warn!("webhook certificate not reloaded: {e}"),
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("webhook certificate not reloaded: {e}"),
            }
        }
        state.current.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls configuration of the webhook: TLS 1.2 and 1.3, no client
/// certificates, ALPN `http/1.1`, the pair from `cert`.
pub fn server_config(cert: Arc<ReloadingCert>) -> ServerConfig {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A bound webhook, ready to [`Webhook::run`].
pub struct Webhook {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    inject: Arc<InjectConfig>,
}

impl Webhook {
    /// Binds `addr` and loads the certificate and key files.
    pub async fn bind(
        addr: SocketAddr,
        cert: &Path,
        key: &Path,
        inject: InjectConfig,
    ) -> Result<Webhook, WebhookError> {
        let pair = ReloadingCert::new(cert, key).map_err(WebhookError::Cert)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| WebhookError::Bind { addr, error })?;
        Ok(Webhook {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(server_config(Arc::new(pair)))),
            inject: Arc::new(inject),
        })
    }

    /// The address it listens on (the port chosen for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting and lets open
    /// connections finish their request for at most [`DRAIN_TIMEOUT`].
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!("webhook accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let acceptor = self.acceptor.clone();
            let inject = self.inject.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                serve_connection(tcp, peer, acceptor, inject, stop).await;
                drop(permit);
            });
        }
        drop(self.listener);
        stop.cancel();
        tasks.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("webhook connections still open after the drain timeout");
        }
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    inject: Arc<InjectConfig>,
    stop: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let tls = tokio::select! {
        _ = stop.cancelled() => return,
        tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match tls {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "webhook TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "webhook TLS handshake timed out");
                return;
            }
        },
    };
    let service = hyper::service::service_fn(move |request| {
        let inject = inject.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(request, &inject).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, "webhook connection: {e}");
            }
        }
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Health,
    /// `/mutate`; `true` when the namespace opted in.
    Mutate(bool),
    NotFound,
}

fn route(path: &str, query: Option<&str>) -> Route {
    match path {
        "/healthz" => Route::Health,
        "/mutate/namespace-enabled" => Route::Mutate(true),
        "/mutate" => Route::Mutate(
            query
                .unwrap_or("")
                .split('&')
                .any(|pair| pair == "namespace=enabled"),
        ),
        _ => Route::NotFound,
    }
}

async fn handle(request: Request<Incoming>, inject: &InjectConfig) -> Response<Full<Bytes>> {
    let route = route(request.uri().path(), request.uri().query());
    match (route, request.method()) {
        (Route::Health, &Method::GET | &Method::HEAD) => text(StatusCode::OK, "ok\n"),
        (Route::Mutate(opted_in), &Method::POST) => mutate(request, opted_in, inject).await,
        (Route::NotFound, _) => text(
            StatusCode::NOT_FOUND,
            "not found: the webhook serves POST /mutate and GET /healthz\n",
        ),
        (Route::Health, _) => method_not_allowed("GET"),
        (Route::Mutate(_), _) => method_not_allowed("POST"),
    }
}

async fn mutate(
    request: Request<Incoming>,
    opted_in: bool,
    inject: &InjectConfig,
) -> Response<Full<Bytes>> {
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(size) = declared.filter(|&n| n > admission::MAX_REVIEW_BYTES) {
        return refused(&ReviewError::TooLarge { size }, true);
    }
    let body = Limited::new(request.into_body(), admission::MAX_REVIEW_BYTES);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Err(_) => {
            return close(text(
                StatusCode::REQUEST_TIMEOUT,
                "the admission review body did not arrive in time\n",
            ))
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            let size = admission::MAX_REVIEW_BYTES + 1;
            return refused(&ReviewError::TooLarge { size }, true);
        }
        Ok(Err(e)) => {
            return close(text(
                StatusCode::BAD_REQUEST,
                &format!("the admission review body does not read: {e}\n"),
            ))
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    match admission::review(&bytes, opted_in, inject) {
        Ok(answer) => Response::builder()
            .status(StatusCode::OK)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(answer)))
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!("admission review refused: {e}");
            refused(&e, false)
        }
    }
}

/// An answer to a review that cannot be answered; `unread` when the body
/// was not read whole (the connection is then closed).
fn refused(e: &ReviewError, unread: bool) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let response = text(status, &format!("{e}\n"));
    if unread {
        close(response)
    } else {
        response
    }
}

fn close(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method not allowed: use {allow}\n"),
    );
    response.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static(allow),
    );
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap_or_default()
}

/// Completes on SIGTERM (how the kubelet stops a container) or SIGINT.
pub async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/healthz", None), Route::Health);
        assert_eq!(route("/mutate", None), Route::Mutate(false));
        assert_eq!(
            route("/mutate", Some("namespace=enabled")),
            Route::Mutate(true)
        );
        assert_eq!(
            route("/mutate", Some("x=1&namespace=enabled")),
            Route::Mutate(true)
        );
        assert_eq!(
            route("/mutate", Some("namespace=enabledx")),
            Route::Mutate(false)
        );
        assert_eq!(
            route("/mutate", Some("namespace=disabled")),
            Route::Mutate(false)
        );
        assert_eq!(
            route("/mutate/namespace-enabled", None),
            Route::Mutate(true)
        );
        assert_eq!(route("/mutate/", None), Route::NotFound);
        assert_eq!(route("/", None), Route::NotFound);
    }

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["sluice-webhook.sluice.svc".to_owned()])
            .expect("params");
        let cert = params.self_signed(&key).expect("cert");
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }

    #[test]
    fn pairs_load_and_mismatches_are_refused() {
        let dir = tempdir();
        let (c1, k1) = write_pair(&dir, "one");
        let (_c2, k2) = write_pair(&dir, "two");
        assert!(load_certified_key(&c1, &k1).is_ok());
        assert_eq!(
            load_certified_key(&c1, &k2).unwrap_err(),
            CertError::Mismatch {
                cert: c1.clone(),
                key: k2.clone()
            }
        );
        let missing = dir.join("missing.crt");
        let e = load_certified_key(&missing, &k1).unwrap_err();
        assert!(
            matches!(e, CertError::Read { ref path, .. } if path == &missing),
            "{e}"
        );
        let not_pem = dir.join("junk.crt");
        std::fs::write(&not_pem, "junk").expect("write");
        let e = load_certified_key(&not_pem, &k1).unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE block"), "{e}");
        // A key file given as the certificate: no certificate block in it.
        let e = load_certified_key(&k1, &k1).unwrap_err();
        assert!(
            matches!(e, CertError::Read { ref path, .. } if path == &k1),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_changed_pair_is_served_after_the_recheck() {
        let dir = tempdir();
        let (c, k) = write_pair(&dir, "live");
        let reloading = ReloadingCert::new(&c, &k).expect("loads");
        let first = reloading.current().cert[0].clone();
        // Replaced by another pair; the next look is due.
        let (c2, k2) = write_pair(&dir, "next");
        std::fs::rename(&c2, &c).expect("rename");
        std::fs::rename(&k2, &k).expect("rename");
        reloading.state.lock().expect("lock").checked = Instant::now() - CERT_RECHECK;
        let second = reloading.current().cert[0].clone();
        assert_ne!(first, second, "the new certificate is served");
        // A broken file: the pair in service stays.
        std::fs::write(&k, "junk").expect("write");
        reloading.state.lock().expect("lock").checked = Instant::now() - CERT_RECHECK;
        assert_eq!(reloading.current().cert[0], second);
        std::fs::remove_dir_all(&dir).ok();
    }

    fn tempdir() -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sluice-kube-webhook-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("tempdir");
        dir
    }
}
