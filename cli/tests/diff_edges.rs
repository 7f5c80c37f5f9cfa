//! Edge cases of `sluice diff` ([`sluice_cli::diff::diff_bundles`]): small
//! OLD/NEW pairs, one spec corner each (paths, methods, headers, query,
//! identities, networks, ports, outbound authorities, egress, tunnels,
//! TCP, service routes), each with a brute-force set of hand-built and
//! generated requests. For every pair [`check`] asserts both directions of
//! spec section 9's exactness:
//!
//! - every entry has `old != new`, the pairs are distinct, and its witness,
//!   decided by both bundles as `eval` decides it ([`Decider`] on
//!   [`json::request_from_value`]), gives exactly the reported decisions;
//! - every request of the set that the two bundles decide differently has
//!   its pair of decisions among the entries;
//! - at least one request of the set is decided differently (so the set
//!   reaches the difference the pair was written for).

use serde_json::{json, Value};
use sluice_cli::decide::Decider;
use sluice_cli::diff::diff_bundles;
use sluice_cli::json::{self, DecisionJsonExt};
use sluice_compiler::Config;
use sluice_runtime::{AlignedBytes, Bundle, NoTrace};
use std::collections::HashSet;

fn compile(text: &str) -> Vec<u8> {
    let (policy, diags) = sluice_lang::parse::parse_str("p.sluice", text);
    assert!(
        !diags.iter().any(|d| d.is_error()),
        "does not parse: {diags:?}\n{text}"
    );
    match sluice_compiler::compile(&policy, &Config::default()) {
        Ok(c) => c.bundle,
        Err(d) => panic!("does not compile: {d:?}\n{text}"),
    }
}

/// Both decisions of a request, `None` when either side rejects it.
fn decide_both(deciders: &mut [Decider<'_, '_>; 2], request: &Value) -> Option<[Value; 2]> {
    let parsed = json::request_from_value(request).ok()?;
    let o = deciders[0].decide(&parsed, &mut NoTrace).ok()?;
    let n = deciders[1].decide(&parsed, &mut NoTrace).ok()?;
    Some([o.to_value(), n.to_value()])
}

/// Diffs `old` against `new` and checks both properties over `requests`;
/// returns the number of requests decided differently (at least one).
fn check(old: &str, new: &str, requests: &[Value]) -> usize {
    let differing = check_some(old, new, requests);
    assert!(
        differing > 0,
        "no request of the set is decided differently"
    );
    differing
}

/// [`check`] without requiring a differing request (for pairs that should
/// decide alike, or nearly so); returns the number of differing requests.
fn check_some(old: &str, new: &str, requests: &[Value]) -> usize {
    let (ob, nb) = (compile(old), compile(new));
    let entries = diff_bundles(&ob, &nb).unwrap_or_else(|e| panic!("diff failed: {e:?}"));
    let aligned = [AlignedBytes::new(&ob), AlignedBytes::new(&nb)];
    let bundles = [
        Bundle::from_bytes(aligned[0].as_bytes()).expect("old bundle"),
        Bundle::from_bytes(aligned[1].as_bytes()).expect("new bundle"),
    ];
    let mut deciders = [Decider::new(&bundles[0]), Decider::new(&bundles[1])];
    let listing: String = entries
        .iter()
        .map(|e| format!("  {} -> {}  e.g. {}\n", e.old, e.new, e.request))
        .collect();
    let mut pairs = HashSet::new();
    for e in &entries {
        assert_ne!(e.old, e.new, "an entry with old == new\n{listing}");
        assert!(
            pairs.insert((e.old.to_string(), e.new.to_string())),
            "a pair reported twice: {} -> {}\n{listing}",
            e.old,
            e.new
        );
        let got = decide_both(&mut deciders, &e.request);
        assert_eq!(
            got,
            Some([e.old.clone(), e.new.clone()]),
            "the witness {} does not reproduce\nOLD:\n{old}\nNEW:\n{new}",
            e.request
        );
    }
    let mut differing = 0;
    for r in requests {
        let Some([o, n]) = decide_both(&mut deciders, r) else {
            continue;
        };
        if o != n {
            differing += 1;
            assert!(
                pairs.contains(&(o.to_string(), n.to_string())),
                "the request {r} is decided\n  old {o}\n  new {n}\nbut no entry has that pair\n\
                 OLD:\n{old}\nNEW:\n{new}\nentries:\n{listing}"
            );
        }
    }
    differing
}

/// An inbound request; `headers` as a list of pairs (repeats allowed).
fn inb(
    port: u16,
    method: Option<&str>,
    path: Option<&str>,
    headers: &[(&str, &str)],
    ip: Option<&str>,
    id: Option<&str>,
) -> Value {
    let mut r = json!({"direction": "inbound", "port": port});
    if let Some(m) = method {
        r["method"] = json!(m);
    }
    if let Some(p) = path {
        r["path"] = json!(p);
    }
    if method.is_some() || path.is_some() {
        let h: Vec<Value> = headers.iter().map(|(k, v)| json!([k, v])).collect();
        r["headers"] = json!(h);
    }
    let mut peer = json!({});
    if let Some(ip) = ip {
        peer["ip"] = json!(ip);
    }
    if let Some(id) = id {
        peer["identity"] = json!(id);
    }
    r["peer"] = peer;
    r
}

/// Peer IPs of the grids: none, IPv4, IPv6 and IPv4-carrying IPv6 forms.
const IPS: &[Option<&str>] = &[
    None,
    Some("10.0.0.0"),
    Some("10.0.0.1"),
    Some("10.0.0.2"),
    Some("10.0.0.3"),
    Some("10.1.2.3"),
    Some("192.168.1.1"),
    Some("::ffff:10.0.0.1"),
    Some("64:ff9b::a00:2"),
    Some("::a00:1"),
    Some("2001:db8::1"),
    Some("::1"),
];

