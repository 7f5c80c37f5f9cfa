//! Replays the checked-in normalize fuzz corpus (`fuzz/corpus/normalize`)
//! through the function the `normalize` fuzz target calls: the runtime's
//! path normalization checked against this crate's.

#[test]
fn normalize_corpus() {
    let replayed = sluice_testkit::replay_corpus("normalize", |data| {
        sluice_runtime::fuzz::normalize_against(data, sluice_reference::normalize_target)
    });
    assert!(replayed > 0);
}

/// The comparison sees a difference: a "reference" that keeps `//` is
/// caught.
#[test]
#[should_panic(expected = "the normalized path")]
fn normalize_against_catches_a_difference() {
    sluice_runtime::fuzz::normalize_against(b"/a//b", |t| {
        (Some(String::from_utf8_lossy(t).into_owned()), None)
    });
}
