//! Sluice, Cedar and Rego side by side on one workload (see the library's
//! documentation) at 10, 100 and 1,000 routes.
//!
//! Run: `cargo bench -p sluice-engines` (a few minutes after
//! compiling); `SLUICE_ENGINES_SIZES=10,1000` restricts the sizes. Quick
//! mode, as CI runs it: `cargo test -q -p sluice-engines --benches` (every
//! benchmark runs once, the tables come from a few iterations).
//!
//! For each size, before timing:
//! 1. the equivalence check: 1,000 generated requests decided by the three
//!    engines and a plain Rust reference; any difference panics;
//! 2. allocations per decision of the timed request in each engine, and
//!    zero allocations for Sluice asserted over the timed request and every
//!    request of the sample.
//!
//! Then criterion times one decision of the same allowed request in each
//! engine (group `engines/N`, functions `sluice`, `cedar`,
//! `cedar-entities`, `rego`, `rego-indexed`):
//! - Sluice end to end: `classify` the peer, then `decide_inbound`;
//! - Cedar: `Authorizer::is_authorized` on a prebuilt request and entities
//!   (`cedar`: one policy per route; `cedar-entities`: the routes as
//!   entities built once, a fixed set of policies, the request's resource
//!   the route, looked up when the request is built);
//! - Rego: `Engine::set_input` (a clone of a prebuilt `Value`) and
//!   `Engine::eval_rule("data.sluice.allow")` (`rego`: the policy walks the
//!   routes; `rego-indexed`: it looks up the path and its prefixes).
//!
//! Criterion does not compute ratios, so the run ends with its own table:
//! interleaved rounds of timed loops over the same request (median of the
//! rounds), the mean over the whole sample, the ratios, allocations per
//! decision, the time to build each engine from its text once (Sluice:
//! compile and load the bundle; Cedar: parse the policies; regorus: parse
//! the policy and load the data), and whether the goals are met.

use criterion::{BenchmarkId, Criterion};
use sluice_engines::{
    allocations_per_call, compile_sluice, sample, timed_request, CedarEngine, CedarEntitiesEngine,
    Engines, RegoEngine, SluiceEngine, Workload, SAMPLE_SIZE,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// `SLUICE_ENGINES_SIZES` (comma-separated), or 10, 100 and 1,000.
fn sizes() -> Vec<usize> {
    match std::env::var("SLUICE_ENGINES_SIZES") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) => sluice_engines::SIZES.to_vec(),
    }
}

/// Nanoseconds per call of `f`, over calls adding up to about `budget`.
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    f();
    let one = start.elapsed().max(Duration::from_nanos(1));
    let iters = (budget.as_nanos() / one.as_nanos()).clamp(1, 50_000_000) as u64;
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The engines in the order of [`Row`]'s arrays.
const ENGINES: usize = 5;
/// Their names in the table.
const NAMES: [&str; ENGINES] = ["Sluice", "Cedar", "Cedar entities", "Rego", "Rego indexed"];

/// One size's results for the final table. Arrays are in the order of
/// [`NAMES`]: Sluice, Cedar (policy per route), Cedar (entities), Rego
/// (scan), Rego (indexed).
struct Row {
    routes: usize,
    /// ns per decision of the timed request.
    fixed: [f64; ENGINES],
    /// Mean ns per decision over the sample.
    mean: [f64; ENGINES],
    /// Allocations per decision of the timed request.
    allocs: [f64; ENGINES],
    /// Milliseconds to build each engine from its text: Sluice (compile and
    /// load the bundle), the others from their policies and data.
    setup_ms: [f64; ENGINES],
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // As criterion decides: `--bench` without `--test` is a measurement run;
    // `cargo test --benches` passes neither and runs every benchmark once.
    let measuring = has("--bench") && !has("--test");
    let listing = has("--list");

