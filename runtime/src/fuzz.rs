//! Plain entry points for the fuzz targets in `fuzz/` (and the corpus
//! replay tests): each takes arbitrary bytes and must never panic.

use crate::bundle::{AlignedBytes, Bundle};
use crate::normalize::{normalize_path, split_target};
use crate::request::{Http, Inbound, Outbound, Peer};

/// Loads arbitrary bytes as a bundle; when they load, decides a few requests.
pub fn load_bundle(data: &[u8]) {
    let aligned = AlignedBytes::new(data);
    let Ok(bundle) = Bundle::from_bytes(aligned.as_bytes()) else {
        return;
    };
    let mut scratch = bundle.create_scratch();
    let mut class = bundle.create_peer_class();
    bundle.classify(
        &Peer {
            ip: "10.1.2.3".parse().ok(),
            identity: Some("spiffe://td/ns/a/sa/b"),
        },
        &mut class,
    );
    let headers = [("content-type", "application/grpc")];
    for port in [1, 80, 443, 8080, 65535] {
        let http = Http {
            method: "GET",
            path: b"/a/b?c=d",
            headers: &headers,
        };
        let _ = bundle.decide_inbound(
            &Inbound {
                port,
                http: Some(http),
            },
            &class,
            &mut scratch,
        );
        let _ = bundle.decide_inbound(&Inbound { port, http: None }, &class, &mut scratch);
    }
    let http = Http {
        method: "GET",
        path: b"/",
        headers: &headers,
    };
    let _ = bundle.decide_outbound(
        &Outbound {
            authority: Some("a.example.com"),
            http: Some(http),
            ..Outbound::default()
        },
        &mut scratch,
    );
    let _ = bundle.decide_outbound(
        &Outbound {
            authority: Some("a.example.com:443"),
            ..Outbound::default()
        },
        &mut scratch,
    );
    let _ = bundle.decide_outbound(
        &Outbound {
            ip: "10.0.0.1".parse().ok(),
            port: Some(5432),
            ..Outbound::default()
        },
        &mut scratch,
    );
    let _ = bundle.summary();
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
