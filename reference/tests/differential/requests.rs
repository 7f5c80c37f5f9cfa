//! Generating requests.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;

use sluice_reference::Request;

use crate::generate::{authority_key, policy_path};
use crate::model::{Model, Net, PathCond, Principal, Proto, Route, Server, Vm};
use crate::pools::{
    ACCOUNTS, BAD_AUTHORITIES, CONTENT_TYPES, EGRESS_HOSTS, GRPC_METHODS, GRPC_SERVICES,
    HEADER_VALUES, INVALID_IDENTITIES, IPS_V4, IPS_V6, NAMESPACES, OUT_PORTS, QUERY_RAW_VALUES,
    REGEX_SAMPLE_PATHS, REQUEST_METHODS, REQUEST_QUERY_KEYS, SEGMENTS, TRUST_DOMAINS,
    UNCOVERED_PORTS,
};
use crate::rng::{Draw, Gen};

thread_local! {
    /// Compiled whole-match regexes of the pools, for picking values that match.
    static REGEXES: RefCell<BTreeMap<String, Option<regex::bytes::Regex>>> = const { RefCell::new(BTreeMap::new()) };
}

/// Whether `re` matches all of `value` (the generator's own check, only
/// used to pick values that are likely to match).
pub(crate) fn regex_matches(re: &str, value: &[u8]) -> bool {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        let compiled = cache.entry(re.to_string()).or_insert_with(|| {
            // A `(?x)` regex may end in a comment: a newline closes it.
            regex::bytes::Regex::new(&format!(r"\A(?:{re})\z"))
                .or_else(|_| regex::bytes::Regex::new(&format!("\\A(?:{re}\n)\\z")))
                .ok()
        });
        compiled.as_ref().is_some_and(|r| r.is_match(value))
    })
}

/// One of `pool` that `re` matches, if any (`pct`: percent-decode first).
pub(crate) fn matching_value(g: &mut Gen, re: &str, pool: &[&str], pct: bool) -> Option<String> {
    let hits: Vec<&str> = pool
        .iter()
        .copied()
        .filter(|v| {
            if pct {
                regex_matches(re, &percent_decode(v))
            } else {
                regex_matches(re, v.as_bytes())
            }
        })
        .collect();
    (!hits.is_empty()).then(|| g.s(&hits))
}

/// Percent-decoding as the spec's query rule does it.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// What a generated request is meant to exercise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    InHttp,
    InConnection,
    OutService,
    OutEgress,
    Tunnel,
    OutTcp,
    Malformed,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::InHttp => "req:inbound-http",
            Kind::InConnection => "req:inbound-connection",
            Kind::OutService => "req:outbound-http-service",
            Kind::OutEgress => "req:outbound-http-egress",
            Kind::Tunnel => "req:tunnel",
            Kind::OutTcp => "req:outbound-tcp",
            Kind::Malformed => "req:outbound-malformed",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Req {
    pub(crate) kind: Kind,
    pub(crate) r: Request,
}

/// A random request path (normalized) from the pools.
pub(crate) fn random_path(g: &mut Gen) -> String {
    match g.weighted(&[55, 20, 15, 10]) {
        0 => {
            let mut p = String::new();
            for _ in 0..g.range(0, 4) {
                p.push('/');
                p.push_str(&g.s(SEGMENTS));
            }
            if p.is_empty() || g.chance(15) {
                p.push('/');
            }
            p
        }
        1 => g.s(REGEX_SAMPLE_PATHS),
        2 => format!("/{}/{}", g.s(GRPC_SERVICES), g.s(GRPC_METHODS)),
        _ => {
            let mut p = policy_path(g, 1, 3);
            if g.chance(50) {
                p.push('x');
            }
            p
        }
    }
}

