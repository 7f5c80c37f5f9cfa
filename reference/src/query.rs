//! Query strings (spec section 7): split on `&`, each pair at its first `=`,
//! keys and values percent-decoded, the first pair with a key wins.

/// The value of the first pair of `query` whose decoded key is `key`.
/// `None` when there is no query or no such pair. A pair without `=` has an
/// empty value.
pub(crate) fn lookup(query: Option<&str>, key: &str) -> Option<Vec<u8>> {
    let query = query?;
    for pair in query.split('&') {
        let (k, v) = match pair.find('=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, ""),
        };
        if percent_decode(k) == key.as_bytes() {
            return Some(percent_decode(v));
        }
    }
    None
}

/// Decodes every `%XX` escape; `+` stays `+`, and a malformed escape stays
/// as written.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|&b| char::from(b).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|&b| char::from(b).to_digit(16));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                // Both digits are below 16, so the value fits in a byte.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(q: &str, k: &str) -> Option<String> {
        lookup(Some(q), k).map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    #[test]
    fn pairs() {
        assert_eq!(get("x=1&mode=fast", "mode").as_deref(), Some("fast"));
        assert_eq!(get("mode=slow&mode=fast", "mode").as_deref(), Some("slow"));
        assert_eq!(get("a&b=1", "a").as_deref(), Some(""));
        assert_eq!(get("a=b=c", "a").as_deref(), Some("b=c"));
        assert_eq!(get("a=1", "b"), None);
        assert_eq!(get("", "a"), None);
        assert_eq!(get("", ""), Some(String::new()));
        assert_eq!(lookup(None, "a"), None);
    }

    #[test]
    fn decoding() {
        assert_eq!(get("mode=f%61st", "mode").as_deref(), Some("fast"));
        assert_eq!(get("m%6Fde=x", "mode").as_deref(), Some("x"));
        assert_eq!(get("a=1+2", "a").as_deref(), Some("1+2"));
        assert_eq!(get("a=%zz%2", "a").as_deref(), Some("%zz%2"));
        assert_eq!(get("a=%", "a").as_deref(), Some("%"));
        assert_eq!(get("a=%26%3D", "a").as_deref(), Some("&="));
        assert_eq!(lookup(Some("a=%ff"), "a"), Some(vec![0xff]));
        assert_eq!(get("a=%%41", "a").as_deref(), Some("%A"));
    }
}
