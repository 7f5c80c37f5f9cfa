//! Requests built from a bundle so that they reach every part of it: every
//! route of every server (with a peer matching each of its rules and an
//! anonymous one), every TCP server, every service route, every egress rule
//! (by host, `*`, network or any destination), and the paths around them
//! (bad path, no route, no server, a connection to an HTTP server, unknown
//! destinations).
//!
//! Paths, header and query values, identities and egress hosts are found by
//! searching the bundle's own automata for the shortest input each pattern
//! matches (bounded), and addresses come from its network tables, so the
//! same code reaches the tables of any bundle that loads: the corruption
//! test's, the fuzz target's and the corpus replay's.

use crate::bundle::{
    Bundle, DfaSet, IdLists, NetTable, PeerClass, Protocol, RouteSet, SetDfa, ValueCond,
};
use crate::decision::{Decision, RequestError};
use crate::normalize::normalize_path;
use crate::request::{Http, Inbound, Outbound, Peer};
use regex_automata::dfa::Automaton;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::Anchored;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// States searched per automaton for witnesses.
const MAX_STATES: usize = 4096;
/// Candidate peers classified when looking for one that matches each rule.
const MAX_CANDIDATES: usize = 512;
/// Probes built per bundle at most (a corrupt bundle can claim many routes).
const MAX_PROBES: usize = 4096;

/// Bytes of a normalized path, the likeliest first.
const PATH_BYTES: &[u8] =
    b"/abcdefghijklmnopqrstuvwxyz0123456789-._~ABCDEFGHIJKLMNOPQRSTUVWXYZ:@!$&'()*+,;=";
/// Bytes of a SPIFFE ID path.
const IDENTITY_BYTES: &[u8] = b"/abcdefghijklmnopqrstuvwxyz0123456789-._ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Bytes of a lowercase host.
const HOST_BYTES: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-.";

/// What a probe aims at; [`Aim::reached_by`] says whether a decision shows it got there.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aim {
    /// A route of a server (`None`: the implicit route of a server without routes).
    ServerRoute {
        /// The server's name.
        server: String,
        /// The route's name.
        route: Option<String>,
    },
    /// An authorization rule, on a route of a server.
    Rule {
        /// The server's name.
        server: String,
        /// The rule's name.
        rule: String,
    },
    /// A route of a declared service.
    ServiceRoute {
        /// The service's name.
        service: String,
        /// The route's name.
        route: Option<String>,
    },
    /// An egress destination rule.
    EgressRule {
        /// The rule's name.
        rule: String,
    },
    /// Anything else (errors, defaults): no reach to check.
    Other,
}

impl Aim {
    /// Whether decision `d` shows that the request reached this aim.
    pub fn reached_by(&self, d: &Decision<'_>) -> bool {
        match self {
            Aim::ServerRoute { server, route } => {
                d.server == Some(server.as_str()) && d.route == route.as_deref()
            }
            Aim::Rule { server, rule } => {
                d.server == Some(server.as_str()) && d.rule == Some(rule.as_str())
            }
            Aim::ServiceRoute { service, route } => {
                d.service == Some(service.as_str()) && d.route == route.as_deref()
            }
            Aim::EgressRule { rule } => {
                d.server.is_none() && d.service.is_none() && d.rule == Some(rule.as_str())
            }
            Aim::Other => true,
        }
    }
}

/// Owned method, target and headers of an HTTP probe.
#[derive(Clone, Debug)]
struct OwnedHttp {
    method: String,
    target: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

impl OwnedHttp {
    fn new(method: &str, target: Vec<u8>, headers: Vec<(String, Vec<u8>)>) -> Self {
        OwnedHttp {
            method: method.to_string(),
            target,
            headers,
        }
    }
}

#[derive(Clone, Debug)]
enum Request {
    Inbound {
        port: u16,
        http: Option<OwnedHttp>,
        peer: usize,
    },
    Outbound {
        authority: Option<String>,
        ip: Option<IpAddr>,
        port: Option<u16>,
        http: Option<OwnedHttp>,
    },
}

/// One request and what it aims at.
#[derive(Clone, Debug)]
pub struct Probe {
    /// What the request is built to reach.
    pub aims: Vec<Aim>,
    request: Request,
}

/// A peer of inbound probes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnedPeer {
    ip: Option<IpAddr>,
    identity: Option<String>,
}

