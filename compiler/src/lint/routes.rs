//! `unreachable-route`: a route every request of which a route of higher
//! precedence (spec section 6) takes.
//!
//! A route H of higher precedence can take a request of route R only when
//! H's header and query conditions are among R's (a `present` condition of
//! H is also implied by any condition of R on the same name) and H accepts
//! the method. Methods are symbols: each method some route of the server
//! lists, and "any other method". R is unreachable when, for each method
//! symbol R accepts, the normalized paths R matches are all matched by the
//! eligible routes of higher precedence.
//!
//! Paths are decided without automata where the shapes allow it: an exact
//! route can only be covered by the same exact path, a prefix route only
//! by the same prefix (finitely many exact paths and longer prefixes leave
//! infinitely many paths under it), and a route without path condition
//! only by one without path condition or with help from a regex.
//!
//! For a regex route (or a catch-all one without such a cover):
//! 1. quick counterexamples: a couple of paths the regex surely matches
//!    (read off its HIR) are looked up among the routes of higher
//!    precedence through indexes (exact map, the path's prefixes, regexes
//!    by literal prefix); one not taken for some method ends the check;
//! 2. candidates: the route's DFA walks the sorted exact paths, prefixes
//!    and regex literal prefixes, skipping whole runs where it dies; regex
//!    candidates are kept only if their DFA meets the route's (product walk);
//! 3. per method, `L(R) ⊆ ∪ L(H)` on normalized paths: a product of R's
//!    DFA, a trie of the exact and prefix candidates, one multi-pattern DFA
//!    of the regex candidates, and the automaton of normalized paths.
//!
//! Limits (the route is then assumed reachable, never reported): more than
//! [`CANDIDATE_LIMIT`] candidates, a DFA past the size limits, a product
//! past [`PRODUCT_LIMIT`] states.

use super::product::{
    included, matches, meet, path_dfa, short_members, start_state, Dfa, Domain, Inclusion,
    Literals, PRODUCT_LIMIT,
};
use super::sample::RegexFacts;
use crate::automata::path_regex;
use crate::config::Config;
use crate::ir::{PathCond, Route, ValueCond};
use regex_automata::dfa::Automaton;
use regex_automata::util::primitives::StateID;
use sluice_lang::{Code, Diagnostic};
use std::cell::OnceCell;
use std::collections::HashMap;

/// Short paths of a regex route tried as counterexamples first.
const WITNESSES: usize = 4;

/// Most routes of higher precedence that may share paths with a regex or
/// catch-all route and so go into one union automaton (and most regex
/// DFAs run on one quick counterexample); past it the route is assumed
/// reachable.
const CANDIDATE_LIMIT: usize = 512;

/// Most regexes of higher precedence looked at (by literal prefix and
/// literal pieces, without automata) for one quick counterexample.
const SCAN_LIMIT: usize = 2048;

/// Most candidates of a regex route collected by literal prefixes, before
/// the pairwise automaton test narrows them to [`CANDIDATE_LIMIT`].
const RAW_CANDIDATE_LIMIT: usize = 8 * CANDIDATE_LIMIT;

/// Paths tried first against the candidates of a route without path condition.
const ANY_WITNESSES: [&[u8]; 3] = [b"/", b"/~", b"/sluice~lint~probe"];

/// A header (0) or query (1) condition: kind, name, condition tag, value.
type CondKey<'a> = (u8, &'a str, u8, &'a str);

fn cond_key<'a>(kind: u8, name: &'a str, cond: &'a ValueCond) -> CondKey<'a> {
    match cond {
        ValueCond::Exact(v) => (kind, name, 0, v),
        ValueCond::Regex(r) => (kind, name, 1, r),
        ValueCond::Present => (kind, name, 2, ""),
    }
}

/// The route's conditions, sorted and without repeats.
fn cond_set(route: &Route) -> Vec<CondKey<'_>> {
    let mut set: Vec<CondKey<'_>> = route
        .headers
        .iter()
        .map(|(n, c)| cond_key(0, n, c))
        .chain(route.queries.iter().map(|(n, c)| cond_key(1, n, c)))
        .collect();
    set.sort_unstable();
    set.dedup();
    set
}

