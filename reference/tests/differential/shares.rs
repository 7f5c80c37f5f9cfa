//! Coverage accounting (from the request, the model and the reference).

use std::collections::BTreeMap;
use std::net::IpAddr;

use sluice_reference::{Direction, Request};

use crate::compare::Outcome;
use crate::generate::authority_key;
use crate::model::{Model, PathCond, Principal, Proto, Route};
use crate::requests::{attack_kinds, carried, is_carrying, Kind, Req};

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) counts: BTreeMap<String, u64>,
    /// Counts of policies (not pairs) by category.
    pub(crate) policy_counts: BTreeMap<String, u64>,
    pub(crate) pairs: u64,
    pub(crate) policies: u64,
    /// Mismatches: (signature, report).
    pub(crate) mismatches: Vec<(String, String)>,
    pub(crate) mismatch_count: u64,
}

impl Stats {
    pub(crate) fn bump(&mut self, key: &str) {
        *self.counts.entry(key.to_string()).or_insert(0) += 1;
    }

    pub(crate) fn get(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    pub(crate) fn bump_policy(&mut self, key: &str) {
        *self.policy_counts.entry(key.to_string()).or_insert(0) += 1;
    }

    pub(crate) fn get_policy(&self, key: &str) -> u64 {
        self.policy_counts.get(key).copied().unwrap_or(0)
    }
}

/// SPIFFE ID check for accounting (the spec's rules, simply).
pub(crate) fn is_spiffe_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("spiffe://") else {
        return false;
    };
    let (td, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let td_ok = !td.is_empty()
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    td_ok
        && match path {
            None => true,
            Some(p) => p.split('/').all(segment_ok),
        }
}

/// Identity pattern match for accounting.
pub(crate) fn pattern_matches(pattern: &str, id: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if !is_spiffe_id(id) {
        return false;
    }
    let p: Vec<&str> = pattern.trim_start_matches("spiffe://").split('/').collect();
    let i: Vec<&str> = id.trim_start_matches("spiffe://").split('/').collect();
    for (k, ps) in p.iter().enumerate() {
        if *ps == "**" && k + 1 == p.len() {
            return i.len() > k;
        }
        match i.get(k) {
            Some(s) if (*ps == "*" && k > 0) || ps == s => {}
            _ => return false,
        }
    }
    i.len() == p.len()
}

pub(crate) fn pattern_form(p: &str) -> &'static str {
    if p == "*" {
        "id:\"*\""
    } else if p.ends_with("/**") {
        "id:**"
    } else if p.split('/').any(|s| s == "*") {
        "id:*-segment"
    } else {
        "id:literal"
    }
}

/// The IP that an authority's host literally is, if any.
pub(crate) fn authority_ip(a: &str) -> Option<IpAddr> {
    let (host, _) = authority_key(a);
    host.parse().ok()
}

