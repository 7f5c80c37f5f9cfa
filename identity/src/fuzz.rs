//! Plain entry points for the Workload API fuzz target in `fuzz/` and the
//! corpus replay test (`tests/fuzz_corpus.rs`), behind the `fuzzing`
//! feature: each takes arbitrary bytes, must never panic, and asserts what
//! must hold of the reader it drives.

use crate::workload_api::proto::X509SvidResponse;
use crate::workload_api::{Codec, Update, WorkloadApiError, MAX_MESSAGE_BYTES};
use bytes::Bytes;
use http_body::Frame;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use tonic::codec::{Codec as _, Streaming};

/// The Workload API client's reading of a response body (tonic's gRPC
/// framing with the client's codec and message limit) and the checking of
/// its messages: the first byte picks a read size, the rest is the response
/// body. Read whole or in pieces, the same messages come out (and the same
/// error, if any); each message that makes an [`Update`] is a consistent
/// one.
pub fn workload_api(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let whole = messages(body, body.len().max(1));
    assert_eq!(messages(body, usize::from(first) + 1), whole);
    for message in whole.0 {
        let Ok(update) = Update::from_response(message) else {
            continue;
        };
        assert!(!update.chain.is_empty());
        assert!(update.svid_count >= 1);
        assert!(update.bundles.contains_key(&update.trust_domain));
        assert!(update.bundles.values().all(|roots| !roots.is_empty()));
        let td = update
            .spiffe_id
            .strip_prefix("spiffe://")
            .unwrap_or_default();
        assert!(td.starts_with(update.trust_domain.as_str()), "{update:?}");
    }
}

/// Decodes one Workload API message (an `X509SVIDResponse`, without its
/// gRPC frame header) into an update, as the client does with each message.
pub fn decode_workload_update(message: &[u8]) -> Result<Update, WorkloadApiError> {
    <X509SvidResponse as prost::Message>::decode(message)
        .map_err(WorkloadApiError::Decode)
        .and_then(Update::from_response)
}

/// The messages of a response body read in pieces of `step` bytes, as
/// the client reads them, and whether the reading stopped on an error.
fn messages(body: &[u8], step: usize) -> (Vec<X509SvidResponse>, bool) {
    let pieces = Pieces {
        data: body.chunks(step).map(Bytes::copy_from_slice).collect(),
        trailers: Some(http::HeaderMap::from_iter([(
            http::HeaderName::from_static("grpc-status"),
            http::HeaderValue::from_static("0"),
        )])),
    };
    let mut stream = Streaming::new_response(
        Codec::default().decoder(),
        pieces,
        http::StatusCode::OK,
        None,
        Some(MAX_MESSAGE_BYTES),
    );
    let mut context = Context::from_waker(Waker::noop());
    let mut messages = Vec::new();
    loop {
        let Poll::Ready(next) = pin!(stream.message()).poll(&mut context) else {
            panic!("reading a body held in memory never waits");
        };
        match next {
            Ok(Some(message)) => messages.push(message),
            Ok(None) => return (messages, false),
            Err(_) => return (messages, true),
        }
    }
}

/// A response body held in memory: its data pieces, then its trailers.
struct Pieces {
    data: VecDeque<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.data.pop_front() {
            Some(piece) => Some(Frame::data(piece)),
            None => self.trailers.take().map(Frame::trailers),
        };
        Poll::Ready(frame.map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_api_frames_split_alike() {
        let mut body = vec![3u8];
        for message in [&b""[..], b"\x0a\x00", b"junk"] {
            body.push(0);
            body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
            body.extend_from_slice(message);
        }
        workload_api(&body);
        // Two messages, then `junk`, which is no `X509SVIDResponse`.
        let (read, failed) = messages(&body[1..], 2);
        assert_eq!((read.len(), failed), (2, true));
        assert!(
            messages(&[1, 0, 0, 0, 0], 1).1,
            "a compressed frame is an error"
        );
    }
}
