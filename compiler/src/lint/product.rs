//! Language inclusion on DFAs: a breadth-first walk of the product of two
//! anchored DFAs and a small hand-written automaton for the domain (the
//! normalized paths of spec section 7, or valid SPIFFE IDs), so that the
//! answers hold exactly for the strings a request can carry.

use crate::automata::{build_dfa, Flavor};
use crate::config::Config;
use regex_automata::dfa::{dense, Automaton};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::Anchored;
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// The DFAs built by `automata::build_dfa`.
pub(crate) type Dfa = dense::DFA<Vec<u32>>;

/// Most product states one inclusion check explores before giving up
/// (and answering [`Inclusion::Unknown`]).
pub(crate) const PRODUCT_LIMIT: usize = 100_000;

/// Domain state meaning "this string is outside the domain".
const REJECT: u8 = u8::MAX;

// Normalized-path automaton states.
const P_START: u8 = 0;
const P_SLASH: u8 = 1;
const P_DOT1: u8 = 2;
const P_DOT2: u8 = 3;
const P_SEG: u8 = 4;
const P_PCT: u8 = 5;
/// `P_PCT2 + h`: after `%` and the upper-case hex digit `h`.
const P_PCT2: u8 = 6;

// SPIFFE ID automaton states: 0..=8 read `spiffe://`.
const SPIFFE: &[u8] = b"spiffe://";
const I_TD0: u8 = 9;
const I_TD: u8 = 10;
const I_SLASH: u8 = 11;
const I_DOT1: u8 = 12;
const I_DOT2: u8 = 13;
const I_SEG: u8 = 14;

/// The strings an inclusion ranges over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Domain {
    /// Normalized paths (spec section 7): `/`-led, bytes 0x21..=0x7E but
    /// `\ ? #`, no empty, `.` or `..` segment, escapes `%XX` in upper-case
    /// hex of bytes that are neither unreserved, `/`, `\` nor control.
    Path,
    /// Valid SPIFFE IDs (spec section 4), ignoring the 2048-byte bound.
    Identity,
}

fn upper_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

impl Domain {
    /// The start state.
    fn start(self) -> u8 {
        0
    }

    /// The state after `b`, or [`REJECT`].
    fn step(self, s: u8, b: u8) -> u8 {
        match self {
            Domain::Path => path_step(s, b),
            Domain::Identity => identity_step(s, b),
        }
    }

    /// Whether a string ending in state `s` is in the domain.
    fn accepts(self, s: u8) -> bool {
        match self {
            Domain::Path => matches!(s, P_SLASH | P_SEG),
            Domain::Identity => matches!(s, I_TD | I_SEG),
        }
    }

    /// Whether some string of the domain starts with `bytes`.
    pub(crate) fn accepts_prefix(self, bytes: &[u8]) -> bool {
        let mut s = self.start();
        for &b in bytes {
            s = self.step(s, b);
            if s == REJECT {
                return false;
            }
        }
        true
    }

    /// Whether `bytes` is a string of the domain.
    pub(crate) fn accepts_all(self, bytes: &[u8]) -> bool {
        let mut s = self.start();
        for &b in bytes {
            s = self.step(s, b);
            if s == REJECT {
                return false;
            }
        }
        self.accepts(s)
    }

    /// Bytes the domain automaton treats alike share a class; `None` for a
    /// byte no string of the domain holds.
    fn class(self, b: u8) -> Option<u8> {
        match self {
            Domain::Path => match b {
                _ if path_step(P_SEG, b) == REJECT => None,
                b'/' | b'.' | b'%' | b'0'..=b'9' | b'A'..=b'F' => Some(b),
                _ => Some(0),
            },
            Domain::Identity => match b {
                b's' | b'p' | b'i' | b'f' | b'e' | b':' | b'/' | b'.' => Some(b),
                b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => Some(1),
                b'A'..=b'Z' => Some(2),
                _ => None,
            },
        }
    }

    /// One byte for each class of bytes that the domain, every DFA of
    /// `dfas` and a trie with edges on `literal` bytes treat alike (a
    /// product walk need only try these).
    fn representatives(self, dfas: &[&Dfa], literal: &[bool; 256]) -> Vec<u8> {
        let mut keys: Vec<[u8; 4]> = Vec::new();
        let mut out = Vec::new();
        for b in 0x21..=0x7Eu8 {
            let Some(c) = self.class(b) else { continue };
            let mut key = [c, if literal[b as usize] { b } else { 0 }, 0, 0];
            for (slot, dfa) in key[2..].iter_mut().zip(dfas) {
                *slot = dfa.byte_classes().get(b);
            }
            if !keys.contains(&key) {
                keys.push(key);
                out.push(b);
            }
        }
        out
    }
}

