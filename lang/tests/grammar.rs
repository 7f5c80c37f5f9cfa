//! The grammar of spec section 2: the spec example, every conformance policy,
//! AST shapes and spans, syntax errors, token boundaries, and garbage input.

use sluice_lang::ast::*;
use sluice_lang::parse::{parse_files, parse_str};
use sluice_lang::{render, Code, Diagnostic};
use sluice_testkit::fixtures::SPEC_EXAMPLE;
use sluice_testkit::Rng;

/// Parses `text`, asserting it has no syntax error.
fn ok(text: &str) -> Policy {
    let (policy, diags) = parse_str("test.sluice", text);
    assert!(
        diags.is_empty(),
        "unexpected diagnostics for {text:?}:\n{}",
        render::human(&policy.files, &diags)
    );
    policy
}

/// Parses `text`, asserting exactly one syntax error and no items.
fn syntax_error(text: &str) -> Diagnostic {
    let (policy, diags) = parse_str("test.sluice", text);
    assert_eq!(diags.len(), 1, "{text:?}: {diags:?}");
    assert!(policy.items.is_empty(), "{text:?}");
    assert_eq!(diags[0].code, Code::Syntax);
    assert!(diags[0].is_error());
    diags[0].clone()
}

/// The line and column of the syntax error of `text`.
fn error_at(text: &str) -> (u32, u32) {
    let d = syntax_error(text);
    (d.span.line, d.span.column)
}

fn one_server(text: &str) -> Server {
    match ok(text).items.as_slice() {
        [Item::Server(s)] => s.clone(),
        other => panic!("{other:?}"),
    }
}

fn one_route(text: &str) -> Route {
    let server = one_server(text);
    match server.stmts.as_slice() {
        [Spanned {
            node: ServerStmt::Route(r),
            ..
        }] => r.clone(),
        other => panic!("{other:?}"),
    }
}

fn one_service(text: &str) -> Service {
    match ok(text).items.as_slice() {
        [Item::Service(s)] => s.clone(),
        other => panic!("{other:?}"),
    }
}

fn one_rule(text: &str) -> Rule {
    match ok(text).items.as_slice() {
        [Item::Rule(r)] => r.clone(),
        other => panic!("{other:?}"),
    }
}

fn names(items: &[Str]) -> Vec<&str> {
    items.iter().map(|s| s.node.as_str()).collect()
}

fn nets(items: &[Net]) -> Vec<&str> {
    items.iter().map(|s| s.node.as_str()).collect()
}