/// Peer identities of the grids: none, SPIFFE IDs of three trust domains,
/// a non-SPIFFE identity, an upper-case trust domain.
const IDS: &[Option<&str>] = &[
    None,
    Some("spiffe://a.org/ns/shop/sa/web"),
    Some("spiffe://a.org/ns/shop/sa/x"),
    Some("spiffe://a.org/ns/qa/sa/x"),
    Some("spiffe://a.org/ns/qa/sa/x/extra"),
    Some("spiffe://a.org/other"),
    Some("spiffe://b.org/ns/shop/sa/web"),
    Some("spiffe://c.org/ns/shop/sa/x"),
    Some("not a spiffe id"),
    Some("spiffe://A.org/ns/shop/sa/web"),
];

/// Every combination of the given ports, methods, paths and header sets
/// with every peer of [`IPS`] x [`IDS`].
fn grid(
    ports: &[u16],
    methods: &[&str],
    paths: &[&str],
    headers: &[&[(&str, &str)]],
) -> Vec<Value> {
    let mut out = Vec::new();
    for &port in ports {
        for &ip in IPS {
            for &id in IDS {
                out.push(inb(port, None, None, &[], ip, id));
                for &m in methods {
                    for &p in paths {
                        for &h in headers {
                            out.push(inb(port, Some(m), Some(p), h, ip, id));
                        }
                    }
                }
            }
        }
    }
    out
}

const NO_HEADERS: &[&[(&str, &str)]] = &[&[], &[("content-type", "application/grpc")]];

// ---------------------------------------------------------------- paths

const PATHS: &[&str] = &[
    "/",
    "/a",
    "/a/",
    "/a/b",
    "/ab",
    "/a/b/c",
    "/b",
    "/api",
    "/api/",
    "/api/x",
    "/apix",
    "//a",
    "/a/./b",
    "/a/../b",
    "/x/../a",
    "/%61",
    "/%61/b",
    "/a%2fb",
    "/a%2Fb",
    "/a%20b",
    "/a%zz",
    "/a;x",
    "/a;x/b",
    "/.;/a",
    "/a/..;/b",
    "/a\\b",
    "/a b",
    "a",
    "",
    "/a?x=1",
    "/a#f",
    "/pkg.S/M",
    "/pkg.S/N",
    "/pkg.S",
    "/pkg.Sx/M",
    "/pkg.T/M",
    "/%7E",
    "/~",
    "/a%2a",
    "/a%2A",
    "/a*",
];

fn paths_case(old_routes: &str, new_routes: &str) {
    let p = |routes: &str| {
        format!("server s {{ port 80  default allow\n{routes}\n}}\ndeny d {{ to s.r  from any }}\n")
    };
    let reqs = grid(&[80], &["GET"], PATHS, NO_HEADERS);
    check(&p(old_routes), &p(new_routes), &reqs);
}

#[test]
fn prefix_against_exact() {
    paths_case(
        "route r { path prefix \"/a\" }\nroute o { path \"/b\" }",
        "route r { path \"/a\" }\nroute o { path \"/b\" }",
    );
}

#[test]
fn prefix_slash_against_prefix_ending_in_slash() {
    paths_case(
        "route r { path prefix \"/\" }\nroute o { path regex \"/a.*\" }",
        "route r { path prefix \"/a/\" }\nroute o { path regex \"/a.*\" }",
    );
}

#[test]
fn prefix_against_regex() {
    paths_case(
        "route r { path prefix \"/api\" }\nroute o { path prefix \"/\" }",
        "route r { path regex \"/api.*\" }\nroute o { path prefix \"/\" }",
    );
}

#[test]
fn regex_matching_only_bad_paths() {
    // `/a/../b` and `/a%2Fb`-shaped paths never reach a route: the regex
    // route can only ever match normalized paths.
    paths_case(
        "route r { path regex \"/a/\\\\.\\\\./.*\" }\nroute o { path prefix \"/\" }",
        "route r { path regex \"/a%2[Ff].*|/a/\\\\.\\\\./.*|/b\" }\nroute o { path prefix \"/\" }",
    );
}

#[test]
fn regex_matching_escapes_and_semicolons() {
    paths_case(
        "route r { path regex \"/a%2A|/a;x.*\" }\nroute o { path prefix \"/\" }",
        "route r { path regex \"/a%2a|/a;x\" }\nroute o { path prefix \"/\" }",
    );
}

#[test]
fn grpc_service_wildcard_against_method() {
    paths_case(
        "route r { grpc \"pkg.S/*\" }\nroute o { path prefix \"/\" }",
        "route r { grpc \"pkg.S/M\" }\nroute o { path prefix \"/\" }",
    );
}

#[test]
fn long_literal_path() {
    let long = format!("/{}", "a".repeat(3000));
    let old = "server s { port 80  default allow }\n".to_string();
    let new = format!(
        "server s {{ port 80  default allow\n route r {{ path \"{long}\" }}\n route o {{ path prefix \"/\" }} }}\ndeny d {{ to s.r  from any }}\n"
    );
    let mut reqs = grid(&[80], &["GET"], &["/", "/a"], &[&[]]);
    reqs.push(inb(80, Some("GET"), Some(&long), &[], None, None));
    reqs.push(inb(
        80,
        Some("GET"),
        Some(&format!("{long}/")),
        &[],
        None,
        None,
    ));
    reqs.push(inb(
        80,
        Some("GET"),
        Some(&format!("/{long}")),
        &[],
        None,
        None,
    ));
    check(&old, &new, &reqs);
}

