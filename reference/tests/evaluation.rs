//! Evaluation tests on hand-built ASTs.

mod support;

use std::net::IpAddr;

use sluice_lang::ast::*;

use sluice_reference::{evaluate, Decision, Request};
use support::{grpc, http, out_http, request_of, summary, with_header, with_identity};

fn sp<T>(node: T) -> Spanned<T> {
    Spanned::new(node, Span::default())
}

fn s(v: &str) -> Spanned<String> {
    sp(v.to_string())
}

fn ports(p: &[(u64, u64)]) -> Vec<PortRange> {
    p.iter()
        .map(|&(a, b)| PortRange {
            first: sp(a),
            last: (a != b).then(|| sp(b)),
        })
        .collect()
}

fn policy(items: Vec<Item>) -> Policy {
    Policy {
        files: Vec::new(),
        items,
    }
}

fn mesh(td: Option<&str>, default: Option<Default>) -> Item {
    let mut stmts = Vec::new();
    if let Some(td) = td {
        stmts.push(sp(MeshStmt::TrustDomain(s(td))));
    }
    if let Some(d) = default {
        stmts.push(sp(MeshStmt::Default(sp(d))));
    }
    Item::Mesh(Mesh {
        span: Span::default(),
        stmts,
    })
}

fn server(name: &str, port: u64, stmts: Vec<ServerStmt>) -> Item {
    let mut all = vec![sp(ServerStmt::Port(ports(&[(port, port)])))];
    all.extend(stmts.into_iter().map(sp));
    Item::Server(Server {
        span: Span::default(),
        name: s(name),
        stmts: all,
    })
}

fn route(name: &str, stmts: Vec<RouteStmt>) -> Route {
    Route {
        span: Span::default(),
        name: s(name),
        stmts: stmts.into_iter().map(sp).collect(),
    }
}

fn rule(effect: Effect, name: &str, targets: &[&str], from: Vec<Principal>) -> Item {
    let targets = targets
        .iter()
        .map(|t| {
            let (server, route) = match t.split_once('.') {
                Some((a, b)) => (s(a), Some(s(b))),
                None => (s(t), None),
            };
            Target {
                server,
                route,
                span: Span::default(),
            }
        })
        .collect();
    let mut stmts = vec![sp(RuleStmt::To(targets))];
    stmts.extend(from.into_iter().map(|p| sp(RuleStmt::From(p))));
    Item::Rule(Rule {
        span: Span::default(),
        effect,
        name: s(name),
        stmts,
    })
}

fn nets(include: &[&str], except: &[&str]) -> Networks {
    Networks {
        include: include.iter().map(|n| s(n)).collect(),
        except: except.iter().map(|n| s(n)).collect(),
    }
}

fn with_ip(mut r: Request, ip: &str) -> Request {
    r.peer_ip = Some(ip.parse().unwrap());
    r
}

fn eval(p: &Policy, r: &Request) -> Decision {
    evaluate(p, r).unwrap()
}

#[test]
fn mesh_default_without_server() {
    let empty = policy(vec![]);
    let d = eval(&empty, &http(1, "GET", "/"));
    assert_eq!(summary(&d), (true, "default", None, false, None, None));
    assert_eq!(d.server, None);
    assert_eq!(d.route, None);

    let deny = policy(vec![mesh(None, Some(Default::Deny))]);
    assert_eq!(
        summary(&eval(&deny, &http(1, "GET", "/"))),
        (false, "default", None, false, Some(403), None)
    );
    // gRPC only by content-type when there is no server.
    let grpc_req = with_header(
        http(1, "POST", "/a.B/C"),
        "Content-Type",
        "Application/GRPC+proto",
    );
    assert_eq!(
        summary(&eval(&deny, &grpc_req)),
        (false, "default", None, false, Some(403), Some(7))
    );
    // A connection gets no statuses.
    assert_eq!(
        summary(&eval(&deny, &Request::inbound(1))),
        (false, "default", None, false, None, None)
    );
    // No path normalization without a server.
    assert_eq!(
        summary(&eval(&empty, &http(1, "GET", "bad"))),
        (true, "default", None, false, None, None)
    );
    // No port at all: no server.
    let mut no_port = http(1, "GET", "/");
    no_port.port = None;
    assert_eq!(eval(&deny, &no_port).reason, "default");

    let audit = policy(vec![mesh(None, Some(Default::Audit))]);
    assert_eq!(
        summary(&eval(&audit, &http(1, "GET", "/"))),
        (true, "default", None, true, None, None)
    );

    let authn = policy(vec![mesh(None, Some(Default::Authenticated))]);
    assert!(!eval(&authn, &http(1, "GET", "/")).allow);
    assert!(eval(&authn, &with_identity(http(1, "GET", "/"), "not spiffe")).allow);
}

