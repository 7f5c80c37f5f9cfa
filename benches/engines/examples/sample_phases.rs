//! Where Sluice spends its time on the engine comparison's sample requests
//! (issue 13): the 1,000 mixed requests of [`sluice_engines::sample`]
//! (allowed, denied by peer, wrong method, no route; a new peer each,
//! classification included), decided as the `engines` bench decides them,
//! and the same requests through each phase of the decision alone.
//!
//! Two ways of running each phase over the sample, interleaved round by
//! round with every size and phase:
//! - **pass**: one pass over the 1,000 requests in order, right after a
//!   warm-up pass, as the `engines` bench times its sample mean; each
//!   request meets caches holding whatever the previous ones left;
//! - **hot**: each request repeated [`HOT_REPEAT`] times in a row, so its
//!   automaton states and branches are cached and predicted; the mean over
//!   the requests is the work the phase does per request.
//!
//! pass − hot is what a new request costs for being new (cache and branch
//! misses); hot is the work itself. Phases:
//! - `decide`: `classify` then `decide_inbound` (the bench's Sluice call);
//! - `classify`: peer classification alone (identity automata, networks,
//!   marking the satisfied clauses); `classify: identity only` and
//!   `classify: IP only` classify the same peer without its IP, or without
//!   its identity;
//! - `normalize`: splitting off the query and normalizing the path;
//! - `walk`: the bare walk of the route automata over the normalized path
//!   (`sluice_runtime::bench`, the decision table's floor);
//! - `match_route`: route matching on the normalized path (the walk, the
//!   candidates, their methods);
//! - `rest`: `decide` − `classify` − `normalize` − `match_route`: server
//!   lookup, rules, the decision (a residual, not timed by itself).
//!
//! A last table gives the pass mean of `decide` by the request's intent
//! (each request timed alone; the cost of reading the clock is
//! subtracted).
//!
//! Run: `cargo run --release -p sluice-engines --example sample_phases -- 10 100 1000`
//! (sizes default to 10, 100 and 1,000; `ROUNDS=N` sets the rounds, 7 by
//! default).
//!
//! `PROFILE=PHASE PASSES=N` (PHASE one of `decide`, `classify`,
//! `classify_identity`, `classify_ip`, `normalize`, `walk`, `match_route`) runs only N passes of that phase over
//! the sample of each size, in the function `profiled_passes`, for a
//! profiler: `perf record`, or callgrind's simulated caches with
//! `valgrind --tool=callgrind --toggle-collect='*profiled_passes*'
//! --cache-sim=yes --branch-sim=yes` (the machine's VM exposes no hardware
//! counters to `perf stat`).

use sluice_engines::{compile_sluice, sample, Intent, Request, Workload, PORT, SAMPLE_SIZE};
use sluice_runtime::normalize::{normalize_path, split_target};
use sluice_runtime::{bench, Bundle, Http, Inbound, NoHeaders, Peer, PeerClass, Scratch};
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

/// Times each request is repeated in a row in the hot mode.
const HOT_REPEAT: usize = 64;

/// The timed phases, in the table's order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Decide,
    Classify,
    ClassifyIdentity,
    ClassifyNetwork,
    Normalize,
    Walk,
    MatchRoute,
}

const PHASES: [Phase; 7] = [
    Phase::Decide,
    Phase::Classify,
    Phase::ClassifyIdentity,
    Phase::ClassifyNetwork,
    Phase::Normalize,
    Phase::Walk,
    Phase::MatchRoute,
];

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Decide => "decide (classify + decide_inbound)",
            Phase::Classify => "classify",
            Phase::ClassifyIdentity => "classify: identity only",
            Phase::ClassifyNetwork => "classify: IP only",
            Phase::Normalize => "split + normalize",
            Phase::Walk => "walk of the route automata",
            Phase::MatchRoute => "match_route (walk, candidates, methods)",
        }
    }
}

/// One size: the loaded bundle, its per-decision state and the sample.
struct Size<'a> {
    routes: usize,
    bundle: Bundle<'a>,
    class: PeerClass,
    scratch: Scratch,
    requests: Vec<Request>,
    /// The requests' paths, normalized once (for `walk` and `match_route`).
    normalized: Vec<Vec<u8>>,
    /// Scratch path for `normalize`.
    path: Vec<u8>,
}

fn peer(r: &Request) -> Peer<'_> {
    Peer {
        ip: Some(IpAddr::V4(r.ip)),
        identity: r.identity.as_deref(),
    }
}

fn inbound(r: &Request) -> Inbound<'_> {
    Inbound {
        port: PORT,
        http: Some(Http {
            method: r.method,
            path: r.path.as_bytes(),
            headers: &NoHeaders,
        }),
    }
}

