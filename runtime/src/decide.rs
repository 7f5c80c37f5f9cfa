//! Inbound and outbound decisions (spec sections 4 and 5).

use crate::authority::Authority;
use crate::bundle::{Bundle, DefaultPolicy, PeerClass, Protocol, Route, Rule, Scratch};
use crate::decision::{Decision, Reason, RequestError, RouteId, ServiceId};
use crate::matching::{is_grpc_content_type, RouteRequest};
use crate::normalize::{normalize_path, split_target};
use crate::request::{Inbound, Outbound, Peer};
use crate::trace::{Event, NoTrace, Trace};
use std::net::IpAddr;

/// The gRPC status for an HTTP denial status.
fn grpc_for(http: u16) -> u8 {
    match http {
        403 => 7,
        404 => 12,
        _ => 13,
    }
}

fn deny_http(mut d: Decision<'_>, status: u16, grpc: bool) -> Decision<'_> {
    d.allow = false;
    d.http_status = Some(status);
    d.grpc_status = grpc.then(|| grpc_for(status));
    d
}

/// Applies a default to a peer class: allowed, and whether audit let it through.
fn apply_default(default: DefaultPolicy, class: &PeerClass) -> (bool, bool) {
    match default {
        DefaultPolicy::Allow => (true, false),
        DefaultPolicy::Deny => (false, false),
        DefaultPolicy::Audit => (true, true),
        DefaultPolicy::Authenticated => (class.has_identity, false),
    }
}

/// Compares a request host with a lowercase stored host, ASCII case-insensitively.
fn cmp_host(request: &str, stored: &str) -> std::cmp::Ordering {
    let (a, b) = (request.as_bytes(), stored.as_bytes());
    for (&x, &y) in a.iter().zip(b) {
        let x = x.to_ascii_lowercase();
        if x != y {
            return x.cmp(&y);
        }
    }
    a.len().cmp(&b.len())
}

impl<'a> Bundle<'a> {
    pub(crate) fn server_for(&self, port: u16) -> Option<u32> {
        let i = self.ports.partition_point(|p| p.0 <= port);
        let (lo, hi, s) = *self.ports.get(i.checked_sub(1)?)?;
        (lo <= port && port <= hi).then_some(s)
    }

    fn rule_matches(rule: &Rule<'_>, class: &PeerClass) -> bool {
        rule.clauses.iter().all(|&c| class.satisfies(c))
    }

    /// The name of the first rule of `ids` (declaration order) that the peer matches.
    fn first_matching<T: Trace + ?Sized>(
        &self,
        ids: &[u32],
        deny: bool,
        class: &PeerClass,
        trace: &mut T,
    ) -> Option<&str> {
        ids.iter()
            .filter_map(|&r| self.rules.get(r as usize))
            .find_map(|rule| {
                let matched = Self::rule_matches(rule, class);
                trace.event(Event::Rule {
                    name: rule.name,
                    deny,
                    matched,
                });
                matched.then_some(rule.name)
            })
    }

    /// Rules, default and audit for the route taken (or the implicit route).
    fn authorize<'b, T: Trace + ?Sized>(
        &'b self,
        mut d: Decision<'b>,
        route: &Route<'b>,
        default: DefaultPolicy,
        class: &PeerClass,
        trace: &mut T,
    ) -> Decision<'b> {
        d.reason = Reason::Rule;
        // A matching deny wins over a matching allow; under audit a deny
        // still allows, keeping the rule it would have had.
        if let Some(rule) = self.first_matching(&route.deny_rules, true, class, trace) {
            d.rule = Some(rule);
            d.audit = default == DefaultPolicy::Audit;
            d.allow = d.audit;
            return d;
        }
        if let Some(rule) = self.first_matching(&route.allow_rules, false, class, trace) {
            d.rule = Some(rule);
            d.allow = true;
            return d;
        }
        trace.event(Event::Default {
            default: default.as_str(),
            of: "server",
        });
        d.reason = Reason::Default;
        let (allow, audit) = apply_default(default, class);
        d.allow = allow;
        d.audit = audit;
        d
    }

    /// Classifies `peer` into the scratch's own peer class and decides
    /// `request`: for callers that decide one request per peer.
    pub fn decide_inbound_peer(
        &self,
        request: &Inbound<'_>,
        peer: &Peer<'_>,
        scratch: &mut Scratch,
    ) -> Result<Decision<'_>, RequestError<'_>> {
        let mut class = std::mem::replace(
            &mut scratch.class,
            crate::bundle::PeerClass {
                stamps: Vec::new(),
                generation: 0,
                has_identity: false,
            },
        );
        self.classify(peer, &mut class);
        let d = self.decide_inbound_traced(request, &class, scratch, &mut NoTrace);
        scratch.class = class;
        d
    }

    /// Decides an inbound request of a peer classified into `class`
    /// (see [`Bundle::classify`]). Never allocates.
    pub fn decide_inbound(
        &self,
        request: &Inbound<'_>,
        class: &PeerClass,
        scratch: &mut Scratch,
    ) -> Result<Decision<'_>, RequestError<'_>> {
        self.decide_inbound_traced(request, class, scratch, &mut NoTrace)
    }

    /// [`Bundle::decide_inbound`], reporting each step to `trace`.
    pub fn decide_inbound_traced<T: Trace + ?Sized>(
        &self,
        request: &Inbound<'_>,
        class: &PeerClass,
        scratch: &mut Scratch,
        trace: &mut T,
    ) -> Result<Decision<'_>, RequestError<'_>> {
        scratch.path_normalized = false;
        let server = self
            .server_for(request.port)
            .and_then(|s| self.servers.get(s as usize));
        trace.event(Event::Server {
            port: request.port,
            name: server.map(|s| s.name),
        });
        let Some(server) = server else {
            trace.event(Event::Default {
                default: self.mesh_default.as_str(),
                of: "mesh",
            });
            let (allow, audit) = apply_default(self.mesh_default, class);
            let mut d = Decision::new(allow, Reason::Default);
            d.audit = audit;
            if let (false, Some(http)) = (allow, &request.http) {
                d = deny_http(d, 403, is_grpc_content_type(http.headers));
            }
            return Ok(d);
        };
        let mut d = Decision::new(false, Reason::Default);
        d.server = Some(server.name);
        let http = match (server.protocol, &request.http) {
            (Protocol::Tcp, _) => None,
            (_, None) => {
                return Err(RequestError::ConnectionToHttpServer {
                    server: server.name,
                })
            }
            (_, Some(http)) => Some(http),
        };
        let Some(http) = http else {
            // A connection: the implicit route, no statuses.
            let route = server.routes.routes.first();
            return Ok(match route {
                Some(route) => self.authorize(d, route, server.default, class, trace),
                None => d,
            });
        };
        // Only denials need to know; allowed requests never look.
        let grpc = || server.protocol == Protocol::Grpc || is_grpc_content_type(http.headers);
        let (path, query) = split_target(http.path);
        if let Err(e) = normalize_path(path, &mut scratch.path) {
            trace.event(Event::Path {
                normalized: b"",
                error: Some(e),
            });
            d.reason = Reason::BadPath;
            return Ok(deny_http(d, 400, grpc()));
        }
        scratch.path_normalized = true;
        trace.event(Event::Path {
            normalized: &scratch.path,
            error: None,
        });
        let request = RouteRequest {
            path: &scratch.path,
            method: http.method,
            headers: http.headers,
            query,
        };
        let rank = self.match_route(&server.routes, &request, &mut scratch.candidates, trace);
        let Some(route) = rank.and_then(|r| server.routes.routes.get(r as usize)) else {
            d.reason = Reason::NoRoute;
            return Ok(deny_http(d, 404, grpc()));
        };
        d.route = route.name;
        d.route_id = rank.map(RouteId);
        let d = self.authorize(d, route, server.default, class, trace);
        Ok(if d.allow {
            d
        } else {
            deny_http(d, 403, grpc())
        })
    }

    /// Decides an outbound request (HTTP, tunnel or TCP). Never allocates.
    pub fn decide_outbound(
        &self,
        request: &Outbound<'_>,
        scratch: &mut Scratch,
    ) -> Result<Decision<'_>, RequestError<'_>> {
        self.decide_outbound_traced(request, scratch, &mut NoTrace)
    }

    /// [`Bundle::decide_outbound`], reporting each step to `trace`.
    pub fn decide_outbound_traced<T: Trace + ?Sized>(
        &self,
        request: &Outbound<'_>,
        scratch: &mut Scratch,
        trace: &mut T,
    ) -> Result<Decision<'_>, RequestError<'_>> {
        scratch.path_normalized = false;
        match (&request.http, request.authority) {
            (Some(http), Some(authority)) => {
                let a = Authority::parse(authority)?;
                let ip = request.ip.or(a.ip);
                trace.event(Event::Authority {
                    host: a.host,
                    port: a.port,
                    ip,
                });
                let grpc = || is_grpc_content_type(http.headers);
                let (path, query) = split_target(http.path);
                if let Err(e) = normalize_path(path, &mut scratch.path) {
                    trace.event(Event::Path {
                        normalized: b"",
                        error: Some(e),
                    });
                    return Ok(deny_http(
                        Decision::new(false, Reason::BadPath),
                        400,
                        grpc(),
                    ));
                }
                scratch.path_normalized = true;
                trace.event(Event::Path {
                    normalized: &scratch.path,
                    error: None,
                });
                if let Some((service_id, svc)) = self.service_for(a.host, a.port) {
                    trace.event(Event::Service { name: svc.name });
                    let request = RouteRequest {
                        path: &scratch.path,
                        method: http.method,
                        headers: http.headers,
                        query,
                    };
                    let rank =
                        self.match_route(&svc.routes, &request, &mut scratch.candidates, trace);
                    let mut d = Decision::new(true, Reason::Service);
                    d.service = Some(svc.name);
                    d.service_id = Some(service_id);
                    let Some(route) = rank.and_then(|r| svc.routes.routes.get(r as usize)) else {
                        d.reason = Reason::NoRoute;
                        return Ok(deny_http(d, 404, grpc()));
                    };
                    d.route = route.name;
                    d.route_id = rank.map(RouteId);
                    d.backends = &route.backends;
                    d.timeout_ms = route.timeout_ms.or(svc.timeout_ms);
                    return Ok(d);
                }
                let d = self.egress_decision(Some(a.host), a.port, ip, trace);
                Ok(if d.allow {
                    d
                } else {
                    deny_http(d, 403, grpc())
                })
            }
            (None, Some(authority)) => {
                let a = Authority::parse(authority)?;
                let ip = request.ip.or(a.ip);
                trace.event(Event::Authority {
                    host: a.host,
                    port: a.port,
                    ip,
                });
                let d = self.egress_decision(Some(a.host), a.port, ip, trace);
                Ok(if d.allow { d } else { deny_http(d, 403, false) })
            }
            (Some(_), None) => Err(RequestError::Incomplete {
                what: "an HTTP request needs an authority",
            }),
            (None, None) => match (request.ip, request.port) {
                (Some(ip), Some(port)) => Ok(self.egress_decision(None, port, Some(ip), trace)),
                _ => Err(RequestError::Incomplete {
                    what: "a TCP request needs `ip` and `port`",
                }),
            },
        }
    }

    fn service_for(
        &self,
        host: &str,
        port: u16,
    ) -> Option<(ServiceId, &crate::bundle::Service<'a>)> {
        let i = self
            .authorities
            .binary_search_by(|(h, p, _)| cmp_host(host, h).reverse().then(p.cmp(&port)))
            .ok()?;
        let id = self.authorities[i].2;
        Some((ServiceId(id), self.services.get(id as usize)?))
    }

    /// The egress decision for a destination (spec section 5, step 2).
    fn egress_decision<T: Trace + ?Sized>(
        &self,
        host: Option<&str>,
        port: u16,
        ip: Option<IpAddr>,
        trace: &mut T,
    ) -> Decision<'_> {
        let Some(eg) = &self.egress else {
            trace.event(Event::Default {
                default: "allow",
                of: "egress (no block)",
            });
            return Decision::new(true, Reason::Default);
        };
        let mut best_deny = u32::MAX;
        let mut best_allow = u32::MAX;
        let mut consider = |id: u32| {
            let Some(rule) = eg.rules.get(id as usize) else {
                return;
            };
            let port_ok =
                rule.ports.is_empty() || rule.ports.iter().any(|&(a, b)| a <= port && port <= b);
            trace.event(Event::EgressRule {
                name: rule.name,
                deny: rule.deny,
                matched: port_ok,
            });
            if port_ok {
                let best = if rule.deny {
                    &mut best_deny
                } else {
                    &mut best_allow
                };
                *best = (*best).min(id);
            }
        };
        for &id in &eg.open_rules {
            consider(id);
        }
        if let Some(host) = host {
            for &id in &eg.star_rules {
                consider(id);
            }
            crate::peer::for_each_match(
                &eg.hosts,
                host.bytes().rev().map(|b| b.to_ascii_lowercase()),
                |p| {
                    if let Some(ids) = eg.host_rules.get(p as usize) {
                        for &id in ids {
                            consider(id);
                        }
                    }
                },
            );
        }
        if let Some(ip) = ip {
            for &atom in eg.nets.lookup(ip) {
                if let Some(ids) = eg.nets.targets.get(atom as usize) {
                    for &id in ids {
                        consider(id);
                    }
                }
            }
        }
        if best_deny != u32::MAX {
            let mut d = Decision::new(false, Reason::Rule);
            d.rule = eg.rules.get(best_deny as usize).map(|r| r.name);
            d
        } else if best_allow != u32::MAX {
            let mut d = Decision::new(true, Reason::Rule);
            d.rule = eg.rules.get(best_allow as usize).map(|r| r.name);
            d
        } else {
            trace.event(Event::Default {
                default: if eg.default_deny { "deny" } else { "allow" },
                of: "egress",
            });
            Decision::new(!eg.default_deny, Reason::Default)
        }
    }
}
