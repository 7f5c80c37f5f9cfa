//! The product walk: the classes of inputs that a tuple of DFAs cannot tell
//! apart, each with its shortest witness, restricted to a domain DFA.

use super::TooLarge;
use regex_automata::dfa::{dense, sparse, Automaton, StartKind};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::util::syntax;
use regex_automata::{nfa::thompson, Anchored, MatchKind};
use sluice_runtime::AlignedBytes;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// A DFA read from a bundle or built for the diff: dense or sparse.
#[derive(Clone, Debug)]
pub enum Dfa {
    /// A dense DFA.
    Dense(dense::DFA<Vec<u32>>),
    /// A sparse DFA.
    Sparse(sparse::DFA<Vec<u8>>),
}

macro_rules! with {
    ($dfa:expr, $d:ident => $e:expr) => {
        match $dfa {
            Dfa::Dense($d) => $e,
            Dfa::Sparse($d) => $e,
        }
    };
}

impl Dfa {
    /// Reads a serialized DFA (`write_to_little_endian`), dense or sparse.
    pub fn from_serialized(bytes: &[u8]) -> Result<Dfa, String> {
        let aligned = AlignedBytes::new(bytes);
        let b = aligned.as_bytes();
        if let Ok((d, _)) = dense::DFA::from_bytes(b) {
            return Ok(Dfa::Dense(d.to_owned()));
        }
        sparse::DFA::from_bytes(b)
            .map(|(d, _)| Dfa::Sparse(d.to_owned()))
            .map_err(|e| format!("an automaton does not load: {e}"))
    }

    /// An anchored, all-matches DFA of `patterns` over bytes (`(?-u)`
    /// escapes may match any byte).
    pub fn build(patterns: &[String]) -> Result<Dfa, String> {
        let d = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::All)
                    .start_kind(StartKind::Anchored),
            )
            .syntax(syntax::Config::new().utf8(false))
            .thompson(thompson::Config::new().utf8(false))
            .build_many(patterns)
            .map_err(|e| format!("a diff automaton does not build: {e}"))?;
        Ok(Dfa::Dense(d))
    }

    fn start(&self) -> StateID {
        let config = start::Config::new().anchored(Anchored::Yes);
        with!(self, d => d.start_state(&config).unwrap_or(StateID::ZERO))
    }

    fn next(&self, s: StateID, b: u8) -> StateID {
        with!(self, d => d.next_state(s, b))
    }

    fn class(&self, b: u8) -> u8 {
        with!(self, d => d.byte_classes().get(b))
    }

    /// The number of patterns.
    pub fn pattern_len(&self) -> usize {
        with!(self, d => d.pattern_len())
    }

    fn is_dead(&self, s: StateID) -> bool {
        with!(self, d => d.is_dead_state(s))
    }

    /// The pattern ids that match at the end of input after state `s`.
    fn matches_at_end(&self, s: StateID, out: &mut Vec<u32>) {
        with!(self, d => {
            let e = d.next_eoi_state(s);
            if d.is_match_state(e) {
                for i in 0..d.match_len(e) {
                    out.push(d.match_pattern(e, i).as_u32());
                }
            }
        })
    }
}

impl Dfa {
    /// The pattern ids (plus `offset`) that match all of `input`.
    pub fn matches(&self, input: &[u8], offset: u32) -> Vec<u32> {
        let mut s = self.start();
        for &b in input {
            s = self.next(s, b);
        }
        let mut out = Vec::new();
        self.matches_at_end(s, &mut out);
        out.into_iter().map(|p| p + offset).collect()
    }
}

/// A fast, non-cryptographic hasher for the diff's internal tables (keys
/// are state ids and bit strings, never attacker-chosen beyond a policy).
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map with [`FxHasher`].
pub type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// `bytes` as a regex that matches exactly them (`(?-u)` byte escapes).
pub fn literal(bytes: &[u8]) -> String {
    let mut s = String::from("(?-u:");
    for b in bytes {
        s.push_str(&format!("\\x{b:02X}"));
    }
    s.push(')');
    s
}

/// One input class: which patterns of each automaton match (global ids:
/// the automaton's offset plus its pattern id, sorted), and the shortest
/// input of the class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    /// Global ids of the matching patterns, sorted.
    pub matches: Vec<u32>,
    /// The first (shortest, most readable) input in the class.
    pub witness: Vec<u8>,
}

/// The order in which bytes are tried, so witnesses read naturally.
fn preference(b: u8) -> u32 {
    match b {
        b'a'..=b'z' => b as u32,
        b'0'..=b'9' => 200 + b as u32,
        b'A'..=b'Z' => 300 + b as u32,
        0x21..=0x7E => 400 + b as u32,
        _ => 1000 + b as u32,
    }
}