/// A small, fast hasher (FxHash) for product states.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxSet<T> = HashSet<T, BuildHasherDefault<Fx>>;

fn path_step(s: u8, b: u8) -> u8 {
    if !(0x21..=0x7E).contains(&b) || matches!(b, b'\\' | b'?' | b'#') {
        return REJECT;
    }
    match s {
        P_START => {
            if b == b'/' {
                P_SLASH
            } else {
                REJECT
            }
        }
        P_SLASH | P_DOT1 | P_DOT2 | P_SEG => match b {
            b'/' if s == P_SEG => P_SLASH,
            b'/' => REJECT,
            b'%' => P_PCT,
            b'.' => match s {
                P_SLASH => P_DOT1,
                P_DOT1 => P_DOT2,
                _ => P_SEG,
            },
            _ => P_SEG,
        },
        P_PCT => upper_hex(b).map_or(REJECT, |h| P_PCT2 + h),
        s if (P_PCT2..P_PCT2 + 16).contains(&s) => match upper_hex(b) {
            Some(l) => {
                let v = (s - P_PCT2) * 16 + l;
                if unreserved(v) || v == b'/' || v == b'\\' || v < 0x20 || v == 0x7F {
                    REJECT
                } else {
                    P_SEG
                }
            }
            None => REJECT,
        },
        _ => REJECT,
    }
}

fn identity_step(s: u8, b: u8) -> u8 {
    match s {
        s if (s as usize) < SPIFFE.len() => {
            if SPIFFE[s as usize] == b {
                s + 1
            } else {
                REJECT
            }
        }
        I_TD0 | I_TD => match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => I_TD,
            b'/' if s == I_TD => I_SLASH,
            _ => REJECT,
        },
        I_SLASH | I_DOT1 | I_DOT2 | I_SEG => match b {
            b'/' if s == I_SEG => I_SLASH,
            b'.' => match s {
                I_SLASH => I_DOT1,
                I_DOT1 => I_DOT2,
                _ => I_SEG,
            },
            b if segment_byte(b) => I_SEG,
            _ => REJECT,
        },
        _ => REJECT,
    }
}

/// Builds one path DFA (all-matches, anchored) for `patterns`: byte-oriented
/// first (`.` is one byte class instead of UTF-8 sequences; the languages
/// agree on the ASCII bytes of normalized paths), Unicode when the
/// patterns need it (`\pL`). `None` when neither fits the size limit.
pub(crate) fn path_dfa(patterns: &[String], config: &Config) -> Option<Dfa> {
    build_dfa(patterns, Flavor::Bytes, config)
        .ok()
        .or_else(|| build_dfa(patterns, Flavor::Unicode, config).ok())
}

/// The anchored start state of `dfa`.
pub(crate) fn start_state(dfa: &Dfa) -> Option<StateID> {
    dfa.start_state(&start::Config::new().anchored(Anchored::Yes))
        .ok()
}

/// The state after reading `bytes` from the start.
pub(crate) fn walk(dfa: &Dfa, bytes: &[u8]) -> Option<StateID> {
    let mut s = start_state(dfa)?;
    for &b in bytes {
        s = dfa.next_state(s, b);
    }
    Some(s)
}

/// Whether `dfa` (some pattern of it) matches all of `bytes`.
pub(crate) fn matches(dfa: &Dfa, bytes: &[u8]) -> bool {
    walk(dfa, bytes).is_some_and(|s| accepts_at_end(dfa, s))
}

fn accepts_at_end(dfa: &Dfa, s: StateID) -> bool {
    dfa.is_match_state(dfa.next_eoi_state(s))
}

/// The answer of an inclusion check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inclusion {
    /// Every string of the domain in the left language is in the right one.
    Included,
    /// Some string is not.
    NotIncluded,
    /// Too large to tell (more than the product limit), or a DFA quit.
    Unknown,
}

/// Exact paths and prefixes (element-wise, spec section 7) as a trie: a
/// deterministic automaton built without regex machinery.
#[derive(Clone, Debug)]
pub(crate) struct Literals {
    /// Node 0 is the root.
    nodes: Vec<Node>,
    /// Every byte on some edge.
    bytes: [bool; 256],
}