#[test]
fn connections_and_tcp_servers() {
    let p = policy(vec![
        server("web", 80, vec![]),
        server("rpc", 81, vec![ServerStmt::Protocol(sp(Protocol::Grpc))]),
        server("db", 5432, vec![ServerStmt::Protocol(sp(Protocol::Tcp))]),
        rule(
            Effect::Allow,
            "ops",
            &["db"],
            vec![Principal::Network(nets(&["10.0.0.0/8"], &[]))],
        ),
    ]);
    assert!(evaluate(&p, &Request::inbound(80)).is_err());
    assert!(evaluate(&p, &Request::inbound(81)).is_err());
    let d = eval(&p, &Request::inbound(5432));
    assert_eq!(summary(&d), (false, "default", None, false, None, None));
    assert_eq!(d.server.as_deref(), Some("db"));
    // Method, path and headers are ignored on a tcp server, even a bad path.
    let d = eval(&p, &grpc(http(5432, "GET", "bad path")));
    assert_eq!(summary(&d), (false, "default", None, false, None, None));
    assert_eq!(d.route, None);
    let d = eval(&p, &with_ip(Request::inbound(5432), "10.1.2.3"));
    assert_eq!(summary(&d), (true, "rule", Some("ops"), false, None, None));
}

#[test]
fn bad_path_and_no_route_statuses() {
    let p = policy(vec![
        server("web", 80, vec![ServerStmt::Default(sp(Default::Audit))]),
        server(
            "rpc",
            81,
            vec![
                ServerStmt::Protocol(sp(Protocol::Grpc)),
                ServerStmt::Route(route("say", vec![RouteStmt::Grpc(s("echo.Echo/Say"))])),
            ],
        ),
    ]);
    // Audit does not touch bad-path.
    let d = eval(&p, &http(80, "GET", "/a%2fb"));
    assert_eq!(
        summary(&d),
        (false, "bad-path", None, false, Some(400), None)
    );
    assert_eq!(d.server.as_deref(), Some("web"));
    let d = eval(&p, &http(81, "POST", "/a%2fb"));
    assert_eq!(
        summary(&d),
        (false, "bad-path", None, false, Some(400), Some(13))
    );
    let d = eval(&p, &http(81, "POST", "/echo.Echo/Other"));
    assert_eq!(
        summary(&d),
        (false, "no-route", None, false, Some(404), Some(12))
    );
    let d = eval(&p, &http(81, "POST", "/echo.Echo/Say"));
    assert_eq!(
        summary(&d),
        (false, "default", None, false, Some(403), Some(7))
    );
    assert_eq!(d.route.as_deref(), Some("say"));
    // A missing path on an HTTP request is a bad path.
    let mut r = http(80, "GET", "/");
    r.path = None;
    assert_eq!(eval(&p, &r).reason, "bad-path");
    // Implicit route; audit.
    let d = eval(&p, &http(80, "GET", "/x"));
    assert_eq!(summary(&d), (true, "default", None, true, None, None));
    assert_eq!(d.route, None);
}

