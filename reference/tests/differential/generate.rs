//! Generating a policy model.

use crate::model::{
    Backend, BreakerSpec, Def, Egress, EgressRule, Mesh, Model, Net, PathCond, Principal, Proto,
    RetrySpec, Route, Rule, Server, Service, Vm,
};
use crate::pools::{
    ACCOUNTS, BACKEND_IDENTITIES, BACKEND_NAMES, BACKOFFS, CLUSTERS, DURATIONS, EGRESS_PORT_SETS,
    EGRESS_RULE_NAMES, ENDPOINTS, EXCEPT_NETS, GRPC_METHODS, GRPC_SERVICES, HEADER_REGEXES,
    HEADER_VALUES, HOST_PATTERNS, METHODS, NAMESPACES, NETS, PATH_REGEXES, POLICY_HEADER_NAMES,
    PORT_SLOTS, QUERY_EQ_VALUES, QUERY_KEYS, QUERY_REGEXES, RETRY_CONDS, ROUTE_NAMES, RULE_NAMES,
    SEGMENTS, SERVER_NAMES, SERVICE_HOSTS, SERVICE_NAMES, TRUST_DOMAINS,
};
use crate::rng::{Draw, Gen};

/// A normalized policy path of `lo..=hi` segments.
pub(crate) fn policy_path(g: &mut Gen, lo: usize, hi: usize) -> String {
    let n = g.range(lo, hi);
    let mut p = String::new();
    for _ in 0..n {
        p.push('/');
        if g.chance(4) {
            p.push_str(&g.s(&["%3A", "%C3%A9", "a;b", "a+b", "..."]));
        } else {
            p.push_str(&g.s(SEGMENTS));
        }
    }
    if p.is_empty() {
        p.push('/');
    }
    p
}

pub(crate) fn gen_vm(g: &mut Gen, eq: &[&str], re: &[&str]) -> Vm {
    match g.weighted(&[40, 30, 30]) {
        0 => Vm::Eq(g.s(eq)),
        1 => Vm::Re(g.s(re)),
        _ => Vm::Present,
    }
}

/// A route; `backends` is `Some` for a service route.
pub(crate) fn gen_route(g: &mut Gen, name: &str, backends: Option<&[Backend]>) -> Route {
    let path = match g.weighted(&[20, 20, 25, 15, 20]) {
        0 => None,
        1 => {
            let mut p = policy_path(g, 1, 3);
            if g.chance(15) {
                p.push('/');
            }
            if g.chance(5) {
                p = "/".to_string();
            }
            Some(PathCond::Exact(p))
        }
        2 => {
            if g.chance(8) {
                Some(PathCond::Prefix("/".to_string()))
            } else {
                let mut p = policy_path(g, 1, 2);
                if g.chance(30) {
                    p.push('/');
                }
                Some(PathCond::Prefix(p))
            }
        }
        3 => Some(PathCond::Regex(g.s(PATH_REGEXES))),
        _ => {
            let svc = g.s(GRPC_SERVICES);
            let method = if g.chance(50) {
                "*".to_string()
            } else {
                g.s(GRPC_METHODS)
            };
            Some(PathCond::Grpc(format!("{svc}/{method}")))
        }
    };
    let methods = if g.chance(35) {
        let n = g.range(1, 2);
        g.distinct(METHODS, n)
    } else {
        Vec::new()
    };
    let n_headers = g.weighted(&[45, 30, 18, 7]);
    let headers = (0..n_headers)
        .map(|_| {
            (
                g.s(POLICY_HEADER_NAMES),
                gen_vm(g, HEADER_VALUES, HEADER_REGEXES),
            )
        })
        .collect();
    let n_queries = g.weighted(&[60, 30, 10]);
    let queries = (0..n_queries)
        .map(|_| (g.s(QUERY_KEYS), gen_vm(g, QUERY_EQ_VALUES, QUERY_REGEXES)))
        .collect();
    let mut route = Route {
        name: name.to_string(),
        methods,
        path,
        headers,
        queries,
        to: Vec::new(),
        timeout: None,
        retry: None,
    };
    if let Some(backends) = backends {
        let names: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
        let n = g.range(1, names.len().min(3));
        for b in g.distinct(&names, n) {
            let w = match g.weighted(&[35, 20, 40, 5]) {
                0 => None,
                1 => Some(0),
                2 => Some(g.range(1, 100) as u32),
                _ => Some(u32::MAX),
            };
            route.to.push((b, w));
        }
        if route.to.iter().all(|(_, w)| *w == Some(0)) {
            route.to[0].1 = if g.chance(50) { None } else { Some(1) };
        }
        if g.chance(35) {
            route.timeout = Some(*g.pick(DURATIONS));
        }
        route.retry = g.chance(15).then(|| gen_retry(g));
    }
    route
}

