//! Request targets: splitting off query and fragment, and path
//! normalization (spec section 7, steps 1 to 7), done one step at a time.

/// The longest path (before the query) that is accepted, in bytes.
const MAX_PATH_LEN: usize = 8192;

/// Step 1: splits a raw request target into its path and its query (`None`
/// without `?`). A fragment (from the first `#`) is dropped first, as in a
/// URI, so a `?` inside the fragment starts no query.
pub(crate) fn split_target(target: &str) -> (&str, Option<&str>) {
    let without_fragment = match target.find('#') {
        Some(i) => &target[..i],
        None => target,
    };
    match without_fragment.find('?') {
        Some(i) => (&without_fragment[..i], Some(&without_fragment[i + 1..])),
        None => (without_fragment, None),
    }
}

/// Steps 2 to 7: normalizes the path part of a target. `None` means the
/// path cannot be normalized (`bad-path`). The result is ASCII.
pub(crate) fn normalize(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    // (2) starts with `/`, at most 8192 bytes.
    if bytes.first() != Some(&b'/') || bytes.len() > MAX_PATH_LEN {
        return None;
    }
    // (3) no backslash, space, control byte or byte above 0x7E.
    if bytes
        .iter()
        .any(|&b| b == b'\\' || b == b' ' || b < 0x20 || b == 0x7F || b > 0x7E)
    {
        return None;
    }
    // (4) escapes.
    let decoded = decode_escapes(bytes)?;
    // (5) merge runs of `/`.
    let merged = merge_slashes(&decoded);
    // (6) no `.` or `..` segment followed by `;` (a path parameter).
    if merged
        .split('/')
        .any(|seg| seg.starts_with(".;") || seg.starts_with("..;"))
    {
        return None;
    }
    // (7) dot segments.
    Some(remove_dot_segments(&merged))
}

/// The value of one hex digit.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// An unreserved character of RFC 3986: `A-Z a-z 0-9 - . _ ~`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Step 4: decodes escapes of unreserved characters, upper-cases the hex of
/// the others, rejects malformed escapes and escapes of `/`, `\` or a
/// control byte. The input is printable ASCII (step 3), so is the output.
fn decode_escapes(bytes: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let hi = bytes.get(i + 1).copied().and_then(hex_digit)?;
        let lo = bytes.get(i + 2).copied().and_then(hex_digit)?;
        let value = hi * 16 + lo;
        if value == b'/' || value == b'\\' || value < 0x20 || value == 0x7F {
            return None;
        }
        if is_unreserved(value) {
            out.push(char::from(value));
        } else {
            out.push('%');
            out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
            out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
        }
        i += 3;
    }
    Some(out)
}

/// Step 5: replaces each run of `/` by one `/`.
fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// Step 7: RFC 3986 section 5.2.4, `remove_dot_segments`, transcribed
/// rule by rule (A to E). A `..` at the root stays at the root.
fn remove_dot_segments(path: &str) -> String {
    let mut input: &str = path;
    let mut output = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            // A
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            // A
            input = rest;
        } else if input.starts_with("/./") {
            // B: "/./" becomes "/"
            input = &input[2..];
        } else if input == "/." {
            // B
            input = "/";
        } else if input.starts_with("/../") {
            // C: "/../" becomes "/", and the last output segment goes
            input = &input[3..];
            remove_last_segment(&mut output);
        } else if input == "/.." {
            // C
            input = "/";
            remove_last_segment(&mut output);
        } else if input == "." || input == ".." {
            // D
            input = "";
        } else {
            // E: move the first segment (with its leading `/`) to the output
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    if output.is_empty() {
        output.push('/');
    }
    output
}

