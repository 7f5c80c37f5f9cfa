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
    let servers = ir
        .servers
        .iter()
        .map(|s| (format!("server `{}`", s.name), &s.routes));
    let services = ir
        .services
        .iter()
        .map(|s| (format!("service `{}`", s.name), &s.routes));
    for (owner, owner_routes) in servers.chain(services) {
        routes::unreachable_routes(&owner, owner_routes, config, &mut out);
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
        Span {
            file: 0,
            start: 0,
            end: 0,
            line,
            column: 1,
        }
    }

    /// A route without methods or conditions.
    pub(crate) fn route(name: &str, line: u32, path: PathCond) -> Route {
        Route {
            path,
            ..Route::catch_all(name, span(line))
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
        Server {
            name: name.to_string(),
            span: span(1),
            ports: vec![(80, 80)],
            protocol: Protocol::Http,
            default,
            routes,
        }
    }

    /// A rule.
    pub(crate) fn rule(
        name: &str,
        line: u32,
        effect: Effect,
        targets: &[(usize, Option<usize>)],
        clauses: Vec<Clause>,
    ) -> Rule {
        Rule {
            name: name.to_string(),
            span: span(line),
            effect,
            targets: targets
                .iter()
                .map(|&(server, route)| Target { server, route })
                .collect(),
            clauses,
        }
    }

    /// A policy of servers and rules.
    pub(crate) fn ir(servers: Vec<Server>, rules: Vec<Rule>) -> Ir {
        Ir {
            trust_domain: None,
            mesh_default: DefaultPolicy::Allow,
            servers,
            rules,
            egress: None,
            services: Vec::new(),
        }
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
                rule(
                    "a",
                    7,
                    Effect::Allow,
                    &[(0, Some(0)), (0, Some(1))],
                    vec![vec![PrincipalItem::Any]],
                ),
                rule(
                    "d",
                    8,
                    Effect::Deny,
                    &[(0, Some(0))],
                    vec![vec![PrincipalItem::Any]],
                ),
                rule(
                    "b",
                    9,
                    Effect::Allow,
                    &[(0, Some(0))],
                    vec![vec![PrincipalItem::Network(NetSet {
                        include: vec!["10.0.0.0/8".parse().unwrap()],
                        except: vec![],
                    })]],
                ),
            ],
        );
        let mut got: Vec<(&str, u32)> = super::lint(&ir, &crate::Config::default())
            .iter()
            .map(|d| (d.code.as_str(), d.span.line))
            .collect();
        got.sort_by_key(|g| g.1);
        assert_eq!(
            got,
            vec![
                ("unreachable-route", 4),
                ("unused-route", 5),
                ("shadowed-allow", 9)
            ]
        );
    }

    #[test]
    fn service_routes_are_checked_too() {
        let mut policy = ir(Vec::new(), Vec::new());
        policy.services.push(Service {
            name: "pay".into(),
            span: span(1),
            authorities: vec![("pay".into(), 80)],
            timeout_ms: None,
            retry: None,
            breaker: None,
            backends: Vec::new(),
            routes: vec![
                route("beta", 2, PathCond::Any).header("x-canary", ValueCond::Exact("1".into())),
                route("main", 3, PathCond::Any),
                route("v1", 4, PathCond::Prefix("/v1".into()))
                    .header("x-canary", ValueCond::Exact("1".into())),
                route("late", 5, PathCond::Regex("/v1/.*".into()))
                    .header("x-canary", ValueCond::Exact("1".into())),
                route("other", 6, PathCond::Regex("/v1/.*".into())),
            ],
        });
        let got: Vec<(&str, u32)> = super::lint(&policy, &crate::Config::default())
            .iter()
            .map(|d| (d.code.as_str(), d.span.line))
            .collect();
        assert_eq!(got, vec![("unreachable-route", 5)]);
    }

    /// Every diagnostic of `crate::lint` on `text`, as (code, line).
    fn lint_text(text: &str) -> Vec<(String, u32)> {
        let (policy, errors) = sluice_lang::parse::parse_str("policy.sluice", text);
        assert!(errors.is_empty(), "{errors:?}");
        crate::lint(&policy, &crate::Config::default())
            .iter()
            .map(|d| (d.code.as_str().to_string(), d.span.line))
            .collect()
    }

    #[test]
    fn conformance_warnings() {
        // conformance/lint/warnings.toml
        let policy = r#"
server web {
  port 80
  route api     { path prefix "/api" }
  route api-ver { path regex r"/api/v[0-9]+/.*" }
  route lonely  { path "/lonely" }
}
allow a { to web.api, web.api-ver  from any }
deny  d { to web.api  from any }
allow b { to web.api  from network 10.0.0.0/8 }
"#;
        // The TOML string starts after its opening newline: lines are one less here.
        let got: Vec<(String, u32)> = lint_text(policy)
            .into_iter()
            .map(|(c, l)| (c, l - 1))
            .collect();
        let want = [
            ("unreachable-route", 4),
            ("unused-route", 5),
            ("shadowed-allow", 9),
        ];
        assert_eq!(got, want.map(|(c, l)| (c.to_string(), l)));
    }

    #[test]
    fn spec_example_has_no_warnings() {
        assert_eq!(
            lint_text(sluice_testkit::fixtures::SPEC_EXAMPLE),
            Vec::<(String, u32)>::new()
        );
    }

    #[test]
    fn policy_text_end_to_end() {
        let policy = r#"mesh { trust-domain "td" }
server web {
  port 80
  default allow
  route all   { }
  route get   { method GET  path prefix "/a" }
  route post  { method POST path prefix "/a" }
  route both  { method GET, POST  path regex r"/a/[a-z]+" }
  route root  { path prefix "/" header "x" present }
  route grpc  { grpc "pkg.Svc/*" }
  route grpc2 { path regex r"/pkg\.Svc/.*" }
}
deny  ns   { to web from namespace "a", "b" }
allow one  { to web.get from identity "spiffe://td/ns/a/sa/x" }
allow two  { to web.get from namespace "c" }
"#;
        let want = [
            ("unreachable-route", 8),
            ("unreachable-route", 11),
            ("shadowed-allow", 14),
        ];
        assert_eq!(lint_text(policy), want.map(|(c, l)| (c.to_string(), l)));
        let (parsed, _) = sluice_lang::parse::parse_str("policy.sluice", policy);
        let messages: Vec<String> = crate::lint(&parsed, &crate::Config::default())
            .into_iter()
            .map(|d| d.message)
            .collect();
        assert_eq!(
            messages,
            [
                "route `both` of server `web` is unreachable: routes `get`, `post` take every request it matches, with higher precedence",
                "route `grpc2` of server `web` is unreachable: route `grpc` takes every request it matches, with higher precedence",
                "allow rule `one` can never allow: deny rule `ns` matches every peer it matches on each of its targets",
            ]
        );
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
                (3, 0 | 2) => PathCond::Prefix(format!("/svc{i}")),
                (3, _) => PathCond::Regex(format!("/svc{}/v[0-9]+/.*", i - 1)),
                // Tenant routing on a header, no path.
                (_, _) => PathCond::Any,
            };
            let mut r = route(&format!("r{i}"), i as u32 + 2, path);
            if shape == 4 {
                r = r.header("x-tenant", ValueCond::Exact(format!("t{i}")));
            } else if i % 3 == 0 && shape != 3 {
                r = r.methods(&["GET"]);
            }
            if i % 7 == 0 && shape != 3 {
                r = r.header("x-tenant", ValueCond::Exact(format!("t{}", i % 50)));
            }
            routes.push(r);
        }
        routes.push(route("dup", 1, PathCond::Prefix("/svc1/p1".into())));
        routes.push(route("all", 1, PathCond::Any));
        ir(
            vec![server("web", DefaultPolicy::Allow, routes)],
            Vec::new(),
        )
    }

    /// Like the benchmarks' generator (benches/src/lib.rs): 60% prefixes,
    /// 25% exact paths, 10% regexes, 5% no path with a header; some
    /// methods, headers and queries.
    fn bench_like(n: usize) -> Ir {
        let mut seed: u64 = 0x5eed;
        let mut rnd = |k: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % k
        };
        let res = [
            "items", "orders", "users", "carts", "invoices", "payments", "stock", "prices",
        ];
        let subs = ["details", "history", "status", "summary", "lines", "export"];
        let methods: [&[&str]; 4] = [&["GET"], &["GET", "HEAD"], &["POST"], &["PUT"]];
        let svcs = n / 6;
        let mut routes = Vec::new();
        for i in 0..n {
            let (s, v, r, sub) = (
                rnd(svcs),
                1 + rnd(3),
                res[rnd(res.len())],
                subs[rnd(subs.len())],
            );
            let kind = b"PEPRPEPPNPEPRPEPPEPP"[i % 20];
            let path = match (kind, rnd(4)) {
                (b'P', 0) => PathCond::Prefix(format!("/api/v{v}/svc{s}/{r}")),
                (b'P', 1) => PathCond::Prefix(format!("/api/v{v}/svc{s}/{r}/{sub}")),
                (b'P', _) => PathCond::Prefix(format!("/internal/svc{s}/{r}")),
                (b'E', 0) => PathCond::Exact(format!("/api/v{v}/svc{s}/{r}/{sub}")),
                (b'E', 1) => PathCond::Exact(format!("/api/v{v}/svc{s}/{r}")),
                (b'E', _) => PathCond::Exact(format!("/healthz/svc{s}/{sub}")),
                (b'R', 0) => PathCond::Regex(format!("/api/v[0-9]+/svc{s}/[a-z]+")),
                (b'R', 1) => PathCond::Regex(format!("/api/v[0-9]+/svc{s}/{r}/[0-9]+")),
                (b'R', 2) => {
                    PathCond::Regex(format!(r"/static/svc{s}/[a-z0-9_-]+\.(?:js|css|png)"))
                }
                (b'R', _) => {
                    PathCond::Regex(format!("/api/v[0-9]+/svc{s}/{r}/[0-9a-f]{{8}}(?:/{sub})?"))
                }
                _ => PathCond::Any,
            };
            let any = path == PathCond::Any;
            let mut route = route(&format!("r{i}"), i as u32 + 2, path);
            if any {
                route = route.header("x-route-hint", ValueCond::Exact(format!("hint-{i}")));
            }
            if rnd(100) < if any { 50 } else { 30 } {
                route = route.methods(methods[rnd(4)]);
            }
            if !any && rnd(100) < 15 {
                route = route.header("x-canary", ValueCond::Present);
            }
            if !any && rnd(100) < 3 {
                route = route.query("format", ValueCond::Exact("json".into()));
            }
            routes.push(route);
        }
        let id = |p: &str| PrincipalItem::Identity(vec![p.to_string()]);
        let ten = |net: &str| NetSet {
            include: vec![net.parse().unwrap()],
            except: vec![],
        };
        let from = vec![vec![PrincipalItem::Network(ten("10.66.0.0/16"))]];
        let mut rules = vec![rule("quarantine", 1, Effect::Deny, &[(0, None)], from)];
        for j in 0..n {
            if j % 25 == 12 {
                let from = vec![vec![id("spiffe://td/ns/legacy/**")]];
                let targets = [(0, Some(j - 1)), (0, Some(j))];
                rules.push(rule(&format!("d{j}"), 1, Effect::Deny, &targets, from));
            } else {
                let from = match j % 4 {
                    0 => id("spiffe://td/ns/payments/sa/*"),
                    1 => id(&format!("spiffe://td/ns/legacy/sa/s{j}")),
                    2 => PrincipalItem::Network(ten("10.0.0.0/8")),
                    _ => PrincipalItem::Authenticated,
                };
                let targets = [(0, Some(j))];
                rules.push(rule(
                    &format!("a{j}"),
                    1,
                    Effect::Allow,
                    &targets,
                    vec![vec![from]],
                ));
            }
        }
        ir(vec![server("web", DefaultPolicy::Deny, routes)], rules)
    }

    #[test]
    #[ignore]
    fn ten_thousand_routes() {
        let ir = bench_like(10_000);
        let t = Instant::now();
        let out = super::lint(&ir, &crate::Config::default());
        let count = |c: &str| out.iter().filter(|d| d.code.as_str() == c).count();
        println!(
            "bench-like: {} unreachable, {} unused, {} shadowed in {:?}",
            count("unreachable-route"),
            count("unused-route"),
            count("shadowed-allow"),
            t.elapsed()
        );
        for d in out
            .iter()
            .filter(|d| d.code.as_str() == "unreachable-route")
            .take(3)
        {
            println!("  {}", d.message);
        }
        for shape in [0, 1, 2, 3, 4] {
            let ir = big_server(10_000, shape);
            let t = Instant::now();
            let out = super::lint(&ir, &crate::Config::default());
            println!("shape {shape}: {} warnings in {:?}", out.len(), t.elapsed());
            for d in out.iter().take(3) {
                println!("  {}", d.message);
            }
        }
    }
}