/// A path that the route's path condition likely matches.
pub(crate) fn path_for(g: &mut Gen, route: Option<&Route>) -> String {
    let Some(cond) = route.and_then(|r| r.path.as_ref()) else {
        return random_path(g);
    };
    match cond {
        PathCond::Exact(p) => p.clone(),
        PathCond::Prefix(p) => {
            let base = p.trim_end_matches('/');
            if base.is_empty() {
                return random_path(g);
            }
            match g.below(5) {
                0 => base.to_string(),
                1 => format!("{base}/"),
                2 => format!("{base}x"),
                _ => format!("{base}/{}", g.s(SEGMENTS)),
            }
        }
        PathCond::Regex(re) => match matching_value(g, re, REGEX_SAMPLE_PATHS, false) {
            Some(p) if g.chance(85) => p,
            _ => g.s(REGEX_SAMPLE_PATHS),
        },
        PathCond::Grpc(s) => match s.strip_suffix("/*") {
            Some(svc) => {
                if g.chance(85) {
                    format!("/{svc}/{}", g.s(GRPC_METHODS))
                } else {
                    format!("/{svc}")
                }
            }
            None => format!("/{s}"),
        },
    }
}

/// A raw path with an attack or encoding variant applied to `base`.
pub(crate) fn attack(g: &mut Gen, base: &str) -> String {
    if !base.starts_with('/') {
        return format!("/..{base}");
    }
    match g.below(18) {
        0 => format!("/x/..{base}"),
        1 => format!("/x/%2e%2E{base}"),
        2 => match base[1..].find('/') {
            Some(i) => format!("{}%2F{}", &base[..=i], &base[i + 2..]),
            None => format!("{base}%2fx"),
        },
        3 => base.replace('/', "//"),
        4 => {
            if let Some(i) = base.find('a') {
                format!("{}%61{}", &base[..i], &base[i + 1..])
            } else if let Some(i) = base.find('p') {
                format!("{}%70{}", &base[..i], &base[i + 1..])
            } else {
                format!("/%61{base}")
            }
        }
        5 => format!("{base}\\x"),
        6 => format!("{base}#{}", g.s(&["frag", "?mode=fast", "a/../b"])),
        7 => format!("/.{base}"),
        8 => format!("{base}/.."),
        9 => format!("{base}%3a"),
        10 => format!("/%2E{base}"),
        11 => g.s(&[
            "a/b", "*", "", "/a b", "/é", "/a%zz", "/a%2", "/%00", "/a\tb", "/%5c",
        ]),
        12 => format!("/..{base}"),
        13 => format!("{base}/%2e%2e/%2E"),
        14 => format!("/x/.%2e{base}"),
        15 => format!("{base}%7e%7E%41%c3%a9"),
        16 => g.s(&[
            "?a=1",
            "http://h/a",
            "/a;x/..",
            "/a+b",
            "/.../a",
            "/%25/x",
            "/%2",
            "/.%2E/%2e./x",
        ]),
        _ => format!("{base}/./.././"),
    }
}

/// Whether a raw path holds one of the attack patterns.
pub(crate) fn attack_kinds(raw: &str) -> Vec<&'static str> {
    let lower = raw.to_ascii_lowercase();
    let mut out = Vec::new();
    if raw.contains("..") {
        out.push("attack:..");
    }
    if lower.contains("%2e") {
        out.push("attack:%2e");
    }
    if lower.contains("%2f") {
        out.push("attack:%2f");
    }
    if raw.contains("//") {
        out.push("attack://");
    }
    if raw.contains('\\') {
        out.push("attack:backslash");
    }
    out
}

pub(crate) fn percent_encode_some(g: &mut Gen, s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            ' ' if g.chance(60) => out.push_str("%20"),
            'a' if g.chance(20) => out.push_str("%61"),
            '+' if g.chance(20) => out.push_str("%2B"),
            c => out.push(c),
        }
    }
    out
}