#[test]
fn bad_path_on_both_sides_with_audit_and_grpc() {
    // A bad path is 400 on both; only the server protocol (gRPC status)
    // changes it.
    let old = "server s { port 80  default deny  route r { path prefix \"/\" } }\n";
    let new = "server s { port 80  protocol grpc  default audit  route r { path prefix \"/\" } }\n";
    let reqs = grid(&[80], &["GET", "POST"], PATHS, NO_HEADERS);
    check(old, new, &reqs);
}

// ---------------------------------------------------------------- methods, headers

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "get", "BREW"];

#[test]
fn method_named_only_in_new() {
    let old = "server s { port 80  default allow  route r { method GET  path prefix \"/\" }  route o { path prefix \"/\" } }\ndeny d { to s.r  from any }\n";
    let new = "server s { port 80  default allow  route r { method GET, BREW  path prefix \"/\" }  route o { path prefix \"/\" } }\ndeny d { to s.r  from any }\n";
    let reqs = grid(&[80], METHODS, &["/", "/a"], NO_HEADERS);
    check(old, new, &reqs);
}

const HEADER_SETS: &[&[(&str, &str)]] = &[
    &[],
    &[("x-a", "1")],
    &[("X-A", "1")],
    &[("x-a", "2")],
    &[("x-a", "")],
    &[("x-a", "1"), ("x-a", "2")],
    &[("x-a", "1,2")],
    &[("X-a", "1"), ("x-A", "2")],
    &[("x-a", "é")],
    &[("x-a", "aé")],
    &[("x-b", "1")],
    &[("content-type", "application/grpc")],
    &[("Content-Type", "APPLICATION/GRPC+proto")],
    &[("content-type", "application/json")],
    &[("content-type", "application/grp")],
    &[("content-type", "text/application/grpc")],
    &[("content-type", "application/grpc"), ("x-a", "1")],
    &[
        ("content-type", "application/json"),
        ("content-type", "application/grpc"),
    ],
    &[("content-type", "application/grpc"), ("content-type", "x")],
];

fn headers_case(old_route: &str, new_route: &str) {
    let p = |route: &str| {
        format!(
            "server s {{ port 80  default allow\n route r {{ path prefix \"/\"  {route} }}\n route o {{ path prefix \"/\" }} }}\ndeny d {{ to s.r  from any }}\n"
        )
    };
    let reqs = grid(&[80], &["GET"], &["/"], HEADER_SETS);
    check(&p(old_route), &p(new_route), &reqs);
}

#[test]
fn header_case_and_joined_values() {
    headers_case("header \"X-A\" = \"1\"", "header \"x-a\" = \"1,2\"");
}

#[test]
fn header_present_against_exact() {
    headers_case("header \"x-a\" present", "header \"x-a\" = \"1\"");
}

#[test]
fn header_exact_and_regex_on_one_name() {
    headers_case(
        "header \"x-a\" = \"1\"",
        "header \"x-a\" ~ \"[0-9,]+\"  header \"X-A\" = \"1,2\"",
    );
}

#[test]
fn header_regex_only_non_ascii_or_empty() {
    headers_case(
        "header \"x-a\" ~ \"[^\\\\x00-\\\\x7F]+\"",
        "header \"x-a\" ~ \"\"",
    );
}

#[test]
fn content_type_as_route_header_and_grpc_flag() {
    headers_case(
        "header \"content-type\" = \"application/grpc\"",
        "header \"content-type\" ~ \"application/json|application/grpc.*\"",
    );
}

// ---------------------------------------------------------------- query

fn query_case(old_route: &str, new_route: &str) {
    let p = |route: &str| {
        format!(
            "server s {{ port 80  default allow\n route r {{ path prefix \"/\"  {route} }}\n route o {{ path prefix \"/\" }} }}\ndeny d {{ to s.r  from any }}\n"
        )
    };
    let paths = [
        "/",
        "/?a",
        "/?a=",
        "/?a=1",
        "/?a=2&a=1",
        "/?a=1&a=2",
        "/?%61=1",
        "/?a=%31",
        "/?a=1+1",
        "/?a=1%201",
        "/?a=1%2B1",
        "/?a=%zz",
        "/?a=%",
        "/?a=%2",
        "/?b=1&a=1",
        "/?a&a=1",
        "/?A=1",
        "/?a=1=2",
        "/?a+b=1",
        "/?a%20b=1",
        "/?a=%C3%A9",
        "/?a=%ff",
        "/?=1",
        "/?&a=1",
        "/#?a=1",
        "/?a=1#x",
    ];
    let reqs = grid(&[80], &["GET"], &paths, &[&[]]);
    check(&p(old_route), &p(new_route), &reqs);
}

#[test]
fn query_first_pair_and_encodings() {
    query_case(
        "query \"a\" = \"1\"",
        "query \"a\" = \"1\"  query \"b\" present",
    );
}

#[test]
fn query_plus_and_malformed_escapes() {
    query_case("query \"a\" ~ \"1.1\"", "query \"a\" ~ \"1 1|%zz|%\"");
}

#[test]
fn query_key_without_value_and_spaces_in_keys() {
    query_case("query \"a\" present", "query \"a b\" present");
}

#[test]
fn query_empty_against_non_ascii_regex() {
    query_case("query \"a\" = \"\"", "query \"a\" ~ \"é|\"");
}

// ---------------------------------------------------------------- identities

fn rule_case(old_rules: &str, new_rules: &str, default: &str, td: bool) {
    let mesh = if td {
        "mesh { trust-domain \"a.org\" }\n"
    } else {
        ""
    };
    let p = |rules: &str| {
        format!(
            "{mesh}server s {{ port 80  default {default}\n route r {{ path prefix \"/a\" }}\n route o {{ path prefix \"/\" }} }}\nserver t {{ port 90  protocol tcp  default {default} }}\n{rules}\n"
        )
    };
    let reqs = grid(&[80, 90, 100], &["GET"], &["/", "/a", "/b"], NO_HEADERS);
    check(&p(old_rules), &p(new_rules), &reqs);
}

