//! Property test of `sluice diff` ([`sluice_cli::diff::diff_bundles`]):
//! pairs of policies made by mutating random policies of the reference's
//! differential generator (`reference/tests/differential/`, reused through
//! `#[path]` modules), one mutation of a known kind per pair. For each pair:
//!
//! - (a) every entry has `old != new`, and its witness, decided by the old
//!   and the new bundle as `eval` decides it ([`Decider`] on
//!   [`json::request_from_value`]), gives exactly the reported decisions;
//! - (b) for 40 random requests of the generator (20 shaped by each
//!   policy), whenever the two bundles decide differently, the pair of
//!   decisions is among the entries;
//! - (c) the entries are distinct pairs;
//! - the old policy against itself, and against its `sluice fmt` form
//!   ([`sluice_lang::format::format_source`]), gives no entry.
//!
//! Proptest's fixed RNG seed makes the run reproducible; every failure
//! names the case seed, the mutation, both policies and the request.
//! Minimum counts per mutation kind (pairs with at least one entry) keep
//! the test from passing trivially (printed with `--nocapture`).
//!
//! Knobs: `SLUICE_DIFF_PROP_CASES` (pairs, default 400);
//! `SLUICE_DIFF_PROP_SEED=N`: draw the case seeds from another fixed RNG
//! seed (N, a decimal number) instead of proptest's deterministic one;
//! `SLUICE_DIFF_PROP_CASE=SEED` runs the one case with that seed and prints
//! its policies and entries.

#[allow(dead_code)]
#[path = "../../reference/tests/differential/generate.rs"]
mod generate;
#[allow(dead_code)]
#[path = "../../reference/tests/differential/model.rs"]
mod model;
#[allow(dead_code)]
#[path = "../../reference/tests/differential/pools.rs"]
mod pools;
#[allow(dead_code)]
#[path = "../../reference/tests/differential/render.rs"]
mod render;
#[allow(dead_code)]
#[path = "../../reference/tests/differential/requests.rs"]
mod requests;
#[allow(dead_code)]
#[path = "../../reference/tests/differential/rng.rs"]
mod rng;

use generate::{authority_key, gen_principal, gen_route, gen_vm, policy_path};
use model::{Egress, EgressRule, Model, PathCond, Proto, Route, Rule, Vm};
use pools::{
    DURATIONS, EGRESS_PORT_SETS, EGRESS_RULE_NAMES, GRPC_METHODS, GRPC_SERVICES, HEADER_REGEXES,
    HEADER_VALUES, HOST_PATTERNS, METHODS, PATH_REGEXES, POLICY_HEADER_NAMES, QUERY_EQ_VALUES,
    QUERY_KEYS, QUERY_REGEXES, ROUTE_NAMES, RULE_NAMES, SERVICE_HOSTS,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};
use rng::{Draw, Gen};
use serde_json::{json, Map, Value};
use sluice_cli::decide::Decider;
use sluice_cli::diff::{diff_bundles, Entry};
use sluice_cli::json::{self, DecisionJsonExt};
use sluice_compiler::Config;
use sluice_reference::{Direction, Request};
use sluice_runtime::{AlignedBytes, Bundle, NoTrace};
use std::collections::{BTreeMap, HashSet};

/// What a mutation changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mutation {
    RuleAdded,
    RuleRemoved,
    RuleEffect,
    RuleTargets,
    RuleFroms,
    RoutePath,
    PathKind,
    Method,
    ConditionCount,
    ConditionValue,
    EgressDefault,
    EgressRule,
    ServiceAuthority,
    ServiceRoute,
    Timeout,
    Weights,
}

const KINDS: &[Mutation] = &[
    Mutation::RuleAdded,
    Mutation::RuleRemoved,
    Mutation::RuleEffect,
    Mutation::RuleTargets,
    Mutation::RuleFroms,
    Mutation::RoutePath,
    Mutation::PathKind,
    Mutation::Method,
    Mutation::ConditionCount,
    Mutation::ConditionValue,
    Mutation::EgressDefault,
    Mutation::EgressRule,
    Mutation::ServiceAuthority,
    Mutation::ServiceRoute,
    Mutation::Timeout,
    Mutation::Weights,
];

/// Per mutation kind: pairs run, pairs with entries, entries, random
/// requests decided differently.
#[derive(Debug, Default)]
struct Count {
    pairs: usize,
    with_entries: usize,
    entries: usize,
    differing_requests: usize,
}

