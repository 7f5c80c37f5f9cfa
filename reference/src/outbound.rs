//! Outbound (client-side) decisions, spec section 5: declared services
//! first, then egress rules.

use std::net::IpAddr;

use sluice_lang::ast::{self, Effect};

use crate::authority::{self, Authority};
use crate::model::{self, View};
use crate::route::{self, HttpRequest};
use crate::status::{self, BAD_REQUEST, FORBIDDEN, NOT_FOUND};
use crate::{net, path, value, Decision, Request};

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
pub(crate) fn evaluate(view: &View<'_>, req: &Request) -> Result<Decision, String> {
    let kind = match (&req.authority, &req.method, &req.path) {
        (Some(_), Some(_), Some(_)) => Kind::Http,
        (Some(_), None, None) => Kind::Tunnel,
        (None, None, None) if req.ip.is_some() && req.port.is_some() => Kind::Tcp,
        _ => {
            return Err("an outbound request needs an authority, a method and a path (HTTP), an authority \
                        alone (tunnel), or an ip and a port (TCP)"
                .to_string())
        }
    };
    let authority: Option<Authority> = match &req.authority {
        Some(a) => Some(authority::parse(a).ok_or_else(|| format!("cannot parse the authority `{a}`"))?),
        None => None,
    };
    // An IP-literal authority gives the IP when the request gives none.
    let ip = req.ip.or(authority.as_ref().and_then(|a| a.ip));
    let grpc = kind == Kind::Http
        && status::is_grpc_content_type(value::header_value(&req.headers, "content-type").as_deref());

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
    let matching = |effect: Effect| rules.iter().find(|r| r.effect == effect && dest_matches(r, host, ip, port));
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
