//! Outbound (client-side) decisions, spec section 5: declared services
//! first, then egress rules.

use std::net::IpAddr;

use sluice_lang::ast::{self, Effect};

use crate::authority::{self, Authority};
use crate::model::{self, View};
use crate::route::{self, HttpRequest};
use crate::status::{self, BAD_REQUEST, FORBIDDEN, NOT_FOUND};
use crate::{
    net, path, value, Backend, Breaker, Decision, Endpoint, ErrorKind, Request, RequestError,
    Retry, RetryOn, RouteSettings, ServiceSettings,
};

/// The three shapes of an outbound request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Authority, method and path.
    Http,
    /// `CONNECT`: authority only.
    Tunnel,
    /// Opaque TCP: IP and port, no authority.
    Tcp,
}

/// Decides an outbound request.
pub(crate) fn evaluate(view: &View<'_>, req: &Request) -> Result<Decision, RequestError> {
    let kind = match (&req.authority, &req.method, &req.path) {
        (Some(_), Some(_), Some(_)) => Kind::Http,
        (Some(_), None, None) => Kind::Tunnel,
        (None, None, None) if req.ip.is_some() && req.port.is_some() => Kind::Tcp,
        _ => return Err(RequestError {
            kind: ErrorKind::Incomplete,
            message:
                "an outbound request needs an authority, a method and a path (HTTP), an authority \
                          alone (tunnel), or an ip and a port (TCP)"
                    .to_string(),
        }),
    };
    let authority: Option<Authority> = match &req.authority {
        Some(a) => Some(authority::parse(a).ok_or_else(|| RequestError {
            kind: ErrorKind::BadAuthority,
            message: format!("cannot parse the authority `{a}`"),
        })?),
        None => None,
    };
    // An IP-literal authority gives the IP when the request gives none.
    let ip = req.ip.or(authority.as_ref().and_then(|a| a.ip));
    let grpc = kind == Kind::Http
        && status::is_grpc_content_type(
            value::header_value(&req.headers, "content-type").as_deref(),
        );

    if kind == Kind::Http {
        let (raw_path, query) = path::split_target(req.path.as_deref().unwrap_or(""));
        let Some(normalized) = path::normalize(raw_path) else {
            return Ok(denied(Decision::new(false, "bad-path"), BAD_REQUEST, grpc));
        };
        if let Some(a) = &authority {
            if let Some(service) = service_for(view, a) {
                let http = HttpRequest {
                    method: req.method.as_deref().unwrap_or(""),
                    path: &normalized,
                    query,
                    headers: &req.headers,
                };
                return Ok(routed(service, &http, grpc));
            }
        }
    }

    // Egress.
    let host = authority.as_ref().map(|a| a.host.as_str());
    let port = match &authority {
        Some(a) => a.port,
        None => req.port.unwrap_or(0),
    };
    let d = egress(view, host, ip, port);
    Ok(match kind {
        Kind::Http | Kind::Tunnel => denied(d, FORBIDDEN, grpc),
        Kind::Tcp => d,
    })
}

/// Sets the statuses of a denial (nothing when allowed).
fn denied(mut d: Decision, http: u16, grpc: bool) -> Decision {
    if !d.allow {
        d.http_status = Some(http);
        if grpc {
            d.grpc_status = Some(status::grpc_for(http));
        }
    }
    d
}

/// The first service with an authority entry equal to `a` (host and port).
fn service_for<'p>(view: &View<'p>, a: &Authority) -> Option<&'p ast::Service> {
    view.services.iter().copied().find(|s| {
        model::service_authorities(s)
            .into_iter()
            .filter_map(authority::parse)
            .any(|entry| entry.host == a.host && entry.port == a.port)
    })
}