/// A trie node.
#[derive(Clone, Debug, Default)]
struct Node {
    /// Edges, sorted by byte.
    children: Vec<(u8, u32)>,
    /// An exact path ends here.
    exact: bool,
    /// A prefix ends here.
    prefix: bool,
}

impl Default for Literals {
    /// No path at all.
    fn default() -> Self {
        Literals::new([], [])
    }
}

/// Trie state: nothing more can match.
const T_DEAD: u32 = u32::MAX;
/// Trie state: everything from here on matches (under a prefix).
const T_ALL: u32 = u32::MAX - 1;

impl Literals {
    /// The trie of `exact` paths and `prefixes` (without trailing `/`).
    pub(crate) fn new<'s>(
        exact: impl IntoIterator<Item = &'s [u8]>,
        prefixes: impl IntoIterator<Item = &'s [u8]>,
    ) -> Self {
        let mut t = Literals {
            nodes: vec![Node::default()],
            bytes: [false; 256],
        };
        for (s, prefix) in exact
            .into_iter()
            .map(|s| (s, false))
            .chain(prefixes.into_iter().map(|s| (s, true)))
        {
            let mut n = 0usize;
            for &b in s {
                t.bytes[b as usize] = true;
                n = match t.nodes[n].children.binary_search_by_key(&b, |e| e.0) {
                    Ok(k) => t.nodes[n].children[k].1 as usize,
                    Err(k) => {
                        let id = t.nodes.len();
                        t.nodes[n].children.insert(k, (b, id as u32));
                        t.nodes.push(Node::default());
                        id
                    }
                };
            }
            if prefix {
                t.nodes[n].prefix = true;
            } else {
                t.nodes[n].exact = true;
            }
        }
        t
    }

    fn is_empty(&self) -> bool {
        match self.nodes.first() {
            Some(n) => n.children.is_empty() && !n.exact && !n.prefix,
            None => true,
        }
    }

    fn start(&self) -> u32 {
        if self.is_empty() {
            T_DEAD
        } else {
            0
        }
    }

    fn step(&self, s: u32, b: u8) -> u32 {
        if s == T_DEAD || s == T_ALL {
            return s;
        }
        let node = &self.nodes[s as usize];
        if node.prefix && b == b'/' {
            return T_ALL;
        }
        match node.children.binary_search_by_key(&b, |e| e.0) {
            Ok(k) => node.children[k].1,
            Err(_) => T_DEAD,
        }
    }

    fn accepts(&self, s: u32) -> bool {
        match s {
            T_DEAD => false,
            T_ALL => true,
            s => self.nodes[s as usize].exact || self.nodes[s as usize].prefix,
        }
    }
}

/// Decides `L(a) ∩ D ⊆ L(lits) ∪ L(b)` for the domain `D`, where
/// `a == None` stands for every string and `b == None` for no string.
/// Explores at most `limit` product states.
pub(crate) fn included(
    a: Option<&Dfa>,
    lits: &Literals,
    b: Option<&Dfa>,
    domain: Domain,
    limit: usize,
) -> Inclusion {
    let sa0 = match a {
        Some(a) => match start_state(a) {
            Some(s) => s,
            None => return Inclusion::Unknown,
        },
        None => StateID::ZERO,
    };
    let sb0 = match b {
        Some(b) => match start_state(b) {
            Some(s) => s,
            None => return Inclusion::Unknown,
        },
        None => StateID::ZERO,
    };
    let first = (sa0, lits.start(), sb0, domain.start());
    let dfas: Vec<&Dfa> = a.into_iter().chain(b).collect();
    let bytes = domain.representatives(&dfas, &lits.bytes);
    let b_accepts = |s: StateID| b.is_some_and(|b| accepts_at_end(b, s));
    let mut seen: FxSet<(StateID, u32, StateID, u8)> = FxSet::default();
    seen.insert(first);
    let mut queue = VecDeque::from([first]);
    while let Some((sa, t, sb, f)) = queue.pop_front() {
        let a_accepts = match a {
            Some(a) => accepts_at_end(a, sa),
            None => true,
        };
        if domain.accepts(f) && a_accepts && !lits.accepts(t) && !b_accepts(sb) {
            return Inclusion::NotIncluded;
        }
        for &byte in &bytes {
            let f2 = domain.step(f, byte);
            if f2 == REJECT {
                continue;
            }
            let t2 = lits.step(t, byte);
            if t2 == T_ALL {
                // Every longer string is in the union.
                continue;
            }
            let sa2 = match a {
                Some(a) => {
                    let s = a.next_state(sa, byte);
                    if a.is_dead_state(s) {
                        continue;
                    }
                    if a.is_quit_state(s) {
                        return Inclusion::Unknown;
                    }
                    s
                }
                None => sa,
            };
            let sb2 = match b {
                Some(b) => {
                    let s = b.next_state(sb, byte);
                    if b.is_quit_state(s) {
                        return Inclusion::Unknown;
                    }
                    s
                }
                None => sb,
            };
            if seen.insert((sa2, t2, sb2, f2)) {
                if seen.len() > limit {
                    return Inclusion::Unknown;
                }
                queue.push_back((sa2, t2, sb2, f2));
            }
        }
    }
    Inclusion::Included
}

