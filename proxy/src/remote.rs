//! A policy pulled from a registry or an HTTP image layout
//! (`[policy] source = "oci://..."`, `"https://..."`), and the one handle
//! the triggers (`POST /reload`, SIGHUP) use whatever the source.
//!
//! One task polls: at start, then after each wait of `poll-interval-ms`
//! shortened by up to `poll-jitter`. `sluice_fleet::fetch::Fetcher` checks
//! digest, signature and every blob before anything is installed; an
//! artifact whose bundle format this Sluice does not read may be compiled
//! from its signed source by the [`PolicySourceCompiler`] the proxy's user
//! passes. A refusal, or a source that does not answer, leaves the bundle
//! in service serving. Each installed bundle is written to `cache-dir`, so
//! a proxy restarted while its source is down serves it at once.

use crate::candidate::Candidate;
use crate::config::RemotePolicyConfig;
use crate::metrics::{Metrics, PolicyInfo};
use crate::reload::Reloader;
use crate::store::{LoadedBundle, PolicyStore};
use serde::{Deserialize, Serialize};
use sluice_fleet::fetch::{
    Content, FetchConfig, FetchError, FetchErrorKind, Fetcher, Polled, Trust,
};
use sluice_fleet::keys::PublicKey;
use sluice_runtime::bundle::FORMAT_VERSION;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Compiles policy source text (one file) into bundle bytes; diagnostics
/// become the message. The proxy does not carry the compiler: the `sluice`
/// binary passes one.
pub type PolicySourceCompiler = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// The bundle file in `cache-dir`.
const CACHE_BUNDLE: &str = "bundle.bin";
/// The record of where the cached bundle came from, in `cache-dir`.
const CACHE_RECORD: &str = "artifact.json";
/// The longest one poll may take, all its requests together: a source
/// that answers slowly (each request just inside its own timeout) cannot
/// hold the poll task, `POST /reload` or SIGHUP longer than this.
const POLL_DEADLINE: Duration = Duration::from_secs(120);

/// Where the bundle in service came from, as `GET /policy` shows it.
#[derive(Clone, Debug)]
pub(crate) struct Provenance {
    /// The configured source: a path or a reference.
    pub source: String,
    /// The artifact's manifest digest (remote sources only).
    pub digest: Option<String>,
    /// The id of the key whose signature verified, if any.
    pub signer: Option<String>,
    /// When the artifact was fetched (remote sources only).
    pub fetched_at: Option<SystemTime>,
    /// The bundle format version.
    pub format: u32,
}

/// `artifact.json` in `cache-dir`.
#[derive(Debug, Serialize, Deserialize)]
struct CacheRecord {
    source: String,
    digest: String,
    hash: String,
    format: u32,
    signer: Option<String>,
    fetched_at_unix_ms: u64,
}

/// A remote policy source and what is in service from it.
pub(crate) struct RemotePolicy {
    config: RemotePolicyConfig,
    key_ids: Vec<String>,
    fetcher: tokio::sync::Mutex<Fetcher>,
    store: Arc<PolicyStore>,
    metrics: Arc<Metrics>,
    compiler: Option<PolicySourceCompiler>,
    provenance: Mutex<Option<Provenance>>,
    /// [`POLL_DEADLINE`], shorter in tests.
    poll_deadline: Duration,
    /// Set when this source is the candidate bundle's: then it reports to
    /// the candidate, not to the policy's metrics.
    candidate: Option<Arc<Candidate>>,
}

impl RemotePolicy {
    /// Reads the keys and builds the fetcher; then serves the cached
    /// bundle, when `cache-dir` holds a usable one for this source. Errors
    /// name the key file that does not read.
    pub(crate) fn new(
        config: RemotePolicyConfig,
        store: Arc<PolicyStore>,
        metrics: Arc<Metrics>,
        compiler: Option<PolicySourceCompiler>,
    ) -> Result<RemotePolicy, String> {
        let mut keys = Vec::with_capacity(config.keys.len());
        for path in &config.keys {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the key `{}`: {e}", path.display()))?;
            let key = PublicKey::from_pem(&pem)
                .map_err(|e| format!("`{}` is not a usable public key: {e}", path.display()))?;
            keys.push(key);
        }
        let key_ids = keys.iter().map(PublicKey::key_id).collect();
        let trust = if config.allow_unsigned {
            Trust::AllowUnsigned
        } else {
            Trust::Keys(keys)
        };
        let mut fetch = FetchConfig::new(trust);
        fetch.max_bytes = config.max_bundle_bytes;
        fetch.plain_http = config.plain_http;
        fetch.accept_source_only = config.compile_source_on_mismatch;
        let fetcher = Fetcher::new(config.source.clone(), fetch)
            .map_err(|e| format!("cannot fetch `{}`: {e}", config.source_text))?;
        let mut remote = RemotePolicy {
            config,
            key_ids,
            fetcher: tokio::sync::Mutex::new(fetcher),
            store,
            metrics,
            compiler,
            provenance: Mutex::new(None),
            poll_deadline: POLL_DEADLINE,
            candidate: None,
        };
        if let Some(dir) = remote.config.cache_dir.clone() {
            match remote.load_cache(&dir) {
                Ok(digest) => remote.fetcher.get_mut().set_current(&digest),
                Err(reason) => tracing::info!(
                    source = %remote.config.source_text,
                    cache = %dir.display(),
                    reason,
                    "no usable cached policy; the proxy is not ready until the first verified fetch"
                ),
            }
        }
        Ok(remote)
    }

