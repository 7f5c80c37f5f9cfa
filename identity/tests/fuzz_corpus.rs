//! Replays the checked-in fuzz corpus of the Workload API client
//! (`fuzz/corpus/workload_api`) through the function the fuzz target calls.

use sluice_testkit::replay_corpus;

#[test]
fn workload_api_corpus() {
    assert!(replay_corpus("workload_api", sluice_identity::fuzz::workload_api) > 0);
}

/// The seeds reach the deep paths: a real Workload API message decodes
/// into an update.
#[test]
fn seed_decodes_into_an_update() {
    let corpus = sluice_testkit::repository().join("fuzz/corpus");
    let body = std::fs::read(corpus.join("workload_api/svid-and-federated")).unwrap();
    let message = body.get(6..).unwrap();
    let update = sluice_identity::fuzz::decode_workload_update(message).expect("the seed decodes");
    assert_eq!(update.spiffe_id, "spiffe://example.org/ns/default/sa/web");
    assert_eq!(update.bundles.len(), 2);
}
