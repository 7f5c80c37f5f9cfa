//! The one accept loop every listener runs, and the one place hyper's
//! server builders are set up.

use crate::config::Limits;
use crate::state::Shared;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// Which connections a listener lets in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Traffic (inbound, outbound): each connection holds one of the
    /// connection limit's permits, none is let in while the proxy is not
    /// ready, and shutdown drains them.
    Traffic,
    /// The admin listener: always let in, outside the limit and the drain.
    Admin,
}

/// One accepted connection.
pub(crate) struct Accepted {
    /// The connection, `TCP_NODELAY` set for traffic.
    pub stream: TcpStream,
    /// The peer's address.
    pub peer: SocketAddr,
    /// When the first request head must have been read (the header read
    /// timeout from accept): sniffing, TLS and protocol detection included.
    pub first_head_by: Instant,
}

/// Accepts connections on `listener` until shutdown, each handled by
/// `handle` in a task of its own.
pub(crate) async fn accept_loop<H, F>(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    admission: Admission,
    mut handle: H,
) where
    H: FnMut(Accepted) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    admit(listener, shared, admission, |accepted, permit| {
        let task = handle(accepted);
        match permit {
            None => {
                tokio::spawn(task);
            }
            Some(permit) => {
                shared.tasks.spawn(async move {
                    task.await;
                    drop(permit);
                });
            }
        }
    })
    .await;
}

/// Accepts connections on `listener` until shutdown and gives `start` each
/// one it lets in, with its permit of the connection limit (none for the
/// admin listener); `start` must hold the permit until the connection ends.
pub(crate) async fn admit(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    admission: Admission,
    mut start: impl FnMut(Accepted, Option<OwnedSemaphorePermit>),
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shared.shutdown.cancelled() => return,
        };
        let first_head_by = Instant::now() + shared.limits.header_read_timeout();
        if admission == Admission::Admin {
            start(
                Accepted {
                    stream,
                    peer,
                    first_head_by,
                },
                None,
            );
            continue;
        }
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            shared.metrics.connections_refused.inc(["limit"]);
            tracing::warn!(%peer, "connection limit reached; closing");
            continue;
        };
        if !shared.is_ready() {
            shared.metrics.connections_refused.inc(["not-ready"]);
            continue;
        }
        let _ = stream.set_nodelay(true);
        start(
            Accepted {
                stream,
                peer,
                first_head_by,
            },
            Some(permit),
        );
    }
}

/// The HTTP/1.1 and HTTP/2 server builder for traffic, bounded by
/// `limits`; `h2_only` for a connection known to speak HTTP/2.
pub(crate) fn http_builder(
    limits: &Limits,
    h2_only: bool,
) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if h2_only {
        builder = builder.http2_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout())
        .max_buf_size(h1_buffer_size(limits));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32);
    builder
}

/// The admin listener's HTTP/1.1 server builder.
pub(crate) fn admin_builder() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    builder
}

/// The size of hyper's HTTP/1.1 read buffer, which bounds a request head
/// (hyper needs at least 8 KiB); the framing watch uses the same bound.
pub(crate) fn h1_buffer_size(limits: &Limits) -> usize {
    limits.max_header_bytes.max(8192)
}
