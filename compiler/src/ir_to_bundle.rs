//! Lowered policy to bundle contents: automata and tables.
//!
//! This is compiler work: deduplicating clauses, patterns and networks,
//! numbering them, ordering routes by precedence and building the
//! automata. The result is plain data
//! ([`sluice_runtime::bundle::encode::Contents`]), which the runtime's
//! encoder turns into bytes beside the loader that reads them back (see
//! `docs/bundle.md`). Every map here is ordered, so the same IR gives the
//! same bytes.

use crate::automata::{self, Flavor, IdentityLiteral};
use crate::config::Config;
use crate::ir::{self, Effect, Ir, NetSet, PathCond, PrincipalItem, Route, ValueCond};
use regex_automata::dfa::Automaton;
use sluice_lang::ast::Span;
use sluice_lang::{Code, Diagnostic};
use sluice_runtime::bundle::encode::{self as tables, Contents, Networks, RouteSet, Tables};
use std::collections::BTreeMap;

/// Sizes of what was built, for `sluice compile` and the benchmarks.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Number of automata.
    pub dfas: usize,
    /// Total bytes of serialized automata.
    pub dfa_bytes: usize,
    /// The largest automaton, in bytes.
    pub largest_dfa: usize,
}

/// Builds the automata and serializes the bundle. Fails only when an
/// automaton cannot be built within the limits even after splitting.
pub fn ir_to_bundle(ir: &Ir, config: &Config) -> Result<Vec<u8>, Vec<Diagnostic>> {
    ir_to_bundle_with_stats(ir, config).map(|(b, _)| b)
}

/// [`ir_to_bundle`], also returning automaton sizes.
pub fn ir_to_bundle_with_stats(
    ir: &Ir,
    config: &Config,
) -> Result<(Vec<u8>, Stats), Vec<Diagnostic>> {
    ir_to_contents(ir, config).map(|(contents, stats)| (contents.encode(), stats))
}

/// The bundle's contents as plain data, before encoding, with automaton sizes.
pub fn ir_to_contents(ir: &Ir, config: &Config) -> Result<(Contents, Stats), Vec<Diagnostic>> {
    let mut b = Builder {
        config,
        dfas: Vec::new(),
        errors: Vec::new(),
        clause_ids: BTreeMap::new(),
        value_ids: BTreeMap::new(),
    };
    let tables = b.tables(ir);
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    let stats = Stats {
        dfas: b.dfas.len(),
        dfa_bytes: b.dfas.iter().map(Vec::len).sum(),
        largest_dfa: b.dfas.iter().map(Vec::len).max().unwrap_or(0),
    };
    Ok((
        Contents {
            tables,
            automata: b.dfas,
        },
        stats,
    ))
}

/// Address ranges of a network set, per family, as sorted disjoint
/// inclusive ranges (IPv4 in the `u32` space, IPv6 in `u128`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ranges {
    /// IPv4 ranges.
    pub v4: Vec<(u128, u128)>,
    /// IPv6 ranges.
    pub v6: Vec<(u128, u128)>,
}

fn net_range(n: &ipnet::IpNet) -> (bool, u128, u128) {
    match n {
        ipnet::IpNet::V4(n) => (
            false,
            u32::from(n.network()) as u128,
            u32::from(n.broadcast()) as u128,
        ),
        ipnet::IpNet::V6(n) => (true, u128::from(n.network()), u128::from(n.broadcast())),
    }
}

fn normalize_ranges(mut v: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    v.sort();
    let mut out: Vec<(u128, u128)> = Vec::new();
    for (lo, hi) in v {
        if let Some(last) = out.last_mut() {
            if lo <= last.1.saturating_add(1) {
                last.1 = last.1.max(hi);
                continue;
            }
        }
        out.push((lo, hi));
    }
    out
}

fn subtract(include: Vec<(u128, u128)>, except: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for (mut lo, hi) in include {
        let mut alive = true;
        for &(elo, ehi) in except {
            if !alive || ehi < lo || elo > hi {
                continue;
            }
            if elo > lo {
                out.push((lo, elo - 1));
            }
            if ehi >= hi {
                alive = false;
            } else {
                lo = ehi + 1;
            }
        }
        if alive {
            out.push((lo, hi));
        }
    }
    out
}

