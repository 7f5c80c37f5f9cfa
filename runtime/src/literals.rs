//! Literal tables: distinct byte strings (literal paths, literal identity
//! paths), each with `N` lists of ranks or clauses, found by hash from an
//! input and from each of its prefixes that ends right before a separator.
//!
//! The hash index is built at load time (it is not in the bundle) and the
//! hash is a fold over the pieces between separators, each piece hashed a
//! word (8 bytes) at a time: the running value at a separator is the hash
//! of the prefix before it, so one pass over the input hashes every prefix
//! and the whole input. Each slot keeps a 32-bit tag of the hash, so most
//! slots that hold another key are skipped without comparing bytes.

use crate::bundle::LoadError;

const SEED: u64 = 0x243F_6A88_85A3_08D3;
const K: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline]
fn mix(h: u64, word: u64) -> u64 {
    let x = (h ^ word).wrapping_mul(K);
    x ^ (x >> 29)
}

/// Folds one piece (the bytes between two separators) into `h`.
#[inline]
fn fold_piece(mut h: u64, piece: &[u8]) -> u64 {
    let mut words = piece.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = mix(h, u64::from_le_bytes(a));
    }
    let tail = words.remainder();
    // The tail has at most 7 bytes: its length goes into the top byte.
    mix(h, tail_word(tail) | ((tail.len() as u64 + 1) << 56))
}

/// `tail` (at most 7 bytes) as a little-endian word padded with zeros,
/// read with two overlapping loads (no copy through the stack).
#[inline]
fn tail_word(tail: &[u8]) -> u64 {
    let n = tail.len();
    let b = |i: usize| u64::from(tail.get(i).copied().unwrap_or(0));
    if n >= 4 {
        let w = |i: usize| {
            tail.get(i..i + 4).map_or(0, |s| {
                u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            })
        };
        w(0) | (w(n - 4) << (8 * (n - 4)))
    } else if n > 0 {
        b(0) | (b(n / 2) << (8 * (n / 2))) | (b(n - 1) << (8 * (n - 1)))
    } else {
        0
    }
}

/// The hash of `key`: the fold over its pieces between `sep` bytes.
pub(crate) fn hash(key: &[u8], sep: u8) -> u64 {
    key.split(|&b| b == sep).fold(SEED, fold_piece)
}

/// Where a key was found in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum At {
    /// The key is the prefix before a separator; `last` when no separator
    /// follows that one.
    Separator {
        /// No separator after this one.
        last: bool,
    },
    /// The key is the whole input.
    Whole,
}

/// A key and where its lists are in [`LiteralTable::ids`]: list `i` ends
/// at `ends[i]` and starts where the one before it ends (the first at
/// `start`).
#[derive(Debug)]
struct Entry<'a, const N: usize> {
    key: &'a [u8],
    start: u32,
    ends: [u32; N],
}

/// Distinct keys with their lists and an open-addressing hash index.
#[derive(Debug)]
pub(crate) struct LiteralTable<'a, const N: usize> {
    entries: Vec<Entry<'a, N>>,
    /// Every entry's lists, one after the other, in entry order.
    ids: Vec<u32>,
    /// Per slot, the hash tag and the entry index + 1 (0: empty). The
    /// length is a power of two, at least twice the number of entries.
    slots: Vec<(u32, u32)>,
    mask: usize,
    sep: u8,
    /// The longest key: no longer prefix can match.
    max_key: usize,
}

impl<const N: usize> Default for LiteralTable<'_, N> {
    fn default() -> Self {
        LiteralTable {
            entries: Vec::new(),
            ids: Vec::new(),
            slots: Vec::new(),
            mask: 0,
            sep: b'/',
            max_key: 0,
        }
    }
}

#[inline]
fn slot_of(h: u64, mask: usize) -> usize {
    (h >> 32) as usize & mask
}

