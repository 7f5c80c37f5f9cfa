//! A client's request body on its way to an upstream: peer identity headers
//! are removed from its trailers, and its errors are marked as the
//! client's, so that a malformed body (bad chunked encoding) is answered
//! 400 rather than taken for an upstream failure.

use crate::enforce;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The request body a client sent, as forwarded.
#[derive(Debug)]
pub(crate) struct ClientBody {
    inner: Incoming,
}

impl ClientBody {
    /// Wraps the body hyper read from the client.
    pub(crate) fn new(inner: Incoming) -> Self {
        ClientBody { inner }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|f| f.map(client_frame).map_err(ClientBodyError)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A frame of a client's body as forwarded: trailers lose any peer
/// identity header.
pub(crate) fn client_frame(mut frame: Frame<Bytes>) -> Frame<Bytes> {
    if let Some(trailers) = frame.trailers_mut() {
        enforce::remove_peer_identity(trailers);
    }
    frame
}

/// Reading the client's request body failed: malformed chunked encoding,
/// data past a declared length, a reset stream, or a connection closed
/// before the body ended.
#[derive(Debug)]
pub(crate) struct ClientBodyError(pub hyper::Error);

impl fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the client's request body is malformed or incomplete: {}",
            self.0
        )
    }
}

impl Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

/// Whether `e`, or an error that caused it, is a [`ClientBodyError`]: the
/// client's body failed, not the upstream.
pub(crate) fn caused_by_client_body(e: &(dyn Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<ClientBodyError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn trailers_lose_every_identity_spelling() {
        let mut t = HeaderMap::new();
        t.append(
            "x-sluice-peer-identity",
            HeaderValue::from_static("spiffe://evil/a"),
        );
        t.append(
            "x_sluice_peer_identity",
            HeaderValue::from_static("spiffe://evil/b"),
        );
        t.append(
            "x-sluice-peer_identity",
            HeaderValue::from_static("spiffe://evil/c"),
        );
        t.append("grpc-status", HeaderValue::from_static("0"));
        let f = client_frame(Frame::trailers(t));
        let t = f.trailers_ref().unwrap();
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t["grpc-status"], "0");
        let data = client_frame(Frame::data(Bytes::from_static(
            b"x-sluice-peer-identity: a",
        )));
        assert_eq!(
            data.data_ref().unwrap(),
            &Bytes::from_static(b"x-sluice-peer-identity: a")
        );
    }

    /// A real hyper error: an HTTP/1.1 response that is not one.
    async fn hyper_error() -> hyper::Error {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, mut server) = tokio::io::duplex(1024);
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<
            _,
            http_body_util::Empty<Bytes>,
        >(hyper_util::rt::TokioIo::new(client))
        .await
        .unwrap();
        tokio::spawn(conn);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = server.read(&mut buf).await;
            let _ = server.write_all(b"not http\r\n\r\n").await;
        });
        sender
            .send_request(http::Request::new(http_body_util::Empty::new()))
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn client_body_errors_are_found_in_a_chain() {
        #[derive(Debug)]
        struct Wrapper(Box<dyn Error + Send + Sync>);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "wrapped")
            }
        }
        impl Error for Wrapper {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&*self.0)
            }
        }
        let client = ClientBodyError(hyper_error().await);
        assert!(caused_by_client_body(&client));
        assert!(caused_by_client_body(&Wrapper(Box::new(client))));
        let upstream = hyper_error().await;
        assert!(!caused_by_client_body(&upstream));
        assert!(!caused_by_client_body(&Wrapper(Box::new(upstream))));
    }
}
