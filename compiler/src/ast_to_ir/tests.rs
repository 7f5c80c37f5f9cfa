//! Tests of the checks and the lowering, on parsed text.

use super::ast_to_ir;
use crate::config::Config;
use crate::ir::{
    self, DefaultPolicy, Endpoint, Ir, PathCond, PrincipalItem, RetryCond, Target, ValueCond,
};
use sluice_lang::parse::parse_str;
use sluice_lang::{Diagnostic, Severity};
use sluice_testkit::fixtures::SPEC_EXAMPLE;

fn run_with(text: &str, config: &Config) -> (Option<Ir>, Vec<Diagnostic>) {
    let (policy, parse_diags) = parse_str("test.sluice", text);
    assert!(
        parse_diags.is_empty(),
        "unexpected parse diagnostics: {parse_diags:#?}"
    );
    let (ir, diags) = ast_to_ir(&policy, config);
    for d in &diags {
        assert_eq!(d.severity, d.code.severity());
        assert!(!d.message.is_empty());
        assert!(d.span.line >= 1 && d.span.column >= 1, "{d:?}");
    }
    assert_eq!(
        ir.is_some(),
        diags.iter().all(|d| !d.is_error()),
        "{diags:#?}"
    );
    (ir, diags)
}

fn lower(text: &str) -> Ir {
    let (ir, diags) = run_with(text, &Config::default());
    assert!(diags.is_empty(), "unexpected diagnostics: {diags:#?}");
    ir.unwrap()
}

/// Errors as sorted `(code, line)` pairs.
fn errors_with(text: &str, config: &Config) -> Vec<(&'static str, u32)> {
    let (_, diags) = run_with(text, config);
    let mut out: Vec<_> = diags
        .iter()
        .map(|d| (d.code.as_str(), d.span.line))
        .collect();
    out.sort();
    out
}

