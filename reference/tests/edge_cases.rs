//! Decisions on corners of the spec that the shared conformance files do
//! not pin down, on policies written in the language itself.

mod support;

use sluice_reference::{evaluate, Request};
use support::{http, out_http, summary, with_header, with_identity};

fn policy(text: &str) -> sluice_lang::Policy {
    let (policy, diagnostics) = sluice_lang::parse::parse_str("test.sluice", text);
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    policy
}

fn route(p: &sluice_lang::Policy, r: &Request) -> Option<String> {
    evaluate(p, r).unwrap().route
}

#[test]
fn catch_all_prefix_ranks_as_none() {
    let p = policy(
        r#"server web { port 80 default allow
             route all   { path prefix "/" header "x" present query "q" present method GET }
             route re    { path regex r"/a.*" }
             route plain { }
           }"#,
    );
    let r = with_header(http(80, "GET", "/abc?q"), "x", "1");
    assert_eq!(route(&p, &r).as_deref(), Some("re"));
    // Among routes without a path condition, method/header/query count.
    let r = with_header(http(80, "GET", "/zzz?q"), "x", "1");
    assert_eq!(route(&p, &r).as_deref(), Some("all"));
    assert_eq!(
        route(&p, &http(80, "GET", "/zzz")).as_deref(),
        Some("plain")
    );
}

#[test]
fn queries_keep_plus_and_malformed_escapes() {
    let p = policy(
        r#"server web { port 80 default allow
             route plus  { query "a" = "1+2" }
             route bad   { query "b" = "%zz" }
             route key   { query "k y" present }
             route none  { }
           }"#,
    );
    for (target, expected) in [
        ("/?a=1+2", "plus"),
        ("/?a=1%202", "none"),
        ("/?b=%zz", "bad"),
        ("/?k%20y", "key"),
        ("/?x=1#&a=1+2", "none"),
    ] {
        assert_eq!(
            route(&p, &http(80, "GET", target)).as_deref(),
            Some(expected),
            "{target}"
        );
    }
}

#[test]
fn identities() {
    let p = policy(
        r#"mesh { trust-domain "td" }
           server s { port 80 }
           allow star  { to s from identity "*" }
           server t { port 81 }
           allow authn { to t from authenticated }
           server u { port 82 }
           allow exact { to u from identity "spiffe://td/a", "spiffe://td/b/*" }"#,
    );
    // An identity that is no SPIFFE ID matches only "*" and `authenticated`.
    for port in [80, 81] {
        assert!(
            evaluate(
                &p,
                &with_identity(http(port, "GET", "/"), "not a spiffe id")
            )
            .unwrap()
            .allow
        );
    }
    for bad in [
        "spiffe://td/a/",
        "spiffe://TD/a",
        "spiffe://td/b/.",
        "spiffe://td:1/a",
    ] {
        assert!(
            !evaluate(&p, &with_identity(http(82, "GET", "/"), bad))
                .unwrap()
                .allow,
            "{bad}"
        );
    }
    assert!(
        evaluate(&p, &with_identity(http(82, "GET", "/"), "spiffe://td/b/x"))
            .unwrap()
            .allow
    );
}

#[test]
fn audit_mesh_default_and_grpc_answers() {
    let p = policy(
        r#"mesh { default audit } server g { port 50051 protocol grpc route m { grpc "a.B/M" } }"#,
    );
    assert_eq!(
        summary(&evaluate(&p, &http(1, "GET", "/")).unwrap()),
        (true, "default", None, true, None, None)
    );
    let d = evaluate(&p, &http(50051, "POST", "/a.B/M")).unwrap();
    assert_eq!(
        summary(&d),
        (false, "default", None, false, Some(403), Some(7))
    );
    let d = evaluate(&p, &http(50051, "POST", "/a.B/N")).unwrap();
    assert_eq!(
        summary(&d),
        (false, "no-route", None, false, Some(404), Some(12))
    );
    let d = evaluate(&p, &http(50051, "POST", "/a.B/%2F")).unwrap();
    assert_eq!(
        summary(&d),
        (false, "bad-path", None, false, Some(400), Some(13))
    );
    assert!(evaluate(&p, &Request::inbound(50051)).is_err());
}

#[test]
fn outbound_corners() {
    let p = policy(
        r#"service s { authority "s.ns:8080", "[::1]:9000"
             backend a { endpoint 10.0.0.1:80 }
             route r { method GET to a 0, a } }
           egress { allow both { host "x.y" network 10.0.0.0/8 port 443 }
                    deny any { port 22 }
                    default allow }"#,
    );
    let d = evaluate(&p, &out_http("S.NS.:8080", "GET", "/x/../y")).unwrap();
    assert_eq!(d.backends, vec![("a".to_string(), 0), ("a".to_string(), 1)]);
    assert_eq!(d.timeout_ms, None);
    let d = evaluate(
        &p,
        &with_header(
            out_http("[::1]:9000", "POST", "/"),
            "content-type",
            "APPLICATION/GRPC",
        ),
    )
    .unwrap();
    assert_eq!(
        summary(&d),
        (false, "no-route", None, false, Some(404), Some(12))
    );
    // Bad paths come before services.
    let d = evaluate(&p, &out_http("s.ns:8080", "GET", "x")).unwrap();
    assert_eq!(
        (d.reason, d.service.clone(), d.http_status),
        ("bad-path", None, Some(400))
    );
    // Host or network, on the rule's ports.
    let tunnel = |a: &str| Request {
        authority: Some(a.into()),
        ..Request::outbound()
    };
    assert_eq!(
        evaluate(&p, &tunnel("x.y:443")).unwrap().rule.as_deref(),
        Some("both")
    );
    assert_eq!(
        evaluate(&p, &tunnel("10.1.1.1:443"))
            .unwrap()
            .rule
            .as_deref(),
        Some("both")
    );
    assert_eq!(evaluate(&p, &tunnel("x.y:80")).unwrap().rule, None);
    let d = evaluate(&p, &tunnel("anything:22")).unwrap();
    assert_eq!(
        summary(&d),
        (false, "rule", Some("any"), false, Some(403), None)
    );
    let tcp = Request {
        ip: Some("1.2.3.4".parse().unwrap()),
        port: Some(22),
        ..Request::outbound()
    };
    assert_eq!(
        summary(&evaluate(&p, &tcp).unwrap()),
        (false, "rule", Some("any"), false, None, None)
    );
    assert!(evaluate(&p, &tunnel("bad host")).is_err());
}
