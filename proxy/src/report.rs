//! What an inbound decision leaves behind, for the listeners and for
//! `sluice authz` alike: its counter, a log line when it is not a plain
//! allow, its decision log line, and the candidate bundle's comparison.

use crate::candidate::{self, Decided};
use crate::decision_log::LoggedRequest;
use crate::enforce;
use crate::state::Shared;
use crate::store::LoadedBundle;
use sluice_runtime::Decision;

/// Counts and logs the decision `d` of `logged` under `loaded`, comparing
/// it with the candidate bundle's when one is loaded; `decide_candidate`
/// decides the same request under the candidate and hands its decision on.
pub(crate) fn inbound_decision(
    shared: &Shared,
    loaded: &LoadedBundle,
    logged: &LoggedRequest<'_>,
    d: &Decision<'_>,
    decide_candidate: impl FnOnce(&LoadedBundle, &mut dyn FnMut(&Decided<'_>)),
) {
    let outcome = enforce::outcome(d);
    let labels = [
        d.server.unwrap_or(""),
        d.route.unwrap_or(""),
        d.rule.unwrap_or(""),
    ];
    if logged.http.is_some() {
        shared
            .metrics
            .requests
            .inc([labels[0], labels[1], labels[2], outcome]);
    } else {
        shared
            .metrics
            .connections
            .inc([labels[0], labels[2], outcome]);
    }
    if outcome != "allow" {
        let what = if logged.http.is_some() {
            "request"
        } else {
            "connection"
        };
        let (method, path) = logged
            .http
            .map_or(("", std::borrow::Cow::Borrowed("")), |(m, p, _)| {
                (m, String::from_utf8_lossy(p))
            });
        tracing::info!(
            outcome,
            what,
            server = labels[0],
            route = labels[1],
            rule = labels[2],
            identity = logged.identity.unwrap_or("-"),
            ip = %logged.ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
            method,
            path = %path,
            bundle = loaded.hash(),
            "{}",
            if d.allow { "allowed only by audit" } else { "denied" },
        );
    }
    let log = shared.decision_log.as_deref();
    let candidate = shared.candidate.as_ref().and_then(|c| c.store.current());
    match candidate {
        None => {
            if let Some(log) = log {
                log.write(loaded.hash(), logged, d, None);
            }
        }
        Some(c) => decide_candidate(&c, &mut |cd| {
            let differs = candidate::compare(&shared.metrics, &Ok(*d), cd);
            if let Some(log) = log {
                log.write(loaded.hash(), logged, d, differs.then_some((c.hash(), cd)));
            }
        }),
    }
}
