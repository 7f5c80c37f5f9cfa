//! Patterns to automata: how path conditions, identity patterns, host
//! patterns and value regexes become regex-automata dense DFAs.
//!
//! Every DFA is anchored (`StartKind::Anchored`) and reports, at the end of
//! input, every pattern that matches the whole input (`MatchKind::All`).

use crate::config::Config;
use crate::ir::PathCond;
use regex_automata::dfa::{dense, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::{util::syntax, MatchKind};

/// A SPIFFE ID path segment: `[A-Za-z0-9._-]+` but not `.` or `..`. With
/// it, an automaton match implies a valid SPIFFE ID (given the length
/// limit), so the runtime needs no separate validation pass.
pub const SEGMENT: &str =
    r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)";

/// The regex (whole-input semantics) for a route's path condition.
pub fn path_regex(cond: &PathCond) -> String {
    match cond {
        PathCond::Any => r"(?s:.)*".to_string(),
        PathCond::Exact(p) => regex_syntax::escape(p),
        PathCond::Prefix(p) => format!(r"{}(?:/(?s:.)*)?", regex_syntax::escape(p)),
        PathCond::Regex(r) => group(r),
    }
}

/// `R` as a group `(?:R)`. A verbose-mode regex that ends in a `#`
/// comment would swallow the `)`, so it gets a newline (whitespace in that
/// mode) first.
pub fn group(r: &str) -> String {
    let plain = format!("(?:{r})");
    if regex_syntax::Parser::new().parse(&plain).is_err()
        && regex_syntax::Parser::new().parse(r).is_ok()
    {
        format!("(?:{r}\n)")
    } else {
        plain
    }
}

/// An identity pattern other than `"*"` split into its trust domain and
/// the regex for the rest of the ID (the path, possibly empty).
pub fn identity_parts(pattern: &str) -> (String, String) {
    let full = identity_regex(pattern);
    let rest = pattern.strip_prefix("spiffe://").unwrap_or(pattern);
    let td = rest.split('/').next().unwrap_or("");
    let prefix_len = "spiffe://".len() + regex_syntax::escape(td).len();
    (td.to_string(), full[prefix_len..].to_string())
}

/// How an identity pattern built on a literal path matches (see
/// [`identity_literal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityLiteral {
    /// The path after the trust domain is exactly the literal.
    Whole,
    /// The literal, `/` and one segment (the pattern ends in `/*`).
    OneSegment,
    /// The literal and one or more `/`-segments (the pattern ends in `/**`).
    Segments,
}