impl Size<'_> {
    /// Runs `phase` on request `i` once; returns something to black-box.
    #[inline(always)]
    fn run(&mut self, phase: Phase, i: usize) -> usize {
        let r = &self.requests[i];
        match phase {
            Phase::Decide => {
                self.bundle.classify(&peer(r), &mut self.class);
                match self
                    .bundle
                    .decide_inbound(&inbound(r), &self.class, &mut self.scratch)
                {
                    Ok(d) => d.allow as usize,
                    Err(e) => panic!("request error {e:?}"),
                }
            }
            Phase::Classify => {
                self.bundle.classify(&peer(r), &mut self.class);
                self.class.has_identity() as usize
            }
            Phase::ClassifyIdentity => {
                let p = Peer {
                    ip: None,
                    ..peer(r)
                };
                self.bundle.classify(&p, &mut self.class);
                self.class.has_identity() as usize
            }
            Phase::ClassifyNetwork => {
                let p = Peer {
                    identity: None,
                    ..peer(r)
                };
                self.bundle.classify(&p, &mut self.class);
                self.class.has_identity() as usize
            }
            Phase::Normalize => {
                let (path, _query) = split_target(r.path.as_bytes());
                normalize_path(path, &mut self.path).is_ok() as usize
            }
            Phase::Walk => bench::walk_server_routes(&self.bundle, PORT, &self.normalized[i])
                .expect("server web"),
            Phase::MatchRoute => bench::match_server_route(
                &self.bundle,
                PORT,
                &self.normalized[i],
                r.method,
                &NoHeaders,
                None,
                &mut self.scratch,
            )
            .map_or(usize::MAX, |r| r as usize),
        }
    }

    /// Mean ns per request of one pass over the sample, after a warm-up pass.
    fn pass(&mut self, phase: Phase) -> f64 {
        let n = self.requests.len();
        for i in 0..n {
            black_box(self.run(phase, black_box(i)));
        }
        let start = Instant::now();
        for i in 0..n {
            black_box(self.run(phase, black_box(i)));
        }
        start.elapsed().as_nanos() as f64 / n as f64
    }

    /// Mean over the requests of ns per call, each request repeated
    /// [`HOT_REPEAT`] times in a row (after one untimed call).
    fn hot(&mut self, phase: Phase) -> f64 {
        let n = self.requests.len();
        let mut total = 0.0;
        for i in 0..n {
            black_box(self.run(phase, black_box(i)));
            let start = Instant::now();
            for _ in 0..HOT_REPEAT {
                black_box(self.run(phase, black_box(i)));
            }
            total += start.elapsed().as_nanos() as f64 / HOT_REPEAT as f64;
        }
        total / n as f64
    }

    /// Pass mean of `decide` by intent, each request timed alone, minus
    /// `clock` (ns per pair of clock readings).
    fn by_intent(&mut self, clock: f64) -> [(f64, usize); 4] {
        let n = self.requests.len();
        for i in 0..n {
            black_box(self.run(Phase::Decide, black_box(i)));
        }
        let mut sums = [(0.0, 0usize); 4];
        for i in 0..n {
            let start = Instant::now();
            black_box(self.run(Phase::Decide, black_box(i)));
            let ns = start.elapsed().as_nanos() as f64 - clock;
            let k = intent_index(self.requests[i].intent);
            sums[k].0 += ns;
            sums[k].1 += 1;
        }
        sums.map(|(s, c)| (s / c.max(1) as f64, c))
    }
}

/// `passes` passes of `phase` over the sample (the `PROFILE` mode).
#[inline(never)]
fn profiled_passes(size: &mut Size<'_>, phase: Phase, passes: usize) -> usize {
    let mut acc = 0usize;
    for _ in 0..passes {
        for i in 0..size.requests.len() {
            acc = acc.wrapping_add(size.run(phase, black_box(i)));
        }
    }
    acc
}

const INTENTS: [&str; 4] = ["allowed", "denied: peer", "denied: method", "no route"];

fn intent_index(i: Intent) -> usize {
    match i {
        Intent::Allowed => 0,
        Intent::WrongPeer => 1,
        Intent::WrongMethod => 2,
        Intent::NoRoute => 3,
    }
}

