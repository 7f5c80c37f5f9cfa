//! Counters, a latency histogram and gauges, kept in a `prometheus-client`
//! registry and rendered in the Prometheus text format (version 0.0.4).
//!
//! Counting takes no lock shared between threads: each thread keeps the
//! handles (`Counter`s, atomics behind an `Arc`) of the label sets it has
//! counted, so only the first count of a label set on a thread reaches the
//! family's lock, and only that one allocates.

use hashbrown::{DefaultHashBuilder, HashTable};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The label set of an `N`-label family: names and values.
type LabelSet<const N: usize> = [(&'static str, String); N];

/// Counters keyed by `N` label values: a `prometheus-client` family.
pub(crate) struct LabelledCounters<const N: usize> {
    /// Tells this family's handles apart in the per-thread cache.
    id: usize,
    names: [&'static str; N],
    family: Family<LabelSet<N>, Counter>,
}

impl<const N: usize> LabelledCounters<N> {
    /// Counters with these label names.
    pub(crate) fn new(names: [&'static str; N]) -> Self {
        LabelledCounters {
            id: family_id(),
            names,
            family: Family::default(),
        }
    }

    /// Adds one to the counter of `values`.
    pub(crate) fn inc(&self, values: [&str; N]) {
        HANDLES.with_borrow_mut(|handles| {
            handles
                .counter(self.id, &values, || self.resolve(&values))
                .inc()
        });
    }

    /// The counter of `values`, from the family (taking its lock).
    fn resolve(&self, values: &[&str; N]) -> Counter {
        let labels: LabelSet<N> = std::array::from_fn(|i| (self.names[i], values[i].to_owned()));
        self.family.get_or_create_owned(&labels)
    }
}

/// A new id for a family in the per-thread handle cache.
fn family_id() -> usize {
    static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
    NEXT_ID.fetch_add(1, Relaxed)
}

thread_local! {
    /// This thread's counter handles, by family and label values.
    static HANDLES: RefCell<HandleCache> = RefCell::new(HandleCache::default());
}

/// Counter handles already resolved on one thread.
#[derive(Default)]
struct HandleCache {
    hasher: DefaultHashBuilder,
    handles: HashTable<Handle>,
}

/// One family's counter for one set of label values.
struct Handle {
    family: usize,
    values: Box<[Box<str>]>,
    hash: u64,
    counter: Counter,
}

impl HandleCache {
    /// The counter of `values` in the family `family`, resolved (by
    /// `resolve`) once per thread.
    fn counter<const N: usize>(
        &mut self,
        family: usize,
        values: &[&str; N],
        resolve: impl FnOnce() -> Counter,
    ) -> &Counter {
        let hash = self.hasher.hash_one((family, values));
        let found = self.handles.entry(
            hash,
            |h| h.family == family && h.values.iter().map(|v| &**v).eq(values.iter().copied()),
            |h| h.hash,
        );
        &found
            .or_insert_with(|| Handle {
                family,
                values: values.iter().map(|v| Box::from(*v)).collect(),
                hash,
                counter: resolve(),
            })
            .into_mut()
            .counter
    }
}

/// `sluice_candidate_disagreements_total{server, route, live, candidate}`,
/// counted from the parts of each decision's label (see
/// [`crate::candidate::label_parts`]), so that a label set seen before on a
/// thread is counted without building its labels.
pub(crate) struct DisagreementCounters {
    id: usize,
    family: Family<LabelSet<4>, Counter>,
}

impl Default for DisagreementCounters {
    fn default() -> Self {
        DisagreementCounters {
            id: family_id(),
            family: Family::default(),
        }
    }
}

impl DisagreementCounters {
    /// Adds one to the counter of a disagreement on `server` and `route`
    /// between decisions labelled by the parts `live` and `candidate`.
    pub(crate) fn inc(&self, server: &str, route: &str, live: [&str; 3], candidate: [&str; 3]) {
        let values = [
            server,
            route,
            live[0],
            live[1],
            live[2],
            candidate[0],
            candidate[1],
            candidate[2],
        ];
        HANDLES.with_borrow_mut(|handles| {
            handles
                .counter(self.id, &values, || {
                    let labels: LabelSet<4> = [
                        ("server", server.to_owned()),
                        ("route", route.to_owned()),
                        ("live", crate::candidate::label(live)),
                        ("candidate", crate::candidate::label(candidate)),
                    ];
                    self.family.get_or_create_owned(&labels)
                })
                .inc()
        });
    }
}

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram with fixed buckets, counted with atomics
/// (`prometheus-client`'s histogram takes a lock for each observation).
#[derive(Clone, Debug, Default)]
pub(crate) struct LatencyHistogram {
    counts: Arc<HistogramCounts>,
}

/// Observations per bucket (the last one is past every bound) and their sum.
#[derive(Debug)]
struct HistogramCounts {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for HistogramCounts {
    fn default() -> Self {
        HistogramCounts {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    /// Records one observation.
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts.buckets[i].fetch_add(1, Relaxed);
        self.counts
            .sum_nanos
            .fetch_add(d.as_nanos() as u64, Relaxed);
    }
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&self.counts.buckets)
            .map(|(bound, n)| (*bound, n.load(Relaxed)))
            .collect();
        let count = self.counts.buckets.iter().map(|n| n.load(Relaxed)).sum();
        let sum = self.counts.sum_nanos.load(Relaxed) as f64 / 1e9;
        encoder
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The labels of `sluice_policy_info`: where the bundle in service came
/// from (empty `digest` and `signer` for a local file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PolicyInfo {
    /// The configured source: a path or a reference.
    pub source: String,
    /// The artifact's manifest digest.
    pub digest: String,
    /// The bundle's content hash.
    pub hash: String,
    /// The bundle format version.
    pub format: u32,
    /// The id of the key whose signature verified.
    pub signer: String,
}

/// What the proxy serves now: gauges computed when scraped.
#[derive(Debug)]
struct Serving {
    bundle: Mutex<Option<(String, SystemTime)>>,
    policy: Mutex<Option<PolicyInfo>>,
    /// Unix seconds of the last verified poll answer; `i64::MIN` for none.
    last_fetch_success: AtomicI64,
    svid_not_after: AtomicI64,
}

impl Collector for Serving {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let bundle = self
            .bundle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some((hash, at)) = bundle {
            let at = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            encoder
                .encode_descriptor(
                    "sluice_bundle_info",
                    "The bundle serving now.",
                    None,
                    MetricType::Gauge,
                )?
                .encode_family(&[("hash", hash.as_str())])?
                .encode_gauge(&1i64)?;
            encoder
                .encode_descriptor(
                    "sluice_bundle_loaded_timestamp_seconds",
                    "When it was loaded.",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&at)?;
        }
        let policy = self
            .policy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(p) = policy {
            let format = p.format.to_string();
            encoder
                .encode_descriptor(
                    "sluice_policy_info",
                    "The policy in service: its source, artifact digest, bundle hash, format and signer.",
                    None,
                    MetricType::Gauge,
                )?
                .encode_family(&[
                    ("source", p.source.as_str()),
                    ("digest", p.digest.as_str()),
                    ("hash", p.hash.as_str()),
                    ("format", format.as_str()),
                    ("signer", p.signer.as_str()),
                ])?
                .encode_gauge(&1i64)?;
        }
        let success = self.last_fetch_success.load(Relaxed);
        if success != i64::MIN {
            encoder
                .encode_descriptor(
                    "sluice_policy_last_success_timestamp_seconds",
                    "When a poll of the remote policy source last got a verified answer.",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&success)?;
        }
        let not_after = self.svid_not_after.load(Relaxed);
        if not_after != i64::MIN {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            encoder
                .encode_descriptor(
                    "sluice_svid_expiry_seconds",
                    "Seconds until the proxy's SVID expires.",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&(not_after - now))?;
        }
        Ok(())
    }
}

/// Everything the proxy counts.
pub(crate) struct Metrics {
    /// HTTP decisions by server, route, rule and outcome (`allow`, `deny`,
    /// `would-deny`, `no-route`, `bad-path`).
    pub requests: LabelledCounters<4>,
    /// TCP connection decisions by server, rule and outcome (`allow`, `deny`, `would-deny`).
    pub connections: LabelledCounters<3>,
    /// Open TCP connections closed because a new bundle denies them, by server.
    pub connections_revoked: LabelledCounters<1>,
    /// Connections closed before any decision, by reason.
    pub connections_refused: LabelledCounters<1>,
    /// Requests that failed on the way to the application, by reason.
    pub upstream_errors: LabelledCounters<1>,
    /// Inbound requests refused as malformed, by reason (`framing`:
    /// ambiguous framing; `body`: a malformed or incomplete body).
    pub bad_requests: LabelledCounters<1>,
    /// Policy reloads by result (`ok`, `error`).
    pub bundle_reloads: LabelledCounters<1>,
    /// Identity (SVID or trust bundle) reloads by result.
    pub identity_reloads: LabelledCounters<1>,
    /// Polls of a remote policy source by result (`updated`, `unchanged`,
    /// or a `FetchErrorKind` label).
    pub policy_fetches: LabelledCounters<1>,
    /// Time from a request's arrival to its response head.
    pub request_latency: LatencyHistogram,
    /// Outbound requests to declared services by service, route, backend
    /// and status class (`2xx` … `5xx`, or `error` when the proxy answered).
    pub outbound_requests: LabelledCounters<4>,
    /// Outbound retries by service.
    pub outbound_retries: LabelledCounters<1>,
    /// Retries refused because the service's retry budget was spent.
    pub outbound_budget_exhausted: LabelledCounters<1>,
    /// Circuit breaker transitions by service, backend, endpoint and new state.
    pub breaker_transitions: LabelledCounters<4>,
    /// Requests sent down a failover chain, by service, primary and backend used.
    pub failovers: LabelledCounters<3>,
    /// Egress decisions by kind (`http`, `connect`, `tcp`), rule and decision.
    pub egress: LabelledCounters<3>,
    /// Outbound requests the proxy answered itself, by reason.
    pub outbound_errors: LabelledCounters<1>,
    /// Decision log lines dropped because the log's writer was behind.
    pub decision_log_dropped: Counter,
    /// Requests and connections also decided by the candidate bundle.
    pub candidate_decisions: Counter,
    /// Requests and connections the candidate decided differently.
    pub candidate_disagreements: DisagreementCounters,
    /// Candidate bundle loads by result (`ok`, `error`).
    pub candidate_reloads: LabelledCounters<1>,
    /// `ext_authz` checks answered, by result (`ok`, `denied`,
    /// `bad-check`, `not-ready`).
    pub authz_checks: LabelledCounters<1>,
    /// Time `sluice authz` spends on a decoded check, up to its answer.
    pub authz_check_latency: LatencyHistogram,
    serving: Arc<Serving>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = LabelledCounters::new(["server", "route", "rule", "decision"]);
        let connections = LabelledCounters::new(["server", "rule", "decision"]);
        let connections_revoked = LabelledCounters::new(["server"]);
        let connections_refused = LabelledCounters::new(["reason"]);
        let upstream_errors = LabelledCounters::new(["reason"]);
        let bad_requests = LabelledCounters::new(["reason"]);
        let bundle_reloads = LabelledCounters::new(["result"]);
        let identity_reloads = LabelledCounters::new(["result"]);
        let policy_fetches = LabelledCounters::new(["result"]);
        let request_latency = LatencyHistogram::default();
        let outbound_requests = LabelledCounters::new(["service", "route", "backend", "status"]);
        let outbound_retries = LabelledCounters::new(["service"]);
        let outbound_budget_exhausted = LabelledCounters::new(["service"]);
        let breaker_transitions =
            LabelledCounters::new(["service", "backend", "endpoint", "state"]);
        let failovers = LabelledCounters::new(["service", "primary", "backend"]);
        let egress = LabelledCounters::new(["kind", "rule", "decision"]);
        let outbound_errors = LabelledCounters::new(["reason"]);
        let authz_checks = LabelledCounters::new(["result"]);
        let authz_check_latency = LatencyHistogram::default();
        let decision_log_dropped = Counter::default();
        let candidate_decisions = Counter::default();
        let candidate_disagreements = DisagreementCounters::default();
        let candidate_reloads = LabelledCounters::new(["result"]);
        let serving = Arc::new(Serving {
            bundle: Mutex::new(None),
            policy: Mutex::new(None),
            last_fetch_success: AtomicI64::new(i64::MIN),
            svid_not_after: AtomicI64::new(i64::MIN),
        });
        // Counter names are registered without `_total`: the encoder adds it.
        registry.register(
            "sluice_inbound_requests",
            "Inbound HTTP decisions by server, route, rule and outcome.",
            requests.family.clone(),
        );
        registry.register(
            "sluice_inbound_connections",
            "Inbound TCP connection decisions by server, rule and outcome.",
            connections.family.clone(),
        );
        registry.register(
            "sluice_inbound_connections_revoked",
            "Open TCP connections closed because a new bundle denies them.",
            connections_revoked.family.clone(),
        );
        registry.register(
            "sluice_connections_refused",
            "Connections closed before a decision (not ready, limit, handshake, timeout).",
            connections_refused.family.clone(),
        );
        registry.register(
            "sluice_upstream_errors",
            "Allowed requests that the application could not be reached for.",
            upstream_errors.family.clone(),
        );
        registry.register(
            "sluice_inbound_bad_requests",
            "Inbound requests refused as malformed (ambiguous framing, malformed body).",
            bad_requests.family.clone(),
        );
        registry.register(
            "sluice_bundle_reloads",
            "Policy bundle reloads by result.",
            bundle_reloads.family.clone(),
        );
        registry.register(
            "sluice_identity_reloads",
            "SVID and trust bundle reloads by result.",
            identity_reloads.family.clone(),
        );
        registry.register(
            "sluice_policy_fetch",
            "Polls of a remote policy source by result.",
            policy_fetches.family.clone(),
        );
        registry.register(
            "sluice_request_duration_seconds",
            "Time from a request's arrival to its response head.",
            request_latency.clone(),
        );
        registry.register(
            "sluice_outbound_requests",
            "Outbound requests to declared services by service, route, backend and status class.",
            outbound_requests.family.clone(),
        );
        registry.register(
            "sluice_outbound_retries",
            "Outbound retries by service.",
            outbound_retries.family.clone(),
        );
        registry.register(
            "sluice_outbound_retry_budget_exhausted",
            "Retries not sent because the service's retry budget was spent.",
            outbound_budget_exhausted.family.clone(),
        );
        registry.register(
            "sluice_outbound_breaker_transitions",
            "Circuit breaker transitions by service, backend, endpoint and new state.",
            breaker_transitions.family.clone(),
        );
        registry.register(
            "sluice_outbound_failovers",
            "Requests sent to a failover backend, by service, primary backend and backend used.",
            failovers.family.clone(),
        );
        registry.register(
            "sluice_egress_decisions",
            "Egress decisions by kind (http, connect, tcp), rule and decision.",
            egress.family.clone(),
        );
        registry.register(
            "sluice_outbound_errors",
            "Outbound requests the proxy answered itself, by reason.",
            outbound_errors.family.clone(),
        );
        registry.register(
            "sluice_decision_log_dropped",
            "Decision log lines dropped because the log's writer was behind.",
            decision_log_dropped.clone(),
        );
        registry.register(
            "sluice_candidate_decisions",
            "Requests and connections also decided by the candidate bundle (not enforced).",
            candidate_decisions.clone(),
        );
        registry.register(
            "sluice_candidate_disagreements",
            "Requests and connections the candidate bundle decided differently from the live one.",
            candidate_disagreements.family.clone(),
        );
        registry.register(
            "sluice_candidate_reloads",
            "Candidate bundle loads by result.",
            candidate_reloads.family.clone(),
        );
        registry.register(
            "sluice_authz_checks",
            "Envoy ext_authz checks answered by `sluice authz`, by result",
            authz_checks.family.clone(),
        );
        registry.register(
            "sluice_authz_check_duration_seconds",
            "Time from a decoded ext_authz check to its answer",
            authz_check_latency.clone(),
        );
        registry.register_collector(Box::new(serving.clone()));
        Metrics {
            requests,
            connections,
            connections_revoked,
            connections_refused,
            upstream_errors,
            bad_requests,
            bundle_reloads,
            identity_reloads,
            policy_fetches,
            request_latency,
            outbound_requests,
            outbound_retries,
            outbound_budget_exhausted,
            breaker_transitions,
            failovers,
            egress,
            outbound_errors,
            decision_log_dropped,
            candidate_decisions,
            candidate_disagreements,
            candidate_reloads,
            authz_checks,
            authz_check_latency,
            serving,
            registry,
        }
    }
}

impl Metrics {
    /// Records the bundle now serving.
    pub(crate) fn set_bundle(&self, hash: &str, loaded_at: SystemTime) {
        *self
            .serving
            .bundle
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((hash.to_owned(), loaded_at));
    }

    /// Records where the policy in service came from (`sluice_policy_info`).
    pub(crate) fn set_policy(&self, info: PolicyInfo) {
        *self
            .serving
            .policy
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(info);
    }

    /// Records a verified poll answer at `at` (`updated` or `unchanged`).
    pub(crate) fn set_policy_fetch_success(&self, at: SystemTime) {
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.serving.last_fetch_success.store(secs, Relaxed);
    }

    /// Records the current SVID's expiry.
    pub(crate) fn set_svid_not_after(&self, not_after: Option<SystemTime>) {
        let secs = not_after.map_or(i64::MIN, |t| {
            match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            }
        });
        self.serving.svid_not_after.store(secs, Relaxed);
    }

    /// All metrics in the Prometheus text format (version 0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // writing into a `String` cannot fail
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_the_text_format_escaped() {
        let m = Metrics::default();
        m.requests.inc(["web", "r\"1", "", "allow"]);
        m.requests.inc(["web", "r\"1", "", "allow"]);
        m.requests.inc(["api", "x", "y", "deny"]);
        m.request_latency.observe(Duration::from_micros(300));
        m.set_bundle("00ff", SystemTime::now());
        let text = m.render();
        assert!(text.contains(
            "sluice_inbound_requests_total{server=\"web\",route=\"r\\\"1\",rule=\"\",decision=\"allow\"} 2\n"
        ), "{text}");
        assert!(text.contains(
            "sluice_inbound_requests_total{server=\"api\",route=\"x\",rule=\"y\",decision=\"deny\"} 1\n"
        ), "{text}");
        assert!(text.contains("# TYPE sluice_inbound_requests_total counter\n"));
        assert!(text.contains("sluice_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("sluice_request_duration_seconds_bucket{le=\"0.00025\"} 0\n"));
        assert!(text.contains("sluice_request_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("sluice_request_duration_seconds_count 1\n"));
        assert!(text.contains("sluice_bundle_info{hash=\"00ff\"} 1\n"));
        assert!(text.contains("sluice_decision_log_dropped_total 0\n"));
        assert!(!text.contains("sluice_policy_info"), "{text}");
        m.set_policy(PolicyInfo {
            source: "oci://r/p:v1".into(),
            digest: "sha256:ab".into(),
            hash: "00ff".into(),
            format: 2,
            signer: "k1".into(),
        });
        m.set_policy(PolicyInfo {
            source: "oci://r/p:v1".into(),
            digest: "sha256:cd".into(),
            hash: "00fe".into(),
            format: 2,
            signer: "k1".into(),
        });
        m.policy_fetches.inc(["unchanged"]);
        m.set_policy_fetch_success(SystemTime::UNIX_EPOCH + Duration::from_secs(1000));
        let text = m.render();
        assert!(text.contains(
            "sluice_policy_info{source=\"oci://r/p:v1\",digest=\"sha256:cd\",hash=\"00fe\",format=\"2\",signer=\"k1\"} 1\n"
        ), "{text}");
        assert!(
            !text.contains("sha256:ab"),
            "the previous label set stays: {text}"
        );
        assert!(
            text.contains("sluice_policy_fetch_total{result=\"unchanged\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("sluice_policy_last_success_timestamp_seconds 1000\n"),
            "{text}"
        );
        assert!(
            !text.contains("_total_total") && !text.contains("# EOF"),
            "{text}"
        );
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let m = Arc::new(Metrics::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        m.egress
                            .inc(["http", if i % 2 == 0 { "a" } else { "b" }, "allow"]);
                        m.outbound_errors.inc(["connect"]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = m.render();
        for line in [
            "sluice_egress_decisions_total{kind=\"http\",rule=\"a\",decision=\"allow\"} 2000\n",
            "sluice_egress_decisions_total{kind=\"http\",rule=\"b\",decision=\"allow\"} 2000\n",
            "sluice_outbound_errors_total{reason=\"connect\"} 4000\n",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
