//! Route classes: for two route sets (either may be absent), every
//! distinct outcome of route matching on both sides at once (the route each
//! side takes, whether the request is gRPC, whether its path is bad), each
//! with a witness method, path and headers.

use super::product::{self, Class, Dfa, FxMap};
use super::{build, classes, EnumerateError, HttpPart, Side, TooLarge};

use sluice_runtime::bundle::encode::{Cond, RouteSet, ValueCond};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

/// States the route dimension walk may hold at once.
const STATE_BUDGET: usize = 200_000;

/// Which route set of a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetKey {
    /// A server's, by index.
    Server(u32),
    /// A service's, by index.
    Service(u32),
}

/// One outcome of route matching on both sides.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The rank of the route each side takes (`None`: none, or no route set).
    pub ranks: [Option<u32>; 2],
    /// The request's `content-type` starts with `application/grpc`.
    pub grpc: bool,
    /// The path does not normalize.
    pub bad_path: bool,
    /// A witness.
    pub http: HttpPart,
}

/// A value class of one header or query key: which atoms hold, whether it
/// is gRPC (`content-type` only), the value (`None`: absent).
#[derive(Clone, Debug)]
struct ValClass {
    sat: Vec<bool>,
    grpc: bool,
    value: Option<Vec<u8>>,
}

/// Header (false) or query (true), the name, and the conditions' keys.
type ValuesKey = (bool, String, Vec<(usize, u8, u32, Vec<u8>)>);

/// Per path class: each side's candidate ranks, and the path.
type PathClass = ([Vec<u32>; 2], Vec<u8>);

/// Memoized automata and value classes, shared across route-set pairs.
#[derive(Default)]
pub struct Cache {
    literal: HashMap<(usize, SetKey), Option<Rc<Dfa>>>,
    values: HashMap<ValuesKey, Rc<Vec<ValClass>>>,
    domains: HashMap<String, Rc<Dfa>>,
    outcomes: HashMap<[Option<SetKey>; 2], Rc<Vec<Outcome>>>,
}

impl Cache {
    /// The domain automaton of `pattern`, built once.
    fn domain(&mut self, pattern: String) -> Result<Rc<Dfa>, EnumerateError> {
        if let Some(d) = self.domains.get(&pattern) {
            return Ok(d.clone());
        }
        let d = Rc::new(build(std::slice::from_ref(&pattern))?);
        self.domains.insert(pattern, d.clone());
        Ok(d)
    }
}

/// Normalized paths (spec section 7): see docs/diff.md.
fn path_domain() -> String {
    let mut escapes = Vec::new();
    for b in 0u16..=255 {
        let b = b as u8;
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if unreserved || b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f {
            continue;
        }
        escapes.push(format!("{b:02X}"));
    }
    let esc = format!("%(?:{})", escapes.join("|"));
    // Raw bytes allowed in a normalized path, without `/` and `%`.
    let raw = r"!-\x22\x24\x26-\x2E0-9:-\x3E@-\x5B\x5D-\x7E";
    let c = format!("(?:[{raw}]|{esc})");
    let c1 = format!("(?:[{}]|{esc})", raw.replace(r"\x26-\x2E", r"\x26-\x2D"));
    let c2 = format!(
        "(?:[{}]|{esc})",
        raw.replace(r"\x26-\x2E", r"\x26-\x2D")
            .replace(":-\\x3E", ":\\x3C-\\x3E")
    );
    let c3 = format!("(?:[{}]|{esc})", raw.replace(":-\\x3E", ":\\x3C-\\x3E"));
    let seg = format!(r"(?:{c1}{c}*|\.{c2}{c}*|\.\.{c3}{c}*)");
    format!(r"(?-u:/|(?:/{seg})+/?)")
}

fn literal_dfa(
    side: &Side<'_>,
    s: usize,
    key: SetKey,
    set: &RouteSet,
    cache: &mut Cache,
) -> Result<Option<Rc<Dfa>>, EnumerateError> {
    if let Some(d) = cache.literal.get(&(s, key)) {
        return Ok(d.clone());
    }
    let _ = side;
    let d = if set.literal_paths.is_empty() {
        None
    } else {
        let mut pats = Vec::new();
        for l in &set.literal_paths {
            let p = product::literal(&l.path);
            pats.push(p.clone());
            pats.push(format!("{p}(?:/(?s-u:.)*)?"));
        }
        Some(Rc::new(build(&pats)?))
    };
    cache.literal.insert((s, key), d.clone());
    Ok(d)
}

