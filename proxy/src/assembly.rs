//! The proxy assembled: binds every listener, loads the policy and the
//! identity, and owns the tasks until shutdown.

use crate::admin::Admin;
use crate::authz::AuthzListener;
use crate::candidate::Candidate;
use crate::config::{CandidateSource, Config};
use crate::decision_log::DecisionLog;
use crate::inbound::Listener;
use crate::metrics::Metrics;
use crate::outbound;
use crate::outbound::resolve::{Resolve, SystemResolver};
use crate::poll::{FilePoller, Missing};
use crate::reload::{PolicyLoader, Reloader};
use crate::remote::{PolicyControl, PolicySourceCompiler, RemotePolicy};
use crate::state::Shared;
use crate::store::PolicyStore;
use crate::workers::Workers;
use sluice_identity::files::FileIdentity;
use sluice_identity::workload_api::{Event, WorkloadApiClient};
use sluice_identity::IdentityStore;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running proxy.
pub struct Proxy {
    admin_addr: SocketAddr,
    inbound_addrs: Vec<SocketAddr>,
    outbound_addrs: Vec<SocketAddr>,
    authz_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    policy: Arc<PolicyControl>,
    /// The candidate bundle's reload, when one is configured and usable.
    candidate: Option<Arc<PolicyControl>>,
    tasks: tokio::task::JoinSet<()>,
    /// The threads inbound connections are served on.
    workers: Workers,
}

/// Why the proxy could not start.
#[derive(Debug)]
pub enum StartError {
    /// A listener's address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The decision log could not be opened.
    DecisionLog {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A remote policy source cannot be used: a key file does not read,
    /// say.
    RemotePolicy {
        /// What is wrong, naming the file.
        message: String,
    },
    /// The worker threads for inbound connections could not be started.
    Workers {
        /// Why.
        error: std::io::Error,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind { addr, error } => write!(f, "cannot listen on `{addr}`: {error}"),
            StartError::DecisionLog { path, error } => {
                write!(
                    f,
                    "cannot open the decision log `{}`: {error}",
                    path.display()
                )
            }
            StartError::RemotePolicy { message } => f.write_str(message),
            StartError::Workers { error } => {
                write!(f, "cannot start the worker threads: {error}")
            }
        }
    }
}

impl std::error::Error for StartError {}

impl Proxy {
    /// Binds the listeners, loads the policy and identity, and starts
    /// serving. A policy or identity that cannot be loaded yet leaves the
    /// proxy running but not ready: it forwards nothing until they are valid.
    pub async fn start(config: Config, loader: PolicyLoader) -> Result<Proxy, StartError> {
        Proxy::start_with_resolver(config, loader, Arc::new(SystemResolver)).await
    }

    /// [`Proxy::start`] with a compiler for the signed source of a remote
    /// artifact whose bundle format this Sluice does not read
    /// (`compile-source-on-mismatch`); without one, such an artifact is
    /// refused.
    pub async fn start_with_compiler(
        config: Config,
        loader: PolicyLoader,
        compiler: PolicySourceCompiler,
    ) -> Result<Proxy, StartError> {
        Proxy::start_all(config, loader, Some(compiler), Arc::new(SystemResolver)).await
    }

    /// [`Proxy::start`], resolving names (service endpoints, egress
    /// destinations) with `resolver` instead of the system's.
    pub async fn start_with_resolver(
        config: Config,
        loader: PolicyLoader,
        resolver: Arc<dyn Resolve>,
    ) -> Result<Proxy, StartError> {
        Proxy::start_all(config, loader, None, resolver).await
    }