impl<'a, const N: usize> LiteralTable<'a, N> {
    /// An empty table with room for `n` keys, split at `sep`.
    pub(crate) fn with_capacity(n: usize, sep: u8) -> Result<Self, LoadError> {
        if n == 0 {
            return Ok(LiteralTable {
                sep,
                ..Default::default()
            });
        }
        let cap = n
            .checked_mul(2)
            .and_then(usize::checked_next_power_of_two)
            .filter(|&c| u32::try_from(c).is_ok())
            .ok_or(LoadError::Invalid("literal table size"))?;
        Ok(LiteralTable {
            entries: Vec::with_capacity(n),
            ids: Vec::new(),
            slots: vec![(0, 0); cap],
            mask: cap - 1,
            sep,
            max_key: 0,
        })
    }

    /// The lists of every key, in key order; the next key's lists are
    /// appended here before [`LiteralTable::push`].
    pub(crate) fn ids_mut(&mut self) -> &mut Vec<u32> {
        &mut self.ids
    }

    /// All lists of all keys, one after the other.
    pub(crate) fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Adds `key`, whose lists are the ids appended since the previous
    /// key, list `i` ending at `ends[i]`; refuses a key already added, a
    /// key that would fill the index past half its slots, and ends that do not cover those ids.
    pub(crate) fn push(&mut self, key: &'a [u8], ends: [usize; N]) -> Result<(), LoadError> {
        let start = self
            .entries
            .last()
            .map_or(0, |e| e.ends.last().copied().unwrap_or(e.start));
        let mut prev = start as usize;
        let mut out = [0u32; N];
        for (o, &end) in out.iter_mut().zip(&ends) {
            if end < prev {
                return Err(LoadError::Invalid("literal lists"));
            }
            *o = u32::try_from(end).map_err(|_| LoadError::Invalid("literal lists"))?;
            prev = end;
        }
        if prev != self.ids.len() {
            return Err(LoadError::Invalid("literal lists"));
        }
        let k = self.entries.len();
        if k.checked_mul(2).is_none_or(|c| c >= self.slots.len()) {
            return Err(LoadError::Invalid("literal table size"));
        }
        let h = hash(key, self.sep);
        let tag = h as u32;
        let mut i = slot_of(h, self.mask);
        loop {
            let slot = self
                .slots
                .get_mut(i)
                .ok_or(LoadError::Invalid("literal table slot"))?;
            if slot.1 == 0 {
                *slot = (tag, k as u32 + 1);
                break;
            }
            if slot.0 == tag && self.entries.get(slot.1 as usize - 1).map(|o| o.key) == Some(key) {
                return Err(LoadError::Invalid("literal key listed twice"));
            }
            i = (i + 1) & self.mask;
        }
        self.max_key = self.max_key.max(key.len());
        self.entries.push(Entry {
            key,
            start,
            ends: out,
        });
        Ok(())
    }

    /// The lists of `e`.
    #[inline]
    fn lists(&self, e: &Entry<'a, N>) -> [&[u32]; N] {
        let mut start = e.start as usize;
        std::array::from_fn(|i| {
            let end = e.ends.get(i).map_or(start, |&x| x as usize);
            let list = self.ids.get(start..end).unwrap_or(&[]);
            start = end;
            list
        })
    }