    /// The candidate bundle's remote source: verified like the policy's,
    /// installed into the candidate's store, never cached.
    pub(crate) fn for_candidate(
        mut config: RemotePolicyConfig,
        candidate: Arc<Candidate>,
        metrics: Arc<Metrics>,
        compiler: Option<PolicySourceCompiler>,
    ) -> Result<RemotePolicy, String> {
        config.cache_dir = None;
        let mut remote = RemotePolicy::new(config, candidate.store.clone(), metrics, compiler)?;
        remote.candidate = Some(candidate);
        Ok(remote)
    }

    /// What `GET /policy` shows about the bundle in service.
    pub(crate) fn provenance(&self) -> Option<Provenance> {
        self.provenance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Polls until the task is aborted: now, then after each wait.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            let _ = self.poll("poll").await;
            tokio::time::sleep(self.next_wait()).await;
        }
    }

    /// `poll-interval-ms * (1 - poll-jitter * U[0,1))`.
    fn next_wait(&self) -> Duration {
        wait(
            self.config.poll_interval,
            self.config.poll_jitter,
            fastrand::f64(),
        )
    }

    /// Asks the source once and installs what it brings; `cause` is
    /// logged. The bundle in service afterwards, or why none new is.
    pub(crate) async fn poll(&self, cause: &'static str) -> Result<Arc<LoadedBundle>, String> {
        let mut fetcher = self.fetcher.lock().await;
        let polled = tokio::time::timeout(self.poll_deadline, fetcher.poll())
            .await
            .unwrap_or_else(|_| {
                Err(FetchError {
                    kind: FetchErrorKind::Unreachable,
                    digest: None,
                    message: format!(
                        "`{}` did not answer the whole poll within {} s",
                        self.config.source_text,
                        self.poll_deadline.as_secs_f64()
                    ),
                })
            });
        match polled {
            Ok(Polled::Unchanged) => {
                if self.candidate.is_none() {
                    self.metrics.policy_fetches.inc(["unchanged"]);
                    self.metrics.set_policy_fetch_success(SystemTime::now());
                }
                tracing::debug!(cause, source = %self.config.source_text, "policy source unchanged");
                self.store
                    .current()
                    .ok_or_else(|| "no bundle in service".to_owned())
            }
            Ok(Polled::Fetched(fetched)) => {
                let digest = fetched.digest.clone();
                match self.install(*fetched).await {
                    Ok(loaded) => {
                        fetcher.set_current(&digest);
                        Ok(loaded)
                    }
                    Err(message) => {
                        let error = FetchError {
                            kind: FetchErrorKind::Invalid,
                            digest: Some(digest.clone()),
                            message,
                        };
                        fetcher.set_refused(&digest, error.clone());
                        Err(self.refused(cause, &error))
                    }
                }
            }
            Err(e) => Err(self.refused(cause, &e)),
        }
    }

    /// Compiles (when only the source came) and installs a fetched
    /// artifact, records it and writes the cache.
    async fn install(
        &self,
        fetched: sluice_fleet::fetch::Fetched,
    ) -> Result<Arc<LoadedBundle>, String> {
        let store = self.store.clone();
        let compiler = self.compiler.clone();
        let sluice_fleet::fetch::Fetched {
            digest,
            signer,
            content,
        } = fetched;
        let what = digest.clone();
        let installed = tokio::task::spawn_blocking(move || {
            let (bytes, artifact_format) = match content {
                Content::Bundle(v) => (v.bundle.as_bytes().to_vec(), FORMAT_VERSION),
                Content::Source(s) => {
                    let Some(compile) = compiler else {
                        return Err(format!(
                            "the artifact `{}` has bundle format {}, this Sluice reads {FORMAT_VERSION}, and this proxy has no policy compiler to build it from its source",
                            s.digest, s.format_version
                        ));
                    };
                    let bytes = compile(&s.source).map_err(|e| {
                        format!(
                            "the artifact `{}` has bundle format {} (this Sluice reads {FORMAT_VERSION}) and its source does not compile: {e}",
                            s.digest, s.format_version
                        )
                    })?;
                    (bytes, s.format_version)
                }
            };
            let loaded = store.install(&bytes).map_err(|e| {
                format!("the bundle of `{what}` is not valid: {e}")
            })?;
            Ok((loaded, bytes, artifact_format))
        })
        .await
        .unwrap_or_else(|e| Err(format!("the install task failed: {e}")))?;
        let (loaded, bytes, artifact_format) = installed;
        let fetched_at = SystemTime::now();
        if let Some(candidate) = &self.candidate {
            self.metrics.candidate_reloads.inc(["ok"]);
            candidate.set_error(None);
        } else {
            self.metrics.policy_fetches.inc(["updated"]);
            self.metrics.set_policy_fetch_success(fetched_at);
            self.metrics.bundle_reloads.inc(["ok"]);
            self.metrics.set_bundle(loaded.hash(), loaded.loaded_at());
        }
        self.serve(&digest, signer.clone(), fetched_at, loaded.hash());
        tracing::info!(
            source = %self.config.source_text,
            digest = %digest,
            bundle = loaded.hash(),
            signer = signer.as_deref().unwrap_or("unsigned"),
            artifact_format,
            bytes = loaded.len(),
            candidate = self.candidate.is_some(),
            "policy fetched and installed"
        );
        if let Some(dir) = self.config.cache_dir.clone() {
            let record = CacheRecord {
                source: self.config.source_text.clone(),
                digest,
                hash: loaded.hash().to_owned(),
                format: FORMAT_VERSION,
                signer,
                fetched_at_unix_ms: unix_ms(fetched_at),
            };
            let written = tokio::task::spawn_blocking(move || write_cache(&dir, &bytes, &record))
                .await
                .unwrap_or_else(|e| Err(format!("the cache task failed: {e}")));
            if let Err(e) = written {
                tracing::warn!(error = %e, "the policy cache was not written");
            }
        }
        Ok(loaded)
    }

    /// Records the bundle in service for `/policy` and `sluice_policy_info`.
    fn serve(&self, digest: &str, signer: Option<String>, fetched_at: SystemTime, hash: &str) {
        if self.candidate.is_none() {
            self.metrics.set_policy(PolicyInfo {
                source: self.config.source_text.clone(),
                digest: digest.to_owned(),
                hash: hash.to_owned(),
                format: FORMAT_VERSION,
                signer: signer.clone().unwrap_or_default(),
            });
        }
        *self.provenance.lock().unwrap_or_else(|e| e.into_inner()) = Some(Provenance {
            source: self.config.source_text.clone(),
            digest: Some(digest.to_owned()),
            signer,
            fetched_at: Some(fetched_at),
            format: FORMAT_VERSION,
        });
    }

    /// Counts and logs a refusal or an unreachable source; the message.
    fn refused(&self, cause: &'static str, e: &FetchError) -> String {
        if let Some(candidate) = &self.candidate {
            self.metrics.candidate_reloads.inc(["error"]);
            candidate.set_error(Some(e.message.clone()));
            tracing::error!(
                cause,
                source = %self.config.source_text,
                digest = e.digest.as_deref().unwrap_or(""),
                result = e.kind.as_str(),
                error = %e.message,
                "candidate policy fetch failed; the live policy is not affected"
            );
            return e.message.clone();
        }
        self.metrics.policy_fetches.inc([e.kind.as_str()]);
        let serving = self.store.current().map(|b| b.hash().to_owned());
        tracing::error!(
            cause,
            source = %self.config.source_text,
            digest = e.digest.as_deref().unwrap_or(""),
            result = e.kind.as_str(),
            error = %e.message,
            serving = serving.as_deref().unwrap_or("none"),
            "policy fetch failed; the bundle in service keeps serving"
        );
        e.message.clone()
    }

    /// Installs the cached bundle when it is for this source, loads with
    /// its recorded hash and (with `keys`) was signed by one of them; the
    /// artifact's digest, or why not.
    fn load_cache(&self, dir: &Path) -> Result<String, String> {
        let record_path = dir.join(CACHE_RECORD);
        let text = std::fs::read(&record_path)
            .map_err(|e| format!("cannot read `{}`: {e}", record_path.display()))?;
        let record: CacheRecord = serde_json::from_slice(&text)
            .map_err(|e| format!("`{}` is not a cache record: {e}", record_path.display()))?;
        if record.source != self.config.source_text {
            return Err(format!("the cache holds `{}`", record.source));
        }
        if !self.config.allow_unsigned {
            match &record.signer {
                Some(id) if self.key_ids.contains(id) => {}
                Some(id) => {
                    return Err(format!(
                        "the cached bundle was signed by `{id}`, not a configured key"
                    ))
                }
                None => {
                    return Err("the cached bundle was unsigned, and keys are configured".into())
                }
            }
        }
        let bundle_path = dir.join(CACHE_BUNDLE);
        let bytes = std::fs::read(&bundle_path)
            .map_err(|e| format!("cannot read `{}`: {e}", bundle_path.display()))?;
        let hash = LoadedBundle::load(&bytes, 0)
            .map_err(|e| format!("`{}` is not a valid bundle: {e}", bundle_path.display()))?
            .hash()
            .to_owned();
        if hash != record.hash {
            return Err(format!(
                "`{}` has the hash `{hash}`, not the recorded `{}`",
                bundle_path.display(),
                record.hash
            ));
        }
        let loaded = self
            .store
            .install(&bytes)
            .map_err(|e| format!("`{}` is not a valid bundle: {e}", bundle_path.display()))?;
        self.metrics.bundle_reloads.inc(["ok"]);
        self.metrics.set_bundle(loaded.hash(), loaded.loaded_at());
        let fetched_at = SystemTime::UNIX_EPOCH + Duration::from_millis(record.fetched_at_unix_ms);
        self.serve(
            &record.digest,
            record.signer.clone(),
            fetched_at,
            loaded.hash(),
        );
        tracing::info!(
            source = %self.config.source_text,
            digest = %record.digest,
            bundle = loaded.hash(),
            signer = record.signer.as_deref().unwrap_or("unsigned"),
            cache = %dir.display(),
            "serving the cached policy until the source answers"
        );
        Ok(record.digest)
    }
}