/// Path classes of two route sets: per class, each side's candidate ranks
/// in the order the runtime tries them, and the path.
fn path_classes(
    sides: &[Side<'_>; 2],
    sets: [Option<&RouteSet>; 2],
    keys: [Option<SetKey>; 2],
    cache: &mut Cache,
) -> Result<Vec<PathClass>, EnumerateError> {
    let domain = cache.domain(path_domain())?;
    let mut lits: [Option<Rc<Dfa>>; 2] = [None, None];
    for s in 0..2 {
        if let (Some(set), Some(key)) = (sets[s], keys[s]) {
            lits[s] = literal_dfa(&sides[s], s, key, set, cache)?;
        }
    }
    // (side, literal?, offset, first pattern)
    let mut plan: Vec<(usize, bool, u32, u32)> = Vec::new();
    let mut dfas: Vec<(&Dfa, u32)> = Vec::new();
    let mut offset = 0u32;
    for s in 0..2 {
        let Some(set) = sets[s] else { continue };
        if let Some(d) = &lits[s] {
            plan.push((s, true, offset, 0));
            dfas.push((d, offset));
            offset += 2 * set.literal_paths.len() as u32;
        }
        let mut first = 0;
        for &a in &set.regex_automata {
            let d = sides[s].dfa(a)?;
            plan.push((s, false, offset, first));
            dfas.push((d, offset));
            let n = d.pattern_len() as u32;
            offset += n;
            first += n;
        }
    }
    let found: Vec<Class> = if dfas.is_empty() {
        vec![Class {
            matches: vec![],
            witness: b"/".to_vec(),
        }]
    } else {
        classes(&dfas, &domain)?
    };
    let mut out = Vec::new();
    for class in found {
        if class.witness.len() > 8192 {
            // Normalizing never lengthens a path of at most 8192 bytes, so
            // no request falls in this class.
            continue;
        }
        let mut lit: [Vec<u32>; 2] = [vec![], vec![]];
        let mut re: [Vec<u32>; 2] = [vec![], vec![]];
        for &g in &class.matches {
            let Some(&(s, is_lit, off, first)) = plan.iter().rev().find(|p| p.2 <= g) else {
                continue;
            };
            let Some(set) = sets[s] else { continue };
            let local = g - off;
            if is_lit {
                let l = &set.literal_paths[(local / 2) as usize];
                lit[s].extend_from_slice(if local % 2 == 0 { &l.exact } else { &l.prefix });
            } else if let Some(r) = set.regex_routes.get((first + local) as usize) {
                re[s].extend_from_slice(r);
            }
        }
        let cands = [0, 1].map(|s| {
            let mut v = std::mem::take(&mut lit[s]);
            v.sort_unstable();
            let mut r = std::mem::take(&mut re[s]);
            r.sort_unstable();
            v.extend(r);
            if let Some(set) = sets[s] {
                v.extend_from_slice(&set.routes_without_path);
            }
            v
        });
        out.push((cands, class.witness));
    }
    Ok(out)
}

/// A condition's side and value, hashable.
type AtomKey<'a> = (usize, u8, u32, &'a [u8]);

fn atom_key(s: usize, c: &Cond) -> AtomKey<'_> {
    match &c.value {
        ValueCond::Exact(v) => (s, 0, 0, v),
        ValueCond::Regex(r) => (s, 1, *r, &[]),
        ValueCond::Present => (s, 2, 0, &[]),
    }
}

fn owned_key(k: AtomKey<'_>) -> (usize, u8, u32, Vec<u8>) {
    (k.0, k.1, k.2, k.3.to_vec())
}