#[test]
fn identity_star_against_double_star() {
    rule_case(
        "allow x { to s  from identity \"spiffe://a.org/ns/*/sa/x\" }",
        "allow x { to s  from identity \"spiffe://a.org/ns/**\" }",
        "deny",
        false,
    );
}

#[test]
fn identity_any_against_trust_domain_only_in_new() {
    rule_case(
        "allow x { to s, t  from identity \"*\" }",
        "allow x { to s, t  from identity \"spiffe://b.org/**\", \"spiffe://a.org/ns/shop/sa/web\" }",
        "deny",
        false,
    );
}

#[test]
fn namespace_against_identity() {
    rule_case(
        "allow x { to s.r  from namespace \"shop\" }",
        "allow x { to s.r  from identity \"spiffe://a.org/ns/shop/sa/web\" }",
        "deny",
        true,
    );
}

#[test]
fn authenticated_against_default_authenticated() {
    rule_case(
        "allow x { to s  from authenticated }",
        "deny x { to s.r  from identity \"spiffe://a.org/ns/qa/sa/*\" }",
        "authenticated",
        true,
    );
}

#[test]
fn audit_server_with_rules_on_route_and_server() {
    rule_case(
        "deny x { to s.r  from namespace \"qa\" }\nallow y { to s  from any }",
        "deny x { to s  from namespace \"qa\" }\nallow y { to s.o  from any }",
        "audit",
        true,
    );
}

// ---------------------------------------------------------------- networks

#[test]
fn networks_except_and_mapped_v6() {
    rule_case(
        "deny x { to s, t  from network 10.0.0.0/8 except 10.0.0.0/24 }",
        "deny x { to s, t  from network 10.0.0.0/8, 2001:db8::/32 except 10.0.0.1/32 }",
        "allow",
        false,
    );
}

#[test]
fn networks_all_v4_against_all_v6() {
    rule_case(
        "allow x { to s, t  from network 0.0.0.0/0 }",
        "allow x { to s, t  from network ::/0 }",
        "deny",
        false,
    );
}

#[test]
fn networks_adjacent_ranges_and_identity_together() {
    rule_case(
        "allow x { to s  from network 10.0.0.0/31  from identity \"*\" }",
        "allow x { to s  from network 10.0.0.1/32, 10.0.0.2/31  from identity \"*\" }",
        "deny",
        false,
    );
}

// ---------------------------------------------------------------- ports

#[test]
fn ports_ranges_and_server_only_in_new() {
    let old = "mesh { default deny }\nserver s { port 80-89  default allow }\n";
    let new = "mesh { default deny }\nserver s { port 80-84, 86  default allow }\nserver t { port 85  protocol tcp  default allow }\nserver u { port 100  default authenticated }\n";
    let reqs = grid(
        &[79, 80, 84, 85, 86, 87, 89, 90, 99, 100, 101, 0, 65535],
        &["GET"],
        &["/"],
        NO_HEADERS,
    );
    check(old, new, &reqs);
}

#[test]
fn mesh_default_only_changes() {
    let old = "server s { port 80  default allow }\n";
    let new = "mesh { default audit }\nserver s { port 80  default allow }\n";
    let reqs = grid(
        &[80, 81, 0, 65535],
        &["GET"],
        &["/", "/a/../..", "/%2F", "/a b", "/.;/x"],
        NO_HEADERS,
    );
    check(old, new, &reqs);
}

#[test]
fn tcp_against_http_server_on_one_port() {
    // Connections to an HTTP server are errors (not reported); HTTP
    // requests to a tcp server are decided as connections.
    let old = "server s { port 80  protocol tcp  default deny }\nallow x { to s  from network 10.0.0.0/8 }\n";
    let new = "server s { port 80  default deny }\nallow x { to s  from network 10.0.0.0/8 }\n";
    let reqs = grid(&[80], &["GET"], &["/", "/a%2Fb"], NO_HEADERS);
    check(old, new, &reqs);
}

// ---------------------------------------------------------------- outbound

fn out_http(authority: &str, ip: Option<&str>, path: &str, headers: &[(&str, &str)]) -> Value {
    let h: Vec<Value> = headers.iter().map(|(k, v)| json!([k, v])).collect();
    let mut r = json!({"direction": "outbound", "authority": authority, "method": "GET", "path": path, "headers": h});
    if let Some(ip) = ip {
        r["ip"] = json!(ip);
    }
    r
}

fn tunnel(authority: &str, ip: Option<&str>) -> Value {
    let mut r = json!({"direction": "outbound", "authority": authority});
    if let Some(ip) = ip {
        r["ip"] = json!(ip);
    }
    r
}

fn tcp(ip: &str, port: u16) -> Value {
    json!({"direction": "outbound", "ip": ip, "port": port})
}

const AUTHORITIES: &[&str] = &[
    "a.b",
    "a.b:80",
    "A.B",
    "a.b.",
    "A.B.:80",
    "a.b:8080",
    "x.a.b",
    "y.x.a.b",
    "x.a.b:443",
    "xa.b",
    "b",
    "c.d:443",
    "c.d",
    "10.0.0.1",
    "10.0.0.1:443",
    "[2001:db8::1]",
    "[2001:db8::1]:443",
    "[2001:DB8::1]:80",
    "[::ffff:10.0.0.1]:443",
    "api.example.com:443",
    "*",
];

const OUT_IPS: &[Option<&str>] = &[
    None,
    Some("10.0.0.1"),
    Some("10.9.9.9"),
    Some("192.168.0.1"),
    Some("::ffff:10.0.0.1"),
    Some("64:ff9b::a00:1"),
    Some("2001:db8::1"),
];

