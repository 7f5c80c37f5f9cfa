//! The candidate bundle (`[policy] candidate`): loaded, verified and
//! reloaded like the live policy but never enforced. Each request or
//! connection the live bundle decides is decided by the candidate too; a
//! disagreement is counted (`sluice_candidate_disagreements_total`) and
//! written to the decision log with both decisions.
//!
//! Deciding and comparing allocate nothing: the candidate's scratch space
//! is kept per thread and its peer classification per connection, like the
//! live bundle's, and counter handles are cached per thread (only the first
//! disagreement of a label set on a thread builds its labels).

use crate::metrics::Metrics;
use crate::store::{LoadedBundle, PolicyStore};
use sluice_runtime::{Decision, Inbound, Outbound, Peer, PeerClass, Reason, RequestError, Scratch};
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// A decision, or why the request could not be decided.
pub type Decided<'a> = Result<Decision<'a>, RequestError<'a>>;

/// The comparison the proxy makes for each request a candidate bundle
/// also decides, counted into counters of its own: for the allocation test
/// and the cost benchmark (`benches/alloc-test/examples/candidate_cost.rs`).
#[derive(Default)]
pub struct Comparison {
    metrics: Metrics,
}

impl Comparison {
    /// Compares the live and candidate results of one request and counts
    /// them as the proxy does; whether they differ.
    pub fn compare(&self, live: &Decided<'_>, candidate: &Decided<'_>) -> bool {
        compare(&self.metrics, live, candidate)
    }

    /// The counters in the Prometheus text format.
    pub fn render(&self) -> String {
        self.metrics.render()
    }
}

/// The candidate bundle and how its loading went.
pub(crate) struct Candidate {
    /// The candidate bundle, once one has loaded.
    pub store: Arc<PolicyStore>,
    /// The configured source: a path or a reference.
    pub source: String,
    /// Why the last load failed, until one succeeds.
    error: Mutex<Option<String>>,
}

impl Candidate {
    /// A candidate from `source`, nothing loaded yet.
    pub(crate) fn new(source: String) -> Arc<Candidate> {
        Arc::new(Candidate {
            store: PolicyStore::new(),
            source,
            error: Mutex::new(None),
        })
    }

    /// Records the result of a load: `None` when it succeeded.
    pub(crate) fn set_error(&self, error: Option<String>) {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    /// Why the last load failed, if it did.
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

thread_local! {
    /// The candidate's scratch space per thread, for the loaded candidate
    /// it was made for (its address and generation: proxies in one process
    /// share threads).
    static SCRATCH: RefCell<Option<((usize, u64), Scratch)>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's scratch space for `loaded`.
fn with_scratch<R>(loaded: &LoadedBundle, f: impl FnOnce(&mut Scratch) -> R) -> R {
    let key = (std::ptr::from_ref(loaded) as usize, loaded.generation());
    SCRATCH.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|(k, _)| *k != key) {
            *slot = Some((key, loaded.bundle().create_scratch()));
        }
        let Some((_, scratch)) = slot.as_mut() else {
            unreachable!("filled above")
        };
        f(scratch)
    })
}