/// Whether every valid SPIFFE ID of `L(a)` is in `L(b)`, exploring at most
/// [`PRODUCT_LIMIT`] product states.
pub(crate) fn identity_included(a: &Dfa, b: &Dfa) -> Inclusion {
    included(
        Some(a),
        &Literals::default(),
        Some(b),
        Domain::Identity,
        PRODUCT_LIMIT,
    )
}

/// Whether some string of the domain is in both `L(a)` and `L(b)`
/// (`None`: more than `limit` product states, or a DFA quit).
pub(crate) fn meet(a: &Dfa, b: &Dfa, domain: Domain, limit: usize) -> Option<bool> {
    let first = (start_state(a)?, start_state(b)?, domain.start());
    let bytes = domain.representatives(&[a, b], &[false; 256]);
    let mut seen: FxSet<(StateID, StateID, u8)> = FxSet::default();
    seen.insert(first);
    let mut queue = VecDeque::from([first]);
    while let Some((sa, sb, f)) = queue.pop_front() {
        if domain.accepts(f) && accepts_at_end(a, sa) && accepts_at_end(b, sb) {
            return Some(true);
        }
        for &byte in &bytes {
            let f2 = domain.step(f, byte);
            if f2 == REJECT {
                continue;
            }
            let (sa2, sb2) = (a.next_state(sa, byte), b.next_state(sb, byte));
            if a.is_dead_state(sa2) || b.is_dead_state(sb2) {
                continue;
            }
            if a.is_quit_state(sa2) || b.is_quit_state(sb2) {
                return None;
            }
            if seen.insert((sa2, sb2, f2)) {
                if seen.len() > limit {
                    return None;
                }
                queue.push_back((sa2, sb2, f2));
            }
        }
    }
    Some(false)
}