impl OwnedPeer {
    fn as_peer(&self) -> Peer<'_> {
        Peer {
            ip: self.ip,
            identity: self.identity.as_deref(),
        }
    }
}

/// The probes of one bundle and the peers they use.
#[derive(Clone, Debug, Default)]
pub struct Probes {
    peers: Vec<OwnedPeer>,
    /// The probes, in the order [`Probes::decide_each`] decides them.
    pub probes: Vec<Probe>,
}

impl Probes {
    /// Decides every probe against `bundle` (normally the bundle they were
    /// built from), calling `f` with each probe and its result.
    pub fn decide_each<'b>(
        &self,
        bundle: &'b Bundle<'_>,
        mut f: impl FnMut(&Probe, Result<Decision<'b>, RequestError<'b>>),
    ) {
        let mut scratch = bundle.create_scratch();
        let classes: Vec<PeerClass> = self
            .peers
            .iter()
            .map(|p| {
                let mut c = bundle.create_peer_class();
                bundle.classify(&p.as_peer(), &mut c);
                c
            })
            .collect();
        let anonymous = bundle.create_peer_class();
        for probe in &self.probes {
            let result = match &probe.request {
                Request::Inbound { port, http, peer } => {
                    let class = classes.get(*peer).unwrap_or(&anonymous);
                    let http = http.as_ref().map(|h| Http {
                        method: &h.method,
                        path: &h.target,
                        headers: &h.headers,
                    });
                    bundle.decide_inbound(&Inbound { port: *port, http }, class, &mut scratch)
                }
                Request::Outbound {
                    authority,
                    ip,
                    port,
                    http,
                } => {
                    let http = http.as_ref().map(|h| Http {
                        method: &h.method,
                        path: &h.target,
                        headers: &h.headers,
                    });
                    bundle.decide_outbound(
                        &Outbound {
                            authority: authority.as_deref(),
                            ip: *ip,
                            port: *port,
                            http,
                        },
                        &mut scratch,
                    )
                }
            };
            f(probe, result);
        }
    }

    /// Every aim of the probes that no decision reached, against `bundle`.
    pub fn unreached(&self, bundle: &Bundle<'_>) -> Vec<Aim> {
        let mut aims: BTreeSet<Aim> = self
            .probes
            .iter()
            .flat_map(|p| p.aims.iter().cloned())
            .filter(|a| *a != Aim::Other)
            .collect();
        self.decide_each(bundle, |probe, result| {
            if let Ok(d) = result {
                for aim in &probe.aims {
                    if aim.reached_by(&d) {
                        aims.remove(aim);
                    }
                }
            }
        });
        aims.into_iter().collect()
    }
}

/// The shortest input over `alphabet` that each pattern of `set` matches
/// whole, by global pattern id, searching at most [`MAX_STATES`] states
/// per automaton.
fn witnesses(set: &DfaSet<'_>, alphabet: &[u8]) -> BTreeMap<u32, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (dfa, &first) in set.dfas.iter().zip(&set.first) {
        match dfa {
            SetDfa::Dense(d) => witnesses_of(d, first, alphabet, &mut out),
            SetDfa::Sparse(d) => witnesses_of(d, first, alphabet, &mut out),
        }
    }
    out
}