#[test]
fn spec_example() {
    let policy = ok(SPEC_EXAMPLE);
    assert_eq!(policy.items.len(), 7);
    let [Item::Mesh(mesh), Item::Server(web), Item::Rule(scrape), Item::Rule(frontend), Item::Rule(quarantine), Item::Egress(egress), Item::Service(payments)] =
        policy.items.as_slice()
    else {
        panic!("{:?}", policy.items)
    };

    // mesh
    assert_eq!(
        (
            mesh.span.line,
            mesh.span.column,
            mesh.span.start,
            mesh.span.end
        ),
        (1, 1, 0, 4)
    );
    let [Spanned {
        node: MeshStmt::TrustDomain(td),
        span,
    }] = mesh.stmts.as_slice()
    else {
        panic!()
    };
    assert_eq!(td.node, "prod.example.com");
    assert_eq!((td.span.line, td.span.column), (1, 21));
    assert_eq!((span.line, span.column), (1, 8));
    assert_eq!(
        &SPEC_EXAMPLE[span.start as usize..span.end as usize],
        r#"trust-domain "prod.example.com""#
    );

    // server
    assert_eq!(web.name.node, "web");
    assert_eq!((web.span.line, web.span.column), (3, 1));
    assert_eq!(web.span.end - web.span.start, "server".len() as u32);
    assert_eq!((web.name.span.line, web.name.span.column), (3, 8));
    assert_eq!(web.stmts.len(), 4);
    let ServerStmt::Port(ports) = &web.stmts[0].node else {
        panic!()
    };
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].first.node, 8080);
    assert_eq!(ports[0].last, None);
    assert_eq!((web.stmts[0].span.line, web.stmts[0].span.column), (4, 3));
    assert!(matches!(&web.stmts[1].node, ServerStmt::Protocol(p) if p.node == Protocol::Http));
    let ServerStmt::Route(metrics) = &web.stmts[2].node else {
        panic!()
    };
    assert_eq!(metrics.name.node, "metrics");
    assert_eq!((metrics.span.line, metrics.span.column), (6, 3));
    let [m, p] = metrics.stmts.as_slice() else {
        panic!()
    };
    let RouteStmt::Method(methods) = &m.node else {
        panic!()
    };
    assert_eq!(methods[0].node, "GET");
    assert!(matches!(&p.node, RouteStmt::Path(PathMatch::Exact(s)) if s.node == "/metrics"));
    let ServerStmt::Route(api) = &web.stmts[3].node else {
        panic!()
    };
    let [p, h] = api.stmts.as_slice() else {
        panic!()
    };
    assert!(matches!(&p.node, RouteStmt::Path(PathMatch::Prefix(s)) if s.node == "/api"));
    let RouteStmt::Header(name, ValueMatch::Regex(re)) = &h.node else {
        panic!("{h:?}")
    };
    assert_eq!(name.node, "x-tenant");
    assert_eq!(re.node, "[a-z]+");

    // rules
    assert_eq!(scrape.effect, Effect::Allow);
    assert_eq!(scrape.name.node, "scrape");
    let [to, from] = scrape.stmts.as_slice() else {
        panic!()
    };
    let RuleStmt::To(targets) = &to.node else {
        panic!()
    };
    assert_eq!(targets[0].server.node, "web");
    assert_eq!(
        targets[0].route.as_ref().map(|r| r.node.as_str()),
        Some("metrics")
    );
    assert_eq!((targets[0].span.line, targets[0].span.column), (10, 21));
    assert_eq!(
        targets[0].span.end - targets[0].span.start,
        "web.metrics".len() as u32
    );
    assert_eq!(targets[0].route.as_ref().unwrap().span.column, 25);
    assert!(
        matches!(&from.node, RuleStmt::From(Principal::Namespace(ns)) if names(ns) == ["monitoring"])
    );
    let RuleStmt::From(Principal::Identity(ids)) = &frontend.stmts[1].node else {
        panic!()
    };
    assert_eq!(names(ids), ["spiffe://prod.example.com/ns/shop/sa/*"]);
    assert_eq!(quarantine.effect, Effect::Deny);
    assert_eq!((quarantine.span.line, quarantine.span.column), (12, 1));
    let RuleStmt::To(targets) = &quarantine.stmts[0].node else {
        panic!()
    };
    assert_eq!(targets[0].route, None);
    let RuleStmt::From(Principal::Network(n)) = &quarantine.stmts[1].node else {
        panic!()
    };
    assert_eq!(nets(&n.include), ["10.66.0.0/16"]);
    assert!(n.except.is_empty());

    // egress
    let [def, google, imds] = egress.stmts.as_slice() else {
        panic!()
    };
    assert!(matches!(&def.node, EgressStmt::Default(e) if e.node == Effect::Deny));
    let EgressStmt::Rule(google) = &google.node else {
        panic!()
    };
    assert_eq!(
        (google.effect, google.name.node.as_str()),
        (Effect::Allow, "google")
    );
    assert!(matches!(&google.stmts[0].node, DestStmt::Host(h) if names(h) == ["*.googleapis.com"]));
    assert!(matches!(&google.stmts[1].node, DestStmt::Port(p) if p[0].first.node == 443));
    let EgressStmt::Rule(imds) = &imds.node else {
        panic!()
    };
    assert!(
        matches!(&imds.stmts[0].node, DestStmt::Network(n) if nets(&n.include) == ["169.254.169.254"])
    );

    // service
    assert_eq!(payments.name.node, "payments");
    let s = &payments.stmts;
    assert_eq!(s.len(), 9);
    assert!(matches!(&s[0].node, ServiceStmt::Authority(a) if names(a) == ["payments.prod:8080"]));
    assert!(matches!(&s[1].node, ServiceStmt::Timeout(d) if d.node == 2000));
    let ServiceStmt::Retry(retry) = &s[2].node else {
        panic!()
    };
    assert_eq!((retry.span.line, retry.span.column), (23, 3));
    let [a, on, b] = retry.stmts.as_slice() else {
        panic!()
    };
    assert!(matches!(&a.node, RetryStmt::Attempts(n) if n.node == 2));
    let RetryStmt::On(conds) = &on.node else {
        panic!()
    };
    assert_eq!(
        conds.iter().map(|c| c.node.clone()).collect::<Vec<_>>(),
        [Cond::GatewayError, Cond::Reset]
    );
    assert!(matches!(&b.node, RetryStmt::Budget(p) if p.node == 20));
    let ServiceStmt::CircuitBreaker(cb) = &s[3].node else {
        panic!()
    };
    assert!(matches!(&cb.stmts[0].node, BreakerStmt::ConsecutiveFailures(n) if n.node == 5));
    assert!(
        matches!(&cb.stmts[1].node, BreakerStmt::Backoff(a, b) if a.node == 1_000 && b.node == 60_000)
    );
    let ServiceStmt::Backend(east) = &s[4].node else {
        panic!()
    };
    assert_eq!(east.name.node, "east");
    let BackendStmt::Endpoint(eps) = &east.stmts[0].node else {
        panic!()
    };
    assert_eq!(
        eps.iter().map(|e| e.node.clone()).collect::<Vec<_>>(),
        [
            Endpoint::Addr("10.0.1.10:8080".into()),
            Endpoint::Addr("10.0.1.11:8080".into())
        ]
    );
    assert!(matches!(&east.stmts[1].node, BackendStmt::Cluster(c) if c.node == "east"));
    assert!(matches!(&east.stmts[2].node, BackendStmt::Failover(n) if n.node == "west"));
    let ServiceStmt::Route(beta) = &s[7].node else {
        panic!()
    };
    let RouteStmt::Header(h, ValueMatch::Exact(v)) = &beta.stmts[0].node else {
        panic!()
    };
    assert_eq!((h.node.as_str(), v.node.as_str()), ("x-canary", "1"));
    let RouteStmt::To(to) = &beta.stmts[1].node else {
        panic!()
    };
    assert_eq!(to[0].name.node, "canary");
    assert_eq!(to[0].weight, None);
    let ServiceStmt::Route(main) = &s[8].node else {
        panic!()
    };
    let RouteStmt::To(to) = &main.stmts[0].node else {
        panic!()
    };
    let weights: Vec<(&str, Option<u64>)> = to
        .iter()
        .map(|w| (w.name.node.as_str(), w.weight.as_ref().map(|i| i.node)))
        .collect();
    assert_eq!(weights, [("east", Some(90)), ("canary", Some(10))]);
    assert_eq!(
        (
            to[1].weight.as_ref().unwrap().span.line,
            to[1].weight.as_ref().unwrap().span.column
        ),
        (29, 35)
    );
}