fn outbound_grid() -> Vec<Value> {
    let mut out = Vec::new();
    for &a in AUTHORITIES {
        for &ip in OUT_IPS {
            out.push(tunnel(a, ip));
            for path in ["/", "/v1", "/v1/x", "/%2F"] {
                for h in [
                    &[][..],
                    &[("content-type", "application/grpc")][..],
                    &[("x-c", "1")][..],
                ] {
                    out.push(out_http(a, ip, path, h));
                }
            }
        }
    }
    for ip in OUT_IPS.iter().flatten() {
        for port in [0, 80, 443, 444, 8080, 65535] {
            out.push(tcp(ip, port));
        }
    }
    out
}

#[test]
fn service_authority_port_case_and_trailing_dot() {
    let old = "service a { authority \"a.b\"  backend k { endpoint 10.0.0.9:80 }  route r { to k } }\negress { default allow }\n";
    let new = "service a { authority \"A.B.:8080\", \"[2001:db8::1]:443\"  backend k { endpoint 10.0.0.9:80 }  route r { to k } }\negress { default allow }\n";
    check(old, new, &outbound_grid());
}

#[test]
fn egress_hosts_wildcards_and_nesting() {
    let old = "egress { default deny  allow w { host \"*.a.b\" }  deny n { host \"a.b\" } }\n";
    let new = "egress { default deny  allow w { host \"a.b\", \"*.x.a.b\" }  deny n { host \"*\"  port 443 } }\n";
    check(old, new, &outbound_grid());
}

#[test]
fn egress_ports_and_networks_with_mapped_addresses() {
    let old = "egress { default allow  deny n { network 10.0.0.0/8  port 443 } }\n";
    let new = "egress { default allow  deny n { network 10.0.0.0/8 except 10.0.0.0/24  port 443-444 }  deny m { network 2001:db8::/32 } }\n";
    check(old, new, &outbound_grid());
}

#[test]
fn egress_rule_without_host_or_network_and_block_added() {
    let old = "service a { authority \"c.d:443\"  backend k { endpoint 10.0.0.9:80 }  route r { to k } }\n";
    let new = "service a { authority \"c.d:443\"  backend k { endpoint 10.0.0.9:80 }  route r { to k } }\negress { allow p { port 80 } }\n";
    check(old, new, &outbound_grid());
}

#[test]
fn ip_literal_authority_and_host_patterns() {
    let old = "egress { default deny  allow h { host \"*\" } }\n";
    let new = "egress { default deny  allow h { network 10.0.0.1/32 } }\n";
    check(old, new, &outbound_grid());
}

#[test]
fn service_routes_weights_timeouts_and_backend_order() {
    let old = "service a { authority \"a.b\"  timeout 1s  backend k { endpoint 10.0.0.9:80 }  backend l { endpoint 10.0.0.8:80 }  route v { path prefix \"/v1\"  to k 1, l 2 }  route r { to k } }\n";
    let new = "service a { authority \"a.b\"  backend k { endpoint 10.0.0.9:80 }  backend l { endpoint 10.0.0.8:80 }  route v { path prefix \"/v1\"  header \"x-c\" present  to l 2, k 1  timeout 2s }  route r { to k, l 0 } }\n";
    check(old, new, &outbound_grid());
}

// ---------------------------------------------------------------- second round

#[test]
fn query_keys_with_reserved_bytes() {
    let p = |route: &str| {
        format!(
            "server s {{ port 80  default allow\n route r {{ path prefix \"/\"  {route} }} }}\n"
        )
    };
    let paths = [
        "/?a%3Db=1",
        "/?a%26b=1",
        "/?a%26b=2",
        "/?a=b",
        "/?a%23b=1",
        "/?a%25b=1",
        "/?a%b=1",
        "/?a%3db",
        "/?a%2Bb=1",
        "/?a+b=1",
    ];
    let reqs = grid(&[80], &["GET"], &paths, &[&[]]);
    check(
        &p("query \"a=b\" present"),
        &p("query \"a#b\" present  query \"a%b\" ~ \".*\""),
        &reqs,
    );
    check(
        &p("query \"a+b\" = \"1\""),
        &p("query \"a%b\" = \"1\""),
        &reqs,
    );
}

#[test]
fn regex_only_over_long_or_escaped_paths_decides_alike() {
    let p = |route: &str| {
        format!(
            "server s {{ port 80  default allow\n route r {{ {route} }}\n route o {{ path prefix \"/\" }} }}\ndeny d {{ to s.r  from any }}\n"
        )
    };
    let long = format!("/{}", "a".repeat(8200));
    let mut reqs = grid(&[80], &["GET"], PATHS, &[&[]]);
    reqs.push(inb(80, Some("GET"), Some(&long), &[], None, None));
    for route in [
        "path regex \"/%41\"",
        "path regex \"/a%2[Ff]b\"",
        "path regex \"/a/\\\\.\\\\./b\"",
        "path regex \"/a;x/\\\\.\\\\.;/b\"",
        "path regex \"/.*//.*\"",
    ] {
        let n = check_some(&p(route), &p("path \"/zz\""), &reqs);
        assert_eq!(n, 0, "{route}");
    }
}

#[test]
fn grpc_protocol_changes_every_denial() {
    let old = "server s { port 80  default deny  route r { path \"/a\" } }\nallow x { to s  from namespace \"shop\" }\nmesh { trust-domain \"a.org\" }\n";
    let new = "server s { port 80  protocol grpc  default deny  route r { path \"/a\" } }\nallow x { to s  from namespace \"shop\" }\nmesh { trust-domain \"a.org\" }\n";
    let reqs = grid(&[80], &["GET", "POST"], &["/a", "/b", "/a%2F"], NO_HEADERS);
    check(old, new, &reqs);
}

