//! A cross-check of the criterion figures that holds up on a busy machine:
//! every kind and size is timed in many short batches, interleaved round
//! by round, so that load from other processes spreads over all of them;
//! prints, per kind and size, the fastest batch, the 25th percentile and
//! the median (ns per call) as a Markdown table.
//!
//! Run: `cargo run --release -p sluice-benches --example decide_table -- 10 100 1000 10000`.

use sluice_benches::{compile_generated, realistic_peer, Kind};
use sluice_runtime::{AlignedBytes, Bundle};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Rounds; each times every kind and size once.
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

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        sluice_benches::SIZES.to_vec()
    } else {
        sizes
    };
    let bundles: Vec<(usize, AlignedBytes)> = sizes
        .iter()
        .map(|&n| {
            let bytes = compile_generated(n).unwrap_or_else(|e| panic!("{n} routes:\n{e}"));
            (n, AlignedBytes::new(&bytes))
        })
        .collect();
    let loaded: Vec<(usize, Bundle<'_>)> = bundles
        .iter()
        .map(|(n, b)| {
            (
                *n,
                Bundle::from_bytes(b.as_bytes()).expect("the bundle loads"),
            )
        })
        .collect();
    let peer = realistic_peer();
    // Kind `None` is peer classification.
    let kinds: Vec<Option<Kind>> = std::iter::once(None)
        .chain(Kind::ALL.into_iter().map(Some))
        .collect();
    let mut cells = Vec::new();
    for kind in &kinds {
        for (n, bundle) in &loaded {
            let mut scratch = bundle.create_scratch();
            let mut class = bundle.create_peer_class();
            bundle.classify(&peer, &mut class);
            if let Some(kind) = kind {
                if let Err(e) = kind.check(&kind.decide(bundle, &class, &mut scratch)) {
                    panic!("{n} routes: {e}");
                }
            }
            cells.push((*kind, *n, bundle, scratch, class, 0u64, Vec::new()));
        }
    }
    let run = |kind: Option<Kind>, bundle: &Bundle<'_>, scratch: &mut _, class: &mut _| match kind {
        None => bundle.classify(black_box(&peer), class),
        Some(kind) => {
            black_box(kind.decide(black_box(bundle), class, scratch).is_ok());
        }
    };
    for (kind, _, bundle, scratch, class, calls, _) in &mut cells {
        *calls = calibrate(&mut || run(*kind, bundle, scratch, class));
    }
    for _ in 0..ROUNDS {
        for (kind, _, bundle, scratch, class, calls, times) in &mut cells {
            let start = Instant::now();
            for _ in 0..*calls {
                run(*kind, bundle, scratch, class);
            }
            times.push(start.elapsed().as_nanos() as f64 / *calls as f64);
        }
    }
    println!("| kind | routes | fastest ns | p25 ns | median ns |\n|---|---:|---:|---:|---:|");
    for (kind, n, _, _, _, _, times) in &mut cells {
        times.sort_by(f64::total_cmp);
        let name = kind.map_or("classify", Kind::name);
        let at = |q: usize| times[(times.len() - 1) * q / 100];
        println!(
            "| {name} | {n} | {:.0} | {:.0} | {:.0} |",
            at(0),
            at(25),
            at(50)
        );
    }
}
