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
//! infinitely many paths under it), and a route without path condition only
//! by one without path condition or with help from a regex. Otherwise a few
//! short paths of R are tried against the candidates (a counterexample ends
//! the check), and then `L(R) ⊆ ∪ L(H)` is decided on the product of R's
//! DFA, one multi-pattern DFA of the candidates and the automaton of
//! normalized paths.

use super::product::{
    alive_after, included, matches, path_dfa, short_members, Dfa, Domain, Inclusion, Literals, PRODUCT_LIMIT,
};
use super::sample::RegexFacts;
use crate::automata::path_regex;
use crate::config::Config;
use crate::ir::{PathCond, Route, ValueCond};
use sluice_lang::{Code, Diagnostic};
use std::cell::OnceCell;
use std::cmp::Reverse;
use std::collections::HashMap;

/// Short paths of a regex route tried as counterexamples first.
const WITNESSES: usize = 4;

/// Most routes of higher precedence that may share paths with a regex or
/// catch-all route (and so need automata); past it the route is assumed
/// reachable. Also the largest union built into one DFA.
const CANDIDATE_LIMIT: usize = 512;

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
    let mut out: Vec<CondKey<'a>> = set.iter().flat_map(|&(k, n, t, v)| [(k, n, t, v), (k, n, 2, "")]).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A literal every match of `regex` starts with (possibly empty), read
