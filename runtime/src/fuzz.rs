//! Plain entry points for the fuzz targets in `fuzz/` (and the corpus
//! replay tests): each takes arbitrary bytes and must never panic.

use crate::bundle::{AlignedBytes, Bundle};
use crate::normalize::{normalize_path, split_target};

pub mod probe;

/// Loads arbitrary bytes as a bundle; when they load, decides requests that
/// reach every server route (with a peer for each of its rules), TCP
/// server, service route and egress rule of it ([`probe::probes`]), and
/// checks that every decision names only the bundle's own servers, routes,
/// rules, services and backends ([`probe::Entities`]).
pub fn load_bundle(data: &[u8]) {
    let aligned = AlignedBytes::new(data);
    let Ok(bundle) = Bundle::from_bytes(aligned.as_bytes()) else {
        return;
    };
    let entities = probe::Entities::of(&bundle);
    probe::probes(&bundle).decide_each(&bundle, |probe, result| {
        if let Err(e) = entities.check(bundle.as_bytes(), &result) {
            panic!("{e}: {probe:?} decided {result:?}");
        }
    });
    let _ = bundle.summary();
}

/// Writes the content hash (xxh3-64 of bytes 24.., at 16..24; see
/// `docs/bundle.md`) that `data` needs to pass the loader's hash check.
pub fn rehash(data: &mut [u8]) {
    if data.len() >= 24 {
        let h = xxhash_rust::xxh3::xxh3_64(&data[24..]);
        data[16..24].copy_from_slice(&h.to_le_bytes());
    }
}

/// [`load_bundle`] after [`rehash`]: what the bundle fuzz target runs, so
/// that mutations reach the validation of the tables and automata instead
/// of stopping at the hash check.
pub fn load_bundle_rehashed(data: &[u8]) {
    let mut data = data.to_vec();
    rehash(&mut data);
    load_bundle(&data);
}

/// Normalizes arbitrary bytes as a request target and checks the result's
/// invariants: normalizing again changes nothing, no `//`, no dot segments,
/// only allowed bytes.
pub fn normalize(data: &[u8]) {
    let (path, _query) = split_target(data);
    let mut out = Vec::new();
    if normalize_path(path, &mut out).is_ok() {
        assert!(out.starts_with(b"/"));
        assert!(!out.windows(2).any(|w| w == b"//"), "merged slashes");
        assert!(out
            .iter()
            .all(|&b| (0x21..=0x7E).contains(&b) && b != b'\\'));
        assert!(
            !out.split(|&b| b == b'/').any(|s| s == b"." || s == b".."),
            "dot segments removed"
        );
        let mut again = Vec::new();
        assert_eq!(normalize_path(&out, &mut again), Ok(()));
        assert_eq!(again, out, "normalization is idempotent");
    }
}

/// [`normalize`], and a comparison with another implementation of spec
/// section 7: `reference` gives the normalized path of a raw target
/// (`None` for a bad path) and its query (the fuzz target and its corpus
/// replay pass the reference interpreter's `normalize_target`). Both
/// accept or reject the same targets, and give the same path and query.
pub fn normalize_against(
    data: &[u8],
    reference: impl Fn(&[u8]) -> (Option<String>, Option<String>),
) {
    normalize(data);
    let (path, query) = split_target(data);
    let mut out = Vec::new();
    let ours = normalize_path(path, &mut out).ok().map(|()| out);
    let (theirs, their_query) = reference(data);
    assert_eq!(
        ours.as_deref(),
        theirs.as_ref().map(String::as_bytes),
        "the normalized path of {:?}",
        String::from_utf8_lossy(data)
    );
    if std::str::from_utf8(data).is_ok() {
        assert_eq!(
            query,
            their_query.as_ref().map(String::as_bytes),
            "the query"
        );
    }
}