fn value_classes(
    sides: &[Side<'_>; 2],
    query: bool,
    name: &str,
    atoms: &[(usize, Cond)],
    cache: &mut Cache,
) -> Result<Rc<Vec<ValClass>>, EnumerateError> {
    let key = (
        query,
        name.to_string(),
        atoms
            .iter()
            .map(|(s, c)| owned_key(atom_key(*s, c)))
            .collect(),
    );
    if let Some(v) = cache.values.get(&key) {
        return Ok(v.clone());
    }
    let grpc = !query && name == "content-type";
    // Exact values in one automaton, then the gRPC prefix, then each regex.
    let mut pats = Vec::new();
    let mut exact_of = Vec::new();
    for (i, (_, c)) in atoms.iter().enumerate() {
        if let ValueCond::Exact(v) = &c.value {
            exact_of.push((pats.len() as u32, i));
            pats.push(product::literal(v));
        }
    }
    let grpc_id = pats.len() as u32;
    if grpc {
        pats.push("(?i-u:application/grpc)(?s-u:.)*".to_string());
    }
    let own = if pats.is_empty() {
        None
    } else {
        Some(build(&pats)?)
    };
    let mut dfas: Vec<(&Dfa, u32)> = own.iter().map(|d| (d, 0)).collect();
    let mut regex_of = Vec::new();
    let mut offset = pats.len() as u32;
    for (i, (s, c)) in atoms.iter().enumerate() {
        if let ValueCond::Regex(r) = c.value {
            let a = sides[*s]
                .tables
                .value_automata
                .get(r as usize)
                .copied()
                .ok_or_else(|| EnumerateError::Automaton(format!("no value automaton `{r}`")))?;
            dfas.push((sides[*s].dfa(a)?, offset));
            regex_of.push((offset, i));
            offset += 1;
        }
    }
    // Header values are JSON strings (UTF-8); query values decode to any bytes.
    let domain = cache.domain(if query { "(?s-u:.)*" } else { "(?s:.)*" }.to_string())?;
    let found = if dfas.is_empty() {
        vec![Class {
            matches: vec![],
            witness: b"x".to_vec(),
        }]
    } else {
        classes(&dfas, &domain)?
    };
    let mut out = vec![ValClass {
        sat: vec![false; atoms.len()],
        grpc: false,
        value: None,
    }];
    for class in found {
        let mut sat: Vec<bool> = atoms
            .iter()
            .map(|(_, c)| c.value == ValueCond::Present)
            .collect();
        let mut is_grpc = false;
        for &g in &class.matches {
            if let Some(&(_, i)) = exact_of.iter().find(|(p, _)| *p == g) {
                sat[i] = true;
            } else if grpc && g == grpc_id {
                is_grpc = true;
            } else if let Some(&(_, i)) = regex_of.iter().find(|(p, _)| *p == g) {
                sat[i] = true;
            }
        }
        out.push(ValClass {
            sat,
            grpc: is_grpc,
            value: Some(class.witness),
        });
    }
    let out = Rc::new(out);
    cache.values.insert(key, out.clone());
    Ok(out)
}

fn pct(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Both sides' surviving candidates and the gRPC flag as one bit string.
fn pack(alive: &[Vec<bool>; 2], grpc: bool) -> Vec<u64> {
    let bits = alive[0].iter().chain(&alive[1]).chain([&grpc]);
    let mut out = vec![0u64; (alive[0].len() + alive[1].len()) / 64 + 1];
    for (i, &b) in bits.enumerate() {
        if b {
            out[i / 64] |= 1 << (i % 64);
        }
    }
    out
}

#[derive(Clone)]
struct State {
    alive: [Vec<bool>; 2],
    grpc: bool,
    method: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, Vec<u8>)>,
}

const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT",
];