/// The conditions a request matching a route with `set` satisfies.
fn implied<'a>(set: &[CondKey<'a>]) -> Vec<CondKey<'a>> {
    let mut out: Vec<CondKey<'a>> = set
        .iter()
        .flat_map(|&(k, n, t, v)| [(k, n, t, v), (k, n, 2, "")])
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A literal every match of `regex` starts with (possibly empty), read
/// off the text without parsing; conservative: it stops at anything but
/// plain ASCII characters and escaped punctuation, and is empty when the
/// regex has an alternation outside groups or turns on `x` (comments
/// could hide brackets).
fn literal_prefix(regex: &str) -> Vec<u8> {
    let b = regex.as_bytes();
    let extended = regex.match_indices("(?").any(|(i, _)| {
        regex[i + 2..]
            .bytes()
            .take_while(|c| !matches!(c, b':' | b')' | b'-'))
            .any(|c| c == b'x')
    });
    if extended {
        return Vec::new();
    }
    // An alternation at the top level: no common prefix is known.
    let (mut depth, mut i, mut class) = (0usize, 0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if class == 0 => {
                class = 1;
                // `[]` and `[^]`: the `]` right after the opener is literal.
                if b.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if b.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b'[' if class > 0 && b.get(i + 1) == Some(&b':') => {
                // A POSIX class `[:alpha:]` inside a class.
                if let Some(end) = regex[i..].find(":]") {
                    i += end + 1;
                }
            }
            b'[' => class += 1,
            b']' if class > 0 => class -= 1,
            b'(' if class == 0 => depth += 1,
            b')' if class == 0 => depth = depth.saturating_sub(1),
            b'|' if class == 0 && depth == 0 => return Vec::new(),
            _ => {}
        }
        i += 1;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let (c, len) = match b[i] {
            b'\\' => match b.get(i + 1) {
                Some(&c) if b"\\.+*?()|[]{}^$#&-~/".contains(&c) => (c, 2),
                _ => break,
            },
            c if c.is_ascii_graphic() && !b".+*?()|[]{}^$#".contains(&c) => (c, 1),
            _ => break,
        };
        match b.get(i + len) {
            // The character may be absent or repeated: stop before it.
            Some(b'?' | b'*' | b'{') => break,
            // Present at least once: keep it, then stop.
            Some(b'+') => {
                out.push(c);
                break;
            }
            _ => out.push(c),
        }
        i += len;
    }
    out
}

/// Routes sharing one condition set, indexed by path.
#[derive(Default)]
struct Group<'a> {
    exact: HashMap<&'a [u8], Vec<usize>>,
    /// Exact paths, sorted.
    exact_sorted: Vec<(&'a [u8], usize)>,
    prefix: HashMap<&'a [u8], Vec<usize>>,
    /// Prefixes, sorted.
    prefix_sorted: Vec<(&'a [u8], usize)>,
    /// Regex routes by literal prefix.
    regex_by_lp: HashMap<Vec<u8>, Vec<usize>>,
    /// Regex routes, sorted by literal prefix.
    regex_sorted: Vec<(Vec<u8>, usize)>,
    /// Routes without path condition.
    any: Vec<usize>,
}

/// Calls `visit(i, state)` for each entry `i` of the sorted `keys` after
/// which `dfa` is not dead, with the state after the key; runs of keys
/// sharing a prefix after which it is dead are skipped by binary search
/// (a walk of the keys' trie against the DFA).
fn walk_sorted<K: AsRef<[u8]>>(
    dfa: &Dfa,
    keys: &[(K, usize)],
    mut visit: impl FnMut(usize, StateID),
) {
    let Some(start) = start_state(dfa) else {
        return;
    };
    // states[d]: the state after the first d bytes of `prev`.
    let mut states = vec![start];
    let mut prev: &[u8] = &[];
    let mut i = 0;
    while i < keys.len() {
        let key = keys[i].0.as_ref();
        let common = prev
            .iter()
            .zip(key)
            .take_while(|(a, b)| a == b)
            .count()
            .min(states.len() - 1);
        states.truncate(common + 1);
        let mut dead = None;
        for (d, &b) in key.iter().enumerate().skip(common) {
            let s = dfa.next_state(states[d], b);
            if dfa.is_dead_state(s) {
                dead = Some(d);
                break;
            }
            states.push(s);
        }
        prev = key;
        match dead {
            Some(d) => {
                let stem = &key[..=d];
                i += 1 + keys[i + 1..].partition_point(|(k, _)| k.as_ref().starts_with(stem));
            }
            None => {
                visit(keys[i].1, states[key.len()]);
                i += 1;
            }
        }
    }
}

/// Whether `dfa` matches all of `w`; `true` when it was not built.
fn unbuilt_or_matches(dfa: Option<&Dfa>, w: &[u8]) -> bool {
    match dfa {
        Some(d) => matches(d, w),
        None => true,
    }
}

/// The routes of one server or service, indexed for the analysis.
struct Routes<'a> {
    routes: &'a [Route],
    config: &'a Config,
    /// Position in precedence order (0 first).
    rank: Vec<usize>,
    /// Number of method symbols; the last one is "any other method".
    symbols: usize,
    /// Each route's method symbols, sorted (empty: any method).
    route_methods: Vec<Vec<usize>>,
    sets: Vec<Vec<CondKey<'a>>>,
    groups: Vec<Group<'a>>,
    /// Non-empty condition sets by their first condition.
    by_first: HashMap<CondKey<'a>, Vec<usize>>,
    empty_group: Option<usize>,
    dfas: Vec<OnceCell<Option<Dfa>>>,
    facts: Vec<OnceCell<RegexFacts>>,
}

/// What the analysis says about one route.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Reachable,
    /// Taken by these routes (indices, in precedence order).
    Covered(Vec<usize>),
    /// Its regex matches no normalized path.
    Empty,
}

