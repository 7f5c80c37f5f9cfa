//! HTTP/1.1 `Upgrade` (WebSocket and other protocols) through the proxy,
//! inbound and outbound.
//!
//! An upgrade request is decided like any request; when allowed it is sent
//! on a new upstream HTTP/1.1 connection of its own (never a pooled one),
//! with `Connection: upgrade` and its `Upgrade` header put back after the
//! hop-by-hop headers were removed. When the upstream answers `101`, the
//! client gets the `101` and the bytes of both upgraded connections are
//! relayed until they close, the relay is idle for the idle timeout, or the
//! proxy shuts down. Any other answer is an ordinary response.

use crate::activity::{Activity, Tracked};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The `Upgrade` value of an HTTP/1.1 request that asks to upgrade
/// (`Connection` lists `upgrade`), else `None`. Reads headers only: no
/// allocation for an ordinary request.
///
/// An upgrade to HTTP itself (`h2c`, `HTTP/2.0`, any `HTTP/…`) is not one
/// the proxy carries: the application would then serve HTTP requests on
/// the relayed connection that the proxy never decides ("h2c smuggling").
/// Such a request is `None`, forwarded as an ordinary request without its
/// `Upgrade` (RFC 9110 lets a server ignore an upgrade).
pub(crate) fn requested(version: Version, headers: &HeaderMap) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let protocol = headers.get(UPGRADE)?;
    if headers.get_all(UPGRADE).iter().any(names_http) {
        return None;
    }
    let listed = headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    });
    listed.then(|| protocol.clone())
}

/// Whether an `Upgrade` value lists `h2c` or an `HTTP/…` protocol.
fn names_http(value: &HeaderValue) -> bool {
    value.as_bytes().split(|&b| b == b',').any(|token| {
        let token = token.trim_ascii();
        token.eq_ignore_ascii_case(b"h2c")
            || token
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"http/"))
    })
}

/// Puts back the headers that carry an upgrade request, after the
/// hop-by-hop headers were removed: `Connection: upgrade` and `protocol`.
pub(crate) fn restore_request_headers(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// The `Upgrade` an upstream chose in its `101`, kept in the response's
/// extensions by [`send`] while hop-by-hop headers are removed.
#[derive(Clone, Debug)]
pub(crate) struct Chosen(pub HeaderValue);

/// Puts back the headers of a `101` answer that [`send`] received, after
/// the hop-by-hop headers were removed: `Connection: upgrade` and the
/// `Upgrade` the upstream chose. Other responses are left alone.
pub(crate) fn restore_switch_headers<B>(response: &mut Response<B>) {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let chosen = response.extensions().get::<Chosen>().map(|c| c.0.clone());
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(chosen) = chosen {
        headers.insert(UPGRADE, chosen);
    }
}

/// Sends `req` on a new HTTP/1.1 connection over `io` that can be
/// upgraded: a `101` answer carries the upstream side of the upgrade and
/// the [`Chosen`] protocol.
pub(crate) async fn send<IO, B>(io: IO, req: Request<B>) -> Result<Response<Incoming>, hyper::Error>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "upgrade connection to the upstream failed");
        }
    });
    let mut response = sender.send_request(req).await?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(chosen) = response.headers().get(UPGRADE).cloned() {
            response.extensions_mut().insert(Chosen(chosen));
        }
    }
    Ok(response)
}

/// What a relay of upgraded connections needs from the proxy.
pub(crate) struct Relay {
    /// A connection permit held for the relay's lifetime.
    permit: OwnedSemaphorePermit,
    /// Cancelled when the proxy shuts down; the relay then ends.
    shutdown: CancellationToken,
    /// Where the relay's task is tracked, so that shutdown drains it.
    tasks: TaskTracker,
    /// The relay ends after this long without a byte either way.
    idle: Duration,
}

impl Relay {
    /// A relay under the proxy's shutdown, drain and idle timeout, holding
    /// `permit` while it runs.
    pub(crate) fn new(shared: &crate::state::Shared, permit: OwnedSemaphorePermit) -> Relay {
        Relay {
            permit,
            shutdown: shared.shutdown.clone(),
            tasks: shared.tasks.clone(),
            idle: shared.limits.idle_timeout(),
        }
    }
}