#[test]
fn identities_without_path_and_malformed() {
    let old = "allow x { to s  from identity \"spiffe://a.org/**\" }\nserver s { port 80  default deny }\n";
    let new = "allow x { to s  from identity \"spiffe://a.org/*\", \"spiffe://a.org/*/*/**\" }\nserver s { port 80  default deny }\n";
    let mut reqs = grid(&[80], &["GET"], &["/"], &[&[]]);
    for id in [
        "spiffe://a.org",
        "spiffe://a.org/",
        "spiffe://a.org/x",
        "spiffe://a.org/x/",
        "spiffe://a.org/x//y",
        "spiffe://a.org/x/y",
        "spiffe://a.org/x/y/z",
        "spiffe://a.org/./y",
        "spiffe://a.org/x/..",
        "spiffe://a.org:80/x",
        "spiffe://a.org/x?y",
        "spiffe://a.org/x#y",
        "spiffe://a.org/x%41",
        "SPIFFE://a.org/x",
        "spiffe://u@a.org/x",
        "spiffe:///x",
        "",
    ] {
        reqs.push(inb(80, None, None, &[], None, Some(id)));
        reqs.push(inb(80, Some("GET"), Some("/"), &[], None, Some(id)));
    }
    check(old, new, &reqs);
    let star_old = "allow x { to s  from identity \"*\" }\nserver s { port 80  default deny }\n";
    check(star_old, new, &reqs);
}

#[test]
fn tunnels_to_a_service_authority_go_to_egress() {
    let old = "service a { authority \"a.b:443\"  backend k { endpoint 10.0.0.9:80 }  route r { to k } }\negress { default deny  allow h { host \"a.b\" } }\n";
    let new = "service a { authority \"a.b:443\"  backend k { endpoint 10.0.0.9:80 }  route r { to k } }\negress { default deny  allow h { host \"a.b\"  port 80 } }\n";
    check(old, new, &outbound_grid());
}

#[test]
fn odd_authorities() {
    let old = "egress { default deny  allow w { host \"*.a.b\" } allow p { port 1-79 } }\n";
    let new = "egress { default deny  allow w { host \"x.a.b\" } allow p { port 1-80 } }\n";
    let mut reqs = outbound_grid();
    for a in [
        ".a.b",
        "a..b",
        "x.a.b..",
        "x_y.a.b",
        "é.a.b",
        "%41.a.b",
        "x.a.b:0",
        "x.a.b:",
        "x.a.b:080",
        "x.a.b:65535",
        "x.a.b:65536",
        "u@x.a.b",
        "x.a.b:80:80",
        "[::1]",
        "[::ffff:10.0.0.1]",
        "10.0.0.1:0",
        "x.a.b.:443",
        "X.A.B",
        "*.a.b",
    ] {
        for ip in [None, Some("10.0.0.1")] {
            reqs.push(tunnel(a, ip));
            reqs.push(out_http(a, ip, "/", &[]));
        }
    }
    check(old, new, &reqs);
}

#[test]
fn regex_only_over_paths_longer_than_the_limit_decides_alike() {
    let p = |route: &str| {
        format!(
            "server s {{ port 80  default allow\n route r {{ {route} }}\n route o {{ path prefix \"/\" }} }}\ndeny d {{ to s.r  from any }}\n"
        )
    };
    let long = format!("/{}", "a".repeat(8200));
    let mut reqs = grid(&[80], &["GET"], &["/", "/a", "/zz"], &[&[]]);
    reqs.push(inb(80, Some("GET"), Some(&long), &[], None, None));
    check(&p("path regex \"/a{8192,}\""), &p("path \"/zz\""), &reqs);
}

// ---------------------------------------------------------------- third round

#[test]
fn host_header_on_a_service_route() {
    let old = "service a { authority \"a.b\"  backend k { endpoint 10.0.0.9:80 }  route h { header \"host\" = \"a.b\"  to k }  route r { to k 2 } }\n";
    let new = "service a { authority \"a.b\"  backend k { endpoint 10.0.0.9:80 }  route h { header \"host\" ~ \"x.*\"  to k }  route r { to k 2 } }\n";
    let mut reqs = outbound_grid();
    for a in ["a.b", "A.B", "a.b:80"] {
        for h in [
            &[][..],
            &[("host", "a.b")][..],
            &[("Host", "x.y")][..],
            &[("host", "")][..],
            &[(":authority", "a.b")][..],
        ] {
            reqs.push(out_http(a, None, "/", h));
        }
    }
    check(old, new, &reqs);
}

#[test]
fn ip_literal_service_authorities_against_egress_networks() {
    let old = "service a { authority \"10.0.0.1\", \"[2001:db8::1]:443\"  backend k { endpoint 10.0.0.9:80 }  route r { to k } }\negress { default allow  deny n { network 10.0.0.0/8, 2001:db8::/32 } }\n";
    let new = "service a { authority \"10.0.0.1:443\"  backend k { endpoint 10.0.0.9:80 }  route r { to k } }\negress { default allow  deny n { network 10.0.0.0/8  port 443 } }\n";
    check(old, new, &outbound_grid());
}

#[test]
fn egress_host_pattern_that_looks_like_an_ip() {
    let old = "egress { default deny  allow h { host \"10.0.0.1\" } }\n";
    let new = "egress { default deny  allow h { host \"*.0.0.1\" } }\n";
    check(old, new, &outbound_grid());
}