#[test]
fn rules_targets_and_audit() {
    let p = policy(vec![
        mesh(Some("td"), None),
        server(
            "web",
            80,
            vec![
                ServerStmt::Route(route(
                    "a",
                    vec![RouteStmt::Path(PathMatch::Prefix(s("/a")))],
                )),
                ServerStmt::Route(route("b", vec![])),
            ],
        ),
        server("trial", 81, vec![ServerStmt::Default(sp(Default::Audit))]),
        rule(Effect::Allow, "to-a", &["web.a"], vec![Principal::Any]),
        rule(
            Effect::Allow,
            "ns",
            &["web.b"],
            vec![Principal::Namespace(vec![s("shop")])],
        ),
        rule(
            Effect::Deny,
            "deny-bad",
            &["web", "trial"],
            vec![Principal::Identity(vec![s("spiffe://td/bad")])],
        ),
        rule(
            Effect::Deny,
            "deny-bad-2",
            &["web"],
            vec![Principal::Identity(vec![s("*")])],
        ),
    ]);
    let d = eval(&p, &http(80, "GET", "/a/x"));
    assert_eq!(
        (d.allow, d.rule.as_deref(), d.route.as_deref()),
        (true, Some("to-a"), Some("a"))
    );
    let d = eval(&p, &http(80, "GET", "/b"));
    assert_eq!(
        (d.allow, d.reason, d.route.as_deref()),
        (false, "default", Some("b"))
    );
    let d = eval(
        &p,
        &with_identity(http(80, "GET", "/b"), "spiffe://td/ns/shop/sa/x"),
    );
    assert_eq!(
        summary(&d),
        (false, "rule", Some("deny-bad-2"), false, Some(403), None)
    );
    let d = eval(&p, &with_identity(http(80, "GET", "/a"), "spiffe://td/bad"));
    assert_eq!(d.rule.as_deref(), Some("deny-bad"));
    let d = eval(&p, &with_identity(http(81, "GET", "/"), "spiffe://td/bad"));
    assert_eq!(
        summary(&d),
        (true, "rule", Some("deny-bad"), true, None, None)
    );
    let d = eval(&p, &with_identity(http(81, "GET", "/"), "spiffe://td/good"));
    assert_eq!(summary(&d), (true, "default", None, true, None, None));
}

fn service(name: &str, stmts: Vec<ServiceStmt>) -> Item {
    Item::Service(Service {
        span: Span::default(),
        name: s(name),
        stmts: stmts.into_iter().map(sp).collect(),
    })
}

fn to(list: &[(&str, Option<u64>)]) -> RouteStmt {
    RouteStmt::To(
        list.iter()
            .map(|(n, w)| WeightedName {
                name: s(n),
                weight: w.map(sp),
            })
            .collect(),
    )
}

fn tunnel(authority: &str) -> Request {
    Request {
        authority: Some(authority.to_string()),
        ..Request::outbound()
    }
}

fn tcp(ip: &str, port: u16) -> Request {
    Request {
        ip: Some(ip.parse::<IpAddr>().unwrap()),
        port: Some(port),
        ..Request::outbound()
    }
}

fn egress_rule(effect: Effect, name: &str, stmts: Vec<DestStmt>) -> Spanned<EgressStmt> {
    sp(EgressStmt::Rule(EgressRule {
        span: Span::default(),
        effect,
        name: s(name),
        stmts: stmts.into_iter().map(sp).collect(),
    }))
}

#[test]
fn outbound_shapes() {
    let p = policy(vec![]);
    assert!(evaluate(&p, &Request::outbound()).is_err());
    let mut r = tunnel("a");
    r.method = Some("GET".into());
    assert!(evaluate(&p, &r).is_err());
    let mut r = tcp("10.0.0.1", 80);
    r.port = None;
    assert!(evaluate(&p, &r).is_err());
    assert!(evaluate(&p, &tunnel("::1")).is_err());
    assert!(evaluate(&p, &tunnel("a:0")).is_err());
    assert!(evaluate(&p, &out_http("", "GET", "/")).is_err());
    assert_eq!(
        summary(&eval(&p, &tcp("10.0.0.1", 80))),
        (true, "default", None, false, None, None)
    );
    assert_eq!(
        summary(&eval(&p, &tunnel("x:443"))),
        (true, "default", None, false, None, None)
    );
    let d = eval(&p, &grpc(out_http("x", "GET", "/%zz")));
    assert_eq!(
        summary(&d),
        (false, "bad-path", None, false, Some(400), Some(13))
    );
}