/// Every `policy` of the conformance files that is not a syntax test.
const CONFORMANCE: &[(&str, &str)] = &[
    ("egress-absent", "server web { port 80 default allow }\n"),
    (
        "egress",
        r#"service internal-api {
  authority "api.internal:443"
  backend a { endpoint 10.5.0.1:443 }
  route all { to a }
}

egress {
  allow google   { host "*.googleapis.com"  port 443 }
  allow github   { host "github.com", "api.github.com" }
  allow private  { network 10.0.0.0/8 except 10.96.0.0/12  port 5432, 6379, 9000-9100 }
  deny  imds     { network 169.254.169.254 }
  deny  evil     { host "evil.googleapis.com" }
}
"#,
    ),
    (
        "inbound-basic",
        r#"mesh { trust-domain "prod.example.com" }

server web {
  port 8080
  protocol http
  route metrics { method GET  path "/metrics" }
  route api     { path prefix "/api" }
}

allow scrape { to web.metrics  from namespace "monitoring" }
allow shop   { to web.api      from identity "spiffe://prod.example.com/ns/shop/sa/frontend" }
"#,
    ),
    (
        "inbound-deny-audit",
        r#"mesh { trust-domain "prod.example.com"  default deny }

server strict {
  port 7001
}
server open {
  port 7002
  default allow
}
server members {
  port 7003
  default authenticated
}
server trial {
  port 7004
  default audit
}

allow everyone-strict { to strict  from any }
deny  blocked         { to strict, open, members, trial  from network 10.66.0.0/16 }
deny  also-blocked    { to strict  from network 10.66.1.0/24 }
"#,
    ),
    (
        "inbound-grpc",
        r#"mesh { trust-domain "prod.example.com" }

server billing {
  port 50051
  protocol grpc
  route charge { grpc "billing.v1.Billing/Charge" }
  route ledger { grpc "billing.v1.Ledger/*" }
}

server mixed {
  port 8080
  protocol http
  route rpc { grpc "echo.Echo/Say" }
}

allow checkout { to billing.charge  from identity "spiffe://prod.example.com/ns/shop/sa/checkout" }
allow auditors { to billing.ledger  from namespace "audit" }
"#,
    ),
    (
        "inbound-headers-query",
        r#"server web {
  port 80
  default allow
  route exact-tenant { path prefix "/h" header "X-Tenant" = "acme" }
  route regex-ver    { path prefix "/h" header "x-version" ~ r"v[0-9]+" }
  route joined       { path prefix "/j" header "x-list" = "a,b" }
  route q-exact      { path prefix "/q" query "mode" = "fast" }
  route q-regex      { path prefix "/r" query "id" ~ r"[0-9]{3}" }
  route fallback     { }
}
"#,
    ),
    (
        "inbound-paths",
        r#"server web {
  port 80
  route public { path prefix "/public" }
  route admin  { path prefix "/admin" }
  route exact  { path "/a/b" }
}
allow public { to web.public from any }
"#,
    ),
    (
        "inbound-precedence",
        r#"server web {
  port 80
  default allow
  route anything    { }
  route by-regex    { path regex r"/api/v[0-9]+/.*" }
  route api         { path prefix "/api" }
  route api-v1      { path prefix "/api/v1/" }
  route api-v1-get  { path prefix "/api/v1" method GET, HEAD }
  route health      { path "/api/v1/health" }
  route tenant-one  { path prefix "/t" header "x-tenant" present }
  route tenant-two  { path prefix "/t" header "x-tenant" present header "x-plan" = "gold" }
  route q-one       { path prefix "/q" query "a" present }
  route q-two       { path prefix "/q" query "a" present query "b" = "1" }
  route first       { path "/dup" }
  route second      { path "/dup" }
}
"#,
    ),
    (
        "inbound-principals",
        r#"mesh { trust-domain "prod.example.com" }

server api {
  port 9000
  route one   { path prefix "/one" }
  route two   { path prefix "/two" }
  route three { path prefix "/three" }
  route four  { path prefix "/four" }
  route five  { path prefix "/five" }
}

allow segment-wildcard { to api.one   from identity "spiffe://prod.example.com/ns/*/sa/reader" }
allow tail-wildcard    { to api.two   from identity "spiffe://prod.example.com/ns/batch/**" }
allow any-identity     { to api.three from identity "*" }
allow office           { to api.four  from network 192.168.0.0/16, 2001:db8::/32 except 192.168.13.0/24 }
allow both             { to api.five  from authenticated  from network 10.0.0.0/8 }
"#,
    ),
    (
        "inbound-tcp",
        r#"mesh { trust-domain "prod.example.com" }
server postgres {
  port 5432
  protocol tcp
}
allow app-db { to postgres  from identity "spiffe://prod.example.com/ns/shop/sa/orders" }
allow ops    { to postgres  from network 10.200.0.0/16 }
"#,
    ),
    (
        "outbound-routing",
        r#"service payments {
  authority "payments.prod:8080", "Payments.Prod.Svc:8080"
  timeout 2s
  backend stable { endpoint 10.0.1.10:8080, 10.0.1.11:8080 }
  backend canary { endpoint 10.0.2.10:8080 }
  route beta     { header "x-canary" = "1"  to canary  timeout 500ms }
  route refunds  { path prefix "/refunds" method POST  to stable }
  route main     { to stable 90, canary 10 }
}

service search {
  authority "search"
  backend a { endpoint 10.0.3.1:80 }
  route only-get { method GET  to a }
}
"#,
    ),
    (
        "lint/duplicates",
        "server web { port 80  protocol http  protocol grpc }\nserver web { port 81 }\n",
    ),
    (
        "lint/invalid-values",
        r#"mesh { trust-domain "prod.example.com" }
server web {
  port 80
  route r { path regex "(unclosed" }
}
allow a { to web  from network 10.0.0.1/8 }
allow b { to web  from network 10.0.0.0/8 except 192.168.0.0/16 }
allow c { to web  from identity "spiffe://prod.example.com/ns/../x" }
egress { allow d { host "foo.*.com" } }
"#,
    ),
    (
        "lint/port-conflict",
        "server a { port 8000-8010 }\nserver b { port 9000, 8005 }\n",
    ),
    (
        "lint/structure",
        r#"server web { port 80  protocol tcp  route r { } }
allow a { to web  from namespace "x" }
service s {
  authority "s"
  backend one { endpoint 10.0.0.1:80  failover two }
  backend two { endpoint 10.0.0.2:80  failover one }
  route r { path prefix "/" }
}
deny nothing { to web }
"#,
    ),
    (
        "lint/unknown-reference",
        r#"server web {
  port 80
  route api { path prefix "/api" }
}
allow a { to web.apix  from any }
"#,
    ),
    (
        "lint/values",
        r#"server a { port 0 }
server b { port 90-80 }
service s {
  authority "api"
  backend x { endpoint 127.0.0.1:8080 }
  route r { grpc "no-slash"  to x }
}
service t {
  authority "API:80"
  backend x { endpoint 127.0.0.1:8081 }
  route r { path "/a//b"  to x  timeout 5s }
}
"#,
    ),
    (
        "lint/warnings",
        r#"server web {
  port 80
  route api     { path prefix "/api" }
  route api-ver { path regex r"/api/v[0-9]+/.*" }
  route lonely  { path "/lonely" }
}
allow a { to web.api, web.api-ver  from any }
deny  d { to web.api  from any }
allow b { to web.api  from network 10.0.0.0/8 }
"#,
    ),
];