/// A `retry` block, each statement written or not.
pub(crate) fn gen_retry(g: &mut Gen) -> RetrySpec {
    RetrySpec {
        attempts: g.chance(60).then(|| *g.pick(&[0u32, 1, 2, 5, u32::MAX])),
        on: g.chance(60).then(|| {
            let n = g.range(1, 4);
            let mut on: Vec<&'static str> = Vec::new();
            for _ in 0..n {
                let c = *g.pick(RETRY_CONDS);
                if !on.contains(&c) {
                    on.push(c);
                }
            }
            on
        }),
        per_try_timeout: g.chance(50).then(|| g.pick(DURATIONS).0),
        budget: g.chance(40).then(|| *g.pick(&[0u8, 5, 20, 100])),
    }
}

/// A `circuit-breaker` block, each statement written or not.
pub(crate) fn gen_breaker(g: &mut Gen) -> BreakerSpec {
    BreakerSpec {
        consecutive_failures: g.chance(60).then(|| *g.pick(&[0u32, 1, 5, u32::MAX])),
        backoff: g.chance(50).then(|| *g.pick(BACKOFFS)),
        jitter: g.chance(50).then(|| *g.pick(&[0u8, 10, 100])),
    }
}

/// An identity pattern.
pub(crate) fn gen_pattern(g: &mut Gen, td: Option<&str>) -> String {
    if g.chance(10) {
        return "*".to_string();
    }
    let td = match td {
        Some(td) if g.chance(70) => td.to_string(),
        _ => g.s(TRUST_DOMAINS),
    };
    let ns = g.s(NAMESPACES);
    let ns = if g.chance(8) { g.recase(&ns) } else { ns };
    let sa = g.s(ACCOUNTS);
    match g.weighted(&[35, 12, 15, 15, 8, 3, 5, 5]) {
        0 => format!("spiffe://{td}/ns/{ns}/sa/{sa}"),
        1 => format!("spiffe://{td}/ns/*/sa/{sa}"),
        2 => format!("spiffe://{td}/ns/{ns}/sa/*"),
        3 => format!("spiffe://{td}/ns/{ns}/**"),
        4 => format!("spiffe://{td}/**"),
        5 => format!("spiffe://{td}"),
        6 => format!("spiffe://{td}/x"),
        _ => format!("spiffe://{td}/*/*/sa/*"),
    }
}

pub(crate) fn gen_networks(g: &mut Gen) -> (Vec<Net>, Vec<Net>) {
    let n = g.range(1, 2);
    let include: Vec<Net> = g.distinct(NETS, n).iter().map(|s| Net::parse(s)).collect();
    let mut except = Vec::new();
    if g.chance(50) {
        let candidates: Vec<&str> = EXCEPT_NETS
            .iter()
            .copied()
            .filter(|e| {
                let e = Net::parse(e);
                include.iter().any(|i| i.contains_net(&e))
            })
            .collect();
        if !candidates.is_empty() {
            let n = g.range(1, 2);
            except = g
                .distinct(&candidates, n)
                .iter()
                .map(|s| Net::parse(s))
                .collect();
        }
    }
    (include, except)
}