/// Routes an HTTP request by its service.
fn routed(service: &ast::Service, http: &HttpRequest<'_>, grpc: bool) -> Decision {
    let routes = model::service_routes(service);
    match route::select(&routes, http) {
        Some(r) => {
            let mut d = Decision::new(true, "service");
            d.service = Some(service.name.node.clone());
            d.route = Some(r.name.node.clone());
            d.backends = model::route_backends(r);
            d.timeout_ms = model::route_timeout(r).or_else(|| model::service_timeout(service));
            d
        }
        None => {
            let mut d = Decision::new(false, "no-route");
            d.service = Some(service.name.node.clone());
            denied(d, NOT_FOUND, grpc)
        }
    }
}

/// The egress decision for a destination (no statuses yet).
fn egress(view: &View<'_>, host: Option<&str>, ip: Option<IpAddr>, port: u16) -> Decision {
    let Some(block) = view.egress else {
        return Decision::new(true, "default");
    };
    let rules = model::egress_rules(block);
    let matching = |effect: Effect| {
        rules
            .iter()
            .find(|r| r.effect == effect && dest_matches(r, host, ip, port))
    };
    if let Some(r) = matching(Effect::Deny) {
        let mut d = Decision::new(false, "rule");
        d.rule = Some(r.name.node.clone());
        return d;
    }
    if let Some(r) = matching(Effect::Allow) {
        let mut d = Decision::new(true, "rule");
        d.rule = Some(r.name.node.clone());
        return d;
    }
    Decision::new(model::egress_default(block) == Effect::Allow, "default")
}

/// Whether a destination rule matches: the port matches (no `port`: any),
/// and the host matches a `host` pattern or the IP lies in the `network`
/// set; a rule with neither `host` nor `network` matches every destination.
fn dest_matches(rule: &ast::EgressRule, host: Option<&str>, ip: Option<IpAddr>, port: u16) -> bool {
    let d = model::dest(rule);
    if let Some(ports) = d.ports {
        if !model::ports_cover(ports, port) {
            return false;
        }
    }
    if d.hosts.is_none() && d.networks.is_none() {
        return true;
    }
    // A request without a host matches no host pattern, not even "*".
    let host_ok = match (d.hosts, host) {
        (Some(patterns), Some(h)) => patterns.iter().any(|p| authority::host_matches(&p.node, h)),
        _ => false,
    };
    let network_ok = d.networks.is_some_and(|n| net::in_networks(n, ip));
    host_ok || network_ok
}

/// A service's settings, the spec's defaults filled in (section 5,
/// "Backends, retries, circuit breaking, failover").
pub(crate) fn settings(service: &ast::Service) -> ServiceSettings {
    let retry = model::service_retry(service).map(retry);
    let routes = model::service_routes(service)
        .into_iter()
        .map(|r| RouteSettings {
            name: r.name.node.clone(),
            retry: model::route_retry(r)
                .map(self::retry)
                .or_else(|| retry.clone()),
        })
        .collect();
    ServiceSettings {
        name: service.name.node.clone(),
        timeout_ms: model::service_timeout(service),
        retry,
        breaker: model::service_breaker(service).map(breaker),
        backends: model::service_backends(service)
            .into_iter()
            .map(backend)
            .collect(),
        routes,
    }
}

/// A `retry` block: `attempts 1`, `on gateway-error, reset`, no per-try
/// timeout and `budget 20%` unless written.
fn retry(block: &ast::Retry) -> Retry {
    let mut r = Retry {
        attempts: 1,
        on: vec![RetryOn::GatewayError, RetryOn::Reset],
        per_try_timeout_ms: None,
        budget_percent: 20,
    };
    let (mut attempts, mut on, mut per_try, mut budget) = (false, false, false, false);
    for s in &block.stmts {
        match &s.node {
            ast::RetryStmt::Attempts(n) if !attempts => {
                attempts = true;
                r.attempts = u32::try_from(n.node).unwrap_or(u32::MAX);
            }
            ast::RetryStmt::On(conds) if !on => {
                on = true;
                r.on = conds.iter().map(|c| retry_on(&c.node)).collect();
            }
            ast::RetryStmt::PerTryTimeout(d) if !per_try => {
                per_try = true;
                r.per_try_timeout_ms = Some(d.node);
            }
            ast::RetryStmt::Budget(p) if !budget => {
                budget = true;
                r.budget_percent = u8::try_from(p.node).unwrap_or(u8::MAX);
            }
            _ => {}
        }
    }
    r
}