/// A query string (without `?`), or `None`.
pub(crate) fn gen_query(g: &mut Gen, route: Option<&Route>) -> Option<String> {
    let mut pairs: Vec<String> = Vec::new();
    if let Some(r) = route {
        if !r.queries.is_empty() && g.chance(70) {
            for (key, v) in &r.queries {
                let k = match key.as_str() {
                    "mode" if g.chance(20) => "m%6Fde".to_string(),
                    "k y" => g.s(&["k%20y", "k y", "k%20y"]),
                    _ => key.clone(),
                };
                let pair = match v {
                    Vm::Eq(val) => format!("{k}={}", percent_encode_some(g, val)),
                    Vm::Re(re) => {
                        let v = matching_value(g, re, QUERY_RAW_VALUES, true)
                            .unwrap_or_else(|| g.s(QUERY_RAW_VALUES));
                        format!("{k}={v}")
                    }
                    Vm::Present if g.chance(30) => k,
                    Vm::Present => format!("{k}={}", g.s(QUERY_RAW_VALUES)),
                };
                pairs.push(pair);
            }
        }
    }
    for _ in 0..g.weighted(&[50, 30, 20]) {
        let key = g.s(REQUEST_QUERY_KEYS);
        let pair = if g.chance(15) {
            key
        } else {
            format!("{key}={}", g.s(QUERY_RAW_VALUES))
        };
        // Before or after: a duplicate key before the route's pair wins.
        let at = g.below(pairs.len() + 1);
        pairs.insert(at, pair);
    }
    if pairs.is_empty() {
        return g.chance(20).then(String::new);
    }
    let mut q = pairs.join("&");
    if g.chance(5) {
        q.push('&');
    }
    if g.chance(5) {
        q = format!("&{q}");
    }
    Some(q)
}

pub(crate) fn gen_headers(g: &mut Gen, route: Option<&Route>) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(r) = route {
        for (name, v) in &r.headers {
            if !g.chance(75) {
                continue;
            }
            let name = g.recase(name);
            match v {
                Vm::Eq(val) if val.contains(',') && g.chance(50) => {
                    // Repeated header lines join with `,`.
                    for part in val.split(',') {
                        headers.push((name.clone(), part.to_string()));
                    }
                }
                Vm::Eq(val) => headers.push((name, val.clone())),
                Vm::Re(re) => {
                    let v = matching_value(g, re, HEADER_VALUES, false)
                        .unwrap_or_else(|| g.s(HEADER_VALUES));
                    headers.push((name, v));
                }
                Vm::Present => headers.push((name, g.s(HEADER_VALUES))),
            }
        }
    }
    for _ in 0..g.weighted(&[55, 30, 15]) {
        let name = g.s(&["x-tenant", "x-canary", "x-env", "x-other"]);
        let name = g.recase(&name);
        headers.push((name, g.s(HEADER_VALUES)));
    }
    if !headers.is_empty() && g.chance(12) {
        // Repeat a name already present.
        let (n, _) = g.pick(&headers).clone();
        headers.push((g.recase(&n), g.s(HEADER_VALUES)));
    }
    if g.chance(14) {
        headers.push((g.recase("content-type"), g.s(CONTENT_TYPES)));
    }
    if g.chance(3) {
        // Two content-type lines: the joined value decides.
        headers.push((g.recase("content-type"), g.s(CONTENT_TYPES)));
        headers.push((g.recase("content-type"), g.s(CONTENT_TYPES)));
    }
    g.shuffle(&mut headers);
    headers
}

/// An identity that one of the model's identity patterns or namespaces matches.
pub(crate) fn instantiate(g: &mut Gen, m: &Model) -> Option<String> {
    let mut patterns: Vec<String> = Vec::new();
    for r in &m.rules {
        for p in &r.froms {
            match p {
                Principal::Identity(ps) => {
                    patterns.extend(ps.iter().filter(|p| *p != "*").cloned())
                }
                Principal::Namespace(ns) => {
                    let td = m.trust_domain().unwrap_or("td.one");
                    patterns.extend(ns.iter().map(|n| format!("spiffe://{td}/ns/{n}/sa/*")));
                }
                _ => {}
            }
        }
    }
    if patterns.is_empty() {
        return None;
    }
    let p = g.pick(&patterns).clone();
    let rest = p.strip_prefix("spiffe://")?;
    let mut segs: Vec<String> = Vec::new();
    const FILL: &[&str] = &["shop", "mon", "web", "x", "ns", "sa", "Web", "a.b"];
    for (i, seg) in rest.split('/').enumerate() {
        match seg {
            "*" if i > 0 => segs.push(g.s(FILL)),
            "**" if i > 0 => {
                for _ in 0..g.range(1, 2) {
                    segs.push(g.s(FILL));
                }
            }
            s => segs.push(s.to_string()),
        }
    }
    if g.chance(20) {
        // The same path in another trust domain: a near miss.
        let other: Vec<&str> = TRUST_DOMAINS
            .iter()
            .copied()
            .filter(|td| *td != segs[0])
            .collect();
        if !other.is_empty() {
            segs[0] = g.s(&other);
        }
    }
    Some(format!("spiffe://{}", segs.join("/")))
}