impl Ranges {
    /// The addresses of `set`: its networks minus its exceptions.
    pub fn of(set: &NetSet) -> Ranges {
        let split = |nets: &[ipnet::IpNet], v6: bool| {
            normalize_ranges(
                nets.iter()
                    .map(net_range)
                    .filter(|r| r.0 == v6)
                    .map(|r| (r.1, r.2))
                    .collect(),
            )
        };
        Ranges {
            v4: subtract(split(&set.include, false), &split(&set.except, false)),
            v6: subtract(split(&set.include, true), &split(&set.except, true)),
        }
    }
}

/// A network table: elementary intervals per family, each with atom ids,
/// and each atom's target ids.
fn net_table(atoms: BTreeMap<Ranges, Vec<u32>>) -> Networks {
    let keys: Vec<&Ranges> = atoms.keys().collect();
    let family = |v6: bool| {
        let per: Vec<&[(u128, u128)]> = keys
            .iter()
            .map(|r| if v6 { r.v6.as_slice() } else { r.v4.as_slice() })
            .collect();
        elementary(&per)
    };
    let (v4, v6) = (family(false), family(true));
    Networks {
        v4,
        v6,
        atom_targets: atoms.into_values().map(dedup).collect(),
    }
}

/// Elementary intervals of a family: sorted disjoint ranges, each with the
/// ids of the atoms covering it.
fn elementary(atoms: &[&[(u128, u128)]]) -> Vec<(u128, u128, Vec<u32>)> {
    let mut bounds: Vec<u128> = Vec::new();
    for ranges in atoms {
        for &(lo, hi) in *ranges {
            bounds.push(lo);
            if hi < u128::MAX {
                bounds.push(hi + 1);
            }
        }
    }
    bounds.sort_unstable();
    bounds.dedup();
    // Sweep: starts and ends per boundary.
    let mut starts: BTreeMap<u128, Vec<u32>> = BTreeMap::new();
    let mut ends: BTreeMap<u128, Vec<u32>> = BTreeMap::new();
    for (id, ranges) in atoms.iter().enumerate() {
        for &(lo, hi) in *ranges {
            starts.entry(lo).or_default().push(id as u32);
            if hi < u128::MAX {
                ends.entry(hi + 1).or_default().push(id as u32);
            }
        }
    }
    let mut active: std::collections::BTreeSet<u32> = Default::default();
    let mut out = Vec::new();
    for (i, &b) in bounds.iter().enumerate() {
        if let Some(e) = ends.get(&b) {
            for id in e {
                active.remove(id);
            }
        }
        if let Some(s) = starts.get(&b) {
            active.extend(s.iter().copied());
        }
        if active.is_empty() {
            continue;
        }
        let hi = match bounds.get(i + 1) {
            Some(&next) => next - 1,
            None => u128::MAX,
        };
        out.push((b, hi, active.iter().copied().collect()));
    }
    out
}

struct Builder<'c> {
    config: &'c Config,
    dfas: Vec<Vec<u8>>,
    errors: Vec<Diagnostic>,
    clause_ids: BTreeMap<Vec<PrincipalItem>, u32>,
    value_ids: BTreeMap<String, u32>,
}

