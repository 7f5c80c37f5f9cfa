//! A cross-check of the criterion figures that holds up on a busy machine:
//! every kind and size is timed in many short batches, interleaved round
//! by round, so that load from other processes spreads over all of them;
//! prints, per kind and size, the fastest batch, the 25th percentile and
//! the median (ns per call) as a Markdown table, with each kind's median
//! over the floor's at the same size (issue 13).
//!
//! The floor rows are bare walks of the route automata over the already
//! normalized path (`sluice_runtime::bench`), what a decision that walks
//! them cannot beat: `floor_server_routes` for server `web` (the floor of
//! every kind but the outbound service decision) and
//! `floor_service_routes` for service `checkout-api` (its floor). A second
//! table times sub-steps of the inbound HTTP decision in the same run:
//! splitting off the query and normalizing the path, and route matching
//! (the walk, the candidates and their conditions).
//!
//! Run: `cargo run --release -p sluice-benches --example decide_table -- 10 100 1000 10000`.

use sluice_benches::{
    compile_generated, realistic_peer, Kind, NORMALIZED_PATH, REQUEST_HEADERS, REQUEST_PATH,
    WEB_PORT,
};
use sluice_runtime::normalize::{normalize_path, split_target};
use sluice_runtime::{bench, AlignedBytes, Bundle};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Rounds; each times every kind and size once.
const ROUNDS: usize = 40;
/// Length of one batch.
const BATCH: Duration = Duration::from_millis(10);
/// The service of the outbound service decision.
const SERVICE: &str = "checkout-api";

/// A row of the tables: what one call times.
#[derive(Clone, Copy, PartialEq)]
enum Row {
    /// Peer classification.
    Classify,
    /// A decision of a kind.
    Decide(Kind),
    /// The bare walk of `web`'s route automata over the normalized path.
    FloorServer,
    /// The bare walk of `checkout-api`'s route automata over the normalized path.
    FloorService,
    /// Splitting off the query and normalizing the path (inbound HTTP's first step).
    Normalize,
    /// Route matching on `web` over the normalized path: walk, candidates, conditions.
    MatchRoute,
}

impl Row {
    fn name(self) -> &'static str {
        match self {
            Row::Classify => "classify",
            Row::Decide(kind) => kind.name(),
            Row::FloorServer => "floor_server_routes",
            Row::FloorService => "floor_service_routes",
            Row::Normalize => "inbound_http: split + normalize",
            Row::MatchRoute => "inbound_http: match_route",
        }
    }

    /// Sub-steps go to the second table.
    fn is_step(self) -> bool {
        matches!(self, Row::Normalize | Row::MatchRoute)
    }

    /// The floor this row's median is divided by.
    fn floor(self) -> Row {
        match self {
            Row::Decide(Kind::OutboundService) | Row::FloorService => Row::FloorService,
            _ => Row::FloorServer,
        }
    }
}

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
    let path = NORMALIZED_PATH.as_bytes();
    let (raw_path, query) = split_target(REQUEST_PATH.as_bytes());
    let rows: Vec<Row> = std::iter::once(Row::Classify)
        .chain(Kind::ALL.into_iter().map(Row::Decide))
        .chain([
            Row::FloorServer,
            Row::FloorService,
            Row::Normalize,
            Row::MatchRoute,
        ])
        .collect();
    let mut cells = Vec::new();
    for &row in &rows {
        for (n, bundle) in &loaded {
            let mut scratch = bundle.create_scratch();
            let mut class = bundle.create_peer_class();
            bundle.classify(&peer, &mut class);
            let checked = match row {
                Row::Classify => Ok(()),
                Row::Decide(kind) => kind.check(&kind.decide(bundle, &class, &mut scratch)),
                Row::FloorServer => match bench::walk_server_routes(bundle, WEB_PORT, path) {
                    Some(m) if m > 0 => Ok(()),
                    other => Err(format!("web's route walk matched {other:?}")),
                },
                Row::FloorService => match bench::walk_service_routes(bundle, SERVICE, path) {
                    Some(m) if m > 0 => Ok(()),
                    other => Err(format!("{SERVICE}'s route walk matched {other:?}")),
                },
                Row::Normalize => {
                    let mut out = Vec::new();
                    match normalize_path(raw_path, &mut out) {
                        Ok(()) if out == path => Ok(()),
                        other => Err(format!("normalized to {other:?}: {out:?}")),
                    }
                }
                Row::MatchRoute => bench::match_server_route(
                    bundle,
                    WEB_PORT,
                    path,
                    "GET",
                    &REQUEST_HEADERS,
                    query,
                    &mut scratch,
                )
                .map(|_| ())
                .ok_or_else(|| "no route taken".to_string()),
            };
            if let Err(e) = checked {
                panic!("{n} routes, {}: {e}", row.name());
            }
            cells.push((row, *n, bundle, scratch, class, 0u64, Vec::new()));
        }
    }
    let mut out = Vec::with_capacity(path.len() * 2);
    let mut run = |row: Row, bundle: &Bundle<'_>, scratch: &mut _, class: &mut _| match row {
        Row::Classify => bundle.classify(black_box(&peer), class),
        Row::Decide(kind) => {
            black_box(kind.decide(black_box(bundle), class, scratch).is_ok());
        }
        Row::FloorServer => {
            black_box(bench::walk_server_routes(
                black_box(bundle),
                WEB_PORT,
                black_box(path),
            ));
        }
        Row::FloorService => {
            black_box(bench::walk_service_routes(
                black_box(bundle),
                SERVICE,
                black_box(path),
            ));
        }
        Row::Normalize => {
            let (p, q) = split_target(black_box(REQUEST_PATH.as_bytes()));
            black_box((normalize_path(p, &mut out).is_ok(), q));
        }
        Row::MatchRoute => {
            black_box(bench::match_server_route(
                black_box(bundle),
                WEB_PORT,
                black_box(path),
                "GET",
                &REQUEST_HEADERS,
                query,
                scratch,
            ));
        }
    };
    for (row, _, bundle, scratch, class, calls, _) in &mut cells {
        *calls = calibrate(&mut || run(*row, bundle, scratch, class));
    }
    for _ in 0..ROUNDS {
        for (row, _, bundle, scratch, class, calls, times) in &mut cells {
            let start = Instant::now();
            for _ in 0..*calls {
                run(*row, bundle, scratch, class);
            }
            times.push(start.elapsed().as_nanos() as f64 / *calls as f64);
        }
    }
    let mut medians = Vec::new();
    for (row, n, _, _, _, _, times) in &mut cells {
        times.sort_by(f64::total_cmp);
        medians.push((*row, *n, times[(times.len() - 1) / 2]));
    }
    let median = |row: Row, n: usize| {
        medians
            .iter()
            .find(|m| m.0 == row && m.1 == n)
            .map_or(f64::NAN, |m| m.2)
    };
    for steps in [false, true] {
        if steps {
            println!("\nSub-steps of inbound_http (the same run):\n");
        }
        println!(
            "| kind | routes | fastest ns | p25 ns | median ns | median / floor |\n\
             |---|---:|---:|---:|---:|---:|"
        );
        for (row, n, _, _, _, _, times) in &cells {
            if row.is_step() != steps {
                continue;
            }
            let at = |q: usize| times[(times.len() - 1) * q / 100];
            let ratio = at(50) / median(row.floor(), *n);
            println!(
                "| {} | {n} | {:.0} | {:.0} | {:.0} | {ratio:.2}× ({}) |",
                row.name(),
                at(0),
                at(25),
                at(50),
                row.floor().name()
            );
        }
    }
}