/// [`witnesses`] of one automaton whose patterns start at `first`.
fn witnesses_of(
    dfa: &impl Automaton,
    first: u32,
    alphabet: &[u8],
    out: &mut BTreeMap<u32, Vec<u8>>,
) {
    let Ok(start) = dfa.start_state(&start::Config::new().anchored(Anchored::Yes)) else {
        return;
    };
    let mut parent: HashMap<StateID, Option<(StateID, u8)>> = HashMap::new();
    parent.insert(start, None);
    let mut queue = VecDeque::from([start]);
    let mut missing = dfa.pattern_len();
    while let Some(s) = queue.pop_front() {
        let eoi = dfa.next_eoi_state(s);
        if dfa.is_match_state(eoi) {
            for i in 0..dfa.match_len(eoi) {
                let id = first.saturating_add(dfa.match_pattern(eoi, i).as_u32());
                if let std::collections::btree_map::Entry::Vacant(e) = out.entry(id) {
                    let mut input = Vec::new();
                    let mut at = s;
                    while let Some(Some((prev, b))) = parent.get(&at) {
                        input.push(*b);
                        at = *prev;
                    }
                    input.reverse();
                    e.insert(input);
                    missing = missing.saturating_sub(1);
                }
            }
        }
        if missing == 0 {
            break;
        }
        for &b in alphabet {
            let t = dfa.next_state(s, b);
            if dfa.is_dead_state(t) || dfa.is_quit_state(t) || parent.contains_key(&t) {
                continue;
            }
            if parent.len() >= MAX_STATES {
                break;
            }
            parent.insert(t, Some((s, b)));
            queue.push_back(t);
        }
    }
}

/// The one input `dfa` matches whole that [`witnesses`] finds, if any.
fn value_witness(bundle: &Bundle<'_>, i: u32) -> Option<Vec<u8>> {
    let dfa = bundle.value_dfas.get(i as usize)?;
    let set = DfaSet {
        dfas: vec![SetDfa::Dense(dfa.clone())],
        first: vec![0],
    };
    let printable: Vec<u8> = (0x20u8..0x7F).filter(|&b| b != b',').collect();
    witnesses(&set, &printable).remove(&0)
}

/// `%XX` for every byte but ASCII letters and digits.
fn percent_encode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// One address per interval of a network table, with the atoms it holds.
fn addresses(t: &NetTable) -> Vec<(IpAddr, &[u32])> {
    let v4 =
        t.v4.iter()
            .map(|(lo, _, ids)| (IpAddr::V4(Ipv4Addr::from(*lo)), ids.as_slice()));
    let v6 =
        t.v6.iter()
            .map(|(lo, _, ids)| (IpAddr::V6(Ipv6Addr::from(*lo)), ids.as_slice()));
    v4.chain(v6).collect()
}

/// An HTTP request that takes route `rank` of `set`, as far as its
/// conditions can be met: a path the route's pattern matches, its first
/// method, and its header and query conditions.
fn route_request(bundle: &Bundle<'_>, set: &RouteSet<'_>, rank: u32, grpc: bool) -> OwnedHttp {
    let find = |lists: &IdLists| lists.iter().position(|l| l.contains(&rank));
    // A literal path matches itself, whether exact or prefix.
    let literal = set
        .literal
        .iter()
        .find(|(_, lists)| lists.iter().any(|l| l.contains(&rank)));
    let path = if let Some((key, _)) = literal {
        Some(key.to_vec())
    } else if let Some(p) = find(&set.regex_routes) {
        witnesses(&set.regex, PATH_BYTES).remove(&(p as u32))
    } else {
        None
    };
    let mut path = path.unwrap_or_else(|| b"/".to_vec());
    let mut normalized = Vec::new();
    if normalize_path(&path, &mut normalized).is_ok() && normalized != path {
        path = normalized;
    }
    let Some(route) = set.routes.get(rank as usize) else {
        return OwnedHttp::new("GET", path, Vec::new());
    };
    let method = route
        .methods
        .first()
        .copied()
        .unwrap_or(if grpc { "POST" } else { "GET" });
    let mut headers = Vec::new();
    for c in &route.headers {
        let value = match c.value {
            ValueCond::Exact(v) => Some(v.to_vec()),
            ValueCond::Regex(i) => value_witness(bundle, i),
            ValueCond::Present => Some(b"1".to_vec()),
        };
        headers.push((c.name.to_string(), value.unwrap_or_default()));
    }
    if grpc && !headers.iter().any(|(n, _)| n == "content-type") {
        headers.push(("content-type".into(), b"application/grpc".to_vec()));
    }
    let mut target = path;
    for (i, c) in route.queries.iter().enumerate() {
        target.push(if i == 0 { b'?' } else { b'&' });
        target.extend(percent_encode(c.name.as_bytes()));
        let value = match c.value {
            ValueCond::Exact(v) => Some(v.to_vec()),
            ValueCond::Regex(i) => value_witness(bundle, i),
            ValueCond::Present => None,
        };
        if let Some(v) = value {
            target.push(b'=');
            target.extend(percent_encode(&v));
        }
    }
    OwnedHttp::new(method, target, headers)
}