#[test]
fn retries_and_circuit_breakers_decide_alike() {
    let old =
        "service a { authority \"a.b\"  backend k { endpoint 10.0.0.9:80 }  route r { to k } }\n";
    let new = "service a { authority \"a.b\"  retry { attempts 3 }  circuit-breaker { consecutive-failures 2 }  backend k { endpoint 10.0.0.9:80, 10.0.0.10:80  max-in-flight 5 }  route r { to k  retry { attempts 2 } } }\n";
    let n = check_some(old, new, &outbound_grid());
    assert_eq!(n, 0);
    let (ob, nb) = (compile(old), compile(new));
    assert_eq!(diff_bundles(&ob, &nb).expect("diff"), vec![]);
}

#[test]
fn mesh_default_authenticated_and_audit_without_servers() {
    let old = "mesh { default authenticated }\nserver s { port 80  default allow }\n";
    let new =
        "mesh { default audit  trust-domain \"a.org\" }\nserver s { port 80  default allow }\n";
    let reqs = grid(&[80, 81], &["GET"], &["/", "/%2F"], NO_HEADERS);
    check(old, new, &reqs);
}

#[test]
fn route_precedence_method_headers_query_counts() {
    let p = |extra: &str| {
        format!(
            "server s {{ port 80  default allow\n route a {{ path prefix \"/a\"  header \"x-a\" present }}\n route b {{ path prefix \"/a\"  query \"q\" present  query \"r\" present }}\n route c {{ path prefix \"/a/\"  method GET }}\n{extra} }}\ndeny d {{ to s.a, s.c  from any }}\n"
        )
    };
    let paths = ["/a", "/a/b", "/a?q&r", "/a/b?q=1&r=2", "/a?q", "/ab", "/"];
    let hs: &[&[(&str, &str)]] = &[&[], &[("x-a", "1")], &[("x-b", "1")]];
    let reqs = grid(&[80], &["GET", "POST"], &paths, hs);
    check(
        &p(""),
        &p(" route e { path prefix \"/a\"  header \"x-a\" present  header \"x-b\" present }\n route f { path regex \"/a.*\"  method POST }"),
        &reqs,
    );
}

#[test]
fn outbound_service_routes_query_and_bad_paths() {
    let old = "service a { authority \"a.b\"  backend k { endpoint 10.0.0.9:80 }  route q { path prefix \"/v1\"  query \"x\" = \"1\"  to k }  route r { path \"/v1\"  to k 3 } }\negress { default deny }\n";
    let new = "service a { authority \"a.b\"  backend k { endpoint 10.0.0.9:80 }  route q { path prefix \"/v1\"  query \"x\" ~ \"1|2\"  to k }  route r { path \"/v1\"  to k 3 } }\negress { default deny }\n";
    let mut reqs = outbound_grid();
    for p in [
        "/v1?x=1",
        "/v1?x=2",
        "/v1/y?x=2&x=1",
        "/v1?x=%32",
        "/v1/../v1?x=2",
        "/v1%2F?x=2",
        "/v1#?x=2",
    ] {
        reqs.push(out_http("a.b", None, p, &[]));
        reqs.push(out_http(
            "a.b",
            None,
            p,
            &[("content-type", "application/grpc")],
        ));
    }
    check(old, new, &reqs);
}

#[test]
fn ip_literal_service_authority_with_another_ip() {
    let old = "egress { default allow  deny n { network 10.0.0.0/8 } }\n";
    let new = "service a { authority \"10.0.0.1\"  backend k { endpoint 10.0.0.9:80 }  route r { to k } }\negress { default allow  deny n { network 10.0.0.0/8 } }\n";
    check(old, new, &outbound_grid());
}

#[test]
fn ip_shaped_hosts_under_a_wildcard_pattern() {
    let old = "egress { default allow  deny w { host \"*.0.0.1\"  network 192.168.0.0/16 } }\n";
    let new = "egress { default allow  deny w { network 10.0.0.0/8, 192.168.0.0/16 } }\n";
    let mut reqs = outbound_grid();
    for a in [
        "1.0.0.1",
        "a.0.0.1",
        "10.0.0.1",
        "0.0.0.1",
        "1.0.0.1.",
        "01.0.0.1",
        "1.1.0.0.1",
    ] {
        for ip in OUT_IPS {
            reqs.push(tunnel(a, *ip));
            reqs.push(out_http(a, *ip, "/", &[]));
        }
    }
    check(old, new, &reqs);
}

#[test]
fn networks_covering_every_address_against_no_ip() {
    let old = "server s { port 80  default allow }\ndeny x { to s  from network 0.0.0.0/0, ::/0 }\negress { default allow  deny n { network 0.0.0.0/0, ::/0 } }\n";
    let new = "server s { port 80  default allow }\negress { default allow }\n";
    let mut reqs = grid(&[80], &["GET"], &["/"], &[&[]]);
    reqs.extend(outbound_grid());
    check(old, new, &reqs);
}

#[test]
fn precedence_of_catch_all_prefix_regex_and_equal_length_prefixes() {
    let p = |routes: &str| {
        format!(
            "server s {{ port 80  default allow\n{routes} }}\ndeny d {{ to s.a, s.c  from any }}\n"
        )
    };
    let old = p("route a { path prefix \"/\"  method GET }\n route b { header \"x-a\" present }\n route c { path regex \"/a.*\" }\n route e { path prefix \"/a/\" }\n route f { path prefix \"/a\"  method GET }");
    let new = p("route a { path prefix \"/\"  method GET }\n route b { header \"x-a\" present }\n route c { path regex \"/a.*\"  header \"x-a\" present }\n route e { path prefix \"/a\" }\n route f { grpc \"pkg.S/*\" }");
    let paths = [
        "/", "/a", "/a/", "/a/b", "/ab", "/b", "/pkg.S", "/pkg.S/M", "/pkg.Sx",
    ];
    let hs: &[&[(&str, &str)]] = &[
        &[],
        &[("x-a", "1")],
        &[("content-type", "application/grpc")],
    ];
    let reqs = grid(&[80], &["GET", "POST"], &paths, hs);
    check(&old, &new, &reqs);
}

