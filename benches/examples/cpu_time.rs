//! A cross-check of the criterion figures that a busy machine cannot
//! inflate: thread CPU time per decision (from `/proc/thread-self/schedstat`,
//! Linux only) next to wall time, over about a second of decisions per kind
//! and size, the median of five runs.
//!
//! Run: `cargo run --release -p sluice-benches --example cpu_time -- 10 100 1000 10000`.

use sluice_benches::{compile_generated, realistic_peer, Kind};
use sluice_runtime::{AlignedBytes, Bundle};
use std::hint::black_box;
use std::time::Instant;

/// CPU time consumed by this thread so far, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Median over five runs of (CPU ns, wall ns) per call of `f`.
fn measure(mut f: impl FnMut()) -> (f64, f64) {
    // Calibrate: calls in about 200 ms.
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed().as_millis() < 200 {
        for _ in 0..1000 {
            f();
        }
        calls += 1000;
    }
    let mut runs = Vec::new();
    for _ in 0..5 {
        let (cpu, wall) = (thread_cpu_ns(), Instant::now());
        for _ in 0..calls {
            f();
        }
        let wall = wall.elapsed().as_nanos() as f64;
        let cpu = thread_cpu_ns().saturating_sub(cpu) as f64;
        runs.push((cpu / calls as f64, wall / calls as f64));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs[2]
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 1000]
    } else {
        sizes
    };
    println!("| kind | routes | CPU ns/op | wall ns/op |\n|---|---:|---:|---:|");
    for n in sizes {
        let bytes = compile_generated(n).unwrap_or_else(|e| panic!("{n} routes:\n{e}"));
        let aligned = AlignedBytes::new(&bytes);
        let bundle = Bundle::from_bytes(aligned.as_bytes()).expect("the bundle loads");
        let mut scratch = bundle.create_scratch();
        let mut class = bundle.create_peer_class();
        let peer = realistic_peer();
        let (cpu, wall) = measure(|| bundle.classify(black_box(&peer), &mut class));
        println!("| classify | {n} | {cpu:.0} | {wall:.0} |");
        for kind in Kind::ALL {
            if let Err(e) = kind.check(&kind.decide(&bundle, &class, &mut scratch)) {
                panic!("{n} routes: {e}");
            }
            let (cpu, wall) = measure(|| {
                black_box(
                    kind.decide(black_box(&bundle), &class, &mut scratch)
                        .is_ok(),
                );
            });
            println!("| {} | {n} | {cpu:.0} | {wall:.0} |", kind.name());
        }
    }
}