#[derive(Debug, Default)]
struct Stats {
    kinds: BTreeMap<Mutation, Count>,
    /// Pairs the diff declined as too large (skipped).
    too_large: usize,
    /// Random requests decided by both bundles.
    requests: usize,
}

/// A route of a server (`Some(i)` server index) or a service.
fn routes_mut(m: &mut Model, services: Option<bool>) -> Vec<&mut Route> {
    let mut out: Vec<&mut Route> = Vec::new();
    if services != Some(true) {
        for s in &mut m.servers {
            if s.proto() != Proto::Tcp {
                out.extend(s.routes.iter_mut());
            }
        }
    }
    if services != Some(false) {
        for s in &mut m.services {
            out.extend(s.routes.iter_mut());
        }
    }
    out
}

fn pick_route<'m>(g: &mut Gen, m: &'m mut Model, services: Option<bool>) -> Option<&'m mut Route> {
    let mut routes = routes_mut(m, services);
    if routes.is_empty() {
        return None;
    }
    let i = g.below(routes.len());
    Some(routes.swap_remove(i))
}

fn new_path(g: &mut Gen, old: Option<&PathCond>) -> PathCond {
    match old {
        Some(PathCond::Prefix(_)) => PathCond::Prefix(policy_path(g, 1, 2)),
        Some(PathCond::Regex(_)) => PathCond::Regex(g.s(PATH_REGEXES)),
        Some(PathCond::Grpc(_)) => {
            PathCond::Grpc(format!("{}/{}", g.s(GRPC_SERVICES), g.s(GRPC_METHODS)))
        }
        _ => PathCond::Exact(policy_path(g, 1, 3)),
    }
}

fn unused(g: &mut Gen, pool: &[&str], used: &[&str]) -> Option<String> {
    let free: Vec<&str> = pool.iter().copied().filter(|n| !used.contains(n)).collect();
    (!free.is_empty()).then(|| g.s(&free))
}

fn rule_target(g: &mut Gen, m: &Model) -> (String, Option<String>) {
    let s = g.pick(&m.servers);
    if s.proto() != Proto::Tcp && !s.routes.is_empty() && g.chance(55) {
        (s.name.clone(), Some(g.pick(&s.routes).name.clone()))
    } else {
        (s.name.clone(), None)
    }
}

fn new_vm(g: &mut Gen, header: bool) -> Vm {
    if header {
        gen_vm(g, HEADER_VALUES, HEADER_REGEXES)
    } else {
        gen_vm(g, QUERY_EQ_VALUES, QUERY_REGEXES)
    }
}