#[test]
fn every_conformance_policy_parses() {
    for (name, text) in CONFORMANCE {
        let (policy, diags) = parse_str(name, text);
        assert!(
            diags.is_empty(),
            "{name}: {}",
            render::human(&policy.files, &diags)
        );
        assert!(!policy.items.is_empty(), "{name}");
    }
}

#[test]
fn conformance_shapes() {
    let get = |name: &str| {
        CONFORMANCE
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .unwrap()
    };

    // Ports and port ranges, with spans of both ends.
    let policy = ok(get("egress"));
    let Item::Egress(egress) = &policy.items[1] else {
        panic!()
    };
    let EgressStmt::Rule(private) = &egress.stmts[2].node else {
        panic!()
    };
    let DestStmt::Network(n) = &private.stmts[0].node else {
        panic!()
    };
    assert_eq!(
        (nets(&n.include), nets(&n.except)),
        (vec!["10.0.0.0/8"], vec!["10.96.0.0/12"])
    );
    let DestStmt::Port(ports) = &private.stmts[1].node else {
        panic!()
    };
    let ranges: Vec<(u64, Option<u64>)> = ports
        .iter()
        .map(|p| (p.first.node, p.last.as_ref().map(|l| l.node)))
        .collect();
    assert_eq!(ranges, [(5432, None), (6379, None), (9000, Some(9100))]);
    let last = ports[2].last.as_ref().unwrap();
    assert_eq!(
        &get("egress")[last.span.start as usize..last.span.end as usize],
        "9100"
    );
    assert_eq!(
        &get("egress")[ports[2].first.span.start as usize..ports[2].first.span.end as usize],
        "9000"
    );
    let EgressStmt::Rule(github) = &egress.stmts[1].node else {
        panic!()
    };
    assert!(
        matches!(&github.stmts[0].node, DestStmt::Host(h) if names(h) == ["github.com", "api.github.com"])
    );

    // Defaults of every kind.
    let policy = ok(get("inbound-deny-audit"));
    let Item::Mesh(mesh) = &policy.items[0] else {
        panic!()
    };
    assert!(matches!(&mesh.stmts[1].node, MeshStmt::Default(d) if d.node == Default::Deny));
    let defaults: Vec<Default> = policy
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Server(s) => s.stmts.iter().find_map(|st| match &st.node {
                ServerStmt::Default(d) => Some(d.node),
                _ => None,
            }),
            _ => None,
        })
        .collect();
    assert_eq!(
        defaults,
        [Default::Allow, Default::Authenticated, Default::Audit]
    );
    let Item::Rule(blocked) = &policy.items[6] else {
        panic!()
    };
    let RuleStmt::To(t) = &blocked.stmts[0].node else {
        panic!()
    };
    assert_eq!(
        t.iter().map(|t| t.server.node.as_str()).collect::<Vec<_>>(),
        ["strict", "open", "members", "trial"]
    );
    let Item::Rule(everyone) = &policy.items[5] else {
        panic!()
    };
    assert!(matches!(
        everyone.stmts[1].node,
        RuleStmt::From(Principal::Any)
    ));

    // gRPC.
    let policy = ok(get("inbound-grpc"));
    let Item::Server(billing) = &policy.items[1] else {
        panic!()
    };
    assert!(matches!(&billing.stmts[1].node, ServerStmt::Protocol(p) if p.node == Protocol::Grpc));
    let ServerStmt::Route(charge) = &billing.stmts[2].node else {
        panic!()
    };
    assert!(
        matches!(&charge.stmts[0].node, RouteStmt::Grpc(g) if g.node == "billing.v1.Billing/Charge")
    );

    // Queries, present, empty routes, methods.
    let route = |policy: &Policy, name: &str| -> Route {
        let Item::Server(s) = &policy.items[0] else {
            panic!()
        };
        s.stmts
            .iter()
            .find_map(|st| match &st.node {
                ServerStmt::Route(r) if r.name.node == name => Some(r.clone()),
                _ => None,
            })
            .unwrap()
    };
    let policy = ok(get("inbound-headers-query"));
    let q = route(&policy, "q-regex");
    assert!(
        matches!(&q.stmts[1].node, RouteStmt::Query(k, ValueMatch::Regex(v)) if k.node == "id" && v.node == "[0-9]{3}")
    );
    assert!(route(&policy, "fallback").stmts.is_empty());
    let policy = ok(get("inbound-precedence"));
    let two = route(&policy, "tenant-two");
    assert!(
        matches!(&two.stmts[1].node, RouteStmt::Header(k, ValueMatch::Present) if k.node == "x-tenant")
    );
    assert!(
        matches!(&two.stmts[2].node, RouteStmt::Header(k, ValueMatch::Exact(v)) if k.node == "x-plan" && v.node == "gold")
    );
    let get_route = route(&policy, "api-v1-get");
    assert!(
        matches!(&get_route.stmts[1].node, RouteStmt::Method(m) if m.iter().map(|m| m.node.as_str()).collect::<Vec<_>>() == ["GET", "HEAD"])
    );
    assert!(
        matches!(&route(&policy, "by-regex").stmts[0].node, RouteStmt::Path(PathMatch::Regex(r)) if r.node == "/api/v[0-9]+/.*")
    );
    assert_eq!(route(&policy, "anything").name.node, "anything");

    // Networks with IPv6 and except; two from clauses.
    let policy = ok(get("inbound-principals"));
    let Item::Rule(office) = &policy.items[5] else {
        panic!()
    };
    let RuleStmt::From(Principal::Network(n)) = &office.stmts[1].node else {
        panic!()
    };
    assert_eq!(nets(&n.include), ["192.168.0.0/16", "2001:db8::/32"]);
    assert_eq!(nets(&n.except), ["192.168.13.0/24"]);
    let Item::Rule(both) = &policy.items[6] else {
        panic!()
    };
    assert!(matches!(
        both.stmts[1].node,
        RuleStmt::From(Principal::Authenticated)
    ));
    assert!(matches!(
        &both.stmts[2].node,
        RuleStmt::From(Principal::Network(_))
    ));

    // Route timeouts in milliseconds; a route without a path.
    let policy = ok(get("outbound-routing"));
    let Item::Service(payments) = &policy.items[0] else {
        panic!()
    };
    assert!(matches!(&payments.stmts[0].node, ServiceStmt::Authority(a) if a.len() == 2));
    let ServiceStmt::Route(beta) = &payments.stmts[4].node else {
        panic!()
    };
    assert!(matches!(&beta.stmts[2].node, RouteStmt::Timeout(d) if d.node == 500));

    // Values out of range are kept as written.
    let policy = ok(get("lint/values"));
    let Item::Server(a) = &policy.items[0] else {
        panic!()
    };
    assert!(matches!(&a.stmts[0].node, ServerStmt::Port(p) if p[0].first.node == 0));
    let Item::Server(b) = &policy.items[1] else {
        panic!()
    };
    assert!(
        matches!(&b.stmts[0].node, ServerStmt::Port(p) if p[0].first.node == 90 && p[0].last.as_ref().unwrap().node == 80)
    );
    let Item::Service(s) = &policy.items[2] else {
        panic!()
    };
    let ServiceStmt::Backend(x) = &s.stmts[1].node else {
        panic!()
    };
    assert!(
        matches!(&x.stmts[0].node, BackendStmt::Endpoint(e) if e[0].node == Endpoint::Addr("127.0.0.1:8080".into()))
    );

    // Failover and a route in a tcp server (the compiler's business).
    let policy = ok(get("lint/structure"));
    let Item::Service(s) = &policy.items[2] else {
        panic!()
    };
    let ServiceStmt::Backend(one) = &s.stmts[1].node else {
        panic!()
    };
    assert!(matches!(&one.stmts[1].node, BackendStmt::Failover(n) if n.node == "two"));
    let Item::Rule(nothing) = &policy.items[3] else {
        panic!()
    };
    assert_eq!(nothing.stmts.len(), 1);
}

