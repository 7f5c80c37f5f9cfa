//! Zero heap allocations per decision (issue 2, "Performance"; issue 9,
//! point 13).
//!
//! The counting global allocator of `sluice-alloc-count` counts the
//! allocations of this thread, where every decision runs; after 1,000 warm-up
//! decisions, 100,000 decisions of each kind (inbound HTTP, inbound TCP,
//! outbound service, egress HTTP, tunnel, egress TCP) and 100,000 peer
//! classifications with the realistic requests on the 1,000-route policy
//! must not allocate; and so must every denial and error path: a bad path,
//! no route, a deny rule, a default deny, gRPC denials, a port without a
//! server, a connection to an HTTP server (an error), egress denials,
//! an outbound request without a route, paths at and past the length limit
//! (8192 bytes), and IPv4 and IPv4-mapped IPv6 peers. Each case's decision
//! is checked first, so every case reaches the path it names. Deciding
//! with a candidate bundle beside the live one and comparing the two, as
//! the proxy does, must not allocate either (issue 14); nor must mapping a
//! decoded Envoy `CheckRequest` and deciding it, as `sluice authz` does
//! (issue 15).

use sluice_alloc_count::{allocations, Counting};
use sluice_benches::{
    compile_generated, realistic_egress_tcp, realistic_inbound, realistic_outbound_service,
    realistic_peer, realistic_tunnel, Kind, DB_PORT, PEER_IDENTITY, REQUEST_HEADERS,
    SERVICE_AUTHORITY, WEB_PORT,
};
use sluice_runtime::normalize::MAX_PATH_LEN;
use sluice_runtime::{
    AlignedBytes, Bundle, Decision, Http, Inbound, Outbound, Peer, PeerClass, Reason, RequestError,
    Scratch,
};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARM_UP: usize = 1_000;
const MEASURED: usize = 100_000;

/// Allocations made while running `f` `MEASURED` times, after `WARM_UP` runs.
fn count(mut f: impl FnMut()) -> u64 {
    for _ in 0..WARM_UP {
        f();
    }
    let before = allocations();
    for _ in 0..MEASURED {
        f();
    }
    allocations() - before
}

#[test]
fn decisions_do_not_allocate() {
    // The counter works: one allocation is seen.
    let before = allocations();
    drop(black_box(vec![0u8; 64]));
    assert!(
        allocations() > before,
        "the counting allocator is not installed"
    );

    let bytes = compile_generated(1_000)
        .unwrap_or_else(|e| panic!("the 1,000-route policy does not compile:\n{e}"));
    let aligned = AlignedBytes::new(&bytes);
    let bundle = Bundle::from_bytes(aligned.as_bytes()).expect("the bundle loads");
    let mut scratch = bundle.create_scratch();
    let mut class = bundle.create_peer_class();
    let peer = realistic_peer();
    bundle.classify(&peer, &mut class);

    let mut counts = Vec::with_capacity(Kind::ALL.len() + 1);
    counts.push((
        "classify",
        count(|| bundle.classify(black_box(&peer), &mut class)),
    ));
    for kind in Kind::ALL {
        let decision = kind.decide(&bundle, &class, &mut scratch);
        if let Err(e) = kind.check(&decision) {
            panic!("{e}");
        }
        let n = count(|| {
            let d = kind.decide(black_box(&bundle), black_box(&class), &mut scratch);
            black_box(&d);
        });
        counts.push((kind.name(), n));
    }
    denials_and_errors(&bundle, &mut counts);
    for (name, n) in &counts {
        println!("{name}: {n} allocations over {MEASURED} calls");
    }
    assert!(
        counts.iter().all(|&(_, n)| n == 0),
        "allocations per kind: {counts:?}"
    );
}

