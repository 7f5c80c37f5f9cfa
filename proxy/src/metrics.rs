//! Counters and a latency histogram, rendered in the Prometheus text format.
//!
//! Labelled counters are found by a hash of their label values, so counting
//! an already seen combination allocates nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Counters whose label values share one hash.
type Bucket<const N: usize> = Vec<([Box<str>; N], u64)>;

/// Counters keyed by `N` label values.
pub struct LabelledCounters<const N: usize> {
    names: [&'static str; N],
    entries: Mutex<HashMap<u64, Bucket<N>>>,
}

impl<const N: usize> LabelledCounters<N> {
    /// Counters with these label names.
    pub fn new(names: [&'static str; N]) -> Self {
        LabelledCounters {
            names,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Adds one to the counter of `values`.
    pub fn inc(&self, values: [&str; N]) {
        let mut h = std::hash::DefaultHasher::new();
        values.hash(&mut h);
        let key = h.finish();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = entries.entry(key).or_default();
        match bucket
            .iter_mut()
            .find(|(v, _)| v.iter().zip(values).all(|(a, b)| &**a == b))
        {
            Some((_, n)) => *n += 1,
            None => bucket.push((values.map(Box::from), 1)),
        }
    }

    /// The count of `values` (0 when never counted).
    pub fn get(&self, values: [&str; N]) -> u64 {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .values()
            .flatten()
            .find(|(v, _)| v.iter().zip(values).all(|(a, b)| &**a == b))
            .map_or(0, |(_, n)| *n)
    }

    /// The sum over all label values.
    pub fn total(&self) -> u64 {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.values().flatten().map(|(_, n)| n).sum()
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = entries.values().flatten().collect();
        rows.sort();
        for (values, n) in rows {
            out.push_str(name);
            out.push('{');
            for (i, (label, value)) in self.names.iter().zip(values.iter()).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{label}=\"{}\"", escape(value));
            }
            let _ = writeln!(out, "}} {n}");
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram with fixed buckets.
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(d.as_nanos() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// Everything the proxy counts.
pub struct Metrics {
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
    /// Time from a request's arrival to its response head.
    pub request_latency: Histogram,
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
    bundle_hash: Mutex<Option<(String, SystemTime)>>,
    svid_not_after: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: LabelledCounters::new(["server", "route", "rule", "decision"]),
            connections: LabelledCounters::new(["server", "rule", "decision"]),
            connections_revoked: LabelledCounters::new(["server"]),
            connections_refused: LabelledCounters::new(["reason"]),
            upstream_errors: LabelledCounters::new(["reason"]),
            bad_requests: LabelledCounters::new(["reason"]),
            bundle_reloads: LabelledCounters::new(["result"]),
            identity_reloads: LabelledCounters::new(["result"]),
            request_latency: Histogram::default(),
            outbound_requests: LabelledCounters::new(["service", "route", "backend", "status"]),
            outbound_retries: LabelledCounters::new(["service"]),
            outbound_budget_exhausted: LabelledCounters::new(["service"]),
            breaker_transitions: LabelledCounters::new(["service", "backend", "endpoint", "state"]),
            failovers: LabelledCounters::new(["service", "primary", "backend"]),
            egress: LabelledCounters::new(["kind", "rule", "decision"]),
            outbound_errors: LabelledCounters::new(["reason"]),
            bundle_hash: Mutex::new(None),
            svid_not_after: AtomicI64::new(i64::MIN),
        }
    }
}

impl Metrics {
    /// Records the bundle now serving.
    pub fn set_bundle(&self, hash: &str, loaded_at: SystemTime) {
        *self.bundle_hash.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((hash.to_owned(), loaded_at));
    }

    /// Records the current SVID's expiry.
    pub fn set_svid_not_after(&self, not_after: Option<SystemTime>) {
        let secs = not_after.map_or(i64::MIN, |t| {
            match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            }
        });
        self.svid_not_after.store(secs, Relaxed);
    }

    /// All metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.requests.render(
            &mut out,
            "sluice_inbound_requests_total",
            "Inbound HTTP decisions by server, route, rule and outcome.",
        );
        self.connections.render(
            &mut out,
            "sluice_inbound_connections_total",
            "Inbound TCP connection decisions by server, rule and outcome.",
        );
        self.connections_revoked.render(
            &mut out,
            "sluice_inbound_connections_revoked_total",
            "Open TCP connections closed because a new bundle denies them.",
        );
        self.connections_refused.render(
            &mut out,
            "sluice_connections_refused_total",
            "Connections closed before a decision (not ready, limit, handshake, timeout).",
        );
        self.upstream_errors.render(
            &mut out,
            "sluice_upstream_errors_total",
            "Allowed requests that the application could not be reached for.",
        );
        self.bad_requests.render(
            &mut out,
            "sluice_inbound_bad_requests_total",
            "Inbound requests refused as malformed (ambiguous framing, malformed body).",
        );
        self.bundle_reloads.render(
            &mut out,
            "sluice_bundle_reloads_total",
            "Policy bundle reloads by result.",
        );
        self.identity_reloads.render(
            &mut out,
            "sluice_identity_reloads_total",
            "SVID and trust bundle reloads by result.",
        );
        self.request_latency.render(
            &mut out,
            "sluice_request_duration_seconds",
            "Time from a request's arrival to its response head.",
        );
        self.outbound_requests.render(
            &mut out,
            "sluice_outbound_requests_total",
            "Outbound requests to declared services by service, route, backend and status class.",
        );
        self.outbound_retries.render(
            &mut out,
            "sluice_outbound_retries_total",
            "Outbound retries by service.",
        );
        self.outbound_budget_exhausted.render(
            &mut out,
            "sluice_outbound_retry_budget_exhausted_total",
            "Retries not sent because the service's retry budget was spent.",
        );
        self.breaker_transitions.render(
            &mut out,
            "sluice_outbound_breaker_transitions_total",
            "Circuit breaker transitions by service, backend, endpoint and new state.",
        );
        self.failovers.render(
            &mut out,
            "sluice_outbound_failovers_total",
            "Requests sent to a failover backend, by service, primary backend and backend used.",
        );
        self.egress.render(
            &mut out,
            "sluice_egress_decisions_total",
            "Egress decisions by kind (http, connect, tcp), rule and decision.",
        );
        self.outbound_errors.render(
            &mut out,
            "sluice_outbound_errors_total",
            "Outbound requests the proxy answered itself, by reason.",
        );
        if let Some((hash, at)) = &*self.bundle_hash.lock().unwrap_or_else(|e| e.into_inner()) {
            let at = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let _ = writeln!(
                out,
                "# HELP sluice_bundle_info The bundle serving now.\n# TYPE sluice_bundle_info gauge\nsluice_bundle_info{{hash=\"{hash}\"}} 1\n# HELP sluice_bundle_loaded_timestamp_seconds When it was loaded.\n# TYPE sluice_bundle_loaded_timestamp_seconds gauge\nsluice_bundle_loaded_timestamp_seconds {at}"
            );
        }
        let not_after = self.svid_not_after.load(Relaxed);
        if not_after != i64::MIN {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let _ = writeln!(
                out,
                "# HELP sluice_svid_expiry_seconds Seconds until the proxy's SVID expires.\n# TYPE sluice_svid_expiry_seconds gauge\nsluice_svid_expiry_seconds {}",
                not_after - now
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_sorted_and_escaped() {
        let m = Metrics::default();
        m.requests.inc(["web", "r\"1", "", "allow"]);
        m.requests.inc(["web", "r\"1", "", "allow"]);
        m.requests.inc(["api", "x", "y", "deny"]);
        m.request_latency.observe(Duration::from_micros(300));
        m.set_bundle("00ff", SystemTime::now());
        let text = m.render();
        assert!(text.contains(
            "sluice_inbound_requests_total{server=\"web\",route=\"r\\\"1\",rule=\"\",decision=\"allow\"} 2"
        ));
        let api = text.find("server=\"api\"").unwrap();
        let web = text.find("server=\"web\"").unwrap();
        assert!(api < web);
        assert!(text.contains("sluice_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("sluice_request_duration_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("sluice_bundle_info{hash=\"00ff\"} 1"));
        assert_eq!(m.requests.get(["web", "r\"1", "", "allow"]), 2);
        assert_eq!(m.requests.total(), 3);
    }
}