impl<'a> Routes<'a> {
    fn new(routes: &'a [Route], config: &'a Config) -> Self {
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by_key(|&i| routes[i].precedence_key(i));
        let mut rank = vec![0; routes.len()];
        for (pos, &i) in order.iter().enumerate() {
            rank[i] = pos;
        }
        let mut methods: HashMap<&'a str, usize> = HashMap::new();
        for route in routes {
            for m in &route.methods {
                let next = methods.len();
                methods.entry(m.as_str()).or_insert(next);
            }
        }
        let route_methods = routes
            .iter()
            .map(|r| {
                let mut v: Vec<usize> = r
                    .methods
                    .iter()
                    .filter_map(|m| methods.get(m.as_str()).copied())
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let mut this = Routes {
            routes,
            config,
            rank,
            symbols: methods.len() + 1,
            route_methods,
            sets: Vec::new(),
            groups: Vec::new(),
            by_first: HashMap::new(),
            empty_group: None,
            dfas: (0..routes.len()).map(|_| OnceCell::new()).collect(),
            facts: (0..routes.len()).map(|_| OnceCell::new()).collect(),
        };
        let mut group_of_set: HashMap<Vec<CondKey<'a>>, usize> = HashMap::new();
        for (i, route) in routes.iter().enumerate() {
            let set = cond_set(route);
            let g = match group_of_set.get(&set) {
                Some(&g) => g,
                None => {
                    let g = this.groups.len();
                    match set.first() {
                        Some(&first) => this.by_first.entry(first).or_default().push(g),
                        None => this.empty_group = Some(g),
                    }
                    group_of_set.insert(set.clone(), g);
                    this.sets.push(set);
                    this.groups.push(Group::default());
                    g
                }
            };
            let group = &mut this.groups[g];
            match &route.path {
                PathCond::Exact(p) => {
                    group.exact.entry(p.as_bytes()).or_default().push(i);
                    group.exact_sorted.push((p.as_bytes(), i));
                }
                PathCond::Prefix(p) => {
                    group.prefix.entry(p.as_bytes()).or_default().push(i);
                    group.prefix_sorted.push((p.as_bytes(), i));
                }
                PathCond::Regex(re) => {
                    let lp = literal_prefix(re);
                    group.regex_by_lp.entry(lp.clone()).or_default().push(i);
                    group.regex_sorted.push((lp, i));
                }
                PathCond::Any => group.any.push(i),
            }
        }
        for group in &mut this.groups {
            group.exact_sorted.sort_unstable();
            group.prefix_sorted.sort_unstable();
            group.regex_sorted.sort_unstable();
        }
        this
    }

    /// The route's path DFA, built once.
    fn dfa(&self, i: usize) -> Option<&Dfa> {
        self.dfas[i]
            .get_or_init(|| path_dfa(&[path_regex(&self.routes[i].path)], self.config))
            .as_ref()
    }

    /// What the route's regex shows without automata, read once.
    fn facts(&self, i: usize) -> &RegexFacts {
        self.facts[i].get_or_init(|| match &self.routes[i].path {
            PathCond::Regex(re) => RegexFacts::of(re),
            _ => RegexFacts::default(),
        })
    }

    /// The method symbols route `i` accepts.
    fn symbols_of(&self, i: usize) -> Vec<usize> {
        if self.route_methods[i].is_empty() {
            (0..self.symbols).collect()
        } else {
            self.route_methods[i].clone()
        }
    }

    fn accepts_method(&self, i: usize, m: usize) -> bool {
        self.route_methods[i].is_empty() || self.route_methods[i].binary_search(&m).is_ok()
    }

    /// Whether route `h` ranks before route `r`.
    fn higher(&self, h: usize, r: usize) -> bool {
        self.rank[h] < self.rank[r]
    }

    /// Groups whose conditions every request of route `r` meets.
    fn eligible_groups(&self, r: usize) -> Vec<usize> {
        let implied = implied(&cond_set(&self.routes[r]));
        let mut out: Vec<usize> = self.empty_group.into_iter().collect();
        for key in &implied {
            if let Some(gs) = self.by_first.get(key) {
                out.extend(gs.iter().copied().filter(|&g| {
                    self.sets[g]
                        .iter()
                        .all(|c| implied.binary_search(c).is_ok())
                }));
            }
        }
        out
    }

    /// Whether the normalized path `w` goes, for every method symbol in
    /// `symbols`, to some eligible route of higher precedence than `r`.
    /// Looks routes up by path (exact, the prefixes of `w`, the regexes
    /// whose literal prefix starts `w`), not through every route. A regex
    /// whose DFA does not build counts as matching; past [`SCAN_LIMIT`]
    /// regexes to look at or [`CANDIDATE_LIMIT`] to run, the answer is `None`.
    fn taken(&self, r: usize, groups: &[usize], symbols: &[usize], w: &[u8]) -> Option<bool> {
        let mut open: Vec<usize> = symbols.to_vec();
        let mut take = |h: usize| {
            if self.higher(h, r) {
                open.retain(|&m| !self.accepts_method(h, m));
            }
            open.is_empty()
        };
        let (mut scanned, mut tried) = (0usize, 0usize);
        for &g in groups {
            let group = &self.groups[g];
            let done = group.exact.get(w).into_iter().flatten().any(|&h| take(h))
                || (1..=w.len())
                    .filter(|&k| k == w.len() || w[k] == b'/')
                    .filter_map(|k| group.prefix.get(&w[..k]))
                    .flatten()
                    .any(|&h| take(h))
                || (0..=w.len())
                    .filter_map(|k| group.regex_by_lp.get(&w[..k]))
                    .flatten()
                    .any(|&h| {
                        self.higher(h, r) && {
                            scanned += 1;
                            let fits = self.facts(h).may_match(w);
                            tried += usize::from(fits);
                            scanned > SCAN_LIMIT
                                || tried > CANDIDATE_LIMIT
                                || (fits && unbuilt_or_matches(self.dfa(h), w) && take(h))
                        }
                    })
                || group.any.iter().any(|&h| take(h));
            if scanned > SCAN_LIMIT || tried > CANDIDATE_LIMIT {
                return None;
            }
            if done {
                return Some(true);
            }
        }
        Some(false)
    }

    /// Eligible routes of higher precedence whose paths may share a path
    /// with route `r`'s (for a regex route, `rdfa`: exact paths it
    /// matches, prefixes and regexes' literal prefixes it can go on
    /// from); in precedence order. `None` past [`RAW_CANDIDATE_LIMIT`]
    /// for a regex route.
    fn candidates(&self, r: usize, groups: &[usize], rdfa: Option<&Dfa>) -> Option<Vec<usize>> {
        let mut out = Vec::new();
        for &g in groups {
            let group = &self.groups[g];
            match (&self.routes[r].path, rdfa) {
                (PathCond::Exact(p), _) => {
                    out.extend(group.exact.get(p.as_bytes()).into_iter().flatten())
                }
                (PathCond::Prefix(p), _) => {
                    out.extend(group.prefix.get(p.as_bytes()).into_iter().flatten())
                }
                (PathCond::Regex(_), Some(d)) => {
                    walk_sorted(d, &group.exact_sorted, |h, s| {
                        if d.is_match_state(d.next_eoi_state(s)) {
                            out.push(h);
                        }
                    });
                    walk_sorted(d, &group.prefix_sorted, |h, _| out.push(h));
                    walk_sorted(d, &group.regex_sorted, |h, _| out.push(h));
                }
                (PathCond::Regex(_), None) => return None,
                (PathCond::Any, _) => {
                    out.extend(
                        group
                            .exact_sorted
                            .iter()
                            .chain(&group.prefix_sorted)
                            .map(|e| e.1),
                    );
                    out.extend(group.regex_sorted.iter().map(|e| e.1));
                    out.extend(&group.any);
                }
            }
            out.retain(|&h| self.higher(h, r));
            if out.len() > RAW_CANDIDATE_LIMIT && matches!(self.routes[r].path, PathCond::Regex(_))
            {
                return None;
            }
        }
        out.sort_unstable_by_key(|&h| self.rank[h]);
        out.dedup();
        Some(out)
    }

    /// Whether route `h` matches the normalized path `w` (`None`: unknown).
    fn path_matches(&self, h: usize, w: &[u8]) -> Option<bool> {
        Some(match &self.routes[h].path {
            PathCond::Any => true,
            PathCond::Exact(p) => p.as_bytes() == w,
            PathCond::Prefix(p) => {
                w.starts_with(p.as_bytes()) && (w.len() == p.len() || w[p.len()] == b'/')
            }
            PathCond::Regex(_) => self.facts(h).may_match(w) && matches(self.dfa(h)?, w),
        })
    }

    /// Whether the union of `set`'s paths holds every normalized path of
    /// `rdfa` (`None`: every path), after trying `witnesses` first.
    fn covered(&self, rdfa: Option<&Dfa>, set: &[usize], witnesses: &[Vec<u8>]) -> bool {
        for w in witnesses {
            let mut hit = false;
            for &h in set {
                match self.path_matches(h, w) {
                    Some(true) => {
                        hit = true;
                        break;
                    }
                    Some(false) => {}
                    None => return false,
                }
            }
            if !hit {
                return false;
            }
        }
        // Exact paths and prefixes as a trie, regexes as one DFA.
        let lits = Literals::new(
            set.iter().filter_map(|&h| match &self.routes[h].path {
                PathCond::Exact(p) => Some(p.as_bytes()),
                _ => None,
            }),
            set.iter().filter_map(|&h| match &self.routes[h].path {
                PathCond::Prefix(p) => Some(p.as_bytes()),
                _ => None,
            }),
        );
        let regexes: Vec<usize> = set
            .iter()
            .copied()
            .filter(|&h| matches!(self.routes[h].path, PathCond::Regex(_) | PathCond::Any))
            .collect();
        let union;
        let b = match regexes.as_slice() {
            [] => None,
            &[h] => match self.dfa(h) {
                Some(d) => Some(d),
                None => return false,
            },
            _ => {
                let patterns: Vec<String> = regexes
                    .iter()
                    .map(|&h| path_regex(&self.routes[h].path))
                    .collect();
                union = path_dfa(&patterns, self.config);
                match &union {
                    Some(d) => Some(d),
                    None => return false,
                }
            }
        };
        included(rdfa, &lits, b, Domain::Path, PRODUCT_LIMIT) == Inclusion::Included
    }

    /// For each method symbol route `r` accepts, the candidates that
    /// accept it (without repeats); `None` when one symbol has none.
    fn method_sets(&self, r: usize, candidates: &[usize]) -> Option<Vec<Vec<usize>>> {
        let mut sets: Vec<Vec<usize>> = Vec::new();
        for m in self.symbols_of(r) {
            let set: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&h| self.accepts_method(h, m))
                .collect();
            if set.is_empty() {
                return None;
            }
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
        Some(sets)
    }

    fn check(&self, r: usize) -> Verdict {
        let route = &self.routes[r];
        let groups = self.eligible_groups(r);
        let mut witnesses: Vec<Vec<u8>> = Vec::new();
        let rdfa = match &route.path {
            PathCond::Exact(_) | PathCond::Prefix(_) => None,
            path => {
                let regex = matches!(path, PathCond::Regex(_));
                if let PathCond::Regex(re) = path {
                    if !Domain::Path.accepts_prefix(&literal_prefix(re)) {
                        // Every match starts with a string no normalized path starts with.
                        return Verdict::Empty;
                    }
                }
                // Quick counterexamples: paths the route surely matches that
                // no route of higher precedence takes for some method.
                let quick: Vec<Vec<u8>> = if regex {
                    self.facts(r).samples.clone()
                } else {
                    ANY_WITNESSES.iter().map(|w| w.to_vec()).collect()
                };
                let symbols = self.symbols_of(r);
                // (Too many regexes to try also ends the analysis: reachable.)
                if quick
                    .iter()
                    .any(|w| self.taken(r, &groups, &symbols, w) != Some(true))
                {
                    return Verdict::Reachable;
                }
                if !regex {
                    None
                } else {
                    let Some(d) = self.dfa(r) else {
                        return Verdict::Reachable;
                    };
                    if quick.is_empty() {
                        // No sample: short paths of the route, or none at all.
                        match short_members(d, Domain::Path, WITNESSES, PRODUCT_LIMIT) {
                            Some(w) if w.is_empty() => return Verdict::Empty,
                            Some(w) => witnesses = w,
                            None => return Verdict::Reachable,
                        }
                    }
                    Some(d)
                }
            }
        };
        let Some(mut candidates) = self.candidates(r, &groups, rdfa) else {
            return Verdict::Reachable;
        };
        if let Some(d) = rdfa {
            // Regexes whose literal prefix fits may still share no path with
            // the route: keep those that do (a sample in the route's
            // language, or a product walk).
            candidates.retain(|&h| match &self.routes[h].path {
                PathCond::Regex(_) => {
                    self.facts(h).samples.iter().any(|w| matches(d, w))
                        || match self.dfa(h) {
                            Some(hd) => meet(d, hd, Domain::Path, PRODUCT_LIMIT) != Some(false),
                            None => true,
                        }
                }
                _ => true,
            });
            if candidates.len() > CANDIDATE_LIMIT {
                return Verdict::Reachable;
            }
        }
        let Some(sets) = self.method_sets(r, &candidates) else {
            return Verdict::Reachable;
        };
        let mut by = Vec::new();
        for set in sets {
            match &route.path {
                // Only the same exact path or prefix was a candidate.
                PathCond::Exact(_) | PathCond::Prefix(_) => {
                    by.push(set[0]);
                    continue;
                }
                PathCond::Any => {
                    if let Some(&h) = set.iter().find(|&&h| self.routes[h].path == PathCond::Any) {
                        by.push(h);
                        continue;
                    }
                    // Finitely many exact paths and prefixes never cover every path.
                    if !set
                        .iter()
                        .any(|&h| matches!(self.routes[h].path, PathCond::Regex(_)))
                    {
                        return Verdict::Reachable;
                    }
                    if set.len() > CANDIDATE_LIMIT {
                        return Verdict::Reachable;
                    }
                }
                PathCond::Regex(_) => {}
            }
            if !self.covered(rdfa, &set, &witnesses) {
                return Verdict::Reachable;
            }
            // Name one route when one alone is enough (a few tries).
            match set
                .iter()
                .take(8)
                .find(|&&h| set.len() > 1 && self.covered(rdfa, &[h], &[]))
            {
                Some(&h) => by.push(h),
                None => by.extend(set),
            }
        }
        by.sort_unstable_by_key(|&h| self.rank[h]);
        by.dedup();
        Verdict::Covered(by)
    }
}

/// Reports every unreachable route of one server or service (`owner` is
/// e.g. "server `web`").
pub(crate) fn unreachable_routes(
    owner: &str,
    routes: &[Route],
    config: &Config,
    out: &mut Vec<Diagnostic>,
) {
    if routes.is_empty() {
        return;
    }
    let analysis = Routes::new(routes, config);
    for (r, route) in routes.iter().enumerate() {
        let verdict = analysis.check(r);
        let message = match &verdict {
            Verdict::Reachable => continue,
            Verdict::Empty => {
                format!("route `{}` of {owner} is unreachable: its path regex matches no normalized path", route.name)
            }
            Verdict::Covered(by) => {
                let mut names: Vec<String> = by
                    .iter()
                    .take(3)
                    .map(|&h| format!("`{}`", routes[h].name))
                    .collect();
                if by.len() > 3 {
                    names.push(format!("{} more", by.len() - 3));
                }
                let who = if by.len() == 1 {
                    format!("route {} takes", names[0])
                } else {
                    format!("routes {} take", names.join(", "))
                };
                format!(
                    "route `{}` of {owner} is unreachable: {who} every request it matches, with higher precedence",
                    route.name
                )
            }
        };
        let mut diagnostic = Diagnostic::new(Code::UnreachableRoute, route.span, message);
        if let Verdict::Covered(by) = &verdict {
            for &h in by.iter().take(3) {
                let label = format!("route `{}` takes its requests first", routes[h].name);
                diagnostic = diagnostic.with_label(routes[h].span, label);
            }
        }
        out.push(diagnostic);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{route, RouteExt};
    use super::*;
    use PathCond::{Any, Exact, Prefix, Regex};

    fn exact(p: &str) -> PathCond {
        Exact(p.into())
    }
    fn prefix(p: &str) -> PathCond {
        Prefix(p.into())
    }
    fn regex(p: &str) -> PathCond {
        Regex(p.into())
    }

    /// Names of the unreachable routes.
    fn unreachable(routes: Vec<Route>) -> Vec<String> {
        let mut out = Vec::new();
        unreachable_routes("server `web`", &routes, &Config::default(), &mut out);
        assert!(out.iter().all(|d| d.code == Code::UnreachableRoute));
        out.iter()
            .map(|d| {
                routes
                    .iter()
                    .find(|r| r.span == d.span)
                    .unwrap()
                    .name
                    .clone()
            })
            .collect()
    }

    fn r(name: &str, path: PathCond) -> Route {
        // Lines are distinct so that spans identify routes.
        let line = name
            .bytes()
            .fold(1u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        route(name, line, path)
    }

    #[test]
    fn prefix_covers_regex_under_it() {
        assert_eq!(
            unreachable(vec![
                r("api", prefix("/api")),
                r("ver", regex("/api/v[0-9]+/.*"))
            ]),
            ["ver"]
        );
        // Precedence, not declaration order, decides: the prefix wins even when later.
        assert_eq!(
            unreachable(vec![
                r("ver", regex("/api/v[0-9]+/.*")),
                r("api", prefix("/api"))
            ]),
            ["ver"]
        );
        // `/api.*` also matches `/apix`, which `prefix "/api"` does not.
        assert_eq!(
            unreachable(vec![r("api", prefix("/api")), r("re", regex("/api.*"))]),
            Vec::<String>::new()
        );
        // A regex is never covered by an exact path or prefix below it...
        assert_eq!(
            unreachable(vec![r("re", regex("/api(/.*)?")), r("api", prefix("/api"))]),
            ["re"]
        );
        assert_eq!(
            unreachable(vec![r("re", regex("/b(/.*)?")), r("api", prefix("/api"))]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn covering_routes_are_labels() {
        let routes = vec![
            r("a", exact("/a")),
            r("b", exact("/b")),
            r("re", regex("/(a|b)")),
        ];
        let mut out = Vec::new();
        unreachable_routes("server `web`", &routes, &Config::default(), &mut out);
        let labels: Vec<(sluice_lang::Span, &str)> = out[0]
            .labels
            .iter()
            .map(|l| (l.span, l.message.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                (routes[0].span, "route `a` takes its requests first"),
                (routes[1].span, "route `b` takes its requests first")
            ]
        );
    }

    #[test]
    fn regex_covered_by_several_routes() {
        // `/a` and `/b` exact cover `/(a|b)`.
        assert_eq!(
            unreachable(vec![
                r("a", exact("/a")),
                r("b", exact("/b")),
                r("re", regex("/(a|b)"))
            ]),
            ["re"]
        );
        assert_eq!(
            unreachable(vec![r("a", exact("/a")), r("re", regex("/(a|b)"))]),
            Vec::<String>::new()
        );
        // An earlier regex and an exact path together.
        let routes = vec![
            r("two", regex("/n/[0-9]{2,}")),
            r("zero", exact("/n/0")),
            r("digits", regex("/n/[0-9]+")),
        ];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        let mut routes = vec![
            r("two", regex("/n/[0-9]{2,}")),
            r("digits", regex("/n/[0-9]+")),
        ];
        for d in 0..10 {
            routes.push(r(&format!("d{d}"), exact(&format!("/n/{d}"))));
        }
        assert_eq!(unreachable(routes), ["digits"]);
        // Regexes written differently but equal on normalized paths.
        let routes = vec![
            r("one", regex("/x/[^/]+")),
            r("two", regex(r"/x/(\w|[^\w/])+")),
        ];
        assert_eq!(unreachable(routes), ["two"]);
        // Differences only outside normalized paths do not count: `//`, `.` segments, non-ASCII, `?`.
        let routes = vec![
            r("one", regex("/x/[a-z]+")),
            r("two", regex("/x/([a-z]+|/y|\\.|é|a\\?b)")),
        ];
        assert_eq!(unreachable(routes), ["two"]);
    }

    #[test]
    fn exact_and_prefix_duplicates() {
        assert_eq!(
            unreachable(vec![
                r("a", exact("/a")),
                r("b", exact("/b")),
                r("a2", exact("/a"))
            ]),
            ["a2"]
        );
        assert_eq!(
            unreachable(vec![
                r("p", prefix("/p")),
                r("p2", prefix("/p")),
                r("q", prefix("/p/q"))
            ]),
            ["p2"]
        );
        // Longer prefixes and exact paths never cover a prefix.
        let routes = vec![
            r("exact", exact("/p")),
            r("long", prefix("/p/x")),
            r("p", prefix("/p")),
        ];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        // A prefix covers an exact path only by precedence: exact wins.
        assert_eq!(
            unreachable(vec![r("p", prefix("/p")), r("e", exact("/p/x"))]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn catch_all_routes() {
        // A regex route wins over a catch-all; a catch-all is covered only by
        // another catch-all or by regexes that match every path.
        assert_eq!(
            unreachable(vec![r("all", Any), r("re", regex("/.*"))]),
            ["all"]
        );
        assert_eq!(
            unreachable(vec![r("all", Any), r("re", regex("/.+"))]),
            Vec::<String>::new()
        );
        assert_eq!(
            unreachable(vec![
                r("all", Any),
                r("root", exact("/")),
                r("re", regex("/.+"))
            ]),
            ["all"]
        );
        assert_eq!(unreachable(vec![r("all", Any), r("all2", Any)]), ["all2"]);
        assert_eq!(
            unreachable(vec![
                r("p", prefix("/a")),
                r("e", exact("/")),
                r("all", Any)
            ]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn many_routes_keep_exact_answers() {
        // Past the candidate limit by count, but a catch-all still covers a catch-all.
        let mut routes: Vec<Route> = (0..1000)
            .map(|i| r(&format!("p{i}"), prefix(&format!("/p{i}"))))
            .collect();
        routes.push(r("all", Any));
        routes.push(r("all2", Any));
        assert_eq!(unreachable(routes), ["all2"]);
        // Many regexes sharing a literal prefix: the duplicate is found.
        let mut routes: Vec<Route> = (0..700)
            .map(|i| {
                r(
                    &format!("x{i}"),
                    regex(&format!("/api/v[0-9]+/s{i}/[a-z]+")),
                )
            })
            .collect();
        routes.push(r("dup", regex("/api/v[0-9]+/s650/[a-z]+")));
        routes.push(r("fine", regex("/api/v[0-9]+/s650/[a-z0-9]+")));
        assert_eq!(unreachable(routes), ["dup"]);
    }

    #[test]
    fn methods() {
        // On one path, a route with a method ranks before one without,
        // wherever it is declared: the GET route takes GET, the route
        // without method still takes every other method.
        let routes = vec![
            r("any", exact("/a")),
            r("get", exact("/a")).methods(&["GET"]),
        ];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        let routes = vec![
            r("get", exact("/a")).methods(&["GET"]),
            r("any", exact("/a")),
        ];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        // Same path and method: the later one is unreachable.
        let routes = vec![
            r("get", exact("/a")).methods(&["GET"]),
            r("get2", exact("/a")).methods(&["GET", "GET"]),
        ];
        assert_eq!(unreachable(routes), ["get2"]);
        // Two methods covered by two routes.
        let routes = vec![
            r("get", prefix("/a")).methods(&["GET"]),
            r("post", prefix("/a")).methods(&["POST"]),
            r("both", prefix("/a")).methods(&["POST", "GET"]),
        ];
        assert_eq!(unreachable(routes), ["both"]);
        // No method: every method, including unlisted ones, must be covered.
        let routes = vec![
            r("get", prefix("/a")).methods(&["GET", "POST"]),
            r("any", regex("/a/.*")),
        ];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        let routes = vec![
            r("get", prefix("/a")).methods(&["GET"]),
            r("all", prefix("/a")),
            r("any", regex("/a/.*")),
        ];
        assert_eq!(unreachable(routes), ["any"]);
        // A higher route without method covers a later one with a method.
        let routes = vec![r("a", exact("/a")), r("re", regex("/a")).methods(&["PUT"])];
        assert_eq!(unreachable(routes), ["re"]);
        // Per method, different paths: GET by a prefix, POST by a regex.
        let routes = vec![
            r("g", prefix("/a")).methods(&["GET"]),
            r("p", regex("/a/[a-z]+")).methods(&["POST"]),
            r("x", regex("/a/[a-z]+")).methods(&["GET", "POST"]),
        ];
        assert_eq!(unreachable(routes), ["x"]);
        // A method no route lists is its own symbol: GET and POST covered, DELETE not.
        let routes = vec![
            r("g", prefix("/a")).methods(&["GET"]),
            r("p", prefix("/a")).methods(&["POST"]),
            r("d", prefix("/a")).methods(&["DELETE", "GET"]),
            r("x", regex("/a/.*")),
        ];
        assert_eq!(unreachable(routes), Vec::<String>::new());
    }

    #[test]
    fn headers_and_queries() {
        let eq = |v: &str| ValueCond::Exact(v.into());
        // H's conditions among R's: every request of R also matches H.
        let routes = vec![
            r("h", prefix("/a")),
            r("r", prefix("/a")).header("x", eq("1")),
        ];
        // `r` has more headers, so it ranks higher: reachable.
        assert_eq!(unreachable(routes), Vec::<String>::new());
        let routes = vec![
            r("h", prefix("/a/b")),
            r("r", regex("/a/b/.*")).header("x", eq("1")),
        ];
        assert_eq!(unreachable(routes), ["r"]);
        // H with a condition R lacks does not cover R.
        let routes = vec![
            r("h", prefix("/a")).header("x", eq("1")),
            r("r", regex("/a/.*")),
        ];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        // Same condition set.
        let routes = vec![
            r("h", prefix("/a"))
                .header("x", eq("1"))
                .query("q", ValueCond::Present),
            r("r", prefix("/a"))
                .query("q", ValueCond::Present)
                .header("x", eq("1")),
        ];
        assert_eq!(unreachable(routes), ["r"]);
        // A different value is a different condition.
        let routes = vec![
            r("h", prefix("/a")).header("x", eq("1")),
            r("r", prefix("/a")).header("x", eq("2")),
        ];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        // `present` is implied by any condition on the name.
        let routes = vec![
            r("h", prefix("/a")).header("x", ValueCond::Present),
            r("r", regex("/a/b")).header("x", eq("2")),
        ];
        assert_eq!(unreachable(routes), ["r"]);
        // Headers and queries are different namespaces.
        let routes = vec![
            r("h", prefix("/a")).header("x", ValueCond::Present),
            r("r", regex("/a/b")).query("x", eq("2")),
        ];
        assert_eq!(unreachable(routes), Vec::<String>::new());
    }

    #[test]
    fn literal_prefixes() {
        for (re, lp) in [
            ("/api/v[0-9]+/.*", "/api/v"),
            (r"/a\.b\/c", "/a.b/c"),
            ("/ab?", "/a"),
            ("/ab*c", "/a"),
            ("/ab{2}", "/a"),
            ("/ab+c", "/ab"),
            ("/a(b|c)", "/a"),
            ("/a|/b", ""),
            ("/a[|]|x", ""),
            ("/a[]|]", "/a"),
            ("/a[^]|]", "/a"),
            ("/a[[:alpha:]|]", "/a"),
            (r"/a\<b", "/a"),
            (r"/a\d", "/a"),
            ("(?i)/a", ""),
            ("/é", "/"),
            ("/a b", "/a"),
            ("a(?x)# (\n|/b", ""),
            ("/a(?i)b", "/a"),
            ("/a(?-x)b", "/a"),
        ] {
            assert_eq!(literal_prefix(re), lp.as_bytes(), "{re}");
        }
    }

    #[test]
    fn empty_and_oversized_regexes() {
        // A regex no normalized path matches.
        assert_eq!(unreachable(vec![r("bad", regex("api/.*"))]), ["bad"]);
        assert_eq!(unreachable(vec![r("bad", regex("/a//b"))]), ["bad"]);
        // Found empty by automata (the literal prefix `/` says nothing).
        assert_eq!(
            unreachable(vec![r("p", prefix("/x")), r("bad", regex("/(a|b)//c"))]),
            ["bad"]
        );
        assert_eq!(
            unreachable(vec![
                r("p", prefix("/x")),
                r("bad", regex(r"/(a|b)/\.\./c"))
            ]),
            ["bad"]
        );
        // A regex that does not fit the size limit is skipped.
        let mut out = Vec::new();
        let routes = vec![r("p", prefix("/a")), r("big", regex(r"/a/\w{50}\w{50}"))];
        unreachable_routes(
            "server `web`",
            &routes,
            &Config::default().dfa_size_limit(1 << 12),
            &mut out,
        );
        assert!(out.is_empty());
        // Unicode classes need the Unicode flavor; ASCII paths still decide.
        assert_eq!(
            unreachable(vec![r("p", prefix("/a")), r("u", regex(r"/a/\pL+"))]),
            ["u"]
        );
        assert_eq!(
            unreachable(vec![
                r("p", regex(r"/a/[a-zA-Z]+")),
                r("u", regex(r"/a/\pL+"))
            ]),
            ["u"]
        );
        assert_eq!(
            unreachable(vec![r("p", regex(r"/a/[a-z]+")), r("u", regex(r"/a/\pL+"))]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn message_names_the_covering_routes() {
        let routes = vec![r("api", prefix("/api")), r("ver", regex("/api/v[0-9]+/.*"))];
        let mut out = Vec::new();
        unreachable_routes("server `web`", &routes, &Config::default(), &mut out);
        assert_eq!(
            out[0].message,
            "route `ver` of server `web` is unreachable: route `api` takes every request it matches, with higher precedence"
        );
    }
}