    let sizes = sizes();
    let workloads: Vec<Workload> = sizes.iter().map(|&n| Workload::generate(n)).collect();
    // Setup, timed once per engine: Sluice compiles the policy text to a
    // bundle and loads it (full validation); Cedar parses its policies;
    // regorus parses the policy and loads the data.
    let mut compile_ms = Vec::new();
    let bundles: Vec<_> = workloads
        .iter()
        .map(|w| {
            let start = Instant::now();
            let bytes = compile_sluice(w).unwrap_or_else(|e| {
                panic!(
                    "the {}-route Sluice policy does not compile:\n{e}",
                    w.routes.len()
                )
            });
            compile_ms.push(start.elapsed().as_secs_f64() * 1e3);
            bytes
        })
        .collect();
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for ((w, bytes), compile_ms) in workloads.iter().zip(&bundles).zip(compile_ms) {
        let n = w.routes.len();
        let fail = |e: String| -> ! { panic!("{n} routes: {e}") };
        let start = Instant::now();
        let sluice = SluiceEngine::new(bytes).unwrap_or_else(|e| fail(e));
        let sluice_ms = compile_ms + start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        let cedar = CedarEngine::new(w).unwrap_or_else(|e| fail(e));
        let cedar_ms = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        let rego = RegoEngine::new(w).unwrap_or_else(|e| fail(e));
        let rego_ms = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        let cedar_entities = CedarEntitiesEngine::new(w).unwrap_or_else(|e| fail(e));
        let cedar_entities_ms = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        let rego_indexed = RegoEngine::indexed(w).unwrap_or_else(|e| fail(e));
        let rego_indexed_ms = start.elapsed().as_secs_f64() * 1e3;
        let setup_ms = [
            sluice_ms,
            cedar_ms,
            cedar_entities_ms,
            rego_ms,
            rego_indexed_ms,
        ];
        let mut engines = Engines {
            workload: w,
            sluice,
            cedar,
            cedar_entities,
            rego,
            rego_indexed,
        };
        let requests = sample(w, SAMPLE_SIZE);
        if !listing {
            match engines.check_equivalence(&requests) {
                Ok(agreement) => eprintln!("{agreement}"),
                Err(e) => panic!("the engines disagree: {e}"),
            }
        }
        let req = timed_request(w);
        let mut allocs = [0.0; ENGINES];
        if !listing {
            let calls = if measuring { 200 } else { 3 };
            let s = engines.sluice.request(&req);
            assert!(engines.sluice.decide(&s));
            allocs[0] = allocations_per_call(10, calls * 50, || {
                black_box(engines.sluice.decide(black_box(&s)));
            });
            // Denied requests too: every request of the sample.
            let sluice_sample: Vec<_> =
                requests.iter().map(|r| engines.sluice.request(r)).collect();
            let over_sample = allocations_per_call(0, 1, || {
                for r in &sluice_sample {
                    black_box(engines.sluice.decide(black_box(r)));
                }
            });
            assert!(
                allocs[0] == 0.0 && over_sample == 0.0,
                "{n} routes: Sluice allocates ({} per timed decision, {over_sample} over the sample)",
                allocs[0]
            );
            let c = engines.cedar.request(&req);
            assert!(engines.cedar.decide(&c));
            allocs[1] = allocations_per_call(2, calls, || {
                black_box(engines.cedar.decide(black_box(&c)));
            });
            let c = engines.cedar_entities.request(&req);
            assert!(engines.cedar_entities.decide(&c));
            allocs[2] = allocations_per_call(2, calls, || {
                black_box(engines.cedar_entities.decide(black_box(&c)));
            });
            let r = engines.rego.request(&req);
            assert!(engines.rego.decide(&r));
            allocs[3] = allocations_per_call(2, calls, || {
                black_box(engines.rego.decide(black_box(&r)));
            });
            let r = engines.rego_indexed.request(&req);
            assert!(engines.rego_indexed.decide(&r));
            allocs[4] = allocations_per_call(2, calls, || {
                black_box(engines.rego_indexed.decide(black_box(&r)));
            });
            eprintln!(
                "{n} routes: allocations per decision: sluice {} (also over the whole sample), \
                 cedar {:.0}, cedar entities {:.0}, rego {:.0}, rego indexed {:.0}",
                allocs[0], allocs[1], allocs[2], allocs[3], allocs[4]
            );
        }
        rows.push(Row {
            routes: n,
            fixed: [0.0; ENGINES],
            mean: [0.0; ENGINES],
            allocs,
            setup_ms,
        });
        all.push((engines, req, requests));
    }

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    for (engines, req, _) in &mut all {
        let n = engines.workload.routes.len();
        let mut group = criterion.benchmark_group(format!("engines/{n}"));
        let s = engines.sluice.request(req);
        group.bench_function(BenchmarkId::from_parameter("sluice"), |b| {
            b.iter(|| engines.sluice.decide(black_box(&s)))
        });
        let c = engines.cedar.request(req);
        group.bench_function(BenchmarkId::from_parameter("cedar"), |b| {
            b.iter(|| engines.cedar.decide(black_box(&c)))
        });
        let c = engines.cedar_entities.request(req);
        group.bench_function(BenchmarkId::from_parameter("cedar-entities"), |b| {
            b.iter(|| engines.cedar_entities.decide(black_box(&c)))
        });
        let r = engines.rego.request(req);
        group.bench_function(BenchmarkId::from_parameter("rego"), |b| {
            b.iter(|| engines.rego.decide(black_box(&r)))
        });
        let r = engines.rego_indexed.request(req);
        group.bench_function(BenchmarkId::from_parameter("rego-indexed"), |b| {
            b.iter(|| engines.rego_indexed.decide(black_box(&r)))
        });
        group.finish();
    }
    criterion.final_summary();
    if listing {
        return;
    }

