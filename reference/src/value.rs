//! Header values and value conditions (`=`, `~`, `present`), shared by
//! header and query conditions and by path regexes.

use regex::bytes::RegexBuilder;
use sluice_lang::ast::ValueMatch;

/// Size limit for a compiled regex, generous so that every regex the
/// compiler accepts (its automata are bounded at 16 MiB) compiles here too.
const REGEX_SIZE_LIMIT: usize = 256 << 20;

/// The value of header `name` (compared case-insensitively): all its values
/// joined with `,` in order, or `None` when the header is absent.
pub(crate) fn header_value(headers: &[(String, String)], name: &str) -> Option<Vec<u8>> {
    let mut joined: Option<Vec<u8>> = None;
    for (n, v) in headers {
        if n.eq_ignore_ascii_case(name) {
            match &mut joined {
                Some(j) => {
                    j.push(b',');
                    j.extend_from_slice(v.as_bytes());
                }
                None => joined = Some(v.as_bytes().to_vec()),
            }
        }
    }
    joined
}

/// Whether `value` (`None`: absent) satisfies the condition. An absent value
/// satisfies nothing.
pub(crate) fn value_matches(cond: &ValueMatch, value: Option<&[u8]>) -> bool {
    let Some(value) = value else { return false };
    match cond {
        ValueMatch::Exact(s) => value == s.node.as_bytes(),
        ValueMatch::Regex(r) => whole_match(&r.node, value),
        ValueMatch::Present => true,
    }
}

/// Whether the regex `re` (the `regex` crate's syntax) matches all of
/// `haystack`, as `\A(?:re)\z` does. A regex that does not compile matches
/// nothing (a checked policy has none).
pub(crate) fn whole_match(re: &str, haystack: &[u8]) -> bool {
    let build = |pattern: String| {
        RegexBuilder::new(&pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
    };
    // A regex in `(?x)` mode may end in a `#` comment, which would swallow
    // the closing `)\z`; a newline ends such a comment and is otherwise
    // never needed, so it is tried only when the plain form fails.
    let compiled = build(format!(r"\A(?:{re})\z")).or_else(|_| build(format!("\\A(?:{re}\n)\\z")));
    match compiled {
        Ok(regex) => regex.is_match(haystack),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_lang::ast::{Span, Spanned};

    fn s(v: &str) -> Spanned<String> {
        Spanned::new(v.to_string(), Span::default())
    }

    #[test]
    fn joins_headers() {
        let h = vec![
            ("X-List".to_string(), "a".to_string()),
            ("other".to_string(), "z".to_string()),
            ("x-list".to_string(), "b".to_string()),
        ];
        assert_eq!(header_value(&h, "x-LIST"), Some(b"a,b".to_vec()));
        assert_eq!(header_value(&h, "missing"), None);
        let empty = vec![("e".to_string(), String::new())];
        assert_eq!(header_value(&empty, "e"), Some(Vec::new()));
    }

    #[test]
    fn conditions() {
        assert!(value_matches(&ValueMatch::Exact(s("acme")), Some(b"acme")));
        assert!(!value_matches(&ValueMatch::Exact(s("acme")), Some(b"ACME")));
        assert!(!value_matches(&ValueMatch::Exact(s("")), None));
        assert!(value_matches(&ValueMatch::Present, Some(b"")));
        assert!(!value_matches(&ValueMatch::Present, None));
        assert!(value_matches(
            &ValueMatch::Regex(s("v[0-9]+")),
            Some(b"v12")
        ));
        assert!(!value_matches(
            &ValueMatch::Regex(s("v[0-9]+")),
            Some(b"v12-beta")
        ));
        assert!(!value_matches(&ValueMatch::Regex(s("a|b")), Some(b"ab")));
        assert!(!value_matches(&ValueMatch::Regex(s(".*")), None));
    }

    #[test]
    fn regexes() {
        assert!(whole_match("a|b", b"b"));
        assert!(!whole_match("a", b"ba"));
        assert!(whole_match("(?x) a b # comment", b"ab"));
        assert!(!whole_match("(", b"("));
        assert!(whole_match(".", "é".as_bytes()));
        assert!(!whole_match(".", &[0xff]));
        assert!(whole_match("(?-u:.)", &[0xff]));
        assert!(whole_match("(?m)a$", b"a"));
        assert!(!whole_match("(?m)a$", b"a\n"));
    }
}