pub(crate) fn gen_identity(g: &mut Gen, m: &Model) -> String {
    let td = m.trust_domain();
    if g.chance(50) {
        if let Some(id) = instantiate(g, m) {
            return id;
        }
    }
    if g.chance(12) {
        return g.s(INVALID_IDENTITIES);
    }
    if g.chance(2) {
        // Around the 2048-byte limit.
        return format!("spiffe://td.one/{}", "a".repeat(2048 - 16 + g.below(2)));
    }
    let td = match td {
        Some(td) if g.chance(65) => td.to_string(),
        _ => g.s(TRUST_DOMAINS),
    };
    let ns = g.s(NAMESPACES);
    let sa = g.s(ACCOUNTS);
    match g.weighted(&[70, 8, 8, 4, 5, 5]) {
        0 => format!("spiffe://{td}/ns/{ns}/sa/{sa}"),
        1 => format!("spiffe://{td}/ns/{ns}/sa/{sa}/extra"),
        2 => format!("spiffe://{td}/x"),
        3 => format!("spiffe://{td}"),
        4 => format!("spiffe://{td}/ns/{ns}"),
        _ => format!("spiffe://{td}/ns/{}/sa/...", g.recase(&ns)),
    }
}

pub(crate) fn gen_ip(g: &mut Gen) -> IpAddr {
    let s = if g.chance(60) {
        g.pick(IPS_V4)
    } else {
        g.pick(IPS_V6)
    };
    let ip = s.parse().expect("pool address");
    maybe_carry(g, ip)
}

/// `v4` written as an IPv6 address that carries it (spec section 7,
/// "Addresses"): IPv4-mapped, NAT64 or IPv4-compatible (which for
/// `0.0.0.0` and `0.0.0.1` gives `::` and `::1`, which carry nothing).
pub(crate) fn carrying_v6(g: &mut Gen, v4: std::net::Ipv4Addr) -> IpAddr {
    let x = u128::from(u32::from(v4));
    IpAddr::V6(std::net::Ipv6Addr::from(match g.below(3) {
        0 => 0xffff_0000_0000 | x,
        1 => (0x64_ff9b_u128 << 96) | x,
        _ => x,
    }))
}

/// Sometimes an IPv4 address written as an IPv6 one that carries it.
pub(crate) fn maybe_carry(g: &mut Gen, ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if g.chance(20) => carrying_v6(g, v4),
        _ => ip,
    }
}

/// The address that `network`s see (spec section 7, "Addresses"): an IPv6
/// address in `::ffff:0:0/96`, `64:ff9b::/96` or `::/96` (but not `::` and
/// `::1`) stands for the IPv4 address in its last 32 bits.
pub(crate) fn carried(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let x = u128::from(v6);
    let high = x >> 32;
    if high == 0xffff || high == 0x64_ff9b << 64 || (high == 0 && x > 1) {
        IpAddr::V4(std::net::Ipv4Addr::from(x as u32))
    } else {
        ip
    }
}

/// Whether an address is IPv6 as written but IPv4 to `network`s.
pub(crate) fn is_carrying(ip: IpAddr) -> bool {
    ip.is_ipv6() && carried(ip).is_ipv4()
}