/// When `response` is a `101` to an upgrade: takes its upstream side and
/// relays it with `client` in a task of its own. Returns whether it did.
pub(crate) fn relay_if_switched<B>(
    response: &mut Response<B>,
    client: OnUpgrade,
    relay: Relay,
) -> bool {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return false;
    }
    let upstream = hyper::upgrade::on(response);
    let tasks = relay.tasks.clone();
    tasks.spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "the upgrade did not complete");
                return;
            }
        };
        let activity = Arc::new(Activity::new());
        let mut client = Tracked::new(TokioIo::new(client), activity.clone(), None);
        let mut upstream = TokioIo::new(upstream);
        let Relay {
            permit,
            shutdown,
            idle,
            ..
        } = relay;
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::pin!(copy);
        loop {
            tokio::select! {
                r = &mut copy => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "upgraded connection ended with an error");
                    }
                    break;
                }
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(activity.until_idle(idle)) => {
                    if activity.idle_for() >= idle {
                        tracing::debug!("upgraded connection idle; closing");
                        break;
                    }
                }
            }
        }
        drop(permit);
    });
    true
}

/// The proxy's own answer to an upgrade it cannot carry.
pub(crate) fn not_possible(message: &'static str) -> Response<http_body_util::Full<Bytes>> {
    crate::enforce::text_response(StatusCode::NOT_IMPLEMENTED, message, "upgrade")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn upgrade_requests_are_recognized() {
        let ws = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(requested(Version::HTTP_11, &ws).unwrap(), "websocket");
        // Several Connection headers.
        let split = headers(&[
            ("connection", "keep-alive"),
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(requested(Version::HTTP_11, &split).unwrap(), "websocket");
        // `Upgrade` not listed in `Connection`, no `Upgrade`, or not HTTP/1.1.
        let unlisted = headers(&[("connection", "keep-alive"), ("upgrade", "websocket")]);
        assert_eq!(requested(Version::HTTP_11, &unlisted), None);
        let lone = headers(&[("connection", "upgrade")]);
        assert_eq!(requested(Version::HTTP_11, &lone), None);
        assert_eq!(requested(Version::HTTP_10, &ws), None);
        assert_eq!(requested(Version::HTTP_2, &ws), None);
        // A token that merely contains the word.
        let lookalike = headers(&[
            ("connection", "upgraded, x-upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(requested(Version::HTTP_11, &lookalike), None);
        // Upgrades to HTTP itself are not carried.
        for protocol in ["h2c", "H2C", "websocket, h2c", "HTTP/2.0", "http/1.1"] {
            let h = headers(&[("connection", "upgrade"), ("upgrade", protocol)]);
            assert_eq!(requested(Version::HTTP_11, &h), None, "{protocol}");
        }
        let two = headers(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("upgrade", "h2c"),
        ]);
        assert_eq!(requested(Version::HTTP_11, &two), None);
        let h2c_like = headers(&[("connection", "upgrade"), ("upgrade", "h2cx, httpx")]);
        assert_eq!(
            requested(Version::HTTP_11, &h2c_like).unwrap(),
            "h2cx, httpx"
        );
    }

    #[test]
    fn headers_are_put_back() {
        let mut h = headers(&[("sec-websocket-key", "k")]);
        restore_request_headers(&mut h, HeaderValue::from_static("websocket"));
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        let mut r = Response::new(());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.extensions_mut()
            .insert(Chosen(HeaderValue::from_static("websocket")));
        restore_switch_headers(&mut r);
        assert_eq!(r.headers()["connection"], "upgrade");
        assert_eq!(r.headers()["upgrade"], "websocket");
        // Not a 101: untouched.
        let mut ok = Response::new(());
        ok.extensions_mut()
            .insert(Chosen(HeaderValue::from_static("websocket")));
        restore_switch_headers(&mut ok);
        assert!(ok.headers().is_empty());
    }
}