#[test]
fn services() {
    let p = policy(vec![
        service(
            "pay",
            vec![
                ServiceStmt::Authority(vec![s("Pay.Prod:8080"), s("[::1]"), s("10.0.0.9:80")]),
                ServiceStmt::Timeout(sp(2000)),
                ServiceStmt::Route(route(
                    "get",
                    vec![
                        RouteStmt::Method(vec![s("GET")]),
                        to(&[("a", Some(0)), ("b", None)]),
                        RouteStmt::Timeout(sp(5)),
                    ],
                )),
                ServiceStmt::Route(route(
                    "post",
                    vec![RouteStmt::Method(vec![s("POST")]), to(&[("a", Some(3))])],
                )),
            ],
        ),
        Item::Egress(Egress {
            span: Span::default(),
            stmts: vec![],
        }),
    ]);
    let d = eval(&p, &out_http("pay.prod.:8080", "GET", "/x"));
    assert_eq!(
        (d.allow, d.reason, d.service.as_deref(), d.route.as_deref()),
        (true, "service", Some("pay"), Some("get"))
    );
    assert_eq!(d.backends, vec![("a".to_string(), 0), ("b".to_string(), 1)]);
    assert_eq!(d.timeout_ms, Some(5));
    let d = eval(&p, &out_http("pay.prod:8080", "POST", "/x"));
    assert_eq!(
        (d.backends.clone(), d.timeout_ms),
        (vec![("a".to_string(), 3)], Some(2000))
    );
    let d = eval(&p, &grpc(out_http("[::1]:80", "PUT", "/")));
    assert_eq!(
        summary(&d),
        (false, "no-route", None, false, Some(404), Some(12))
    );
    assert_eq!(d.service.as_deref(), Some("pay"));
    assert_eq!(
        eval(&p, &out_http("10.0.0.9", "GET", "/"))
            .service
            .as_deref(),
        Some("pay")
    );
    // Tunnels never match services; the empty egress block denies.
    let d = eval(&p, &tunnel("pay.prod:8080"));
    assert_eq!(
        summary(&d),
        (false, "default", None, false, Some(403), None)
    );
    assert_eq!(d.service, None);
    // Another port is not the service.
    let d = eval(&p, &grpc(out_http("pay.prod:8081", "GET", "/")));
    assert_eq!(
        summary(&d),
        (false, "default", None, false, Some(403), Some(7))
    );
}

#[test]
fn egress_rules() {
    let p = policy(vec![Item::Egress(Egress {
        span: Span::default(),
        stmts: vec![
            egress_rule(
                Effect::Allow,
                "web",
                vec![DestStmt::Port(ports(&[(80, 80), (443, 443)]))],
            ),
            egress_rule(
                Effect::Allow,
                "star",
                vec![
                    DestStmt::Host(vec![s("*")]),
                    DestStmt::Port(ports(&[(22, 22)])),
                ],
            ),
            egress_rule(
                Effect::Deny,
                "lan",
                vec![
                    DestStmt::Network(nets(&["10.0.0.0/8"], &["10.1.0.0/16"])),
                    DestStmt::Host(vec![s("*.LAN.")]),
                ],
            ),
            sp(EgressStmt::Default(sp(Effect::Deny))),
        ],
    })]);
    assert_eq!(
        summary(&eval(&p, &tcp("8.8.8.8", 443))),
        (true, "rule", Some("web"), false, None, None)
    );
    assert_eq!(
        summary(&eval(&p, &tcp("8.8.8.8", 444))),
        (false, "default", None, false, None, None)
    );
    assert_eq!(
        summary(&eval(&p, &tcp("10.2.0.1", 443))),
        (false, "rule", Some("lan"), false, None, None)
    );
    assert_eq!(
        summary(&eval(&p, &tcp("10.1.0.1", 443))),
        (true, "rule", Some("web"), false, None, None)
    );
    // Without a host, `*` matches nothing.
    assert_eq!(
        summary(&eval(&p, &tcp("8.8.8.8", 22))),
        (false, "default", None, false, None, None)
    );
    assert_eq!(
        summary(&eval(&p, &tunnel("x:22"))),
        (true, "rule", Some("star"), false, None, None)
    );
    assert_eq!(
        summary(&eval(&p, &tunnel("a.b.lan"))),
        (false, "rule", Some("lan"), false, Some(403), None)
    );
    assert_eq!(
        summary(&eval(&p, &tunnel("lan"))),
        (true, "rule", Some("web"), false, None, None)
    );
    // An IP-literal authority gives the IP; an explicit ip wins.
    assert_eq!(
        summary(&eval(&p, &tunnel("10.2.3.4:443"))),
        (false, "rule", Some("lan"), false, Some(403), None)
    );
    let mut r = tunnel("10.2.3.4:443");
    r.ip = Some("8.8.8.8".parse().unwrap());
    assert_eq!(eval(&p, &r).rule.as_deref(), Some("web"));
    // The request port is ignored when there is an authority.
    let mut r = tunnel("x");
    r.port = Some(444);
    assert_eq!(eval(&p, &r).rule.as_deref(), Some("web"));
}

