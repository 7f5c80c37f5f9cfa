//! `sluice diff` on two 1,000-route policies that differ in one rule
//! (issue 14: at most 2 s).
//!
//! Run: `cargo bench -p sluice-benches --bench diff`. The policies are the
//! decision benchmarks' generated policy ([`sluice_benches::generate`]) and
//! the same text with one rule's `from` clause widened (`allow
//! svc7-canary-qa`: namespace `qa` becomes `qa`, `staging`). Both compile
//! outside the timing; `diff/N` times [`sluice_cli::diff::diff_bundles`] on
//! the two bundles' bytes. The entry count goes to stderr once.
//! `SLUICE_BENCH_SIZES=100,1000` sets the sizes; under `cargo test
//! --benches` (no `--bench` argument) only 100 routes run, once.

use criterion::{BenchmarkId, Criterion, SamplingMode};
use sluice_benches::{compile_text, generate};
use sluice_cli::diff::diff_bundles;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The rule the new policy changes, and how.
const OLD_RULE: &str = "allow svc7-canary-qa { to web.svc7-items-canary from namespace \"qa\" }";
const NEW_RULE: &str =
    "allow svc7-canary-qa { to web.svc7-items-canary from namespace \"qa\", \"staging\" }";

/// The sizes: `SLUICE_BENCH_SIZES`, else 1,000 routes when benchmarking
/// and 100 in a quick test run.
fn sizes(benchmarking: bool) -> Vec<usize> {
    match std::env::var("SLUICE_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) if benchmarking => vec![1_000],
        Err(_) => vec![100],
    }
}

/// The bundles of the generated `n`-route policy and of its one-rule change.
fn pair(n: usize) -> (Vec<u8>, Vec<u8>) {
    let old = generate(n);
    assert_eq!(old.matches(OLD_RULE).count(), 1, "the rule to change");
    let new = old.replace(OLD_RULE, NEW_RULE);
    let compile = |text: &str| {
        compile_text(text)
            .unwrap_or_else(|e| panic!("{n} routes: {e}"))
            .bundle
    };
    (compile(&old), compile(&new))
}

fn diff(c: &mut Criterion, benchmarking: bool) {
    let mut group = c.benchmark_group("diff");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(10));
    for n in sizes(benchmarking) {
        let (old, new) = pair(n);
        let start = Instant::now();
        let entries = diff_bundles(&old, &new).unwrap_or_else(|e| panic!("{n} routes: {e}"));
        eprintln!(
            "diff/{n}: {} entries, first run {:.3?}; bundles {} and {} bytes",
            entries.len(),
            start.elapsed(),
            old.len(),
            new.len()
        );
        assert!(
            !entries.is_empty(),
            "{n} routes: the changed rule makes no entry"
        );
        group.bench_with_input(
            BenchmarkId::from_parameter(n),
            &(old, new),
            |b, (old, new)| {
                b.iter(|| diff_bundles(black_box(old), black_box(new)).map(|e| e.len()))
            },
        );
    }
    group.finish();
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let mut criterion = Criterion::default().configure_from_args();
    diff(&mut criterion, benchmarking);
    criterion.final_summary();
}
