//! Automaton sizes of a generated policy: first what its bundle holds
//! (automata and literal tables, table by table), then the identity and
//! host pattern sets, and the path patterns of the server by path kind,
//! each built as one DFA without a size limit (Unicode and byte flavors).
//!
//! Run: `cargo run --release -p sluice-benches --example dfa_sizes -- 1000`.

use regex_automata::dfa::Automaton;
use regex_automata::util::start;
use regex_automata::Anchored;
use sluice_compiler::automata::{build_dfa, path_regex, Flavor};
use sluice_compiler::ir::PathCond;
use sluice_compiler::Config;
use std::hint::black_box;
use std::time::Instant;

/// Nanoseconds per anchored whole-input walk of `hay` through `dfa`, and
/// whether it matched.
fn walk_ns(dfa: &impl Automaton, hay: &[u8]) -> (f64, bool) {
    let walk = |hay: &[u8]| {
        let Ok(mut s) = dfa.start_state(&start::Config::new().anchored(Anchored::Yes)) else {
            return false;
        };
        for &b in hay {
            s = dfa.next_state(s, b);
            if dfa.is_special_state(s) && dfa.is_dead_state(s) {
                return false;
            }
        }
        dfa.is_match_state(dfa.next_eoi_state(s))
    };
    let matched = walk(hay);
    let n = 1_000_000;
    let start = Instant::now();
    for _ in 0..n {
        black_box(walk(black_box(hay)));
    }
    (start.elapsed().as_nanos() as f64 / n as f64, matched)
}

/// What the compiled bundle holds: bytes of automata per table, and the
/// literal tables' keys.
fn bundle_breakdown(ir: &sluice_compiler::ir::Ir) {
    let (contents, _) = sluice_compiler::ir_to_bundle::ir_to_contents(ir, &Config::default())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let bytes = contents.encode();
    let size = |ids: &[u32]| -> usize {
        ids.iter()
            .map(|&i| contents.automata[i as usize].len())
            .sum()
    };
    let t = &contents.tables;
    println!(
        "bundle: {} bytes, {} automata ({} bytes), tables {} bytes",
        bytes.len(),
        contents.automata.len(),
        contents.automata.iter().map(Vec::len).sum::<usize>(),
        bytes.len() - contents.automata.iter().map(Vec::len).sum::<usize>()
    );
    for td in &t.trust_domains {
        println!(
            "  trust domain {}: {} literal identity paths; {} automaton patterns in {} automata, {} bytes",
            td.name,
            td.literals.len(),
            td.pattern_clauses.len(),
            td.automata.len(),
            size(&td.automata)
        );
    }
    let sets = t
        .servers
        .iter()
        .map(|s| (format!("server {}", s.name), &s.routes))
        .chain(
            t.services
                .iter()
                .map(|s| (format!("service {}", s.name), &s.routes)),
        );
    for (name, set) in sets {
        println!(
            "  {name}: {} routes; {} literal paths ({} key bytes); {} regex patterns in {} automata, {} bytes",
            set.routes.len(),
            set.literal_paths.len(),
            set.literal_paths.iter().map(|l| l.path.len()).sum::<usize>(),
            set.regex_routes.len(),
            set.regex_automata.len(),
            size(&set.regex_automata)
        );
    }
    if let Some(e) = &t.egress {
        println!(
            "  egress: {} host patterns in {} automata, {} bytes",
            e.host_pattern_rules.len(),
            e.host_automata.len(),
            size(&e.host_automata)
        );
    }
    println!(
        "  values: {} automata, {} bytes",
        t.value_automata.len(),
        size(&t.value_automata)
    );
}