    /// Every key with its lists, in the order they were added.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'a [u8], [&[u32]; N])> + '_ {
        self.entries.iter().map(|e| (e.key, self.lists(e)))
    }

    /// Whether the table has no keys.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The lists of `key`, whose hash is `h`.
    #[inline]
    fn get(&self, h: u64, key: &[u8]) -> Option<[&[u32]; N]> {
        let tag = h as u32;
        let mut i = slot_of(h, self.mask);
        loop {
            let &(t, e) = self.slots.get(i)?;
            if e == 0 {
                return None;
            }
            if t == tag {
                if let Some(entry) = self.entries.get(e as usize - 1) {
                    if entry.key == key {
                        return Some(self.lists(entry));
                    }
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The lists of `key`, if it is in the table.
    #[cfg(test)]
    pub(crate) fn lookup(&self, key: &[u8]) -> Option<[&[u32]; N]> {
        if self.is_empty() {
            return None;
        }
        self.get(hash(key, self.sep), key)
    }

    /// Calls `f` with the lists of every key that equals the prefix of `x`
    /// before one of its separators ([`At::Separator`], shortest first),
    /// then with those of `x` itself ([`At::Whole`]). Hashes `x` once.
    #[inline]
    pub(crate) fn for_each_prefix(&self, x: &[u8], mut f: impl FnMut([&[u32]; N], At)) {
        if self.is_empty() {
            return;
        }
        let sep = self.sep;
        let find = |from: usize| {
            x.get(from..)
                .and_then(|rest| rest.iter().position(|&b| b == sep))
                .map(|p| p + from)
        };
        let mut h = SEED;
        let mut start = 0usize;
        let mut next = find(0);
        while let Some(j) = next {
            if j > self.max_key {
                return;
            }
            let (Some(piece), Some(prefix)) = (x.get(start..j), x.get(..j)) else {
                return;
            };
            h = fold_piece(h, piece);
            let after = find(j + 1);
            if let Some(lists) = self.get(h, prefix) {
                f(
                    lists,
                    At::Separator {
                        last: after.is_none(),
                    },
                );
            }
            start = j + 1;
            next = after;
        }
        if x.len() > self.max_key {
            return;
        }
        if let Some(piece) = x.get(start..) {
            if let Some(lists) = self.get(fold_piece(h, piece), x) {
                f(lists, At::Whole);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of `keys`, each with the lists `lists`.
    fn build<'a>(keys: &[&'a str], lists: &[&[u32]]) -> Result<LiteralTable<'a, 1>, LoadError> {
        let mut t = LiteralTable::with_capacity(keys.len(), b'/')?;
        for (k, l) in keys.iter().zip(lists) {
            t.ids_mut().extend_from_slice(l);
            let end = t.ids().len();
            t.push(k.as_bytes(), [end])?;
        }
        Ok(t)
    }

    fn table<'a>(keys: &[(&'a str, u32)]) -> LiteralTable<'a, 1> {
        let (k, v): (Vec<&str>, Vec<[u32; 1]>) = keys.iter().map(|&(k, v)| (k, [v])).unzip();
        let lists: Vec<&[u32]> = v.iter().map(|l| &l[..]).collect();
        build(&k, &lists).expect("distinct keys")
    }

    fn hits(t: &LiteralTable<'_, 1>, x: &str) -> Vec<(u32, At)> {
        let mut out = Vec::new();
        t.for_each_prefix(x.as_bytes(), |l, at| out.push((l[0][0], at)));
        out
    }

    const SEP: At = At::Separator { last: false };
    const LAST: At = At::Separator { last: true };

    #[test]
    fn the_running_hash_at_a_separator_is_the_hash_of_the_prefix() {
        for x in ["", "/", "//", "/a", "/a/", "/abcdefgh/ijklmnopq/r", "a//b/"] {
            let bytes = x.as_bytes();
            let mut h = SEED;
            let mut start = 0;
            for (i, &b) in bytes.iter().enumerate() {
                if b == b'/' {
                    h = fold_piece(h, &bytes[start..i]);
                    assert_eq!(h, hash(&bytes[..i], b'/'), "{x:?} at {i}");
                    start = i + 1;
                }
            }
            assert_eq!(fold_piece(h, &bytes[start..]), hash(bytes, b'/'), "{x:?}");
        }
        // Pieces and lengths are told apart.
        let all: Vec<u64> = [
            "",
            "/",
            "//",
            "a",
            "a/",
            "/a",
            "ab",
            "a/b",
            "a\0",
            "abcdefgh",
            "abcdefgh\0",
        ]
        .iter()
        .map(|k| hash(k.as_bytes(), b'/'))
        .collect();
        let mut distinct = all.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), all.len());
    }

    #[test]
    fn the_tail_word_is_the_zero_padded_tail() {
        let bytes = b"abcdefg";
        for n in 0..8 {
            let mut a = [0u8; 8];
            a[..n].copy_from_slice(&bytes[..n]);
            assert_eq!(tail_word(&bytes[..n]), u64::from_le_bytes(a), "{n}");
        }
    }

    #[test]
    fn prefixes_whole_and_empty_pieces() {
        let t = table(&[
            ("", 0),
            ("/api", 1),
            ("/api/", 2),
            ("/api/v1", 3),
            ("/a/b/c", 4),
        ]);
        assert_eq!(hits(&t, "/api"), vec![(0, LAST), (1, At::Whole)]);
        assert_eq!(
            hits(&t, "/api/v1"),
            vec![(0, SEP), (1, LAST), (3, At::Whole)]
        );
        // A key ending in the separator is the prefix before a second one.
        assert_eq!(hits(&t, "/api/"), vec![(0, SEP), (1, LAST), (2, At::Whole)]);
        assert_eq!(hits(&t, "/api//x"), vec![(0, SEP), (1, SEP), (2, LAST)]);
        assert_eq!(hits(&t, "/apix"), vec![(0, LAST)]);
        assert_eq!(hits(&t, "//"), vec![(0, SEP)]);
        assert_eq!(hits(&t, ""), vec![(0, At::Whole)]);
        assert_eq!(hits(&t, "x"), vec![]);
        assert_eq!(hits(&t, "/a/b/c/d"), vec![(0, SEP), (4, LAST)]);
        // Longer than every key: only the short prefixes.
        assert_eq!(
            hits(&t, "/a/b/c/dddddddddddddddddd"),
            vec![(0, SEP), (4, LAST)]
        );
        assert_eq!(t.lookup(b"/api/v1"), Some([&[3][..]]));
        assert_eq!(t.lookup(b"/api/v2"), None);
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert!(build(&["/a", "/b", "/a"], &[&[], &[], &[]]).is_err());
        assert!(build(&["/a", "/a/"], &[&[], &[]]).is_ok());
        assert!(build(&[], &[]).is_ok());
    }

    #[test]
    fn lists_are_checked_and_kept_apart() {
        let mut t = LiteralTable::<2>::with_capacity(3, b'/').expect("small");
        t.ids_mut().extend_from_slice(&[1, 2, 3]);
        t.push(b"/a", [2, 3]).expect("covered");
        t.push(b"/b", [3, 3]).expect("empty lists");
        // Ends that do not cover the appended ids, or go backwards.
        t.ids_mut().push(4);
        assert!(t.push(b"/c", [3, 3]).is_err());
        assert!(t.push(b"/c", [5, 5]).is_err());
        assert!(t.push(b"/c", [4, 3]).is_err());
        t.push(b"/c", [3, 4]).expect("covered");
        assert_eq!(t.lookup(b"/a"), Some([&[1, 2][..], &[3][..]]));
        assert_eq!(t.lookup(b"/b"), Some([&[][..], &[][..]]));
        assert_eq!(t.lookup(b"/c"), Some([&[][..], &[4][..]]));
        let keys: Vec<&[u8]> = t.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"/a"[..], b"/b", b"/c"]);
        // No more keys than the capacity.
        let mut full = LiteralTable::<1>::with_capacity(1, b'/').expect("small");
        full.push(b"/a", [0]).expect("room");
        assert!(full.push(b"/b", [0]).is_err());
        assert!(LiteralTable::<1>::with_capacity(0, b'/')
            .expect("empty")
            .push(b"/a", [0])
            .is_err());
    }

    #[test]
    fn colliding_slots_and_many_keys() {
        // Many keys: every slot chain is walked past other keys' tags.
        let keys: Vec<String> = (0..2000)
            .map(|i| format!("/svc{}/op{}", i % 37, i))
            .collect();
        let pairs: Vec<(&str, u32)> = keys.iter().zip(0..).map(|(k, i)| (&k[..], i)).collect();
        let t = table(&pairs);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.lookup(k.as_bytes()), Some([&[i as u32][..]]));
        }
        assert_eq!(t.lookup(b"/svc1/op2"), None);
        // Equal tags, different keys: the bytes decide.
        let mut same_tag = table(&[("/p", 7), ("/q", 8)]);
        let tag = hash(b"/q", b'/') as u32;
        for s in &mut same_tag.slots {
            if s.1 != 0 {
                s.0 = tag;
            }
        }
        assert_eq!(same_tag.lookup(b"/q"), Some([&[8][..]]));
        assert_eq!(same_tag.lookup(b"/p"), None);
    }
}
