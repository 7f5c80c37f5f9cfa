//! Classifying a peer once per connection: which `from` clauses it satisfies.

use crate::bundle::{Bundle, DfaSet, NetTable, PeerClass};
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
    let Some(rest) = id.strip_prefix("spiffe://") else {
        return false;
    };
    if id.len() > MAX_SPIFFE_ID_LEN {
        return false;
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
        return false;
    }
    if path.is_empty() {
        return true;
    }
    path[1..].split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

/// Calls `f` with the global id of every pattern of `set` that matches all of `hay`.
#[inline]
pub(crate) fn for_each_match(
    set: &DfaSet<'_>,
    hay: impl Iterator<Item = u8> + Clone,
    mut f: impl FnMut(u32),
) {
    for (dfa, &first) in set.dfas.iter().zip(&set.first) {
        let Ok(mut s) = dfa.start_state(&start::Config::new().anchored(Anchored::Yes)) else {
            continue;
        };
        let mut dead = false;
        for b in hay.clone() {
            s = dfa.next_state(s, b);
            if dfa.is_special_state(s) && (dfa.is_dead_state(s) || dfa.is_quit_state(s)) {
                dead = true;
                break;
            }
        }
        if dead {
            continue;
        }
        s = dfa.next_eoi_state(s);
        if dfa.is_match_state(s) {
            for i in 0..dfa.match_len(s) {
                f(first + dfa.match_pattern(s, i).as_u32());
            }
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
            // length limit needs checking here.
            if let Some(rest) = id
                .strip_prefix("spiffe://")
                .filter(|_| id.len() <= MAX_SPIFFE_ID_LEN)
            {
                let (td, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                if let Ok(i) = self.identities.binary_search_by(|t| t.trust_domain.cmp(td)) {
                    let domain = &self.identities[i];
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
}