/// Whether `seg` is a valid SPIFFE ID path segment (what [`SEGMENT`] matches).
fn is_segment(seg: &str) -> bool {
    !seg.is_empty()
        && seg != "."
        && seg != ".."
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// An identity pattern other than `"*"` that the runtime matches in its
/// literal table: its trust domain, the literal path after it (empty, or
/// `/` and valid segments) and how the rest matches. `None` for a pattern
/// with a wildcard before its last segment (or a segment that is not a
/// valid SPIFFE segment), which stays in an automaton. Over valid SPIFFE
/// IDs, the table matches exactly what [`identity_regex`] does.
pub fn identity_literal(pattern: &str) -> Option<(String, String, IdentityLiteral)> {
    let rest = pattern.strip_prefix("spiffe://").unwrap_or(pattern);
    let (td, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if path.is_empty() {
        return Some((td.to_string(), String::new(), IdentityLiteral::Whole));
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let (last, init) = segments.split_last()?;
    if !init.iter().all(|s| is_segment(s)) {
        return None;
    }
    let literal = |n: usize| path[..n].to_string();
    let before_last = path.len() - last.len() - 1;
    match *last {
        "*" => Some((
            td.to_string(),
            literal(before_last),
            IdentityLiteral::OneSegment,
        )),
        "**" => Some((
            td.to_string(),
            literal(before_last),
            IdentityLiteral::Segments,
        )),
        lit if is_segment(lit) => Some((td.to_string(), path.to_string(), IdentityLiteral::Whole)),
        _ => None,
    }
}

/// The regex for an identity pattern other than `"*"` (which matches every
/// verified identity and is handled without an automaton). Assumes the
/// pattern is valid; matched only against valid SPIFFE IDs.
pub fn identity_regex(pattern: &str) -> String {
    let rest = pattern.strip_prefix("spiffe://").unwrap_or(pattern);
    let (td, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut re = String::from("spiffe://");
    re.push_str(&regex_syntax::escape(td));
    for seg in path.split('/').skip(1) {
        match seg {
            "*" => {
                re.push('/');
                re.push_str(SEGMENT);
            }
            "**" => {
                re.push_str("(?:/");
                re.push_str(SEGMENT);
                re.push_str(")+");
            }
            lit => {
                re.push('/');
                re.push_str(&regex_syntax::escape(lit));
            }
        }
    }
    re
}

/// The regex for a host pattern other than `"*"`, over the lowercase host
/// without a trailing dot, READ BACKWARDS (bytes, not UTF-8): reversed,
/// wildcard patterns share their literal suffix as a trie and end in one
/// "anything" state, which keeps the automaton small and quick to build.
pub fn host_regex(pattern: &str) -> String {
    let reversed = |s: &str| s.bytes().rev().map(char::from).collect::<String>();
    match pattern.strip_prefix("*.") {
        Some(suffix) => format!(r"{}\.(?s-u:.)+", regex_syntax::escape(&reversed(suffix))),
        None => regex_syntax::escape(&reversed(pattern)),
    }
}

/// Which syntax a set of patterns is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// User regexes and paths: Rust `regex` syntax, Unicode.
    Unicode,
    /// Hosts: byte-oriented (haystacks need not be UTF-8).
    Bytes,
}

/// Whether `pattern` is valid in byte mode (no Unicode classes).
pub fn parses_as_bytes(pattern: &str) -> bool {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .is_ok()
}

// The error type is regex-automata's own; boxing it would only move the cost.
#[allow(clippy::result_large_err)]
/// Builds one anchored, all-matches DFA over `patterns` (pattern `i` has
/// `PatternID` `i`) within the configured size limits.
pub fn build_dfa(
    patterns: &[String],
    flavor: Flavor,
    config: &Config,
) -> Result<dense::DFA<Vec<u32>>, regex_automata::dfa::dense::BuildError> {
    let syntax = match flavor {
        Flavor::Unicode => syntax::Config::new(),
        Flavor::Bytes => syntax::Config::new().utf8(false).unicode(false),
    };
    dense::Builder::new()
        .configure(
            dense::Config::new()
                .match_kind(MatchKind::All)
                .start_kind(StartKind::Anchored)
                .unicode_word_boundary(false)
                .dfa_size_limit(Some(config.dfa_size_limit))
                .determinize_size_limit(Some(config.determinize_size_limit)),
        )
        .syntax(syntax)
        .thompson(
            thompson::Config::new()
                .utf8(flavor == Flavor::Unicode)
                .nfa_size_limit(Some(config.determinize_size_limit)),
        )
        .build_many(patterns)
}

/// Checks that `regex` compiles into a DFA within the size limit; the error
/// is a lowercase message fit for an `invalid-regex` diagnostic.
pub fn check_regex(regex: &str, config: &Config) -> Result<(), String> {
    if let Err(e) = regex_syntax::Parser::new().parse(regex) {
        return Err(format!(
            "`{regex}` is not a valid regex: {}",
            first_line(&e.to_string())
        ));
    }
    build_dfa(&[group(regex)], Flavor::Unicode, config).map(|_| ()).map_err(|e| {
        if e.to_string().contains("word boundar") {
            format!("`{regex}` uses a Unicode word boundary, which a DFA cannot match; write `(?-u:\\b)` for an ASCII one")
        } else {
            format!("`{regex}` cannot be compiled into an automaton within the size limit: {e}")
        }
    })
}

fn first_line(s: &str) -> String {
    let line = s.lines().last().unwrap_or(s).trim();
    line.strip_prefix("error:")
        .unwrap_or(line)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::dfa::Automaton;
    use regex_automata::util::start;
    use regex_automata::Anchored;

    fn whole_matches(dfa: &dense::DFA<Vec<u32>>, hay: &[u8]) -> Vec<usize> {
        let mut s = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .unwrap();
        for &b in hay {
            s = dfa.next_state(s, b);
        }
        s = dfa.next_eoi_state(s);
        let mut out = Vec::new();
        if dfa.is_match_state(s) {
            for i in 0..dfa.match_len(s) {
                out.push(dfa.match_pattern(s, i).as_usize());
            }
        }
        out.sort();
        out
    }

    #[test]
    fn paths_match_whole_input_only() {
        let pats: Vec<String> = [
            PathCond::Exact("/a".into()),
            PathCond::Prefix("/a".into()),
            PathCond::Regex("/a/[0-9]+".into()),
            PathCond::Any,
        ]
        .iter()
        .map(path_regex)
        .collect();
        let dfa = build_dfa(&pats, Flavor::Unicode, &Config::default()).unwrap();
        assert_eq!(whole_matches(&dfa, b"/a"), vec![0, 1, 3]);
        assert_eq!(whole_matches(&dfa, b"/ab"), vec![3]);
        assert_eq!(whole_matches(&dfa, b"/a/12"), vec![1, 2, 3]);
        assert_eq!(whole_matches(&dfa, b"/a/12x"), vec![1, 3]);
    }

    #[test]
    fn identities_and_hosts() {
        let pats = vec![
            identity_regex("spiffe://td/ns/*/sa/x"),
            identity_regex("spiffe://td/ns/b/**"),
            identity_regex("spiffe://td"),
        ];
        let dfa = build_dfa(&pats, Flavor::Unicode, &Config::default()).unwrap();
        assert_eq!(whole_matches(&dfa, b"spiffe://td/ns/b/sa/x"), vec![0, 1]);
        assert_eq!(
            whole_matches(&dfa, b"spiffe://td/ns/b"),
            Vec::<usize>::new()
        );
        assert_eq!(whole_matches(&dfa, b"spiffe://td"), vec![2]);
        // Dot segments never match a wildcard.
        assert_eq!(
            whole_matches(&dfa, b"spiffe://td/ns/../sa/x"),
            Vec::<usize>::new()
        );
        assert_eq!(
            whole_matches(&dfa, b"spiffe://td/ns/b/."),
            Vec::<usize>::new()
        );
        assert_eq!(whole_matches(&dfa, b"spiffe://td/ns/.a/sa/x"), vec![0]);
        let hosts = vec![host_regex("*.example.com"), host_regex("example.com")];
        let dfa = build_dfa(&hosts, Flavor::Bytes, &Config::default()).unwrap();
        let rev = |s: &str| s.bytes().rev().collect::<Vec<u8>>();
        assert_eq!(whole_matches(&dfa, &rev("a.b.example.com")), vec![0]);
        assert_eq!(whole_matches(&dfa, &rev("example.com")), vec![1]);
        assert_eq!(
            whole_matches(&dfa, &rev(".example.com")),
            Vec::<usize>::new()
        );
        assert_eq!(whole_matches(&dfa, &rev("a..example.com")), vec![0]);
        assert_eq!(
            whole_matches(&dfa, &rev("xexample.com")),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn identity_literals_match_what_their_regexes_match() {
        let patterns = [
            "spiffe://td",
            "spiffe://td/*",
            "spiffe://td/**",
            "spiffe://td/ns",
            "spiffe://td/ns/*",
            "spiffe://td/ns/**",
            "spiffe://td/ns/a/sa/b",
            "spiffe://td/ns/a/sa/*",
            "spiffe://td/ns/.a/**",
            "spiffe://td/ns/*/sa/b",
            "spiffe://td/**/b",
        ];
        let ids = [
            "spiffe://td",
            "spiffe://td/ns",
            "spiffe://td/ns/a",
            "spiffe://td/ns/a/sa",
            "spiffe://td/ns/a/sa/b",
            "spiffe://td/ns/a/sa/b/c",
            "spiffe://td/ns/.a/x",
            "spiffe://td/ns/.a",
            "spiffe://td/x/b",
            "spiffe://td/ns/ns",
        ];
        for p in patterns {
            let dfa = build_dfa(&[identity_regex(p)], Flavor::Bytes, &Config::default()).unwrap();
            let Some((td, key, how)) = identity_literal(p) else {
                assert!(p.contains("*/"), "{p} should be a literal");
                continue;
            };
            assert_eq!(td, "td");
            for id in ids {
                let path = &id["spiffe://td".len()..];
                let table = match how {
                    IdentityLiteral::Whole => path == key,
                    IdentityLiteral::OneSegment => path
                        .strip_prefix(key.as_str())
                        .and_then(|r| r.strip_prefix('/'))
                        .is_some_and(|r| !r.contains('/')),
                    IdentityLiteral::Segments => path
                        .strip_prefix(key.as_str())
                        .is_some_and(|r| r.starts_with('/')),
                };
                let regex = !whole_matches(&dfa, id.as_bytes()).is_empty();
                assert_eq!(table, regex, "{p} against {id}");
            }
        }
        // Wildcards before the last segment, and invalid segments, stay
        // in the automaton.
        assert_eq!(identity_literal("spiffe://td/*/a"), None);
        assert_eq!(identity_literal("spiffe://td/a/../b"), None);
        assert_eq!(identity_literal("spiffe://td/a*"), None);
        assert_eq!(
            identity_literal("spiffe://td/**"),
            Some(("td".into(), String::new(), IdentityLiteral::Segments))
        );
    }

    #[test]
    fn regex_checks() {
        assert!(check_regex("(unclosed", &Config::default()).is_err());
        assert!(check_regex("/api/v[0-9]+/.*", &Config::default()).is_ok());
        assert!(check_regex(r"(?x) /a/ .* # any tail", &Config::default()).is_ok());
        assert!(check_regex(r"\bword", &Config::default())
            .unwrap_err()
            .contains("word boundary"));
        assert!(check_regex(r"(?-u:\b)word", &Config::default()).is_ok());
        assert!(check_regex(r"\w{50}\w{50}", &Config::default().dfa_size_limit(1 << 16)).is_err());
    }
}