#[test]
fn syntax_toml_case() {
    let text = "server web {\n  port 80\n  route r { path prefix }\n}\n";
    let d = syntax_error(text);
    assert_eq!((d.span.line, d.span.column), (3, 25));
    assert_eq!(d.message, "expected a string, found `}`");
    let out = render::human(
        &[SourceFile {
            path: "syntax.sluice".into(),
            text: text.into(),
        }],
        &[d],
    );
    assert_eq!(
        out,
        "error[syntax]: expected a string, found `}`\n --> syntax.sluice:3:25\n  |\n3 |   route r { path prefix }\n  |                         ^\n\nerror: 1 error\n"
    );
}

#[test]
fn syntax_error_positions() {
    assert_eq!(error_at("server"), (1, 7));
    assert_eq!(error_at("server web {\n  port\n}"), (3, 1));
    assert_eq!(error_at("server web { port 80 }\n}"), (2, 1));
    assert_eq!(error_at("server web {\n  port 80\n"), (3, 1));
    assert_eq!(error_at("server web { port 80x }"), (1, 19));
    assert_eq!(error_at("server web { port 80- }"), (1, 19));
    assert_eq!(error_at("server web { port 8000 - 8099 }"), (1, 24));
    assert_eq!(error_at("server Web { }"), (1, 8));
    assert_eq!(error_at("allow a { to web. from any }"), (1, 17));
    assert_eq!(error_at("allow a { to web . api }"), (1, 18));
    assert_eq!(error_at("service s { timeout 500 ms }"), (1, 21));
    assert_eq!(error_at("service s { retry { budget 20 % } }"), (1, 28));
    assert_eq!(
        error_at("service s { backend b { endpoint 10.0.0.1 : 80 } }"),
        (1, 34)
    );
    assert_eq!(
        error_at("service s { circuit-breaker { backoff 1s } }"),
        (1, 42)
    );
    assert_eq!(error_at("server a { route r { method get } }"), (1, 29));
    // Columns count characters, not bytes.
    assert_eq!(error_at("# é日本\nserver é"), (2, 8));
    assert_eq!(error_at("mesh { trust-domain \"日本\" x }"), (1, 26));
    // A statement of a service route in a server route parses (the compiler
    // reports it), but a statement of another block does not.
    assert_eq!(error_at("server a { route r { port 80 } }"), (1, 22));
}

#[test]
fn empty_and_comment_only_files() {
    assert!(ok("").items.is_empty());
    assert!(ok("   \n\t\r\n").items.is_empty());
    assert!(ok("# just a comment").items.is_empty());
    assert!(ok(";;;").items.is_empty());
}

#[test]
fn keywords_are_not_reserved() {
    // Names spelled like keywords wherever a name goes.
    let s = one_service(
        "service service { backend internal { failover route } backend route { } route any { to internal 1, route } }",
    );
    assert_eq!(s.name.node, "service");
    let ServiceStmt::Backend(b) = &s.stmts[0].node else {
        panic!()
    };
    assert_eq!(b.name.node, "internal");
    assert!(matches!(&b.stmts[0].node, BackendStmt::Failover(n) if n.node == "route"));
    let ServiceStmt::Route(r) = &s.stmts[2].node else {
        panic!()
    };
    assert_eq!(r.name.node, "any");
    let RouteStmt::To(to) = &r.stmts[0].node else {
        panic!()
    };
    assert_eq!(to[1].name.node, "route");

    let rule = one_rule("deny deny { to server.route, allow from any }");
    assert_eq!(
        (rule.effect, rule.name.node.as_str()),
        (Effect::Deny, "deny")
    );
    let RuleStmt::To(t) = &rule.stmts[0].node else {
        panic!()
    };
    assert_eq!(
        (
            t[0].server.node.as_str(),
            t[0].route.as_ref().unwrap().node.as_str()
        ),
        ("server", "route")
    );
    assert_eq!(t[1].server.node, "allow");

    let p = ok("egress { allow default { } deny allow { } default allow }");
    let Item::Egress(e) = &p.items[0] else {
        panic!()
    };
    assert!(
        matches!(&e.stmts[0].node, EgressStmt::Rule(r) if r.name.node == "default" && r.effect == Effect::Allow)
    );
    assert!(
        matches!(&e.stmts[1].node, EgressStmt::Rule(r) if r.name.node == "allow" && r.effect == Effect::Deny)
    );
    assert!(matches!(&e.stmts[2].node, EgressStmt::Default(d) if d.node == Effect::Allow));
}

