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
    /// A `.` or `..` segment followed by `;` (`/a/..;/b`): servers that drop
    /// path parameters before resolving dot segments would climb out.
    DotSegmentParameter,
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
            BadPath::DotSegmentParameter => {
                f.write_str("the path has a `.` or `..` segment followed by `;`")
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

/// Normalizes the path part of a request target (no query) into `out`,
/// which is cleared first. Never allocates once `out` holds
/// [`MAX_PATH_LEN`] bytes of capacity. On an error, `out` holds the output
/// made before the byte at fault (nothing for
/// [`BadPath::DotSegmentParameter`], which is checked last, as step 6 comes
/// after the byte and escape checks).
///
/// Copies the path into `out`, then checks it 16 bytes at a time with
/// word-wide bit tricks that flag the bytes needing a look: a `%`, a
/// forbidden byte, and a `/` after a `/` or `.` (the end of a segment that
/// may be empty, `.` or `..`). Blocks without flags cost a few operations
/// (plus a move once the output has shrunk); flagged bytes are handled in
/// order, so errors are the ones a byte-at-a-time scan finds first.
pub fn normalize_path(path: &[u8], out: &mut Vec<u8>) -> Result<(), BadPath> {
    out.clear();
    if path.first() != Some(&b'/') {
        return Err(BadPath::NoLeadingSlash);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(BadPath::TooLong);
    }
    out.extend_from_slice(path);
    // Room for whole-block writes past the end, when it costs no allocation.
    if out.capacity() - out.len() >= BLOCK {
        out.extend_from_slice(&[0; BLOCK]);
    }
    let (len, result) = match normalize_in_place(path, out) {
        Ok(_) if has_dot_segment_parameter(path) => (0, Err(BadPath::DotSegmentParameter)),
        Ok(len) => (len, Ok(())),
        Err((e, len)) => (len, Err(e)),
    };
    out.truncate(len);
    result
}

/// Whether a segment of `path` (whose escapes are all well-formed) decodes
/// to `.` or `..` followed by `;` (spec section 7, step 6). Looks back from
/// each `;` over one or two dots, written as `.` or `%2E`, for a `/`.
fn has_dot_segment_parameter(path: &[u8]) -> bool {
    memchr::memchr_iter(b';', path).any(|semi| {
        let mut at = semi;
        for dots in 0..=2 {
            let before = |k: usize| at.checked_sub(k).and_then(|i| path.get(i)).copied();
            if dots > 0 && before(1) == Some(b'/') {
                return true;
            }
            if before(1) == Some(b'.') {
                at -= 1;
            } else if before(3) == Some(b'%')
                && before(2) == Some(b'2')
                && before(1).is_some_and(|b| b | 0x20 == b'e')
            {
                at -= 3;
            } else {
                return false;
            }
        }
        false
    })
}

/// Bytes per block of the scan.
const BLOCK: usize = 16;

/// Sixteen bytes of a path, little-endian: byte `k` is bits `8k..8k + 8`.
type Block = u128;

/// Every byte 0x01.
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
/// Every byte 0x7F.
const LOW7: u64 = u64::from_ne_bytes([0x7F; 8]);
/// Every byte 0x80.
const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

/// A word with every byte `b`.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// A block with every byte `b`.
const fn splat_block(b: u8) -> Block {
    Block::from_ne_bytes([b; BLOCK])
}

/// The high bit of each byte of the word `v` that needs a look: a `%`, a
/// forbidden byte, or a `/` after a `/` or `.`; `pv` is the word one byte
/// before `v`.
///
/// Each test adds a constant to each byte, so a byte above 0x7F may carry
/// into the next one: the flags are exact up to the first byte above 0x7F
/// (flagged), and the scan stops there (it is forbidden).
#[inline(always)]
fn events(v: u64, pv: u64) -> u64 {
    // High bit set: at least 0x21, not `%`, not `\`, neither 0x7F nor above.
    let plain = v.wrapping_add(splat(0x80 - 0x21))
        & (v ^ splat(b'%')).wrapping_add(LOW7)
        & (v ^ splat(b'\\')).wrapping_add(LOW7)
        & !(v.wrapping_add(ONES) | v);
    let not_slash = (v ^ splat(b'/')).wrapping_add(LOW7);
    // `.` and `/` differ only in the lowest bit.
    let prev_other = ((pv | ONES) ^ splat(b'/')).wrapping_add(LOW7);
    !(plain & (not_slash | prev_other)) & HIGH
}

/// The high bit of the first `/` of `v` from byte `from` on (exactly), as
/// the two words of a block; zero if there is none.
#[cold]
#[inline(never)]
fn first_slash(v: Block, from: u32) -> (u64, u64) {
    let (low7, high) = (splat_block(0x7F), splat_block(0x80));
    let x = v ^ splat_block(b'/');
    // No carries: exact.
    let slashes = !((x & low7).wrapping_add(low7) | x) & high;
    let s = slashes & Block::MAX.checked_shl(8 * from).unwrap_or(0);
    let first = s & s.wrapping_neg();
    (first as u64, (first >> 64) as u64)
}

/// The little-endian word `b[at..at + 8]` (zero past the end).
#[inline(always)]
fn word_at<const N: usize>(b: &[u8; N], at: usize) -> u64 {
    b.get(at..)
        .and_then(|r| r.first_chunk::<8>())
        .map_or(0, |w| u64::from_le_bytes(*w))
}

/// The bytes of `path` from `at` on (fewer than [`BLOCK`]) as a block,
/// padded with `a` (a plain byte).
#[inline(always)]
fn tail_block(path: &[u8], at: usize) -> Block {
    let n = path.len();
    let rem = n.saturating_sub(at).min(BLOCK - 1) as u32;
    let pad = splat_block(b'a') << (8 * rem);
    match path
        .get(n.wrapping_sub(BLOCK)..)
        .and_then(|r| r.first_chunk::<BLOCK>())
    {
        Some(last) if rem > 0 => (Block::from_le_bytes(*last) >> (128 - 8 * rem)) | pad,
        _ => {
            let mut b = pad;
            for (k, &c) in path
                .get(at..)
                .unwrap_or_default()
                .iter()
                .take(BLOCK - 1)
                .enumerate()
            {
                b |= Block::from(c) << (8 * k);
            }
            b
        }
    }
}

/// `b` shifted down by `k` bytes (zero from 16 on).
#[inline(always)]
fn shift_down(b: Block, k: u32) -> Block {
    b.checked_shr(8 * k).unwrap_or(0)
}

/// Writes the word `w` to `buf[at..at + 8]`, or to as much as `buf` holds.
#[inline(always)]
fn put_word(buf: &mut [u8], at: usize, w: u64) {
    match buf.get_mut(at..at + 8) {
        Some(d) => d.copy_from_slice(&w.to_le_bytes()),
        None => put_short(buf, at, &w.to_le_bytes()),
    }
}

/// Writes the block `b` to `buf[at..at + 16]`, or to as much as `buf` holds.
#[inline(always)]
fn put_block(buf: &mut [u8], at: usize, b: Block) {
    match buf.get_mut(at..at + BLOCK) {
        Some(d) => d.copy_from_slice(&b.to_le_bytes()),
        None => put_short(buf, at, &b.to_le_bytes()),
    }
}

/// Writes as much of `bytes` to `buf[at..]` as fits.
#[cold]
#[inline(never)]
fn put_short(buf: &mut [u8], at: usize, bytes: &[u8]) {
    let dst = buf.get_mut(at..).unwrap_or_default();
    for (d, &s) in dst.iter_mut().zip(bytes) {
        *d = s;
    }
}

/// Value of each hex digit; 0xFF for any other byte.
static HEX_VALUE: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Where the output resumes after the segment that ends at `buf[..end]`
/// (the output so far, which starts with `/`): `None` when the segment is
/// kept, else just after the `/` before it, or before that for `..`.
#[inline(always)]
fn drop_segment(buf: &[u8], end: usize) -> Option<usize> {
    let at = |i: usize| buf.get(i).copied().unwrap_or(b'/');
    match at(end.wrapping_sub(1)) {
        b'/' => Some(end),
        b'.' => match at(end.wrapping_sub(2)) {
            b'/' => Some(end - 1),
            b'.' if at(end.wrapping_sub(3)) == b'/' => Some(pop_segment(buf, end - 2)),
            _ => None,
        },
        _ => None,
    }
}

/// Where the output resumes for a `..` that starts at `buf[start]` (just
/// after a `/`): after the `/` before the previous segment; the root stays.
#[cold]
fn pop_segment(buf: &[u8], start: usize) -> usize {
    match buf.get(..start.saturating_sub(1)) {
        Some(before) if !before.is_empty() => {
            before.iter().rposition(|&c| c == b'/').map_or(1, |i| i + 1)
        }
        _ => start,
    }
}

/// Normalizes `path` in `buf`, which starts as a copy of it (and maybe some
/// slack). Returns the length of the output, or the error and the length
/// of the output made before the byte at fault.
#[inline(always)]
fn normalize_in_place(path: &[u8], buf: &mut [u8]) -> Result<usize, (BadPath, usize)> {
    let n = path.len();
    // `path[i]` lands at `buf[i - delta]`: `delta` bytes were dropped.
    let mut delta = 0usize;
    // Whether the current segment holds an escaped `.` (and no `/` since):
    // its end needs a look although no `.` comes before it.
    let mut dot_escape = false;
    let mut base = 1usize;
    while base < n {
        // The block at `base`, as words, with the words one byte before.
        let (v0, v1, p0, p1) = match path.get(base - 1..).and_then(|r| r.first_chunk::<17>()) {
            Some(b) => (word_at(b, 1), word_at(b, 9), word_at(b, 0), word_at(b, 8)),
            None => {
                let v = tail_block(path, base);
                let pv = (v << 8) | Block::from(path[base - 1]);
                (v as u64, (v >> 64) as u64, pv as u64, (pv >> 64) as u64)
            }
        };
        if delta != 0 {
            put_word(buf, base - delta, v0);
            put_word(buf, base + 8 - delta, v1);
        }
        let (mut e0, mut e1) = (events(v0, p0), events(v1, p1));
        if e0 | e1 == 0 && !dot_escape {
            base += BLOCK;
            continue;
        }
        let v = Block::from(v0) | Block::from(v1) << 64;
        if dot_escape {
            let (f0, f1) = first_slash(v, 0);
            e0 |= f0;
            e1 |= f1;
        }
        let mut next = base + BLOCK;
        loop {
            let k = if e0 != 0 {
                let k = e0.trailing_zeros() / 8;
                e0 &= e0 - 1;
                k
            } else if e1 != 0 {
                let k = 8 + e1.trailing_zeros() / 8;
                e1 &= e1 - 1;
                k
            } else {
                break;
            };
            let p = base + k as usize;
            let o = p - delta;
            match path[p] {
                b'/' => {
                    dot_escape = false;
                    if let Some(to) = drop_segment(buf, o) {
                        delta = p + 1 - to;
                        put_block(buf, to, shift_down(v, k + 1));
                    }
                }
                b'%' => {
                    let (Some(&h), Some(&l)) = (path.get(p + 1), path.get(p + 2)) else {
                        return Err((BadPath::MalformedEscape, o));
                    };
                    let (h, l) = (HEX_VALUE[usize::from(h)], HEX_VALUE[usize::from(l)]);
                    if (h | l) & 0x80 != 0 {
                        return Err((BadPath::MalformedEscape, o));
                    }
                    let c = h << 4 | l;
                    if c == b'/' || c == b'\\' || c < 0x20 || c == 0x7F {
                        return Err((BadPath::ForbiddenEscape(c), o));
                    }
                    if is_unreserved(c) {
                        buf[o] = c;
                        delta += 2;
                        put_block(buf, o + 1, shift_down(v, k + 3));
                        if c == b'.' && !dot_escape {
                            let (f0, f1) = first_slash(v, k + 3);
                            e0 |= f0;
                            e1 |= f1;
                            dot_escape = f0 | f1 == 0;
                        }
                    } else {
                        buf[o] = b'%';
                        buf[o + 1] = HEX_UPPER[usize::from(h)];
                        buf[o + 2] = HEX_UPPER[usize::from(l)];
                    }
                    // An escape may end past the block.
                    next = next.max(p + 3);
                }
                b => return Err((BadPath::ForbiddenByte(b), o)),
            }
        }
        base = next;
    }
    let end = n - delta;
    Ok(drop_segment(buf, end).unwrap_or(end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_testkit::Rng;

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

    /// The value of a hex digit (for the reference below).
    fn hex_value(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
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
        // Step 6, judged once every byte passed steps 3 and 4.
        let mut dot_parameter = false;
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
            if !at_end && (decoded == b'\\' || decoded == b' ' || !(0x20..=0x7E).contains(&decoded))
            {
                return Err(BadPath::ForbiddenByte(decoded));
            }
            i += 1;
            if decoded != b'/' {
                out.push(decoded);
                continue;
            }
            // A segment ended at a literal `/` (or at the end of the path).
            let seg = &out[seg_start..];
            dot_parameter |= seg.starts_with(b".;") || seg.starts_with(b"..;");
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
            p.ends_with(b"/")
                || p.ends_with(b"/.")
                || p.ends_with(b"/..")
                || ends_with_escaped_dots(p)
        };
        if ends_dir && out.last() != Some(&b'/') {
            out.push(b'/');
        }
        if dot_parameter {
            out.clear();
            return Err(BadPath::DotSegmentParameter);
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
        const ALPHABET: &[u8] = b"//..%%2eEFfab5c0?\\ \x7f;";
        let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..200_000 {
            let len = rng.below(24);
            let mut p = vec![b'/'];
            for _ in 0..len {
                p.push(*rng.pick(ALPHABET));
            }
            if rng.below(8) == 0 {
                p[0] = b'a';
            }
            assert_eq!(
                normalize_path(&p, &mut a),
                reference_normalize(&p, &mut b),
                "{:?}",
                String::from_utf8_lossy(&p)
            );
            assert_eq!(a, b, "{:?}", String::from_utf8_lossy(&p));
        }
    }

    #[test]
    fn rejections() {
        for dot_parameter in [
            "/public/..;/admin",
            "/.;x",
            "/a/..;",
            "/a/.;/b",
            "/%2e%2E;/b",
            "/a/.%2e;x/b",
            "//..;/x",
            "/a/..;/../b",
        ] {
            assert_eq!(
                norm(dot_parameter),
                Err(BadPath::DotSegmentParameter),
                "{dot_parameter}"
            );
        }
        assert_eq!(norm("/a;/..").unwrap(), "/");
        assert_eq!(norm("/a/...;x/b;c").unwrap(), "/a/...;x/b;c");
        assert_eq!(norm("/a/x.;/..%3B").unwrap(), "/a/x.;/..%3B");
        assert_eq!(norm("/a/%252e;").unwrap(), "/a/%252e;");
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

    /// The first `split_target`, kept as an oracle.
    fn reference_split(target: &[u8]) -> (&[u8], Option<&[u8]>) {
        let target = match target.iter().position(|&b| b == b'#') {
            Some(i) => &target[..i],
            None => target,
        };
        match target.iter().position(|&b| b == b'?') {
            Some(i) => (&target[..i], Some(&target[i + 1..])),
            None => (target, None),
        }
    }

    /// A target of `len` bytes from `alphabet`, most starting with `/`.
    fn random_target(rng: &mut Rng, len: usize, alphabet: &[u8], into: &mut Vec<u8>) {
        into.clear();
        into.extend((0..len).map(|_| alphabet[rng.below(alphabet.len())]));
        if len > 0 && rng.below(8) != 0 {
            into[0] = b'/';
        }
    }

    /// Splits `target` and normalizes its path (and the whole target) as
    /// the references do: same results, same bytes in `out` (also after an
    /// error).
    fn check_against_references(target: &[u8], out: &mut Vec<u8>, expected: &mut Vec<u8>) {
        let shown = || String::from_utf8_lossy(target).into_owned();
        assert_eq!(
            split_target(target),
            reference_split(target),
            "{:?}",
            shown()
        );
        let (path, _) = reference_split(target);
        for p in [path, target] {
            let result = normalize_path(p, out);
            assert_eq!(result, reference_normalize(p, expected), "{:?}", shown());
            assert_eq!(out, expected, "{:?} ({result:?})", shown());
        }
    }

    /// 200,000 generated targets of 0 to 40 bytes over `/ . % 2 e E F f a b
    /// ? # \ space` and the hex digits.
    #[test]
    fn agrees_with_the_references_on_generated_targets() {
        const ALPHABET: &[u8] = b"/.%2eEFfab?#\\ 0123456789abcdefABCDEF;";
        let mut rng = Rng::new(0x2545_F491_4F6C_DD1D);
        let (mut target, mut out, mut expected) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..200_000 {
            let len = rng.below(41);
            random_target(&mut rng, len, ALPHABET, &mut target);
            check_against_references(&target, &mut out, &mut expected);
        }
    }

    /// Longer targets (several 16-byte blocks), with control bytes, 0x7F,
    /// bytes above it (next to `/` and `.` too) and escapes of all kinds.
    #[test]
    fn agrees_with_the_references_on_long_odd_targets() {
        const ALPHABET: &[u8] =
            b"////....;%%%2eE5cC7fF0aAbzZ9~-_?#\\ \t\x00\x01\x1f\x7f\x80\xa0\xa1\xae\xaf\xfe\xff";
        let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
        let (mut target, mut out, mut expected) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..60_000 {
            let len = rng.below(100);
            random_target(&mut rng, len, ALPHABET, &mut target);
            check_against_references(&target, &mut out, &mut expected);
        }
        // Mostly plain bytes, so that long runs of blocks need no look.
        const PLAIN: &[u8] = b"abcdefghij/////././%41%2e%2f\x80";
        for _ in 0..20_000 {
            let len = rng.below(200);
            random_target(&mut rng, len, PLAIN, &mut target);
            check_against_references(&target, &mut out, &mut expected);
        }
    }

    /// Snippets that end, decode or reject a segment, after every number of
    /// plain bytes from 0 to 47: each lands at every place in a 16-byte
    /// block, so segments are cut across blocks in every way.
    #[test]
    fn agrees_with_the_references_at_every_alignment() {
        const SNIPPETS: [&str; 24] = [
            "/..;/x",
            "/%2e;",
            "/x.;",
            "/%2e/x",
            "/%2E%2e/x",
            "/.%2e/x",
            "/%2e./x",
            "/%2e",
            "/%2e%2e",
            "//x",
            "/./x",
            "/../x",
            "/.",
            "/..",
            "/%41/",
            "/%7e%2e/",
            "/%2",
            "/%zz",
            "/a b",
            "/%2f",
            "/%7F",
            "/x\x7f",
            "/x\u{80}",
            "/?#",
        ];
        let (mut target, mut out, mut expected) = (Vec::new(), Vec::new(), Vec::new());
        for pad in 0..48 {
            for snippet in SNIPPETS {
                for end in ["", "/y", "/.."] {
                    target.clear();
                    target.push(b'/');
                    target.resize(1 + pad, b'a');
                    target.extend_from_slice(snippet.as_bytes());
                    target.extend_from_slice(end.as_bytes());
                    check_against_references(&target, &mut out, &mut expected);
                }
            }
        }
    }

    /// 200,000 targets made of up to 15 random pieces: slashes, dots,
    /// escapes (good, bad, of `.`, of reserved bytes), plain runs of
    /// several lengths and forbidden bytes.
    #[test]
    fn agrees_with_the_references_on_generated_pieces() {
        const PIECES: [&str; 30] = [
            "/", "/", "/", ".", "..", "%2e", "%2E", ";", ";x", "a", "bb", "ccc", "dddddddd", "%41",
            "%7e", "%7E", "%3a", "%2f", "%20", "%", "%4", "%zz", "\\", " ", "\u{80}", "\x7f",
            "\x01", "?", "#", "-_~",
        ];
        let mut rng = Rng::new(0xDEAD_BEEF_1234_5678);
        let (mut target, mut out, mut expected) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..200_000 {
            target.clear();
            target.push(b'/');
            for _ in 0..rng.below(16) {
                target.extend_from_slice(PIECES[rng.below(PIECES.len())].as_bytes());
            }
            check_against_references(&target, &mut out, &mut expected);
        }
    }

    /// With [`MAX_PATH_LEN`] bytes of capacity, `out` is never reallocated,
    /// even for the longest paths (no room to write whole blocks past the
    /// end).
    #[test]
    fn never_allocates_with_max_capacity() {
        let mut out = Vec::with_capacity(MAX_PATH_LEN);
        let (buf, capacity) = (out.as_ptr(), out.capacity());
        let mut expected = Vec::new();
        let lens = [
            1,
            2,
            16,
            17,
            100,
            MAX_PATH_LEN - 17,
            MAX_PATH_LEN - 16,
            MAX_PATH_LEN - 1,
            MAX_PATH_LEN,
            MAX_PATH_LEN + 1,
        ];
        let tails: [&[u8]; 7] = [
            b"",
            b"/.",
            b"//x",
            b"/%41%2e",
            b"/..",
            b"/%7e/./abc",
            b"/a%2",
        ];
        for len in lens {
            for tail in tails {
                let mut p = b"/".to_vec();
                while p.len() + tail.len() < len {
                    p.extend_from_slice(b"segment/");
                }
                p.truncate(len.saturating_sub(tail.len()).max(1));
                p.extend_from_slice(tail);
                let result = normalize_path(&p, &mut out);
                assert_eq!(
                    result,
                    reference_normalize(&p, &mut expected),
                    "{} bytes",
                    p.len()
                );
                assert_eq!(out, expected, "{} bytes", p.len());
                assert_eq!(
                    (out.as_ptr(), out.capacity()),
                    (buf, capacity),
                    "{} bytes",
                    p.len()
                );
            }
        }
    }

    /// Times the benchmarks' request target against the first
    /// implementations (best of 30 rounds of 100,000 calls). Run:
    /// `cargo test --release -p sluice-runtime normalize_speed -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing: run in release mode with --ignored --nocapture"]
    fn normalize_speed() {
        use std::hint::black_box;
        use std::time::Instant;
        const TARGET: &[u8] = b"/api/v1/svc7/%2e/items//42/details/./summary?view=full&lang=en";
        const NORMALIZED: &[u8] = b"/api/v1/svc7/items/42/details/summary";
        fn ns(mut f: impl FnMut()) -> f64 {
            (0..30)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..100_000 {
                        f();
                    }
                    start.elapsed().as_secs_f64() * 1e9 / 100_000.0
                })
                .fold(f64::INFINITY, f64::min)
        }
        let mut out = Vec::with_capacity(MAX_PATH_LEN);
        let (path, _) = split_target(TARGET);
        assert_eq!(normalize_path(path, &mut out), Ok(()));
        assert_eq!(out, NORMALIZED);
        let rows = [
            (
                "split_target",
                ns(|| {
                    let _ = black_box(reference_split(black_box(TARGET)));
                }),
                ns(|| {
                    let _ = black_box(split_target(black_box(TARGET)));
                }),
            ),
            (
                "normalize_path",
                ns(|| {
                    let _ = black_box(reference_normalize(black_box(path), &mut out));
                }),
                ns(|| {
                    let _ = black_box(normalize_path(black_box(path), &mut out));
                }),
            ),
            (
                "split + normalize",
                ns(|| {
                    let (p, q) = reference_split(black_box(TARGET));
                    let _ = black_box((reference_normalize(p, &mut out), q));
                }),
                ns(|| {
                    let (p, q) = split_target(black_box(TARGET));
                    let _ = black_box((normalize_path(p, &mut out), q));
                }),
            ),
            (
                "normalize_path, normalized",
                ns(|| {
                    let _ = black_box(reference_normalize(black_box(NORMALIZED), &mut out));
                }),
                ns(|| {
                    let _ = black_box(normalize_path(black_box(NORMALIZED), &mut out));
                }),
            ),
        ];
        let copy = ns(|| {
            out.clear();
            out.extend_from_slice(black_box(NORMALIZED));
            black_box(&out);
        });
        println!("{:<28} {:>9} {:>9}", "ns per call", "before", "after");
        for (name, before, after) in rows {
            println!("{name:<28} {before:>9.1} {after:>9.1}");
        }
        println!(
            "{:<28} {:>9} {copy:>9.1}",
            "copy of the normalized path", ""
        );
    }
}