/// Decides an inbound `request` of `peer` under the candidate `loaded`;
/// `class` is the connection's classification for the candidate, made
/// again when the candidate's generation changed.
pub(crate) fn decide_inbound<R>(
    loaded: &LoadedBundle,
    class: &Mutex<Option<(u64, PeerClass)>>,
    peer: &Peer<'_>,
    request: &Inbound<'_>,
    f: impl FnOnce(&Decided<'_>) -> R,
) -> R {
    let bundle = loaded.bundle();
    let mut class = class.lock().unwrap_or_else(|e| e.into_inner());
    if class
        .as_ref()
        .is_none_or(|(g, _)| *g != loaded.generation())
    {
        let mut c = bundle.create_peer_class();
        bundle.classify(peer, &mut c);
        *class = Some((loaded.generation(), c));
    }
    let Some((_, class)) = class.as_ref() else {
        unreachable!("classified above")
    };
    with_scratch(loaded, |scratch| {
        f(&bundle.decide_inbound(request, class, scratch))
    })
}

/// Classifies `peer` and decides its inbound `request` under the
/// candidate `loaded`: for callers that decide one request per peer
/// (`sluice authz`).
pub(crate) fn decide_inbound_peer<R>(
    loaded: &LoadedBundle,
    peer: &Peer<'_>,
    request: &Inbound<'_>,
    f: impl FnOnce(&Decided<'_>) -> R,
) -> R {
    with_scratch(loaded, |scratch| {
        f(&loaded.bundle().decide_inbound_peer(request, peer, scratch))
    })
}

/// Decides an outbound `request` under the candidate `loaded`.
pub(crate) fn decide_outbound<R>(
    loaded: &LoadedBundle,
    request: &Outbound<'_>,
    f: impl FnOnce(&Decided<'_>) -> R,
) -> R {
    with_scratch(loaded, |scratch| {
        f(&loaded.bundle().decide_outbound(request, scratch))
    })
}

/// Counts the candidate's decision and, when it differs from the live one,
/// the disagreement; whether they differ.
pub(crate) fn compare(metrics: &Metrics, live: &Decided<'_>, candidate: &Decided<'_>) -> bool {
    metrics.candidate_decisions.inc();
    if same(live, candidate) {
        return false;
    }
    let (server, route) = match (names(live), names(candidate)) {
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => ("", ""),
    };
    metrics
        .candidate_disagreements
        .inc(server, route, label_parts(live), label_parts(candidate));
    true
}

/// The server (or service) and route of a decision that names one.
fn names<'a>(d: &Decided<'a>) -> Option<(&'a str, &'a str)> {
    let d = d.as_ref().ok()?;
    let server = d.server.or(d.service)?;
    Some((server, d.route.unwrap_or("")))
}

/// Whether two results are the same in every field `sluice eval` prints:
/// decision, reason, server, route, rule, audit, statuses, service,
/// backends (names and weights, for `service` decisions) and timeout.
pub(crate) fn same(a: &Decided<'_>, b: &Decided<'_>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => same_decision(a, b),
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

fn same_decision(a: &Decision<'_>, b: &Decision<'_>) -> bool {
    a.allow == b.allow
        && a.reason == b.reason
        && a.server == b.server
        && a.route == b.route
        && a.rule == b.rule
        && a.audit == b.audit
        && a.http_status == b.http_status
        && a.grpc_status == b.grpc_status
        && a.service == b.service
        && a.timeout_ms == b.timeout_ms
        && (a.reason != Reason::Service
            || (a.backends.len() == b.backends.len()
                && a.backends
                    .iter()
                    .zip(b.backends)
                    .all(|(x, y)| x.name == y.name && x.weight == y.weight)))
}

/// The parts of a decision's label: outcome (`allow`, `deny`, `would-deny`
/// for an allow by audit mode only, `error` for a request the bundle could
/// not decide), reason, and the deciding rule or routing service.
pub(crate) fn label_parts<'a>(d: &Decided<'a>) -> [&'a str; 3] {
    match d {
        Err(_) => ["error", "", ""],
        Ok(d) => {
            let outcome = match (d.allow, d.audit) {
                (true, true) => "would-deny",
                (true, false) => "allow",
                (false, _) => "deny",
            };
            let name = match d.reason {
                Reason::Rule => d.rule.unwrap_or(""),
                Reason::Service => d.service.unwrap_or(""),
                _ => "",
            };
            [outcome, d.reason.as_str(), name]
        }
    }
}

/// A decision's label from its parts: `allow:rule:frontend`,
/// `deny:default`, `deny:no-route`, `allow:service:payments`, `error`.
pub(crate) fn label(parts: [&str; 3]) -> String {
    let mut out = String::new();
    for part in parts.iter().filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push(':');
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::{BackendId, WeightedBackend};

    fn rule(allow: bool, name: &'static str) -> Decision<'static> {
        let mut d = Decision::new(allow, Reason::Rule);
        d.server = Some("web");
        d.route = Some("api");
        d.rule = Some(name);
        d
    }

    #[test]
    fn labels_tell_apart_outcome_reason_and_rule() {
        let a = rule(true, "frontend");
        assert_eq!(label(label_parts(&Ok(a))), "allow:rule:frontend");
        let mut audit = rule(true, "no-admins");
        audit.audit = true;
        assert_eq!(label(label_parts(&Ok(audit))), "would-deny:rule:no-admins");
        assert_eq!(
            label(label_parts(&Ok(Decision::new(false, Reason::Default)))),
            "deny:default"
        );
        assert_eq!(
            label(label_parts(&Ok(Decision::new(false, Reason::NoRoute)))),
            "deny:no-route"
        );
        let mut s = Decision::new(true, Reason::Service);
        s.service = Some("payments");
        assert_eq!(label(label_parts(&Ok(s))), "allow:service:payments");
        let e: Decided<'_> = Err(RequestError::ConnectionToHttpServer { server: "web" });
        assert_eq!(label(label_parts(&e)), "error");
    }

    #[test]
    fn every_printed_field_counts_and_ids_do_not() {
        let a = rule(true, "frontend");
        assert!(same(&Ok(a), &Ok(a)));
        assert!(!same(&Ok(a), &Ok(rule(true, "other"))));
        assert!(!same(&Ok(a), &Ok(rule(false, "frontend"))));
        let mut t = a;
        t.timeout_ms = Some(5);
        assert!(!same(&Ok(a), &Ok(t)));
        let mut st = a;
        st.http_status = Some(404);
        assert!(!same(&Ok(a), &Ok(st)));
        let one = [WeightedBackend {
            name: "v1",
            id: BackendId::new(0),
            weight: 1,
        }];
        let moved = [WeightedBackend {
            name: "v1",
            id: BackendId::new(3),
            weight: 1,
        }];
        let heavier = [WeightedBackend {
            name: "v1",
            id: BackendId::new(0),
            weight: 2,
        }];
        let mut s = Decision::new(true, Reason::Service);
        s.service = Some("payments");
        s.backends = &one;
        let mut s2 = s;
        s2.backends = &moved;
        assert!(same(&Ok(s), &Ok(s2)), "backend ids are the bundle's own");
        s2.backends = &heavier;
        assert!(!same(&Ok(s), &Ok(s2)));
        let e: Decided<'_> = Err(RequestError::ConnectionToHttpServer { server: "web" });
        assert!(same(&e, &e) && !same(&e, &Ok(a)));
    }

    #[test]
    fn disagreements_are_counted_by_the_live_server_and_route() {
        let m = Metrics::default();
        let live = rule(true, "frontend");
        assert!(!compare(&m, &Ok(live), &Ok(live)));
        for _ in 0..3 {
            assert!(compare(
                &m,
                &Ok(live),
                &Ok(Decision::new(false, Reason::Default))
            ));
        }
        // no server on the live side: the candidate's names it
        let mut other = rule(false, "x");
        other.server = Some("admin");
        other.route = None;
        assert!(compare(
            &m,
            &Ok(Decision::new(false, Reason::Default)),
            &Ok(other)
        ));
        let text = m.render();
        for line in [
            "sluice_candidate_decisions_total 5\n",
            "sluice_candidate_disagreements_total{server=\"web\",route=\"api\",live=\"allow:rule:frontend\",candidate=\"deny:default\"} 3\n",
            "sluice_candidate_disagreements_total{server=\"admin\",route=\"\",live=\"deny:default\",candidate=\"deny:rule:x\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