#[test]
fn keywords_end_where_a_name_could_not_go_on() {
    // `anything` is a name, not `any` then `thing`.
    let d = syntax_error("allow a { to web from anything }");
    assert_eq!((d.span.line, d.span.column), (1, 23));
    assert!(
        d.message.starts_with("expected `any`, `authenticated`"),
        "{}",
        d.message
    );
    // A keyword followed by more name characters is not the keyword.
    assert_eq!(error_at("server a { ports 80 }"), (1, 12));
    assert_eq!(error_at("server a { port-range 80 }"), (1, 12));
    assert_eq!(error_at("server a { protocol https }"), (1, 21));
    assert_eq!(error_at("server a { default allowed }"), (1, 20));
    assert_eq!(error_at("servers a { }"), (1, 1));
    assert_eq!(error_at("service s { retry { on 5xxx } }"), (1, 24));
    // But a keyword may be directly followed by punctuation.
    let s = one_server("server a{port 80,81;protocol tcp}");
    assert_eq!(s.stmts.len(), 2);
    let r = one_route("server a { route r{path\"/x\"method GET} }");
    assert!(matches!(&r.stmts[0].node, RouteStmt::Path(PathMatch::Exact(p)) if p.node == "/x"));
    // Names may hold digits and dashes and be long (the compiler checks length).
    let long = "a".repeat(200);
    assert_eq!(
        one_server(&format!("server {long}-9 {{ }}")).name.node,
        format!("{long}-9")
    );
}

#[test]
fn semicolons_separate_statements_and_items_only() {
    let p = ok(";server a { ; port 80 ; protocol http ; route r { ; path \"/\" ; method GET ; } ; } ; ; allow b { to a ; from any ; } ;");
    assert_eq!(p.items.len(), 2);
    let Item::Server(s) = &p.items[0] else {
        panic!()
    };
    assert_eq!(s.stmts.len(), 3);
    let ServerStmt::Route(r) = &s.stmts[2].node else {
        panic!()
    };
    assert_eq!(r.stmts.len(), 2);
    ok("service s { retry { attempts 1; budget 5% }; circuit-breaker { jitter 1%; }; backend b { endpoint 1.2.3.4:5; } }");
    ok("egress { default deny; allow a { port 1; host \"x\"; }; }");
    ok("mesh { trust-domain \"a\"; default allow; }");
    // Not between list items or inside a statement.
    assert_eq!(error_at("server a { port 80; 81 }"), (1, 21));
    assert_eq!(error_at("server a { port; 80 }"), (1, 16));
    assert_eq!(error_at("allow a { to b, ; c }"), (1, 17));
    assert_eq!(error_at("server a ; { }"), (1, 10));
}

#[test]
fn comments() {
    let text = "# head\nserver a { # after brace\n  port 80 # after stmt\n  # own line \"not a string\n  protocol tcp#tight\n} # tail";
    let s = one_server(text);
    assert_eq!(s.stmts.len(), 2);
    assert!(matches!(&s.stmts[1].node, ServerStmt::Protocol(p) if p.node == Protocol::Tcp));
    assert_eq!((s.stmts[1].span.line, s.stmts[1].span.column), (5, 3));
    // `#` inside a string is not a comment.
    let r = one_route("server a { route r { path \"/a#b\" # c\n } }");
    assert!(matches!(&r.stmts[0].node, RouteStmt::Path(PathMatch::Exact(p)) if p.node == "/a#b"));
    // A comment ends at the line's end.
    assert_eq!(error_at("server a { # }\n"), (2, 1));
}