impl Builder<'_> {
    /// Builds DFAs over `patterns`, splitting them into chunks when one
    /// automaton would exceed the size limit. Returns the DFA indices; chunk
    /// `k` holds the next consecutive run of patterns.
    /// With `may_be_sparse`, a chunk whose dense DFA exceeds
    /// `Config::sparse_dfa_above` bytes is written as a sparse DFA.
    fn dfa_chunks(
        &mut self,
        patterns: &[String],
        flavor: Flavor,
        span: Span,
        what: &str,
        may_be_sparse: bool,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        if patterns.is_empty() {
            return out;
        }
        let mut stack = vec![patterns];
        while let Some(chunk) = stack.pop() {
            match automata::build_dfa(chunk, flavor, self.config) {
                Ok(dfa) => {
                    let written =
                        if may_be_sparse && dfa.write_to_len() > self.config.sparse_dfa_above {
                            dfa.to_sparse().map_err(|e| e.to_string()).and_then(|s| {
                                let mut bytes = vec![0u8; s.write_to_len()];
                                s.write_to_little_endian(&mut bytes)
                                    .map(|n| {
                                        bytes.truncate(n);
                                        bytes
                                    })
                                    .map_err(|e| e.to_string())
                            })
                        } else {
                            let mut bytes = vec![0u8; dfa.write_to_len()];
                            dfa.write_to_little_endian(&mut bytes)
                                .map(|n| {
                                    bytes.truncate(n);
                                    bytes
                                })
                                .map_err(|e| e.to_string())
                        };
                    let bytes = match written {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            self.errors.push(Diagnostic::new(
                                Code::InvalidRegex,
                                span,
                                format!("cannot serialize the automaton for {what}: {e}"),
                            ));
                            return out;
                        }
                    };
                    debug_assert_eq!(dfa.pattern_len(), chunk.len());
                    out.push(self.dfas.len() as u32);
                    self.dfas.push(bytes);
                }
                Err(e) if chunk.len() > 1 => {
                    let _ = e;
                    let mid = chunk.len() / 2;
                    // Pushed in reverse so chunks come out in pattern order.
                    stack.push(&chunk[mid..]);
                    stack.push(&chunk[..mid]);
                }
                Err(e) => {
                    self.errors.push(Diagnostic::new(
                        Code::InvalidRegex,
                        span,
                        format!("the automaton for {what} exceeds the size limit: {e}"),
                    ));
                    return out;
                }
            }
        }
        out
    }

    /// The tables, building automata in the order the tables name them.
    fn tables(&mut self, ir: &Ir) -> Tables {
        let value_automata = self.value_regexes(ir);
        let (clause_count, authenticated_clauses, trust_domains, peer_networks) =
            self.principals(ir);
        Tables {
            mesh_default: ir.mesh_default,
            value_automata,
            clause_count,
            authenticated_clauses,
            trust_domains,
            peer_networks,
            rules: self.rules(ir),
            servers: self.servers(ir),
            services: self.services(ir),
            egress: self.egress(ir),
        }
    }

    /// One automaton per distinct header or query regex, shared by every
    /// condition that uses it.
    fn value_regexes(&mut self, ir: &Ir) -> Vec<u32> {
        let routes = ir
            .servers
            .iter()
            .flat_map(|s| &s.routes)
            .chain(ir.services.iter().flat_map(|s| &s.routes));
        let mut dfas = Vec::new();
        for r in routes {
            for (_, cond) in r.headers.iter().chain(&r.queries) {
                if let ValueCond::Regex(re) = cond {
                    if !self.value_ids.contains_key(re) {
                        let chunks = self.dfa_chunks(
                            &[automata::group(re)],
                            Flavor::Unicode,
                            r.span,
                            &format!("`{re}`"),
                            false,
                        );
                        self.value_ids.insert(re.clone(), dfas.len() as u32);
                        dfas.push(chunks.first().copied().unwrap_or(0));
                    }
                }
            }
        }
        dfas
    }

    /// The clause count, the clauses any identity satisfies, the identity
    /// patterns per trust domain and the peer network table.
    fn principals(&mut self, ir: &Ir) -> (u32, Vec<u32>, Vec<tables::TrustDomain>, Networks) {
        // Clauses: distinct `from` clauses that are not always true.
        let mut clause_ids: BTreeMap<Vec<PrincipalItem>, u32> = BTreeMap::new();
        let mut clauses: Vec<Vec<PrincipalItem>> = Vec::new();
        for rule in &ir.rules {
            for c in &rule.clauses {
                if c.contains(&PrincipalItem::Any) {
                    continue;
                }
                let mut key = c.clone();
                key.sort();
                if !clause_ids.contains_key(&key) {
                    clause_ids.insert(key.clone(), clauses.len() as u32);
                    clauses.push(key);
                }
            }
        }
        self.clause_ids = clause_ids;
        // Atoms.
        let mut authenticated: Vec<u32> = Vec::new();
        // Per trust domain, path pattern to clauses.
        let mut identity: BTreeMap<String, BTreeMap<String, Vec<u32>>> = BTreeMap::new();
        // Per trust domain, literal path to the clauses of the patterns
        // that are it, it then `/*`, it then `/**` (the runtime's table).
        let mut literal_ids: BTreeMap<String, BTreeMap<String, tables::LiteralIdentity>> =
            BTreeMap::new();
        let mut nets: BTreeMap<Ranges, Vec<u32>> = BTreeMap::new();
        for (cid, c) in clauses.iter().enumerate() {
            let cid = cid as u32;
            for item in c {
                match item {
                    PrincipalItem::Any => {}
                    PrincipalItem::Authenticated => authenticated.push(cid),
                    PrincipalItem::Identity(pats) => {
                        for p in pats {
                            if p == "*" {
                                authenticated.push(cid);
                            } else if let Some((td, path, how)) = automata::identity_literal(p) {
                                let entry = literal_ids
                                    .entry(td)
                                    .or_default()
                                    .entry(path.clone())
                                    .or_insert_with(|| tables::LiteralIdentity {
                                        path: path.into_bytes(),
                                        ..Default::default()
                                    });
                                match how {
                                    IdentityLiteral::Whole => entry.whole.push(cid),
                                    IdentityLiteral::OneSegment => entry.one_segment.push(cid),
                                    IdentityLiteral::Segments => entry.segments.push(cid),
                                }
                            } else {
                                let (td, path) = automata::identity_parts(p);
                                identity
                                    .entry(td)
                                    .or_default()
                                    .entry(path)
                                    .or_default()
                                    .push(cid);
                            }
                        }
                    }
                    PrincipalItem::Network(set) => {
                        nets.entry(Ranges::of(set)).or_default().push(cid)
                    }
                }
            }
        }
        authenticated.sort_unstable();
        authenticated.dedup();
        // One automaton set per trust domain, over the ID after the trust
        // domain: the runtime finds the trust domain by binary search and
        // walks only the path.
        for td in literal_ids.keys() {
            identity.entry(td.clone()).or_default();
        }
        let mut trust_domains = Vec::with_capacity(identity.len());
        for (td, paths) in identity {
            let literals = literal_ids
                .remove(&td)
                .unwrap_or_default()
                .into_values()
                .map(|mut l| {
                    l.whole = dedup(l.whole);
                    l.one_segment = dedup(l.one_segment);
                    l.segments = dedup(l.segments);
                    l
                })
                .collect();
            let patterns: Vec<String> = paths.keys().cloned().collect();
            let automata = self.dfa_chunks(
                &patterns,
                Flavor::Bytes,
                Span::default(),
                "identity patterns",
                false,
            );
            trust_domains.push(tables::TrustDomain {
                name: td,
                literals,
                automata,
                pattern_clauses: paths.into_values().map(dedup).collect(),
            });
        }
        (
            clauses.len() as u32,
            authenticated,
            trust_domains,
            net_table(nets),
        )
    }

    fn rule_clauses(&self, rule: &ir::Rule) -> Vec<u32> {
        let mut out = Vec::new();
        for c in &rule.clauses {
            if c.contains(&PrincipalItem::Any) {
                continue;
            }
            let mut key = c.clone();
            key.sort();
            out.push(self.clause_ids[&key]);
        }
        dedup(out)
    }

    fn rules(&mut self, ir: &Ir) -> Vec<tables::Rule> {
        ir.rules
            .iter()
            .map(|rule| tables::Rule {
                name: rule.name.clone(),
                deny: rule.effect == Effect::Deny,
                clauses: self.rule_clauses(rule),
            })
            .collect()
    }

    fn servers(&mut self, ir: &Ir) -> Vec<tables::Server> {
        let mut servers = Vec::with_capacity(ir.servers.len());
        for (si, server) in ir.servers.iter().enumerate() {
            // Rules applying to each route (and to the implicit route).
            let rules_for = |route: Option<usize>| {
                let mut deny = Vec::new();
                let mut allow = Vec::new();
                for (ri, rule) in ir.rules.iter().enumerate() {
                    let applies = rule.targets.iter().any(|t| {
                        t.server == si
                            && (t.route.is_none() || (t.route == route && route.is_some()))
                    });
                    if applies {
                        if rule.effect == Effect::Deny {
                            deny.push(ri as u32)
                        } else {
                            allow.push(ri as u32)
                        }
                    }
                }
                (deny, allow)
            };
            let routes = if server.routes.is_empty() {
                let implicit = Route::catch_all("", server.span);
                let r = rules_for(None);
                self.route_set(&[implicit], &[r], true, server.span, &server.name)
            } else {
                let rs: Vec<_> = (0..server.routes.len())
                    .map(|i| rules_for(Some(i)))
                    .collect();
                self.route_set(&server.routes, &rs, false, server.span, &server.name)
            };
            servers.push(tables::Server {
                name: server.name.clone(),
                protocol: server.protocol,
                default: server.default,
                ports: merge_ports(&server.ports),
                routes,
            });
        }
        servers
    }

    /// A route set: path automata, pattern-to-routes lists and the routes
    /// themselves in precedence order.
    fn route_set(
        &mut self,
        routes: &[Route],
        rules: &[(Vec<u32>, Vec<u32>)],
        implicit: bool,
        span: Span,
        owner: &str,
    ) -> RouteSet {
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by_key(|&i| routes[i].precedence_key(i));
        // Three groups, in precedence order: literal paths (exact and
        // prefix, a table of distinct paths that the runtime indexes by
        // hash),
        // regexes (only walked when no literal route is taken), and routes
        // without a path condition (no automaton at all).
        let mut literal: BTreeMap<&str, tables::LiteralPath> = BTreeMap::new();
        let mut regex = PatternGroup::default();
        let mut any: Vec<u32> = Vec::new();
        for (rank, &i) in order.iter().enumerate() {
            let rank = rank as u32;
            let cond = &routes[i].path;
            match cond {
                PathCond::Any => any.push(rank),
                PathCond::Regex(_) => regex.add(automata::path_regex(cond), rank),
                PathCond::Exact(p) | PathCond::Prefix(p) => {
                    let entry = literal.entry(p).or_insert_with(|| tables::LiteralPath {
                        path: p.as_bytes().to_vec(),
                        ..Default::default()
                    });
                    match cond {
                        PathCond::Exact(_) => entry.exact.push(rank),
                        _ => entry.prefix.push(rank),
                    }
                }
            }
        }
        let what = format!("the routes of `{owner}`");
        // Unrelated regexes multiply states, so they start in chunks of
        // REGEX_CHUNK (further halved when one is too large).
        // Normalized paths are ASCII, on which byte-mode regexes match
        // exactly as Unicode ones do while building far smaller automata; a
        // chunk that byte mode cannot express (`\p{..}`) stays Unicode.
        let mut regex_automata = Vec::new();
        for (group, start, chunks) in [(&regex, REGEX_CHUNK, &mut regex_automata)] {
            for part in group
                .patterns
                .chunks(start.min(group.patterns.len().max(1)))
            {
                let bytes_ok = part.iter().all(|p| automata::parses_as_bytes(p));
                let flavor = if bytes_ok {
                    Flavor::Bytes
                } else {
                    Flavor::Unicode
                };
                chunks.extend(self.dfa_chunks(part, flavor, span, &what, true));
            }
        }
        let routes = order
            .iter()
            .map(|&i| {
                let r = &routes[i];
                let (deny_rules, allow_rules) = rules.get(i).cloned().unwrap_or_default();
                tables::Route {
                    name: (!implicit).then(|| r.name.clone()),
                    methods: r.methods.clone(),
                    headers: self.conds(&r.headers),
                    queries: self.conds(&r.queries),
                    deny_rules,
                    allow_rules,
                    backends: r.to.iter().map(|&(b, w)| (b as u32, w)).collect(),
                    timeout_ms: r.timeout_ms,
                    retry: r.retry.clone(),
                }
            })
            .collect();
        RouteSet {
            literal_paths: literal.into_values().collect(),
            regex_automata,
            regex_routes: regex.routes,
            routes_without_path: any,
            routes,
        }
    }

    fn conds(&self, conds: &[(String, ValueCond)]) -> Vec<tables::Cond> {
        conds
            .iter()
            .map(|(name, cond)| tables::Cond {
                name: name.clone(),
                value: match cond {
                    ValueCond::Exact(v) => tables::ValueCond::Exact(v.as_bytes().to_vec()),
                    ValueCond::Regex(re) => {
                        tables::ValueCond::Regex(self.value_ids.get(re).copied().unwrap_or(0))
                    }
                    ValueCond::Present => tables::ValueCond::Present,
                },
            })
            .collect()
    }

    fn services(&mut self, ir: &Ir) -> Vec<tables::Service> {
        let mut services = Vec::with_capacity(ir.services.len());
        for svc in &ir.services {
            let backends = svc
                .backends
                .iter()
                .map(|b| tables::Backend {
                    name: b.name.clone(),
                    endpoints: b
                        .endpoints
                        .iter()
                        .map(|e| match e {
                            ir::Endpoint::Addr(a) => tables::Endpoint::Address(a.to_string()),
                            ir::Endpoint::Name(h, p) => tables::Endpoint::Name(format!("{h}:{p}")),
                        })
                        .collect(),
                    identity: b.identity.clone(),
                    cluster: b.cluster.clone(),
                    failover: b.failover.map(|f| f as u32),
                    max_in_flight: b.max_in_flight,
                })
                .collect();
            let rules = vec![(Vec::new(), Vec::new()); svc.routes.len()];
            let routes = self.route_set(&svc.routes, &rules, false, svc.span, &svc.name);
            services.push(tables::Service {
                name: svc.name.clone(),
                authorities: svc.authorities.clone(),
                timeout_ms: svc.timeout_ms,
                retry: svc.retry.clone(),
                breaker: svc.breaker.clone(),
                backends,
                routes,
            });
        }
        services
    }

    fn egress(&mut self, ir: &Ir) -> Option<tables::Egress> {
        let eg = ir.egress.as_ref()?;
        let mut rules = Vec::with_capacity(eg.rules.len());
        let mut hosts: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut star: Vec<u32> = Vec::new();
        let mut nets: BTreeMap<Ranges, Vec<u32>> = BTreeMap::new();
        for (i, r) in eg.rules.iter().enumerate() {
            let id = i as u32;
            rules.push(tables::EgressRule {
                name: r.name.clone(),
                deny: r.effect == Effect::Deny,
                ports: r.ports.clone(),
                any_destination: r.hosts.is_empty() && r.networks.is_none(),
            });
            for h in &r.hosts {
                if h == "*" {
                    star.push(id);
                } else {
                    hosts.entry(automata::host_regex(h)).or_default().push(id);
                }
            }
            if let Some(n) = &r.networks {
                nets.entry(Ranges::of(n)).or_default().push(id);
            }
        }
        let patterns: Vec<String> = hosts.keys().cloned().collect();
        let host_automata = self.dfa_chunks(
            &patterns,
            Flavor::Bytes,
            Span::default(),
            "egress host patterns",
            false,
        );
        Some(tables::Egress {
            default_deny: eg.default == Effect::Deny,
            rules,
            host_automata,
            host_pattern_rules: hosts.into_values().map(dedup).collect(),
            star_rules: dedup(star),
            networks: net_table(nets),
        })
    }
}

