//! Proxy-wide state that every listener shares: the policy, the identity,
//! metrics, the decision log, limits, the connection count and shutdown.

use crate::candidate::Candidate;
use crate::config::Limits;
use crate::decision_log::DecisionLog;
use crate::metrics::Metrics;
use crate::store::PolicyStore;
use sluice_identity::IdentityStore;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every listener shares.
pub(crate) struct Shared {
    /// The policy.
    pub store: Arc<PolicyStore>,
    /// The candidate bundle, decided beside the policy and never enforced.
    pub candidate: Option<Arc<Candidate>>,
    /// The proxy's identity, when TLS is configured.
    pub identity: Option<Arc<IdentityStore>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The decision log, when configured.
    pub decision_log: Option<Arc<DecisionLog>>,
    /// Limits and timeouts.
    pub limits: Limits,
    /// One permit per open connection: the connection limit.
    pub connections: Arc<Semaphore>,
    /// Cancelled when the proxy shuts down.
    pub shutdown: CancellationToken,
    /// Every connection's task, and the relays and tunnels that outlive
    /// one: shutdown waits for them to finish, up to the drain timeout.
    pub tasks: TaskTracker,
}

impl Shared {
    /// Whether the proxy may forward: a bundle is loaded and, when TLS is
    /// configured, credentials and trust bundles are held.
    pub(crate) fn is_ready(&self) -> bool {
        self.store.current().is_some()
            && self
                .identity
                .as_ref()
                .is_none_or(|id| id.has_credentials() && id.has_trust_bundles())
    }
}
