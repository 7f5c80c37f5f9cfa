//! Decision benchmarks: peer classification and every kind of decision on
//! generated policies of 10, 100, 1,000 and 10,000 routes, with the fixed
//! realistic requests of `sluice_benches`.
//!
//! Run: `cargo bench -p sluice-benches --bench decide -- --warm-up-time 1 --measurement-time 3`;
//! `SLUICE_BENCH_SIZES=10,1000` restricts the policy sizes.
//!
//! Each benchmark first checks, outside the timed region, that its request
//! gets the expected decision (allowed by the expected rule or route), so
//! that a drift of the generator cannot make it time a trivial path.

use criterion::{BenchmarkId, Criterion};
use sluice_benches::{
    bench_sizes, compile_generated, realistic_peer, Kind, NORMALIZED_PATH, PEER_IDENTITY,
    REQUEST_PATH,
};
use sluice_runtime::{AlignedBytes, Bundle};
use std::hint::black_box;

/// Compiles every size once (the 10,000-route policy takes a while).
fn bundles() -> Vec<(usize, AlignedBytes)> {
    bench_sizes()
        .into_iter()
        .map(|n| {
            let bytes = compile_generated(n)
                .unwrap_or_else(|e| panic!("the {n}-route policy does not compile:\n{e}"));
            eprintln!("{n} routes: bundle of {} bytes", bytes.len());
            (n, AlignedBytes::new(&bytes))
        })
        .collect()
}

fn decide(c: &mut Criterion) {
    // Parts of an HTTP decision that do not depend on the policy.
    let mut group = c.benchmark_group("parts");
    let mut out = Vec::with_capacity(sluice_runtime::normalize::MAX_PATH_LEN + 8);
    group.bench_function("split_target", |b| {
        b.iter(|| sluice_runtime::normalize::split_target(black_box(REQUEST_PATH.as_bytes())))
    });
    let (path, _) = sluice_runtime::normalize::split_target(REQUEST_PATH.as_bytes());
    group.bench_function("normalize_path", |b| {
        b.iter(|| sluice_runtime::normalize::normalize_path(black_box(path), &mut out))
    });
    assert_eq!(out, NORMALIZED_PATH.as_bytes());
    group.bench_function("is_valid_spiffe_id", |b| {
        b.iter(|| sluice_runtime::peer::is_valid_spiffe_id(black_box(PEER_IDENTITY)))
    });
    group.finish();

    let bundles = bundles();
    let peer = realistic_peer();

    let mut group = c.benchmark_group("classify");
    for (n, bytes) in &bundles {
        let bundle = Bundle::from_bytes(bytes.as_bytes()).expect("bundle loads");
        let mut class = bundle.create_peer_class();
        bundle.classify(&peer, &mut class);
        assert!(class.has_identity());
        // The classification must let the expected rule match.
        let mut scratch = bundle.create_scratch();
        if let Err(e) =
            Kind::InboundHttp.check(&Kind::InboundHttp.decide(&bundle, &class, &mut scratch))
        {
            panic!("{n} routes: {e}");
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), &peer, |b, peer| {
            b.iter(|| bundle.classify(black_box(peer), &mut class))
        });
    }
    group.finish();

    for kind in Kind::ALL {
        let mut group = c.benchmark_group(kind.name());
        for (n, bytes) in &bundles {
            let bundle = Bundle::from_bytes(bytes.as_bytes()).expect("bundle loads");
            let mut scratch = bundle.create_scratch();
            let mut class = bundle.create_peer_class();
            bundle.classify(&peer, &mut class);
            if let Err(e) = kind.check(&kind.decide(&bundle, &class, &mut scratch)) {
                panic!("{n} routes: {e}");
            }
            group.bench_function(BenchmarkId::from_parameter(n), |b| match kind {
                Kind::InboundHttp | Kind::InboundTcp => {
                    let request = match kind {
                        Kind::InboundHttp => sluice_benches::realistic_inbound(),
                        _ => sluice_benches::realistic_inbound_tcp(),
                    };
                    b.iter(|| bundle.decide_inbound(black_box(&request), &class, &mut scratch))
                }
                _ => {
                    let request = match kind {
                        Kind::OutboundService => sluice_benches::realistic_outbound_service(),
                        Kind::EgressHttp => sluice_benches::realistic_egress_http(),
                        Kind::Tunnel => sluice_benches::realistic_tunnel(),
                        _ => sluice_benches::realistic_egress_tcp(),
                    };
                    b.iter(|| bundle.decide_outbound(black_box(&request), &mut scratch))
                }
            });
        }
        group.finish();
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    decide(&mut criterion);
    criterion.final_summary();
}