/// A candidate bundle beside the live one, as the proxy decides with it
/// (issue 14): each kind decided by the live 1,000-route bundle and by a
/// candidate, then compared and counted (`sluice_proxy::Comparison`, the
/// proxy's comparison and counters). With a candidate of the same bytes
/// every decision agrees; with one whose inbound HTTP rule is renamed that
/// kind disagrees, and a label set already seen on the thread is counted
/// without allocating.
#[test]
fn candidate_comparisons_do_not_allocate() {
    let text = sluice_benches::generate(1_000);
    let renamed = text.replacen("svc7-items-checkout {", "svc7-items-checkout-v2 {", 1);
    assert_ne!(text, renamed, "the rule to rename is in the policy");
    let live_bytes = compile_generated(1_000).expect("the 1,000-route policy compiles");
    let renamed_bytes = sluice_benches::compile_text(&renamed)
        .expect("the renamed policy compiles")
        .bundle;
    let live_aligned = AlignedBytes::new(&live_bytes);
    let live = Bundle::from_bytes(live_aligned.as_bytes()).expect("the bundle loads");
    let peer = realistic_peer();
    let mut counts = Vec::new();
    for (candidate_bytes, agrees) in [(&live_bytes, true), (&renamed_bytes, false)] {
        let aligned = AlignedBytes::new(candidate_bytes);
        let candidate = Bundle::from_bytes(aligned.as_bytes()).expect("the candidate loads");
        let comparison = sluice_proxy::Comparison::default();
        let (mut live_scratch, mut live_class) = (live.create_scratch(), live.create_peer_class());
        let (mut cand_scratch, mut cand_class) =
            (candidate.create_scratch(), candidate.create_peer_class());
        live.classify(&peer, &mut live_class);
        candidate.classify(&peer, &mut cand_class);
        for kind in Kind::ALL {
            let differs = |kind: Kind| !agrees && kind == Kind::InboundHttp;
            let mut run = || {
                let d = kind.decide(black_box(&live), &live_class, &mut live_scratch);
                let c = kind.decide(black_box(&candidate), &cand_class, &mut cand_scratch);
                comparison.compare(&d, &c)
            };
            assert_eq!(run(), differs(kind), "{}", kind.name());
            let n = count(|| {
                black_box(run());
            });
            let name = if agrees { "agree" } else { "disagree" };
            counts.push((kind.name(), name, n));
        }
        let text = comparison.render();
        let disagreements = if agrees { 0 } else { WARM_UP + MEASURED + 1 };
        let series = "sluice_candidate_disagreements_total{server=\"web\",route=\"svc7-items\",live=\"allow:rule:svc7-items-checkout\",candidate=\"allow:rule:svc7-items-checkout-v2\"}";
        if agrees {
            assert!(
                !text.contains("sluice_candidate_disagreements_total{"),
                "{text}"
            );
        } else {
            assert!(
                text.contains(&format!("{series} {disagreements}\n")),
                "{text}"
            );
        }
    }
    for (kind, case, n) in &counts {
        println!("{kind} ({case}): {n} allocations over {MEASURED} live + candidate decisions");
    }
    assert!(
        counts.iter().all(|&(_, _, n)| n == 0),
        "allocations per kind: {counts:?}"
    );
}

