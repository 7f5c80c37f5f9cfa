//! Connections to upstreams, pooled per address and TLS identity: idle
//! HTTP/1.1 connections, and one multiplexed HTTP/2 connection.
//!
//! The pool connects only to the address it is given: callers pass an
//! address they have already checked (egress) or picked (services).

use super::body::ReplayBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sluice_identity::IdentityStore;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle HTTP/1.1 connections kept per upstream.
const MAX_IDLE: usize = 64;
/// How long an idle HTTP/1.1 connection is kept.
const IDLE_FOR: Duration = Duration::from_secs(60);

/// Why a request could not be sent or answered.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The TCP connection (or, with `identity`, the TLS handshake) failed.
    Connect(std::io::Error),
    /// The connection failed or was reset before a response head came.
    Reset(hyper::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "cannot connect: {e}"),
            SendError::Reset(e) => write!(f, "connection failed before a response: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(e) => Some(e),
            SendError::Reset(e) => Some(e),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    addr: SocketAddr,
    identity: Option<Arc<str>>,
}

#[derive(Default)]
struct Upstream {
    idle: Mutex<Vec<(http1::SendRequest<ReplayBody>, Instant)>>,
    h2: Mutex<Option<http2::SendRequest<ReplayBody>>>,
}

/// Pooled connections to upstreams.
pub(crate) struct Pool {
    upstreams: Mutex<HashMap<Key, Arc<Upstream>>>,
    connect_timeout: Duration,
    identity: Option<Arc<IdentityStore>>,
    own: super::OwnAddrs,
}

impl Pool {
    /// An empty pool. `identity` supplies our SVID for mTLS origination;
    /// the proxy's `own` listeners are refused as upstreams.
    pub(crate) fn new(
        connect_timeout: Duration,
        identity: Option<Arc<IdentityStore>>,
        own: super::OwnAddrs,
    ) -> Pool {
        Pool {
            upstreams: Mutex::new(HashMap::new()),
            connect_timeout,
            identity,
            own,
        }
    }

    fn upstream(&self, key: &Key) -> Arc<Upstream> {
        let mut map = self.upstreams.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.clone()).or_default().clone()
    }

    /// Sends `req` to `addr`, over mTLS expecting the SPIFFE ID `identity`
    /// when given, in HTTP/2 when `h2`. For HTTP/1.1 the request's URI must
    /// be in origin form; for HTTP/2 absolute.
    pub(crate) async fn send(
        &self,
        addr: SocketAddr,
        identity: Option<&Arc<str>>,
        h2: bool,
        req: Request<ReplayBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let key = Key {
            addr,
            identity: identity.cloned(),
        };
        let upstream = self.upstream(&key);
        if h2 {
            let mut sender = self.h2_sender(&key, &upstream).await?;
            return sender.send_request(req).await.map_err(|e| {
                // The connection is unusable when it failed; forget it.
                let mut slot = upstream.h2.lock().unwrap_or_else(|e| e.into_inner());
                if slot.as_ref().is_some_and(|s| s.is_closed()) {
                    *slot = None;
                }
                SendError::Reset(e)
            });
        }
        if crate::upgrade::requested(req.version(), req.headers()).is_some() {
            // An upgrade takes its connection: a new one, never pooled.
            let io = self.connect(&key, b"http/1.1").await?;
            return crate::upgrade::send(io, req)
                .await
                .map_err(SendError::Reset);
        }
        let mut reused = true;
        let mut sender = loop {
            let popped = upstream
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            match popped {
                Some((s, at)) if s.is_ready() && at.elapsed() < IDLE_FOR => break s,
                Some(_) => continue,
                None => {
                    reused = false;
                    break self.h1_connect(&key).await?;
                }
            }
        };
        let response = match sender.try_send_request(req).await {
            Ok(r) => r,
            // A pooled connection the upstream closed before the request
            // went out: send it once more on a new connection.
            Err(mut e) => match e.take_message() {
                Some(req) if reused => {
                    sender = self.h1_connect(&key).await?;
                    sender.send_request(req).await.map_err(SendError::Reset)?
                }
                _ => return Err(SendError::Reset(e.into_error())),
            },
        };
        // Back to the pool once the response has been read to its end.
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                let mut idle = upstream.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < MAX_IDLE {
                    idle.push((sender, Instant::now()));
                }
            }
        });
        Ok(response)
    }

    async fn h1_connect(&self, key: &Key) -> Result<http1::SendRequest<ReplayBody>, SendError> {
        let io = self.connect(key, b"http/1.1").await?;
        let (sender, conn) = http1::handshake(io)
            .await
            .map_err(|e| SendError::Connect(std::io::Error::other(e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn h2_sender(
        &self,
        key: &Key,
        upstream: &Upstream,
    ) -> Result<http2::SendRequest<ReplayBody>, SendError> {
        {
            let slot = upstream.h2.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
                return Ok(s.clone());
            }
        }
        let io = self.connect(key, b"h2").await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(std::io::Error::other(e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        *upstream.h2.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender.clone());
        Ok(sender)
    }

    async fn connect(&self, key: &Key, alpn: &[u8]) -> Result<TokioIo<UpstreamIo>, SendError> {
        if self.own.contains(key.addr) {
            return Err(SendError::Connect(std::io::Error::other(format!(
                "`{}` is the proxy's own listener",
                key.addr
            ))));
        }
        let connect = async {
            let tcp = TcpStream::connect(key.addr).await?;
            tcp.set_nodelay(true)?;
            let Some(expected) = &key.identity else {
                return Ok(UpstreamIo::Plain(tcp));
            };
            let Some(store) = &self.identity else {
                return Err(std::io::Error::other(format!(
                    "the backend requires mTLS as `{expected}` but the proxy has no identity"
                )));
            };
            let config = sluice_identity::client_config(store, expected, &[alpn]);
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(sluice_identity::server_name(), tcp)
                .await?;
            Ok(UpstreamIo::Tls(Box::new(tls)))
        };
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(io)) => Ok(TokioIo::new(io)),
            Ok(Err(e)) => Err(SendError::Connect(e)),
            Err(_) => Err(SendError::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))),
        }
    }
}

/// A connection to an upstream: plain TCP, or TLS originated by the proxy.
pub(crate) enum UpstreamIo {
    /// Plain TCP.
    Plain(TcpStream),
    /// mTLS.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for UpstreamIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for UpstreamIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