/// What reloads the policy and describes it: the file reloader, or the
/// remote source's poll. `POST /reload` and SIGHUP go through here.
pub(crate) enum PolicyControl {
    /// A local bundle or source file.
    File(Arc<Reloader>),
    /// A registry or HTTP layout.
    Remote(Arc<RemotePolicy>),
}

impl PolicyControl {
    /// Reloads the file, or polls the remote source now.
    pub(crate) async fn reload(&self, cause: &'static str) -> Result<Arc<LoadedBundle>, String> {
        match self {
            PolicyControl::File(r) => r.reload(cause).await,
            PolicyControl::Remote(r) => r.poll(cause).await,
        }
    }

    /// Where the bundle in service came from.
    pub(crate) fn provenance(&self) -> Provenance {
        match self {
            PolicyControl::File(r) => Provenance {
                source: r.path().display().to_string(),
                digest: None,
                signer: None,
                fetched_at: None,
                format: FORMAT_VERSION,
            },
            PolicyControl::Remote(r) => r.provenance().unwrap_or_else(|| Provenance {
                source: r.config.source_text.clone(),
                digest: None,
                signer: None,
                fetched_at: None,
                format: FORMAT_VERSION,
            }),
        }
    }
}

/// `interval * (1 - jitter * u)` for `u` in `[0, 1)`, never shorter than
/// `poll-interval-ms`'s minimum (a jitter of 1.0 would otherwise allow
/// back-to-back polls).
fn wait(interval: Duration, jitter: f64, u: f64) -> Duration {
    let floor = Duration::from_millis(crate::config::MIN_POLL_INTERVAL_MS).min(interval);
    interval
        .mul_f64((1.0 - jitter * u).clamp(0.0, 1.0))
        .max(floor)
}