pub(crate) fn gen_principal(g: &mut Gen, td: Option<&str>) -> Principal {
    let ns_weight = if td.is_some() { 15 } else { 0 };
    match g.weighted(&[8, 10, 35, ns_weight, 32]) {
        0 => Principal::Any,
        1 => Principal::Authenticated,
        2 => {
            let n = g.range(1, 3);
            Principal::Identity((0..n).map(|_| gen_pattern(g, td)).collect())
        }
        3 => {
            let n = g.range(1, 2);
            Principal::Namespace(g.distinct(NAMESPACES, n))
        }
        _ => {
            let (inc, exc) = gen_networks(g);
            Principal::Network(inc, exc)
        }
    }
}

/// The normalized `(host, port)` of an authority entry, for conflicts.
pub(crate) fn authority_key(a: &str) -> (String, u16) {
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let close = rest.find(']').unwrap_or(rest.len());
        let port = rest[close..]
            .strip_prefix("]:")
            .map_or(80, |p| p.parse().unwrap_or(0));
        (rest[..close].to_string(), port)
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().unwrap_or(0)),
            None => (a.to_string(), 80),
        }
    };
    let host = host.to_ascii_lowercase();
    (
        host.strip_suffix('.').map(str::to_string).unwrap_or(host),
        port,
    )
}

