//! Replays the checked-in normalize fuzz corpus (`fuzz/corpus/normalize`)
//! through the function the `normalize` fuzz target calls: the runtime's
//! path normalization checked against this crate's.

#[test]
fn normalize_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/normalize");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        if path.is_file() {
            let data = std::fs::read(&path).expect("corpus file");
            sluice_runtime::fuzz::normalize_against(&data, sluice_reference::normalize_target);
            n += 1;
        }
    }
    assert!(n > 0);
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