/// Every outcome of matching an HTTP request against `sets` on both sides
/// (a side without a set only contributes the gRPC flag), bad paths
/// included, deduplicated, in a deterministic order.
pub fn outcomes(
    sides: &[Side<'_>; 2],
    sets: [Option<&RouteSet>; 2],
    keys: [Option<SetKey>; 2],
    cache: &mut Cache,
) -> Result<Rc<Vec<Outcome>>, EnumerateError> {
    let key = [0, 1].map(|s| sets[s].and(keys[s]));
    if let Some(o) = cache.outcomes.get(&key) {
        return Ok(o.clone());
    }
    let o = Rc::new(compute_outcomes(sides, sets, keys, cache)?);
    cache.outcomes.insert(key, o.clone());
    Ok(o)
}

fn compute_outcomes(
    sides: &[Side<'_>; 2],
    sets: [Option<&RouteSet>; 2],
    keys: [Option<SetKey>; 2],
    cache: &mut Cache,
) -> Result<Vec<Outcome>, EnumerateError> {
    let mut paths = path_classes(sides, sets, keys, cache)?;
    paths.push(([vec![], vec![]], b"/%2F".to_vec()));
    let bad_index = paths.len() - 1;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (pi, (cands, path)) in paths.iter().enumerate() {
        let bad = pi == bad_index;
        let route = |s: usize, r: u32| sets[s].and_then(|set| set.routes.get(r as usize));
        let mut methods = BTreeSet::new();
        let mut headers = BTreeSet::from(["content-type".to_string()]);
        let mut queries = BTreeSet::new();
        for (s, side_cands) in cands.iter().enumerate() {
            for &r in side_cands {
                let Some(r) = route(s, r) else { continue };
                methods.extend(r.methods.iter().cloned());
                headers.extend(r.headers.iter().map(|c| c.name.clone()));
                queries.extend(r.queries.iter().map(|c| c.name.clone()));
            }
        }
        let mut method_classes: Vec<String> = methods.iter().cloned().collect();
        let other = METHODS
            .iter()
            .find(|m| !methods.contains(**m))
            .map_or("X-OTHER".to_string(), |m| m.to_string());
        method_classes.push(other);
        let dims: Vec<(bool, String)> = headers
            .into_iter()
            .map(|h| (false, h))
            .chain(queries.into_iter().map(|q| (true, q)))
            .collect();
        // Per candidate, the last dimension (0 the method, then `dims`
        // from 1) in which it has a condition: once past it, a surviving
        // candidate is certain to hold, and those after it never matter.
        let last_dim = [0, 1].map(|s| {
            cands[s]
                .iter()
                .map(|&r| {
                    route(s, r).map_or(0, |r| {
                        dims.iter()
                            .enumerate()
                            .filter(|(_, (q, n))| {
                                (if *q { &r.queries } else { &r.headers })
                                    .iter()
                                    .any(|c| &c.name == n)
                            })
                            .map(|(i, _)| i + 1)
                            .max()
                            .unwrap_or(0)
                    })
                })
                .collect::<Vec<usize>>()
        });
        let settle = |alive: &mut [Vec<bool>; 2], done: usize| {
            for s in 0..2 {
                if let Some(i) =
                    (0..alive[s].len()).find(|&i| alive[s][i] && last_dim[s][i] <= done)
                {
                    alive[s][i + 1..].iter_mut().for_each(|a| *a = false);
                }
            }
        };
        let mut states: Vec<State> = Vec::new();
        let mut keyset: FxMap<Vec<u64>, ()> = FxMap::default();
        for m in method_classes {
            let mut alive = [0, 1].map(|s| {
                cands[s]
                    .iter()
                    .map(|&r| {
                        route(s, r).is_some_and(|r| r.methods.is_empty() || r.methods.contains(&m))
                    })
                    .collect::<Vec<bool>>()
            });
            settle(&mut alive, 0);
            if keyset.insert(pack(&alive, false), ()).is_none() {
                states.push(State {
                    alive,
                    grpc: false,
                    method: m,
                    headers: vec![],
                    query: vec![],
                });
            }
        }
        for (d, (query, name)) in dims.iter().enumerate() {
            let (query, name) = (*query, name.clone());
            let mut atoms: Vec<(usize, Cond)> = Vec::new();
            let mut atom_of: HashMap<AtomKey<'_>, usize> = HashMap::new();
            for (s, side_cands) in cands.iter().enumerate() {
                for &r in side_cands {
                    let Some(r) = route(s, r) else { continue };
                    for c in if query { &r.queries } else { &r.headers } {
                        if c.name == name {
                            atom_of.entry(atom_key(s, c)).or_insert_with(|| {
                                atoms.push((s, c.clone()));
                                atoms.len() - 1
                            });
                        }
                    }
                }
            }
            let vals = value_classes(sides, query, &name, &atoms, cache)?;
            // Per candidate, the atoms of its conditions on this name.
            let cond_atoms = [0, 1].map(|s| {
                cands[s]
                    .iter()
                    .map(|&r| {
                        route(s, r).map_or(Vec::new(), |r| {
                            (if query { &r.queries } else { &r.headers })
                                .iter()
                                .filter(|c| c.name == name)
                                .filter_map(|c| atom_of.get(&atom_key(s, c)).copied())
                                .collect::<Vec<usize>>()
                        })
                    })
                    .collect::<Vec<Vec<usize>>>()
            });
            // Only the atoms of candidates still alive in some state matter:
            // value classes alike on those (and on the gRPC flag) are one.
            let mut relevant = vec![false; atoms.len()];
            for st in &states {
                for (side_atoms, side_alive) in cond_atoms.iter().zip(&st.alive) {
                    for (ks, &a) in side_atoms.iter().zip(side_alive) {
                        if a {
                            ks.iter().for_each(|&k| relevant[k] = true);
                        }
                    }
                }
            }
            let mut val_seen = HashSet::new();
            let vals: Vec<&ValClass> = vals
                .iter()
                .filter(|v| {
                    let key: Vec<bool> =
                        v.sat.iter().zip(&relevant).map(|(&x, &r)| x && r).collect();
                    val_seen.insert((key, v.grpc))
                })
                .collect();
            let mut next = Vec::new();
            let mut keyset: FxMap<Vec<u64>, ()> = FxMap::default();
            for st in &states {
                for v in vals.iter() {
                    let alive = [0, 1].map(|s| {
                        cond_atoms[s]
                            .iter()
                            .zip(&st.alive[s])
                            .map(|(ks, &a)| a && ks.iter().all(|&k| v.sat[k]))
                            .collect::<Vec<bool>>()
                    });
                    let mut alive = alive;
                    settle(&mut alive, d + 1);
                    let grpc = st.grpc || v.grpc;
                    if keyset.insert(pack(&alive, grpc), ()).is_some() {
                        continue;
                    }
                    if keyset.len() > STATE_BUDGET {
                        return Err(TooLarge {
                            what: "the route match states",
                            limit: STATE_BUDGET,
                        }
                        .into());
                    }
                    let mut st2 = st.clone();
                    st2.alive = alive;
                    st2.grpc = grpc;
                    if let Some(value) = &v.value {
                        if query {
                            st2.query.push((name.clone(), value.clone()));
                        } else {
                            st2.headers
                                .push((name.clone(), String::from_utf8_lossy(value).into_owned()));
                        }
                    }
                    next.push(st2);
                }
            }
            states = next;
        }
        for st in states {
            let ranks = [0, 1].map(|s| {
                cands[s]
                    .iter()
                    .zip(&st.alive[s])
                    .find(|(_, &a)| a)
                    .map(|(&r, _)| r)
            });
            if !seen.insert((ranks, st.grpc, bad)) {
                continue;
            }
            let mut p = String::from_utf8_lossy(path).into_owned();
            if !st.query.is_empty() {
                let q: Vec<String> = st
                    .query
                    .iter()
                    .map(|(k, v)| format!("{}={}", pct(k.as_bytes()), pct(v)))
                    .collect();
                p.push('?');
                p.push_str(&q.join("&"));
            }
            out.push(Outcome {
                ranks,
                grpc: st.grpc,
                bad_path: bad,
                http: HttpPart {
                    method: st.method,
                    path: p,
                    headers: st.headers,
                },
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witnesses_of_the_path_domain_normalize_to_themselves() {
        let domain = build(&[path_domain()]).unwrap();
        let pieces = [build(&[
            r"/\.(?s-u:.)*".into(),
            r"/(?s-u:.)*%(?s-u:.)*".into(),
            r"/\.\.(?s-u:.)*".into(),
            r"(?s-u:.)*;(?s-u:.)*".into(),
        ])
        .unwrap()];
        let cs = product::classes(&[(&pieces[0], 0)], &domain, 100_000).unwrap();
        assert!(cs.len() >= 4);
        for c in &cs {
            let mut out = Vec::new();
            sluice_runtime::normalize::normalize_path(&c.witness, &mut out).unwrap();
            assert_eq!(out, c.witness, "{:?}", String::from_utf8_lossy(&c.witness));
        }
        let mut out = Vec::new();
        assert!(sluice_runtime::normalize::normalize_path(b"/%2F", &mut out).is_err());
    }
}
