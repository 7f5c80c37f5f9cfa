//! Noticing changed files by polling their modification time and size: the
//! policy file (`[policy] watch`) and the identity files (`[identity]` cert,
//! key and trust bundles) both use [`FilePoller`].

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A file's modification time and size; `None` when it cannot be read.
type Stamp = Option<(SystemTime, u64)>;

/// What to do when a polled file cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Missing {
    /// Wait for the file to come back; its absence is not a change.
    Wait,
    /// Report a change, so that the caller's reload fails and is counted.
    Report,
}

/// Polls a set of files every `interval` and reports when their stamps
/// change.
#[derive(Debug)]
pub(crate) struct FilePoller {
    paths: Vec<PathBuf>,
    interval: Duration,
    missing: Missing,
    last: Vec<Stamp>,
}

impl FilePoller {
    /// A poller of `paths`; their stamps now are the starting point.
    pub(crate) fn new(paths: Vec<PathBuf>, interval: Duration, missing: Missing) -> Self {
        let last = stamps(&paths);
        FilePoller {
            paths,
            interval,
            missing,
            last,
        }
    }

    /// Sleeps `interval` at a time until some file's modification time or
    /// size differs from the last change reported (or from the start).
    pub(crate) async fn changed(&mut self) {
        loop {
            tokio::time::sleep(self.interval).await;
            let now = stamps(&self.paths);
            let ignored = self.missing == Missing::Wait && now.iter().any(Option::is_none);
            if now != self.last && !ignored {
                self.last = now;
                return;
            }
        }
    }
}

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("sluice-poll-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Whether `changed` answers within a few intervals.
    async fn changes(poller: &mut FilePoller) -> bool {
        tokio::time::timeout(Duration::from_millis(100), poller.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn reports_size_changes_and_missing_files_as_asked() {
        let dir = temp_dir("changes");
        let path = dir.0.join("file");
        std::fs::write(&path, "a").unwrap();
        let interval = Duration::from_millis(5);
        let mut wait = FilePoller::new(vec![path.clone()], interval, Missing::Wait);
        let mut report = FilePoller::new(vec![path.clone()], interval, Missing::Report);
        assert!(!changes(&mut wait).await);
        assert!(!changes(&mut report).await);

        std::fs::write(&path, "ab").unwrap();
        assert!(changes(&mut wait).await);
        assert!(changes(&mut report).await);
        assert!(!changes(&mut wait).await);

        std::fs::remove_file(&path).unwrap();
        assert!(!changes(&mut wait).await);
        assert!(changes(&mut report).await);
        assert!(!changes(&mut report).await);

        std::fs::write(&path, "abc").unwrap();
        assert!(changes(&mut wait).await);
        assert!(changes(&mut report).await);
    }
}
