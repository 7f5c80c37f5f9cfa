//! `sluice authz`: Envoy's external authorization service
//! (`envoy.service.auth.v3.Authorization`) over gRPC, with the
//! `grpc.health.v1` health service beside it.
//!
//! A check is mapped and answered by `sluice-authz` (pure); this module
//! holds the I/O: the tonic server, the policy of the proxy's store (so
//! reloads, remote sources and the candidate bundle work as for the
//! listeners), metrics and the decision log.

use crate::candidate;
use crate::config::{AuthzConfig, AuthzHeader};
use crate::decision_log::{HeaderPairs, LoggedRequest};
use crate::report;
use crate::state::Shared;
use crate::store::LoadedBundle;
use sluice_authz::decision_to_response as respond;
use sluice_authz::pb::authorization_server::{Authorization, AuthorizationServer};
use sluice_authz::pb::{CheckRequest, CheckResponse};
use sluice_authz::{header_value, AddHeaders, CheckHeaders, CheckView, MapConfig};
use sluice_runtime::{Decision, RequestError, Scratch};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

/// The service name Envoy's health checks ask about.
const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";

/// The bound `ext_authz` listener.
pub(crate) struct AuthzListener {
    listener: TcpListener,
    config: AuthzConfig,
}

impl AuthzListener {
    /// Binds the listener's address.
    pub(crate) async fn bind(config: AuthzConfig) -> std::io::Result<AuthzListener> {
        let listener = TcpListener::bind(config.listen).await?;
        Ok(AuthzListener { listener, config })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// Serves checks and health until shutdown.
    pub(crate) async fn run(self, shared: Arc<Shared>) {
        let (reporter, health) = tonic_health::server::health_reporter();
        let service = AuthzService::new(shared.clone(), &self.config);
        let authz = AuthorizationServer::new(service)
            .max_decoding_message_size(self.config.max_request_bytes);
        // Before the first connection: tonic-health starts with `""` SERVING.
        set_health(&reporter, &shared).await;
        tokio::spawn(report_health(reporter, shared.clone()));
        let incoming =
            tonic::transport::server::TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let shutdown = shared.shutdown.clone();
        let served = tonic::transport::Server::builder()
            .max_frame_size(Some(1 << 20))
            .add_service(health)
            .add_service(authz)
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the ext_authz listener stopped");
        }
    }
}