/// Peers: an anonymous one, and for each rule the first candidate (built
/// from the identity automata and the peer network table) that matches it.
/// Returns the peers and, per rule, the index of its peer.
fn peers(bundle: &Bundle<'_>) -> (Vec<OwnedPeer>, Vec<Option<usize>>) {
    let mut identities = vec![
        None,
        Some("spiffe://probe.invalid/ns/probe/sa/probe".to_string()),
    ];
    for td in &bundle.identities {
        // A literal path, and it with one more segment (`*` and `**`).
        let literal = td.literals.iter().flat_map(|(key, _)| {
            let mut longer = key.to_vec();
            longer.extend_from_slice(b"/probe");
            [key.to_vec(), longer]
        });
        for path in literal.chain(witnesses(&td.dfas, IDENTITY_BYTES).into_values()) {
            identities.push(Some(format!(
                "spiffe://{}{}",
                td.trust_domain,
                String::from_utf8_lossy(&path)
            )));
        }
    }
    let mut ips = vec![None];
    ips.extend(
        addresses(&bundle.peer_nets)
            .into_iter()
            .map(|(ip, _)| Some(ip)),
    );
    let mut candidates = Vec::new();
    'outer: for identity in &identities {
        for ip in &ips {
            if candidates.len() >= MAX_CANDIDATES {
                break 'outer;
            }
            candidates.push(OwnedPeer {
                ip: *ip,
                identity: identity.clone(),
            });
        }
    }
    let mut peers = vec![OwnedPeer {
        ip: None,
        identity: None,
    }];
    let mut of_rule = vec![None; bundle.rules.len()];
    let mut class = bundle.create_peer_class();
    for candidate in candidates {
        if of_rule.iter().all(Option::is_some) {
            break;
        }
        bundle.classify(&candidate.as_peer(), &mut class);
        let mut index = None;
        for (rule, slot) in bundle.rules.iter().zip(of_rule.iter_mut()) {
            if slot.is_none() && rule.clauses.iter().all(|&c| class.satisfies(c)) {
                let i = *index.get_or_insert_with(|| {
                    peers.push(candidate.clone());
                    peers.len() - 1
                });
                *slot = Some(i);
            }
        }
    }
    (peers, of_rule)
}