/// A policy exercising most statements, for the panic-freedom property.
fn busy_policy() -> Policy {
    policy(vec![
        mesh(Some("td"), Some(Default::Authenticated)),
        server(
            "web",
            80,
            vec![
                ServerStmt::Route(route(
                    "r",
                    vec![
                        RouteStmt::Path(PathMatch::Regex(s("/a.*"))),
                        RouteStmt::Header(s("h"), ValueMatch::Regex(s("[a-z]+"))),
                        RouteStmt::Query(s("q"), ValueMatch::Exact(s("1"))),
                    ],
                )),
                ServerStmt::Route(route(
                    "g",
                    vec![
                        RouteStmt::Grpc(s("a.B/*")),
                        RouteStmt::Method(vec![s("POST")]),
                    ],
                )),
            ],
        ),
        server("db", 81, vec![ServerStmt::Protocol(sp(Protocol::Tcp))]),
        rule(
            Effect::Deny,
            "d",
            &["web.r", "db"],
            vec![
                Principal::Network(nets(&["10.0.0.0/8", "::/0"], &["10.1.0.0/16"])),
                Principal::Authenticated,
            ],
        ),
        rule(
            Effect::Allow,
            "a",
            &["web"],
            vec![Principal::Identity(vec![s("spiffe://td/**"), s("*")])],
        ),
        service(
            "svc",
            vec![
                ServiceStmt::Authority(vec![s("svc"), s("[::1]:8080")]),
                ServiceStmt::Route(route(
                    "m",
                    vec![RouteStmt::Method(vec![s("GET")]), to(&[("b", Some(5))])],
                )),
            ],
        ),
        Item::Egress(Egress {
            span: Span::default(),
            stmts: vec![
                egress_rule(
                    Effect::Allow,
                    "h",
                    vec![DestStmt::Host(vec![s("*.x.y"), s("*")])],
                ),
                egress_rule(
                    Effect::Deny,
                    "n",
                    vec![
                        DestStmt::Network(nets(&["10.0.0.0/8"], &[])),
                        DestStmt::Port(ports(&[(1, 100)])),
                    ],
                ),
            ],
        }),
    ])
}

proptest::proptest! {
    #[test]
    fn evaluate_never_panics_and_is_deterministic(
        inbound in proptest::bool::ANY,
        port in proptest::option::of(proptest::sample::select(vec![0u16, 1, 22, 80, 81, 443, 8080, 65535])),
        method in proptest::option::of(r"GET|POST|[A-Z]{0,3}"),
        path in proptest::option::of(r"[/a.%2eEfF5?#&=q1h]{0,16}|\PC{0,12}"),
        headers in proptest::collection::vec((r"h|H|content-type|x", r"application/grpc|[a-z,]{0,4}|\PC{0,4}"), 0..3),
        peer_ip in proptest::option::of(proptest::sample::select(vec!["10.1.2.3", "10.9.9.9", "::1", "8.8.8.8"])),
        peer_identity in proptest::option::of(r"spiffe://td/[a-z/]{0,6}|\PC{0,8}"),
        authority in proptest::option::of(r"svc|\[::1\]:8080|a\.x\.y|x\.y:[0-9]{1,6}|10\.0\.0\.1|\PC{0,8}"),
        ip in proptest::option::of(proptest::sample::select(vec!["10.1.2.3", "::1", "1.1.1.1"])),
    ) {
        let req = request_of(inbound, port, method, path, headers, (peer_ip, peer_identity), (authority, ip));
        let p = busy_policy();
        let first = evaluate(&p, &req);
        proptest::prop_assert_eq!(&first, &evaluate(&p, &req));
        if let Ok(d) = first {
            // Statuses only on denials; audit only on allows.
            proptest::prop_assert!(d.allow || !d.audit);
            proptest::prop_assert!(!d.allow || (d.http_status.is_none() && d.grpc_status.is_none()));
            proptest::prop_assert!(d.grpc_status.is_none() || d.http_status.is_some());
        }
    }
}