/// Keeps the health service's status in step with readiness: SERVING
/// while a bundle is loaded.
async fn report_health(reporter: tonic_health::server::HealthReporter, shared: Arc<Shared>) {
    let mut changed = shared.store.subscribe();
    loop {
        set_health(&reporter, &shared).await;
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

/// Sets both services' status from whether a bundle is loaded.
async fn set_health(reporter: &tonic_health::server::HealthReporter, shared: &Shared) {
    let status = if shared.store.current().is_some() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

/// Answers checks with the proxy's policy.
pub(crate) struct AuthzService {
    shared: Arc<Shared>,
    map: MapConfig,
    add: AddHeaders,
}

thread_local! {
    /// Scratch space per thread, for the bundle generation it was made for.
    static SCRATCH: RefCell<Option<(u64, Scratch)>> = const { RefCell::new(None) };
}

impl AuthzService {
    fn new(shared: Arc<Shared>, config: &AuthzConfig) -> AuthzService {
        let on = |h| config.add_headers.contains(&h);
        AuthzService {
            shared,
            map: MapConfig { port: config.port },
            add: AddHeaders {
                peer_identity: on(AuthzHeader::PeerIdentity),
                route: on(AuthzHeader::Route),
                rule: on(AuthzHeader::Rule),
            },
        }
    }

    /// The answer to one decoded check.
    fn answer(&self, check: &CheckRequest) -> CheckResponse {
        let view = match CheckView::from_check(check, &self.map) {
            Ok(v) => v,
            Err(e) => {
                self.shared.metrics.bad_requests.inc(["check"]);
                self.shared.metrics.authz_checks.inc(["bad-check"]);
                tracing::debug!(error = %e, "a check request that cannot be decided");
                return respond::bad_check(&e);
            }
        };
        let Some(loaded) = self.shared.store.current() else {
            self.shared.metrics.authz_checks.inc(["not-ready"]);
            return respond::not_ready(view.is_grpc());
        };
        let request = view.inbound();
        SCRATCH.with_borrow_mut(|slot| {
            if slot.as_ref().is_none_or(|(g, _)| *g != loaded.generation()) {
                *slot = Some((loaded.generation(), loaded.bundle().create_scratch()));
            }
            let Some((_, scratch)) = slot.as_mut() else {
                unreachable!("filled above")
            };
            let d = loaded
                .bundle()
                .decide_inbound_peer(&request, &view.peer(), scratch);
            self.record(&loaded, &view, &d);
            respond::decided(&d, &view, &self.add)
        })
    }

    /// Counts and logs a decision, as the inbound listeners do, and
    /// compares it with the candidate bundle's.
    fn record(
        &self,
        loaded: &LoadedBundle,
        view: &CheckView<'_>,
        d: &Result<Decision<'_>, RequestError<'_>>,
    ) {
        let metrics = &self.shared.metrics;
        let d = match d {
            Ok(d) => d,
            Err(e) => {
                metrics.bad_requests.inc(["check"]);
                metrics.authz_checks.inc(["bad-check"]);
                tracing::debug!(error = %e, "a check the policy cannot decide");
                return;
            }
        };
        metrics
            .authz_checks
            .inc([if d.allow { "ok" } else { "denied" }]);
        let http = view.http();
        let headers = http.map(|(_, _, h)| LoggedCheckHeaders(h));
        let logged = LoggedRequest {
            port: view.port(),
            http: http.and_then(|(m, p, _)| {
                let h: &(dyn HeaderPairs + Sync) = headers.as_ref()?;
                Some((m, p.as_bytes(), h))
            }),
            ip: view.peer().ip,
            identity: view.peer().identity,
        };
        report::inbound_decision(&self.shared, loaded, &logged, d, |c, f| {
            candidate::decide_inbound_peer(c, &view.peer(), &view.inbound(), f)
        });
    }
}

/// A check's headers as the decision log writes them, as the policy sees
/// them: pseudo-headers (`:path`, …) left out, `:authority` as `host` when
/// no `host` was sent, names in lowercase.
struct LoggedCheckHeaders<'a>(CheckHeaders<'a>);

impl<'a> HeaderPairs for LoggedCheckHeaders<'a> {
    fn for_each_pair(&self, f: &mut dyn FnMut(&str, &[u8])) {
        let mut host = false;
        let mut authority: Option<&[u8]> = None;
        let mut each = |name: &'_ str, value: &'a [u8]| {
            if name.eq_ignore_ascii_case(":authority") {
                authority.get_or_insert(value);
            } else if !name.starts_with(':') {
                host |= name.eq_ignore_ascii_case("host");
                if name.bytes().any(|b| b.is_ascii_uppercase()) {
                    f(&name.to_ascii_lowercase(), value);
                } else {
                    f(name, value);
                }
            }
        };
        match self.0 {
            CheckHeaders::List(list) => {
                for h in list {
                    each(&h.key, header_value(h));
                }
            }
            CheckHeaders::Map(map) => {
                for (name, value) in map {
                    each(name, value.as_bytes());
                }
            }
        }
        if let (false, Some(authority)) = (host, authority) {
            f("host", authority);
        }
    }
}

#[tonic::async_trait]
impl Authorization for AuthzService {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let start = Instant::now();
        let response = self.answer(request.get_ref());
        self.shared
            .metrics
            .authz_check_latency
            .observe(start.elapsed());
        Ok(tonic::Response::new(response))
    }
}