/// ns per pair of `Instant::now()` readings.
fn clock_cost() -> f64 {
    let n = 200_000;
    let start = Instant::now();
    for _ in 0..n {
        black_box(Instant::now());
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn main() {
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = sluice_engines::SIZES.to_vec();
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let workloads: Vec<Workload> = sizes.iter().map(|&n| Workload::generate(n)).collect();
    let bytes: Vec<_> = workloads
        .iter()
        .map(|w| compile_sluice(w).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let mut all: Vec<Size<'_>> = workloads
        .iter()
        .zip(&bytes)
        .map(|(w, b)| {
            let bundle = Bundle::from_bytes(b.as_bytes()).expect("the bundle loads");
            let requests = sample(w, SAMPLE_SIZE);
            let mut normalized = Vec::new();
            for r in &requests {
                let mut out = Vec::new();
                normalize_path(split_target(r.path.as_bytes()).0, &mut out).expect("a path");
                normalized.push(out);
            }
            let summary = bundle.summary();
            eprintln!(
                "{} routes: bundle {} bytes, {} from clauses",
                w.routes.len(),
                b.as_bytes().len(),
                summary.clauses
            );
            Size {
                routes: w.routes.len(),
                class: bundle.create_peer_class(),
                scratch: bundle.create_scratch(),
                bundle,
                requests,
                normalized,
                path: Vec::new(),
            }
        })
        .collect();

    if let Ok(name) = std::env::var("PROFILE") {
        let phase = match name.as_str() {
            "decide" => Phase::Decide,
            "classify" => Phase::Classify,
            "classify_identity" => Phase::ClassifyIdentity,
            "classify_ip" => Phase::ClassifyNetwork,
            "normalize" => Phase::Normalize,
            "walk" => Phase::Walk,
            "match_route" => Phase::MatchRoute,
            other => panic!("PROFILE={other}: not a phase"),
        };
        let passes: usize = std::env::var("PASSES")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(100);
        for size in &mut all {
            let start = Instant::now();
            black_box(profiled_passes(size, phase, passes));
            eprintln!(
                "{} routes: {passes} passes of {name}: {:.0} ns per request",
                size.routes,
                start.elapsed().as_nanos() as f64 / (passes * size.requests.len()) as f64
            );
        }
        return;
    }

    // [size][phase] -> rounds of (pass, hot).
    let mut pass = vec![vec![Vec::new(); PHASES.len()]; all.len()];
    let mut hot = vec![vec![Vec::new(); PHASES.len()]; all.len()];
    let mut intents = vec![vec![Vec::new(); 4]; all.len()];
    let mut counts = vec![[0usize; 4]; all.len()];
    for round in 0..rounds {
        let clock = clock_cost();
        for k in 0..all.len() {
            let s = (round + k) % all.len();
            for (p, &phase) in PHASES.iter().enumerate() {
                pass[s][p].push(all[s].pass(phase));
                hot[s][p].push(all[s].hot(phase));
            }
            for (j, (ns, c)) in all[s].by_intent(clock).into_iter().enumerate() {
                intents[s][j].push(ns);
                counts[s][j] = c;
            }
        }
    }

    let med = |v: &Vec<f64>| median(v.clone());
    let range = |v: &Vec<f64>| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    };
    println!(
        "ns per request over the {SAMPLE_SIZE} sample requests, median of {rounds} interleaved \
         rounds (min–max); pass: one pass in order after a warm-up pass; hot: each request \
         repeated {HOT_REPEAT}×"
    );
    println!();
    print!("| phase | mode |");
    for s in &all {
        print!(" {} routes |", s.routes);
    }
    println!(" growth |");
    print!("|---|---|");
    for _ in &all {
        print!("---:|");
    }
    println!("---:|");
    for (p, &phase) in PHASES.iter().enumerate() {
        for (mode, table) in [("pass", &pass), ("hot", &hot)] {
            print!("| {} | {mode} |", phase.name());
            for size in table.iter() {
                let (lo, hi) = range(&size[p]);
                print!(" {:.0} ({lo:.0}–{hi:.0}) |", med(&size[p]));
            }
            let first = med(&table[0][p]);
            let last = med(&table[all.len() - 1][p]);
            println!(" {:.2}× |", last / first);
        }
    }
    // The residual: decide − classify − normalize − match_route.
    for (mode, table) in [("pass", &pass), ("hot", &hot)] {
        print!("| rest (residual: rules, decision) | {mode} |");
        let rest: Vec<f64> = (0..all.len())
            .map(|s| {
                let m = |phase: Phase| {
                    let p = PHASES.iter().position(|&q| q == phase).expect("a phase");
                    med(&table[s][p])
                };
                m(Phase::Decide) - m(Phase::Classify) - m(Phase::Normalize) - m(Phase::MatchRoute)
            })
            .collect();
        for r in &rest {
            print!(" {r:.0} |");
        }
        println!(" |");
    }
    println!();
    println!("decide by intent, pass mode (each request timed alone, clock cost subtracted):");
    println!();
    print!("| intent |");
    for s in &all {
        print!(" {} routes: ns (requests) |", s.routes);
    }
    println!();
    print!("|---|");
    for _ in &all {
        print!("---:|");
    }
    println!();
    for (j, name) in INTENTS.iter().enumerate() {
        print!("| {name} |");
        for s in 0..all.len() {
            print!(" {:.0} ({}) |", med(&intents[s][j]), counts[s][j]);
        }
        println!();
    }
}