#[track_caller]
fn expect(text: &str, expected: &[(&'static str, u32)]) {
    let mut expected = expected.to_vec();
    expected.sort();
    let got = errors_with(text, &Config::default());
    if got != expected {
        let (_, diags) = run_with(text, &Config::default());
        panic!("expected {expected:?}\n     got {got:?}\n{diags:#?}");
    }
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

#[test]
fn spec_example_lowers() {
    let ir = lower(SPEC_EXAMPLE);
    assert_eq!(ir.trust_domain.as_deref(), Some("prod.example.com"));
    assert_eq!(ir.mesh_default, DefaultPolicy::Allow);

    assert_eq!(ir.servers.len(), 1);
    let web = &ir.servers[0];
    assert_eq!(web.name, "web");
    // Line 3 of the spec example (testkit/fixtures/spec-example.sluice).
    assert_eq!(web.span.line, 3);
    assert_eq!(web.ports, vec![(8080, 8080)]);
    assert_eq!(web.protocol, ir::Protocol::Http);
    assert_eq!(web.default, DefaultPolicy::Deny);
    assert_eq!(web.routes.len(), 2);
    let metrics = &web.routes[0];
    assert_eq!(metrics.name, "metrics");
    assert_eq!(metrics.path, PathCond::Exact("/metrics".into()));
    assert_eq!(metrics.methods, vec!["GET".to_string()]);
    assert!(metrics.headers.is_empty() && metrics.queries.is_empty() && metrics.to.is_empty());
    assert_eq!(metrics.timeout_ms, None);
    assert_eq!(metrics.retry, None);
    let api = &web.routes[1];
    assert_eq!(api.path, PathCond::Prefix("/api".into()));
    assert!(api.methods.is_empty());
    assert_eq!(
        api.headers,
        vec![("x-tenant".to_string(), ValueCond::Regex("[a-z]+".into()))]
    );

    assert_eq!(ir.rules.len(), 3);
    let scrape = &ir.rules[0];
    assert_eq!(
        (scrape.name.as_str(), scrape.effect),
        ("scrape", ir::Effect::Allow)
    );
    assert_eq!(
        scrape.targets,
        vec![Target {
            server: 0,
            route: Some(0)
        }]
    );
    assert_eq!(
        scrape.clauses,
        vec![vec![PrincipalItem::Identity(vec![
            "spiffe://prod.example.com/ns/monitoring/sa/*".into()
        ])]]
    );
    let frontend = &ir.rules[1];
    assert_eq!(
        frontend.targets,
        vec![Target {
            server: 0,
            route: Some(1)
        }]
    );
    assert_eq!(
        frontend.clauses,
        vec![vec![PrincipalItem::Identity(vec![
            "spiffe://prod.example.com/ns/shop/sa/*".into()
        ])]]
    );
    let quarantine = &ir.rules[2];
    assert_eq!(
        (quarantine.name.as_str(), quarantine.effect),
        ("quarantine", ir::Effect::Deny)
    );
    assert_eq!(
        quarantine.targets,
        vec![Target {
            server: 0,
            route: None
        }]
    );
    assert_eq!(
        quarantine.clauses,
        vec![vec![PrincipalItem::Network(ir::NetSet {
            include: vec![net("10.66.0.0/16")],
            except: vec![]
        })]]
    );

    let egress = ir.egress.as_ref().unwrap();
    assert_eq!(egress.default, ir::Effect::Deny);
    assert_eq!(egress.rules.len(), 2);
    let google = &egress.rules[0];
    assert_eq!(
        (google.name.as_str(), google.effect),
        ("google", ir::Effect::Allow)
    );
    assert_eq!(google.hosts, vec!["*.googleapis.com".to_string()]);
    assert_eq!(google.networks, None);
    assert_eq!(google.ports, vec![(443, 443)]);
    let imds = &egress.rules[1];
    assert_eq!(
        (imds.name.as_str(), imds.effect),
        ("imds", ir::Effect::Deny)
    );
    assert!(imds.hosts.is_empty() && imds.ports.is_empty());
    assert_eq!(
        imds.networks,
        Some(ir::NetSet {
            include: vec![net("169.254.169.254/32")],
            except: vec![]
        })
    );

    assert_eq!(ir.services.len(), 1);
    let pay = &ir.services[0];
    assert_eq!(pay.name, "payments");
    assert_eq!(pay.authorities, vec![("payments.prod".to_string(), 8080)]);
    assert_eq!(pay.timeout_ms, Some(2000));
    assert_eq!(
        pay.retry,
        Some(ir::Retry {
            attempts: 2,
            on: vec![RetryCond::GatewayError, RetryCond::Reset],
            per_try_timeout_ms: None,
            budget_percent: 20
        })
    );
    assert_eq!(
        pay.breaker,
        Some(ir::CircuitBreaker {
            consecutive_failures: 5,
            backoff_min_ms: 1000,
            backoff_max_ms: 60000,
            jitter_percent: 50
        })
    );
    let names: Vec<&str> = pay.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["east", "west", "canary"]);
    let east = &pay.backends[0];
    assert_eq!(
        east.endpoints,
        vec![
            Endpoint::Addr("10.0.1.10:8080".parse().unwrap()),
            Endpoint::Addr("10.0.1.11:8080".parse().unwrap())
        ]
    );
    assert_eq!(east.cluster.as_deref(), Some("east"));
    assert_eq!(east.failover, Some(1));
    assert_eq!((east.identity.as_ref(), east.max_in_flight), (None, None));
    assert_eq!(pay.backends[1].failover, None);
    assert_eq!(pay.backends[2].cluster, None);
    assert_eq!(pay.routes.len(), 2);
    let beta = &pay.routes[0];
    assert_eq!(beta.name, "beta");
    assert_eq!(
        beta.headers,
        vec![("x-canary".to_string(), ValueCond::Exact("1".into()))]
    );
    assert_eq!(beta.path, PathCond::Any);
    assert_eq!(beta.to, vec![(2, 1)]);
    assert_eq!(pay.routes[1].to, vec![(0, 90), (2, 10)]);
    assert_eq!(pay.routes[1].timeout_ms, None);
}

#[test]
fn lowering_defaults_and_conversions() {
    let ir = lower(
        r#"
mesh { trust-domain "td"  default audit }
server g { port 9000-9001, 9005  protocol grpc  default authenticated
  route all { path prefix "/" }
  route svc { grpc "pkg.Svc/*"  method POST, PUT }
  route one { grpc "pkg.Svc/Get"  header "X-Upper" present  query "k" ~ "v+"  query "j" = "w" }
}
server t { port 7000  protocol tcp }
allow x { to g, t  from identity "*", "spiffe://td/**"  from authenticated  from any }
allow y { to g.one, g.svc  from network 10.0.0.0/8, ::/0 except 10.1.0.0/16, 10.2.3.4 }
egress { default allow  allow all { host "*", "API.Example.COM."  network 192.168.0.0/16  port 1-1024 } }
service s {
  authority "S.Example:81", "s.example.", "[::1]:8080"
  retry { }
  circuit-breaker { }
  backend a { endpoint "Db.Local:5432", "10.0.0.9:80", [::1]:443  identity "spiffe://td/ns/a/sa/b"  max-in-flight 100 }
  route r { to a  timeout 250ms  retry { on 5xx, 503, cancelled, deadline-exceeded, resource-exhausted, internal, unavailable  per-try-timeout 1m  attempts 0  budget 0% } }
}
"#,
    );
    assert_eq!(ir.mesh_default, DefaultPolicy::Audit);
    let g = &ir.servers[0];
    assert_eq!(g.ports, vec![(9000, 9001), (9005, 9005)]);
    assert_eq!(
        (g.protocol, g.default),
        (ir::Protocol::Grpc, DefaultPolicy::Authenticated)
    );
    assert_eq!(g.routes[0].path, PathCond::Any);
    assert_eq!(g.routes[1].path, PathCond::Prefix("/pkg.Svc".into()));
    assert_eq!(
        g.routes[1].methods,
        vec!["POST".to_string(), "PUT".to_string()]
    );
    let one = &g.routes[2];
    assert_eq!(one.path, PathCond::Exact("/pkg.Svc/Get".into()));
    assert_eq!(
        one.headers,
        vec![("x-upper".to_string(), ValueCond::Present)]
    );
    assert_eq!(
        one.queries,
        vec![
            ("k".to_string(), ValueCond::Regex("v+".into())),
            ("j".to_string(), ValueCond::Exact("w".into()))
        ]
    );
    assert_eq!(ir.servers[1].protocol, ir::Protocol::Tcp);
    assert_eq!(ir.servers[1].default, DefaultPolicy::Deny);

    let x = &ir.rules[0];
    assert_eq!(
        x.targets,
        vec![
            Target {
                server: 0,
                route: None
            },
            Target {
                server: 1,
                route: None
            }
        ]
    );
    assert_eq!(
        x.clauses,
        vec![
            vec![PrincipalItem::Identity(vec![
                "*".into(),
                "spiffe://td/**".into()
            ])],
            vec![PrincipalItem::Authenticated],
            vec![PrincipalItem::Any],
        ]
    );
    let y = &ir.rules[1];
    assert_eq!(
        y.targets,
        vec![
            Target {
                server: 0,
                route: Some(2)
            },
            Target {
                server: 0,
                route: Some(1)
            }
        ]
    );
    assert_eq!(
        y.clauses,
        vec![vec![PrincipalItem::Network(ir::NetSet {
            include: vec![net("10.0.0.0/8"), net("::/0")],
            except: vec![net("10.1.0.0/16"), net("10.2.3.4/32")],
        })]]
    );

    let e = ir.egress.as_ref().unwrap();
    assert_eq!(e.default, ir::Effect::Allow);
    assert_eq!(
        e.rules[0].hosts,
        vec!["*".to_string(), "api.example.com".to_string()]
    );
    assert_eq!(e.rules[0].ports, vec![(1, 1024)]);

    let s = &ir.services[0];
    assert_eq!(
        s.authorities,
        vec![
            ("s.example".to_string(), 81),
            ("s.example".to_string(), 80),
            ("::1".to_string(), 8080)
        ]
    );
    assert_eq!(s.timeout_ms, None);
    assert_eq!(
        s.retry,
        Some(ir::Retry {
            attempts: 1,
            on: vec![RetryCond::GatewayError, RetryCond::Reset],
            per_try_timeout_ms: None,
            budget_percent: 20
        })
    );
    assert_eq!(
        s.breaker,
        Some(ir::CircuitBreaker {
            consecutive_failures: 7,
            backoff_min_ms: 1000,
            backoff_max_ms: 60000,
            jitter_percent: 50
        })
    );
    let a = &s.backends[0];
    assert_eq!(
        a.endpoints,
        vec![
            Endpoint::Name("db.local".into(), 5432),
            Endpoint::Addr("10.0.0.9:80".parse().unwrap()),
            Endpoint::Addr("[::1]:443".parse().unwrap()),
        ]
    );
    assert_eq!(a.identity.as_deref(), Some("spiffe://td/ns/a/sa/b"));
    assert_eq!(a.max_in_flight, Some(100));
    let r = &s.routes[0];
    assert_eq!(r.timeout_ms, Some(250));
    assert_eq!(
        r.retry,
        Some(ir::Retry {
            attempts: 0,
            on: vec![
                RetryCond::ServerError,
                RetryCond::Status(503),
                RetryCond::Grpc(1),
                RetryCond::Grpc(4),
                RetryCond::Grpc(8),
                RetryCond::Grpc(13),
                RetryCond::Grpc(14),
            ],
            per_try_timeout_ms: Some(60_000),
            budget_percent: 0,
        })
    );
}

#[test]
fn empty_policy_lowers_to_defaults() {
    let ir = lower("# nothing\n");
    assert_eq!(ir.trust_domain, None);
    assert_eq!(ir.mesh_default, DefaultPolicy::Allow);
    assert!(ir.servers.is_empty() && ir.rules.is_empty() && ir.services.is_empty());
    assert!(ir.egress.is_none());
    let ir = lower("egress { }");
    assert_eq!(ir.egress.unwrap().default, ir::Effect::Deny);
}

#[test]
fn duplicate_statements() {
    expect(
        r#"mesh { trust-domain "a"  trust-domain "b"  default allow  default deny }
mesh { }
server web { port 80  port 81  protocol http  protocol tcp  default deny  default allow
  route r { method GET  method POST  path "/a"  grpc "a.B/c"  header "x" present  header "y" present  query "q" present  query "q" present }
  route p { path "/a"  path "/b" }
}
egress { default deny  default allow  allow a { host "x"  host "y"  port 1  port 2  network 10.0.0.0/8  network 10.0.0.0/8 } }
egress { }
service s { authority "s"  authority "t"  timeout 1s  timeout 2s
  retry { attempts 1  attempts 2  on reset  on 5xx  per-try-timeout 1s  per-try-timeout 2s  budget 1%  budget 2% }
  retry { }
  circuit-breaker { consecutive-failures 1  consecutive-failures 2  backoff 1s 2s  backoff 1s 2s  jitter 1%  jitter 1% }
  circuit-breaker { }
  backend b { endpoint 10.0.0.1:80  endpoint 10.0.0.2:80  identity "spiffe://a/b"  identity "spiffe://a/c"  cluster "x"  cluster "y" }
  backend c { max-in-flight 1  max-in-flight 2  failover b  failover b }
  route r { to b  to c  timeout 1s  timeout 1s  retry { }  retry { } }
}
allow many { to web  to web.r  from any  from authenticated }
"#,
        &[
            ("duplicate-statement", 1),
            ("duplicate-statement", 1),
            ("duplicate-statement", 2),
            ("duplicate-statement", 3),
            ("duplicate-statement", 3),
            ("duplicate-statement", 3),
            ("duplicate-statement", 4),
            ("duplicate-statement", 4),
            ("duplicate-statement", 5),
            ("duplicate-statement", 7),
            ("duplicate-statement", 7),
            ("duplicate-statement", 7),
            ("duplicate-statement", 7),
            ("duplicate-statement", 8),
            ("duplicate-statement", 9),
            ("duplicate-statement", 9),
            ("duplicate-statement", 10),
            ("duplicate-statement", 10),
            ("duplicate-statement", 10),
            ("duplicate-statement", 10),
            ("duplicate-statement", 11),
            ("duplicate-statement", 12),
            ("duplicate-statement", 12),
            ("duplicate-statement", 12),
            ("duplicate-statement", 13),
            ("duplicate-statement", 14),
            ("duplicate-statement", 14),
            ("duplicate-statement", 14),
            ("duplicate-statement", 15),
            ("duplicate-statement", 15),
            ("duplicate-statement", 16),
            ("duplicate-statement", 16),
            ("duplicate-statement", 16),
        ],
    );
}

#[test]
fn duplicate_statement_span_is_the_repeat() {
    let (_, diags) = run_with(
        "server web {\n  port 80\n  port 81\n}\n",
        &Config::default(),
    );
    assert_eq!(diags.len(), 1);
    assert_eq!((diags[0].span.line, diags[0].span.column), (3, 3));
    assert!(diags[0].message.contains("`port`"), "{}", diags[0].message);
}

/// A diagnostic's code and line, and its labels' line, column and message.
type CodeLineLabels<'a> = (&'a str, u32, Vec<(u32, u32, &'a str)>);

#[test]
fn second_places_are_labels() {
    let (_, diags) = run_with(
        r#"mesh { default allow }
mesh { default allow }
server a { port 80  port 81 }
server a { port 82 }
server b { port 80 }
service s { authority "api"  backend x { endpoint 127.0.0.1:1 }  route r { to x } }
service t { authority "api:80"  backend x { endpoint 127.0.0.1:1 }  route r { to x } }
"#,
        &Config::default(),
    );
    let got: Vec<CodeLineLabels<'_>> = diags
        .iter()
        .map(|d| {
            let labels = d
                .labels
                .iter()
                .map(|l| (l.span.line, l.span.column, l.message.as_str()))
                .collect();
            (d.code.as_str(), d.span.line, labels)
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "duplicate-statement",
                2,
                vec![(1, 1, "first `mesh` block here")]
            ),
            (
                "duplicate-statement",
                3,
                vec![(3, 12, "first written here")]
            ),
            (
                "duplicate-name",
                4,
                vec![(3, 8, "server `a` first declared here")]
            ),
            (
                "port-conflict",
                5,
                vec![(3, 12, "server `a` covers port `80` here")]
            ),
            (
                "authority-conflict",
                7,
                vec![(6, 23, "claimed by service `s` here")]
            ),
        ]
    );
}

#[test]
fn duplicate_names() {
    expect(
        r#"server a { port 1  route r { }  route r { } }
server a { port 2 }
server b { port 3  route r { } }
allow x { to a  from any }
deny x { to a  from any }
egress { allow e { }  deny e { }  allow f { } }
service s { authority "s"  backend b { endpoint 10.0.0.1:1 }  backend b { endpoint 10.0.0.1:2 }  route r { to b }  route r { to b } }
service s { authority "t"  route q { to b } }
service u { authority "u"  backend b { endpoint 10.0.0.1:1 }  route r { to b } }
"#,
        &[
            ("duplicate-name", 1),
            ("duplicate-name", 2),
            ("duplicate-name", 5),
            ("duplicate-name", 6),
            ("duplicate-name", 7),
            ("duplicate-name", 7),
            ("duplicate-name", 8),
            // The second `s` has no backend `b`: a real mistake of its own.
            ("unknown-reference", 8),
        ],
    );
    let (_, diags) = run_with(
        "server web { port 1 }\nserver x { port 2 }  server web { port 3 }\n",
        &Config::default(),
    );
    assert_eq!(diags.len(), 1);
    assert_eq!(
        (diags[0].span.line, diags[0].span.column),
        (2, 29),
        "at the later name"
    );
}

#[test]
fn duplicate_server_does_not_cascade() {
    expect(
        r#"server web { port 80 }
server web { port 81  route r { } }
server web { port 80 }
allow a { to web.r, web  from any }
"#,
        &[("duplicate-name", 2), ("duplicate-name", 3)],
    );
    expect(
        r#"service s { authority "s"  route r { to b }  backend b { } }
service s { authority "s"  route r { to b }  backend b { } }
"#,
        &[("duplicate-name", 2)],
    );
}

#[test]
fn unknown_references() {
    expect(
        r#"server web { port 80  route api { path prefix "/api" } }
allow a { to web.apix  from any }
allow b { to nope, web, nope.api  from identity "bad" }
service s { authority "s"
  backend a { endpoint 10.0.0.1:80  failover zzz }
  route r { to a, b 3 }
}
"#,
        &[
            ("unknown-reference", 2),
            ("unknown-reference", 3),
            ("unknown-reference", 3),
            ("invalid-identity", 3),
            ("unknown-reference", 5),
            ("unknown-reference", 6),
        ],
    );
    let (_, diags) = run_with(
        "server web { port 80 }\nallow a { to web.apix  from any }\n",
        &Config::default(),
    );
    assert_eq!(diags[0].span.column, 18, "at the route name: {diags:?}");
}

#[test]
fn port_conflicts() {
    expect(
        r#"server a { port 8000-8010 }
server b { port 9000, 8005 }
server c { port 8010-9000 }
server d { port 1, 2, 3 }
server e { port 4-7, 0 }
"#,
        &[
            ("port-conflict", 2),
            ("port-conflict", 3),
            ("port-conflict", 3),
            ("invalid-value", 5),
        ],
    );
}

#[test]
fn authority_conflicts() {
    expect(
        r#"service s { authority "api"  backend x { endpoint 127.0.0.1:1 }  route r { to x } }
service t {
  authority "other", "API.:80"
  backend x { endpoint 127.0.0.1:1 }  route r { to x }
}
service u { authority "api:81", "[::1]", "[::1]:80"  backend x { endpoint 127.0.0.1:1 }  route r { to x } }
service v { authority "[::1]:80"  backend x { endpoint 127.0.0.1:1 }  route r { to x } }
"#,
        &[("authority-conflict", 3), ("authority-conflict", 7)],
    );
}

#[test]
fn invalid_values() {
    let long = "n".repeat(64);
    let ok63 = "n".repeat(63);
    expect(
        &format!(
            r#"server a {{ port 0, 65536, 90-80, 1-70000 }}
server {long} {{ port 1  route {ok63} {{ path "/a//b" }}  route p {{ path prefix "/a/./" }} }}
server g {{ port 2  route a {{ grpc "no-slash" }}  route b {{ grpc "a/b/c" }}  route c {{ grpc "*/x" }}  route d {{ header "bad name" present }} }}
service s {{ authority "a b", "x:0", "u@h"
  retry {{ attempts 4294967296  on 99, 600, 100, 599  budget 101% }}
  circuit-breaker {{ consecutive-failures 99999999999  backoff 2s 1s  jitter 200% }}
  backend x {{ endpoint 10.0.0.1:0, 10.0.0.256:80, "noport", "h:99999"  max-in-flight 18446744073709551615 }}
  route r {{ to x 4294967296, x 4294967295 }}
}}
"#
        ),
        &[
            ("invalid-value", 1),
            ("invalid-value", 1),
            ("invalid-value", 1),
            ("invalid-value", 1),
            ("invalid-value", 2),
            ("invalid-value", 2),
            ("invalid-value", 2),
            ("invalid-value", 3),
            ("invalid-value", 3),
            ("invalid-value", 3),
            ("invalid-value", 3),
            ("invalid-value", 4),
            ("invalid-value", 4),
            ("invalid-value", 4),
            ("invalid-value", 5),
            ("invalid-value", 5),
            ("invalid-value", 5),
            ("invalid-value", 5),
            ("invalid-value", 6),
            ("invalid-value", 6),
            ("invalid-value", 6),
            ("invalid-value", 7),
            ("invalid-value", 7),
            ("invalid-value", 7),
            ("invalid-value", 7),
            ("invalid-value", 7),
            ("invalid-value", 8),
        ],
    );
    // A too-long reference that matches nothing is an invalid value, not
    // also an unknown reference.
    expect(
        &format!("server a {{ port 1 }}\nallow r {{ to {long}  from any }}\n"),
        &[("invalid-value", 2)],
    );
}

#[test]
fn invalid_value_message_style() {
    let (_, diags) = run_with("server a { port 0 }\n", &Config::default());
    assert_eq!(diags[0].message, "port `0` is out of range (1 to 65535)");
    assert_eq!(diags[0].span.column, 17);
}

#[test]
fn invalid_regexes() {
    expect(
        r#"server web { port 80
  route a { path regex "(unclosed" }
  route b { header "x" ~ "[z-a]" }
  route c { query "q" ~ "a{99999999}" }
  route d { path regex r"/api/v[0-9]+/.*"  header "y" ~ r"\d+"  query "z" ~ "ok" }
}
"#,
        &[
            ("invalid-regex", 2),
            ("invalid-regex", 3),
            ("invalid-regex", 4),
        ],
    );
    let small = Config::new().dfa_size_limit(2000);
    assert_eq!(
        errors_with(
            "server web { port 80  route a { path regex r\"/(?:[a-z][0-9]){20}x\" } }",
            &small
        ),
        vec![("invalid-regex", 1)]
    );
}

#[test]
fn networks() {
    expect(
        r#"allow a { to web  from network 10.0.0.1/8 }
allow b { to web  from network 10.0.0.0/8 except 192.168.0.0/16 }
allow c { to web  from network 10.0.0.0/33, 010.0.0.0/8, 10.0.0.0/8 except 0.0.0.0/4 }
allow d { to web  from network ::/0 except 10.0.0.0/8 }
allow e { to web  from network 10.0.0.0/7 except 11.0.0.0/8, 10.0.0.0/7, 10.0.0.0/8 }
allow f { to web  from network 10.0.0.0/8, 192.168.0.0/16 except 192.168.1.0/24, 10.1.2.3 }
allow g { to web  from network 10.0.0.1/8 except 10.0.0.0/16 }
egress { deny x { network fe80::1/10 except 1.2.3.4 } }
server web { port 80 }
"#,
        &[
            ("invalid-network", 1),
            ("except-outside-network", 2),
            ("invalid-network", 3),
            ("invalid-network", 3),
            ("except-outside-network", 4),
            ("invalid-network", 7),
            ("invalid-network", 8),
        ],
    );
    let (_, diags) = run_with(
        "allow a { to web  from network 10.0.0.1/8 }\nserver web { port 1 }",
        &Config::default(),
    );
    assert!(
        diags[0].message.contains("`10.0.0.0/8`"),
        "{}",
        diags[0].message
    );
}

#[test]
fn identities() {
    expect(
        r#"mesh { trust-domain "prod.example.com" }
server web { port 80 }
allow a { to web  from identity "spiffe://prod.example.com/ns/../x" }
allow b { to web  from identity "*", "spiffe://td/ns/*/sa/**", "spiffe://td/**/x", "spiffe://TD/x", "x" }
allow c { to web  from namespace "ok", "*", "a/b", "..", "" }
service s { authority "s"
  backend b { endpoint 10.0.0.1:80  identity "spiffe://td/ns/a/sa/*" }
  backend c { endpoint 10.0.0.1:80  identity "spiffe://td/ns/a/sa/c" }
  route r { to b, c }
}
"#,
        &[
            ("invalid-identity", 3),
            ("invalid-identity", 4),
            ("invalid-identity", 4),
            ("invalid-identity", 4),
            ("invalid-identity", 5),
            ("invalid-identity", 5),
            ("invalid-identity", 5),
            ("invalid-identity", 5),
            ("invalid-identity", 7),
        ],
    );
    // A bad trust domain is reported once, at its string, and only when a
    // `namespace` needs it.
    expect(
        r#"mesh { trust-domain "Prod" }
server web { port 80 }
allow a { to web  from namespace "x" }
allow b { to web  from namespace "y" }
"#,
        &[("invalid-identity", 1)],
    );
    lower("mesh { trust-domain \"Prod\" }\nserver web { port 80 }\nallow a { to web  from any }\n");
}

#[test]
fn missing_trust_domain() {
    expect(
        r#"server web { port 80 }
allow a { to web  from namespace "x" }
allow b { to web
  from namespace "y", "z" }
mesh { default deny }
"#,
        &[("missing-trust-domain", 2), ("missing-trust-domain", 4)],
    );
}

#[test]
fn hosts() {
    expect(
        r#"egress {
  allow d { host "foo.*.com" }
  allow e { host "*", "*.a.b", "a.b.", "", "**", "*a.b", "a:443", "x" }
}
"#,
        &[
            ("invalid-host", 2),
            ("invalid-host", 3),
            ("invalid-host", 3),
            ("invalid-host", 3),
            ("invalid-host", 3),
        ],
    );
}