pub(crate) fn gen_model(g: &mut Gen) -> Model {
    let mesh = g.chance(70).then(|| Mesh {
        trust_domain: g.chance(75).then(|| g.s(TRUST_DOMAINS)),
        default: g.chance(55).then(|| *g.pick(&Def::ALL)),
    });
    let td = mesh.as_ref().and_then(|m| m.trust_domain.clone());

    // Servers.
    let n_servers = g.range(1, 4);
    let names = g.distinct(SERVER_NAMES, n_servers);
    let mut slots: Vec<usize> = (0..PORT_SLOTS.len()).collect();
    g.shuffle(&mut slots);
    let mut slots = slots.into_iter();
    let mut servers = Vec::new();
    for name in names {
        let mut ports = Vec::new();
        // A server without `port` covers nothing.
        let n_slots = if g.chance(3) { 0 } else { g.range(1, 2) };
        for _ in 0..n_slots {
            if let Some(slot) = slots.next() {
                ports.extend_from_slice(PORT_SLOTS[slot]);
            }
        }
        let protocol = match g.weighted(&[30, 15, 25, 30]) {
            0 => None,
            1 => Some(Proto::Http),
            2 => Some(Proto::Grpc),
            _ => Some(Proto::Tcp),
        };
        let default = g.chance(80).then(|| *g.pick(&Def::ALL));
        let mut routes = Vec::new();
        if protocol != Some(Proto::Tcp) && g.chance(78) {
            let n = g.range(1, 4);
            for rname in g.distinct(ROUTE_NAMES, n) {
                routes.push(gen_route(g, &rname, None));
            }
        }
        servers.push(Server {
            name,
            ports,
            protocol,
            default,
            routes,
        });
    }

    // Rules.
    let n_rules = g.weighted(&[8, 15, 20, 20, 15, 12, 10]);
    let mut rules = Vec::new();
    for name in g.distinct(RULE_NAMES, n_rules) {
        let n_targets = g.range(1, 2);
        let mut targets: Vec<(String, Option<String>)> = Vec::new();
        for _ in 0..n_targets {
            let s = g.pick(&servers);
            let t = if s.proto() != Proto::Tcp && !s.routes.is_empty() && g.chance(55) {
                (s.name.clone(), Some(g.pick(&s.routes).name.clone()))
            } else {
                (s.name.clone(), None)
            };
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
        let n_froms = g.weighted(&[0, 60, 30, 10]);
        let froms = (0..n_froms)
            .map(|_| gen_principal(g, td.as_deref()))
            .collect();
        rules.push(Rule {
            name,
            deny: g.chance(35),
            targets,
            froms,
        });
    }

    // Egress.
    let egress = g.chance(60).then(|| {
        let default = match g.weighted(&[30, 35, 35]) {
            0 => None,
            1 => Some(true),
            _ => Some(false),
        };
        let n = g.weighted(&[10, 25, 25, 25, 15]);
        let rules = g
            .distinct(EGRESS_RULE_NAMES, n)
            .into_iter()
            .map(|name| {
                let (hosts, nets) = match g.weighted(&[40, 25, 10, 25]) {
                    0 => (true, false),
                    1 => (false, true),
                    2 => (true, true),
                    _ => (false, false),
                };
                let hosts = if hosts {
                    let n = g.range(1, 2);
                    g.distinct(HOST_PATTERNS, n)
                } else {
                    Vec::new()
                };
                let nets = nets.then(|| gen_networks(g));
                let ports = if g.chance(55) {
                    g.pick(EGRESS_PORT_SETS).to_vec()
                } else {
                    Vec::new()
                };
                EgressRule {
                    name,
                    deny: g.chance(40),
                    hosts,
                    nets,
                    ports,
                }
            })
            .collect();
        Egress { default, rules }
    });

    // Services.
    let n_services = g.weighted(&[30, 45, 25]);
    let mut services = Vec::new();
    let mut taken_authorities: Vec<(String, u16)> = Vec::new();
    for name in g.distinct(SERVICE_NAMES, n_services) {
        let mut authorities = Vec::new();
        for _ in 0..g.range(1, 2) {
            let host = g.s(SERVICE_HOSTS);
            let host = if host.starts_with('[') || host.starts_with("10.") {
                host
            } else {
                let mut h = g.recase(&host);
                if g.chance(15) {
                    h.push('.');
                }
                h
            };
            let text = match g.weighted(&[45, 10, 30, 15]) {
                0 => host,
                1 => format!("{host}:80"),
                2 => format!("{host}:8080"),
                _ => format!("{host}:9090"),
            };
            let key = authority_key(&text);
            if !taken_authorities.contains(&key) {
                taken_authorities.push(key);
                authorities.push(text);
            }
        }
        if authorities.is_empty() {
            continue;
        }
        let n_backends = g.range(1, 3);
        let names = g.distinct(BACKEND_NAMES, n_backends);
        let mut backends: Vec<Backend> = names
            .iter()
            .map(|n| {
                let n_endpoints = if g.chance(70) { g.range(1, 3) } else { 0 };
                let mut endpoints: Vec<&'static str> = Vec::new();
                for _ in 0..n_endpoints {
                    let e = *g.pick(ENDPOINTS);
                    if !endpoints.contains(&e) {
                        endpoints.push(e);
                    }
                }
                Backend {
                    name: n.clone(),
                    endpoints,
                    failover: None,
                    identity: g.chance(20).then(|| *g.pick(BACKEND_IDENTITIES)),
                    cluster: g.chance(20).then(|| *g.pick(CLUSTERS)),
                    max_in_flight: g.chance(20).then(|| *g.pick(&[0u32, 1, 100, u32::MAX])),
                }
            })
            .collect();
        for i in 0..backends.len().saturating_sub(1) {
            if g.chance(15) {
                let j = g.range(i + 1, backends.len() - 1);
                backends[i].failover = Some(backends[j].name.clone());
            }
        }
        let n_routes = g.range(1, 3);
        let routes = g
            .distinct(ROUTE_NAMES, n_routes)
            .iter()
            .map(|r| gen_route(g, r, Some(&backends)))
            .collect();
        services.push(Service {
            name,
            authorities,
            timeout: g.chance(40).then(|| *g.pick(DURATIONS)),
            backends,
            routes,
            retry: g.chance(20).then(|| gen_retry(g)),
            breaker: g.chance(20).then(|| gen_breaker(g)),
        });
    }
    let style = g.next_u64();
    let files = g.chance(30).then(|| g.next_u64());
    Model {
        mesh,
        servers,
        rules,
        egress,
        services,
        style,
        files,
        extra: Vec::new(),
    }
}