pub(crate) fn account(m: &Model, req: &Req, reference: &Outcome, stats: &mut Stats) {
    let r = &req.r;
    stats.bump(req.kind.label());
    if let Some(ip) = r.peer_ip.filter(|_| r.direction == Direction::Inbound) {
        if ip.is_ipv6() {
            stats.bump("peer:ipv6");
        }
        if is_carrying(ip) {
            stats.bump("peer:ipv4-in-ipv6");
            let in_network = m.rules.iter().flat_map(|r| &r.froms).any(|p| match p {
                Principal::Network(inc, _) => inc.iter().any(|n| n.contains(carried(ip))),
                _ => false,
            });
            if in_network {
                stats.bump("peer:ipv4-in-ipv6-in-a-network");
            }
        }
    }
    if r.direction == Direction::Outbound {
        let ip =
            r.ip.or_else(|| r.authority.as_deref().and_then(authority_ip));
        if let Some(ip) = ip.filter(|ip| is_carrying(*ip)) {
            stats.bump("destination:ipv4-in-ipv6");
            let in_network = m
                .egress
                .iter()
                .flat_map(|e| &e.rules)
                .any(|r| match &r.nets {
                    Some((inc, _)) => inc.iter().any(|n| n.contains(carried(ip))),
                    None => false,
                });
            if in_network {
                stats.bump("destination:ipv4-in-ipv6-in-a-network");
            }
        }
    }
    if let Some(p) = &r.path {
        let kinds = attack_kinds(p);
        if !kinds.is_empty() {
            stats.bump("attack:any");
        }
        for k in kinds {
            stats.bump(k);
        }
    }
    let d = match reference {
        Outcome::Decision(d) => d,
        Outcome::Error(kind, _) => {
            stats.bump("outcome:error");
            stats.bump(&format!("error:{kind}"));
            if req.kind == Kind::InConnection {
                stats.bump("in:connection-to-http-server (error)");
            }
            return;
        }
        Outcome::Panic(_) => {
            stats.bump("outcome:reference-panic");
            return;
        }
    };
    stats.bump(&format!("reason:{}", d.reason));
    stats.bump(if d.allow {
        "decision:allow"
    } else {
        "decision:deny"
    });
    if d.audit {
        stats.bump("audit:true");
    }
    if let Some(s) = d.http_status {
        stats.bump(&format!("http_status:{s}"));
    }
    if let Some(s) = d.grpc_status {
        stats.bump(&format!("grpc_status:{s}"));
    }
    if d.timeout_ms.is_some() {
        stats.bump("timeout_ms:set");
    }
    if d.backends.iter().any(|b| b.1 == 0) {
        stats.bump("backends:weight-0-listed");
    }
    let is_http = r.method.is_some() || r.path.is_some();
    match r.direction {
        Direction::Inbound => {
            let Some(server) = d.server.as_deref().and_then(|s| m.server(s)) else {
                stats.bump("in:no-server (mesh default)");
                return;
            };
            if server.proto() == Proto::Tcp {
                stats.bump(if is_http {
                    "in:http-to-tcp-server"
                } else {
                    "in:connection-to-tcp-server"
                });
            }
            if r.peer_identity
                .as_deref()
                .is_some_and(|id| trust_domain_mismatch(m, &server.name, id))
            {
                stats.bump("id:trust-domain-mismatch");
            }
            if !matches!(d.reason.as_str(), "rule" | "default") {
                return;
            }
            let taken = d
                .route
                .as_deref()
                .and_then(|name| server.routes.iter().find(|r| r.name == name));
            if server.proto() != Proto::Tcp {
                match taken {
                    Some(route) => account_route(route, stats),
                    None => stats.bump("route:implicit"),
                }
            }
            // Identity forms that decided the deciding rule.
            if d.reason == "rule" {
                let rule = d
                    .rule
                    .as_deref()
                    .and_then(|n| m.rules.iter().find(|r| r.name == n));
                if let (Some(rule), Some(id)) = (rule, r.peer_identity.as_deref()) {
                    for p in &rule.froms {
                        match p {
                            Principal::Identity(ps) => {
                                for pat in ps.iter().filter(|pat| pattern_matches(pat, id)) {
                                    stats.bump(pattern_form(pat));
                                }
                            }
                            Principal::Namespace(ns) => {
                                let td = m.trust_domain().unwrap_or("");
                                if ns.iter().any(|n| {
                                    pattern_matches(&format!("spiffe://{td}/ns/{n}/sa/*"), id)
                                }) {
                                    stats.bump("id:namespace");
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            // An `except` that excluded the peer from an applicable rule
            // that would have matched without it.
            if let Some(ip) = r.peer_ip.map(carried) {
                let excluded = m
                    .rules
                    .iter()
                    .filter(|rule| rule.applies(&server.name, d.route.as_deref()))
                    .any(|rule| {
                        let excluded_here = rule.froms.iter().any(|p| match p {
                            Principal::Network(inc, exc) => {
                                inc.iter().any(|n| n.contains(ip))
                                    && exc.iter().any(|n| n.contains(ip))
                            }
                            _ => false,
                        });
                        excluded_here
                            && rule
                                .froms
                                .iter()
                                .all(|p| principal_matches_ignoring_except(m, p, r))
                    });
                if excluded {
                    stats.bump("except:excluded-peer");
                }
            }
        }
        Direction::Outbound => {
            if let Some(svc) = d
                .service
                .as_deref()
                .and_then(|s| m.services.iter().find(|x| x.name == s))
            {
                stats.bump("out:service-matched");
                if let Some(route) = d
                    .route
                    .as_deref()
                    .and_then(|n| svc.routes.iter().find(|r| r.name == n))
                {
                    account_route(route, stats);
                }
                return;
            }
            if !matches!(d.reason.as_str(), "rule" | "default") {
                return;
            }
            let Some(egress) = &m.egress else {
                stats.bump("egress:no-block");
                return;
            };
            stats.bump(if d.reason == "rule" {
                "egress:rule"
            } else {
                "egress:default"
            });
            let ip =
                r.ip.or_else(|| r.authority.as_deref().and_then(authority_ip))
                    .map(carried);
            if let Some(ip) = ip {
                // A destination rule that would have matched by its network,
                // but for an `except` (and its host patterns do not match).
                let host = r.authority.as_deref().map(|a| authority_key(a).0);
                let port = r
                    .authority
                    .as_deref()
                    .map_or(r.port.unwrap_or(0), |a| authority_key(a).1);
                let excluded = egress.rules.iter().any(|e| match &e.nets {
                    Some((inc, exc)) => {
                        let port_ok = e.ports.is_empty()
                            || e.ports.iter().any(|&(a, b)| a <= port && port <= b);
                        let host_ok = host
                            .as_deref()
                            .is_some_and(|h| e.hosts.iter().any(|p| host_matches(p, h)));
                        port_ok
                            && !host_ok
                            && inc.iter().any(|n| n.contains(ip))
                            && exc.iter().any(|n| n.contains(ip))
                    }
                    None => false,
                });
                if excluded {
                    stats.bump("except:excluded-destination");
                }
            }
        }
    }
}

/// Whether the peer satisfies a `from` clause, taking no account of
/// `except` (for accounting).
pub(crate) fn principal_matches_ignoring_except(m: &Model, p: &Principal, r: &Request) -> bool {
    let id = r.peer_identity.as_deref();
    match p {
        Principal::Any => true,
        Principal::Authenticated => id.is_some(),
        Principal::Identity(ps) => id.is_some_and(|id| ps.iter().any(|p| pattern_matches(p, id))),
        Principal::Namespace(ns) => match (id, m.trust_domain()) {
            (Some(id), Some(td)) => ns
                .iter()
                .any(|n| pattern_matches(&format!("spiffe://{td}/ns/{n}/sa/*"), id)),
            _ => false,
        },
        Principal::Network(inc, _) => r
            .peer_ip
            .map(carried)
            .is_some_and(|ip| inc.iter().any(|n| n.contains(ip))),
    }
}

/// Host pattern match (for accounting): `host` is lowercase without a
/// trailing dot.
pub(crate) fn host_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let p = p.strip_suffix('.').unwrap_or(&p);
    match p.strip_prefix("*.") {
        _ if p == "*" => true,
        Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
        None => host == p,
    }
}

/// Whether `id` is a SPIFFE ID that some identity pattern or namespace
/// of a rule on `server` would match but for its trust domain.
pub(crate) fn trust_domain_mismatch(m: &Model, server: &str, id: &str) -> bool {
    fn split(s: &str) -> Option<(&str, &str)> {
        s.strip_prefix("spiffe://")
            .map(|rest| rest.split_once('/').unwrap_or((rest, "")))
    }
    let Some((id_td, id_path)) = split(id) else {
        return false;
    };
    let near_miss = |pattern: &str| {
        let Some((td, _)) = split(pattern) else {
            return false;
        };
        let moved = if id_path.is_empty() {
            format!("spiffe://{td}")
        } else {
            format!("spiffe://{td}/{id_path}")
        };
        td != id_td && is_spiffe_id(id) && pattern_matches(pattern, &moved)
    };
    m.rules
        .iter()
        .filter(|rule| rule.targets.iter().any(|t| t.0 == server))
        .any(|rule| {
            rule.froms.iter().any(|p| match p {
                Principal::Identity(ps) => ps.iter().any(|p| near_miss(p)),
                Principal::Namespace(ns) => {
                    let td = m.trust_domain().unwrap_or("");
                    ns.iter()
                        .any(|n| near_miss(&format!("spiffe://{td}/ns/{n}/sa/*")))
                }
                _ => false,
            })
        })
}

pub(crate) fn account_route(route: &Route, stats: &mut Stats) {
    stats.bump(&format!("route:{}", route.path_kind()));
    if matches!(route.path, Some(PathCond::Grpc(_))) {
        stats.bump("route:grpc");
    }
    if !route.methods.is_empty() {
        stats.bump("route:with-method");
    }
    for (_, v) in &route.headers {
        stats.bump(&format!("header:{}", v.op()));
    }
    for (_, v) in &route.queries {
        stats.bump(&format!("query:{}", v.op()));
    }
}