/// A named filter over path conditions.
type Kind = (&'static str, Box<dyn Fn(&PathCond) -> bool>);

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let text = sluice_benches::generate(n);
    let (policy, _) = sluice_lang::parse::parse_str("bench.sluice", &text);
    let (ir, diags) = sluice_compiler::ast_to_ir::ast_to_ir(&policy, &Config::default());
    let ir = ir.unwrap_or_else(|| panic!("{diags:?}"));
    bundle_breakdown(&ir);
    let routes = &ir.servers[0].routes;
    let config = Config::default().dfa_size_limit(1 << 30);
    let mut kinds: Vec<Kind> = vec![
        ("exact", Box::new(|p| matches!(p, PathCond::Exact(_)))),
        ("prefix", Box::new(|p| matches!(p, PathCond::Prefix(_)))),
        ("regex", Box::new(|p| matches!(p, PathCond::Regex(_)))),
        ("any", Box::new(|p| matches!(p, PathCond::Any))),
        (
            "exact+prefix",
            Box::new(|p| matches!(p, PathCond::Exact(_) | PathCond::Prefix(_))),
        ),
        (
            "prefix+regex",
            Box::new(|p| matches!(p, PathCond::Prefix(_) | PathCond::Regex(_))),
        ),
        ("all", Box::new(|_| true)),
    ];
    let mut ids: Vec<String> = Vec::new();
    for rule in &ir.rules {
        for c in &rule.clauses {
            for item in c {
                if let sluice_compiler::ir::PrincipalItem::Identity(pats) = item {
                    ids.extend(
                        pats.iter()
                            .filter(|p| *p != "*")
                            .map(|p| sluice_compiler::automata::identity_regex(p)),
                    );
                }
            }
        }
    }
    ids.sort();
    ids.dedup();
    let mut hosts: Vec<String> = Vec::new();
    for r in &ir.egress.as_ref().expect("egress").rules {
        hosts.extend(
            r.hosts
                .iter()
                .filter(|h| *h != "*")
                .map(|h| sluice_compiler::automata::host_regex(h)),
        );
    }
    hosts.sort();
    hosts.dedup();
    for (name, pats, flavor) in [
        ("identities", &ids, Flavor::Unicode),
        ("hosts", &hosts, Flavor::Bytes),
    ] {
        let t = Instant::now();
        match build_dfa(pats, flavor, &config) {
            Ok(d) => {
                let built = t.elapsed();
                let hay: &[u8] = if name == "identities" {
                    sluice_benches::PEER_IDENTITY.as_bytes()
                } else {
                    b"storage.googleapis.com"
                };
                let (ns, matched) = walk_ns(&d, hay);
                println!(
                    "{name:>13} {flavor:?}: {} patterns, {} bytes, states ~{}, built in {built:.2?}; \
                     walk of {} bytes {ns:.0} ns (match {matched})",
                    pats.len(),
                    d.memory_usage(),
                    d.memory_usage() / (4 << d.stride2()),
                    hay.len()
                )
            }
            Err(e) => println!("{name:>13}: {e}"),
        }
    }
    // The server's path set split as the compiler does: halve on failure.
    let all: Vec<String> = {
        let mut v: Vec<String> = routes.iter().map(|r| path_regex(&r.path)).collect();
        v.sort();
        v.dedup();
        v
    };
    let t = Instant::now();
    let (mut chunks, mut failures, mut bytes) = (0, 0, 0);
    let mut stack = vec![&all[..]];
    while let Some(chunk) = stack.pop() {
        match build_dfa(chunk, Flavor::Unicode, &Config::default()) {
            Ok(d) => {
                chunks += 1;
                bytes += d.memory_usage();
            }
            Err(_) => {
                failures += 1;
                let mid = chunk.len() / 2;
                stack.push(&chunk[mid..]);
                stack.push(&chunk[..mid]);
            }
        }
    }
    println!(
        "server paths split at 16 MiB: {chunks} DFAs, {bytes} bytes, {failures} failed builds, {:.2?}",
        t.elapsed()
    );
    let mut values: Vec<String> = Vec::new();
    for r in routes {
        for (_, c) in r.headers.iter().chain(&r.queries) {
            if let sluice_compiler::ir::ValueCond::Regex(re) = c {
                values.push(re.clone());
            }
        }
    }
    let t = Instant::now();
    for v in &values {
        let _ = build_dfa(&[format!("(?:{v})")], Flavor::Unicode, &Config::default());
    }
    let count = values.len();
    values.sort();
    values.dedup();
    println!(
        "server value regexes: {count} ({} distinct), one DFA each: {:.2?}",
        values.len(),
        t.elapsed()
    );
    for (name, f) in kinds.drain(..) {
        let mut pats: Vec<String> = routes
            .iter()
            .filter(|r| f(&r.path))
            .map(|r| path_regex(&r.path))
            .collect();
        pats.sort();
        pats.dedup();
        for flavor in [Flavor::Unicode, Flavor::Bytes] {
            let t = Instant::now();
            match build_dfa(&pats, flavor, &config) {
                Ok(d) => {
                    let built = t.elapsed();
                    let (ns, matched) = walk_ns(&d, sluice_benches::NORMALIZED_PATH.as_bytes());
                    println!(
                        "{name:>13} {flavor:?}: {} patterns, {} bytes, stride {}, states ~{}, \
                         built in {built:.2?}; walk {ns:.0} ns (match {matched})",
                        pats.len(),
                        d.memory_usage(),
                        d.stride2(),
                        d.memory_usage() / (4 << d.stride2()),
                    );
                    if let Ok(sparse) = d.to_sparse() {
                        let (ns, matched) =
                            walk_ns(&sparse, sluice_benches::NORMALIZED_PATH.as_bytes());
                        println!(
                            "{name:>13} {flavor:?} sparse: {} bytes; walk {ns:.0} ns (match {matched})",
                            sparse.memory_usage()
                        );
                    }
                }
                Err(e) => println!("{name:>13} {flavor:?}: {} patterns: {e}", pats.len()),
            }
        }
    }
}
