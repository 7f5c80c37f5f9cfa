//! Replays the checked-in fuzz corpora of the proxy's parsers
//! (`fuzz/corpus/{framing,sniff,client_hello,authority}`) through the
//! functions the fuzz targets call. (The Workload API client's corpus is
//! replayed by `sluice-identity`'s tests.)

use sluice_testkit::replay_corpus;

#[test]
fn framing_corpus() {
    assert!(replay_corpus("framing", sluice_proxy::fuzz::framing) > 0);
}

#[test]
fn sniff_corpus() {
    assert!(replay_corpus("sniff", sluice_proxy::fuzz::sniff) > 0);
}

#[test]
fn client_hello_corpus() {
    assert!(replay_corpus("client_hello", sluice_proxy::fuzz::client_hello) > 0);
}

#[test]
fn authority_corpus() {
    assert!(replay_corpus("authority", sluice_proxy::fuzz::authority) > 0);
}

/// The seeds reach the deep paths: a real ClientHello gives its name.
#[test]
fn seeds_reach_the_parsers() {
    let corpus = sluice_testkit::repository().join("fuzz/corpus");
    let hello = std::fs::read(corpus.join("client_hello/two-records")).unwrap();
    assert_eq!(
        sluice_proxy::outbound::transparent::parse_sni(&hello).as_deref(),
        Some("api.example.com")
    );
}
