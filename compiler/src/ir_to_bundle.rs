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
use sluice_runtime::bundle::schema::{Access, Prim};
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
    build(ir, config, false).map(|(bytes, stats, _)| (bytes, stats))
}

/// Builds the bundle; with `log`, also every named write of the tables.
fn build(
    ir: &Ir,
    config: &Config,
    log: bool,
) -> Result<(Vec<u8>, Stats, Vec<Access>), Vec<Diagnostic>> {
    let mut b = Builder {
        config,
        dfas: Vec::new(),
        errors: Vec::new(),
        w: Writer {
            buf: Vec::new(),
            log: log.then(Vec::new),
        },
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
    let log = b.w.log.take().unwrap_or_default();
    Ok((assemble(&b.w.buf, &b.dfas), stats, log))
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

/// Little-endian table writer. Every write names the field it writes (see
/// `sluice_runtime::bundle::schema`); with a log, each named write is
/// recorded so tests can compare the writer with the schema.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
    log: Option<Vec<Access>>,
}

impl Writer {
    fn note(&mut self, field: &'static str, prim: Prim) {
        if let Some(log) = &mut self.log {
            log.push((field, prim));
        }
    }
    fn raw_u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn raw_bytes(&mut self, s: &[u8]) {
        self.raw_u32(s.len() as u32);
        self.buf.extend_from_slice(s);
    }
    fn raw_u32s(&mut self, v: &[u32]) {
        self.raw_u32(v.len() as u32);
        for &x in v {
            self.raw_u32(x);
        }
    }
    fn u8(&mut self, field: &'static str, v: u8) {
        self.note(field, Prim::U8);
        self.buf.push(v);
    }
    fn bool(&mut self, field: &'static str, v: bool) {
        self.note(field, Prim::Bool);
        self.buf.push(u8::from(v));
    }
    fn u16(&mut self, field: &'static str, v: u16) {
        self.note(field, Prim::U16);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, field: &'static str, v: u32) {
        self.note(field, Prim::U32);
        self.raw_u32(v);
    }
    fn u64(&mut self, field: &'static str, v: u64) {
        self.note(field, Prim::U64);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u128(&mut self, field: &'static str, v: u128) {
        self.note(field, Prim::U128);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, field: &'static str, n: usize) {
        self.note(field, Prim::Len);
        self.raw_u32(n as u32);
    }
    fn bytes(&mut self, field: &'static str, s: &[u8]) {
        self.note(field, Prim::Bytes);
        self.raw_bytes(s);
    }
    fn str(&mut self, field: &'static str, s: &str) {
        self.note(field, Prim::Str);
        self.raw_bytes(s.as_bytes());
    }
    fn opt_str(&mut self, field: &'static str, s: Option<&str>) {
        self.note(field, Prim::OptStr);
        match s {
            Some(s) => {
                self.buf.push(1);
                self.raw_bytes(s.as_bytes());
            }
            None => self.buf.push(0),
        }
    }
    fn opt_u64(&mut self, field: &'static str, v: Option<u64>) {
        self.note(field, Prim::OptU64);
        match v {
            Some(v) => {
                self.buf.push(1);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            None => self.buf.push(0),
        }
    }
    fn u32s(&mut self, field: &'static str, v: &[u32]) {
        self.note(field, Prim::Ids);
        self.raw_u32s(v);
    }
    fn lists(&mut self, field: &'static str, v: &[Vec<u32>]) {
        self.note(field, Prim::IdLists);
        self.raw_u32(v.len() as u32);
        for l in v {
            self.raw_u32s(l);
        }
    }
    fn ports(&mut self, field: &'static str, v: &[(u16, u16)]) {
        self.note(field, Prim::Ports);
        self.raw_u32(v.len() as u32);
        for &(a, b) in v {
            self.buf.extend_from_slice(&a.to_le_bytes());
            self.buf.extend_from_slice(&b.to_le_bytes());
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
    fn write_chunks(&mut self, field: &'static str, chunks: &[u32]) {
        self.w.len(field, chunks.len());
        for &c in chunks {
            self.w.u32("automaton", c);
        }
    }

    fn policy(&mut self, ir: &Ir) {
        self.w.u8("mesh default", default_code(ir.mesh_default));
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
        self.w.len("value automata", dfas.len());
        for d in dfas {
            self.w.u32("automaton", d);
        }
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
        self.w.u32("clause count", clauses.len() as u32);
        self.w.u32s("authenticated clauses", &authenticated);
        // One automaton set per trust domain, over the ID after the trust
        // domain: the runtime finds the trust domain by binary search and
        // walks only the path.
        self.w.len("trust domains", identity.len());
        for (td, paths) in identity {
            self.w.str("trust domain", &td);
            let patterns: Vec<String> = paths.keys().cloned().collect();
            let chunks = self.dfa_chunks(
                &patterns,
                Flavor::Bytes,
                Span::default(),
                "identity patterns",
            );
            self.write_chunks("identity automata", &chunks);
            let lists: Vec<Vec<u32>> = paths.into_values().map(dedup).collect();
            self.w.lists("pattern clauses", &lists);
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
            self.w.len(
                if v6 {
                    "ipv6 intervals"
                } else {
                    "ipv4 intervals"
                },
                table.len(),
            );
            for (lo, hi, ids) in table {
                self.w.u128("first", lo);
                self.w.u128("last", hi);
                self.w.u32s("atoms", &ids);
            }
        }
        let lists: Vec<Vec<u32>> = atoms.into_values().map(dedup).collect();
        self.w.lists("atom targets", &lists);
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
        self.w.len("rules", ir.rules.len());
        for rule in &ir.rules {
            self.w.str("name", &rule.name);
            self.w.bool("deny", rule.effect == Effect::Deny);
            let clauses = self.rule_clauses(rule);
            self.w.u32s("clauses", &clauses);
        }
    }

    fn servers(&mut self, ir: &Ir) {
        self.w.len("servers", ir.servers.len());
        for (si, server) in ir.servers.iter().enumerate() {
            self.w.str("name", &server.name);
            self.w.u8(
                "protocol",
                match server.protocol {
                    Protocol::Http => 0,
                    Protocol::Grpc => 1,
                    Protocol::Tcp => 2,
                },
            );
            self.w.u8("default", default_code(server.default));
            self.w.ports("ports", &merge_ports(&server.ports));
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
        for (group, start, automata, lists) in [
            (
                &literal,
                usize::MAX,
                "literal path automata",
                "literal pattern routes",
            ),
            (
                &regex,
                REGEX_CHUNK,
                "regex path automata",
                "regex pattern routes",
            ),
        ] {
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
            self.write_chunks(automata, &chunks);
            self.w.lists(lists, &group.routes);
        }
        self.w.u32s("routes without path", &any);
        self.w.len("routes", order.len());
        for &i in &order {
            let r = &routes[i];
            self.w
                .opt_str("name", if implicit { None } else { Some(&r.name) });
            self.w.len("methods", r.methods.len());
            for m in &r.methods {
                self.w.str("method", m);
            }
            self.conds("headers", &r.headers);
            self.conds("queries", &r.queries);
            let (deny, allow) = rules.get(i).cloned().unwrap_or_default();
            self.w.u32s("deny rules", &deny);
            self.w.u32s("allow rules", &allow);
            self.w.len("backends", r.to.len());
            for &(b, weight) in &r.to {
                self.w.u32("backend", b as u32);
                self.w.u32("weight", weight);
            }
            self.w.opt_u64("timeout ms", r.timeout_ms);
            self.retry(r.retry.as_ref());
        }
    }

    fn conds(&mut self, field: &'static str, conds: &[(String, ValueCond)]) {
        self.w.len(field, conds.len());
        for (name, cond) in conds {
            self.w.str("name", name);
            match cond {
                ValueCond::Exact(v) => {
                    self.w.u8("value", 0);
                    self.w.bytes("value", v.as_bytes());
                }
                ValueCond::Regex(re) => {
                    self.w.u8("value", 1);
                    let id = self.value_ids.get(re).copied().unwrap_or(0);
                    self.w.u32("value automaton", id);
                }
                ValueCond::Present => self.w.u8("value", 2),
            }
        }
    }

    fn retry(&mut self, retry: Option<&ir::Retry>) {
        let Some(r) = retry else {
            self.w.bool("retry", false);
            return;
        };
        self.w.bool("retry", true);
        self.w.u32("attempts", r.attempts);
        self.w.len("on", r.on.len());
        for c in &r.on {
            let (kind, v) = match *c {
                ir::RetryCond::ServerError => (0u8, 0u16),
                ir::RetryCond::GatewayError => (1, 0),
                ir::RetryCond::Reset => (2, 0),
                ir::RetryCond::Status(s) => (3, s),
                ir::RetryCond::Grpc(g) => (4, g as u16),
            };
            self.w.u8("condition", kind);
            self.w.u16("value", v);
        }
        self.w.opt_u64("per-try timeout ms", r.per_try_timeout_ms);
        self.w.u8("budget percent", r.budget_percent);
    }

    fn services(&mut self, ir: &Ir) {
        self.w.len("services", ir.services.len());
        for svc in &ir.services {
            self.w.str("name", &svc.name);
            self.w.len("authorities", svc.authorities.len());
            for (host, port) in &svc.authorities {
                self.w.str("host", host);
                self.w.u16("port", *port);
            }
            self.w.opt_u64("timeout ms", svc.timeout_ms);
            self.retry(svc.retry.as_ref());
            match &svc.breaker {
                Some(b) => {
                    self.w.bool("circuit breaker", true);
                    self.w.u32("consecutive failures", b.consecutive_failures);
                    self.w.u64("backoff min ms", b.backoff_min_ms);
                    self.w.u64("backoff max ms", b.backoff_max_ms);
                    self.w.u8("jitter percent", b.jitter_percent);
                }
                None => self.w.bool("circuit breaker", false),
            }
            self.w.len("backends", svc.backends.len());
            for b in &svc.backends {
                self.w.str("name", &b.name);
                self.w.len("endpoints", b.endpoints.len());
                for e in &b.endpoints {
                    match e {
                        ir::Endpoint::Addr(a) => {
                            self.w.u8("endpoint", 0);
                            self.w.str("text", &a.to_string());
                        }
                        ir::Endpoint::Name(h, p) => {
                            self.w.u8("endpoint", 1);
                            self.w.str("text", &format!("{h}:{p}"));
                        }
                    }
                }
                self.w.opt_str("identity", b.identity.as_deref());
                self.w.opt_str("cluster", b.cluster.as_deref());
                self.w.opt_u64("failover", b.failover.map(|f| f as u64));
                self.w
                    .opt_u64("max in flight", b.max_in_flight.map(u64::from));
            }
            let rules = vec![(Vec::new(), Vec::new()); svc.routes.len()];
            self.route_set(&svc.routes, &rules, false, svc.span, &svc.name);
        }
    }

    fn egress(&mut self, ir: &Ir) {
        let Some(eg) = &ir.egress else {
            self.w.bool("egress", false);
            return;
        };
        self.w.bool("egress", true);
        self.w.bool("default deny", eg.default == Effect::Deny);
        self.w.len("rules", eg.rules.len());
        let mut hosts: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut star: Vec<u32> = Vec::new();
        let mut nets: BTreeMap<Ranges, Vec<u32>> = BTreeMap::new();
        for (i, r) in eg.rules.iter().enumerate() {
            let id = i as u32;
            self.w.str("name", &r.name);
            self.w.bool("deny", r.effect == Effect::Deny);
            self.w.ports("ports", &r.ports);
            self.w.bool(
                "any destination",
                r.hosts.is_empty() && r.networks.is_none(),
            );
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
        self.write_chunks("host automata", &chunks);
        let lists: Vec<Vec<u32>> = hosts.into_values().map(dedup).collect();
        self.w.lists("host pattern rules", &lists);
        self.w.u32s("star rules", &dedup(star));
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
            let (bytes, _, written) = build(&ir, &config, true)
                .unwrap_or_else(|e| panic!("{name} does not build: {e:?}"));
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
}
