//! Classifying a peer once per connection: which `from` clauses it satisfies.

use crate::bundle::{Bundle, DfaSet, NetTable, PeerClass, SetDfa};
use crate::literals::At;
use crate::request::Peer;
use regex_automata::dfa::Automaton;
use regex_automata::util::start;
use regex_automata::Anchored;
use std::net::IpAddr;

/// Longest SPIFFE ID accepted, in bytes.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// Whether `id` is a valid SPIFFE ID: `spiffe://` a trust domain of
/// `[a-z0-9._-]`, then path segments of `[A-Za-z0-9._-]`, none empty, `.`
/// or `..`, at most 2048 bytes in all.
pub fn is_valid_spiffe_id(id: &str) -> bool {
    SpiffeId::parse(id).is_ok()
}

/// A valid SPIFFE ID, borrowed: `spiffe://`, a trust domain, then a path
/// that may be empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpiffeId<'a> {
    id: &'a str,
    trust_domain_end: usize,
}

/// Why a string is not a SPIFFE ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpiffeIdError {
    /// It does not start with `spiffe://`.
    NoScheme,
    /// It is longer than 2048 bytes.
    TooLong,
    /// The trust domain is empty or has a byte outside `[a-z0-9._-]`.
    BadTrustDomain,
    /// A path segment is empty, `.`, `..` or has a byte outside `[A-Za-z0-9._-]`.
    BadPath,
}

impl std::fmt::Display for SpiffeIdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SpiffeIdError::NoScheme => "a SPIFFE ID starts with `spiffe://`",
            SpiffeIdError::TooLong => "a SPIFFE ID has at most 2048 bytes",
            SpiffeIdError::BadTrustDomain => {
                "a trust domain is not empty and has only lowercase letters, digits, `.`, `_` and `-`"
            }
            SpiffeIdError::BadPath => {
                "path segments of a SPIFFE ID are not empty, `.` or `..`, and have only letters, digits, `.`, `_` and `-`"
            }
        })
    }
}

impl std::error::Error for SpiffeIdError {}

const SPIFFE_SCHEME: &str = "spiffe://";

impl<'a> SpiffeId<'a> {
    /// Parses and validates `id` (see [`is_valid_spiffe_id`]).
    pub fn parse(id: &'a str) -> Result<SpiffeId<'a>, SpiffeIdError> {
        let rest = id
            .strip_prefix(SPIFFE_SCHEME)
            .ok_or(SpiffeIdError::NoScheme)?;
        if id.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        let (td, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if td.is_empty()
            || !td.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
        {
            return Err(SpiffeIdError::BadTrustDomain);
        }
        if !is_valid_path(path.as_bytes()) {
            return Err(SpiffeIdError::BadPath);
        }
        Ok(SpiffeId {
            id,
            trust_domain_end: SPIFFE_SCHEME.len() + td.len(),
        })
    }

    /// The trust domain, e.g. `prod.example.com`.
    pub fn trust_domain(&self) -> &'a str {
        &self.id[SPIFFE_SCHEME.len()..self.trust_domain_end]
    }

    /// The path: empty, or `/` and segments, e.g. `/ns/a/sa/b`.
    pub fn path(&self) -> &'a str {
        &self.id[self.trust_domain_end..]
    }

    /// The whole ID.
    pub fn as_str(&self) -> &'a str {
        self.id
    }
}

impl std::fmt::Display for SpiffeId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id)
    }
}

/// Whether `path` is the path of a valid SPIFFE ID: empty, or `/`-led
/// segments that are not empty, `.` or `..`, of `[A-Za-z0-9._-]`.
/// One branch-free pass over byte pairs (no empty segment, allowed bytes);
/// segments are split only when one starts with `.`.
#[inline]
fn is_valid_path(path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/") else {
        return path.is_empty();
    };
    let (Some(&first), Some(&last)) = (rest.first(), rest.last()) else {
        return false;
    };
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() | (b == b'.') | (b == b'_') | (b == b'-') | (b == b'/');
    let mut bad = !allowed(first) | (first == b'/') | (last == b'/');
    let mut dot_first = first == b'.';
    for (&a, &b) in rest.iter().zip(rest.get(1..).unwrap_or_default()) {
        bad |= !allowed(b) | ((a == b'/') & (b == b'/'));
        dot_first |= (a == b'/') & (b == b'.');
    }
    !bad && (!dot_first || rest.split(|&b| b == b'/').all(|s| s != b"." && s != b".."))
}