/// Every class of inputs accepted by `domain` that the automata `dfas`
/// (each with the offset of its pattern ids) tell apart, ordered by
/// witness (shortest first); `budget` bounds the state tuples visited.
pub fn classes(dfas: &[(&Dfa, u32)], domain: &Dfa, budget: usize) -> Result<Vec<Class>, TooLarge> {
    let all: Vec<&Dfa> = dfas.iter().map(|(d, _)| *d).chain([domain]).collect();
    // One representative byte per joint byte class, preferred bytes first.
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.sort_by_key(|&b| preference(b));
    let mut seen = std::collections::HashSet::new();
    let reps: Vec<u8> = bytes
        .into_iter()
        .filter(|&b| seen.insert(all.iter().map(|d| d.class(b)).collect::<Vec<u8>>()))
        .collect();
    let start: Vec<StateID> = all.iter().map(|d| d.start()).collect();
    let mut index: FxMap<Vec<StateID>, usize> = FxMap::default();
    let mut parent: Vec<(usize, u8)> = Vec::new();
    let mut tuples: Vec<Vec<StateID>> = Vec::new();
    let mut queue = VecDeque::new();
    index.insert(start.clone(), 0);
    tuples.push(start);
    parent.push((usize::MAX, 0));
    queue.push_back(0usize);
    let mut found: BTreeMap<Vec<u32>, usize> = BTreeMap::new();
    let mut order: Vec<Vec<u32>> = Vec::new();
    let last = all.len() - 1;
    while let Some(t) = queue.pop_front() {
        let tuple = tuples[t].clone();
        let mut m = Vec::new();
        domain.matches_at_end(tuple[last], &mut m);
        if !m.is_empty() {
            let mut matches = Vec::new();
            for (i, (d, offset)) in dfas.iter().enumerate() {
                let mut local = Vec::new();
                d.matches_at_end(tuple[i], &mut local);
                matches.extend(local.into_iter().map(|p| p + offset));
            }
            matches.sort_unstable();
            matches.dedup();
            if let std::collections::btree_map::Entry::Vacant(e) = found.entry(matches.clone()) {
                e.insert(t);
                order.push(matches);
            }
        }
        for &b in &reps {
            let next: Vec<StateID> = all.iter().zip(&tuple).map(|(d, &s)| d.next(s, b)).collect();
            if domain.is_dead(next[last]) {
                continue;
            }
            if let Entry::Vacant(e) = index.entry(next.clone()) {
                if tuples.len() >= budget {
                    return Err(TooLarge {
                        what: "the product of the automata",
                        limit: budget,
                    });
                }
                e.insert(tuples.len());
                parent.push((t, b));
                tuples.push(next);
                queue.push_back(tuples.len() - 1);
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|matches| {
            let mut t = found[&matches];
            let mut witness = Vec::new();
            while parent[t].0 != usize::MAX {
                witness.push(parent[t].1);
                t = parent[t].0;
            }
            witness.reverse();
            Class { matches, witness }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(p: &[&str]) -> Dfa {
        Dfa::build(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn prefix_against_exact_gives_four_classes() {
        let prefix = build(&[r"/api(?:/(?s-u:.)*)?"]);
        let exact = build(&[&literal(b"/api/x")]);
        let domain = build(&[r"/[a-z/]*"]);
        let cs = classes(&[(&prefix, 0), (&exact, 1)], &domain, 10_000).unwrap();
        let got: Vec<(Vec<u32>, String)> = cs
            .iter()
            .map(|c| {
                (
                    c.matches.clone(),
                    String::from_utf8(c.witness.clone()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (vec![], "/".to_string()),
                (vec![0], "/api".to_string()),
                (vec![0, 1], "/api/x".to_string()),
            ]
        );
    }

    #[test]
    fn the_domain_restricts_witnesses_and_the_budget_holds() {
        let any = build(&[r"(?s-u:.)*"]);
        let digits = build(&["[0-9]+"]);
        let cs = classes(&[(&any, 0)], &digits, 100).unwrap();
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].witness, b"0".to_vec());
        let many = build(&["[a-z]{30}"]);
        assert!(classes(&[(&many, 0)], &any, 5).is_err());
    }

    #[test]
    fn serialized_dfas_read_back() {
        let d = build(&["ab", "a.*"]);
        let Dfa::Dense(dense) = &d else {
            unreachable!()
        };
        let (bytes, _) = dense.to_bytes_little_endian();
        let back = Dfa::from_serialized(&bytes).unwrap();
        let domain = build(&["[ab]*"]);
        let cs = classes(&[(&back, 0)], &domain, 1000).unwrap();
        assert_eq!(cs.len(), 3);
    }
}
