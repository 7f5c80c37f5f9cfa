//! The run-time state of declared services: endpoint sets (breakers,
//! latency, in-flight counts) and retry budgets, kept by name across bundle
//! reloads, found by the ids of a decision, and endpoint names resolved
//! again periodically.

use super::balance::{BackendEntry, EndpointSet};
use super::breaker::BreakerConfig;
use super::resolve::{self, Resolve};
use super::retry::RetryBudget;
use crate::store::LoadedBundle;
use sluice_runtime::bundle::Endpoint;
use sluice_runtime::{Authority, BackendId, ServiceId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::OnceCell;

/// One backend of a service, as the bundle serving now declares it.
pub(crate) struct BackendState {
    /// The backend's name.
    pub name: Arc<str>,
    /// The SPIFFE ID its endpoints must present (mTLS origination).
    pub identity: Option<Arc<str>>,
    /// Endpoints and the failover index, for the balancer.
    pub entry: BackendEntry,
    addrs: Vec<SocketAddr>,
    names: Vec<(String, u16)>,
}

/// One declared service.
pub(crate) struct ServiceState {
    /// Backends in declaration order (failover indexes this list).
    pub backends: Vec<BackendState>,
    /// Breaker settings of its endpoints.
    pub breaker: BreakerConfig,
    /// The service's retry budget.
    pub budget: Arc<RetryBudget>,
}

impl ServiceState {
    /// The backend `id` (from the decision's route).
    pub(crate) fn backend(&self, id: BackendId) -> Option<&BackendState> {
        self.backends.get(id.index())
    }

    /// The balancer's view of the backends.
    pub(crate) fn entries(&self) -> Vec<BackendEntry> {
        self.backends.iter().map(|b| b.entry.clone()).collect()
    }
}

/// The services of one bundle generation.
pub(crate) struct ServiceTable {
    generation: u64,
    /// Index: the service's [`ServiceId`].
    services: Vec<Arc<ServiceState>>,
    resolved: OnceCell<()>,
    has_names: bool,
}

impl ServiceTable {
    /// The service `id` (from a decision of this table's bundle).
    pub(crate) fn get(&self, id: ServiceId) -> Option<&Arc<ServiceState>> {
        self.services.get(id.index())
    }

    fn has_names(&self) -> bool {
        self.has_names
    }
}

type SetKey = (String, String, Option<u32>);

/// All services' state, and the resolver for endpoint names.
pub(crate) struct Services {
    current: RwLock<Option<Arc<ServiceTable>>>,
    sets: Mutex<HashMap<SetKey, Arc<EndpointSet>>>,
    budgets: Mutex<HashMap<(String, u8), Arc<RetryBudget>>>,
    resolver: Arc<dyn Resolve>,
}

impl Services {
    /// No services yet; names are resolved by `resolver`.
    pub(crate) fn new(resolver: Arc<dyn Resolve>) -> Services {
        Services {
            current: RwLock::new(None),
            sets: Mutex::new(HashMap::new()),
            budgets: Mutex::new(HashMap::new()),
            resolver,
        }
    }

    /// The resolver.
    pub(crate) fn resolver(&self) -> &Arc<dyn Resolve> {
        &self.resolver
    }

    /// The table for `loaded`, built on first use of a generation, with
    /// endpoint names resolved at least once.
    pub(crate) async fn table(&self, loaded: &LoadedBundle) -> Arc<ServiceTable> {
        let table = self.table_now(loaded);
        if table.has_names() {
            table
                .resolved
                .get_or_init(|| async { self.refresh(&table).await })
                .await;
        }
        table
    }

    fn table_now(&self, loaded: &LoadedBundle) -> Arc<ServiceTable> {
        if let Some(t) = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|t| t.generation == loaded.generation())
        {
            return t.clone();
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = current
            .as_ref()
            .filter(|t| t.generation == loaded.generation())
        {
            return t.clone();
        }
        let table = Arc::new(self.build(loaded));
        *current = Some(table.clone());
        table
    }

    fn build(&self, loaded: &LoadedBundle) -> ServiceTable {
        let bundle = loaded.bundle();
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept_sets = HashMap::new();
        let mut kept_budgets = HashMap::new();
        let mut services = Vec::new();
        for (_, settings) in bundle.services() {
            let name = settings.name;
            let budget_percent = settings.retry.map_or(20, |r| r.budget_percent);
            let budget_key = (name.to_owned(), budget_percent);
            let budget = budgets
                .remove(&budget_key)
                .unwrap_or_else(|| Arc::new(RetryBudget::new(budget_percent)));
            kept_budgets.insert(budget_key, budget.clone());
            let mut backends = Vec::new();
            for b in settings.backends {
                let key = (name.to_owned(), b.name.to_owned(), b.max_in_flight);
                let set = sets
                    .remove(&key)
                    .unwrap_or_else(|| Arc::new(EndpointSet::new(b.max_in_flight)));
                kept_sets.insert(key, set.clone());
                let mut addrs = Vec::new();
                let mut names = Vec::new();
                for e in &b.endpoints {
                    match e {
                        Endpoint::Addr(a) => addrs.push(*a),
                        Endpoint::Name(n) => {
                            if let Some(split) = Authority::split(n) {
                                names.push((split.host.to_owned(), split.port_or_80()));
                            }
                        }
                    }
                }
                if names.is_empty() {
                    set.set_addrs(&addrs);
                }
                backends.push(BackendState {
                    name: b.name.into(),
                    identity: b.identity.map(Into::into),
                    entry: BackendEntry {
                        endpoints: set,
                        failover: b.failover.map(|i| i as usize),
                    },
                    addrs,
                    names,
                });
            }
            services.push(Arc::new(ServiceState {
                backends,
                breaker: BreakerConfig::from_bundle(settings.breaker),
                budget,
            }));
        }
        *sets = kept_sets;
        *budgets = kept_budgets;
        let has_names = services
            .iter()
            .any(|s| s.backends.iter().any(|b| !b.names.is_empty()));
        ServiceTable {
            generation: loaded.generation(),
            services,
            resolved: OnceCell::new(),
            has_names,
        }
    }

    /// Resolves every endpoint name of `table` and updates the endpoint
    /// sets. A name that fails to resolve keeps its previous addresses.
    async fn refresh(&self, table: &ServiceTable) {
        for service in &table.services {
            for b in &service.backends {
                if b.names.is_empty() {
                    continue;
                }
                let mut addrs = b.addrs.clone();
                let mut failed = false;
                for (host, port) in &b.names {
                    match resolve::addresses(&*self.resolver, host, *port).await {
                        Ok(found) => addrs.extend(found),
                        Err(e) => {
                            failed = true;
                            tracing::warn!(backend = %b.name, host, error = %e, "endpoint name does not resolve");
                        }
                    }
                }
                if failed {
                    // Keep what a failing name resolved to before.
                    addrs.extend(b.entry.endpoints.addrs());
                }
                addrs.sort();
                addrs.dedup();
                if !failed || !addrs.is_empty() {
                    b.entry.endpoints.set_addrs(&addrs);
                }
            }
        }
    }

    /// Resolves endpoint names again every `every`, for the table serving now.
    pub(crate) async fn refresh_every(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let table = self
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(table) = table.filter(|t| t.has_names()) {
                self.refresh(&table).await;
            }
        }
    }
}