#[test]
fn query_and_header_dot_star_against_present() {
    let p = |route: &str| {
        format!(
            "server s {{ port 80  default allow\n route r {{ path prefix \"/\"  {route} }}\n route o {{ path prefix \"/\" }} }}\ndeny d {{ to s.r  from any }}\n"
        )
    };
    let paths = [
        "/?a=%0A",
        "/?a=%0a",
        "/?a=x%0Ay",
        "/?a=%ff",
        "/?a=%C3",
        "/?a=%C3%A9",
        "/?a=%00",
        "/?a=",
        "/?a=%E2%84%AA",
        "/?a=k",
    ];
    let hs: &[&[(&str, &str)]] = &[
        &[],
        &[("x-a", "\n")],
        &[("x-a", "a\nb")],
        &[("x-a", "\u{212a}")],
        &[("x-a", "\u{0}")],
        &[("x-a", "\r")],
        &[("x-a", "k")],
    ];
    let reqs = grid(&[80], &["GET"], &paths, hs);
    check(
        &p("query \"a\" present  header \"x-a\" present"),
        &p("query \"a\" ~ \".*\"  header \"x-a\" ~ \"(?i)k|.*\""),
        &reqs,
    );
    check(
        &p("query \"a\" ~ \"(?i)k\""),
        &p("query \"a\" ~ \"(?s).+\""),
        &reqs,
    );
    check(
        &p("header \"x-a\" ~ \"(?i)k\""),
        &p("header \"x-a\" ~ \"k\""),
        &reqs,
    );
}

#[test]
fn trust_domain_changed_under_namespace_rules() {
    let old = "mesh { trust-domain \"a.org\" }\nserver s { port 80  default deny }\nallow x { to s  from namespace \"shop\", \"qa\" }\n";
    let new = "mesh { trust-domain \"b.org\" }\nserver s { port 80  default deny }\nallow x { to s  from namespace \"shop\", \"qa\" }\n";
    let reqs = grid(&[80], &["GET"], &["/"], NO_HEADERS);
    check(old, new, &reqs);
}

#[test]
fn rule_order_and_conjunctions() {
    rule_case(
        "deny a { to s, t  from network 10.0.0.0/8 }\ndeny b { to s.r, t  from authenticated  from network 10.0.0.0/30, ::/0 }\nallow c { to s  from any }",
        "deny b { to s.r, t  from authenticated  from network 10.0.0.0/30, ::/0 }\ndeny a { to s, t  from network 10.0.0.0/8 }\nallow c { to s  from identity \"*\"  from network 10.0.0.0/8 except 10.0.0.2/31 }",
        "authenticated",
        false,
    );
}

#[test]
fn identity_star_against_authenticated() {
    let p = |from: &str| {
        format!("server s {{ port 80  default deny }}\nallow x {{ to s  from {from} }}\n")
    };
    let reqs = grid(&[80, 81], &["GET"], &["/"], NO_HEADERS);
    let n = check_some(&p("identity \"*\""), &p("authenticated"), &reqs);
    let entries = diff_bundles(
        &compile(&p("identity \"*\"")),
        &compile(&p("authenticated")),
    )
    .expect("diff");
    assert_eq!(n == 0, entries.is_empty(), "{entries:?}");
}

#[test]
fn outbound_content_type_route_header_against_egress() {
    let old = "service a { authority \"a.b\", \"x.a.b:443\"  backend k { endpoint 10.0.0.9:80 }  route g { header \"content-type\" ~ \"application/grpc.*\"  to k }  route r { method GET  to k 2 } }\negress { default deny  allow w { host \"*.a.b\"  network 10.0.0.0/8 } }\n";
    let new = "service a { authority \"a.b\"  backend k { endpoint 10.0.0.9:80 }  route g { header \"Content-Type\" present  to k }  route r { to k 2 } }\negress { default deny  allow w { host \"*.a.b\" } }\n";
    let mut reqs = outbound_grid();
    for ct in [
        "application/grpc",
        "APPLICATION/GRPC",
        "application/grpc+proto",
        "text/plain",
        "",
    ] {
        for a in ["a.b", "x.a.b:443", "y.a.b"] {
            for ip in [None, Some("10.0.0.1"), Some("192.168.0.1")] {
                reqs.push(out_http(a, ip, "/", &[("content-type", ct)]));
                let mut post = out_http(a, ip, "/", &[("content-type", ct)]);
                post["method"] = json!("POST");
                reqs.push(post);
            }
        }
    }
    check(old, new, &reqs);
}

#[test]
fn host_class_whose_shortest_member_is_an_ip_literal() {
    // The hosts matching `*.2.3.4` but none of `a.2.3.4` .. `z.2.3.4`: the
    // shortest is `0.2.3.4`, an IPv4 literal, but `aa.2.3.4` is a name and
    // has no address without `ip`, which only the networks covering
    // every address tell apart.
    let letters: Vec<String> = ('a'..='z').map(|c| format!("\"{c}.2.3.4\"")).collect();
    let old = "egress { default allow  deny n { network 0.0.0.0/0, ::/0 } }\n".to_string();
    let new = format!(
        "egress {{ default allow  deny n {{ network 0.0.0.0/0, ::/0 }}  deny x {{ host {} }}  deny h {{ host \"*.2.3.4\" }} }}\n",
        letters.join(", ")
    );
    let mut reqs = outbound_grid();
    for a in ["aa.2.3.4", "0.2.3.4", "a.2.3.4", "-.2.3.4", "a0.2.3.4"] {
        for ip in OUT_IPS {
            reqs.push(tunnel(a, *ip));
            reqs.push(out_http(a, *ip, "/", &[]));
        }
    }
    check(&old, &new, &reqs);
}