    // The ratio table: interleaved rounds, so every engine sees the same
    // machine load.
    let (rounds, budget, sample_len) = if measuring {
        (7, Duration::from_millis(150), SAMPLE_SIZE)
    } else {
        (1, Duration::from_micros(200), 10)
    };
    for ((engines, req, requests), row) in all.iter_mut().zip(&mut rows) {
        let s = engines.sluice.request(req);
        let c = engines.cedar.request(req);
        let ce = engines.cedar_entities.request(req);
        let r = engines.rego.request(req);
        let ri = engines.rego_indexed.request(req);
        let requests = &requests[..sample_len.min(requests.len())];
        let ss: Vec<_> = requests.iter().map(|q| engines.sluice.request(q)).collect();
        let cs: Vec<_> = requests.iter().map(|q| engines.cedar.request(q)).collect();
        let ces: Vec<_> = requests
            .iter()
            .map(|q| engines.cedar_entities.request(q))
            .collect();
        let rs: Vec<_> = requests.iter().map(|q| engines.rego.request(q)).collect();
        let ris: Vec<_> = requests
            .iter()
            .map(|q| engines.rego_indexed.request(q))
            .collect();
        let mut fixed: [Vec<f64>; ENGINES] = Default::default();
        let mut mean: [Vec<f64>; ENGINES] = Default::default();
        for round in 0..rounds {
            for k in 0..ENGINES {
                let engine = (round + k) % ENGINES;
                // The timed request for about `budget`, then one pass over
                // the sample.
                let (f, m) = match engine {
                    0 => (
                        time_per_call(budget, || {
                            black_box(engines.sluice.decide(black_box(&s)));
                        }),
                        time_per_call(Duration::ZERO, || {
                            for q in &ss {
                                black_box(engines.sluice.decide(black_box(q)));
                            }
                        }),
                    ),
                    1 => (
                        time_per_call(budget, || {
                            black_box(engines.cedar.decide(black_box(&c)));
                        }),
                        time_per_call(Duration::ZERO, || {
                            for q in &cs {
                                black_box(engines.cedar.decide(black_box(q)));
                            }
                        }),
                    ),
                    2 => (
                        time_per_call(budget, || {
                            black_box(engines.cedar_entities.decide(black_box(&ce)));
                        }),
                        time_per_call(Duration::ZERO, || {
                            for q in &ces {
                                black_box(engines.cedar_entities.decide(black_box(q)));
                            }
                        }),
                    ),
                    3 => (
                        time_per_call(budget, || {
                            black_box(engines.rego.decide(black_box(&r)));
                        }),
                        time_per_call(Duration::ZERO, || {
                            for q in &rs {
                                black_box(engines.rego.decide(black_box(q)));
                            }
                        }),
                    ),
                    _ => (
                        time_per_call(budget, || {
                            black_box(engines.rego_indexed.decide(black_box(&ri)));
                        }),
                        time_per_call(Duration::ZERO, || {
                            for q in &ris {
                                black_box(engines.rego_indexed.decide(black_box(q)));
                            }
                        }),
                    ),
                };
                fixed[engine].push(f);
                mean[engine].push(m / requests.len() as f64);
            }
        }
        for k in 0..ENGINES {
            row.fixed[k] = median(std::mem::take(&mut fixed[k]));
            row.mean[k] = median(std::mem::take(&mut mean[k]));
        }
    }

    println!();
    if measuring {
        println!(
            "ns per decision: the timed request (median of {rounds} interleaved rounds of ~{} ms \
             each) and the mean over the {SAMPLE_SIZE} sample requests (median of {rounds} passes)",
            budget.as_millis()
        );
    } else {
        println!("quick mode (a few iterations): the figures below are not measurements");
    }
    println!("engines: {}", NAMES.join(", "));
    println!();
    println!(
        "| routes | engine | ns | / Sluice | sample mean ns | sample / Sluice \
         | allocs/decision | setup ms |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        for (k, name) in NAMES.iter().enumerate() {
            println!(
                "| {} | {} | {:.0} | {:.0}× | {:.0} | {:.0}× | {:.0} | {:.1} |",
                row.routes,
                name,
                row.fixed[k],
                row.fixed[k] / row.fixed[0],
                row.mean[k],
                row.mean[k] / row.mean[0],
                row.allocs[k],
                row.setup_ms[k],
            );
        }
    }
    println!();
    for row in &rows {
        // Issue 5's goals for the plain encodings; issue 13's for the
        // stronger ones (≥ 1,000× Cedar in either encoding, ≥ 50× the
        // indexed Rego).
        let goals: &[(usize, f64)] = match row.routes {
            1_000 => &[(1, 1_000.0), (2, 1_000.0), (3, 500.0), (4, 50.0)],
            10 => &[(1, 50.0), (3, 50.0)],
            _ => &[],
        };
        for &(k, goal) in goals {
            let ratio = row.fixed[k] / row.fixed[0];
            println!(
                "goal at {} routes: Sluice ≥ {goal:.0}× faster than {}: {:.0}×, {}",
                row.routes,
                NAMES[k],
                ratio,
                if !measuring {
                    "not judged in quick mode"
                } else if ratio >= goal {
                    "met"
                } else {
                    "MISSED"
                }
            );
        }
    }
    println!("goal: zero allocations per Sluice decision: met (asserted above)");
}
