//! `sluice authz` per check (issue 15): what an Envoy `CheckRequest` costs
//! beside its decision.
//!
//! Run: `cargo bench -p sluice-benches --bench authz`. For the decision
//! benchmarks' generated policy of 10 and 1,000 routes
//! (`SLUICE_BENCH_SIZES` sets them) and the check Envoy sends for their
//! allowed inbound request over HTTP/1.1
//! ([`sluice_benches::check::realistic_check_request`]: ten headers, the
//! source principal, socket addresses; 687 bytes encoded), criterion
//! times, in the group `authz/N`:
//!
//! - `decode`: prost decoding of the encoded `CheckRequest` (and dropping it);
//! - `map`: [`CheckView::from_check`] alone;
//! - `map_decide`: mapping and the decision
//!   ([`Bundle::decide_inbound_peer`]: classification included);
//! - `respond`: the `CheckResponse` built from the decision
//!   ([`decision_to_response::decided`], no added headers) and encoded
//!   into a reused buffer; `respond_add_headers`: the same with
//!   `add-headers = ["peer-identity", "route", "rule"]`;
//! - `all`: the four steps, as the server runs them for one check (tonic's
//!   framing and HTTP/2 aside).
//!
//! Then its own table (stderr): each step timed alone in interleaved
//! batches (median of 21 rounds, ns per check) and the share outside the
//! decision, (all − decide) / all: the steps timed alone do not add up to
//! `all`, so the share is everything in `all` that is not the decision.
//! Under `cargo test --bench
//! authz` (no `--bench` argument) criterion runs each function once, on 10
//! routes, and the table takes a few batches: a quick check that every
//! step works and decides as expected.

use criterion::{BenchmarkId, Criterion};
use prost::Message;
use sluice_authz::decision_to_response::{self, AddHeaders};
use sluice_authz::pb::{CheckRequest, CheckResponse};
use sluice_authz::{CheckView, MapConfig};
use sluice_benches::check::realistic_check_request;
use sluice_benches::{compile_generated, Kind};
use sluice_runtime::{AlignedBytes, Bundle, Scratch};
use std::hint::black_box;
use std::time::Instant;

/// The sizes: `SLUICE_BENCH_SIZES`, else 10 and 1,000 routes when
/// benchmarking and 10 in a quick test run.
fn sizes(benchmarking: bool) -> Vec<usize> {
    match std::env::var("SLUICE_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) if benchmarking => vec![10, 1_000],
        Err(_) => vec![10],
    }
}

const ADD_ALL: AddHeaders = AddHeaders {
    peer_identity: true,
    route: true,
    rule: true,
};

/// The steps of one check, on one bundle.
struct Steps<'b> {
    bundle: &'b Bundle<'b>,
    config: MapConfig,
    bytes: Vec<u8>,
    decoded: CheckRequest,
    scratch: Scratch,
    out: Vec<u8>,
}

impl<'b> Steps<'b> {
    fn new(bundle: &'b Bundle<'b>) -> Self {
        let bytes = realistic_check_request().encode_to_vec();
        let decoded = CheckRequest::decode(bytes.as_slice()).expect("the check decodes");
        Steps {
            bundle,
            config: MapConfig::default(),
            bytes,
            decoded,
            scratch: bundle.create_scratch(),
            out: Vec::with_capacity(1024),
        }
    }

    fn decode(&self) -> usize {
        let check = CheckRequest::decode(black_box(self.bytes.as_slice())).expect("decodes");
        black_box(&check);
        check.attributes.is_some() as usize
    }

    fn map(&self) -> u16 {
        let view = CheckView::from_check(black_box(&self.decoded), &self.config).expect("maps");
        black_box(&view);
        view.port()
    }

    fn map_decide(&mut self) -> bool {
        let view = CheckView::from_check(black_box(&self.decoded), &self.config).expect("maps");
        let d = self
            .bundle
            .decide_inbound_peer(&view.inbound(), &view.peer(), &mut self.scratch);
        black_box(&d);
        matches!(d, Ok(d) if d.allow)
    }

    /// The response to a decision taken outside the timing.
    fn respond(&mut self, add: &AddHeaders) -> usize {
        let view = CheckView::from_check(&self.decoded, &self.config).expect("maps");
        let d = self
            .bundle
            .decide_inbound_peer(&view.inbound(), &view.peer(), &mut self.scratch);
        let response: CheckResponse = decision_to_response::decided(black_box(&d), &view, add);
        self.out.clear();
        response.encode(&mut self.out).expect("the buffer grows");
        black_box(&self.out);
        self.out.len()
    }

    fn all(&mut self, add: &AddHeaders) -> usize {
        let check = CheckRequest::decode(black_box(self.bytes.as_slice())).expect("decodes");
        let view = CheckView::from_check(&check, &self.config).expect("maps");
        let d = self
            .bundle
            .decide_inbound_peer(&view.inbound(), &view.peer(), &mut self.scratch);
        let response = decision_to_response::decided(&d, &view, add);
        self.out.clear();
        response.encode(&mut self.out).expect("the buffer grows");
        black_box(&self.out);
        self.out.len()
    }