/// Applies one mutation of `kind`; false when the model has nothing it applies to.
fn mutate(g: &mut Gen, m: &mut Model, kind: Mutation) -> bool {
    let td = m.trust_domain().map(str::to_string);
    match kind {
        Mutation::RuleAdded => {
            let used: Vec<&str> = m.rules.iter().map(|r| r.name.as_str()).collect();
            let Some(name) = unused(g, RULE_NAMES, &used) else {
                return false;
            };
            let targets = vec![rule_target(g, m)];
            // A rule without `from` is `empty-rule`.
            let n = g.range(1, 2);
            let froms = (0..n).map(|_| gen_principal(g, td.as_deref())).collect();
            let at = g.range(0, m.rules.len());
            let deny = g.chance(40);
            m.rules.insert(
                at,
                Rule {
                    name,
                    deny,
                    targets,
                    froms,
                },
            );
        }
        Mutation::RuleRemoved
        | Mutation::RuleEffect
        | Mutation::RuleTargets
        | Mutation::RuleFroms => {
            if m.rules.is_empty() {
                return false;
            }
            let i = g.below(m.rules.len());
            match kind {
                Mutation::RuleRemoved => {
                    m.rules.remove(i);
                }
                Mutation::RuleEffect => m.rules[i].deny = !m.rules[i].deny,
                Mutation::RuleTargets => {
                    let t = rule_target(g, m);
                    let targets = &mut m.rules[i].targets;
                    if targets.len() > 1 && g.chance(40) {
                        targets.remove(0);
                    } else if targets.contains(&t) {
                        *targets = vec![t];
                    } else if g.chance(50) {
                        targets.push(t);
                    } else {
                        *targets = vec![t];
                    }
                }
                _ => {
                    let p = gen_principal(g, td.as_deref());
                    let froms = &mut m.rules[i].froms;
                    match g.below(3) {
                        0 if froms.len() > 1 => {
                            froms.remove(0);
                        }
                        1 if !froms.is_empty() => froms[0] = p,
                        _ => froms.push(p),
                    }
                }
            }
        }
        Mutation::RoutePath => {
            let Some(r) = pick_route(g, m, None) else {
                return false;
            };
            r.path = Some(new_path(g, r.path.as_ref()));
        }
        Mutation::PathKind => {
            let Some(r) = pick_route(g, m, None) else {
                return false;
            };
            r.path = Some(match r.path.take() {
                Some(PathCond::Exact(p)) => PathCond::Prefix(p),
                Some(PathCond::Prefix(p)) if g.chance(50) => PathCond::Exact(p),
                Some(PathCond::Prefix(_)) => PathCond::Regex(g.s(PATH_REGEXES)),
                Some(PathCond::Regex(_)) | None => PathCond::Prefix(policy_path(g, 1, 2)),
                Some(PathCond::Grpc(p)) => match p.split_once('/') {
                    Some((svc, "*")) => PathCond::Grpc(format!("{svc}/{}", g.s(GRPC_METHODS))),
                    Some((svc, _)) => PathCond::Grpc(format!("{svc}/*")),
                    None => PathCond::Grpc(p),
                },
            });
        }
        Mutation::Method => {
            let Some(r) = pick_route(g, m, None) else {
                return false;
            };
            let free: Vec<&str> = METHODS
                .iter()
                .copied()
                .filter(|x| !r.methods.iter().any(|y| y == x))
                .collect();
            if !r.methods.is_empty() && (free.is_empty() || g.chance(40)) {
                r.methods.clear();
            } else {
                r.methods.push(g.s(&free));
            }
        }
        Mutation::ConditionCount => {
            let Some(r) = pick_route(g, m, None) else {
                return false;
            };
            let header = g.chance(50);
            let list = if header {
                &mut r.headers
            } else {
                &mut r.queries
            };
            if !list.is_empty() && g.chance(40) {
                list.remove(0);
            } else {
                let name = g.s(if header {
                    POLICY_HEADER_NAMES
                } else {
                    QUERY_KEYS
                });
                list.push((name, new_vm(g, header)));
            }
        }
        Mutation::ConditionValue => {
            let Some(r) = pick_route(g, m, None) else {
                return false;
            };
            let header = if r.headers.is_empty() {
                false
            } else if r.queries.is_empty() {
                true
            } else {
                g.chance(50)
            };
            let list = if header {
                &mut r.headers
            } else {
                &mut r.queries
            };
            if list.is_empty() {
                return false;
            }
            let i = g.below(list.len());
            list[i].1 = new_vm(g, header);
        }
        Mutation::EgressDefault => match &mut m.egress {
            None => {
                m.egress = Some(Egress {
                    default: Some(g.chance(50)),
                    rules: Vec::new(),
                })
            }
            Some(e) => e.default = Some(!e.default.unwrap_or(false)),
        },
        Mutation::EgressRule => {
            let e = m.egress.get_or_insert(Egress {
                default: None,
                rules: Vec::new(),
            });
            let used: Vec<&str> = e.rules.iter().map(|r| r.name.as_str()).collect();
            match g.below(4) {
                0 if !e.rules.is_empty() => {
                    let i = g.below(e.rules.len());
                    e.rules.remove(i);
                }
                1 if !e.rules.is_empty() => {
                    let i = g.below(e.rules.len());
                    e.rules[i].deny = !e.rules[i].deny;
                }
                2 if !e.rules.is_empty() => {
                    let i = g.below(e.rules.len());
                    if g.chance(50) {
                        e.rules[i].ports = g.pick(EGRESS_PORT_SETS).to_vec();
                    } else {
                        e.rules[i].hosts = vec![g.s(HOST_PATTERNS)];
                    }
                }
                _ => {
                    let Some(name) = unused(g, EGRESS_RULE_NAMES, &used) else {
                        return false;
                    };
                    let at = g.range(0, e.rules.len());
                    let ports = if g.chance(50) {
                        g.pick(EGRESS_PORT_SETS).to_vec()
                    } else {
                        Vec::new()
                    };
                    let rule = EgressRule {
                        name,
                        deny: g.chance(40),
                        hosts: vec![g.s(HOST_PATTERNS)],
                        nets: None,
                        ports,
                    };
                    e.rules.insert(at, rule);
                }
            }
        }
        Mutation::ServiceAuthority => {
            if m.services.is_empty() {
                return false;
            }
            let taken: Vec<(String, u16)> = m
                .services
                .iter()
                .flat_map(|s| s.authorities.iter().map(|a| authority_key(a)))
                .collect();
            let host = g.s(SERVICE_HOSTS);
            let text = match g.below(3) {
                0 => host,
                1 => format!("{host}:8080"),
                _ => format!("{host}:9090"),
            };
            if taken.contains(&authority_key(&text)) {
                return false;
            }
            let i = g.below(m.services.len());
            let s = &mut m.services[i];
            if s.authorities.len() > 1 || g.chance(50) {
                s.authorities[0] = text;
            } else {
                s.authorities.push(text);
            }
        }
        Mutation::ServiceRoute => {
            if m.services.is_empty() {
                return false;
            }
            let i = g.below(m.services.len());
            let s = &mut m.services[i];
            let used: Vec<&str> = s.routes.iter().map(|r| r.name.as_str()).collect();
            match g.below(3) {
                0 if s.routes.len() > 1 => {
                    let j = g.below(s.routes.len());
                    s.routes.remove(j);
                }
                1 => {
                    let Some(name) = unused(g, ROUTE_NAMES, &used) else {
                        return false;
                    };
                    let route = gen_route(g, &name, Some(&s.backends));
                    let at = g.range(0, s.routes.len());
                    s.routes.insert(at, route);
                }
                _ => {
                    let j = g.below(s.routes.len());
                    let name = s.routes[j].name.clone();
                    s.routes[j] = gen_route(g, &name, Some(&s.backends));
                }
            }
        }
        Mutation::Timeout => {
            if m.services.is_empty() {
                return false;
            }
            let i = g.below(m.services.len());
            let s = &mut m.services[i];
            let d = *g.pick(DURATIONS);
            if g.chance(50) {
                s.timeout = if s.timeout.is_some() && g.chance(30) {
                    None
                } else {
                    Some(d)
                };
            } else {
                let j = g.below(s.routes.len());
                let r = &mut s.routes[j];
                r.timeout = if r.timeout.is_some() && g.chance(30) {
                    None
                } else {
                    Some(d)
                };
            }
        }
        Mutation::Weights => {
            let Some(r) = pick_route(g, m, Some(true)) else {
                return false;
            };
            let i = g.below(r.to.len());
            r.to[i].1 = match g.below(3) {
                0 => None,
                1 => Some(0),
                _ => Some(g.range(1, 100) as u32),
            };
            if r.to.iter().all(|(_, w)| *w == Some(0)) {
                r.to[0].1 = Some(1);
            }
        }
    }
    true
}

