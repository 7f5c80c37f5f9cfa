//! Witness requests for `sluice diff`: a finite set of requests such that
//! every request of spec section 10 is decided, by both bundles at once,
//! like one of them (see docs/diff.md). Pure: bundle contents in, requests
//! out; the caller decides each witness with both bundles.

pub mod intervals;
pub mod product;
pub mod routes;

use product::{Class, Dfa};
use sluice_runtime::bundle::encode::{Contents, Networks, RouteSet, Tables};
use sluice_runtime::bundle::{DefaultPolicy, Protocol};
use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

/// Product tuples one class enumeration may visit.
pub const PRODUCT_BUDGET: usize = 2_000_000;
/// Witness requests one diff may produce.
pub const WITNESS_BUDGET: usize = 2_000_000;

/// A budget was exceeded: the diff refuses rather than answer inexactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// What grew past the budget.
    pub what: &'static str,
    /// The budget.
    pub limit: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} exceeds the budget of {}", self.what, self.limit)
    }
}

/// Why no witness set could be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnumerateError {
    /// A budget was exceeded.
    TooLarge(TooLarge),
    /// An automaton of the bundle or of the diff did not load or build.
    Automaton(String),
}

impl std::fmt::Display for EnumerateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnumerateError::TooLarge(t) => t.fmt(f),
            EnumerateError::Automaton(m) => f.write_str(m),
        }
    }
}

impl From<TooLarge> for EnumerateError {
    fn from(t: TooLarge) -> Self {
        EnumerateError::TooLarge(t)
    }
}

/// The HTTP part of a witness request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpPart {
    /// The method.
    pub method: String,
    /// The path with its query (`/a?k=v`), as a request carries it.
    pub path: String,
    /// Headers (lowercase names, one value each).
    pub headers: Vec<(String, String)>,
}

/// A witness request, shaped as spec section 10.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WitnessRequest {
    /// An inbound request: a connection when `http` is `None`.
    Inbound {
        /// Destination port.
        port: u16,
        /// Method, path and headers.
        http: Option<HttpPart>,
        /// The peer's IP.
        ip: Option<IpAddr>,
        /// The peer's identity.
        identity: Option<String>,
    },
    /// An outbound request: HTTP (authority and `http`), a tunnel
    /// (authority only) or TCP (`ip` and `port`).
    Outbound {
        /// `host:port`.
        authority: Option<String>,
        /// Method, path and headers.
        http: Option<HttpPart>,
        /// The destination IP.
        ip: Option<IpAddr>,
        /// The TCP port.
        port: Option<u16>,
    },
}

/// One bundle's contents with its automata loaded.
pub struct Side<'c> {
    /// The tables.
    pub tables: &'c Tables,
    /// The automata, by index.
    pub dfas: Vec<Dfa>,
}

impl<'c> Side<'c> {
    /// Loads every automaton of `contents`.
    pub fn new(contents: &'c Contents) -> Result<Side<'c>, EnumerateError> {
        let dfas = contents
            .automata
            .iter()
            .map(|a| Dfa::from_serialized(a))
            .collect::<Result<_, _>>()
            .map_err(EnumerateError::Automaton)?;
        Ok(Side {
            tables: &contents.tables,
            dfas,
        })
    }

    fn dfa(&self, i: u32) -> Result<&Dfa, EnumerateError> {
        self.dfas
            .get(i as usize)
            .ok_or_else(|| EnumerateError::Automaton(format!("no automaton `{i}`")))
    }
}

fn build(patterns: &[String]) -> Result<Dfa, EnumerateError> {
    Dfa::build(patterns).map_err(EnumerateError::Automaton)
}

fn classes(dfas: &[(&Dfa, u32)], domain: &Dfa) -> Result<Vec<Class>, EnumerateError> {
    Ok(product::classes(dfas, domain, PRODUCT_BUDGET)?)
}

/// A SPIFFE path segment: `[A-Za-z0-9._-]+`, not `.` or `..`.
const SPIFFE_SEGMENT: &str =
    r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)";

/// The longest SPIFFE ID the runtime matches against patterns.
const MAX_SPIFFE_ID_LEN: usize = 2048;