fn parsed(text: &str) -> Policy {
    let (p, diagnostics) = sluice_lang::parse::parse_str("t.sluice", text);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    p
}

#[test]
fn request_error_kinds() {
    use sluice_reference::{evaluate_request, ErrorKind};
    let p = parsed("server web { port 80 }");
    let kind = |r: &Request| evaluate_request(&p, r).err().map(|e| e.kind);
    assert_eq!(
        kind(&Request::inbound(80)),
        Some(ErrorKind::ConnectionToHttpServer)
    );
    assert_eq!(kind(&Request::inbound(81)), None);
    assert_eq!(kind(&Request::outbound()), Some(ErrorKind::Incomplete));
    assert_eq!(kind(&tunnel("a b")), Some(ErrorKind::BadAuthority));
    let mut r = tunnel("a b");
    r.method = Some("GET".into());
    assert_eq!(
        kind(&r),
        Some(ErrorKind::Incomplete),
        "the shape is checked before the authority"
    );
}

#[test]
fn service_settings_fill_in_the_spec_defaults() {
    use sluice_reference::{service_settings, Backend, Breaker, Endpoint, Retry, RetryOn};
    let p = parsed(
        r#"service s {
          authority "s.svc"  timeout 2s
          retry { }
          circuit-breaker { jitter 10% }
          backend a { endpoint 10.0.0.1:80, [2001:db8::1]:8080, "a.svc:9000"  failover b  max-in-flight 4 }
          backend b { identity "spiffe://td/ns/x/sa/b"  cluster "east" }
          route own { to a  retry { attempts 3  on 5xx, 429, unavailable, cancelled  per-try-timeout 250ms  budget 5% } }
          route inherits { to b }
        }"#,
    );
    let s = service_settings(&p, "s").expect("the service");
    let defaults = Retry {
        attempts: 1,
        on: vec![RetryOn::GatewayError, RetryOn::Reset],
        per_try_timeout_ms: None,
        budget_percent: 20,
    };
    assert_eq!(s.timeout_ms, Some(2000));
    assert_eq!(s.retry, Some(defaults.clone()));
    assert_eq!(
        s.breaker,
        Some(Breaker {
            consecutive_failures: 7,
            backoff_min_ms: 1000,
            backoff_max_ms: 60_000,
            jitter_percent: 10
        })
    );
    assert_eq!(
        s.backends[0],
        Backend {
            name: "a".into(),
            endpoints: vec![
                Endpoint::Addr("10.0.0.1:80".parse().unwrap()),
                Endpoint::Addr("[2001:db8::1]:8080".parse().unwrap()),
                Endpoint::Name("a.svc:9000".into()),
            ],
            identity: None,
            cluster: None,
            failover: Some("b".into()),
            max_in_flight: Some(4),
        }
    );
    assert_eq!(
        s.backends[1].identity.as_deref(),
        Some("spiffe://td/ns/x/sa/b")
    );
    assert_eq!(s.backends[1].cluster.as_deref(), Some("east"));
    assert_eq!(
        s.routes[0].retry,
        Some(Retry {
            attempts: 3,
            on: vec![
                RetryOn::ServerError,
                RetryOn::Status(429),
                RetryOn::Grpc(14),
                RetryOn::Grpc(1)
            ],
            per_try_timeout_ms: Some(250),
            budget_percent: 5,
        })
    );
    assert_eq!(
        (s.routes[1].name.as_str(), s.routes[1].retry.as_ref()),
        ("inherits", Some(&defaults))
    );
    assert!(service_settings(&p, "t").is_none());
    let bare = service_settings(
        &parsed(r#"service s { authority "s"  backend a { }  route r { to a } }"#),
        "s",
    );
    let bare = bare.expect("the service");
    assert_eq!(
        (bare.retry, bare.breaker, bare.routes[0].retry.clone()),
        (None, None, None)
    );
}