/// Calls `f` with the global id of every pattern of `set` that matches all of `hay`.
#[inline]
pub(crate) fn for_each_match(
    set: &DfaSet<'_>,
    hay: impl Iterator<Item = u8> + Clone,
    mut f: impl FnMut(u32),
) {
    for (dfa, &first) in set.dfas.iter().zip(&set.first) {
        match dfa {
            SetDfa::Dense(d) => matches_of(d, first, hay.clone(), &mut f),
            SetDfa::Sparse(d) => matches_of(d, first, hay.clone(), &mut f),
        }
    }
}

/// Calls `f` with `first` plus the id of every pattern of `dfa` that
/// matches all of `hay`.
#[inline]
fn matches_of(
    dfa: &impl Automaton,
    first: u32,
    hay: impl Iterator<Item = u8>,
    f: &mut impl FnMut(u32),
) {
    let Ok(mut s) = dfa.start_state(&start::Config::new().anchored(Anchored::Yes)) else {
        return;
    };
    for b in hay {
        s = dfa.next_state(s, b);
        if dfa.is_special_state(s) && (dfa.is_dead_state(s) || dfa.is_quit_state(s)) {
            return;
        }
    }
    s = dfa.next_eoi_state(s);
    if dfa.is_match_state(s) {
        for i in 0..dfa.match_len(s) {
            f(first + dfa.match_pattern(s, i).as_u32());
        }
    }
}

impl NetTable {
    /// The atom ids whose address sets hold `ip` (spec section 7, "Addresses").
    /// An address that carries IPv4 is looked up as that IPv4 address.
    #[inline]
    pub(crate) fn lookup(&self, ip: IpAddr) -> &[u32] {
        match crate::addr::canonical_ip(ip) {
            IpAddr::V4(a) => {
                let x = u32::from(a);
                let i = self.v4.partition_point(|e| e.0 <= x);
                match i.checked_sub(1).and_then(|i| self.v4.get(i)) {
                    Some((_, hi, ids)) if x <= *hi => ids,
                    _ => &[],
                }
            }
            IpAddr::V6(a) => {
                let x = u128::from(a);
                let i = self.v6.partition_point(|e| e.0 <= x);
                match i.checked_sub(1).and_then(|i| self.v6.get(i)) {
                    Some((_, hi, ids)) if x <= *hi => ids,
                    _ => &[],
                }
            }
        }
    }
}