#[test]
fn misplaced_statements() {
    expect(
        r#"server web { port 80  protocol tcp  route r { }  route q { } }
server h { port 81
  route a { to x  timeout 1s  retry { } }
}
allow a { to web.r, web, web.nope  from any }
allow b { to h.a  from any }
"#,
        &[
            ("misplaced-statement", 1),
            ("misplaced-statement", 1),
            ("misplaced-statement", 3),
            ("misplaced-statement", 3),
            ("misplaced-statement", 3),
            ("misplaced-statement", 5),
            ("misplaced-statement", 5),
        ],
    );
    // `protocol tcp` after the routes counts too.
    expect(
        "server web { port 80  route r { }  protocol tcp }",
        &[("misplaced-statement", 1)],
    );
}

#[test]
fn no_backend() {
    expect(
        r#"service a { authority "a" backend x { endpoint 10.0.0.1:1 } }
service b { authority "b"
  backend x { endpoint 10.0.0.1:1 }
  backend y { endpoint 10.0.0.1:2 }
  route none { path "/" }
  route zero { to x 0, y 0 }
  route some { to x 0, y }
  route one { to x 0, y 1 }
}
"#,
        &[("no-backend", 1), ("no-backend", 5), ("no-backend", 6)],
    );
    let (_, diags) = run_with("service a {\n  authority \"a\"\n}\n", &Config::default());
    assert_eq!(
        (diags[0].span.line, diags[0].span.column),
        (1, 9),
        "at the service name"
    );
}