fn push_witness(out: &mut Vec<WitnessRequest>, w: WitnessRequest) -> Result<(), TooLarge> {
    if out.len() >= WITNESS_BUDGET {
        return Err(TooLarge {
            what: "the number of witness requests",
            limit: WITNESS_BUDGET,
        });
    }
    out.push(w);
    Ok(())
}

/// Identity classes: per class, the clauses the identity satisfies on each
/// side, whether there is one, and a witness.
struct IdClass {
    sat: [Vec<u32>; 2],
    has: bool,
    identity: Option<String>,
}

fn identity_classes(sides: &[Side<'_>; 2]) -> Result<Vec<IdClass>, EnumerateError> {
    let auth = |s: usize| {
        let mut v = sides[s].tables.authenticated_clauses.clone();
        v.sort_unstable();
        v
    };
    let mut out = vec![IdClass {
        sat: [vec![], vec![]],
        has: false,
        identity: None,
    }];
    out.push(IdClass {
        sat: [auth(0), auth(1)],
        has: true,
        identity: Some("not-a-spiffe-id".into()),
    });
    let names: BTreeSet<&str> = sides
        .iter()
        .flat_map(|s| s.tables.trust_domains.iter().map(|t| t.name.as_str()))
        .collect();
    let mut other = "other.invalid".to_string();
    while names.contains(other.as_str()) {
        other.insert(0, 'x');
    }
    out.push(IdClass {
        sat: [auth(0), auth(1)],
        has: true,
        identity: Some(format!("spiffe://{other}/x")),
    });
    let domain = build(&[format!("(?:/{SPIFFE_SEGMENT})*")])?;
    for td in names {
        // Per side: the literal table as one automaton (3 patterns a key),
        // then the identity automata.
        let mut owned: Vec<Dfa> = Vec::new();
        let mut plan: Vec<(usize, Option<u32>, u32)> = Vec::new(); // side, automaton, offset
        let mut offset = 0u32;
        let tds: Vec<_> = sides
            .iter()
            .map(|s| s.tables.trust_domains.iter().find(|t| t.name == td))
            .collect();
        let mut lit_offset = [0u32; 2];
        for (s, t) in tds.iter().enumerate() {
            let Some(t) = t else { continue };
            if !t.literals.is_empty() {
                let mut pats = Vec::new();
                for l in &t.literals {
                    let p = product::literal(&l.path);
                    pats.push(p.clone());
                    pats.push(format!("{p}/[^/]+"));
                    pats.push(format!("{p}(?:/[^/]+)+"));
                }
                owned.push(build(&pats)?);
                plan.push((s, None, offset));
                lit_offset[s] = offset;
                offset += pats.len() as u32;
            }
        }
        let mut auto_offset: [Vec<(u32, u32)>; 2] = [vec![], vec![]]; // (offset, first global pattern)
        for (s, t) in tds.iter().enumerate() {
            let Some(t) = t else { continue };
            let mut first = 0u32;
            for &a in &t.automata {
                let d = sides[s].dfa(a)?;
                plan.push((s, Some(a), offset));
                auto_offset[s].push((offset, first));
                let n = d.pattern_len() as u32;
                offset += n;
                first += n;
            }
        }
        let mut owned_iter = owned.iter();
        let mut dfas: Vec<(&Dfa, u32)> = Vec::new();
        for &(s, a, off) in &plan {
            match a {
                None => dfas.push((
                    owned_iter.next().expect("one literal automaton a side"),
                    off,
                )),
                Some(a) => dfas.push((sides[s].dfa(a)?, off)),
            }
        }
        for class in classes(&dfas, &domain)? {
            let path = String::from_utf8_lossy(&class.witness).into_owned();
            let id = format!("spiffe://{td}{path}");
            if id.len() > MAX_SPIFFE_ID_LEN {
                // Every member is longer than the runtime matches: it
                // satisfies only `"*"`, like the `not-a-spiffe-id` class.
                continue;
            }
            let mut sat = [auth(0), auth(1)];
            for &g in &class.matches {
                // Find which automaton the global id belongs to.
                let Some(&(s, a, off)) = plan.iter().rev().find(|p| p.2 <= g) else {
                    continue;
                };
                let Some(t) = tds[s] else { continue };
                let local = g - off;
                match a {
                    None => {
                        let l = &t.literals[(local / 3) as usize];
                        let c = match local % 3 {
                            0 => &l.whole,
                            1 => &l.one_segment,
                            _ => &l.segments,
                        };
                        sat[s].extend_from_slice(c);
                    }
                    Some(_) => {
                        let first = auto_offset[s]
                            .iter()
                            .find(|(o, _)| *o == off)
                            .map_or(0, |(_, f)| *f);
                        if let Some(c) = t.pattern_clauses.get((first + local) as usize) {
                            sat[s].extend_from_slice(c);
                        }
                    }
                }
            }
            let _ = lit_offset;
            for v in &mut sat {
                v.sort_unstable();
                v.dedup();
            }
            out.push(IdClass {
                sat,
                has: true,
                identity: Some(id),
            });
        }
    }
    Ok(out)
}

/// Peer address classes: per class, the targets the address holds on each
/// side, and the address (`None`: no IP).
type IpClass = ([Vec<u32>; 2], Option<IpAddr>);

fn ip_classes(tables: [Option<&Networks>; 2]) -> Vec<IpClass> {
    let mut out: Vec<IpClass> = vec![([vec![], vec![]], None)];
    out.extend(
        intervals::addresses(tables)
            .into_iter()
            .map(|(ip, t)| (t, Some(ip))),
    );
    out
}

fn project(v: &[u32], keep: &BTreeSet<u32>) -> Vec<u32> {
    v.iter().copied().filter(|c| keep.contains(c)).collect()
}

/// What one side does with an inbound request, as far as the peer matters.
fn inbound_clauses(t: &Tables, server: Option<u32>, route: Option<u32>) -> (BTreeSet<u32>, bool) {
    let mut keep = BTreeSet::new();
    let Some(s) = server.and_then(|s| t.servers.get(s as usize)) else {
        return (keep, t.mesh_default == DefaultPolicy::Authenticated);
    };
    let route = if s.protocol == Protocol::Tcp {
        s.routes.routes.first()
    } else {
        route.and_then(|r| s.routes.routes.get(r as usize))
    };
    if let Some(r) = route {
        for &id in r.deny_rules.iter().chain(&r.allow_rules) {
            if let Some(rule) = t.rules.get(id as usize) {
                keep.extend(rule.clauses.iter().copied());
            }
        }
    }
    (keep, s.default == DefaultPolicy::Authenticated)
}

fn server_for(t: &Tables, port: u16) -> Option<u32> {
    t.servers
        .iter()
        .position(|s| s.ports.iter().any(|&(a, b)| a <= port && port <= b))
        .map(|i| i as u32)
}

/// The witness requests of `old` and `new`: every request of spec section
/// 10 that is not an error for either is decided by both bundles like one
/// of them. Deterministic order.
pub fn witness_requests(
    old: &Contents,
    new: &Contents,
) -> Result<Vec<WitnessRequest>, EnumerateError> {
    let sides = [Side::new(old)?, Side::new(new)?];
    let mut out = Vec::new();
    let mut route_cache = routes::Cache::default();
    inbound(&sides, &mut route_cache, &mut out)?;
    outbound(&sides, &mut route_cache, &mut out)?;
    Ok(out)
}

fn inbound(
    sides: &[Side<'_>; 2],
    cache: &mut routes::Cache,
    out: &mut Vec<WitnessRequest>,
) -> Result<(), EnumerateError> {
    let ranges: Vec<(u16, u16)> = sides
        .iter()
        .flat_map(|s| {
            s.tables
                .servers
                .iter()
                .flat_map(|sv| sv.ports.iter().copied())
        })
        .collect();
    let ids = identity_classes(sides)?;
    let ips = ip_classes([
        Some(&sides[0].tables.peer_networks),
        Some(&sides[1].tables.peer_networks),
    ]);
    // Per side, per clause, the address classes that hold it.
    let mut ip_index: [std::collections::HashMap<u32, Vec<usize>>; 2] = Default::default();
    for (i, (t, _)) in ips.iter().enumerate() {
        for s in 0..2 {
            for &c in &t[s] {
                ip_index[s].entry(c).or_default().push(i);
            }
        }
    }
    // Per side, per clause other than those every identity holds, the
    // identity classes that hold it.
    let mut id_index: [std::collections::HashMap<u32, Vec<usize>>; 2] = Default::default();
    for (i, c) in ids.iter().enumerate() {
        for s in 0..2 {
            for &cl in &c.sat[s] {
                if !sides[s].tables.authenticated_clauses.contains(&cl) {
                    id_index[s].entry(cl).or_default().push(i);
                }
            }
        }
    }
    let mut pairs = HashSet::new();
    for port in intervals::ports(&ranges, 0, u16::MAX) {
        let servers = [
            server_for(sides[0].tables, port),
            server_for(sides[1].tables, port),
        ];
        if !pairs.insert(servers) {
            continue;
        }
        let sets: Vec<Option<&RouteSet>> = (0..2)
            .map(|s| {
                servers[s]
                    .and_then(|i| sides[s].tables.servers.get(i as usize))
                    .filter(|sv| sv.protocol != Protocol::Tcp)
                    .map(|sv| &sv.routes)
            })
            .collect();
        let is_http = |s: usize| sets[s].is_some();
        let mut kinds: Vec<Option<routes::Outcome>> = Vec::new();
        if !is_http(0) && !is_http(1) {
            kinds.push(None);
        }
        let keys = [
            servers[0].map(routes::SetKey::Server),
            servers[1].map(routes::SetKey::Server),
        ];
        for o in routes::outcomes(sides, [sets[0], sets[1]], keys, cache)?.iter() {
            kinds.push(Some(o.clone()));
        }
        for kind in kinds {
            let route = |s: usize| kind.as_ref().and_then(|o| o.ranks[s]);
            let bad = kind.as_ref().is_some_and(|o| o.bad_path);
            let (mut keep, mut authn) = (Vec::new(), false);
            for s in 0..2 {
                let (k, a) = if bad && is_http(s) {
                    (BTreeSet::new(), false)
                } else {
                    inbound_clauses(sides[s].tables, servers[s], route(s))
                };
                keep.push(k);
                authn |= a;
            }
            // Classes 0 (no identity) and 1 (not a SPIFFE ID: only the
            // clauses every identity holds) stand for every class that holds
            // no other kept clause.
            let mut id_near: BTreeSet<usize> = BTreeSet::from([0, 1]);
            for s in 0..2 {
                for c in &keep[s] {
                    if let Some(v) = id_index[s].get(c) {
                        id_near.extend(v.iter().copied());
                    }
                }
            }
            let mut id_seen = HashSet::new();
            let id_proj: Vec<&IdClass> = id_near
                .into_iter()
                .map(|i| &ids[i])
                .filter(|c| {
                    let key = (
                        project(&c.sat[0], &keep[0]),
                        project(&c.sat[1], &keep[1]),
                        authn && c.has,
                    );
                    id_seen.insert(key)
                })
                .collect();
            // Only classes holding a kept clause can project to anything but
            // nothing, which the first class (no IP) stands for.
            let mut near: BTreeSet<usize> = BTreeSet::from([0]);
            for s in 0..2 {
                for c in &keep[s] {
                    if let Some(v) = ip_index[s].get(c) {
                        near.extend(v.iter().copied());
                    }
                }
            }
            let mut ip_seen = HashSet::new();
            let ip_proj: Vec<&IpClass> = near
                .into_iter()
                .map(|i| &ips[i])
                .filter(|(t, _)| {
                    ip_seen.insert((project(&t[0], &keep[0]), project(&t[1], &keep[1])))
                })
                .collect();
            for id in &id_proj {
                for (_, ip) in &ip_proj {
                    push_witness(
                        out,
                        WitnessRequest::Inbound {
                            port,
                            http: kind.as_ref().map(|o| o.http.clone()),
                            ip: *ip,
                            identity: id.identity.clone(),
                        },
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// The egress rules of `t` that a destination matches, given the rules its
/// host matched (`None`: no host), its port and the rules its IP matched.
fn egress_key(t: &Tables, host_rules: Option<&[u32]>, port: u16, ip_rules: &[u32]) -> Vec<u32> {
    let Some(eg) = &t.egress else {
        return Vec::new();
    };
    let mut ids: Vec<u32> = eg
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.any_destination)
        .map(|(i, _)| i as u32)
        .collect();
    if let Some(h) = host_rules {
        ids.extend_from_slice(&eg.star_rules);
        ids.extend_from_slice(h);
    }
    ids.extend_from_slice(ip_rules);
    ids.retain(|&id| {
        eg.rules.get(id as usize).is_some_and(|r| {
            r.ports.is_empty() || r.ports.iter().any(|&(a, b)| a <= port && port <= b)
        })
    });
    ids.sort_unstable();
    ids.dedup();
    // Only the first deny and the first allow decide.
    let first = |deny: bool| {
        ids.iter()
            .copied()
            .find(|&i| eg.rules[i as usize].deny == deny)
    };
    [first(true), first(false)].into_iter().flatten().collect()
}

/// Host classes: the egress host patterns each side's host matches, the
/// service authority host it equals (if any), and the host.
struct HostClass {
    rules: [Vec<u32>; 2],
    service_host: Option<String>,
    host: String,
}

fn host_classes(sides: &[Side<'_>; 2]) -> Result<Vec<HostClass>, EnumerateError> {
    let hosts: BTreeSet<&str> = sides
        .iter()
        .flat_map(|s| {
            s.tables
                .services
                .iter()
                .flat_map(|sv| sv.authorities.iter().map(|(h, _)| h.as_str()))
        })
        .collect();
    let hosts: Vec<&str> = hosts.into_iter().collect();
    let mut owned = Vec::new();
    if !hosts.is_empty() {
        let pats: Vec<String> = hosts
            .iter()
            .map(|h| product::literal(&h.bytes().rev().collect::<Vec<u8>>()))
            .collect();
        owned.push(build(&pats)?);
    }
    let mut plan: Vec<(Option<usize>, u32, u32)> = Vec::new(); // side (None: hosts), offset, first pattern
    let mut offset = hosts.len() as u32;
    if !hosts.is_empty() {
        plan.push((None, 0, 0));
    }
    let mut dfas: Vec<(&Dfa, u32)> = owned.iter().map(|d| (d, 0)).collect();
    for (s, side) in sides.iter().enumerate() {
        let Some(eg) = &side.tables.egress else {
            continue;
        };
        let mut first = 0;
        for &a in &eg.host_automata {
            let d = side.dfa(a)?;
            dfas.push((d, offset));
            plan.push((Some(s), offset, first));
            let n = d.pattern_len() as u32;
            offset += n;
            first += n;
        }
    }
    // Lowercase RFC 3986 reg-name bytes (the runtime lowercases the host).
    let domain = build(&[r"[a-z0-9\-._~%!$&'()*+,;=]+".to_string()])?;
    let mut out = Vec::new();
    // Classes whose shortest host is an IPv4 literal, by match set.
    let mut ip_shaped: Vec<(Vec<u32>, usize)> = Vec::new();
    for class in classes(&dfas, &domain)? {
        let mut rules = [Vec::new(), Vec::new()];
        let mut service_host = None;
        for &g in &class.matches {
            let Some(&(s, off, first)) = plan.iter().rev().find(|p| p.1 <= g) else {
                continue;
            };
            match s {
                None => service_host = hosts.get(g as usize).map(|h| h.to_string()),
                Some(s) => {
                    if let Some(eg) = &sides[s].tables.egress {
                        if let Some(r) = eg.host_pattern_rules.get((first + g - off) as usize) {
                            rules[s].extend_from_slice(r);
                        }
                    }
                }
            }
        }
        let mut host: Vec<u8> = class.witness.clone();
        host.reverse();
        let host = String::from_utf8_lossy(&host).into_owned();
        if host.parse::<std::net::Ipv4Addr>().is_ok() {
            ip_shaped.push((class.matches.clone(), out.len()));
        }
        out.push(HostClass {
            rules,
            service_host,
            host,
        });
    }
    // Such a class may also hold names (`aa.2.3.4` beside `0.2.3.4`),
    // which have no address without `ip`: a name of the class witnesses
    // those requests.
    if !ip_shaped.is_empty() {
        let names = build(&[
            r"[a-z0-9\-._~%!$&'()*+,;=]*[a-z\-_~%!$&'()*+,;=][a-z0-9\-._~%!$&'()*+,;=]*"
                .to_string(),
        ])?;
        let named: std::collections::HashMap<Vec<u32>, Vec<u8>> = classes(&dfas, &names)?
            .into_iter()
            .map(|c| (c.matches, c.witness))
            .collect();
        for (matches, i) in ip_shaped {
            if let Some(w) = named.get(&matches) {
                let host: Vec<u8> = w.iter().rev().copied().collect();
                out.push(HostClass {
                    rules: out[i].rules.clone(),
                    service_host: out[i].service_host.clone(),
                    host: String::from_utf8_lossy(&host).into_owned(),
                });
            }
        }
    }
    // Authority hosts outside the reg-name domain (IPv6 literals, written
    // in brackets) are classes of their own.
    for h in hosts.iter().filter(|h| h.contains(':')) {
        let reversed: Vec<u8> = h.bytes().rev().collect();
        let mut rules = [Vec::new(), Vec::new()];
        for &(d, off) in dfas.iter().skip(usize::from(!owned.is_empty())) {
            for g in d.matches(&reversed, off) {
                let Some(&(Some(s), off, first)) = plan.iter().rev().find(|p| p.1 <= g) else {
                    continue;
                };
                if let Some(eg) = &sides[s].tables.egress {
                    if let Some(r) = eg.host_pattern_rules.get((first + g - off) as usize) {
                        rules[s].extend_from_slice(r);
                    }
                }
            }
        }
        out.push(HostClass {
            rules,
            service_host: Some(h.to_string()),
            host: h.to_string(),
        });
    }
    Ok(out)
}

fn service_for(t: &Tables, host: Option<&str>, port: u16) -> Option<u32> {
    let host = host?;
    t.services
        .iter()
        .position(|s| s.authorities.iter().any(|(h, p)| h == host && *p == port))
        .map(|i| i as u32)
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        return format!("[{host}]:{port}");
    }
    // The runtime drops one trailing dot.
    let dot = if host.ends_with('.') { "." } else { "" };
    format!("{host}{dot}:{port}")
}

fn outbound(
    sides: &[Side<'_>; 2],
    cache: &mut routes::Cache,
    out: &mut Vec<WitnessRequest>,
) -> Result<(), EnumerateError> {
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    for s in sides {
        for sv in &s.tables.services {
            ranges.extend(sv.authorities.iter().map(|&(_, p)| (p, p)));
        }
        if let Some(eg) = &s.tables.egress {
            for r in &eg.rules {
                ranges.extend_from_slice(&r.ports);
            }
        }
    }
    let nets = [
        sides[0].tables.egress.as_ref().map(|e| &e.networks),
        sides[1].tables.egress.as_ref().map(|e| &e.networks),
    ];
    let ips = ip_classes(nets);
    let hosts = host_classes(sides)?;
    let ports = intervals::ports(&ranges, 1, u16::MAX);
    let mut seen = HashSet::new();
    for h in &hosts {
        for &port in &ports {
            let svc = [
                h.service_host
                    .as_deref()
                    .and_then(|x| service_for(sides[0].tables, Some(x), port)),
                h.service_host
                    .as_deref()
                    .and_then(|x| service_for(sides[1].tables, Some(x), port)),
            ];
            let sets = [
                svc[0]
                    .and_then(|i| sides[0].tables.services.get(i as usize))
                    .map(|s| &s.routes),
                svc[1]
                    .and_then(|i| sides[1].tables.services.get(i as usize))
                    .map(|s| &s.routes),
            ];
            let keys = [
                svc[0].map(routes::SetKey::Service),
                svc[1].map(routes::SetKey::Service),
            ];
            let auth = authority(&h.host, port);
            // An IP-literal host gives the request its address: every such
            // request has an IP, and the address classes cover them all.
            let literal = h.host.contains(':') || h.host.parse::<std::net::Ipv4Addr>().is_ok();
            // HTTP requests.
            for o in routes::outcomes(sides, sets, keys, cache)?.iter() {
                let egress_sides: Vec<usize> = (0..2).filter(|&s| sets[s].is_none()).collect();
                if egress_sides.is_empty() || o.bad_path {
                    push_witness(
                        out,
                        WitnessRequest::Outbound {
                            authority: Some(auth.clone()),
                            http: Some(o.http.clone()),
                            ip: None,
                            port: None,
                        },
                    )?;
                    continue;
                }
                let mut local = HashSet::new();
                for (t, ip) in &ips {
                    if ip.is_none() && literal {
                        continue;
                    }
                    let key: Vec<Vec<u32>> = (0..2)
                        .map(|s| {
                            if sets[s].is_some() {
                                Vec::new()
                            } else {
                                egress_key(sides[s].tables, Some(&h.rules[s]), port, &t[s])
                            }
                        })
                        .collect();
                    if local.insert(key) {
                        push_witness(
                            out,
                            WitnessRequest::Outbound {
                                authority: Some(auth.clone()),
                                http: Some(o.http.clone()),
                                ip: *ip,
                                port: None,
                            },
                        )?;
                    }
                }
            }
            // Tunnels.
            for (t, ip) in &ips {
                if ip.is_none() && literal {
                    continue;
                }
                let key: Vec<Vec<u32>> = (0..2)
                    .map(|s| egress_key(sides[s].tables, Some(&h.rules[s]), port, &t[s]))
                    .collect();
                if seen.insert((true, key)) {
                    push_witness(
                        out,
                        WitnessRequest::Outbound {
                            authority: Some(auth.clone()),
                            http: None,
                            ip: *ip,
                            port: None,
                        },
                    )?;
                }
            }
        }
    }
    // Opaque TCP.
    for port in intervals::ports(&ranges, 0, u16::MAX) {
        for (t, ip) in &ips {
            let Some(ip) = ip else { continue };
            let key: Vec<Vec<u32>> = (0..2)
                .map(|s| egress_key(sides[s].tables, None, port, &t[s]))
                .collect();
            if seen.insert((false, key)) {
                push_witness(
                    out,
                    WitnessRequest::Outbound {
                        authority: None,
                        http: None,
                        ip: Some(*ip),
                        port: Some(port),
                    },
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn contents(src: &str) -> Contents {
        let (policy, diags) = sluice_lang::parse::parse_str("t.sluice", src);
        assert!(diags.is_empty(), "{diags:?}");
        let c = crate::compile(&policy, &Config::new()).unwrap();
        let aligned = sluice_runtime::AlignedBytes::new(&c.bundle);
        Contents::decode(aligned.as_bytes()).unwrap()
    }

    #[test]
    fn identity_classes_split_by_pattern() {
        let src = r#"
mesh { trust-domain "prod.example.com" }
server web { port 8080  default deny
  route api { path prefix "/api" }
}
allow a { to web  from namespace "shop" }
allow b { to web.api  from identity "spiffe://prod.example.com/ns/shop/sa/web" }
"#;
        let c = contents(src);
        let sides = [Side::new(&c).unwrap(), Side::new(&c).unwrap()];
        let ids = identity_classes(&sides).unwrap();
        let names: Vec<Option<String>> = ids.iter().map(|c| c.identity.clone()).collect();
        assert!(
            names.contains(&Some("spiffe://prod.example.com/ns/shop/sa/web".into())),
            "{names:?}"
        );
        assert!(names.contains(&None));
        // Some identity of another namespace satisfies neither clause.
        assert!(ids.iter().any(|c| c.has
            && c.sat[0].is_empty()
            && c.identity
                .as_deref()
                .is_some_and(|i| i.starts_with("spiffe://prod"))));
    }

    #[test]
    fn a_policy_against_itself_has_a_few_witnesses_per_dimension() {
        let src = r#"
server web { port 8080
  route api { path prefix "/api"  method GET }
  route x { path "/api/x"  header "x-a" = "1" }
}
egress { default deny
  allow gh { host "github.com"  port 443 }
}
"#;
        let c = contents(src);
        let ws = witness_requests(&c, &c).unwrap();
        let paths: BTreeSet<String> = ws
            .iter()
            .filter_map(|w| match w {
                WitnessRequest::Inbound { http: Some(h), .. } => Some(h.path.clone()),
                _ => None,
            })
            .collect();
        assert!(
            paths.contains("/api") && paths.contains("/api/x"),
            "{paths:?}"
        );
        assert!(ws.iter().any(|w| matches!(w, WitnessRequest::Outbound { authority: Some(a), .. } if a == "github.com:443")));
        assert!(ws.len() < 200, "{}", ws.len());
    }
}