    async fn start_all(
        config: Config,
        loader: PolicyLoader,
        compiler: Option<PolicySourceCompiler>,
        resolver: Arc<dyn Resolve>,
    ) -> Result<Proxy, StartError> {
        let metrics = Arc::new(Metrics::default());
        let store = PolicyStore::new();
        let decision_log = match &config.log.decision_log {
            Some(path) => {
                let dropped = metrics.decision_log_dropped.clone();
                Some(Arc::new(DecisionLog::open(path, dropped).map_err(
                    |error| StartError::DecisionLog {
                        path: path.clone(),
                        error,
                    },
                )?))
            }
            None => None,
        };
        let mut tasks = tokio::task::JoinSet::new();
        let identity = match &config.identity {
            None => None,
            Some(id) => {
                let store = IdentityStore::new();
                if let Some(socket) = &id.workload_api {
                    match WorkloadApiClient::new(socket) {
                        Ok(client) => {
                            let metrics = metrics.clone();
                            let s = store.clone();
                            tasks.spawn(client.run(store.clone(), move |event| match event {
                                Event::Installed(update) => {
                                    tracing::info!(spiffe_id = %update.spiffe_id, "identity received from the Workload API");
                                    metrics.identity_reloads.inc(["ok"]);
                                    metrics.set_svid_not_after(s.svid_not_after());
                                }
                                Event::Rejected(_) => metrics.identity_reloads.inc(["error"]),
                                Event::Disconnected { .. } => {}
                            }));
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the Workload API socket is unusable; the proxy stays not ready");
                        }
                    }
                } else {
                    let files = FileIdentity {
                        cert: id.cert.clone().unwrap_or_default(),
                        key: id.key.clone().unwrap_or_default(),
                        trust_bundles: id.trust_bundles.clone(),
                    };
                    load_identity_files(&files, &store, &metrics);
                    let interval = Duration::from_millis(id.watch_interval_ms.max(10));
                    tasks.spawn(watch_identity_files(
                        files,
                        store.clone(),
                        metrics.clone(),
                        interval,
                    ));
                }
                Some(store)
            }
        };
        let candidate = config
            .policy
            .candidate_source
            .as_ref()
            .map(|c| Candidate::new(c.display()));
        let shared = Arc::new(Shared {
            store: store.clone(),
            candidate: candidate.clone(),
            identity,
            metrics: metrics.clone(),
            decision_log,
            limits: config.limits.clone(),
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let candidate_control = match (&config.policy.candidate_source, candidate) {
            (Some(source), Some(candidate)) => {
                start_candidate(
                    &config,
                    source,
                    candidate,
                    (&loader, compiler.as_ref(), &metrics),
                    &mut tasks,
                )
                .await
            }
            _ => None,
        };
        let policy = match &config.policy.remote {
            Some(remote) => {
                let remote = RemotePolicy::new(remote.clone(), store, metrics, compiler)
                    .map_err(|message| StartError::RemotePolicy { message })?;
                let remote = Arc::new(remote);
                tasks.spawn(remote.clone().run());
                PolicyControl::Remote(remote)
            }
            None => {
                let reloader = Arc::new(Reloader::new(
                    config.policy_path().to_owned(),
                    loader,
                    store,
                    metrics,
                ));
                let _ = reloader.reload("start").await;
                if config.policy.watch {
                    let interval = Duration::from_millis(config.policy.watch_interval_ms.max(10));
                    tasks.spawn(reloader.clone().watch(interval));
                }
                PolicyControl::File(reloader)
            }
        };
        let policy = Arc::new(policy);
        let admin_listener = TcpListener::bind(config.admin.listen)
            .await
            .map_err(|error| StartError::Bind {
                addr: config.admin.listen,
                error,
            })?;
        let admin_addr = admin_listener.local_addr().unwrap_or(config.admin.listen);
        let mut inbound_addrs = Vec::new();
        let mut listeners = Vec::new();
        for l in &config.inbound {
            let listener =
                Listener::bind(l.clone(), &shared)
                    .await
                    .map_err(|error| StartError::Bind {
                        addr: l.listen,
                        error,
                    })?;
            inbound_addrs.push(listener.local_addr().unwrap_or(l.listen));
            listeners.push(listener);
        }
        // As many worker threads as the runtime the proxy starts on has
        // (`SLUICE_WORKERS` for the `sluice` binary).
        let n = tokio::runtime::Handle::current().metrics().num_workers();
        let workers =
            Workers::start(n, &shared.tasks).map_err(|error| StartError::Workers { error })?;
        for listener in listeners {
            tasks.spawn(listener.run(shared.clone(), workers.dispatch()));
        }
        let mut outbound_addrs = Vec::new();
        let mut outbound_listeners = Vec::new();
        for l in &config.outbound {
            let listener =
                outbound::Listener::bind(l.clone())
                    .await
                    .map_err(|error| StartError::Bind {
                        addr: l.listen,
                        error,
                    })?;
            outbound_addrs.push(listener.local_addr());
            outbound_listeners.push(listener);
        }
        let authz =
            match &config.authz {
                Some(a) => Some(AuthzListener::bind(a.clone()).await.map_err(|error| {
                    StartError::Bind {
                        addr: a.listen,
                        error,
                    }
                })?),
                None => None,
            };
        let authz_addr = authz.as_ref().map(AuthzListener::local_addr);
        let own = [admin_addr]
            .into_iter()
            .chain(authz_addr)
            .chain(inbound_addrs.iter().copied())
            .chain(outbound_addrs.iter().copied())
            .collect();
        let outbound = Arc::new(outbound::Context::new(
            shared.clone(),
            resolver,
            outbound::OwnAddrs::new(own),
        ));
        for listener in outbound_listeners {
            tasks.spawn(listener.run(outbound.clone()));
        }
        if !config.outbound.is_empty() {
            let every = Duration::from_millis(config.resolver.refresh_ms);
            tasks.spawn(outbound.services.clone().refresh_every(every));
        }
        let admin = Arc::new(Admin {
            shared: shared.clone(),
            policy: policy.clone(),
            candidate: candidate_control.clone(),
        });
        tasks.spawn(admin.run(admin_listener));
        if let Some(authz) = authz {
            tasks.spawn(authz.run(shared.clone()));
        }
        tracing::info!(admin = %admin_addr, inbound = ?inbound_addrs, outbound = ?outbound_addrs, authz = ?authz_addr, "proxy started");
        Ok(Proxy {
            admin_addr,
            inbound_addrs,
            outbound_addrs,
            authz_addr,
            shared,
            policy,
            candidate: candidate_control,
            tasks,
            workers,
        })
    }

    /// The admin listener's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The inbound listeners' bound addresses, in configuration order.
    pub fn inbound_addrs(&self) -> &[SocketAddr] {
        &self.inbound_addrs
    }

    /// The outbound listeners' bound addresses, in configuration order.
    pub fn outbound_addrs(&self) -> &[SocketAddr] {
        &self.outbound_addrs
    }

    /// The `ext_authz` listener's bound address, when `[authz]` is configured.
    pub fn authz_addr(&self) -> Option<SocketAddr> {
        self.authz_addr
    }

    /// Stops accepting, lets requests in flight finish (up to the drain
    /// timeout), then stops every task.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        let draining = &self.shared.tasks;
        draining.close();
        let drain = self.shared.limits.drain_timeout();
        if tokio::time::timeout(drain, draining.wait()).await.is_err() {
            tracing::warn!(
                open = draining.len(),
                "drain timeout: closing the remaining connections"
            );
        }
        self.tasks.shutdown().await;
        self.workers.stop().await;
        if let Some(log) = &self.shared.decision_log {
            log.flush().await;
        }
        tracing::info!("proxy stopped");
    }

    /// Runs until SIGTERM or SIGINT, reloading on SIGHUP (a remote source
    /// is polled at once), then shuts down gracefully.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    // a poll that hangs must not keep SIGTERM waiting
                    let reload = async {
                        let _ = self.policy.reload("SIGHUP").await;
                        if let Some(candidate) = &self.candidate {
                            let _ = candidate.reload("SIGHUP").await;
                        }
                    };
                    tokio::select! {
                        _ = reload => {}
                        _ = term.recv() => break,
                        _ = int.recv() => break,
                    }
                }
            }
        }
        tracing::info!("shutting down: draining requests in flight");
        self.shutdown().await;
        Ok(())
    }
}

