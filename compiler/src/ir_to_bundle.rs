//! Lowered policy to bundle bytes: automata and tables.
//!
//! The layout is described in `docs/bundle.md`; `sluice_runtime::bundle`
//! reads it back. Every map here is ordered, so the same IR gives the same
//! bytes.

use crate::automata::{self, Flavor};
use crate::config::Config;
use crate::ir::{
    self, DefaultPolicy, Effect, Ir, NetSet, PathCond, PrincipalItem, Protocol, Route, ValueCond,
};
use regex_automata::dfa::Automaton;
use sluice_lang::ast::Span;
use sluice_lang::{Code, Diagnostic};
use sluice_runtime::bundle::{FORMAT_VERSION, HEADER_LEN, MAGIC};
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
    let mut b = Builder {
        config,
        dfas: Vec::new(),
        errors: Vec::new(),
        w: Writer::default(),
        clause_ids: BTreeMap::new(),
        value_ids: BTreeMap::new(),
    };
    b.policy(ir);
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    let stats = Stats {
        dfas: b.dfas.len(),
        dfa_bytes: b.dfas.iter().map(Vec::len).sum(),
        largest_dfa: b.dfas.iter().map(Vec::len).max().unwrap_or(0),
    };
    Ok((assemble(&b.w.buf, &b.dfas), stats))
}

/// Lays out header, tables, DFA directory and DFA blobs, and hashes them.
fn assemble(tables: &[u8], dfas: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    out.extend_from_slice(tables);
    pad8(&mut out);
    let dir_offset = out.len();
    let mut offset = dir_offset + dfas.len() * 16;
    for d in dfas {
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        out.extend_from_slice(&(d.len() as u64).to_le_bytes());
        offset += d.len().div_ceil(8) * 8;
    }
    for d in dfas {
        out.extend_from_slice(d);
        pad8(&mut out);
    }
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    // 12..16: flags, zero.
    let total = out.len() as u64;
    out[24..32].copy_from_slice(&total.to_le_bytes());
    out[32..36].copy_from_slice(&(tables.len() as u32).to_le_bytes());
    out[36..40].copy_from_slice(&(dfas.len() as u32).to_le_bytes());
    out[40..48].copy_from_slice(&(dir_offset as u64).to_le_bytes());
    let hash = xxhash_rust::xxh3::xxh3_64(&out[24..]);
    out[16..24].copy_from_slice(&hash.to_le_bytes());
    out
}

fn pad8(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
}

/// Little-endian table writer.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(n as u32);
    }
    fn bytes(&mut self, s: &[u8]) {
        self.len(s.len());
        self.buf.extend_from_slice(s);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }
    fn u32s(&mut self, v: &[u32]) {
        self.len(v.len());
        for &x in v {
            self.u32(x);
        }
    }
    fn lists(&mut self, v: &[Vec<u32>]) {
        self.len(v.len());
        for l in v {
            self.u32s(l);
        }
    }
    fn ports(&mut self, v: &[(u16, u16)]) {
        self.len(v.len());
        for &(a, b) in v {
            self.u16(a);
            self.u16(b);
        }
    }
}

fn default_code(d: DefaultPolicy) -> u8 {
    match d {
        DefaultPolicy::Allow => 0,
        DefaultPolicy::Deny => 1,
        DefaultPolicy::Audit => 2,
        DefaultPolicy::Authenticated => 3,
    }
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
    w: Writer,
    clause_ids: BTreeMap<Vec<PrincipalItem>, u32>,
    value_ids: BTreeMap<String, u32>,
}