/// Counts the allocations of `decide` after checking its first result with
/// `check`, which says what the case must reach.
fn case<T: std::fmt::Debug>(
    counts: &mut Vec<(&'static str, u64)>,
    name: &'static str,
    mut decide: impl FnMut() -> T,
    check: impl Fn(&T) -> bool,
) {
    let first = decide();
    assert!(check(&first), "{name}: unexpected {first:?}");
    let n = count(|| {
        black_box(decide());
    });
    counts.push((name, n));
}

/// A denial: not allowed, for `reason`, with `status` and `grpc`.
fn denied(d: &Decision<'_>, reason: Reason, status: u16, grpc: Option<u8>) -> bool {
    !d.allow && d.reason == reason && d.http_status == Some(status) && d.grpc_status == grpc
}

fn denials_and_errors(bundle: &Bundle<'_>, counts: &mut Vec<(&'static str, u64)>) {
    let mut scratch = bundle.create_scratch();
    let mut class = bundle.create_peer_class();
    bundle.classify(&realistic_peer(), &mut class);
    let http = |method: &'static str, path: &'static [u8], headers| Http {
        method,
        path,
        headers,
    };
    let grpc_headers: &'static [(&str, &str); 1] = &[("content-type", "application/grpc")];
    let inbound = |http| Inbound {
        port: WEB_PORT,
        http: Some(http),
    };
    // An HTTP request to the web server, decided for a peer of `class`.
    let decide_web = |method, path, headers, class: &PeerClass, scratch: &mut Scratch| {
        bundle.decide_inbound(&inbound(http(method, path, headers)), class, scratch)
    };

    // Peers: IPv4, IPv4-mapped IPv6, and quarantined ones (deny rule
    // `quarantine` covers 10.66.0.0/16) in both forms; an anonymous one.
    let v4 = |a, b, c, d| std::net::IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d));
    let mapped =
        |a, b, c, d| std::net::IpAddr::V6(std::net::Ipv4Addr::new(a, b, c, d).to_ipv6_mapped());
    let peer = |ip, identity| Peer {
        ip: Some(ip),
        identity,
    };
    let peers = [
        ("classify_ipv4", peer(v4(10, 1, 2, 3), Some(PEER_IDENTITY))),
        (
            "classify_ipv4_mapped",
            peer(mapped(10, 1, 2, 3), Some(PEER_IDENTITY)),
        ),
        (
            "classify_quarantined_ipv4",
            peer(v4(10, 66, 0, 5), Some(PEER_IDENTITY)),
        ),
        (
            "classify_quarantined_ipv4_mapped",
            peer(mapped(10, 66, 0, 5), Some(PEER_IDENTITY)),
        ),
        ("classify_anonymous_ipv4", peer(v4(192, 0, 2, 1), None)),
    ];
    let mut classes = Vec::new();
    for (name, peer) in peers {
        let mut c = bundle.create_peer_class();
        bundle.classify(&peer, &mut c);
        counts.push((name, count(|| bundle.classify(black_box(&peer), &mut c))));
        classes.push(c);
    }
    let [ipv4, ipv4_mapped, quarantined, quarantined_mapped, anonymous] = &classes[..] else {
        unreachable!("five peers")
    };

    let headers: &'static [(&str, &str); 2] = &REQUEST_HEADERS;
    case(
        counts,
        "bad_path",
        || decide_web("GET", b"/api/a%2Fb", headers, &class, &mut scratch),
        |r| matches!(r, Ok(d) if denied(d, Reason::BadPath, 400, None)),
    );
    case(
        counts,
        "no_route",
        || decide_web("GET", b"/nothing/here", headers, &class, &mut scratch),
        |r| matches!(r, Ok(d) if denied(d, Reason::NoRoute, 404, None)),
    );
    for (name, peer) in [
        ("deny_rule_ipv4", quarantined),
        ("deny_rule_ipv4_mapped", quarantined_mapped),
    ] {
        case(
            counts,
            name,
            || bundle.decide_inbound(&realistic_inbound(), peer, &mut scratch),
            |r| matches!(r, Ok(d) if denied(d, Reason::Rule, 403, None) && d.rule == Some("quarantine")),
        );
    }
    case(
        counts,
        "default_deny",
        || bundle.decide_inbound(&realistic_inbound(), anonymous, &mut scratch),
        |r| matches!(r, Ok(d) if denied(d, Reason::Default, 403, None) && d.route == Some("svc7-items")),
    );
    for (name, peer) in [
        ("decide_ipv4_peer", ipv4),
        ("decide_ipv4_mapped_peer", ipv4_mapped),
    ] {
        case(
            counts,
            name,
            || bundle.decide_inbound(&realistic_inbound(), peer, &mut scratch),
            |r| matches!(r, Ok(d) if d.route == Some("svc7-items")),
        );
    }
    case(
        counts,
        "grpc_no_route",
        || {
            decide_web(
                "POST",
                b"/pkg.Svc/Method",
                grpc_headers,
                &class,
                &mut scratch,
            )
        },
        |r| matches!(r, Ok(d) if denied(d, Reason::NoRoute, 404, Some(12))),
    );
    case(
        counts,
        "grpc_default_deny",
        || {
            decide_web(
                "GET",
                b"/api/v1/svc7/x",
                grpc_headers,
                anonymous,
                &mut scratch,
            )
        },
        |r| matches!(r, Ok(d) if denied(d, Reason::Default, 403, Some(7)) && d.route == Some("svc7")),
    );
    case(
        counts,
        "grpc_bad_path",
        || decide_web("POST", b"/a%00", grpc_headers, &class, &mut scratch),
        |r| matches!(r, Ok(d) if denied(d, Reason::BadPath, 400, Some(13))),
    );
    case(
        counts,
        "no_server",
        || {
            bundle.decide_inbound(
                &Inbound {
                    port: 9,
                    http: Some(http("GET", b"/", headers)),
                },
                &class,
                &mut scratch,
            )
        },
        |r| matches!(r, Ok(d) if denied(d, Reason::Default, 403, None) && d.server.is_none()),
    );
    case(
        counts,
        "tcp_deny_rule",
        || {
            bundle.decide_inbound(
                &Inbound {
                    port: DB_PORT,
                    http: None,
                },
                quarantined,
                &mut scratch,
            )
        },
        |r| matches!(r, Ok(d) if !d.allow && d.rule == Some("db-quarantine")),
    );
    case(
        counts,
        "connection_to_http_server",
        || {
            bundle.decide_inbound(
                &Inbound {
                    port: WEB_PORT,
                    http: None,
                },
                &class,
                &mut scratch,
            )
        },
        |r| matches!(r, Err(e) if e.to_string().contains("`web`")),
    );

    // A path of exactly the limit is decided; one byte more is a bad path.
    let mut long = b"/api/v1/svc7/items/".to_vec();
    long.resize(MAX_PATH_LEN, b'a');
    let long: &'static [u8] = long.leak();
    let too_long: &'static [u8] = {
        let mut v = long.to_vec();
        v.push(b'a');
        v.leak()
    };
    case(
        counts,
        "path_at_length_limit",
        || decide_web("GET", long, headers, &class, &mut scratch),
        |r| matches!(r, Ok(d) if d.allow && d.route == Some("svc7-items")),
    );
    case(
        counts,
        "path_past_length_limit",
        || decide_web("GET", too_long, headers, &class, &mut scratch),
        |r| matches!(r, Ok(d) if denied(d, Reason::BadPath, 400, None)),
    );

    // Outbound.
    let service = |path| Outbound {
        http: Some(http("GET", path, headers)),
        ..realistic_outbound_service()
    };
    case(
        counts,
        "outbound_no_route",
        || bundle.decide_outbound(&service(b"/nothing/here"), &mut scratch),
        |r| matches!(r, Ok(d) if denied(d, Reason::NoRoute, 404, None) && d.service == Some("checkout-api")),
    );
    case(
        counts,
        "outbound_path_at_length_limit",
        || bundle.decide_outbound(&service(long), &mut scratch),
        |r| matches!(r, Ok(d) if d.allow && d.route == Some("svc7-items")),
    );
    case(
        counts,
        "outbound_bad_path",
        || bundle.decide_outbound(&service(b"/a%2Fb"), &mut scratch),
        |r| matches!(r, Ok(d) if denied(d, Reason::BadPath, 400, None)),
    );
    case(
        counts,
        "egress_deny_rule",
        || {
            bundle.decide_outbound(
                &Outbound {
                    authority: Some("evil.googleapis.com:443"),
                    ..realistic_tunnel()
                },
                &mut scratch,
            )
        },
        |r| matches!(r, Ok(d) if denied(d, Reason::Rule, 403, None) && d.rule == Some("evil-googleapis")),
    );
    case(
        counts,
        "egress_default_deny_http",
        || {
            bundle.decide_outbound(
                &Outbound {
                    authority: Some("unknown.example.org"),
                    http: Some(http("POST", b"/x", grpc_headers)),
                    ..Outbound::default()
                },
                &mut scratch,
            )
        },
        |r| matches!(r, Ok(d) if denied(d, Reason::Default, 403, Some(7))),
    );
    for (name, imds) in [
        ("egress_tcp_deny_rule", v4(169, 254, 169, 254)),
        ("egress_tcp_ipv4_mapped", mapped(169, 254, 169, 254)),
    ] {
        case(
            counts,
            name,
            || {
                bundle.decide_outbound(
                    &Outbound {
                        ip: Some(imds),
                        port: Some(80),
                        ..realistic_egress_tcp()
                    },
                    &mut scratch,
                )
            },
            |r| matches!(r, Ok(d) if !d.allow && d.rule == Some("imds")),
        );
    }
    case(
        counts,
        "outbound_bad_authority",
        || {
            bundle.decide_outbound(
                &Outbound {
                    authority: Some("a b:1"),
                    ..Outbound::default()
                },
                &mut scratch,
            )
        },
        |r| r.is_err(),
    );
    case(
        counts,
        "outbound_incomplete",
        || {
            bundle.decide_outbound(
                &Outbound {
                    http: Some(http("GET", b"/", headers)),
                    ..Outbound::default()
                },
                &mut scratch,
            )
        },
        |r| r.is_err(),
    );
    let _ = SERVICE_AUTHORITY;
}