/// How many route regexes one automaton starts with.
const REGEX_CHUNK: usize = 256;

/// Distinct patterns, first seen in precedence order, each with its routes' ranks.
#[derive(Default)]
struct PatternGroup {
    ids: BTreeMap<String, usize>,
    patterns: Vec<String>,
    routes: Vec<Vec<u32>>,
}

impl PatternGroup {
    fn add(&mut self, pattern: String, rank: u32) {
        let id = match self.ids.get(&pattern) {
            Some(&id) => id,
            None => {
                self.ids.insert(pattern.clone(), self.patterns.len());
                self.patterns.push(pattern);
                self.routes.push(Vec::new());
                self.patterns.len() - 1
            }
        };
        self.routes[id].push(rank);
    }
}

/// Sorted, merged port ranges (`port 80, 80` or `8080-8081, 8081` are one range).
fn merge_ports(ports: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut v = ports.to_vec();
    v.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn dedup(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::bundle::schema::{self, Field, Kind};
    use sluice_runtime::AlignedBytes;
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Every inline policy of `conformance/` and every policy of `policies/`.
    fn policies() -> Vec<(String, sluice_lang::Policy)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut out = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(root.join("conformance"))
            .expect("conformance/")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        for file in files {
            let table: toml::Table =
                toml::from_str(&std::fs::read_to_string(&file).expect("read")).expect("TOML");
            if let Some(text) = table.get("policy").and_then(|p| p.as_str()) {
                let (policy, _) = sluice_lang::parse::parse_str("inline.sluice", text);
                out.push((file.display().to_string(), policy));
            }
        }
        for entry in std::fs::read_dir(root.join("policies")).expect("policies/") {
            let folder = entry.expect("entry").path();
            if !folder.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&folder).expect("folder") {
                let file = file.expect("entry").path();
                if file.extension().is_some_and(|e| e == "toml") {
                    let table: toml::Table =
                        toml::from_str(&std::fs::read_to_string(&file).expect("read"))
                            .expect("TOML");
                    let path = table["policy-file"].as_str().expect("policy-file");
                    let sources = sluice_lang::source::load(&folder.join(path)).expect("load");
                    let (policy, _) = sluice_lang::parse::parse_files(sources);
                    out.push((file.display().to_string(), policy));
                }
            }
        }
        out
    }

    fn leaf_names(fields: &[Field], out: &mut BTreeSet<&'static str>) {
        for f in fields {
            match f.kind {
                Kind::List(inner) | Kind::Opt(inner) => {
                    out.insert(f.name);
                    leaf_names(inner, out);
                }
                Kind::Record(inner) => leaf_names(inner, out),
                Kind::Tag(variants) => {
                    out.insert(f.name);
                    for v in variants {
                        leaf_names(v.fields, out);
                    }
                }
                _ => {
                    out.insert(f.name);
                }
            }
        }
    }

    #[test]
    fn writer_loader_and_schema_agree_field_for_field() {
        let config = Config::default();
        let mut checked = 0;
        let mut seen = BTreeSet::new();
        for (name, policy) in policies() {
            let (Some(ir), _) = crate::ast_to_ir::ast_to_ir(&policy, &config) else {
                continue;
            };
            let (contents, _) = ir_to_contents(&ir, &config)
                .unwrap_or_else(|e| panic!("{name} does not build: {e:?}"));
            let (bytes, written) = contents.encode_logged();
            let walked = schema::walk(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(m) = schema::compare("the writer", &written, &walked) {
                panic!("{name}: {m}");
            }
            let aligned = AlignedBytes::new(&bytes);
            let read = schema::loader_reads(aligned.as_bytes())
                .unwrap_or_else(|e| panic!("{name} does not load: {e}"));
            if let Some(m) = schema::compare("the loader", &read, &walked) {
                panic!("{name}: {m}");
            }
            seen.extend(walked.iter().map(|a| a.0));
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} policies compiled");
        let mut all = BTreeSet::new();
        leaf_names(schema::TABLES, &mut all);
        let missing: Vec<_> = all.difference(&seen).collect();
        assert!(
            missing.is_empty(),
            "no test policy writes the fields {missing:?}"
        );
    }

    #[test]
    fn sparse_automata_decide_like_dense_ones() {
        use sluice_runtime::fuzz::probe::probes;
        let dense = Config::default().dfa_size_limit(1 << 30);
        let dense = Config {
            sparse_dfa_above: usize::MAX,
            ..dense
        };
        let sparse = Config {
            sparse_dfa_above: 0,
            ..Config::default()
        };
        let mut checked = 0;
        let mut sparse_dfas = 0;
        for (name, policy) in policies() {
            let (Some(ir), _) = crate::ast_to_ir::ast_to_ir(&policy, &Config::default()) else {
                continue;
            };
            let build = |config: &Config| {
                let (bytes, _) = ir_to_bundle_with_stats(&ir, config)
                    .unwrap_or_else(|e| panic!("{name} does not build: {e:?}"));
                AlignedBytes::new(&bytes)
            };
            let (d, s) = (build(&dense), build(&sparse));
            let d = sluice_runtime::Bundle::from_bytes(d.as_bytes()).expect("dense loads");
            let s = sluice_runtime::Bundle::from_bytes(s.as_bytes())
                .unwrap_or_else(|e| panic!("{name}: the sparse bundle does not load: {e}"));
            sparse_dfas += s.summary().dfa_count;
            let mut dense_results = Vec::new();
            let set = probes(&d);
            set.decide_each(&d, |_, r| dense_results.push(format!("{r:?}")));
            let mut i = 0;
            set.decide_each(&s, |probe, r| {
                assert_eq!(
                    format!("{r:?}"),
                    dense_results[i],
                    "{name}: {probe:?} decides differently with sparse automata"
                );
                i += 1;
            });
            checked += 1;
        }
        assert!(
            checked >= 30 && sparse_dfas > 10,
            "{checked} policies, {sparse_dfas} DFAs"
        );
    }

    #[test]
    fn decoding_a_compiled_bundle_gives_back_its_contents_and_bytes() {
        let config = Config::default();
        let mut checked = 0;
        for (name, policy) in policies() {
            let (Some(ir), _) = crate::ast_to_ir::ast_to_ir(&policy, &config) else {
                continue;
            };
            let (contents, _) = ir_to_contents(&ir, &config)
                .unwrap_or_else(|e| panic!("{name} does not build: {e:?}"));
            let bytes = contents.encode();
            let aligned = AlignedBytes::new(&bytes);
            let decoded = Contents::decode(aligned.as_bytes())
                .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
            assert!(decoded == contents, "{name}: decoding changed the contents");
            assert!(
                decoded.encode() == bytes,
                "{name}: re-encoding changed the bytes"
            );
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} policies compiled");
    }
}
