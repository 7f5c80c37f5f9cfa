//! Compile and load benchmarks on generated policies of 10, 100, 1,000 and
//! 10,000 routes.
//!
//! Run: `cargo bench -p sluice-benches --bench compile`;
//! `SLUICE_BENCH_SIZES=10,1000` restricts the policy sizes.
//!
//! `compile/N` times parsing and compiling the policy text (checks, lint,
//! automata, bundle bytes); `load/N` times `Bundle::from_bytes` with full
//! validation (hash, tables, automata) on 8-byte aligned bytes. Once per
//! size, the bundle size and automaton statistics go to stderr. Sample
//! sizes and times are small so that the whole run stays under about two
//! minutes.

use criterion::{BenchmarkId, Criterion, SamplingMode};
use sluice_benches::{bench_sizes, generate};
use sluice_compiler::{ast_to_ir::ast_to_ir, ir_to_bundle::ir_to_bundle_with_stats, Config};
use sluice_lang::parse::parse_str;
use sluice_runtime::{AlignedBytes, Bundle};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Compiles `text`, printing sizes and automaton statistics; the bundle bytes.
fn bundle_with_stats(n: usize, text: &str, config: &Config) -> Vec<u8> {
    let start = Instant::now();
    let (policy, diags) = parse_str("bench.sluice", text);
    assert!(diags.is_empty(), "{n} routes: {diags:?}");
    let parsed = start.elapsed();
    let (ir, diags) = ast_to_ir(&policy, config);
    let checked = start.elapsed();
    let ir = ir.unwrap_or_else(|| panic!("{n} routes: {diags:?}"));
    let (bytes, stats) =
        ir_to_bundle_with_stats(&ir, config).unwrap_or_else(|e| panic!("{n} routes: {e:?}"));
    let built = start.elapsed();
    eprintln!(
        "{n} routes: text {} bytes; parse {:.1?}, check+lower {:.1?}, automata+bundle {:.1?}; \
         bundle {} bytes; {} DFAs, {} DFA bytes, largest DFA {} bytes",
        text.len(),
        parsed,
        checked - parsed,
        built - checked,
        bytes.len(),
        stats.dfas,
        stats.dfa_bytes,
        stats.largest_dfa,
    );
    let aligned = AlignedBytes::new(&bytes);
    if let Ok(bundle) = Bundle::from_bytes(aligned.as_bytes()) {
        let s = bundle.summary();
        eprintln!(
            "{n} routes: rules: {} allow, {} deny, {} distinct from-clauses",
            s.allow_rules, s.deny_rules, s.clauses
        );
        eprintln!(
            "{n} routes: automata: {} DFAs, {} bytes",
            s.dfa_count, s.dfa_bytes
        );
    }
    bytes
}

/// Sizes above this are compiled three times by hand instead of by criterion.
const SLOW_COMPILE: usize = 1_000;

/// Parses and compiles `text` (checks, lint, automata, bundle bytes).
fn compile_text(text: &str) -> Option<usize> {
    let (policy, _) = parse_str("bench.sluice", text);
    sluice_compiler::compile(&policy, &Config::default())
        .ok()
        .map(|c| c.bundle.len())
}

fn compile(c: &mut Criterion) {
    let config = Config::default();
    let texts: Vec<(usize, String)> = bench_sizes()
        .into_iter()
        .map(|n| (n, generate(n)))
        .collect();
    let bundles: Vec<(usize, Vec<u8>)> = texts
        .iter()
        .map(|(n, text)| (*n, bundle_with_stats(*n, text, &config)))
        .collect();

    let mut group = c.benchmark_group("compile");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    for (n, text) in &texts {
        if *n > SLOW_COMPILE {
            continue;
        }
        group.measurement_time(Duration::from_secs(if *n >= 1_000 { 10 } else { 3 }));
        group.bench_with_input(BenchmarkId::from_parameter(n), text, |b, text| {
            b.iter(|| compile_text(black_box(text)))
        });
    }
    group.finish();
    // Criterion takes at least 10 samples; past `SLOW_COMPILE` routes a
    // compile takes seconds, so time three of them by hand.
    for (n, text) in texts.iter().filter(|(n, _)| *n > SLOW_COMPILE) {
        let mut runs: Vec<Duration> = (0..3)
            .map(|_| {
                let start = Instant::now();
                black_box(compile_text(text));
                start.elapsed()
            })
            .collect();
        runs.sort();
        println!(
            "compile/{n:<15} time:   median of 3 runs {:.3?} (min {:.3?}, max {:.3?})",
            runs[1], runs[0], runs[2]
        );
    }

    let mut group = c.benchmark_group("load");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (n, bytes) in &bundles {
        let aligned = AlignedBytes::new(bytes);
        assert!(
            Bundle::from_bytes(aligned.as_bytes()).is_ok(),
            "{n} routes: the bundle does not load"
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &aligned, |b, aligned| {
            b.iter(|| Bundle::from_bytes(black_box(aligned.as_bytes())).map(|b| b.hash()))
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    compile(&mut criterion);
    criterion.final_summary();
}
