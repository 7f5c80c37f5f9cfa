//! The cost of a candidate bundle in the proxy (issue 14): per kind, one
//! decision by the live bundle against the live decision, the candidate's
//! decision and their comparison and counting (`sluice_proxy::Comparison`,
//! what the proxy does per request with `[policy] candidate`). The candidate
//! is the same policy loaded separately, so every decision agrees (the
//! common path). Timed as `decide_table` times: many short batches,
//! interleaved round by round; prints the median ns per call of each row
//! and the ratio, as a Markdown table. It lives beside the allocation test,
//! the crate that depends on both the benchmark workload and the proxy.
//!
//! Run: `cargo run --release -p sluice-alloc-test --example candidate_cost -- 1000`.

use sluice_benches::{compile_generated, realistic_peer, Kind};
use sluice_runtime::{AlignedBytes, Bundle};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Rounds; each times every row once.
const ROUNDS: usize = 40;
/// Length of one batch.
const BATCH: Duration = Duration::from_millis(10);

/// Calls in one batch of `f`, calibrated to about [`BATCH`].
fn calibrate(f: &mut dyn FnMut()) -> u64 {
    let mut calls = 64u64;
    loop {
        let start = Instant::now();
        for _ in 0..calls {
            f();
        }
        if start.elapsed() >= BATCH / 4 {
            return calls * 4;
        }
        calls *= 2;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let routes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000);
    let bytes = compile_generated(routes).unwrap_or_else(|e| panic!("{routes} routes:\n{e}"));
    let (live_bytes, cand_bytes) = (AlignedBytes::new(&bytes), AlignedBytes::new(&bytes));
    let live = Bundle::from_bytes(live_bytes.as_bytes()).expect("the bundle loads");
    let candidate = Bundle::from_bytes(cand_bytes.as_bytes()).expect("the bundle loads");
    let peer = realistic_peer();
    let comparison = sluice_proxy::Comparison::default();
    let (mut live_scratch, mut live_class) = (live.create_scratch(), live.create_peer_class());
    let (mut cand_scratch, mut cand_class) =
        (candidate.create_scratch(), candidate.create_peer_class());
    live.classify(&peer, &mut live_class);
    candidate.classify(&peer, &mut cand_class);
    // (kind, with the candidate, calls per batch, ns per call of each batch)
    let mut cells: Vec<(Kind, bool, u64, Vec<f64>)> = Vec::new();
    for kind in Kind::ALL {
        if let Err(e) = kind.check(&kind.decide(&live, &live_class, &mut live_scratch)) {
            panic!("{}: {e}", kind.name());
        }
        for with_candidate in [false, true] {
            cells.push((kind, with_candidate, 0, Vec::new()));
        }
    }
    let mut run = |kind: Kind, with_candidate: bool| {
        let d = kind.decide(black_box(&live), &live_class, &mut live_scratch);
        if with_candidate {
            let c = kind.decide(black_box(&candidate), &cand_class, &mut cand_scratch);
            black_box(comparison.compare(&d, &c));
        } else {
            black_box(d.is_ok());
        }
    };
    for (kind, with, calls, _) in &mut cells {
        *calls = calibrate(&mut || run(*kind, *with));
    }
    for _ in 0..ROUNDS {
        for (kind, with, calls, times) in &mut cells {
            let start = Instant::now();
            for _ in 0..*calls {
                run(*kind, *with);
            }
            times.push(start.elapsed().as_nanos() as f64 / *calls as f64);
        }
    }
    assert!(
        !comparison
            .render()
            .contains("sluice_candidate_disagreements_total{"),
        "the candidate disagreed"
    );
    println!("Candidate cost at {routes} routes, median ns per call over {ROUNDS} rounds:\n");
    println!("| kind | live only | live + candidate + compare | ratio |");
    println!("|---|---:|---:|---:|");
    for pair in cells.chunks(2) {
        let (alone, with) = (median(pair[0].3.clone()), median(pair[1].3.clone()));
        println!(
            "| {} | {alone:.0} | {with:.0} | {:.2} |",
            pair[0].0.name(),
            with / alone
        );
    }
}