/// Up to `k` short strings of `L(dfa) ∩ D` (shortest first, one per
/// product state), for quick counterexamples. `Some(vec![])` means the
/// language holds no string of the domain; `None` that the walk gave up
/// before finding any.
pub(crate) fn short_members(
    dfa: &Dfa,
    domain: Domain,
    k: usize,
    limit: usize,
) -> Option<Vec<Vec<u8>>> {
    let s0 = start_state(dfa)?;
    // Nodes: (dfa state, domain state, parent, byte).
    let mut nodes: Vec<(StateID, u8, usize, u8)> = vec![(s0, domain.start(), usize::MAX, 0)];
    let mut seen: FxSet<(StateID, u8)> = FxSet::default();
    seen.insert((s0, domain.start()));
    let bytes = domain.representatives(&[dfa], &[false; 256]);
    let mut found = Vec::new();
    let mut next = 0;
    while next < nodes.len() {
        let (s, f, _, _) = nodes[next];
        if domain.accepts(f) && accepts_at_end(dfa, s) {
            let mut bytes = Vec::new();
            let mut i = next;
            while nodes[i].2 != usize::MAX {
                bytes.push(nodes[i].3);
                i = nodes[i].2;
            }
            bytes.reverse();
            found.push(bytes);
            if found.len() >= k {
                return Some(found);
            }
        }
        for &byte in &bytes {
            let f2 = domain.step(f, byte);
            if f2 == REJECT {
                continue;
            }
            let s2 = dfa.next_state(s, byte);
            if dfa.is_dead_state(s2) {
                continue;
            }
            if dfa.is_quit_state(s2) {
                return if found.is_empty() { None } else { Some(found) };
            }
            if seen.insert((s2, f2)) {
                if seen.len() > limit {
                    return if found.is_empty() { None } else { Some(found) };
                }
                nodes.push((s2, f2, next, byte));
            }
        }
        next += 1;
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automata::{identity_regex, path_regex};
    use crate::ir::PathCond;

    fn dfa(patterns: &[&str]) -> Dfa {
        let pats: Vec<String> = patterns
            .iter()
            .map(|p| path_regex(&PathCond::Regex(p.to_string())))
            .collect();
        path_dfa(&pats, &Config::default()).unwrap()
    }

    /// Whether every normalized path of `a` (all of them where `None`) is
    /// one of `b`'s.
    fn path_inclusion(a: Option<&Dfa>, b: &Dfa) -> Inclusion {
        included(
            a,
            &Literals::default(),
            Some(b),
            Domain::Path,
            PRODUCT_LIMIT,
        )
    }

    /// Whether `a` and `b` share a normalized path.
    fn paths_meet(a: &Dfa, b: &Dfa) -> Option<bool> {
        meet(a, b, Domain::Path, PRODUCT_LIMIT)
    }

    #[test]
    fn path_domain_is_the_normalized_paths() {
        for ok in [
            "/",
            "/a",
            "/a/",
            "/a/b.c",
            "/.a",
            "/a..",
            "/...",
            "/%25",
            "/%2B%C3",
            "/~!$&'()*+,;=:@",
        ] {
            assert!(Domain::Path.accepts_all(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", "a", "//", "/a//b", "/.", "/..", "/./a", "/a/../b", "/a?b", "/a#b", "/a\\b",
            "/%2f", "/%2F", "/%41", "/%7E", "/%1F", "/%7F", "/%", "/%4", "/a b", "/é",
        ] {
            assert!(!Domain::Path.accepts_all(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn identity_domain_is_the_spiffe_ids() {
        for ok in ["spiffe://td", "spiffe://td/a", "spiffe://t.d/ns/A_b-c/x.."] {
            assert!(Domain::Identity.accepts_all(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "spiffe://",
            "spiffe://td/",
            "spiffe://TD",
            "spiffe://td//a",
            "spiffe://td/./a",
            "spiffe://td/..",
            "http://td",
        ] {
            assert!(!Domain::Identity.accepts_all(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn inclusion_over_paths() {
        let r = dfa(&["/api/v[0-9]+/.*"]);
        let prefix = path_dfa(
            &[path_regex(&PathCond::Prefix("/api".into()))],
            &Config::default(),
        )
        .unwrap();
        assert_eq!(path_inclusion(Some(&r), &prefix), Inclusion::Included);
        assert_eq!(path_inclusion(Some(&prefix), &r), Inclusion::NotIncluded);
        // Outside normalized paths only: `/a/./b`, `/a//b` never reach a route.
        let dots = dfa(&["/a/(\\.|/)/b", "/c"]);
        assert_eq!(
            path_inclusion(Some(&dots), &dfa(&["/c"])),
            Inclusion::Included
        );
        // Non-ASCII paths do not exist either.
        assert_eq!(
            path_inclusion(Some(&dfa(&["/[a-zé]"])), &dfa(&["/[a-z]"])),
            Inclusion::Included
        );
        // Everything (None) within a union that covers `/` and all else.
        assert_eq!(
            path_inclusion(None, &dfa(&["/", "/[^/].*"])),
            Inclusion::Included
        );
        assert_eq!(
            path_inclusion(None, &dfa(&["/[^/].*"])),
            Inclusion::NotIncluded
        );
        assert_eq!(
            included(
                Some(&r),
                &Literals::default(),
                Some(&prefix),
                Domain::Path,
                2
            ),
            Inclusion::Unknown
        );
    }

    #[test]
    fn meeting_languages() {
        let (a, b) = (
            dfa(&["/api/v[0-9]+/svc1/[a-z]+"]),
            dfa(&["/api/v[0-9]+/svc1[0-9]/[a-z]+"]),
        );
        assert_eq!(paths_meet(&a, &b), Some(false));
        assert_eq!(paths_meet(&a, &dfa(&["/api/v1/.*"])), Some(true));
        // They meet only outside normalized paths.
        assert_eq!(
            paths_meet(&dfa(&["/a/.*"]), &dfa(&["/a/(\\.|/)"])),
            Some(false)
        );
        assert_eq!(
            paths_meet(&dfa(&["/a/.*"]), &dfa(&["/a/(\\.|/).*"])),
            Some(true)
        );
        assert_eq!(meet(&a, &a, Domain::Path, 1), None);
    }

    #[test]
    fn inclusion_with_literal_paths() {
        let lits = |exact: &[&str], prefixes: &[&str]| {
            Literals::new(
                exact.iter().map(|s| s.as_bytes()),
                prefixes.iter().map(|s| s.as_bytes()),
            )
        };
        let inc = |re: &[&str], l: &Literals, b: Option<&Dfa>| {
            included(Some(&dfa(re)), l, b, Domain::Path, PRODUCT_LIMIT)
        };
        assert_eq!(
            inc(&["/api/v[0-9]+/.*"], &lits(&[], &["/api"]), None),
            Inclusion::Included
        );
        assert_eq!(
            inc(&["/api(/.*)?"], &lits(&[], &["/api"]), None),
            Inclusion::Included
        );
        assert_eq!(
            inc(&["/api.*"], &lits(&[], &["/api"]), None),
            Inclusion::NotIncluded
        );
        assert_eq!(
            inc(&["/(a|b)"], &lits(&["/a", "/b"], &[]), None),
            Inclusion::Included
        );
        assert_eq!(
            inc(&["/(a|b)"], &lits(&["/a"], &[]), None),
            Inclusion::NotIncluded
        );
        // A prefix ends where an exact path goes on.
        assert_eq!(
            inc(&["/a(/b|/c)?"], &lits(&["/a/b"], &["/a"]), None),
            Inclusion::Included
        );
        assert_eq!(
            inc(&["/a/b/c"], &lits(&["/a/b"], &[]), None),
            Inclusion::NotIncluded
        );
        // Literal paths and a regex together.
        let digits = dfa(&["/n/[1-9][0-9]*"]);
        assert_eq!(
            inc(&["/n/[0-9]"], &lits(&["/n/0"], &[]), Some(&digits)),
            Inclusion::Included
        );
        assert_eq!(
            inc(&["/n/[0-9]+"], &lits(&["/n/0"], &[]), Some(&digits)),
            Inclusion::NotIncluded
        );
        assert_eq!(
            included(
                None,
                &lits(&["/"], &[]),
                Some(&dfa(&["/[^/].*"])),
                Domain::Path,
                PRODUCT_LIMIT
            ),
            Inclusion::Included
        );
        assert_eq!(
            inc(&["/x"], &Literals::default(), None),
            Inclusion::NotIncluded
        );
    }

    #[test]
    fn inclusion_over_identities() {
        let id = |ps: &[&str]| {
            let pats: Vec<String> = ps.iter().map(|p| identity_regex(p)).collect();
            build_dfa(&pats, Flavor::Unicode, &Config::default()).unwrap()
        };
        let ns = id(&["spiffe://td/ns/a/sa/*"]);
        assert_eq!(
            identity_included(&ns, &id(&["spiffe://td/ns/*/sa/*"])),
            Inclusion::Included
        );
        assert_eq!(
            identity_included(&ns, &id(&["spiffe://td/**"])),
            Inclusion::Included
        );
        assert_eq!(
            identity_included(&ns, &id(&["spiffe://td/ns/b/**"])),
            Inclusion::NotIncluded
        );
        // `*` also matches `.` and `..` in the automaton, never in a valid ID.
        let dot = id(&["spiffe://td/x/*"]);
        let no_dots = build_dfa(
            &[r"spiffe://td/x/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)"
                .to_string()],
            Flavor::Unicode,
            &Config::default(),
        )
        .unwrap();
        assert_eq!(identity_included(&dot, &no_dots), Inclusion::Included);
    }

    #[test]
    fn short_members_find_witnesses_and_emptiness() {
        let w = short_members(&dfa(&["/api/v[0-9]+/.*"]), Domain::Path, 2, PRODUCT_LIMIT).unwrap();
        assert_eq!(w[0], b"/api/v0/".to_vec());
        assert_eq!(w.len(), 2);
        assert_eq!(
            short_members(&dfa(&["api/.*"]), Domain::Path, 2, PRODUCT_LIMIT),
            Some(vec![])
        );
        assert_eq!(
            short_members(&dfa(&["/a//b"]), Domain::Path, 2, PRODUCT_LIMIT),
            Some(vec![])
        );
    }
}
