//! Worker threads for inbound connections: each runs a current-thread
//! tokio runtime of its own, and a connection, once accepted, lives on one
//! of them from its first byte to its last, with its upstream connection
//! and every task it spawns. A request never crosses threads: no work
//! stealing, no wake-up of another thread per request, only the hand-over
//! of the accepted socket.
//!
//! The listeners keep accepting on the proxy's own runtime (the connection
//! limit, readiness and shutdown stay in one accept loop) and hand each
//! connection to the worker holding the fewest open connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A connection's work, started on the worker's runtime (where its
/// sockets must be registered).
pub(crate) type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The worker threads, and how connections reach them.
pub(crate) struct Workers {
    /// Hands connections to the workers; listeners hold clones.
    dispatch: Arc<Dispatch>,
    /// Ends every worker's runtime, with whatever still runs on it.
    stop: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The sending side: one channel and one open-connection count per worker.
pub(crate) struct Dispatch {
    workers: Vec<(mpsc::UnboundedSender<Job>, Arc<AtomicUsize>)>,
}

impl Workers {
    /// Starts `n` worker threads (at least one), each with a current-thread
    /// runtime; their connection tasks are tracked by `tasks` (the proxy's
    /// `Shared::tasks`), so that shutdown drains them.
    pub(crate) fn start(n: usize, tasks: &TaskTracker) -> std::io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
            let open = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, tasks, count) = (stop.clone(), tasks.clone(), open.clone());
            let thread = std::thread::Builder::new()
                .name(format!("sluice-worker-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        let serve = async {
                            while let Some(job) = rx.recv().await {
                                let count = count.clone();
                                let task = job();
                                tasks.spawn(async move {
                                    task.await;
                                    count.fetch_sub(1, Ordering::Relaxed);
                                });
                            }
                            // Every listener has stopped: the connections
                            // still open finish until the proxy stops.
                            std::future::pending::<()>().await;
                        };
                        tokio::select! {
                            _ = serve => {}
                            _ = stop.cancelled() => {}
                        }
                    });
                    // Dropping the runtime drops what still runs on it.
                })?;
            workers.push((tx, open));
            threads.push(thread);
        }
        Ok(Workers {
            dispatch: Arc::new(Dispatch { workers }),
            stop,
            threads,
        })
    }

    /// What listeners hand their connections to.
    pub(crate) fn dispatch(&self) -> Arc<Dispatch> {
        self.dispatch.clone()
    }

    /// Ends the workers' runtimes (the connections still open on them are
    /// dropped) and waits for their threads.
    pub(crate) async fn stop(&mut self) {
        self.stop.cancel();
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Dispatch {
    /// Runs `job` on the worker with the fewest open connections. Returns
    /// false when the workers have stopped.
    pub(crate) fn send(&self, job: Job) -> bool {
        let Some((tx, open)) = self
            .workers
            .iter()
            .min_by_key(|(_, open)| open.load(Ordering::Relaxed))
        else {
            return false;
        };
        open.fetch_add(1, Ordering::Relaxed);
        if tx.send(job).is_err() {
            open.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that reports the name of the thread it ran on, and stays open
    /// (as a connection) until `close` is cancelled.
    fn job(names: mpsc::UnboundedSender<String>, close: CancellationToken) -> Job {
        Box::new(move || {
            Box::pin(async move {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                let _ = names.send(name);
                close.cancelled().await;
            })
        })
    }

    #[tokio::test]
    async fn connections_go_to_the_least_loaded_worker_and_stop_ends_them() {
        let tasks = TaskTracker::new();
        let mut workers = Workers::start(2, &tasks).unwrap();
        let dispatch = workers.dispatch();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let close = CancellationToken::new();
        let mut seen = Vec::new();
        for _ in 0..4 {
            assert!(dispatch.send(job(tx.clone(), close.clone())));
            seen.push(rx.recv().await.unwrap());
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                "sluice-worker-0",
                "sluice-worker-0",
                "sluice-worker-1",
                "sluice-worker-1"
            ]
        );
        assert_eq!(tasks.len(), 4);
        // Stopping drops the jobs still open, and no new one is taken.
        workers.stop().await;
        tasks.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait())
            .await
            .expect("the open jobs are dropped");
        assert!(!dispatch.send(job(tx, close)));
    }
}