/// The probes of `bundle` (see the module documentation).
pub fn probes(bundle: &Bundle<'_>) -> Probes {
    let (peers, of_rule) = peers(bundle);
    let mut probes = Vec::new();
    let mut push = |aims: Vec<Aim>, request: Request| {
        if probes.len() < MAX_PROBES {
            probes.push(Probe { aims, request });
        }
    };
    let inbound =
        |port: u16, http: Option<OwnedHttp>, peer: usize| Request::Inbound { port, http, peer };
    for server in &bundle.servers {
        let Some(&(port, _)) = server.ports.first() else {
            continue;
        };
        let grpc = server.protocol == Protocol::Grpc;
        for (rank, route) in server.routes.routes.iter().enumerate() {
            let reach = Aim::ServerRoute {
                server: server.name.to_string(),
                route: route.name.map(str::to_string),
            };
            let http = (server.protocol != Protocol::Tcp)
                .then(|| route_request(bundle, &server.routes, rank as u32, grpc));
            push(vec![reach.clone()], inbound(port, http.clone(), 0));
            for &rule in route.deny_rules.iter().chain(&route.allow_rules) {
                let (Some(name), Some(Some(peer))) = (
                    bundle.rules.get(rule as usize).map(|r| r.name),
                    of_rule.get(rule as usize),
                ) else {
                    continue;
                };
                let aim = Aim::Rule {
                    server: server.name.to_string(),
                    rule: name.to_string(),
                };
                push(vec![reach.clone(), aim], inbound(port, http.clone(), *peer));
            }
        }
        if server.protocol != Protocol::Tcp {
            let bad = OwnedHttp::new("GET", b"/probe/%2F".to_vec(), Vec::new());
            let none = OwnedHttp::new("GET", b"/probe-no-such-route".to_vec(), Vec::new());
            push(vec![Aim::Other], inbound(port, Some(bad), 0));
            push(vec![Aim::Other], inbound(port, Some(none), 0));
            push(vec![Aim::Other], inbound(port, None, 0));
        }
    }
    // A port without a server: the mesh default.
    let covered = |p: u16| bundle.ports.iter().any(|&(lo, hi, _)| lo <= p && p <= hi);
    if let Some(port) = (1..=u16::MAX).find(|&p| !covered(p)) {
        let http = OwnedHttp::new("GET", b"/".to_vec(), Vec::new());
        push(vec![Aim::Other], inbound(port, Some(http), 0));
        push(vec![Aim::Other], inbound(port, None, 0));
    }
    for (si, service) in bundle.services.iter().enumerate() {
        let Some((host, port, _)) = bundle.authorities.iter().find(|a| a.2 as usize == si) else {
            continue;
        };
        let authority = format!("{host}:{port}");
        for (rank, route) in service.routes.routes.iter().enumerate() {
            let http = route_request(bundle, &service.routes, rank as u32, false);
            let aim = Aim::ServiceRoute {
                service: service.name.to_string(),
                route: route.name.map(str::to_string),
            };
            push(
                vec![aim],
                Request::Outbound {
                    authority: Some(authority.clone()),
                    ip: None,
                    port: None,
                    http: Some(http),
                },
            );
        }
        let none = OwnedHttp::new("GET", b"/probe-no-such-route".to_vec(), Vec::new());
        push(
            vec![Aim::Other],
            Request::Outbound {
                authority: Some(authority),
                ip: None,
                port: None,
                http: Some(none),
            },
        );
    }
    if let Some(eg) = &bundle.egress {
        let hosts = witnesses(&eg.hosts, HOST_BYTES);
        let nets = addresses(&eg.nets);
        for (i, rule) in eg.rules.iter().enumerate() {
            let id = i as u32;
            let aim = vec![Aim::EgressRule {
                rule: rule.name.to_string(),
            }];
            let port = rule.ports.first().map_or(443, |p| p.0);
            let mut destinations: Vec<(Option<String>, Option<IpAddr>)> = Vec::new();
            for (p, rules) in eg.host_rules.iter().enumerate() {
                if rules.contains(&id) {
                    if let Some(rev) = hosts.get(&(p as u32)) {
                        let host: Vec<u8> = rev.iter().rev().copied().collect();
                        destinations
                            .push((Some(String::from_utf8_lossy(&host).into_owned()), None));
                    }
                }
            }
            if eg.star_rules.contains(&id) || eg.open_rules.contains(&id) {
                destinations.push((Some("probe.invalid".into()), None));
            }
            // The address whose interval holds the fewest rules, to keep
            // other rules (a deny wins) out of the way.
            let best = nets
                .iter()
                .filter_map(|(ip, atoms)| {
                    let rules: Vec<u32> = atoms
                        .iter()
                        .filter_map(|&a| eg.nets.targets.get(a as usize))
                        .flatten()
                        .copied()
                        .collect();
                    rules.contains(&id).then_some((rules.len(), *ip))
                })
                .min_by_key(|(n, _)| *n);
            if let Some((_, ip)) = best {
                destinations.push((None, Some(ip)));
            }
            if eg.open_rules.contains(&id) {
                destinations.push((None, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))));
            }
            for (host, ip) in destinations {
                match (host, ip) {
                    (Some(host), _) => {
                        let authority = format!("{host}:{port}");
                        push(
                            aim.clone(),
                            Request::Outbound {
                                authority: Some(authority.clone()),
                                ip: None,
                                port: None,
                                http: None,
                            },
                        );
                        push(
                            aim.clone(),
                            Request::Outbound {
                                authority: Some(authority),
                                ip: None,
                                port: None,
                                http: Some(OwnedHttp::new("GET", b"/".to_vec(), Vec::new())),
                            },
                        );
                    }
                    (None, Some(ip)) => push(
                        aim.clone(),
                        Request::Outbound {
                            authority: None,
                            ip: Some(ip),
                            port: Some(port),
                            http: None,
                        },
                    ),
                    (None, None) => {}
                }
            }
        }
    }
    // Destinations nothing names: the egress default.
    push(
        vec![Aim::Other],
        Request::Outbound {
            authority: Some("probe-unknown.invalid:1".into()),
            ip: None,
            port: None,
            http: None,
        },
    );
    push(
        vec![Aim::Other],
        Request::Outbound {
            authority: None,
            ip: Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))),
            port: Some(1),
            http: None,
        },
    );
    Probes { peers, probes }
}

