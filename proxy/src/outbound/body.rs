//! Bodies that can be replayed: a buffered prefix (all of a small body, so
//! a request can be retried) followed by the rest of a streaming one.
//!
//! A client's request body ([`ReplayBody::client`], [`ReplayBody::buffer_ready`])
//! is forwarded as [`crate::request_body`] forwards inbound ones: its
//! trailers lose any peer identity header and its errors are marked as the
//! client's ([`crate::request_body::ClientBodyError`]).

use crate::request_body::{client_frame, ClientBodyError};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bodies up to this size are buffered so the request can be retried, or
/// (responses) so a gRPC status in the trailers can be read.
pub(crate) const REPLAY_LIMIT: usize = 64 * 1024;

/// How long [`ReplayBody::buffer_ready`] waits for a body's first frame (a
/// request head and its small body may arrive in separate reads).
pub(crate) const FIRST_FRAME_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// A buffered prefix of frames, then (when the body was larger than the
/// buffer) the rest of the stream.
#[derive(Debug, Default)]
pub(crate) struct ReplayBody {
    frames: VecDeque<Frame<Bytes>>,
    rest: Option<Incoming>,
    /// The body is a client's request body.
    client: bool,
}

/// The error of a [`ReplayBody`]: hyper's, or a [`ClientBodyError`] for a
/// client's request body.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl ReplayBody {
    /// Reads `body` until it ends or more than `limit` bytes came. The
    /// result is complete (replayable) when the body ended within `limit`.
    pub(crate) async fn buffer(
        mut body: Incoming,
        limit: usize,
    ) -> Result<ReplayBody, hyper::Error> {
        let mut frames = VecDeque::new();
        let mut size = 0usize;
        loop {
            if body.is_end_stream() {
                return Ok(ReplayBody::held(frames, false));
            }
            match body.frame().await {
                None => return Ok(ReplayBody::held(frames, false)),
                Some(frame) => {
                    let frame = frame?;
                    if let Some(d) = frame.data_ref() {
                        size += d.len();
                    }
                    frames.push_back(frame);
                    if size > limit {
                        return Ok(ReplayBody::partial(frames, body, false));
                    }
                }
            }
        }
    }

    /// Takes the frames of `body` that are already there (up to `limit`
    /// bytes) without waiting for more: a complete small body becomes
    /// replayable, and a body still streaming (a gRPC stream, a slow upload)
    /// is not held back. Waits at most `FIRST_FRAME_WAIT` for the first frame.
    pub(crate) async fn buffer_ready(
        mut body: Incoming,
        limit: usize,
    ) -> Result<ReplayBody, hyper::Error> {
        let mut frames = VecDeque::new();
        let mut size = 0usize;
        let mut first = true;
        loop {
            if body.is_end_stream() {
                return Ok(ReplayBody::held(frames, true));
            }
            let wait = if first {
                FIRST_FRAME_WAIT
            } else {
                std::time::Duration::ZERO
            };
            first = false;
            let next = {
                match tokio::time::timeout(wait, body.frame()).await {
                    Ok(next) => next,
                    Err(_) => return Ok(ReplayBody::partial(frames, body, true)),
                }
            };
            match next {
                None => return Ok(ReplayBody::held(frames, true)),
                Some(frame) => {
                    let frame = client_frame(frame?);
                    if let Some(d) = frame.data_ref() {
                        size += d.len();
                    }
                    frames.push_back(frame);
                    if size > limit {
                        return Ok(ReplayBody::partial(frames, body, true));
                    }
                }
            }
        }
    }

    /// A body that streams `body` (an upstream's response) without buffering.
    pub(crate) fn streaming(body: Incoming) -> Self {
        ReplayBody::partial(VecDeque::new(), body, false)
    }

    /// A body that streams a client's request body without buffering.
    pub(crate) fn client(body: Incoming) -> Self {
        ReplayBody::partial(VecDeque::new(), body, true)
    }

    fn held(frames: VecDeque<Frame<Bytes>>, client: bool) -> Self {
        ReplayBody {
            frames,
            rest: None,
            client,
        }
    }

    fn partial(frames: VecDeque<Frame<Bytes>>, rest: Incoming, client: bool) -> Self {
        ReplayBody {
            frames,
            rest: Some(rest),
            client,
        }
    }

    /// Whether the whole body is held, so it can be sent again.
    pub(crate) fn is_complete(&self) -> bool {
        self.rest.is_none()
    }

    /// A copy of a complete body (`None` when it still streams).
    pub(crate) fn try_clone(&self) -> Option<ReplayBody> {
        if self.rest.is_some() {
            return None;
        }
        let frames = self
            .frames
            .iter()
            .map(|f| match f.data_ref() {
                Some(d) => Frame::data(d.clone()),
                None => Frame::trailers(f.trailers_ref().cloned().unwrap_or_default()),
            })
            .collect();
        Some(ReplayBody::held(frames, self.client))
    }

    /// The trailers of a complete body.
    pub(crate) fn trailers(&self) -> Option<&HeaderMap> {
        self.frames.iter().find_map(|f| f.trailers_ref())
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(f) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        let client = self.client;
        let Some(rest) = &mut self.rest else {
            return Poll::Ready(None);
        };
        Pin::new(rest).poll_frame(cx).map(|frame| {
            frame.map(|r| match (r, client) {
                (Ok(f), true) => Ok(client_frame(f)),
                (Ok(f), false) => Ok(f),
                (Err(e), true) => Err(ClientBodyError(e).into()),
                (Err(e), false) => Err(e.into()),
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        match &self.rest {
            None => SizeHint::with_exact(buffered),
            Some(rest) => {
                let h = rest.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(h.lower() + buffered);
                if let Some(u) = h.upper() {
                    out.set_upper(u + buffered);
                }
                out
            }
        }
    }
}