/// off the text without parsing; conservative: it stops at anything but
/// plain ASCII characters and escaped punctuation, and is empty when the
/// regex has an alternation outside groups.
fn literal_prefix(regex: &str) -> Vec<u8> {
    let b = regex.as_bytes();
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
    exact: HashMap<&'a str, Vec<usize>>,
    exact_sorted: Vec<(&'a [u8], usize)>,
    prefix: HashMap<&'a str, Vec<usize>>,
    prefix_sorted: Vec<(&'a [u8], usize)>,
    /// Regex routes, sorted by literal prefix.
    regex_sorted: Vec<usize>,
    regex_by_lp: HashMap<Vec<u8>, Vec<usize>>,
    any: Vec<usize>,
}

/// Entries of a sorted list whose key starts with `lp` (a contiguous run,
/// found by binary search).
fn starting_with<'s, 'a>(list: &'s [(&'a [u8], usize)], lp: &[u8]) -> impl Iterator<Item = (&'a [u8], usize)> + 's {
    let from = list.partition_point(|(k, _)| *k < lp);
    let to = list.partition_point(|(k, _)| *k < lp || k.starts_with(lp));
    list[from..to.max(from)].iter().copied()
}

/// The routes of one server or service, indexed for the analysis.
struct Routes<'a> {
    routes: &'a [Route],
    config: &'a Config,
    /// Position in precedence order (0 first).
    rank: Vec<usize>,
    /// Method symbols; "any other method" is `methods.len()`.
    methods: HashMap<&'a str, usize>,
    /// Each route's method symbols, sorted (empty: any method).
    route_methods: Vec<Vec<usize>>,
    sets: Vec<Vec<CondKey<'a>>>,
    groups: Vec<Group<'a>>,
    /// Non-empty condition sets by their first condition.
    by_first: HashMap<CondKey<'a>, Vec<usize>>,
    empty_group: Option<usize>,
    /// Literal prefix of each regex route (empty for the others).
    lps: Vec<Vec<u8>>,
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

/// Precedence key of spec section 6 (smaller first).
fn precedence(route: &Route, i: usize) -> (u8, Reverse<usize>, bool, Reverse<usize>, Reverse<usize>, usize) {
    let (kind, len) = match &route.path {
        PathCond::Exact(_) => (0, 0),
        PathCond::Prefix(p) => (1, p.len()),
        PathCond::Regex(_) => (2, 0),
        PathCond::Any => (3, 0),
    };
    (kind, Reverse(len), route.methods.is_empty(), Reverse(route.headers.len()), Reverse(route.queries.len()), i)
}

impl<'a> Routes<'a> {
    fn new(routes: &'a [Route], config: &'a Config) -> Self {
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by_key(|&i| precedence(&routes[i], i));
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
                let mut v: Vec<usize> = r.methods.iter().filter_map(|m| methods.get(m.as_str()).copied()).collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let lps: Vec<Vec<u8>> = routes
            .iter()
            .map(|r| match &r.path {
                PathCond::Regex(re) => literal_prefix(re),
                _ => Vec::new(),
            })
            .collect();
        let mut this = Routes {
            routes,
            config,
            rank,
            methods,
            route_methods,
            sets: Vec::new(),
            groups: Vec::new(),
            by_first: HashMap::new(),
            empty_group: None,
            lps: Vec::new(),
            dfas: (0..routes.len()).map(|_| OnceCell::new()).collect(),
            facts: (0..routes.len()).map(|_| OnceCell::new()).collect(),
        };
        let mut group_of_set: HashMap<Vec<CondKey<'a>>, usize> = HashMap::new();
        let mut groups: Vec<Group<'a>> = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let set = cond_set(route);
            let g = match group_of_set.get(&set) {
                Some(&g) => g,
                None => {
                    let g = groups.len();
                    match set.first() {
                        Some(&first) => this.by_first.entry(first).or_default().push(g),
                        None => this.empty_group = Some(g),
                    }
                    group_of_set.insert(set.clone(), g);
                    this.sets.push(set);
                    groups.push(Group::default());
                    g
                }
            };
            let group = &mut groups[g];
            match &route.path {
                PathCond::Exact(p) => {
                    group.exact.entry(p.as_str()).or_default().push(i);
                    group.exact_sorted.push((p.as_bytes(), i));
                }
                PathCond::Prefix(p) => {
                    group.prefix.entry(p.as_str()).or_default().push(i);
                    group.prefix_sorted.push((p.as_bytes(), i));
                }
                PathCond::Regex(_) => {}
                PathCond::Any => group.any.push(i),
            }
        }
        for (i, route) in routes.iter().enumerate() {
            if let PathCond::Regex(_) = route.path {
                let g = group_of_set[&cond_set(route)];
                groups[g].regex_sorted.push(i);
                groups[g].regex_by_lp.entry(lps[i].clone()).or_default().push(i);
            }
        }
        for group in &mut groups {
            group.regex_sorted.sort_by(|&a, &b| lps[a].cmp(&lps[b]));
        }
        this.lps = lps;
        this.groups = groups;
        this
    }

    /// The route's path DFA (regex routes), built once.
    fn dfa(&self, i: usize) -> Option<&Dfa> {
        self.dfas[i].get_or_init(|| path_dfa(&[path_regex(&self.routes[i].path)], self.config)).as_ref()
    }

    /// The method symbols route `i` accepts.
    fn symbols(&self, i: usize) -> Vec<usize> {
        if self.route_methods[i].is_empty() {
            (0..=self.methods.len()).collect()
        } else {
            self.route_methods[i].clone()
        }
    }

    fn accepts_method(&self, i: usize, m: usize) -> bool {
        self.route_methods[i].is_empty() || self.route_methods[i].binary_search(&m).is_ok()
    }

    /// Groups whose conditions every request of a route with `set` meets.
    fn eligible_groups(&self, set: &[CondKey<'a>]) -> Vec<usize> {
        let implied = implied(set);
        let mut out: Vec<usize> = self.empty_group.into_iter().collect();
        for key in &implied {
            if let Some(gs) = self.by_first.get(key) {
                out.extend(gs.iter().copied().filter(|&g| self.sets[g].iter().all(|c| implied.binary_search(c).is_ok())));
            }
        }
        out
    }

    /// Routes of higher precedence, with conditions among route `r`'s, whose
    /// paths may share a path with `r`'s (judged on literal prefixes for a
    /// regex route); in precedence order. `None` when a regex route has
    /// more than [`CANDIDATE_LIMIT`].
    fn candidates(&self, r: usize) -> Option<Vec<usize>> {
        let route = &self.routes[r];
        let mut out = Vec::new();
        let mut push = |h: usize| {
            if h != r && self.rank[h] < self.rank[r] {
                out.push(h);
            }
            out.len() <= CANDIDATE_LIMIT || !matches!(route.path, PathCond::Regex(_))
        };
        for g in self.eligible_groups(&cond_set(route)) {
            let group = &self.groups[g];
            let ok = match &route.path {
                PathCond::Exact(p) => group.exact.get(p.as_str()).into_iter().flatten().all(|&h| push(h)),
                PathCond::Prefix(p) => group.prefix.get(p.as_str()).into_iter().flatten().all(|&h| push(h)),
                PathCond::Any => group
                    .exact_sorted
                    .iter()
                    .chain(&group.prefix_sorted)
                    .map(|e| e.1)
                    .chain(group.regex_sorted.iter().copied())
                    .chain(group.any.iter().copied())
                    .all(&mut push),
                PathCond::Regex(_) => {
                    let lp = self.lps[r].as_slice();
                    // Exact paths and prefixes starting with `lp`, prefixes
                    // inside `lp` (ending at a segment boundary).
                    let inside = (1..lp.len())
                        .filter(|&k| lp[k] == b'/')
                        .filter_map(|k| std::str::from_utf8(&lp[..k]).ok().and_then(|q| group.prefix.get(q)))
                        .flatten()
                        .copied();
                    // Regexes whose literal prefix is inside `lp` or starts with it.
                    let shorter = (0..lp.len()).filter_map(|k| group.regex_by_lp.get(&lp[..k])).flatten().copied();
                    let sorted = &group.regex_sorted;
                    let from = sorted.partition_point(|&h| self.lps[h].as_slice() < lp);
                    let to = sorted.partition_point(|&h| self.lps[h].as_slice() < lp || self.lps[h].starts_with(lp));
                    let longer = sorted[from..to.max(from)].iter().copied();
                    starting_with(&group.exact_sorted, lp)
                        .chain(starting_with(&group.prefix_sorted, lp))
                        .map(|e| e.1)
                        .chain(inside)
                        .chain(shorter)
                        .chain(longer)
                        .all(&mut push)
                }
            };
            if !ok {
                return None;
            }
        }
        out.sort_unstable_by_key(|&h| self.rank[h]);
        out.dedup();
        Some(out)
    }

    /// Whether route `h` may match some path of `rdfa`: a cheap, generous test.
    fn may_overlap(&self, h: usize, rdfa: &Dfa) -> bool {
        match &self.routes[h].path {
            PathCond::Exact(q) => matches(rdfa, q.as_bytes()),
            PathCond::Prefix(q) => alive_after(rdfa, q.as_bytes()),
            PathCond::Regex(_) => alive_after(rdfa, &self.lps[h]),
            PathCond::Any => true,
        }
    }

    /// Whether route `h` matches the normalized path `w` (`None`: unknown).
    fn path_matches(&self, h: usize, w: &[u8]) -> Option<bool> {
        Some(match &self.routes[h].path {
            PathCond::Any => true,
            PathCond::Exact(p) => p.as_bytes() == w,
            PathCond::Prefix(p) => w.starts_with(p.as_bytes()) && (w.len() == p.len() || w[p.len()] == b'/'),
            PathCond::Regex(_) => self.facts(h).may_match(w) && matches(self.dfa(h)?, w),
        })
    }

    /// What the route's regex shows without automata, read once.
    fn facts(&self, i: usize) -> &RegexFacts {
        self.facts[i].get_or_init(|| match &self.routes[i].path {
            PathCond::Regex(re) => RegexFacts::of(re),
            _ => RegexFacts::default(),
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
        let literal = |h: &usize| matches!(self.routes[*h].path, PathCond::Exact(_) | PathCond::Prefix(_));
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
        let regexes: Vec<usize> = set.iter().copied().filter(|h| !literal(h)).collect();
        let union;
        let b = match regexes.as_slice() {
            [] => None,
            &[h] => match self.dfa(h) {
                Some(d) => Some(d),
                None => return false,
            },
            _ => {
                let patterns: Vec<String> = regexes.iter().map(|&h| path_regex(&self.routes[h].path)).collect();
                union = path_dfa(&patterns, self.config);
                match &union {
                    Some(d) => Some(d),
                    None => return false,
                }
            }
        };
        included(rdfa, &lits, b, Domain::Path, PRODUCT_LIMIT) == Inclusion::Included
    }

    /// For each method symbol route `r` accepts, the candidates that accept
    /// it (without repeats); `None` when one symbol has none.
    fn method_sets(&self, r: usize, candidates: &[usize]) -> Option<Vec<Vec<usize>>> {
        let mut sets: Vec<Vec<usize>> = Vec::new();
        for m in self.symbols(r) {
            let set: Vec<usize> = candidates.iter().copied().filter(|&h| self.accepts_method(h, m)).collect();
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
        let regex = matches!(route.path, PathCond::Regex(_));
        if regex && !Domain::Path.accepts_prefix(&self.lps[r]) {
            // Every match starts with a string no normalized path starts with.
            return Verdict::Empty;
        }
        let Some(candidates) = self.candidates(r) else {
            return Verdict::Reachable;
        };
        let Some(sets) = self.method_sets(r, &candidates) else {
            return Verdict::Reachable;
        };
        let mut by = Vec::new();
        let mut pending = Vec::new();
        for set in sets {
            match &route.path {
                // Only the same exact path or prefix was a candidate.
                PathCond::Exact(_) | PathCond::Prefix(_) => by.push(set[0]),
                PathCond::Any => {
                    if let Some(&h) = set.iter().find(|&&h| self.routes[h].path == PathCond::Any) {
                        by.push(h);
                        continue;
                    }
                    // Finitely many exact paths and prefixes never cover every path.
                    if set.len() > CANDIDATE_LIMIT || !set.iter().any(|&h| matches!(self.routes[h].path, PathCond::Regex(_))) {
                        return Verdict::Reachable;
                    }
                    pending.push(set);
                }
                PathCond::Regex(_) => pending.push(set),
            }
        }
        if !pending.is_empty() {
            // Quick counterexamples: paths the route surely matches.
            let quick: Vec<Vec<u8>> = match &route.path {
                PathCond::Regex(_) => self.facts(r).samples.clone(),
                _ => ANY_WITNESSES.iter().map(|w| w.to_vec()).collect(),
            };
            for set in &pending {
                for w in &quick {
                    if !set.iter().any(|&h| self.path_matches(h, w) != Some(false)) {
                        return Verdict::Reachable;
                    }
                }
            }
            // Automata.
            let rdfa = match &route.path {
                PathCond::Regex(_) => match self.dfa(r) {
                    Some(d) => Some(d),
                    None => return Verdict::Reachable,
                },
                _ => None,
            };
            let witnesses = match rdfa {
                Some(d) => match short_members(d, Domain::Path, WITNESSES, PRODUCT_LIMIT) {
                    Some(w) if w.is_empty() => return Verdict::Empty,
                    Some(w) => w,
                    None => return Verdict::Reachable,
                },
                None => quick,
            };
            for mut set in pending {
                if let Some(d) = rdfa {
                    set.retain(|&h| self.may_overlap(h, d));
                    if set.is_empty() {
                        return Verdict::Reachable;
                    }
                }
                if !self.covered(rdfa, &set, &witnesses) {
                    return Verdict::Reachable;
                }
                by.extend(set);
            }
        }
        by.sort_unstable_by_key(|&h| self.rank[h]);
        by.dedup();
        Verdict::Covered(by)
    }
}

/// Reports every unreachable route of one server or service (`owner` is
/// e.g. "server `web`").
pub(crate) fn unreachable_routes(owner: &str, routes: &[Route], config: &Config, out: &mut Vec<Diagnostic>) {
    if routes.is_empty() {
        return;
    }
    let analysis = Routes::new(routes, config);
    for (r, route) in routes.iter().enumerate() {
        let message = match analysis.check(r) {
            Verdict::Reachable => continue,
            Verdict::Empty => {
                format!("route `{}` of {owner} is unreachable: its path regex matches no normalized path", route.name)
            }
            Verdict::Covered(by) => {
                let mut names: Vec<String> = by.iter().take(3).map(|&h| format!("`{}`", routes[h].name)).collect();
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
        out.push(Diagnostic::new(Code::UnreachableRoute, route.span, message));
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
        out.iter().map(|d| routes.iter().find(|r| r.span == d.span).unwrap().name.clone()).collect()
    }

    fn r(name: &str, path: PathCond) -> Route {
        // Lines are distinct so that spans identify routes.
        let line = name.bytes().fold(1u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        route(name, line, path)
    }

    #[test]
    fn prefix_covers_regex_under_it() {
        assert_eq!(unreachable(vec![r("api", prefix("/api")), r("ver", regex("/api/v[0-9]+/.*"))]), ["ver"]);
        // Precedence, not declaration order, decides: the prefix wins even when later.
        assert_eq!(unreachable(vec![r("ver", regex("/api/v[0-9]+/.*")), r("api", prefix("/api"))]), ["ver"]);
        // `/api.*` also matches `/apix`, which `prefix "/api"` does not.
        assert_eq!(unreachable(vec![r("api", prefix("/api")), r("re", regex("/api.*"))]), Vec::<String>::new());
        // A regex is never covered by an exact path or prefix below it...
        assert_eq!(unreachable(vec![r("re", regex("/api(/.*)?")), r("api", prefix("/api"))]), ["re"]);
        assert_eq!(unreachable(vec![r("re", regex("/b(/.*)?")), r("api", prefix("/api"))]), Vec::<String>::new());
    }

    #[test]
    fn regex_covered_by_several_routes() {
        // `/a` and `/b` exact cover `/(a|b)`.
        assert_eq!(unreachable(vec![r("a", exact("/a")), r("b", exact("/b")), r("re", regex("/(a|b)"))]), ["re"]);
        assert_eq!(unreachable(vec![r("a", exact("/a")), r("re", regex("/(a|b)"))]), Vec::<String>::new());
        // An earlier regex and an exact path together.
        let routes = vec![r("two", regex("/n/[0-9]{2,}")), r("zero", exact("/n/0")), r("digits", regex("/n/[0-9]+"))];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        let mut routes = vec![r("two", regex("/n/[0-9]{2,}")), r("digits", regex("/n/[0-9]+"))];
        for d in 0..10 {
            routes.push(r(&format!("d{d}"), exact(&format!("/n/{d}"))));
        }
        assert_eq!(unreachable(routes), ["digits"]);
        // Regexes written differently but equal on normalized paths.
        let routes = vec![r("one", regex("/x/[^/]+")), r("two", regex(r"/x/(\w|[^\w/])+"))];
        assert_eq!(unreachable(routes), ["two"]);
        // Differences only outside normalized paths do not count: `//`, `.` segments, non-ASCII, `?`.
        let routes = vec![r("one", regex("/x/[a-z]+")), r("two", regex("/x/([a-z]+|/y|\\.|é|a\\?b)"))];
        assert_eq!(unreachable(routes), ["two"]);
    }

    #[test]
    fn exact_and_prefix_duplicates() {
        assert_eq!(unreachable(vec![r("a", exact("/a")), r("b", exact("/b")), r("a2", exact("/a"))]), ["a2"]);
        assert_eq!(unreachable(vec![r("p", prefix("/p")), r("p2", prefix("/p")), r("q", prefix("/p/q"))]), ["p2"]);
        // Longer prefixes and exact paths never cover a prefix.
        let routes = vec![r("exact", exact("/p")), r("long", prefix("/p/x")), r("p", prefix("/p"))];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        // A prefix covers an exact path only by precedence: exact wins.
        assert_eq!(unreachable(vec![r("p", prefix("/p")), r("e", exact("/p/x"))]), Vec::<String>::new());
    }

    #[test]
    fn catch_all_routes() {
        // A regex route wins over a catch-all; a catch-all is covered only by
        // another catch-all or by regexes that match every path.
        assert_eq!(unreachable(vec![r("all", Any), r("re", regex("/.*"))]), ["all"]);
        assert_eq!(unreachable(vec![r("all", Any), r("re", regex("/.+"))]), Vec::<String>::new());
        assert_eq!(unreachable(vec![r("all", Any), r("root", exact("/")), r("re", regex("/.+"))]), ["all"]);
        assert_eq!(unreachable(vec![r("all", Any), r("all2", Any)]), ["all2"]);
        assert_eq!(unreachable(vec![r("p", prefix("/a")), r("e", exact("/")), r("all", Any)]), Vec::<String>::new());
    }

    #[test]
    fn methods() {
        // A route with a method ranks first: a later one without method is
        // still reachable for other methods.
        let routes = vec![r("any", exact("/a")), r("get", exact("/a")).methods(&["GET"])];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        let routes = vec![r("get", exact("/a")).methods(&["GET"]), r("any", exact("/a"))];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        // A route with a method after one without, on the same path: the
        // method ranks higher, so it is reachable; with the same method, not.
        let routes = vec![r("get", exact("/a")).methods(&["GET"]), r("get2", exact("/a")).methods(&["GET", "GET"])];
        assert_eq!(unreachable(routes), ["get2"]);
        // Two methods covered by two routes.
        let routes = vec![
            r("get", prefix("/a")).methods(&["GET"]),
            r("post", prefix("/a")).methods(&["POST"]),
            r("both", prefix("/a")).methods(&["POST", "GET"]),
        ];
        assert_eq!(unreachable(routes), ["both"]);
        // No method: every method, including unlisted ones, must be covered.
        let routes = vec![r("get", prefix("/a")).methods(&["GET", "POST"]), r("any", regex("/a/.*"))];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        let routes = vec![r("get", prefix("/a")).methods(&["GET"]), r("all", prefix("/a")), r("any", regex("/a/.*"))];
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
    }

    #[test]
    fn headers_and_queries() {
        let eq = |v: &str| ValueCond::Exact(v.into());
        // H's conditions among R's: every request of R also matches H.
        let routes = vec![r("h", prefix("/a")), r("r", prefix("/a")).header("x", eq("1"))];
        // `r` has more headers, so it ranks higher: reachable.
        assert_eq!(unreachable(routes), Vec::<String>::new());
        let routes = vec![r("h", prefix("/a/b")), r("r", regex("/a/b/.*")).header("x", eq("1"))];
        assert_eq!(unreachable(routes), ["r"]);
        // H with a condition R lacks does not cover R.
        let routes = vec![r("h", prefix("/a")).header("x", eq("1")), r("r", regex("/a/.*"))];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        // Same condition set.
        let routes = vec![
            r("h", prefix("/a")).header("x", eq("1")).query("q", ValueCond::Present),
            r("r", prefix("/a")).query("q", ValueCond::Present).header("x", eq("1")),
        ];
        assert_eq!(unreachable(routes), ["r"]);
        // A different value is a different condition.
        let routes = vec![r("h", prefix("/a")).header("x", eq("1")), r("r", prefix("/a")).header("x", eq("2"))];
        assert_eq!(unreachable(routes), Vec::<String>::new());
        // `present` is implied by any condition on the name.
        let routes = vec![r("h", prefix("/a")).header("x", ValueCond::Present), r("r", regex("/a/b")).header("x", eq("2"))];
        assert_eq!(unreachable(routes), ["r"]);
        // Headers and queries are different namespaces.
        let routes = vec![r("h", prefix("/a")).header("x", ValueCond::Present), r("r", regex("/a/b")).query("x", eq("2"))];
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
        ] {
            assert_eq!(literal_prefix(re), lp.as_bytes(), "{re}");
        }
    }

    #[test]
    fn empty_and_oversized_regexes() {
        // A regex no normalized path matches.
        assert_eq!(unreachable(vec![r("bad", regex("api/.*"))]), ["bad"]);
        assert_eq!(unreachable(vec![r("bad", regex("/a//b"))]), ["bad"]);
        // A regex that does not fit the size limit is skipped.
        let mut out = Vec::new();
        let routes = vec![r("p", prefix("/a")), r("big", regex(r"/a/\w{50}\w{50}"))];
        unreachable_routes("server `web`", &routes, &Config::default().dfa_size_limit(1 << 12), &mut out);
        assert!(out.is_empty());
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