#[cfg(test)]
mod conformance {
    //! The shared conformance files: skipped when the folder is absent, a
    //! failure under CI.

    use std::path::{Path, PathBuf};

    /// The conformance files directly in `dir`, parsed; panics when one does
    /// not read or parse, or when there is none.
    fn policies(dir: &Path) -> Vec<(PathBuf, toml::Table)> {
        sluice_testkit::toml_files(dir)
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p)
                    .unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                let doc: toml::Table = toml::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: bad TOML: {e}", p.display()));
                (p, doc)
            })
            .collect()
    }

    /// Every expected warning of the lint conformance files comes out, at its line.
    #[test]
    fn lint_conformance_warnings() {
        let Some(dir) = sluice_testkit::shared_dir("conformance/lint", "the shared lint cases")
        else {
            return;
        };
        let mut failures = Vec::new();
        let mut checked = 0;
        for (path, doc) in policies(&dir) {
            let (Some(text), Some(expected)) = (
                doc.get("policy").and_then(|p| p.as_str()),
                doc.get("diagnostic").and_then(|d| d.as_array()),
            ) else {
                continue;
            };
            let (policy, _) = sluice_lang::parse::parse_str("policy.sluice", text);
            let diags = crate::lint(&policy, &crate::Config::default());
            for exp in expected
                .iter()
                .filter(|e| e.get("severity").and_then(|s| s.as_str()) == Some("warning"))
            {
                let code = exp.get("code").and_then(|c| c.as_str()).unwrap_or_default();
                let line = exp.get("line").and_then(|l| l.as_integer());
                checked += 1;
                if !diags.iter().any(|d| {
                    d.code.as_str() == code
                        && (line.is_none() || line == Some(i64::from(d.span.line)))
                }) {
                    failures.push(format!(
                        "{}: missing {code} at line {line:?}; got {diags:?}",
                        path.display()
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(checked > 0, "no expected warnings in {}", dir.display());
    }

    /// The policies of the decision conformance files lint without errors.
    #[test]
    fn decision_conformance_policies() {
        let Some(dir) = sluice_testkit::shared_dir("conformance", "the shared decision cases")
        else {
            return;
        };
        let mut checked = 0;
        for (path, doc) in policies(&dir) {
            let Some(text) = doc.get("policy").and_then(|p| p.as_str()) else {
                continue;
            };
            let (policy, _) = sluice_lang::parse::parse_str("policy.sluice", text);
            let diags = crate::lint(&policy, &crate::Config::default());
            assert!(
                diags.iter().all(|d| !d.is_error()),
                "{}: {diags:?}",
                path.display()
            );
            checked += 1;
        }
        assert!(checked > 0, "no policies in {}", dir.display());
    }
}
