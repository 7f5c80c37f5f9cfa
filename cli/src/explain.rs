//! `eval --explain`: trace events of a decision, rendered in words.

use crate::json::DecisionJson;
use sluice_runtime::{Event, Trace};

/// Collects the events of one decision as readable lines.
#[derive(Clone, Debug, Default)]
pub struct Explainer {
    /// One line per event, in order.
    pub lines: Vec<String>,
    /// Route candidates seen so far.
    pub candidates: usize,
}

impl Trace for Explainer {
    fn event(&mut self, event: Event<'_>) {
        if let Event::RouteCandidate { .. } = event {
            self.candidates += 1;
        }
        self.lines.push(describe(&event, self.candidates));
    }
}

/// One event in words; `candidate` numbers a route candidate (1-based).
pub fn describe(event: &Event<'_>, candidate: usize) -> String {
    match *event {
        Event::Server {
            port,
            name: Some(name),
        } => format!("port {port}: server `{name}`"),
        Event::Server { port, name: None } => {
            format!("port {port}: no server covers it, the mesh default applies")
        }
        Event::Path {
            error: Some(error), ..
        } => format!("path rejected: {error}"),
        Event::Path {
            normalized,
            error: None,
        } => {
            format!(
                "path normalized to `{}`",
                String::from_utf8_lossy(normalized)
            )
        }
        Event::RouteCandidate {
            name, taken: true, ..
        } => format!(
            "route `{name}` (candidate {candidate} by precedence, its path matches): \
             taken, all its conditions hold"
        ),
        Event::RouteCandidate {
            name,
            taken: false,
            why,
        } => format!(
            "route `{name}` (candidate {candidate} by precedence, its path matches): \
             not taken, its `{why}` condition does not hold"
        ),
        Event::Rule {
            name,
            deny,
            matched,
        } => format!(
            "{} rule `{name}` applies; the peer {}",
            effect(deny),
            if matched {
                "matches it"
            } else {
                "does not match it"
            }
        ),
        Event::Default { default, of } => format!("the {of} default `{default}` decides"),
        Event::Authority {
            host,
            port,
            ip: Some(ip),
        } => {
            format!("authority: host `{host}`, port {port}, ip {ip}")
        }
        Event::Authority {
            host,
            port,
            ip: None,
        } => {
            format!("authority: host `{host}`, port {port}")
        }
        Event::Service { name } => {
            format!("service `{name}` claims the authority; egress rules do not apply")
        }
        Event::EgressRule {
            name,
            deny,
            matched,
        } => format!(
            "egress {} rule `{name}`: {}",
            effect(deny),
            if matched { "matches" } else { "does not match" }
        ),
    }
}

fn effect(deny: bool) -> &'static str {
    if deny {
        "deny"
    } else {
        "allow"
    }
}

/// The decision in one sentence, e.g. `decision: deny (reason no-route), http 404`.
pub fn describe_decision(d: &DecisionJson) -> String {
    let mut s = format!("decision: {} (reason {})", d.decision, d.reason);
    let named = [
        ("server", &d.server),
        ("route", &d.route),
        ("rule", &d.rule),
        ("service", &d.service),
    ];
    for (what, name) in named {
        if let Some(name) = name {
            s.push_str(&format!(", {what} `{name}`"));
        }
    }
    if d.audit {
        s.push_str(", audit: would have been denied");
    }
    if let Some(status) = d.http_status {
        s.push_str(&format!(", http {status}"));
    }
    if let Some(status) = d.grpc_status {
        s.push_str(&format!(", grpc {status}"));
    }
    if let Some(backends) = &d.backends {
        let list: Vec<String> = backends
            .iter()
            .map(|b| format!("{} {}", b.name, b.weight))
            .collect();
        s.push_str(&format!(", backends [{}]", list.join(", ")));
    }
    if let Some(ms) = d.timeout_ms {
        s.push_str(&format!(", timeout {ms}ms"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::normalize::BadPath;
    use sluice_runtime::{Decision, Reason};

    #[test]
    fn events_in_words() {
        let mut e = Explainer::default();
        e.event(Event::Server {
            port: 8080,
            name: Some("web"),
        });
        e.event(Event::Server {
            port: 1,
            name: None,
        });
        e.event(Event::Path {
            normalized: b"/b",
            error: None,
        });
        e.event(Event::Path {
            normalized: b"",
            error: Some(BadPath::MalformedEscape),
        });
        e.event(Event::RouteCandidate {
            name: "api",
            taken: false,
            why: "method",
        });
        e.event(Event::RouteCandidate {
            name: "all",
            taken: true,
            why: "matched",
        });
        e.event(Event::Rule {
            name: "q",
            deny: true,
            matched: false,
        });
        e.event(Event::Default {
            default: "deny",
            of: "server",
        });
        e.event(Event::Authority {
            host: "a.b",
            port: 80,
            ip: Some("10.0.0.1".parse().unwrap()),
        });
        e.event(Event::Service { name: "pay" });
        e.event(Event::EgressRule {
            name: "imds",
            deny: true,
            matched: true,
        });
        assert_eq!(
            e.lines,
            [
                "port 8080: server `web`",
                "port 1: no server covers it, the mesh default applies",
                "path normalized to `/b`",
                "path rejected: the path holds a malformed `%` escape",
                "route `api` (candidate 1 by precedence, its path matches): \
                 not taken, its `method` condition does not hold",
                "route `all` (candidate 2 by precedence, its path matches): \
                 taken, all its conditions hold",
                "deny rule `q` applies; the peer does not match it",
                "the server default `deny` decides",
                "authority: host `a.b`, port 80, ip 10.0.0.1",
                "service `pay` claims the authority; egress rules do not apply",
                "egress deny rule `imds`: matches",
            ]
        );
    }

    #[test]
    fn decision_sentence() {
        let mut d = Decision::new(false, Reason::Rule);
        d.server = Some("web");
        d.rule = Some("q");
        d.http_status = Some(403);
        d.grpc_status = Some(7);
        assert_eq!(
            describe_decision(&DecisionJson::from_runtime(&d)),
            "decision: deny (reason rule), server `web`, rule `q`, http 403, grpc 7"
        );
    }
}
