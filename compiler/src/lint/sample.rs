//! Cheap facts about a path regex, read off its HIR without building an
//! automaton: a few paths it surely matches (quick counterexamples for
//! `unreachable-route`), and literal pieces every match holds in order
//! (a quick "does not match" test).

use super::product::Domain;
use regex_syntax::hir::{Class, Hir, HirKind};

/// What is known about one regex without automata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RegexFacts {
    /// Normalized paths the regex matches (may be empty).
    pub(crate) samples: Vec<Vec<u8>>,
    /// Literal runs every match holds, in order, without overlap.
    runs: Vec<Vec<u8>>,
    /// The first run starts every match.
    at_start: bool,
    /// The last run ends every match.
    at_end: bool,
}

impl RegexFacts {
    /// Facts about `regex` (matched against the whole path); nothing is
    /// known when it does not parse.
    pub(crate) fn of(regex: &str) -> RegexFacts {
        let Ok(hir) = regex_syntax::parse(regex) else {
            return RegexFacts::default();
        };
        let mut facts = RegexFacts::default();
        for longer in [false, true] {
            let mut out = Vec::new();
            if sample(&hir, longer, &mut out)
                && Domain::Path.accepts_all(&out)
                && !facts.samples.contains(&out)
            {
                facts.samples.push(out);
            }
        }
        let parts: &[Hir] = match hir.kind() {
            HirKind::Concat(parts) => parts,
            _ => std::slice::from_ref(&hir),
        };
        let mut previous_literal = false;
        for part in parts {
            match part.kind() {
                HirKind::Literal(lit) => {
                    match facts.runs.last_mut() {
                        Some(run) if previous_literal => run.extend_from_slice(&lit.0),
                        _ => facts.runs.push(lit.0.to_vec()),
                    }
                    previous_literal = true;
                }
                _ => previous_literal = false,
            }
        }
        facts.at_start = matches!(parts.first().map(Hir::kind), Some(HirKind::Literal(_)));
        facts.at_end = matches!(parts.last().map(Hir::kind), Some(HirKind::Literal(_)));
        facts
    }

    /// `false` when the regex surely does not match all of `w`.
    pub(crate) fn may_match(&self, w: &[u8]) -> bool {
        let mut runs: &[Vec<u8>] = &self.runs;
        if runs.len() == 1 && self.at_start && self.at_end {
            return w == runs[0].as_slice();
        }
        let (mut lo, mut hi) = (0, w.len());
        if self.at_start {
            let Some((first, rest)) = runs.split_first() else {
                return true;
            };
            if !w.starts_with(first) {
                return false;
            }
            lo = first.len();
            runs = rest;
        }
        if self.at_end {
            let Some((last, rest)) = runs.split_last() else {
                return true;
            };
            if !w.ends_with(last) {
                return false;
            }
            hi = w.len() - last.len();
            runs = rest;
        }
        if lo > hi {
            return false;
        }
        let mut hay = &w[lo..hi];
        for run in runs {
            match find(hay, run) {
                Some(i) => hay = &hay[i + run.len()..],
                None => return false,
            }
        }
        true
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Byte preference for samples: plain segment characters first, `/` and
/// `.` last (they may form `//` or dot segments).
const PREFERRED: &[u8] = b"a0A-_~";

/// Appends to `out` a string `hir` matches: repetitions at their minimum
/// (`longer`: at least once), the first alternative, a plain byte of each
/// class. `false` for look-arounds and classes with no printable ASCII.
fn sample(hir: &Hir, longer: bool, out: &mut Vec<u8>) -> bool {
    match hir.kind() {
        HirKind::Empty => true,
        HirKind::Literal(lit) => {
            out.extend_from_slice(&lit.0);
            true
        }
        HirKind::Class(class) => {
            let has = |b: u8| match class {
                Class::Unicode(c) => c
                    .ranges()
                    .iter()
                    .any(|r| r.start() <= b as char && b as char <= r.end()),
                Class::Bytes(c) => c.ranges().iter().any(|r| r.start() <= b && b <= r.end()),
            };
            let plain = PREFERRED
                .iter()
                .copied()
                .chain((0x21..=0x7Eu8).filter(|b| !b"/.%?#\\".contains(b)));
            match plain.chain([b'/', b'.']).find(|&b| has(b)) {
                Some(b) => {
                    out.push(b);
                    true
                }
                None => false,
            }
        }
        HirKind::Look(_) => false,
        HirKind::Repetition(rep) => {
            let n = if longer {
                rep.min.max(1).min(rep.max.unwrap_or(u32::MAX))
            } else {
                rep.min
            };
            (0..n).all(|_| sample(&rep.sub, longer, out))
        }
        HirKind::Capture(cap) => sample(&cap.sub, longer, out),
        HirKind::Concat(parts) => parts.iter().all(|p| sample(p, longer, out)),
        HirKind::Alternation(alts) => {
            let len = out.len();
            alts.iter().any(|a| {
                out.truncate(len);
                sample(a, longer, out)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(re: &str) -> Vec<String> {
        RegexFacts::of(re)
            .samples
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    #[test]
    fn samples_are_members() {
        assert_eq!(samples("/api/v[0-9]+/.*"), ["/api/v0/", "/api/v0/a"]);
        assert_eq!(samples("/(x|y)/[b-z]{2,3}"), ["/x/bb"]);
        assert_eq!(samples("/a(/.*)?"), ["/a", "/a/a"]);
        // Not normalized, or with look-arounds: no sample.
        assert_eq!(samples("/a//b"), Vec::<String>::new());
        assert_eq!(samples(r"/a\b"), Vec::<String>::new());
        assert_eq!(samples("/[é]"), Vec::<String>::new());
    }

    #[test]
    fn literal_runs_rule_out_paths() {
        let f = RegexFacts::of("/svc1/v[0-9]+/r502/[a-z]+");
        assert!(f.may_match(b"/svc1/v0/r502/a"));
        assert!(!f.may_match(b"/svc1/v0/r2/a"));
        assert!(!f.may_match(b"/svc2/v0/r502/a"));
        let f = RegexFacts::of("/a/[0-9]+/end");
        assert!(f.may_match(b"/a/1/end"));
        assert!(!f.may_match(b"/a/1/end/"));
        assert!(!f.may_match(b"/a/end"));
        let f = RegexFacts::of("/exact");
        assert!(f.may_match(b"/exact") && !f.may_match(b"/exact/"));
        let f = RegexFacts::of("(/a|/b)[0-9]x");
        assert!(f.may_match(b"/b1x") && !f.may_match(b"/b1y"));
        let f = RegexFacts::of("/aa.*aa");
        assert!(!f.may_match(b"/aa") && f.may_match(b"/aaaa"));
    }
}