/// An address inside `net`, near its start or its end.
pub(crate) fn ip_in(g: &mut Gen, net: &Net) -> IpAddr {
    let offset = g.below(4) as u128;
    match net.addr {
        IpAddr::V4(a) => {
            let host = if net.len == 32 {
                0
            } else {
                u32::MAX >> net.len
            };
            let o = (offset as u32) & host;
            let base = u32::from(a);
            IpAddr::V4(
                if g.chance(50) {
                    base | o
                } else {
                    (base | host) - o
                }
                .into(),
            )
        }
        IpAddr::V6(a) => {
            let host = if net.len == 128 {
                0
            } else {
                u128::MAX >> net.len
            };
            let o = offset & host;
            let base = u128::from(a);
            IpAddr::V6(std::net::Ipv6Addr::from(if g.chance(50) {
                base | o
            } else {
                (base | host) - o
            }))
        }
    }
}

/// An address from the pools, or (often) one inside a network that the
/// model names, `except` ranges first.
pub(crate) fn gen_model_ip(g: &mut Gen, m: &Model, outbound: bool) -> IpAddr {
    let mut nets: Vec<&Net> = Vec::new();
    let mut excepts: Vec<&Net> = Vec::new();
    if outbound {
        for r in m.egress.iter().flat_map(|e| &e.rules) {
            if let Some((inc, exc)) = &r.nets {
                nets.extend(inc);
                excepts.extend(exc);
            }
        }
    } else {
        for r in &m.rules {
            for p in &r.froms {
                if let Principal::Network(inc, exc) = p {
                    nets.extend(inc);
                    excepts.extend(exc);
                }
            }
        }
    }
    if !excepts.is_empty() && g.chance(if outbound { 40 } else { 25 }) {
        let n = (*g.pick(&excepts)).clone();
        let ip = ip_in(g, &n);
        return maybe_carry(g, ip);
    }
    if !nets.is_empty() && g.chance(30) {
        let n = (*g.pick(&nets)).clone();
        let ip = ip_in(g, &n);
        return maybe_carry(g, ip);
    }
    gen_ip(g)
}

pub(crate) fn gen_peer(g: &mut Gen, m: &Model, r: &mut Request) {
    if g.chance(65) {
        r.peer_identity = Some(gen_identity(g, m));
    }
    if g.chance(72) {
        r.peer_ip = Some(gen_model_ip(g, m, false));
    }
}

/// A port of `server`.
pub(crate) fn port_of(g: &mut Gen, server: &Server) -> u16 {
    if server.ports.is_empty() {
        return *g.pick(UNCOVERED_PORTS);
    }
    let &(a, b) = g.pick(&server.ports);
    match g.below(3) {
        0 => a,
        1 => b,
        _ => g.range(usize::from(a), usize::from(b)) as u16,
    }
}

pub(crate) fn http_parts(g: &mut Gen, r: &mut Request, route: Option<&Route>) {
    let method = match route {
        Some(route) if !route.methods.is_empty() && g.chance(75) => g.pick(&route.methods).clone(),
        _ => g.s(REQUEST_METHODS),
    };
    let mut path = path_for(g, route);
    if g.chance(1) {
        // Around the 8192-byte limit.
        path = format!("/{}", "a".repeat(8190 + g.below(3)));
    }
    if g.chance(28) {
        path = attack(g, &path);
    }
    if let Some(q) = gen_query(g, route) {
        // A fragment in the path part would swallow the query; keep it last.
        match path.find('#') {
            Some(i) => path = format!("{}?{q}{}", &path[..i], &path[i..]),
            None => path = format!("{path}?{q}"),
        }
    }
    r.method = Some(method);
    r.path = Some(path);
    r.headers = gen_headers(g, route);
}

/// An authority for a service entry, varied as a client might write it.
pub(crate) fn service_authority(g: &mut Gen, entry: &str) -> String {
    let (host, port) = authority_key(entry);
    let written_port = entry.starts_with('[') && entry.contains("]:")
        || !entry.starts_with('[') && entry.contains(':');
    let host = if host.contains(':') {
        format!(
            "[{}]",
            if g.chance(30) {
                host.to_ascii_uppercase()
            } else {
                host
            }
        )
    } else {
        let mut h = g.recase(&host);
        if g.chance(15) {
            h.push('.');
        }
        h
    };
    match g.weighted(&[75, 12, 13]) {
        0 if port == 80 && !written_port && g.chance(50) => host,
        0 => format!("{host}:{port}"),
        1 => host,
        _ => format!("{host}:{}", g.pick(&[80u16, 8080, 9090, 443])),
    }
}

