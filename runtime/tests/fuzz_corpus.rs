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
    // As the fuzz target runs it: hash recomputed, then loaded and probed.
    assert!(replay("bundle", sluice_runtime::fuzz::load_bundle_rehashed) > 0);
}

#[test]
fn bundle_corpus_seeds_load_and_every_probe_reaches() {
    use sluice_runtime::{fuzz::probe::probes, AlignedBytes, Bundle};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/bundle");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).expect("the bundle corpus") {
        let path = entry.expect("corpus entry").path();
        let bytes = std::fs::read(&path).expect("corpus file");
        let aligned = AlignedBytes::new(&bytes);
        let Ok(bundle) = Bundle::from_bytes(aligned.as_bytes()) else {
            continue;
        };
        loaded += 1;
        let probes = probes(&bundle);
        let unreached = probes.unreached(&bundle);
        eprintln!(
            "{}: {} probes, not reached: {unreached:?}",
            path.display(),
            probes.probes.len()
        );
        assert!(
            unreached.is_empty(),
            "{}: not reached: {unreached:?}",
            path.display()
        );
    }
    assert!(loaded >= 5, "only {loaded} corpus bundles load");
}

#[test]
fn normalize_corpus() {
    assert!(replay("normalize", sluice_runtime::fuzz::normalize) > 0);
}
