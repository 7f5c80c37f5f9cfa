//! Path normalization (spec section 7), into a caller-owned buffer.

/// Longest path accepted, in bytes, after splitting off the query.
pub const MAX_PATH_LEN: usize = 8192;

/// Why a path could not be normalized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadPath {
    /// The path does not start with `/`.
    NoLeadingSlash,
    /// The path is longer than [`MAX_PATH_LEN`].
    TooLong,
    /// A backslash, space, control byte or byte above 0x7E.
    ForbiddenByte(u8),
    /// A `%` not followed by two hex digits.
    MalformedEscape,
    /// An escape of `/`, `\` or a control byte.
    ForbiddenEscape(u8),
}

impl std::fmt::Display for BadPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadPath::NoLeadingSlash => f.write_str("the path does not start with `/`"),
            BadPath::TooLong => write!(f, "the path is longer than {MAX_PATH_LEN} bytes"),
            BadPath::ForbiddenByte(b) => write!(f, "the path holds the forbidden byte 0x{b:02X}"),
            BadPath::MalformedEscape => f.write_str("the path holds a malformed `%` escape"),
            BadPath::ForbiddenEscape(b) => {
                write!(f, "the path escapes the forbidden byte 0x{b:02X}")
            }
        }
    }
}

impl std::error::Error for BadPath {}