    /// The decision of the check is the allowed inbound HTTP request's, and
    /// the encoded answer is an allow.
    fn check(&mut self, n: usize) {
        let view = CheckView::from_check(&self.decoded, &self.config).expect("maps");
        let d = self
            .bundle
            .decide_inbound_peer(&view.inbound(), &view.peer(), &mut self.scratch);
        if let Err(e) = Kind::InboundHttp.check(&d) {
            panic!("{n} routes: {e}");
        }
        self.all(&ADD_ALL);
        let answer = CheckResponse::decode(self.out.as_slice()).expect("the answer decodes");
        assert_eq!(
            answer.status.as_ref().map(|s| s.code),
            Some(0),
            "{n} routes: {answer:?}"
        );
    }
}

fn bench(c: &mut Criterion, bundles: &[(usize, AlignedBytes)]) {
    for (n, aligned) in bundles {
        let bundle = Bundle::from_bytes(aligned.as_bytes()).expect("the bundle loads");
        let mut steps = Steps::new(&bundle);
        steps.check(*n);
        let mut group = c.benchmark_group(format!("authz/{n}"));
        group.bench_function(BenchmarkId::from_parameter("decode"), |b| {
            b.iter(|| steps.decode())
        });
        group.bench_function(BenchmarkId::from_parameter("map"), |b| {
            b.iter(|| steps.map())
        });
        group.bench_function(BenchmarkId::from_parameter("map_decide"), |b| {
            b.iter(|| steps.map_decide())
        });
        // `respond` decides too (the decision borrows the view): its time
        // here is respond + map_decide; the table subtracts.
        group.bench_function(BenchmarkId::from_parameter("decide_respond"), |b| {
            b.iter(|| steps.respond(&AddHeaders::default()))
        });
        group.bench_function(
            BenchmarkId::from_parameter("decide_respond_add_headers"),
            |b| b.iter(|| steps.respond(&ADD_ALL)),
        );
        group.bench_function(BenchmarkId::from_parameter("all"), |b| {
            b.iter(|| steps.all(&AddHeaders::default()))
        });
        group.finish();
    }
}

/// Median ns per call of each step, timed in interleaved batches.
fn table(bundles: &[(usize, AlignedBytes)], rounds: usize, batch: usize) {
    eprintln!(
        "\nns per check, median of {rounds} rounds of {batch}-call batches (steps interleaved):"
    );
    eprintln!("| routes | decode | map | map + decide | decide | respond | respond, 3 headers | all | all, 3 headers | outside the decision: (all − decide) / all |");
    eprintln!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (n, aligned) in bundles {
        let bundle = Bundle::from_bytes(aligned.as_bytes()).expect("the bundle loads");
        let mut s = Steps::new(&bundle);
        s.check(*n);
        let mut times: [Vec<f64>; 7] = Default::default();
        for _ in 0..rounds {
            let time = |f: &mut dyn FnMut() -> usize| {
                let start = Instant::now();
                let mut acc = 0usize;
                for _ in 0..batch {
                    acc = acc.wrapping_add(f());
                }
                black_box(acc);
                start.elapsed().as_nanos() as f64 / batch as f64
            };
            let t = [
                time(&mut || s.decode()),
                time(&mut || s.map() as usize),
                time(&mut || s.map_decide() as usize),
                time(&mut || s.respond(&AddHeaders::default())),
                time(&mut || s.respond(&ADD_ALL)),
                time(&mut || s.all(&AddHeaders::default())),
                time(&mut || s.all(&ADD_ALL)),
            ];
            for (v, t) in times.iter_mut().zip(t) {
                v.push(t);
            }
        }
        let m: Vec<f64> = times
            .iter_mut()
            .map(|v| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            })
            .collect();
        let [decode, map, map_decide, decide_respond, decide_respond_add, all, all_add] = m[..]
        else {
            unreachable!("seven steps")
        };
        let decide = map_decide - map;
        // `respond` was timed with its decision (and mapping): subtract them.
        let respond = decide_respond - map_decide;
        let respond_add = decide_respond_add - map_decide;
        eprintln!(
            "| {n} | {decode:.0} | {map:.0} | {map_decide:.0} | {decide:.0} | {respond:.0} | {respond_add:.0} | {all:.0} | {all_add:.0} | {:.0}% (3 headers: {:.0}%) |",
            (all - decide) / all * 100.0,
            (all_add - decide) / all_add * 100.0,
        );
    }
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let bundles: Vec<(usize, AlignedBytes)> = sizes(benchmarking)
        .into_iter()
        .map(|n| {
            let bytes = compile_generated(n)
                .unwrap_or_else(|e| panic!("the {n}-route policy does not compile:\n{e}"));
            (n, AlignedBytes::new(&bytes))
        })
        .collect();
    eprintln!(
        "the check: {} bytes encoded",
        realistic_check_request().encode_to_vec().len()
    );
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &bundles);
    criterion.final_summary();
    if benchmarking {
        table(&bundles, 21, 20_000);
    } else {
        table(&bundles, 3, 10);
    }
}
