//! Matching a request against a route set: one pass of the path automata,
//! then the candidates' method, header and query conditions in precedence
//! order. Pure functions; no allocation.

use crate::bundle::{Bundle, Cond, Dfa, RouteSet, ValueCond};
use crate::literals::At;
use crate::peer::for_each_match;
use crate::request::Headers;
use crate::trace::{Event, Trace};
use regex_automata::dfa::Automaton;
use regex_automata::util::start;
use regex_automata::Anchored;

/// Percent-decodes bytes lazily; a malformed escape stays as written and
/// `+` stays `+` (spec section 7, queries).
#[derive(Clone)]
pub(crate) struct PctDecoded<'a> {
    bytes: &'a [u8],
    i: usize,
}

impl<'a> PctDecoded<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        PctDecoded { bytes, i: 0 }
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl Iterator for PctDecoded<'_> {
    type Item = u8;

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.i)?;
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                self.bytes.get(self.i + 1).copied().and_then(hex),
                self.bytes.get(self.i + 2).copied().and_then(hex),
            ) {
                self.i += 3;
                return Some(h * 16 + l);
            }
        }
        self.i += 1;
        Some(b)
    }
}

/// Runs a single-pattern value DFA over `bytes` (whole match).
#[inline]
fn dfa_whole_match(dfa: &Dfa<'_>, bytes: impl Iterator<Item = u8>) -> bool {
    let Ok(mut s) = dfa.start_state(&start::Config::new().anchored(Anchored::Yes)) else {
        return false;
    };
    for b in bytes {
        s = dfa.next_state(s, b);
        if dfa.is_special_state(s) && (dfa.is_dead_state(s) || dfa.is_quit_state(s)) {
            return false;
        }
    }
    dfa.is_match_state(dfa.next_eoi_state(s))
}

/// A DFA walk that can be fed in pieces.
struct Walk<'d, 'a> {
    dfa: &'d Dfa<'a>,
    state: Option<regex_automata::util::primitives::StateID>,
}

impl Walk<'_, '_> {
    fn feed(&mut self, bytes: &[u8]) {
        let Some(mut s) = self.state else { return };
        for &b in bytes {
            s = self.dfa.next_state(s, b);
            if self.dfa.is_special_state(s)
                && (self.dfa.is_dead_state(s) || self.dfa.is_quit_state(s))
            {
                self.state = None;
                return;
            }
        }
        self.state = Some(s);
    }

    fn is_match(&self) -> bool {
        self.state
            .is_some_and(|s| self.dfa.is_match_state(self.dfa.next_eoi_state(s)))
    }
}