/// Splits a request target into path and query (`None` without `?`);
/// any fragment is dropped.
pub fn split_target(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr2(b'?', b'#', target) {
        Some(i) if target[i] == b'?' => {
            let rest = &target[i + 1..];
            let end = memchr::memchr(b'#', rest).unwrap_or(rest.len());
            (&target[..i], Some(&rest[..end]))
        }
        Some(i) => (&target[..i], None),
        None => (target, None),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Byte classes for normalization: plain bytes are copied as they are.
const PLAIN: u8 = 0;
const SLASH: u8 = 1;
const PERCENT: u8 = 2;
const FORBIDDEN: u8 = 3;

const CLASSES: [u8; 256] = {
    let mut t = [FORBIDDEN; 256];
    let mut b = 0x21;
    while b <= 0x7E {
        t[b] = PLAIN;
        b += 1;
    }
    t[b'/' as usize] = SLASH;
    t[b'%' as usize] = PERCENT;
    t[b'\\' as usize] = FORBIDDEN;
    t
};

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Normalizes the path part of a request target (no query) into `out`,
/// which is cleared first. Never allocates once `out` holds
/// [`MAX_PATH_LEN`] bytes of capacity.
///
/// Works segment by segment: runs of plain bytes are copied whole, escapes
/// are decoded where they occur, and each segment is resolved (`.`, `..`,
/// empty) as it ends, so the output is built in one pass.
pub fn normalize_path(path: &[u8], out: &mut Vec<u8>) -> Result<(), BadPath> {
    out.clear();
    if path.first() != Some(&b'/') {
        return Err(BadPath::NoLeadingSlash);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(BadPath::TooLong);
    }
    out.push(b'/');
    let n = path.len();
    let mut i = 1;
    loop {
        let seg_start = out.len();
        // Copy one segment, decoding escapes.
        loop {
            while let Some(&b) = path.get(i).filter(|&&b| CLASSES[b as usize] == PLAIN) {
                out.push(b);
                i += 1;
            }
            if i == n {
                break;
            }
            match CLASSES[path[i] as usize] {
                SLASH => break,
                PERCENT => {
                    let (Some(h), Some(l)) = (
                        path.get(i + 1).copied().and_then(hex_value),
                        path.get(i + 2).copied().and_then(hex_value),
                    ) else {
                        return Err(BadPath::MalformedEscape);
                    };
                    let v = h * 16 + l;
                    if v == b'/' || v == b'\\' || v < 0x20 || v == 0x7F {
                        return Err(BadPath::ForbiddenEscape(v));
                    }
                    if is_unreserved(v) {
                        out.push(v);
                    } else {
                        out.extend_from_slice(&[b'%', HEX_UPPER[h as usize], HEX_UPPER[l as usize]]);
                    }
                    i += 3;
                }
                _ => return Err(BadPath::ForbiddenByte(path[i])),
            }
        }
        let at_end = i == n;
        match &out[seg_start..] {
            // A run of `/`, or a trailing `/`: merged.
            b"" => {}
            b"." => out.truncate(seg_start),
            b".." => {
                out.truncate(seg_start);
                // Drop the previous segment, if any; the root stays.
                if seg_start > 1 {
                    let prev = out[..seg_start - 1].iter().rposition(|&c| c == b'/').unwrap_or(0);
                    out.truncate(prev + 1);
                }
            }
            _ if !at_end => out.push(b'/'),
            _ => {}
        }
        if at_end {
            // A path ending in `/`, `/.` or `/..` keeps its trailing slash:
            // every case above leaves `out` ending in `/` then.
            return Ok(());
        }
        i += 1; // the `/`
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, BadPath> {
        let mut out = Vec::new();
        normalize_path(p.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn examples() {
        assert_eq!(norm("/a//../b").unwrap(), "/b");
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("//a///b").unwrap(), "/a/b");
        assert_eq!(norm("/a/./b").unwrap(), "/a/b");
        assert_eq!(norm("/%61/%62").unwrap(), "/a/b");
        assert_eq!(norm("/../../public/x").unwrap(), "/public/x");
        assert_eq!(norm("/public/%2e%2E/admin").unwrap(), "/admin");
        assert_eq!(norm("/a/b/").unwrap(), "/a/b/");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(norm("/a/%2e").unwrap(), "/a/");
        assert_eq!(norm("/a%3a%7e").unwrap(), "/a%3A~");
        assert_eq!(norm("/..").unwrap(), "/");
        assert_eq!(norm("/.").unwrap(), "/");
        assert_eq!(norm("/a/..b").unwrap(), "/a/..b");
        assert_eq!(norm("/a/.../b").unwrap(), "/a/.../b");
    }

    /// The first, byte-at-a-time implementation, kept as an oracle.
        /// Normalizes the path part of a request target (no query) into `out`,
    /// which is cleared first. Never allocates once `out` holds
    /// [`MAX_PATH_LEN`] bytes of capacity.
    fn reference_normalize(path: &[u8], out: &mut Vec<u8>) -> Result<(), BadPath> {
        out.clear();
        if path.first() != Some(&b'/') {
            return Err(BadPath::NoLeadingSlash);
        }
        if path.len() > MAX_PATH_LEN {
            return Err(BadPath::TooLong);
        }
        // Steps 3 and 4: check bytes and decode escapes, merging runs of `/`
        // (step 5) and removing dot segments (step 6) as each segment ends.
        // `out` always holds a path that starts with `/`; `seg_start` is the
        // index just after the last `/` in `out`.
        out.push(b'/');
        let mut seg_start = 1usize;
        let mut i = 1usize;
        // Escapes decode to at most one byte, so `out` never outgrows `path`.
        while i <= path.len() {
            let b = if i == path.len() { b'/' } else { path[i] };
            let at_end = i == path.len();
            let decoded = if b == b'%' {
                let (Some(h), Some(l)) = (
                    path.get(i + 1).copied().and_then(hex_value),
                    path.get(i + 2).copied().and_then(hex_value),
                ) else {
                    return Err(BadPath::MalformedEscape);
                };
                let v = h * 16 + l;
                if v == b'/' || v == b'\\' || v < 0x20 || v == 0x7F {
                    return Err(BadPath::ForbiddenEscape(v));
                }
                i += 3;
                if is_unreserved(v) {
                    out.push(v);
                } else {
                    out.push(b'%');
                    out.push(path[i - 2].to_ascii_uppercase());
                    out.push(path[i - 1].to_ascii_uppercase());
                }
                continue;
            } else {
                b
            };
            if !at_end && (decoded == b'\\' || decoded == b' ' || !(0x20..=0x7E).contains(&decoded)) {
                return Err(BadPath::ForbiddenByte(decoded));
            }
            i += 1;
            if decoded != b'/' {
                out.push(decoded);
                continue;
            }
            // A segment ended at a literal `/` (or at the end of the path).
            let seg = &out[seg_start..];
            if seg == b"." {
                out.truncate(seg_start);
            } else if seg == b".." {
                out.truncate(seg_start);
                // Drop the previous segment, if any: keep the leading `/`.
                if seg_start > 1 {
                    let prev_slash = out[..seg_start - 1]
                        .iter()
                        .rposition(|&c| c == b'/')
                        .unwrap_or(0);
                    out.truncate(prev_slash + 1);
                }
                seg_start = out.len();
            } else if seg.is_empty() {
                // A run of `/`: merged.
            } else if !at_end {
                out.push(b'/');
                seg_start = out.len();
            }
            if at_end {
                break;
            }
        }
        // A path that ended in `/`, `/.` or `/..` keeps its trailing slash.
        let ends_dir = {
            let p = path;
            p.ends_with(b"/") || p.ends_with(b"/.") || p.ends_with(b"/..") || ends_with_escaped_dots(p)
        };
        if ends_dir && out.last() != Some(&b'/') {
            out.push(b'/');
        }
        Ok(())
    }

    /// Whether the last segment of `p` is `.` or `..` written with escapes.
    fn ends_with_escaped_dots(p: &[u8]) -> bool {
        let last = match p.iter().rposition(|&b| b == b'/') {
            Some(i) => &p[i + 1..],
            None => p,
        };
        let mut dots = 0;
        let mut i = 0;
        while i < last.len() {
            if last[i] == b'.' {
                i += 1;
            } else if last.len() >= i + 3
                && last[i] == b'%'
                && last[i + 1] == b'2'
                && (last[i + 2] == b'e' || last[i + 2] == b'E')
            {
                i += 3;
            } else {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    }


    /// The segment-wise implementation agrees with the byte-at-a-time one.
    #[test]
    fn agrees_with_the_reference() {
        const ALPHABET: &[u8] = b"//..%%2eEFfab5c0?\\ \x7f";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..200_000 {
            let len = (next() % 24) as usize;
            let mut p = vec![b'/'];
            for _ in 0..len {
                p.push(ALPHABET[(next() % ALPHABET.len() as u64) as usize]);
            }
            if next() % 8 == 0 {
                p[0] = b'a';
            }
            assert_eq!(normalize_path(&p, &mut a), reference_normalize(&p, &mut b), "{:?}", String::from_utf8_lossy(&p));
            assert_eq!(a, b, "{:?}", String::from_utf8_lossy(&p));
        }
    }

    #[test]
    fn rejections() {
        assert_eq!(norm("a"), Err(BadPath::NoLeadingSlash));
        assert_eq!(norm(""), Err(BadPath::NoLeadingSlash));
        assert_eq!(norm("/a%2Fb"), Err(BadPath::ForbiddenEscape(b'/')));
        assert_eq!(norm("/a%5cb"), Err(BadPath::ForbiddenEscape(b'\\')));
        assert_eq!(norm("/a%00"), Err(BadPath::ForbiddenEscape(0)));
        assert_eq!(norm("/a%7f"), Err(BadPath::ForbiddenEscape(0x7f)));
        assert_eq!(norm("/a%zz"), Err(BadPath::MalformedEscape));
        assert_eq!(norm("/a%2"), Err(BadPath::MalformedEscape));
        assert_eq!(norm("/a\\b"), Err(BadPath::ForbiddenByte(b'\\')));
        assert_eq!(norm("/a b"), Err(BadPath::ForbiddenByte(b' ')));
        assert_eq!(norm("/a\u{e9}"), Err(BadPath::ForbiddenByte(0xC3)));
        assert!(norm(&format!("/{}", "a".repeat(MAX_PATH_LEN))).is_err());
    }
}
