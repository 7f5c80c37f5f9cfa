//! Idle tracking: when a connection (or an upgrade relay) last moved a
//! byte, through a stream wrapper that records it.

use crate::framing::FramingWatch;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// When a connection last moved a byte, whether a request on it had
/// ambiguous framing, and whether a request head was read.
pub(crate) struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    /// A request on the connection had ambiguous framing.
    pub ambiguous: AtomicBool,
    /// A request head was read.
    pub requested: AtomicBool,
}

impl Activity {
    /// Activity starting now.
    pub(crate) fn new() -> Activity {
        Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            ambiguous: AtomicBool::new(false),
            requested: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since a byte moved either way.
    pub(crate) fn idle_for(&self) -> Duration {
        let now = self.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// How long until the connection is idle for `idle`, at least 10 ms.
    pub(crate) fn until_idle(&self, idle: Duration) -> Duration {
        idle.saturating_sub(self.idle_for())
            .max(Duration::from_millis(10))
    }
}

/// A stream that records its activity and, for HTTP/1.1, watches the
/// framing of what the client sends.
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    watch: Option<FramingWatch>,
}

impl<S> Tracked<S> {
    /// `inner`, touching `activity` (now, and whenever bytes move), its
    /// reads fed to `watch` when given.
    pub(crate) fn new(inner: S, activity: Arc<Activity>, watch: Option<FramingWatch>) -> Self {
        activity.touch();
        Tracked {
            inner,
            activity,
            watch,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let this = &mut *self;
            this.activity.touch();
            if let Some(watch) = &mut this.watch {
                watch.feed(&buf.filled()[before..]);
                if watch.ambiguous() {
                    this.activity.ambiguous.store(true, Ordering::Relaxed);
                }
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn activity_tracks_bytes_both_ways() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let activity = Arc::new(Activity::new());
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Tracked::new(a, activity.clone(), None);
        let pause = Duration::from_millis(200);
        tokio::time::sleep(pause).await;
        assert!(activity.idle_for() >= pause);
        a.write_all(b"x").await.unwrap();
        assert!(activity.idle_for() < pause);
        tokio::time::sleep(pause).await;
        b.write_all(b"y").await.unwrap();
        let mut one = [0u8; 1];
        a.read_exact(&mut one).await.unwrap();
        assert!(activity.idle_for() < pause);
    }
}