impl Bundle<'_> {
    fn header_holds(&self, cond: &Cond<'_>, headers: &dyn Headers) -> bool {
        match cond.value {
            ValueCond::Present => {
                let mut found = false;
                headers.for_each_value(cond.name, &mut |_| found = true);
                found
            }
            ValueCond::Exact(expected) => {
                let mut found = false;
                let mut pos = 0usize;
                let mut ok = true;
                headers.for_each_value(cond.name, &mut |v| {
                    if !ok {
                        return;
                    }
                    if found {
                        if expected.get(pos) != Some(&b',') {
                            ok = false;
                            return;
                        }
                        pos += 1;
                    }
                    found = true;
                    match expected.get(pos..pos + v.len()) {
                        Some(part) if part == v => pos += v.len(),
                        _ => ok = false,
                    }
                });
                found && ok && pos == expected.len()
            }
            ValueCond::Regex(i) => {
                let Some(dfa) = self.value_dfas.get(i as usize) else {
                    return false;
                };
                let mut walk = Walk {
                    dfa,
                    state: dfa
                        .start_state(&start::Config::new().anchored(Anchored::Yes))
                        .ok(),
                };
                let mut found = false;
                headers.for_each_value(cond.name, &mut |v| {
                    if found {
                        walk.feed(b",");
                    }
                    found = true;
                    walk.feed(v);
                });
                found && walk.is_match()
            }
        }
    }

    fn query_holds(&self, cond: &Cond<'_>, query: Option<&[u8]>) -> bool {
        let Some(query) = query else { return false };
        let Some(value) = query.split(|&b| b == b'&').find_map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            PctDecoded::new(k).eq(cond.name.bytes()).then_some(v)
        }) else {
            return false;
        };
        match cond.value {
            ValueCond::Present => true,
            ValueCond::Exact(expected) => PctDecoded::new(value).eq(expected.iter().copied()),
            ValueCond::Regex(i) => self
                .value_dfas
                .get(i as usize)
                .is_some_and(|dfa| dfa_whole_match(dfa, PctDecoded::new(value))),
        }
    }

    /// The rank of the highest-precedence route of `set` that matches, if any.
    pub(crate) fn match_route<T: Trace + ?Sized>(
        &self,
        set: &RouteSet<'_>,
        request: &RouteRequest<'_>,
        candidates: &mut Vec<u32>,
        trace: &mut T,
    ) -> Option<u32> {
        // Precedence order is literal routes, then regex routes, then
        // routes without a path; each group's candidates are sorted by rank.
        if !set.literal.is_empty() {
            candidates.clear();
            literal_candidates(set, request.path, candidates);
            candidates.sort_unstable();
            if let Some(rank) = self.first_taken(set, candidates, request, trace) {
                return Some(rank);
            }
        }
        if !set.regex.dfas.is_empty() {
            candidates.clear();
            for_each_match(&set.regex, request.path.iter().copied(), |p| {
                if let Some(ranks) = set.regex_routes.get(p as usize) {
                    candidates.extend_from_slice(ranks);
                }
            });
            candidates.sort_unstable();
            if let Some(rank) = self.first_taken(set, candidates, request, trace) {
                return Some(rank);
            }
        }
        self.first_taken(set, &set.any_routes, request, trace)
    }

    /// The first route of `ranks` whose method, header and query conditions hold.
    fn first_taken<T: Trace + ?Sized>(
        &self,
        set: &RouteSet<'_>,
        ranks: &[u32],
        request: &RouteRequest<'_>,
        trace: &mut T,
    ) -> Option<u32> {
        for &rank in ranks {
            let Some(route) = set.routes.get(rank as usize) else {
                continue;
            };
            let why = if !route.methods.is_empty() && !route.methods.contains(&request.method) {
                "method"
            } else if !route
                .headers
                .iter()
                .all(|c| self.header_holds(c, request.headers))
            {
                "header"
            } else if !route
                .queries
                .iter()
                .all(|c| self.query_holds(c, request.query))
            {
                "query"
            } else {
                ""
            };
            let taken = why.is_empty();
            trace.event(Event::RouteCandidate {
                name: route.name.unwrap_or("(implicit)"),
                taken,
                why: if taken { "matched" } else { why },
            });
            if taken {
                return Some(rank);
            }
        }
        None
    }
}

/// Appends the ranks of the exact and prefix routes of `set` that match
/// `path` (unsorted): a prefix `p` matches `p` itself and every path that
/// starts with `p` then `/`, an exact path only itself.
#[inline]
pub(crate) fn literal_candidates(set: &RouteSet<'_>, path: &[u8], candidates: &mut Vec<u32>) {
    set.literal.for_each_prefix(path, |[exact, prefix], at| {
        if at == At::Whole {
            candidates.extend_from_slice(exact);
        }
        candidates.extend_from_slice(prefix);
    });
}

/// The parts of an HTTP request that route matching looks at.
#[derive(Clone, Copy)]
pub(crate) struct RouteRequest<'r> {
    /// The normalized path.
    pub(crate) path: &'r [u8],
    pub(crate) method: &'r str,
    pub(crate) headers: &'r dyn Headers,
    /// The raw query, without `?`.
    pub(crate) query: Option<&'r [u8]>,
}

/// Whether the request is gRPC by its headers: its `content-type` values,
/// joined with `,`, start with `application/grpc`, case-insensitively
/// (spec section 4, "Answers").
pub fn is_grpc_content_type(headers: &dyn Headers) -> bool {
    const WANT: &[u8] = b"application/grpc";
    let mut seen = 0usize;
    let mut ok = true;
    let mut first = true;
    headers.for_each_value("content-type", &mut |v| {
        if !ok || seen >= WANT.len() {
            return;
        }
        if !first {
            // Joined with `,`: a comma can never match the prefix.
            ok = false;
            return;
        }
        first = false;
        for &b in v {
            if seen == WANT.len() {
                break;
            }
            if b.to_ascii_lowercase() != WANT[seen] {
                ok = false;
                return;
            }
            seen += 1;
        }
    });
    ok && seen == WANT.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_decoding_keeps_malformed_escapes() {
        let d: Vec<u8> = PctDecoded::new(b"a%41+%zz%4").collect();
        assert_eq!(d, b"aA+%zz%4");
    }

    #[test]
    fn grpc_content_type() {
        let h = [("Content-Type", "Application/GRPC+proto")];
        assert!(is_grpc_content_type(&h));
        let h = [("content-type", "application/json")];
        assert!(!is_grpc_content_type(&h));
        let h = [("content-type", "application/gr")];
        assert!(!is_grpc_content_type(&h));
        let h: [(&str, &str); 0] = [];
        assert!(!is_grpc_content_type(&h));
    }
}
