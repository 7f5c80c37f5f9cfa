//! Replays the checked-in fuzz corpora (`fuzz/corpus/{bundle,normalize}`)
//! through the same functions the fuzz targets call.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        if path.is_file() {
            f(&std::fs::read(&path).expect("corpus file"));
            n += 1;
        }
    }
    n
}

#[test]
fn bundle_corpus() {
    assert!(replay("bundle", sluice_runtime::fuzz::load_bundle) > 0);
}

#[test]
fn normalize_corpus() {
    assert!(replay("normalize", sluice_runtime::fuzz::normalize) > 0);
}