/// Unix milliseconds.
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes `bundle.bin`, then `artifact.json`, each to a temporary file in
/// `dir` renamed over the old one.
fn write_cache(dir: &Path, bundle: &[u8], record: &CacheRecord) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let json = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
    write_atomic(&dir.join(CACHE_BUNDLE), bundle)?;
    write_atomic(&dir.join(CACHE_RECORD), &json)
}

/// Writes `path` through a new temporary file beside it and a rename. The
/// temporary name is random and the file created exclusively, so two
/// proxies sharing `cache-dir` (both pid 1 in their containers, say) never
/// write into the same file, and a link planted under that name is not
/// followed.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("cache");
    let tmp: PathBuf = path.with_file_name(format!(
        ".{name}.tmp-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write `{}`: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_within_one_interval() {
        let interval = Duration::from_millis(1000);
        assert_eq!(wait(interval, 0.1, 0.0), interval);
        assert_eq!(wait(interval, 0.1, 0.5), Duration::from_millis(950));
        assert_eq!(wait(interval, 0.0, 0.99), interval);
        assert_eq!(wait(interval, 1.0, 0.5), Duration::from_millis(500));
        for _ in 0..1000 {
            let w = wait(interval, 0.3, fastrand::f64());
            assert!(w <= interval && w > Duration::from_millis(699), "{w:?}");
        }
    }

    #[test]
    fn a_jitter_of_one_never_polls_back_to_back() {
        let second = Duration::from_secs(1);
        let floor = Duration::from_millis(crate::config::MIN_POLL_INTERVAL_MS);
        assert_eq!(wait(second, 1.0, 0.999_999_9), floor);
        assert_eq!(wait(second, 1.0, 0.95), floor);
        assert_eq!(wait(second, 1.0, 0.8), Duration::from_millis(200));
        assert_eq!(wait(floor, 1.0, 0.5), floor);
    }

    #[cfg(unix)]
    #[test]
    fn the_cache_does_not_write_through_a_planted_link() {
        let dir = std::env::temp_dir().join(format!("sluice-cache-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cache")).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        for name in [CACHE_BUNDLE, CACHE_RECORD] {
            let planted = dir
                .join("cache")
                .join(format!(".{name}.tmp-{}", std::process::id()));
            std::os::unix::fs::symlink(&victim, planted).unwrap();
        }
        let record = CacheRecord {
            source: "oci://r/p:v1".into(),
            digest: "sha256:ab".into(),
            hash: "00ff".into(),
            format: FORMAT_VERSION,
            signer: None,
            fetched_at_unix_ms: 5,
        };
        write_cache(&dir.join("cache"), b"bundle", &record).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let bundle = dir.join("cache").join(CACHE_BUNDLE);
        assert!(!std::fs::symlink_metadata(&bundle)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&bundle).unwrap(), b"bundle");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_source_cannot_hold_a_poll_or_a_reload_past_the_deadline() {
        // A source that accepts connections and never answers: each request
        // alone would wait out its own 30 s timeout.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let text = format!("http://127.0.0.1:{port}/policies/p:v1");
        let config = RemotePolicyConfig {
            source: sluice_fleet::source::SourceRef::parse(&text).unwrap(),
            source_text: text,
            keys: Vec::new(),
            allow_unsigned: true,
            poll_interval: Duration::from_secs(1),
            poll_jitter: 0.0,
            cache_dir: None,
            max_bundle_bytes: 1 << 20,
            plain_http: true,
            compile_source_on_mismatch: false,
        };
        let metrics = Arc::new(Metrics::default());
        let mut remote =
            RemotePolicy::new(config, PolicyStore::new(), metrics.clone(), None).unwrap();
        remote.poll_deadline = Duration::from_secs(1);
        let remote = Arc::new(remote);
        let started = std::time::Instant::now();
        let (poll, reload) = tokio::join!(remote.poll("poll"), remote.poll("reload"));
        let elapsed = started.elapsed();
        for result in [poll, reload] {
            let message = result.err().unwrap();
            assert!(
                message.contains("did not answer the whole poll within 1 s"),
                "{message}"
            );
        }
        assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
        assert!(
            metrics
                .render()
                .contains("sluice_policy_fetch_total{result=\"unreachable\"} 2"),
            "{}",
            metrics.render()
        );
        silent.abort();
    }

    #[test]
    fn the_cache_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("sluice-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let record = CacheRecord {
            source: "oci://r/p:v1".into(),
            digest: "sha256:ab".into(),
            hash: "00ff".into(),
            format: FORMAT_VERSION,
            signer: Some("k".into()),
            fetched_at_unix_ms: 5,
        };
        write_cache(&dir, b"one", &record).unwrap();
        write_cache(&dir, b"two", &record).unwrap();
        assert_eq!(std::fs::read(dir.join(CACHE_BUNDLE)).unwrap(), b"two");
        let back: CacheRecord =
            serde_json::from_slice(&std::fs::read(dir.join(CACHE_RECORD)).unwrap()).unwrap();
        assert_eq!(
            (back.digest.as_str(), back.fetched_at_unix_ms),
            ("sha256:ab", 5)
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