impl Bundle<'_> {
    /// Computes which principals `peer` satisfies, into `class`. Call once
    /// per connection; never allocates.
    pub fn classify(&self, peer: &Peer<'_>, class: &mut PeerClass) {
        class.generation = class.generation.wrapping_add(1);
        if class.generation == 0 {
            class.stamps.iter_mut().for_each(|s| *s = 0);
            class.generation = 1;
        }
        if class.stamps.len() != self.clause_count as usize {
            // A class made for another bundle: resize once (setup, not per decision).
            class.stamps.clear();
            class.stamps.resize(self.clause_count as usize, 0);
        }
        let generation = class.generation;
        let stamps = &mut class.stamps;
        let mut mark = |clauses: &[u32]| {
            for &c in clauses {
                if let Some(s) = stamps.get_mut(c as usize) {
                    *s = generation;
                }
            }
        };
        class.has_identity = peer.identity.is_some();
        if let Some(id) = peer.identity {
            mark(&self.authenticated_clauses);
            // The identity automata only match valid SPIFFE IDs (the
            // compiler excludes dot segments from wildcards), so only the
            // length limit needs checking here; the literal table's `*`
            // and `**` entries match any bytes, so the table is only asked
            // about a valid path.
            if let Some(rest) = id
                .strip_prefix("spiffe://")
                .filter(|_| id.len() <= MAX_SPIFFE_ID_LEN)
            {
                let (td, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                if let Ok(i) = self.identities.binary_search_by(|t| t.trust_domain.cmp(td)) {
                    let domain = &self.identities[i];
                    if !domain.literals.is_empty() && is_valid_path(path.as_bytes()) {
                        domain.literals.for_each_prefix(
                            path.as_bytes(),
                            |[whole, one, segments], at| match at {
                                At::Whole => mark(whole),
                                At::Separator { last } => {
                                    if last {
                                        mark(one);
                                    }
                                    mark(segments);
                                }
                            },
                        );
                    }
                    for_each_match(&domain.dfas, path.bytes(), |p| {
                        if let Some(c) = domain.clauses.get(p as usize) {
                            mark(c);
                        }
                    });
                }
            }
        }
        if let Some(ip) = peer.ip {
            for &atom in self.peer_nets.lookup(ip) {
                if let Some(c) = self.peer_nets.targets.get(atom as usize) {
                    mark(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids() {
        assert!(is_valid_spiffe_id("spiffe://prod.example.com/ns/a/sa/b"));
        assert!(is_valid_spiffe_id("spiffe://td"));
        assert!(!is_valid_spiffe_id("spiffe://td/"));
        assert!(!is_valid_spiffe_id("spiffe://TD/a"));
        assert!(!is_valid_spiffe_id("spiffe://td/a//b"));
        assert!(!is_valid_spiffe_id("spiffe://td/./b"));
        assert!(!is_valid_spiffe_id("spiffe://td/a/.."));
        assert!(!is_valid_spiffe_id("spiffe://td:80/a"));
        assert!(!is_valid_spiffe_id("spiffe://td/a?b"));
        assert!(!is_valid_spiffe_id("http://td/a"));
        assert!(!is_valid_spiffe_id(&format!(
            "spiffe://td/{}",
            "a".repeat(2048)
        )));
    }

    #[test]
    fn path_validation_agrees_with_a_split_by_segment() {
        fn by_segments(path: &[u8]) -> bool {
            let Some(rest) = path.strip_prefix(b"/") else {
                return path.is_empty();
            };
            rest.split(|&b| b == b'/').all(|seg| {
                !seg.is_empty()
                    && seg != b"."
                    && seg != b".."
                    && seg
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            })
        }
        const ALPHABET: &[u8] = b"/.aZ9_-?";
        let mut path = Vec::new();
        for len in 0..=6u32 {
            for mut n in 0..ALPHABET.len().pow(len) {
                path.clear();
                for _ in 0..len {
                    path.push(ALPHABET[n % ALPHABET.len()]);
                    n /= ALPHABET.len();
                }
                assert_eq!(is_valid_path(&path), by_segments(&path), "{path:?}");
            }
        }
    }

    #[test]
    fn spiffe_id_parts_and_errors() {
        let id = SpiffeId::parse("spiffe://prod.example.com/ns/a/sa/b").unwrap();
        assert_eq!(id.trust_domain(), "prod.example.com");
        assert_eq!(id.path(), "/ns/a/sa/b");
        assert_eq!(id.as_str(), "spiffe://prod.example.com/ns/a/sa/b");
        let td = SpiffeId::parse("spiffe://td").unwrap();
        assert_eq!((td.trust_domain(), td.path()), ("td", ""));
        assert_eq!(SpiffeId::parse("http://td/a"), Err(SpiffeIdError::NoScheme));
        assert_eq!(
            SpiffeId::parse("spiffe:///a"),
            Err(SpiffeIdError::BadTrustDomain)
        );
        assert_eq!(
            SpiffeId::parse("spiffe://TD"),
            Err(SpiffeIdError::BadTrustDomain)
        );
        assert_eq!(
            SpiffeId::parse("spiffe://td/a//b"),
            Err(SpiffeIdError::BadPath)
        );
        let long = format!("spiffe://td/{}", "a".repeat(2048));
        assert_eq!(SpiffeId::parse(&long), Err(SpiffeIdError::TooLong));
    }
}
