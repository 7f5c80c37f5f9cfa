//! Replays the checked-in fuzz corpora (`fuzz/corpus/{bundle,normalize}`)
//! through the same functions the fuzz targets call.

use sluice_testkit::replay_corpus;

#[test]
fn bundle_corpus() {
    // As the fuzz target runs it: hash recomputed, then loaded and probed.
    assert!(replay_corpus("bundle", sluice_runtime::fuzz::load_bundle_rehashed) > 0);
}

#[test]
fn bundle_corpus_seeds_load_and_every_probe_reaches() {
    use sluice_runtime::{fuzz::probe::probes, AlignedBytes, Bundle};
    let dir = sluice_testkit::repository().join("fuzz/corpus/bundle");
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
    assert!(replay_corpus("normalize", sluice_runtime::fuzz::normalize) > 0);
}
