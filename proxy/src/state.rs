//! Proxy-wide state that every listener shares: the policy, the identity,
//! metrics, the decision log, limits, the connection count and shutdown.

use crate::config::Limits;
use crate::decision_log::DecisionLog;
use crate::identity::IdentityStore;
use crate::metrics::Metrics;
use crate::store::PolicyStore;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};

/// What every listener shares.
pub struct Shared {
    /// The policy.
    pub store: Arc<PolicyStore>,
    /// The proxy's identity, when TLS is configured.
    pub identity: Option<Arc<IdentityStore>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The decision log, when configured.
    pub decision_log: Option<Arc<DecisionLog>>,
    /// Limits and timeouts.
    pub limits: Limits,
    /// One permit per open connection.
    pub connections: Arc<Semaphore>,
    /// Becomes `true` when the proxy shuts down.
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// Whether the proxy may forward: a bundle is loaded and, when TLS is
    /// configured, credentials and trust bundles are held.
    pub fn is_ready(&self) -> bool {
        self.store.current().is_some()
            && self
                .identity
                .as_ref()
                .is_none_or(|id| id.has_credentials() && id.has_trust_bundles())
    }
}

/// Completes when the proxy starts shutting down.
pub async fn shutting_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