/// Policy text compiled to bundle bytes; `Err` lists the errors.
fn compile(text: &str) -> Result<Vec<u8>, String> {
    let (policy, diags) = sluice_lang::parse::parse_str("p.sluice", text);
    if diags.iter().any(|d| d.is_error()) {
        return Err(format!("does not parse: {diags:?}"));
    }
    sluice_compiler::compile(&policy, &Config::default())
        .map(|c| c.bundle)
        .map_err(|d| {
            d.iter()
                .filter(|d| d.is_error())
                .map(|d| format!("{} at line {}: {}", d.code.as_str(), d.span.line, d.message))
                .collect::<Vec<_>>()
                .join("; ")
        })
}

/// The request as the JSON of spec section 10 (as the differential test writes it).
fn request_json(r: &Request) -> Value {
    let mut o = Map::new();
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    match r.direction {
        Direction::Inbound => {
            put("direction", json!("inbound"));
            if let Some(p) = r.port {
                put("port", json!(p));
            }
        }
        Direction::Outbound => {
            put("direction", json!("outbound"));
            if let Some(a) = &r.authority {
                put("authority", json!(a));
            }
            if let Some(ip) = r.ip {
                put("ip", json!(ip.to_string()));
            }
            if let Some(p) = r.port {
                put("port", json!(p));
            }
        }
    }
    if let Some(m) = &r.method {
        put("method", json!(m));
    }
    if let Some(p) = &r.path {
        put("path", json!(p));
    }
    if !r.headers.is_empty() {
        put(
            "headers",
            Value::Array(r.headers.iter().map(|(n, v)| json!([n, v])).collect()),
        );
    }
    if r.direction == Direction::Inbound {
        let mut peer = Map::new();
        if let Some(ip) = r.peer_ip {
            peer.insert("ip".to_string(), json!(ip.to_string()));
        }
        if let Some(id) = &r.peer_identity {
            peer.insert("identity".to_string(), json!(id));
        }
        put("peer", Value::Object(peer));
    }
    Value::Object(o)
}

