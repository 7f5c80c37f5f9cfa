//! Replays the checked-in fuzz corpora of the proxy's parsers
//! (`fuzz/corpus/{framing,sniff,client_hello,authority,workload_api}`)
//! through the functions the fuzz targets call.

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
fn framing_corpus() {
    assert!(replay("framing", sluice_proxy::fuzz::framing) > 0);
}

#[test]
fn sniff_corpus() {
    assert!(replay("sniff", sluice_proxy::fuzz::sniff) > 0);
}

#[test]
fn client_hello_corpus() {
    assert!(replay("client_hello", sluice_proxy::fuzz::client_hello) > 0);
}

#[test]
fn authority_corpus() {
    assert!(replay("authority", sluice_proxy::fuzz::authority) > 0);
}

#[test]
fn workload_api_corpus() {
    assert!(replay("workload_api", sluice_proxy::fuzz::workload_api) > 0);
}

/// The seeds reach the deep paths: a real ClientHello gives its name, and
/// a real Workload API message decodes into an update.
#[test]
fn seeds_reach_the_parsers() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let hello = std::fs::read(corpus.join("client_hello/two-records")).unwrap();
    assert_eq!(
        sluice_proxy::outbound::transparent::parse_sni(&hello).as_deref(),
        Some("api.example.com")
    );
    let body = std::fs::read(corpus.join("workload_api/svid-and-federated")).unwrap();
    let message = body.get(6..).unwrap();
    let update = sluice_proxy::fuzz::decode_workload_update(message).expect("the seed decodes");
    assert_eq!(update.spiffe_id, "spiffe://example.org/ns/default/sa/web");
    assert_eq!(update.bundles.len(), 2);
}