pub(crate) fn egress_authority(g: &mut Gen) -> String {
    let host = g.s(EGRESS_HOSTS);
    match g.weighted(&[30, 35, 10, 10, 15]) {
        0 => host,
        1 => format!("{host}:443"),
        2 => format!("{host}:80"),
        3 => format!("{host}:5432"),
        _ => format!("{host}:8443"),
    }
}

pub(crate) fn gen_request(g: &mut Gen, m: &Model) -> Req {
    let has_services = !m.services.is_empty();
    let kind = match g.weighted(&[45, 9, if has_services { 15 } else { 0 }, 12, 7, 8, 4]) {
        0 => Kind::InHttp,
        1 => Kind::InConnection,
        2 => Kind::OutService,
        3 => Kind::OutEgress,
        4 => Kind::Tunnel,
        5 => Kind::OutTcp,
        _ => Kind::Malformed,
    };
    let mut r = match kind {
        Kind::InHttp | Kind::InConnection => Request::inbound(0),
        _ => Request::outbound(),
    };
    match kind {
        Kind::InHttp => {
            let server = g.chance(87).then(|| g.pick(&m.servers).clone());
            r.port = Some(match &server {
                Some(s) => port_of(g, s),
                None => *g.pick(UNCOVERED_PORTS),
            });
            let route = match &server {
                Some(s) if !s.routes.is_empty() && g.chance(80) => Some(g.pick(&s.routes).clone()),
                _ => None,
            };
            http_parts(g, &mut r, route.as_ref());
            gen_peer(g, m, &mut r);
        }
        Kind::InConnection => {
            let tcp: Vec<&Server> = m
                .servers
                .iter()
                .filter(|s| s.proto() == Proto::Tcp)
                .collect();
            r.port = Some(if !tcp.is_empty() && g.chance(75) {
                let s = *g.pick(&tcp);
                port_of(g, s)
            } else if g.chance(60) {
                let s = g.pick(&m.servers).clone();
                port_of(g, &s)
            } else {
                *g.pick(UNCOVERED_PORTS)
            });
            gen_peer(g, m, &mut r);
        }
        Kind::OutService => {
            let s = g.pick(&m.services).clone();
            let entry = g.pick(&s.authorities).clone();
            r.authority = Some(service_authority(g, &entry));
            let route = g.chance(85).then(|| g.pick(&s.routes).clone());
            http_parts(g, &mut r, route.as_ref());
            if g.chance(15) {
                r.ip = Some(gen_ip(g));
            }
        }
        Kind::OutEgress => {
            r.authority = Some(egress_authority(g));
            http_parts(g, &mut r, None);
            if g.chance(25) {
                r.ip = Some(gen_model_ip(g, m, true));
            }
        }
        Kind::Tunnel => {
            r.authority = Some(if has_services && g.chance(25) {
                let s = g.pick(&m.services).clone();
                let entry = g.pick(&s.authorities).clone();
                service_authority(g, &entry)
            } else {
                egress_authority(g)
            });
            if g.chance(25) {
                r.ip = Some(gen_model_ip(g, m, true));
            }
        }
        Kind::OutTcp => {
            r.ip = Some(gen_model_ip(g, m, true));
            r.port = Some(*g.pick(OUT_PORTS));
        }
        Kind::Malformed => match g.below(5) {
            0 => http_parts(g, &mut r, None),
            1 => {}
            2 => {
                r.authority = Some(g.s(BAD_AUTHORITIES));
                http_parts(g, &mut r, None);
            }
            3 => r.authority = Some(g.s(BAD_AUTHORITIES)),
            _ => r.ip = Some(gen_ip(g)),
        },
    }
    Req { kind, r }
}