/// Removes the last segment of `output` and the `/` before it.
fn remove_last_segment(output: &mut String) {
    match output.rfind('/') {
        Some(i) => output.truncate(i),
        None => output.clear(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Option<String> {
        normalize(p)
    }

    #[test]
    fn splits_query_and_fragment() {
        assert_eq!(split_target("/a?x=1"), ("/a", Some("x=1")));
        assert_eq!(split_target("/a?x=1?y"), ("/a", Some("x=1?y")));
        assert_eq!(split_target("/a?x=1#f"), ("/a", Some("x=1")));
        assert_eq!(split_target("/a#f?x=1"), ("/a", None));
        assert_eq!(split_target("/a?"), ("/a", Some("")));
        assert_eq!(split_target("/a"), ("/a", None));
    }

    #[test]
    fn normalizes() {
        assert_eq!(norm("/a//../b").as_deref(), Some("/b"));
        assert_eq!(norm("/").as_deref(), Some("/"));
        assert_eq!(norm("//a///b").as_deref(), Some("/a/b"));
        assert_eq!(norm("/a/./b").as_deref(), Some("/a/b"));
        assert_eq!(norm("/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(norm("/a/b/.").as_deref(), Some("/a/b/"));
        assert_eq!(norm("/a/").as_deref(), Some("/a/"));
        assert_eq!(norm("/..").as_deref(), Some("/"));
        assert_eq!(norm("/../../x").as_deref(), Some("/x"));
        assert_eq!(norm("/a/..").as_deref(), Some("/"));
        assert_eq!(norm("/.a/..b/...").as_deref(), Some("/.a/..b/..."));
        assert_eq!(norm("/%61/%62").as_deref(), Some("/a/b"));
        assert_eq!(norm("/public/%2e%2E/admin").as_deref(), Some("/admin"));
        assert_eq!(norm("/a%2fb"), None);
        assert_eq!(norm("/a%3a%7e%20").as_deref(), Some("/a%3A~%20"));
        assert_eq!(norm("/%25").as_deref(), Some("/%25"));
        assert_eq!(norm("/%c3%a9").as_deref(), Some("/%C3%A9"));
        assert_eq!(norm("/a/%2e"), Some("/a/".to_string()));
        // Only a `.` or `..` segment before `;` is refused (step 6).
        assert_eq!(norm("/a;/..").as_deref(), Some("/"));
        assert_eq!(norm("/a/...;x/b;c").as_deref(), Some("/a/...;x/b;c"));
        assert_eq!(norm("/a/x.;/..%3B").as_deref(), Some("/a/x.;/..%3B"));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "a",
            "public",
            "/a b",
            "/a\\b",
            "/a\tb",
            "/a\u{7f}",
            "/é",
            "/%",
            "/%2",
            "/%zz",
            "/%2F",
            "/%2f",
            "/%5c",
            "/%5C",
            "/%00",
            "/%1f",
            "/%7F",
            "/%7f",
            "/public/..;/admin",
            "/.;x",
            "/a/..;",
            "/a/.;/b",
            "/%2e%2E;/b",
            "/a/.%2e;x/b",
            "//..;/x",
            "/a/..;/../b",
        ] {
            assert_eq!(norm(bad), None, "{bad:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert!(norm(&long).is_some());
        let too_long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(norm(&too_long), None);
    }

    proptest::proptest! {
        #[test]
        fn normalized_paths_are_fixed_points(raw in r"[/a.%2eEfF5c?#b~-]{0,24}") {
            let (p, _) = split_target(&raw);
            if let Some(n) = normalize(p) {
                proptest::prop_assert!(n.starts_with('/'));
                proptest::prop_assert!(!n.contains("//"));
                proptest::prop_assert!(!n.contains("/./") && !n.contains("/../"));
                proptest::prop_assert!(!n.ends_with("/.") && !n.ends_with("/.."));
                proptest::prop_assert_eq!(normalize(&n), Some(n.clone()));
            }
        }

        #[test]
        fn never_panics(raw in r"\PC{0,40}") {
            let (p, _) = split_target(&raw);
            let _ = normalize(p);
        }
    }
}