#[test]
fn failover_cycles() {
    expect(
        r#"service s { authority "s"
  backend one { endpoint 10.0.0.1:80  failover two }
  backend two { endpoint 10.0.0.2:80  failover one }
  backend self { failover self }
  backend a { failover b }
  backend b { failover c }
  backend c { failover b }
  backend tail { failover a }
  backend free { failover tail }
  route r { to one }
}
service t { authority "t"
  backend one { failover two }
  backend two { }
  route r { to one }
}
"#,
        &[
            ("failover-cycle", 3),
            ("failover-cycle", 4),
            ("failover-cycle", 7),
        ],
    );
    let (_, diags) = run_with(
        "service s { authority \"s\" backend one { failover two } backend two { failover one } route r { to one } }",
        &Config::default(),
    );
    assert_eq!(diags.len(), 1);
    assert!(
        diags[0].message.contains("`one` -> `two` -> `one`"),
        "{}",
        diags[0].message
    );
}

#[test]
fn empty_rules() {
    expect(
        r#"server web { port 80 }
deny nothing { to web }
allow nobody { from any }
allow void { }
allow ok { to web  from any }
"#,
        &[("empty-rule", 2), ("empty-rule", 3), ("empty-rule", 4)],
    );
}

#[test]
fn every_error_is_reported_across_files() {
    use sluice_lang::ast::SourceFile;
    use sluice_lang::parse::parse_files;
    let files = vec![
        SourceFile {
            path: "a.sluice".into(),
            text: "mesh { }\nserver a { port 80 }\n".into(),
        },
        SourceFile {
            path: "b.sluice".into(),
            text: "\nmesh { }\nserver b { port 80 }\n".into(),
        },
    ];
    let (policy, parse_diags) = parse_files(files);
    assert!(parse_diags.is_empty());
    let (ir, diags) = ast_to_ir(&policy, &Config::default());
    assert!(ir.is_none());
    let mut got: Vec<_> = diags
        .iter()
        .map(|d| (d.code.as_str(), d.span.file, d.span.line))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![("duplicate-statement", 1, 2), ("port-conflict", 1, 3)]
    );
    let conflict = diags
        .iter()
        .find(|d| d.code.as_str() == "port-conflict")
        .unwrap();
    assert!(
        conflict.message.contains("(a.sluice:2)"),
        "{}",
        conflict.message
    );
}

