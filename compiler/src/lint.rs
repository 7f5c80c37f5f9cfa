//! Lint analyses on a checked policy (spec section 8 warnings):
//! `unreachable-route`, `unused-route` and `shadowed-allow`.
//!
//! Path and identity inclusions are decided on automata (products of
//! regex-automata DFAs, restricted to normalized paths and valid SPIFFE
//! IDs), address inclusions on intervals. Every analysis is sound: a
//! warning is only given when the problem is certain; when an automaton
//! does not fit the size limits, or a product exceeds its state limit,
//! nothing is said.

mod netset;
mod product;
mod routes;
mod rules;
mod sample;

use crate::config::Config;
use crate::ir::Ir;
use sluice_lang::Diagnostic;

/// Runs every analysis; returns warnings, servers' and services' routes
/// first, then rules.
pub fn lint(ir: &Ir, config: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for server in &ir.servers {
        routes::unreachable_routes(&format!("server `{}`", server.name), &server.routes, config, &mut out);
    }
    for service in &ir.services {
        routes::unreachable_routes(&format!("service `{}`", service.name), &service.routes, config, &mut out);
    }
    rules::unused_routes(ir, &mut out);
    rules::shadowed_allows(ir, config, &mut out);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    //! Helpers that build IR values by hand, and whole-policy tests.

    use crate::ir::*;
    use sluice_lang::ast::Span;

    /// A span at `line`.
    pub(crate) fn span(line: u32) -> Span {
        Span { file: 0, start: 0, end: 0, line, column: 1 }
    }

    /// A route without methods or conditions.
    pub(crate) fn route(name: &str, line: u32, path: PathCond) -> Route {
        Route {
            name: name.to_string(),
            span: span(line),
            path,
            methods: Vec::new(),
            headers: Vec::new(),
            queries: Vec::new(),
            to: Vec::new(),
            timeout_ms: None,
            retry: None,
        }
    }

    /// Builder-style additions to a route.
    pub(crate) trait RouteExt {
        fn methods(self, ms: &[&str]) -> Self;
        fn header(self, name: &str, cond: ValueCond) -> Self;
        fn query(self, name: &str, cond: ValueCond) -> Self;
    }

    impl RouteExt for Route {
        fn methods(mut self, ms: &[&str]) -> Self {
            self.methods = ms.iter().map(|m| m.to_string()).collect();
            self
        }
        fn header(mut self, name: &str, cond: ValueCond) -> Self {
            self.headers.push((name.to_string(), cond));
            self
        }
        fn query(mut self, name: &str, cond: ValueCond) -> Self {
            self.queries.push((name.to_string(), cond));
            self
        }
    }

    /// An HTTP server on port 80.
    pub(crate) fn server(name: &str, default: DefaultPolicy, routes: Vec<Route>) -> Server {
        Server { name: name.to_string(), span: span(1), ports: vec![(80, 80)], protocol: Protocol::Http, default, routes }
    }

    /// A rule.
    pub(crate) fn rule(name: &str, line: u32, effect: Effect, targets: &[(usize, Option<usize>)], clauses: Vec<Clause>) -> Rule {
        Rule {
            name: name.to_string(),
            span: span(line),
            effect,
            targets: targets.iter().map(|&(server, route)| Target { server, route }).collect(),
            clauses,
        }
    }

    /// A policy of servers and rules.
    pub(crate) fn ir(servers: Vec<Server>, rules: Vec<Rule>) -> Ir {
        Ir { trust_domain: None, mesh_default: DefaultPolicy::Allow, servers, rules, egress: None, services: Vec::new() }
    }

    #[test]
    fn all_three_warnings_on_a_hand_built_policy() {
        // The policy of conformance/lint/warnings.toml.
        let web = server(
            "web",
            DefaultPolicy::Deny,
            vec![
                route("api", 3, PathCond::Prefix("/api".into())),
                route("api-ver", 4, PathCond::Regex("/api/v[0-9]+/.*".into())),
                route("lonely", 5, PathCond::Exact("/lonely".into())),
            ],
        );
        let ir = ir(
            vec![web],
            vec![
                rule("a", 7, Effect::Allow, &[(0, Some(0)), (0, Some(1))], vec![vec![PrincipalItem::Any]]),
                rule("d", 8, Effect::Deny, &[(0, Some(0))], vec![vec![PrincipalItem::Any]]),
                rule(
                    "b",
                    9,
                    Effect::Allow,
                    &[(0, Some(0))],
                    vec![vec![PrincipalItem::Network(NetSet { include: vec!["10.0.0.0/8".parse().unwrap()], except: vec![] })]],
                ),
            ],
        );
        let mut got: Vec<(&str, u32)> =
            super::lint(&ir, &crate::Config::default()).iter().map(|d| (d.code.as_str(), d.span.line)).collect();
        got.sort_by_key(|g| g.1);
        assert_eq!(got, vec![("unreachable-route", 4), ("unused-route", 5), ("shadowed-allow", 9)]);
    }
}

#[cfg(test)]
mod perf {
    //! Timing of the route analysis on large generated servers (run with
    //! `cargo test --release -p sluice-compiler perf -- --ignored --nocapture`).

    use super::tests::*;
    use crate::ir::*;
    use std::time::Instant;

