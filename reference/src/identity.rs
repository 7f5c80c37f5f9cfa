//! SPIFFE IDs and identity patterns (spec section 4, "Identity patterns"),
//! matched segment by segment without regexes.

/// The longest SPIFFE ID accepted, in bytes.
const MAX_ID_LEN: usize = 2048;

/// A SPIFFE ID (or pattern) split into trust domain and path segments.
#[derive(Debug, PartialEq, Eq)]
struct Parsed<'a> {
    trust_domain: &'a str,
    segments: Vec<&'a str>,
}

/// A trust domain: one or more of `[a-z0-9._-]`.
fn is_trust_domain(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// A path segment: one or more of `[A-Za-z0-9._-]`, not `.` or `..`.
pub(crate) fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Splits `spiffe://TD/seg/...` into its parts, checking the length, the
/// trust domain and, with `is_valid_segment(index, count, segment)`, each
/// segment. A trailing `/` makes an empty last segment and so fails. Query,
/// fragment, port and user info need `?`, `#`, `:` or `@`, which neither
/// the trust domain nor a segment may hold.
fn split<'a>(
    s: &'a str,
    is_valid_segment: impl Fn(usize, usize, &str) -> bool,
) -> Option<Parsed<'a>> {
    if s.len() > MAX_ID_LEN {
        return None;
    }
    let rest = s.strip_prefix("spiffe://")?;
    let (trust_domain, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if !is_trust_domain(trust_domain) {
        return None;
    }
    let segments: Vec<&str> = match path {
        Some(p) => p.split('/').collect(),
        None => Vec::new(),
    };
    let count = segments.len();
    if !segments
        .iter()
        .enumerate()
        .all(|(i, seg)| is_valid_segment(i, count, seg))
    {
        return None;
    }
    Some(Parsed {
        trust_domain,
        segments,
    })
}

/// Whether `id` is a valid SPIFFE ID.
#[cfg(test)]
fn is_spiffe_id(id: &str) -> bool {
    parse_id(id).is_some()
}

/// Parses a SPIFFE ID.
fn parse_id(id: &str) -> Option<Parsed<'_>> {
    split(id, |_, _, seg| is_segment(seg))
}

/// Parses a pattern: a SPIFFE ID whose segments may be `*`, and whose last
/// segment may be `**`.
fn parse_pattern(pattern: &str) -> Option<Parsed<'_>> {
    split(pattern, |i, count, seg| {
        seg == "*" || (seg == "**" && i + 1 == count) || is_segment(seg)
    })
}

/// Whether the verified peer identity `identity` matches `pattern`.
///
/// `"*"` matches every identity. Otherwise only a valid SPIFFE ID can
/// match: same trust domain (literal), then segment by segment, `*` being
/// exactly one segment and a trailing `**` one or more. An invalid pattern
/// matches nothing.
pub(crate) fn matches(pattern: &str, identity: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (Some(p), Some(id)) = (parse_pattern(pattern), parse_id(identity)) else {
        return false;
    };
    if p.trust_domain != id.trust_domain {
        return false;
    }
    for (i, pseg) in p.segments.iter().enumerate() {
        if *pseg == "**" && i + 1 == p.segments.len() {
            // One or more remaining segments.
            return id.segments.len() > i;
        }
        match id.segments.get(i) {
            Some(seg) if *pseg == "*" || pseg == seg => {}
            _ => return false,
        }
    }
    id.segments.len() == p.segments.len()
}

/// The pattern that `namespace N` stands for under trust domain `td`.
pub(crate) fn namespace_pattern(td: &str, namespace: &str) -> String {
    format!("spiffe://{td}/ns/{namespace}/sa/*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids() {
        for ok in [
            "spiffe://prod.example.com/ns/a/sa/b",
            "spiffe://td",
            "spiffe://t-d_1.x/A.b_c-D",
            "spiffe://td/...",
        ] {
            assert!(is_spiffe_id(ok), "{ok}");
        }
        for bad in [
            "",
            "*",
            "spiffe://",
            "spiffe:///a",
            "SPIFFE://td/a",
            "spiffe://TD/a",
            "spiffe://td/",
            "spiffe://td/a/",
            "spiffe://td//a",
            "spiffe://td/./a",
            "spiffe://td/a/..",
            "spiffe://td:8080/a",
            "spiffe://user@td/a",
            "spiffe://td/a?x",
            "spiffe://td/a#f",
            "spiffe://td/a b",
            "spiffe://td/é",
            "https://td/a",
        ] {
            assert!(!is_spiffe_id(bad), "{bad}");
        }
        let long = format!("spiffe://td/{}", "a".repeat(MAX_ID_LEN - 12));
        assert_eq!(long.len(), MAX_ID_LEN);
        assert!(is_spiffe_id(&long));
        assert!(!is_spiffe_id(&format!("{long}a")));
    }

    #[test]
    fn patterns() {
        let m = matches;
        assert!(m("*", "anything at all"));
        assert!(m("*", ""));
        assert!(m("spiffe://td/ns/*/sa/r", "spiffe://td/ns/billing/sa/r"));
        assert!(!m("spiffe://td/ns/*/sa/r", "spiffe://td/ns/a/b/sa/r"));
        assert!(m(
            "spiffe://td/ns/batch/**",
            "spiffe://td/ns/batch/sa/cron/x"
        ));
        assert!(m("spiffe://td/ns/batch/**", "spiffe://td/ns/batch/x"));
        assert!(!m("spiffe://td/ns/batch/**", "spiffe://td/ns/batch"));
        assert!(!m("spiffe://td/ns/batch/**", "spiffe://td/ns/other/x"));
        assert!(m("spiffe://td/**", "spiffe://td/a"));
        assert!(!m("spiffe://td/**", "spiffe://td"));
        assert!(m("spiffe://td", "spiffe://td"));
        assert!(!m("spiffe://td", "spiffe://td/a"));
        assert!(!m("spiffe://td/*", "spiffe://td"));
        assert!(m("spiffe://td/a/b", "spiffe://td/a/b"));
        assert!(!m("spiffe://td/a/b", "spiffe://td/a/B"));
        assert!(!m("spiffe://td/a/b", "spiffe://other/a/b"));
        assert!(!m("spiffe://td/a/*", "spiffe://td/a/b/"));
        assert!(!m("spiffe://td/a/*", "spiffe://td/a/.."));
        // `**` only at the end; elsewhere it is no valid pattern.
        assert!(!m("spiffe://td/**/a", "spiffe://td/x/a"));
        // Partial-segment wildcards are not patterns.
        assert!(!m("spiffe://td/a*", "spiffe://td/ab"));
        assert!(!m("spiffe://*/a", "spiffe://td/a"));
    }

    #[test]
    fn namespaces() {
        let p = namespace_pattern("prod.example.com", "monitoring");
        assert!(matches(
            &p,
            "spiffe://prod.example.com/ns/monitoring/sa/prometheus"
        ));
        assert!(!matches(
            &p,
            "spiffe://prod.example.com/ns/monitoring/sa/prometheus/extra"
        ));
        assert!(!matches(
            &p,
            "spiffe://other.example.com/ns/monitoring/sa/prometheus"
        ));
    }
}
