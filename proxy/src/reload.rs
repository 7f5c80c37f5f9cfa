//! Reloading the policy: from the file watcher, SIGHUP and `POST /reload`.
//!
//! Reloads are serialized; a new bundle is validated before it is swapped
//! in, and a bad one leaves the old one serving.

use crate::candidate::Candidate;
use crate::metrics::Metrics;
use crate::poll::{FilePoller, Missing};
use crate::store::{LoadedBundle, PolicyStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Turns the configured policy file into bundle bytes. The proxy reads a
/// bundle as is; the `sluice` binary passes one that compiles source.
pub type PolicyLoader = Arc<dyn Fn(&Path) -> Result<Vec<u8>, String> + Send + Sync>;

/// A loader that reads a compiled bundle file.
pub fn bundle_file_loader() -> PolicyLoader {
    Arc::new(|path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
    })
}

/// The bytes of `path` when it is a file that begins with the bundle magic.
fn read_bundle_file(path: &Path) -> Option<Vec<u8>> {
    if !path.is_file() {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    bytes
        .starts_with(&sluice_runtime::bundle::MAGIC)
        .then_some(bytes)
}

/// Reloads the policy into the store.
pub(crate) struct Reloader {
    path: PathBuf,
    loader: PolicyLoader,
    store: Arc<PolicyStore>,
    metrics: Arc<Metrics>,
    lock: tokio::sync::Mutex<()>,
    /// Set when this reloader loads the candidate bundle: then it reports
    /// to the candidate, not to the policy's metrics.
    candidate: Option<Arc<Candidate>>,
}

impl Reloader {
    /// A reloader of `path` through `loader`.
    pub(crate) fn new(
        path: PathBuf,
        loader: PolicyLoader,
        store: Arc<PolicyStore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Reloader {
            path,
            loader,
            store,
            metrics,
            lock: tokio::sync::Mutex::new(()),
            candidate: None,
        }
    }

    /// A reloader of the candidate bundle at `path`: a bundle file is read
    /// as is, anything else goes through `loader`.
    pub(crate) fn for_candidate(
        path: PathBuf,
        loader: PolicyLoader,
        candidate: Arc<Candidate>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let loader: PolicyLoader = Arc::new(move |path: &Path| match read_bundle_file(path) {
            Some(bytes) => Ok(bytes),
            None => loader(path),
        });
        let mut reloader = Reloader::new(path, loader, candidate.store.clone(), metrics);
        reloader.candidate = Some(candidate);
        reloader
    }

    /// The policy file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads, validates and swaps in the policy; `cause` is logged.
    /// Answers once the new bundle serves.
    pub(crate) async fn reload(&self, cause: &'static str) -> Result<Arc<LoadedBundle>, String> {
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        let loader = self.loader.clone();
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || {
            let bytes = loader(&path)?;
            store
                .install(&bytes)
                .map_err(|e| format!("`{}` is not a valid bundle: {e}", path.display()))
        })
        .await
        .unwrap_or_else(|e| Err(format!("the reload task failed: {e}")));
        if let Some(candidate) = &self.candidate {
            self.report_candidate(candidate, cause, &result);
            return result;
        }
        match &result {
            Ok(loaded) => {
                self.metrics.bundle_reloads.inc(["ok"]);
                self.metrics.set_bundle(loaded.hash(), loaded.loaded_at());
                self.metrics.set_policy(crate::metrics::PolicyInfo {
                    source: self.path.display().to_string(),
                    digest: String::new(),
                    hash: loaded.hash().to_owned(),
                    format: sluice_runtime::bundle::FORMAT_VERSION,
                    signer: String::new(),
                });
                tracing::info!(
                    cause,
                    bundle = loaded.hash(),
                    bytes = loaded.len(),
                    "policy bundle loaded"
                );
            }
            Err(e) => {
                self.metrics.bundle_reloads.inc(["error"]);
                let serving = self.store.current().map(|b| b.hash().to_owned());
                tracing::error!(
                    cause,
                    error = %e,
                    serving = serving.as_deref().unwrap_or("none"),
                    "policy bundle rejected; the previous bundle keeps serving"
                );
            }
        }
        result
    }

    fn report_candidate(
        &self,
        candidate: &Candidate,
        cause: &'static str,
        result: &Result<Arc<LoadedBundle>, String>,
    ) {
        match result {
            Ok(loaded) => {
                self.metrics.candidate_reloads.inc(["ok"]);
                candidate.set_error(None);
                tracing::info!(
                    cause,
                    candidate = loaded.hash(),
                    bytes = loaded.len(),
                    "candidate bundle loaded (decided beside the policy, not enforced)"
                );
            }
            Err(e) => {
                self.metrics.candidate_reloads.inc(["error"]);
                candidate.set_error(Some(e.clone()));
                let serving = self.store.current().map(|b| b.hash().to_owned());
                tracing::error!(
                    cause,
                    error = %e,
                    candidate = serving.as_deref().unwrap_or("none"),
                    "candidate bundle rejected; the live policy is not affected"
                );
            }
        }
    }

    /// Reloads whenever the policy file's size or modification time changes
    /// (a missing file is waited for, not reloaded).
    pub(crate) async fn watch(self: Arc<Self>, interval: Duration) {
        let mut poller = FilePoller::new(vec![self.path.clone()], interval, Missing::Wait);
        loop {
            poller.changed().await;
            let _ = self.reload("file changed").await;
        }
    }
}