/// Loads the candidate bundle and starts its reloads (the file watcher or
/// the remote poll); `None` when its remote source cannot be used (a key
/// file does not read, say): that is logged and shown by `/policy`, and
/// the proxy serves with the policy alone.
async fn start_candidate(
    config: &Config,
    source: &CandidateSource,
    candidate: Arc<Candidate>,
    (loader, compiler, metrics): (&PolicyLoader, Option<&PolicySourceCompiler>, &Arc<Metrics>),
    tasks: &mut tokio::task::JoinSet<()>,
) -> Option<Arc<PolicyControl>> {
    let control = match source {
        CandidateSource::Path(path) => {
            let reloader = Arc::new(Reloader::for_candidate(
                path.clone(),
                loader.clone(),
                candidate,
                metrics.clone(),
            ));
            let _ = reloader.reload("start").await;
            if config.policy.watch {
                let interval = Duration::from_millis(config.policy.watch_interval_ms.max(10));
                tasks.spawn(reloader.clone().watch(interval));
            }
            PolicyControl::File(reloader)
        }
        CandidateSource::Remote(remote) => {
            match RemotePolicy::for_candidate(
                remote.clone(),
                candidate.clone(),
                metrics.clone(),
                compiler.cloned(),
            ) {
                Ok(remote) => {
                    let remote = Arc::new(remote);
                    tasks.spawn(remote.clone().run());
                    PolicyControl::Remote(remote)
                }
                Err(message) => {
                    tracing::error!(error = %message, "the candidate source is unusable; the proxy serves with the policy alone");
                    metrics.candidate_reloads.inc(["error"]);
                    candidate.set_error(Some(message));
                    return None;
                }
            }
        }
    };
    Some(Arc::new(control))
}

fn load_identity_files(files: &FileIdentity, store: &IdentityStore, metrics: &Metrics) -> bool {
    let creds = files.load_credentials();
    let bundles = files.load_trust_bundles();
    match (creds, bundles) {
        (Ok(creds), Ok(bundles)) => {
            tracing::info!(
                spiffe_id = creds.spiffe_id(),
                trust_domains = ?bundles.trust_domains().collect::<Vec<_>>(),
                "identity loaded"
            );
            store.set_trust_bundles(bundles);
            store.set_credentials(creds);
            metrics.identity_reloads.inc(["ok"]);
            metrics.set_svid_not_after(store.svid_not_after());
            true
        }
        (creds, bundles) => {
            for e in [creds.err(), bundles.err()].into_iter().flatten() {
                tracing::error!(error = %e, "identity rejected; the previous identity keeps serving");
            }
            metrics.identity_reloads.inc(["error"]);
            false
        }
    }
}

async fn watch_identity_files(
    files: FileIdentity,
    store: Arc<IdentityStore>,
    metrics: Arc<Metrics>,
    interval: Duration,
) {
    let paths = files.paths().into_iter().map(Path::to_owned).collect();
    let mut poller = FilePoller::new(paths, interval, Missing::Report);
    loop {
        poller.changed().await;
        load_identity_files(&files, &store, &metrics);
    }
}