/// Runs the shared lint conformance files (skipped when the shared folder
/// is absent, a failure under CI): every expected error comes out with its
/// code (and line), and no error with a code that no expected diagnostic
/// has.
#[test]
fn lint_conformance_errors() {
    let Some(dir) = sluice_testkit::shared_dir("conformance/lint", "the shared lint cases") else {
        return;
    };
    let mut failures = Vec::new();
    for path in sluice_testkit::toml_files(&dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let Some(policy_text) = doc.get("policy").and_then(|p| p.as_str()) else {
            continue;
        };
        let Some(expected) = doc.get("diagnostic").and_then(|d| d.as_array()) else {
            continue;
        };
        let (policy, mut diags) = parse_str("policy.sluice", policy_text);
        diags.extend(ast_to_ir(&policy, &Config::default()).1);
        let mut codes = Vec::new();
        for exp in expected {
            let code = exp.get("code").and_then(|c| c.as_str()).unwrap_or_default();
            let severity = exp
                .get("severity")
                .and_then(|c| c.as_str())
                .unwrap_or_default();
            codes.push(code.to_string());
            if severity != "error" {
                continue; // Warnings come from the lint analyses.
            }
            let line = exp.get("line").and_then(|l| l.as_integer());
            let found = diags.iter().any(|d| {
                d.code.as_str() == code && (line.is_none() || line == Some(i64::from(d.span.line)))
            });
            if !found {
                failures.push(format!(
                    "{}: missing {code} at line {line:?}; got {diags:?}",
                    path.display()
                ));
            }
        }
        for d in diags.iter().filter(|d| d.severity == Severity::Error) {
            if !codes.iter().any(|c| c == d.code.as_str()) {
                failures.push(format!("{}: unexpected {d:?}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