impl Builder<'_> {
    /// Builds DFAs over `patterns`, splitting them into chunks when one
    /// automaton would exceed the size limit. Returns the DFA indices; chunk
    /// `k` holds the next consecutive run of patterns.
    fn dfa_chunks(
        &mut self,
        patterns: &[String],
        flavor: Flavor,
        span: Span,
        what: &str,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        if patterns.is_empty() {
            return out;
        }
        let mut stack = vec![patterns];
        while let Some(chunk) = stack.pop() {
            match automata::build_dfa(chunk, flavor, self.config) {
                Ok(dfa) => {
                    let mut bytes = vec![0u8; dfa.write_to_len()];
                    match dfa.write_to_little_endian(&mut bytes) {
                        Ok(n) => bytes.truncate(n),
                        Err(e) => {
                            self.errors.push(Diagnostic::new(
                                Code::InvalidRegex,
                                span,
                                format!("cannot serialize the automaton for {what}: {e}"),
                            ));
                            return out;
                        }
                    }
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

    /// Writes a list of DFA chunks with the number of patterns each holds.
    fn write_chunks(&mut self, chunks: &[u32]) {
        self.w.len(chunks.len());
        for &c in chunks {
            self.w.u32(c);
        }
    }

    fn policy(&mut self, ir: &Ir) {
        self.w.u8(default_code(ir.mesh_default));
        self.value_regexes(ir);
        self.principals(ir);
        self.rules(ir);
        self.servers(ir);
        self.services(ir);
        self.egress(ir);
    }

    /// One automaton per distinct header or query regex, shared by every
    /// condition that uses it.
    fn value_regexes(&mut self, ir: &Ir) {
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
                        );
                        self.value_ids.insert(re.clone(), dfas.len() as u32);
                        dfas.push(chunks.first().copied().unwrap_or(0));
                    }
                }
            }
        }
        self.w.u32s(&dfas);
    }

    fn principals(&mut self, ir: &Ir) {
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
        self.w.len(clauses.len());
        self.w.u32s(&authenticated);
        // One automaton set per trust domain, over the ID after the trust
        // domain: the runtime finds the trust domain by binary search and
        // walks only the path.
        self.w.len(identity.len());
        for (td, paths) in identity {
            self.w.str(&td);
            let patterns: Vec<String> = paths.keys().cloned().collect();
            let chunks = self.dfa_chunks(
                &patterns,
                Flavor::Bytes,
                Span::default(),
                "identity patterns",
            );
            self.write_chunks(&chunks);
            let lists: Vec<Vec<u32>> = paths.into_values().map(dedup).collect();
            self.w.lists(&lists);
        }
        self.net_table(nets);
    }

    /// Writes a network table: elementary intervals per family, each with
    /// atom ids, and each atom's target ids.
    fn net_table(&mut self, atoms: BTreeMap<Ranges, Vec<u32>>) {
        let keys: Vec<&Ranges> = atoms.keys().collect();
        for v6 in [false, true] {
            let per: Vec<&[(u128, u128)]> = keys
                .iter()
                .map(|r| if v6 { r.v6.as_slice() } else { r.v4.as_slice() })
                .collect();
            let table = elementary(&per);
            self.w.len(table.len());
            for (lo, hi, ids) in table {
                self.w.u128(lo);
                self.w.u128(hi);
                self.w.u32s(&ids);
            }
        }
        let lists: Vec<Vec<u32>> = atoms.into_values().map(dedup).collect();
        self.w.lists(&lists);
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

    fn rules(&mut self, ir: &Ir) {
        self.w.len(ir.rules.len());
        for rule in &ir.rules {
            self.w.str(&rule.name);
            self.w.u8(u8::from(rule.effect == Effect::Deny));
            let clauses = self.rule_clauses(rule);
            self.w.u32s(&clauses);
        }
    }

    fn servers(&mut self, ir: &Ir) {
        self.w.len(ir.servers.len());
        for (si, server) in ir.servers.iter().enumerate() {
            self.w.str(&server.name);
            self.w.u8(match server.protocol {
                Protocol::Http => 0,
                Protocol::Grpc => 1,
                Protocol::Tcp => 2,
            });
            self.w.u8(default_code(server.default));
            self.w.ports(&merge_ports(&server.ports));
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
            if server.routes.is_empty() {
                let implicit = Route::catch_all("", server.span);
                let r = rules_for(None);
                self.route_set(&[implicit], &[r], true, server.span, &server.name);
            } else {
                let rs: Vec<_> = (0..server.routes.len())
                    .map(|i| rules_for(Some(i)))
                    .collect();
                self.route_set(&server.routes, &rs, false, server.span, &server.name);
            }
        }
    }

    /// Writes a route set: path automata, pattern-to-routes lists and the
    /// routes themselves in precedence order.
    fn route_set(
        &mut self,
        routes: &[Route],
        rules: &[(Vec<u32>, Vec<u32>)],
        implicit: bool,
        span: Span,
        owner: &str,
    ) {
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by_key(|&i| routes[i].precedence_key(i));
        // Three groups, in precedence order: literal paths (exact and
        // prefix, one byte-mode automaton: normalized paths are ASCII),
        // regexes (only walked when no literal route is taken), and routes
        // without a path condition (no automaton at all).
        let mut literal = PatternGroup::default();
        let mut regex = PatternGroup::default();
        let mut any: Vec<u32> = Vec::new();
        for (rank, &i) in order.iter().enumerate() {
            let rank = rank as u32;
            match &routes[i].path {
                PathCond::Any => any.push(rank),
                PathCond::Regex(_) => regex.add(automata::path_regex(&routes[i].path), rank),
                cond => literal.add(automata::path_regex(cond), rank),
            }
        }
        let what = format!("the routes of `{owner}`");
        // Literal patterns form a trie-like automaton and rarely need
        // splitting; unrelated regexes multiply states, so they start in
        // chunks of REGEX_CHUNK (further halved when one is too large).
        // Normalized paths are ASCII, on which byte-mode regexes match
        // exactly as Unicode ones do while building far smaller automata; a
        // chunk that byte mode cannot express (`\p{..}`) stays Unicode.
        for (group, start) in [(&literal, usize::MAX), (&regex, REGEX_CHUNK)] {
            let mut chunks = Vec::new();
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
                chunks.extend(self.dfa_chunks(part, flavor, span, &what));
            }
            self.write_chunks(&chunks);
            self.w.lists(&group.routes);
        }
        self.w.u32s(&any);
        self.w.len(order.len());
        for &i in &order {
            let r = &routes[i];
            self.w.opt_str(if implicit { None } else { Some(&r.name) });
            self.w.len(r.methods.len());
            for m in &r.methods {
                self.w.str(m);
            }
            self.conds(&r.headers);
            self.conds(&r.queries);
            let (deny, allow) = rules.get(i).cloned().unwrap_or_default();
            self.w.u32s(&deny);
            self.w.u32s(&allow);
            self.w.len(r.to.len());
            for &(b, weight) in &r.to {
                self.w.u32(b as u32);
                self.w.u32(weight);
            }
            self.w.opt_u64(r.timeout_ms);
            self.retry(r.retry.as_ref());
        }
    }

    fn conds(&mut self, conds: &[(String, ValueCond)]) {
        self.w.len(conds.len());
        for (name, cond) in conds {
            self.w.str(name);
            match cond {
                ValueCond::Exact(v) => {
                    self.w.u8(0);
                    self.w.str(v);
                }
                ValueCond::Regex(re) => {
                    self.w.u8(1);
                    self.w.u32(self.value_ids.get(re).copied().unwrap_or(0));
                }
                ValueCond::Present => self.w.u8(2),
            }
        }
    }

    fn retry(&mut self, retry: Option<&ir::Retry>) {
        let Some(r) = retry else {
            self.w.u8(0);
            return;
        };
        self.w.u8(1);
        self.w.u32(r.attempts);
        self.w.len(r.on.len());
        for c in &r.on {
            let (kind, v) = match *c {
                ir::RetryCond::ServerError => (0u8, 0u16),
                ir::RetryCond::GatewayError => (1, 0),
                ir::RetryCond::Reset => (2, 0),
                ir::RetryCond::Status(s) => (3, s),
                ir::RetryCond::Grpc(g) => (4, g as u16),
            };
            self.w.u8(kind);
            self.w.u16(v);
        }
        self.w.opt_u64(r.per_try_timeout_ms);
        self.w.u8(r.budget_percent);
    }

    fn services(&mut self, ir: &Ir) {
        self.w.len(ir.services.len());
        for svc in &ir.services {
            self.w.str(&svc.name);
            self.w.len(svc.authorities.len());
            for (host, port) in &svc.authorities {
                self.w.str(host);
                self.w.u16(*port);
            }
            self.w.opt_u64(svc.timeout_ms);
            self.retry(svc.retry.as_ref());
            match &svc.breaker {
                Some(b) => {
                    self.w.u8(1);
                    self.w.u32(b.consecutive_failures);
                    self.w.u64(b.backoff_min_ms);
                    self.w.u64(b.backoff_max_ms);
                    self.w.u8(b.jitter_percent);
                }
                None => self.w.u8(0),
            }
            self.w.len(svc.backends.len());
            for b in &svc.backends {
                self.w.str(&b.name);
                self.w.len(b.endpoints.len());
                for e in &b.endpoints {
                    match e {
                        ir::Endpoint::Addr(a) => {
                            self.w.u8(0);
                            self.w.str(&a.to_string());
                        }
                        ir::Endpoint::Name(h, p) => {
                            self.w.u8(1);
                            self.w.str(&format!("{h}:{p}"));
                        }
                    }
                }
                self.w.opt_str(b.identity.as_deref());
                self.w.opt_str(b.cluster.as_deref());
                self.w.opt_u64(b.failover.map(|f| f as u64));
                self.w.opt_u64(b.max_in_flight.map(u64::from));
            }
            let rules = vec![(Vec::new(), Vec::new()); svc.routes.len()];
            self.route_set(&svc.routes, &rules, false, svc.span, &svc.name);
        }
    }

    fn egress(&mut self, ir: &Ir) {
        let Some(eg) = &ir.egress else {
            self.w.u8(0);
            return;
        };
        self.w.u8(1);
        self.w.u8(u8::from(eg.default == Effect::Deny));
        self.w.len(eg.rules.len());
        let mut hosts: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut star: Vec<u32> = Vec::new();
        let mut nets: BTreeMap<Ranges, Vec<u32>> = BTreeMap::new();
        for (i, r) in eg.rules.iter().enumerate() {
            let id = i as u32;
            self.w.str(&r.name);
            self.w.u8(u8::from(r.effect == Effect::Deny));
            self.w.ports(&r.ports);
            self.w
                .u8(u8::from(r.hosts.is_empty() && r.networks.is_none()));
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
        let chunks = self.dfa_chunks(
            &patterns,
            Flavor::Bytes,
            Span::default(),
            "egress host patterns",
        );
        self.write_chunks(&chunks);
        let lists: Vec<Vec<u32>> = hosts.into_values().map(dedup).collect();
        self.w.lists(&lists);
        self.w.u32s(&dedup(star));
        self.net_table(nets);
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