/// Both bundles' decisions of one request as `eval` prints them, or `None`
/// when either rejects the request.
fn decide_both(deciders: &mut [Decider<'_, '_>; 2], request: &Value) -> Option<[Value; 2]> {
    let parsed = json::request_from_value(request).ok()?;
    let o = deciders[0].decide(&parsed, &mut NoTrace).ok()?;
    let n = deciders[1].decide(&parsed, &mut NoTrace).ok()?;
    Some([o.to_value(), n.to_value()])
}

fn pair_key(old: &Value, new: &Value) -> (String, String) {
    (old.to_string(), new.to_string())
}

fn entries_text(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "  old {}\n  new {}\n  request {}\n",
                e.old, e.new, e.request
            )
        })
        .collect()
}

/// One pair: generate, mutate, diff, check. `Err` is the failure report.
fn run_case(seed: u64, stats: &mut Stats, verbose: bool) -> Result<(), String> {
    let mut g = Gen::new(seed);
    let old_model = generate::gen_model(&mut g);
    let first = g.below(KINDS.len());
    let mut new_model = old_model.clone();
    let mut kind = None;
    for k in 0..KINDS.len() {
        let candidate = KINDS[(first + k) % KINDS.len()];
        if mutate(&mut g, &mut new_model, candidate) {
            kind = Some(candidate);
            break;
        }
        new_model = old_model.clone();
    }
    let Some(kind) = kind else {
        return Ok(());
    };
    let old_text = render::render(&old_model);
    let new_text = render::render(&new_model);
    let context = |what: &str| {
        format!(
            "case seed {seed} (SLUICE_DIFF_PROP_CASE={seed}), mutation {kind:?}: {what}\n\
             --- old policy\n{old_text}--- new policy\n{new_text}---"
        )
    };
    let old_bytes = compile(&old_text).map_err(|e| context(&format!("the old policy {e}")))?;
    let new_bytes = compile(&new_text).map_err(|e| context(&format!("the mutated policy {e}")))?;
    let entries = match diff_bundles(&old_bytes, &new_bytes) {
        Ok(e) => e,
        Err(sluice_cli::diff::DiffError::TooLarge(_)) => {
            stats.too_large += 1;
            return Ok(());
        }
        Err(e) => return Err(context(&format!("diff failed: {e}"))),
    };
    if verbose {
        eprintln!("{}\nentries:\n{}", context("run"), entries_text(&entries));
    }
    let aligned = [AlignedBytes::new(&old_bytes), AlignedBytes::new(&new_bytes)];
    let bundles = [
        Bundle::from_bytes(aligned[0].as_bytes()).map_err(|e| context(&e.to_string()))?,
        Bundle::from_bytes(aligned[1].as_bytes()).map_err(|e| context(&e.to_string()))?,
    ];
    let mut deciders = [Decider::new(&bundles[0]), Decider::new(&bundles[1])];

    // (a) and (c).
    let mut pairs = HashSet::new();
    for e in &entries {
        if e.old == e.new {
            return Err(context(&format!("an entry with old == new: {}", e.old)));
        }
        if !pairs.insert(pair_key(&e.old, &e.new)) {
            return Err(context(&format!(
                "the pair {} -> {} is reported twice",
                e.old, e.new
            )));
        }
        match decide_both(&mut deciders, &e.request) {
            Some([o, n]) if o == e.old && n == e.new => {}
            got => {
                return Err(context(&format!(
                    "the witness {} does not reproduce: reported\n  old {}\n  new {}\n\
                     decided (None: rejected)\n  {got:?}",
                    e.request, e.old, e.new
                )))
            }
        }
    }

    // (b).
    let count = stats.kinds.entry(kind).or_default();
    count.pairs += 1;
    count.entries += entries.len();
    count.with_entries += usize::from(!entries.is_empty());
    for i in 0..40 {
        let model = if i % 2 == 0 { &old_model } else { &new_model };
        let request = request_json(&requests::gen_request(&mut g, model).r);
        let Some([o, n]) = decide_both(&mut deciders, &request) else {
            continue;
        };
        stats.requests += 1;
        if o != n {
            count.differing_requests += 1;
            if !pairs.contains(&pair_key(&o, &n)) {
                return Err(context(&format!(
                    "the request {request} is decided differently, and its pair is not \
                     among the {} entries:\n  old {o}\n  new {n}\nentries:\n{}",
                    entries.len(),
                    entries_text(&entries)
                )));
            }
        }
    }

    // A policy against itself and against its formatted form.
    let same = diff_bundles(&old_bytes, &old_bytes).map_err(|e| context(&e.to_string()))?;
    if !same.is_empty() {
        return Err(context(&format!(
            "the old policy against itself gives entries:\n{}",
            entries_text(&same)
        )));
    }
    let formatted = sluice_lang::format::format_source(&old_text)
        .map_err(|d| context(&format!("sluice fmt fails: {d:?}")))?;
    let formatted_bytes =
        compile(&formatted).map_err(|e| context(&format!("the formatted policy {e}")))?;
    let fmt_entries =
        diff_bundles(&old_bytes, &formatted_bytes).map_err(|e| context(&e.to_string()))?;
    if !fmt_entries.is_empty() {
        return Err(context(&format!(
            "the old policy against its formatted form gives entries:\n{}",
            entries_text(&fmt_entries)
        )));
    }
    Ok(())
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn diff_is_exact_on_mutated_policies() {
    if let Some(seed) = env_number("SLUICE_DIFF_PROP_CASE") {
        let result = run_case(seed, &mut Stats::default(), true);
        assert!(result.is_ok(), "{}", result.unwrap_err());
        return;
    }
    let cases = env_number("SLUICE_DIFF_PROP_CASES").unwrap_or(DEFAULT_CASES);
    // Proptest's deterministic RNG draws the case seeds; every case runs,
    // and all failures are reported together.
    let rng = match env_number("SLUICE_DIFF_PROP_SEED") {
        Some(n) => TestRng::from_seed(RngAlgorithm::ChaCha, &n.to_le_bytes().repeat(4)),
        None => TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    };
    let mut runner = TestRunner::new_with_rng(ProptestConfig::default(), rng);
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    let started = std::time::Instant::now();
    for _ in 0..cases {
        let seed = proptest::num::u64::ANY
            .new_tree(&mut runner)
            .map(|t| t.current())
            .expect("a seed");
        if let Err(e) = run_case(seed, &mut stats, false) {
            failures.push(e);
        }
    }
    eprintln!(
        "{cases} pairs in {:.1?}; {} too large; {} requests decided",
        started.elapsed(),
        stats.too_large,
        stats.requests
    );
    eprintln!("kind                 pairs  with-entries  entries  differing-requests");
    for (kind, c) in &stats.kinds {
        eprintln!(
            "{:<20} {:>5}  {:>12}  {:>7}  {:>18}",
            format!("{kind:?}"),
            c.pairs,
            c.with_entries,
            c.entries,
            c.differing_requests
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} pairs fail; the first:\n{}\nall case seeds: {}",
        failures.len(),
        failures[0],
        failures
            .iter()
            .map(|f| f.split_whitespace().nth(2).unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if cases >= DEFAULT_CASES {
        for kind in KINDS {
            let c = stats.kinds.get(kind);
            let with = c.map_or(0, |c| c.with_entries);
            assert!(
                with >= MIN_PAIRS_WITH_ENTRIES,
                "mutation {kind:?}: only {with} pairs with entries (at least {MIN_PAIRS_WITH_ENTRIES})"
            );
        }
        let differing: usize = stats.kinds.values().map(|c| c.differing_requests).sum();
        assert!(
            differing >= 50,
            "only {differing} random requests decided differently"
        );
    }
}

/// Pairs with at least one entry required of each mutation kind in the
/// full run.
const MIN_PAIRS_WITH_ENTRIES: usize = 5;

/// Pairs of the default run (about 20 s in the test profile).
const DEFAULT_CASES: u64 = 400;