    fn big_server(n: usize, shape: u8) -> Ir {
        let mut routes = Vec::new();
        for i in 0..n {
            let svc = i % 500;
            let path = match (shape, i % 4) {
                (0, 0) => PathCond::Exact(format!("/svc{svc}/op{i}")),
                (0, 1) => PathCond::Prefix(format!("/svc{svc}/p{i}")),
                (0, 2) => PathCond::Regex(format!("/svc{svc}/v[0-9]+/r{i}/[a-z0-9-]+")),
                (0, _) => PathCond::Regex(format!("/svc{svc}/(a|b)/x{i}/.*")),
                // Regexes without a useful literal prefix.
                (1, _) => PathCond::Regex(format!("/[a-z]+/{i}/.*")),
                // Exact paths and prefixes only.
                (2, 0 | 1) => PathCond::Exact(format!("/svc{svc}/op{i}")),
                (2, _) => PathCond::Prefix(format!("/svc{svc}/p{i}")),
                // Half the routes are regexes under an earlier prefix: unreachable.
                (_, 0 | 2) => PathCond::Prefix(format!("/svc{i}")),
                (_, _) => PathCond::Regex(format!("/svc{}/v[0-9]+/.*", i - 1)),
            };
            let mut r = route(&format!("r{i}"), i as u32 + 2, path);
            if i % 3 == 0 && shape != 3 {
                r = r.methods(&["GET"]);
            }
            if i % 7 == 0 && shape != 3 {
                r = r.header("x-tenant", ValueCond::Exact(format!("t{}", i % 50)));
            }
            routes.push(r);
        }
        routes.push(route("dup", 1, PathCond::Prefix("/svc1/p1".into())));
        routes.push(route("all", 1, PathCond::Any));
        ir(vec![server("web", DefaultPolicy::Allow, routes)], Vec::new())
    }

    #[test]
    #[ignore]
    fn ten_thousand_routes() {
        for shape in [0, 1, 2, 3] {
            let ir = big_server(10_000, shape);
            let t = Instant::now();
            let out = super::lint(&ir, &crate::Config::default());
            println!("shape {shape}: {} warnings in {:?}", out.len(), t.elapsed());
        }
    }
}

#[cfg(test)]
mod perf2 {
    #[test]
    #[ignore]
    fn build_costs() {
        use crate::automata::{build_dfa, path_regex, Flavor};
        use crate::ir::PathCond;
        let cfg = crate::Config::default();
        let pats: Vec<String> = (0..2000).map(|i| path_regex(&PathCond::Regex(format!("/svc{}/v[0-9]+/r{i}/[a-z0-9-]+", i % 500)))).collect();
        for flavor in [Flavor::Bytes, Flavor::Unicode] {
            let t = std::time::Instant::now();
            let mut states = 0;
            for p in &pats {
                let d = build_dfa(&[p.clone()], flavor, &cfg).unwrap();
                states += d.memory_usage();
            }
            println!("{flavor:?}: {:?} per build, mem {}", t.elapsed() / 2000, states / 2000);
        }
        let t = std::time::Instant::now();
        for p in &pats {
            let _ = super::product::short_members(&super::product::path_dfa(&[p.clone()], &cfg).unwrap(), super::product::Domain::Path, 4, 100000);
        }
        println!("build+members: {:?}", t.elapsed() / 2000);
        let t = std::time::Instant::now();
        for p in &pats {
            let _ = regex_syntax::parse(p);
        }
        println!("parse: {:?}", t.elapsed() / 2000);
    }
}
#[cfg(test)]
mod perf3 {
    #[test]
    #[ignore]
    fn build_variants() {
        use regex_automata::dfa::{dense, StartKind};
        use regex_automata::nfa::thompson;
        use regex_automata::MatchKind;
        let pats: Vec<String> = (0..2000).map(|i| format!("(?:/svc{}/v[0-9]+/r{i}/[a-z0-9-]+)", i % 500)).collect();
        let run = |name: &str, cfg: dense::Config, th: thompson::Config| {
            let t = std::time::Instant::now();
            for p in &pats {
                let _ = dense::Builder::new().configure(cfg.clone()).thompson(th.clone()).build(p).unwrap();
            }
            println!("{name}: {:?}", t.elapsed() / 2000);
        };
        run("default", dense::Config::new(), thompson::Config::new());
        run("anchored", dense::Config::new().start_kind(StartKind::Anchored), thompson::Config::new());
        run("anchored all", dense::Config::new().start_kind(StartKind::Anchored).match_kind(MatchKind::All), thompson::Config::new());
        run("anchored all noshrink", dense::Config::new().start_kind(StartKind::Anchored).match_kind(MatchKind::All), thompson::Config::new().shrink(false));
        run("anchored all no accel", dense::Config::new().start_kind(StartKind::Anchored).match_kind(MatchKind::All).accelerate(false).specialize_start_states(false), thompson::Config::new());
        let t = std::time::Instant::now();
        for p in &pats {
            let _ = thompson::NFA::new(p).unwrap();
        }
        println!("nfa only: {:?}", t.elapsed() / 2000);
        let t = std::time::Instant::now();
        for p in &pats {
            let _ = thompson::Compiler::new().syntax(regex_automata::util::syntax::Config::new().unicode(false).utf8(false)).configure(thompson::Config::new().utf8(false)).build(p).unwrap();
        }
        println!("nfa bytes: {:?}", t.elapsed() / 2000);
    }
}