/// Envoy's ext_authz checks (issue 15), as `sluice authz` decides them:
/// a `CheckRequest` decoded (outside the count) from the bytes Envoy
/// sends, then mapped ([`sluice_authz::CheckView::from_check`]) and
/// decided ([`Bundle::decide_inbound_peer`]) on the 1,000-route policy.
/// Allowed, denied, gRPC denied and no-route checks, the allowed one also
/// with Envoy's raw `header_map` instead of the `headers` map, and a check
/// that cannot be mapped: none allocates.
#[test]
fn authz_checks_do_not_allocate() {
    use prost::Message;
    use sluice_authz::pb::{CheckRequest, HeaderMap, HeaderValue};
    use sluice_authz::{CheckView, MapConfig, MapError};
    use sluice_benches::check::{check_request, Check};

    let bytes = compile_generated(1_000).expect("the 1,000-route policy compiles");
    let aligned = AlignedBytes::new(&bytes);
    let bundle = Bundle::from_bytes(aligned.as_bytes()).expect("the bundle loads");
    let mut scratch = bundle.create_scratch();
    let config = MapConfig::default();
    // The check as it arrives: encoded by Envoy, decoded by the server.
    let decoded = |check: &CheckRequest| {
        CheckRequest::decode(check.encode_to_vec().as_slice()).expect("the check decodes")
    };
    let mut raw = check_request(&Check::allowed());
    if let Some(http) = raw
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        let mut list: Vec<HeaderValue> = std::mem::take(&mut http.headers)
            .into_iter()
            .map(|(key, value)| HeaderValue {
                key,
                raw_value: value.into_bytes(),
                ..HeaderValue::default()
            })
            .collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        http.header_map = Some(HeaderMap { headers: list });
    }
    type Expect = for<'x> fn(&Result<Decision<'x>, RequestError<'x>>) -> bool;
    let tcp = {
        let mut c = check_request(&Check::allowed());
        c.attributes.as_mut().expect("attributes").request = None;
        c
    };
    let cases: [(&'static str, CheckRequest, Expect); 6] = [
        ("authz_allowed", check_request(&Check::allowed()), |r| {
            Kind::InboundHttp.check(r).is_ok()
        }),
        ("authz_allowed_raw_header_map", raw, |r| {
            Kind::InboundHttp.check(r).is_ok()
        }),
        (
            "authz_denied",
            check_request(&Check::denied()),
            |r| matches!(r, Ok(d) if denied(d, Reason::Default, 403, None) && d.route == Some("svc7-items")),
        ),
        (
            "authz_grpc_denied",
            check_request(&Check::grpc_denied()),
            |r| matches!(r, Ok(d) if denied(d, Reason::Default, 403, Some(7)) && d.route == Some("svc7")),
        ),
        (
            "authz_no_route",
            check_request(&Check::no_route()),
            |r| matches!(r, Ok(d) if denied(d, Reason::NoRoute, 404, None)),
        ),
        // A connection check (Envoy's network filter) on the HTTP port: an error.
        ("authz_connection_to_http_server", tcp, |r| r.is_err()),
    ];
    let mut counts = Vec::new();
    for (name, check, expected) in cases {
        let check = decoded(&check);
        case(
            &mut counts,
            name,
            || {
                let view = CheckView::from_check(black_box(&check), &config).expect("maps");
                bundle.decide_inbound_peer(&view.inbound(), &view.peer(), &mut scratch)
            },
            expected,
        );
    }
    let unmappable = decoded(&CheckRequest::default());
    case(
        &mut counts,
        "authz_unmappable",
        || CheckView::from_check(black_box(&unmappable), &config).map(|v| v.port()),
        |r| matches!(r, Err(MapError::NoAttributes)),
    );
    for (name, n) in &counts {
        println!("{name}: {n} allocations over {MEASURED} mapped and decided checks");
    }
    assert!(
        counts.iter().all(|&(_, n)| n == 0),
        "allocations per check: {counts:?}"
    );
}