#[test]
fn strings_escapes_and_raw_strings() {
    let r = one_route(
        r#"server a { route r { header "a\\b\"c" = "\n\r\t\u{41}\u{1F600}\u{0}" query "é" ~ r"\d+\" header "" present } }"#,
    );
    let RouteStmt::Header(n, ValueMatch::Exact(v)) = &r.stmts[0].node else {
        panic!()
    };
    assert_eq!(n.node, "a\\b\"c");
    assert_eq!(v.node, "\n\r\t\u{41}\u{1F600}\0");
    let RouteStmt::Query(n, ValueMatch::Regex(v)) = &r.stmts[1].node else {
        panic!()
    };
    assert_eq!(n.node, "é");
    assert_eq!(v.node, r"\d+\");
    let RouteStmt::Header(n, ValueMatch::Present) = &r.stmts[2].node else {
        panic!()
    };
    assert_eq!(n.node, "");
    // A string may span lines.
    let r = one_route("server a { route r { path \"/a\nb\" } }");
    assert!(matches!(&r.stmts[0].node, RouteStmt::Path(PathMatch::Exact(p)) if p.node == "/a\nb"));
    // Spans cover the literal with its quotes.
    let text = "server a { route r { path r\"/x\" } }";
    let r = one_route(text);
    let RouteStmt::Path(PathMatch::Exact(p)) = &r.stmts[0].node else {
        panic!()
    };
    assert_eq!(&text[p.span.start as usize..p.span.end as usize], "r\"/x\"");
    // Endpoint names are strings.
    let s =
        one_service(r#"service s { backend b { endpoint "db.internal:5432", [::1]:80, r"x:1" } }"#);
    let ServiceStmt::Backend(b) = &s.stmts[0].node else {
        panic!()
    };
    let BackendStmt::Endpoint(e) = &b.stmts[0].node else {
        panic!()
    };
    assert_eq!(
        e.iter().map(|e| e.node.clone()).collect::<Vec<_>>(),
        [
            Endpoint::Name("db.internal:5432".into()),
            Endpoint::Addr("[::1]:80".into()),
            Endpoint::Name("x:1".into())
        ]
    );
}

#[test]
fn bad_strings_are_syntax_errors() {
    for (text, at, words) in [
        (
            "mesh { trust-domain \"a\\qb\" }",
            (1, 23),
            "unknown escape `\\q`",
        ),
        (
            "mesh { trust-domain \"a\\u{D800}\" }",
            (1, 23),
            "not a Unicode scalar value",
        ),
        (
            "mesh { trust-domain \"a\\u{dfff}\" }",
            (1, 23),
            "not a Unicode scalar value",
        ),
        (
            "mesh { trust-domain \"a\\u{110000}\" }",
            (1, 23),
            "not a Unicode scalar value",
        ),
        (
            "mesh { trust-domain \"a\\u{}\" }",
            (1, 23),
            "malformed unicode escape",
        ),
        (
            "mesh { trust-domain \"a\\u{1234567}\" }",
            (1, 23),
            "malformed unicode escape",
        ),
        (
            "mesh { trust-domain \"a\\u0041\" }",
            (1, 23),
            "malformed unicode escape",
        ),
        (
            "mesh {\n  trust-domain \"abc }\n",
            (2, 16),
            "unterminated string",
        ),
        (
            "mesh { trust-domain r\"abc }",
            (1, 21),
            "unterminated raw string",
        ),
        (
            "service s { backend b { endpoint \"a\\x\" } }",
            (1, 36),
            "unknown escape `\\x`",
        ),
    ] {
        let d = syntax_error(text);
        assert_eq!((d.span.line, d.span.column), at, "{text:?}: {}", d.message);
        assert!(d.message.contains(words), "{text:?}: {}", d.message);
    }
    // A raw string cannot hold `"`: the literal ends at the first one.
    assert_eq!(error_at("mesh { trust-domain r\"a\"b\" }"), (1, 25));
}

#[test]
fn numbers_durations_percents() {
    let s = one_service(
        "service s { timeout 1h retry { attempts 99999999999999999999999 per-try-timeout 250ms budget 100% on 5xx, 503, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable } circuit-breaker { backoff 2m 18446744073709551615h jitter 0% } }",
    );
    assert!(matches!(&s.stmts[0].node, ServiceStmt::Timeout(d) if d.node == 3_600_000));
    let ServiceStmt::Retry(r) = &s.stmts[1].node else {
        panic!()
    };
    assert!(matches!(&r.stmts[0].node, RetryStmt::Attempts(n) if n.node == u64::MAX));
    assert!(matches!(&r.stmts[1].node, RetryStmt::PerTryTimeout(d) if d.node == 250));
    assert!(matches!(&r.stmts[2].node, RetryStmt::Budget(p) if p.node == 100));
    let RetryStmt::On(conds) = &r.stmts[3].node else {
        panic!()
    };
    assert_eq!(
        conds.iter().map(|c| c.node.clone()).collect::<Vec<_>>(),
        [
            Cond::ServerError,
            Cond::Status(503),
            Cond::Cancelled,
            Cond::DeadlineExceeded,
            Cond::Internal,
            Cond::ResourceExhausted,
            Cond::Unavailable
        ]
    );
    let ServiceStmt::CircuitBreaker(cb) = &s.stmts[2].node else {
        panic!()
    };
    assert!(
        matches!(&cb.stmts[0].node, BreakerStmt::Backoff(a, b) if a.node == 120_000 && b.node == u64::MAX)
    );
    assert!(matches!(&cb.stmts[1].node, BreakerStmt::Jitter(p) if p.node == 0));
    let s = one_service("service s { backend b { max-in-flight 0010 identity \"spiffe://x/y\" } }");
    let ServiceStmt::Backend(b) = &s.stmts[0].node else {
        panic!()
    };
    assert!(matches!(&b.stmts[0].node, BackendStmt::MaxInFlight(n) if n.node == 10));
    assert!(matches!(&b.stmts[1].node, BackendStmt::Identity(i) if i.node == "spiffe://x/y"));
}

#[test]
fn networks_with_hex_letters() {
    // NET may contain hex letters, so `except` and statement keywords must
    // still be recognised after it.
    let rule = one_rule(
        "allow a { to b from network fe80::/10, abcd:ef::1, ::ffff:10.0.0.0/104 except fe80::1, dead::beef from network ::/0 }",
    );
    let RuleStmt::From(Principal::Network(n)) = &rule.stmts[1].node else {
        panic!()
    };
    assert_eq!(
        nets(&n.include),
        ["fe80::/10", "abcd:ef::1", "::ffff:10.0.0.0/104"]
    );
    assert_eq!(nets(&n.except), ["fe80::1", "dead::beef"]);
    assert!(
        matches!(&rule.stmts[2].node, RuleStmt::From(Principal::Network(n)) if nets(&n.include) == ["::/0"])
    );
    // Bad addresses are the compiler's business, kept as written.
    let rule = one_rule("deny a { from network 10.0.0.300/99, 1.2.3 to x }");
    let RuleStmt::From(Principal::Network(n)) = &rule.stmts[0].node else {
        panic!()
    };
    assert_eq!(nets(&n.include), ["10.0.0.300/99", "1.2.3"]);
    let p = ok("egress { deny d { network 10.0.0.0/8 except 10.1.0.0/16 port 22 host \"a\" } }");
    let Item::Egress(e) = &p.items[0] else {
        panic!()
    };
    let EgressStmt::Rule(d) = &e.stmts[0].node else {
        panic!()
    };
    assert_eq!(d.stmts.len(), 3);
    // `except` needs a network.
    assert_eq!(
        error_at("allow a { from network 10.0.0.0/8 except }"),
        (1, 42)
    );
}

#[test]
fn multiple_files() {
    let files = vec![
        SourceFile {
            path: "a.sluice".into(),
            text: "server a { port 1 }".into(),
        },
        SourceFile {
            path: "b.sluice".into(),
            text: "server b {\n port }".into(),
        },
        SourceFile {
            path: "c.sluice".into(),
            text: "\nserver c { port 3 }\nallow r { to c from any }".into(),
        },
        SourceFile {
            path: "d.sluice".into(),
            text: "garbage".into(),
        },
    ];
    let (policy, diags) = parse_files(files);
    assert_eq!(policy.files.len(), 4);
    assert_eq!(policy.items.len(), 3);
    let Item::Server(c) = &policy.items[1] else {
        panic!()
    };
    assert_eq!((c.span.file, c.span.line, c.span.column), (2, 2, 1));
    let Item::Rule(r) = &policy.items[2] else {
        panic!()
    };
    assert_eq!(r.span.file, 2);
    assert_eq!(diags.len(), 2);
    assert_eq!(
        (diags[0].span.file, diags[0].span.line, diags[0].span.column),
        (1, 2, 7)
    );
    assert_eq!(
        (diags[1].span.file, diags[1].span.line, diags[1].span.column),
        (3, 1, 1)
    );
    let out = render::human(&policy.files, &diags);
    assert!(out.contains(" --> b.sluice:2:7\n"), "{out}");
    assert!(out.contains(" --> d.sluice:1:1\n"), "{out}");
    assert!(out.ends_with("error: 2 errors\n"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&render::json(&policy.files, &diags)).unwrap();
    assert_eq!(json[0]["file"], "b.sluice");
    assert_eq!(json[0]["code"], "syntax");
    assert_eq!(json[1]["line"], 1);
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let alphabet: &[u8] = b" \n\t{}[]();,.:-%#\"\\rxu0123456789abcdefAZ_=~/*\xc3\xa9\xff";
    for _ in 0..3000 {
        let len = rng.below(80);
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        sluice_lang::fuzz_parse(&bytes);
        let raw: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        sluice_lang::fuzz_parse(&raw);
    }
    // Every prefix of a valid policy.
    for i in 0..=SPEC_EXAMPLE.len() {
        sluice_lang::fuzz_parse(&SPEC_EXAMPLE.as_bytes()[..i]);
    }
    // Random single-byte mutations and token splices of valid policies.
    let words: Vec<&str> = SPEC_EXAMPLE.split_whitespace().collect();
    for (_, text) in CONFORMANCE {
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..100 {
            let at = rng.below(bytes.len());
            bytes[at] = alphabet[rng.below(alphabet.len())];
            sluice_lang::fuzz_parse(&bytes);
        }
    }
    for _ in 0..500 {
        let n = rng.below(40);
        let text: Vec<&str> = (0..n).map(|_| words[rng.below(words.len())]).collect();
        sluice_lang::fuzz_parse(text.join(" ").as_bytes());
    }
    // Deep and long odd input.
    sluice_lang::fuzz_parse("{".repeat(100_000).as_bytes());
    sluice_lang::fuzz_parse("server a { ".repeat(20_000).as_bytes());
    sluice_lang::fuzz_parse(format!("server a {{ port {} }}", "9".repeat(100_000)).as_bytes());
    sluice_lang::fuzz_parse(format!("mesh {{ trust-domain \"{}", "\\".repeat(10_001)).as_bytes());
    sluice_lang::fuzz_parse(format!("# {}", "é".repeat(100_000)).as_bytes());
}

/// A policy of about 1 MB: `routes` routes over servers and services.
fn big_policy(routes: usize) -> String {
    let mut s = String::from("mesh { trust-domain \"prod.example.com\" default deny }\n");
    for i in 0..routes / 10 {
        s.push_str(&format!(
            "server srv-{i} {{\n  port {}\n  protocol http\n",
            10_000 + i
        ));
        for j in 0..5 {
            s.push_str(&format!(
                "  route r{j} {{ method GET, POST  path prefix \"/api/v{j}/tenant-{i}\"  header \"x-tenant\" = \"t{i}\"  query \"q\" ~ r\"[a-z]+{j}\" }} # comment\n"
            ));
        }
        s.push_str("}\n");
        s.push_str(&format!(
            "allow rule-{i} {{ to srv-{i}.r0, srv-{i}.r1  from identity \"spiffe://prod.example.com/ns/n{i}/sa/*\"  from network 10.{}.0.0/16 except 10.{}.1.0/24 }}\n",
            i % 250,
            i % 250
        ));
        s.push_str(&format!(
            "service svc-{i} {{\n  authority \"svc-{i}.prod:8080\"\n  timeout 2s\n  retry {{ attempts 2 on 5xx, reset budget 20% }}\n  backend a {{ endpoint 10.0.{}.1:8080, 10.0.{}.2:8080 }}\n  backend b {{ endpoint \"b-{i}.internal:80\" }}\n",
            i % 250,
            i % 250
        ));
        for j in 0..5 {
            s.push_str(&format!(
                "  route r{j} {{ path prefix \"/v{j}\"  to a 90, b 10  timeout 500ms }}\n"
            ));
        }
        s.push_str("}\n");
    }
    s
}

#[test]
fn large_policy_parses_with_exact_spans() {
    let text = big_policy(10_000);
    assert!(text.len() > 1_000_000, "{}", text.len());
    let start = std::time::Instant::now();
    let policy = ok(&text);
    let elapsed = start.elapsed();
    eprintln!("parsed {} bytes in {elapsed:?}", text.len());
    assert_eq!(policy.items.len(), 1 + 3 * 1000);
    let Some(Item::Service(last)) = policy.items.last() else {
        panic!()
    };
    let at = text.rfind("service svc-999").unwrap();
    let line = text[..at].matches('\n').count() + 1;
    assert_eq!((last.span.line as usize, last.span.column), (line, 1));
    assert_eq!(last.name.node, "svc-999");
    // The same policy on one line: columns stay exact and cheap.
    let flat = text.replace('\n', " ").replace("# comment", "");
    let policy = ok(&flat);
    let Some(Item::Service(last)) = policy.items.last() else {
        panic!()
    };
    let want = flat.rfind("service svc-999").unwrap();
    assert_eq!((last.span.line, last.span.column as usize), (1, want + 1));
}