/// A retry condition; gRPC status names by their standard codes.
fn retry_on(cond: &ast::Cond) -> RetryOn {
    match cond {
        ast::Cond::ServerError => RetryOn::ServerError,
        ast::Cond::GatewayError => RetryOn::GatewayError,
        ast::Cond::Reset => RetryOn::Reset,
        ast::Cond::Status(n) => RetryOn::Status(u16::try_from(*n).unwrap_or(u16::MAX)),
        ast::Cond::Cancelled => RetryOn::Grpc(1),
        ast::Cond::DeadlineExceeded => RetryOn::Grpc(4),
        ast::Cond::ResourceExhausted => RetryOn::Grpc(8),
        ast::Cond::Internal => RetryOn::Grpc(13),
        ast::Cond::Unavailable => RetryOn::Grpc(14),
    }
}

/// A `circuit-breaker` block: `consecutive-failures 7`, `backoff 1s 60s`
/// and `jitter 50%` unless written.
fn breaker(block: &ast::CircuitBreaker) -> Breaker {
    let mut b = Breaker {
        consecutive_failures: 7,
        backoff_min_ms: 1_000,
        backoff_max_ms: 60_000,
        jitter_percent: 50,
    };
    let (mut failures, mut backoff, mut jitter) = (false, false, false);
    for s in &block.stmts {
        match &s.node {
            ast::BreakerStmt::ConsecutiveFailures(n) if !failures => {
                failures = true;
                b.consecutive_failures = u32::try_from(n.node).unwrap_or(u32::MAX);
            }
            ast::BreakerStmt::Backoff(min, max) if !backoff => {
                backoff = true;
                b.backoff_min_ms = min.node;
                b.backoff_max_ms = max.node;
            }
            ast::BreakerStmt::Jitter(p) if !jitter => {
                jitter = true;
                b.jitter_percent = u8::try_from(p.node).unwrap_or(u8::MAX);
            }
            _ => {}
        }
    }
    b
}

/// A backend: its endpoints (in the order written; an address that does
/// not parse, which a checked policy has not, is left out), identity,
/// cluster, failover and `max-in-flight`, each from its first statement.
fn backend(block: &ast::Backend) -> Backend {
    let mut b = Backend {
        name: block.name.node.clone(),
        endpoints: Vec::new(),
        identity: None,
        cluster: None,
        failover: None,
        max_in_flight: None,
    };
    let mut endpoints = false;
    for s in &block.stmts {
        match &s.node {
            ast::BackendStmt::Endpoint(list) if !endpoints => {
                endpoints = true;
                b.endpoints = list
                    .iter()
                    .filter_map(|e| match &e.node {
                        ast::Endpoint::Addr(a) => a.parse().ok().map(Endpoint::Addr),
                        ast::Endpoint::Name(n) => Some(Endpoint::Name(n.clone())),
                    })
                    .collect();
            }
            ast::BackendStmt::Endpoint(_) => {}
            ast::BackendStmt::Identity(id) => {
                b.identity.get_or_insert_with(|| id.node.clone());
            }
            ast::BackendStmt::Cluster(c) => {
                b.cluster.get_or_insert_with(|| c.node.clone());
            }
            ast::BackendStmt::Failover(f) => {
                b.failover.get_or_insert_with(|| f.node.clone());
            }
            ast::BackendStmt::MaxInFlight(n) => {
                b.max_in_flight
                    .get_or_insert(u32::try_from(n.node).unwrap_or(u32::MAX));
            }
        }
    }
    b
}