/// Where the names of a bundle's entities sit in its bytes, by kind: a
/// decision's names borrow from the bundle, so their offsets say which
/// entity they name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entities {
    servers: BTreeSet<(usize, usize)>,
    routes: BTreeSet<(usize, usize)>,
    rules: BTreeSet<(usize, usize)>,
    services: BTreeSet<(usize, usize)>,
    backends: BTreeSet<(usize, usize)>,
}

/// The `(offset, length)` of `name` within `base`, if it lies there.
fn slot(base: &[u8], name: &str) -> Option<(usize, usize)> {
    let start = base.as_ptr() as usize;
    let at = (name.as_ptr() as usize).checked_sub(start)?;
    (at + name.len() <= base.len()).then_some((at, name.len()))
}

impl Entities {
    /// The name slots of every server, route, rule (authorization and
    /// egress), service and backend of `bundle`.
    pub fn of(bundle: &Bundle<'_>) -> Entities {
        let base = bundle.as_bytes();
        let mut e = Entities::default();
        let add = |set: &mut BTreeSet<(usize, usize)>, name: &str| {
            if let Some(s) = slot(base, name) {
                set.insert(s);
            }
        };
        for s in &bundle.servers {
            add(&mut e.servers, s.name);
            for r in &s.routes.routes {
                if let Some(n) = r.name {
                    add(&mut e.routes, n);
                }
            }
        }
        for r in &bundle.rules {
            add(&mut e.rules, r.name);
        }
        for s in &bundle.services {
            add(&mut e.services, s.name);
            for r in &s.routes.routes {
                if let Some(n) = r.name {
                    add(&mut e.routes, n);
                }
            }
            for b in &s.backends {
                add(&mut e.backends, b.name);
            }
        }
        if let Some(eg) = &bundle.egress {
            for r in &eg.rules {
                add(&mut e.rules, r.name);
            }
        }
        e
    }

    /// Checks that every name in `result` is the name of an entity of
    /// this kind, at the same place: `base` is the bytes of the bundle that
    /// decided (these entities' bundle, or a changed copy of it).
    pub fn check(
        &self,
        base: &[u8],
        result: &Result<Decision<'_>, RequestError<'_>>,
    ) -> Result<(), String> {
        let one = |set: &BTreeSet<(usize, usize)>, kind: &str, name: &str| match slot(base, name) {
            Some(s) if set.contains(&s) => Ok(()),
            _ => Err(format!("the {kind} `{name}` is no {kind} of the bundle")),
        };
        match result {
            Ok(d) => {
                if let Some(n) = d.server {
                    one(&self.servers, "server", n)?;
                }
                if let Some(n) = d.route {
                    one(&self.routes, "route", n)?;
                }
                if let Some(n) = d.rule {
                    one(&self.rules, "rule", n)?;
                }
                if let Some(n) = d.service {
                    one(&self.services, "service", n)?;
                }
                for b in d.backends {
                    one(&self.backends, "backend", b.name)?;
                }
                Ok(())
            }
            Err(RequestError::ConnectionToHttpServer { server }) => {
                one(&self.servers, "server", server)
            }
            Err(_) => Ok(()),
        }
    }
}
