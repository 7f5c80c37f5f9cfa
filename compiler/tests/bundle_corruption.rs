//! A small valid bundle, corrupted at every byte and truncated at every
//! length, must always be rejected cleanly. With its hash recomputed (so
//! the table and automaton validation is reached), every corrupted copy
//! must load or be rejected without a panic; a meaningful number load, and
//! each one that loads is probed with requests that reach every route of
//! every server, the TCP server, every service route and every egress rule
//! (`sluice_runtime::fuzz::probe`, which the bundle fuzz target shares):
//! its decisions must name only servers, routes, rules, services and
//! backends of the original bundle (the same entity, found at the same
//! place in the bytes).

use sluice_compiler::{compile, Config};
use sluice_runtime::fuzz::probe::{probes, Aim, Entities};
use sluice_runtime::{fuzz, AlignedBytes, Bundle};

const POLICY: &str = r#"
mesh { trust-domain "td" }
server web {
  port 80
  route api { method GET  path prefix "/api"  header "x-v" ~ r"v[0-9]" query "q" = "1" }
  route ex  { path "/x" }
  route re  { method POST  path regex r"/r/[0-9]+" }
}
server rpc { port 9000 protocol grpc  route get { grpc "pkg.Svc/Get" } }
server db { port 5432 protocol tcp }
allow a { to web.api  from identity "spiffe://td/ns/*/sa/x" }
allow g { to rpc.get  from authenticated }
deny  d { to web, db  from network 10.0.0.0/8 except 10.1.0.0/16 }
allow t { to db  from network 10.1.0.0/16 }
egress {
  allow h { host "*.example.com" port 443 }
  allow w { host "*" port 8443 }
  deny  n { network 169.254.169.254 }
}
service s {
  authority "s:80"
  backend b { endpoint 127.0.0.1:8080 }
  backend c { endpoint "c.internal:8080" }
  route canary { header "x-canary" present  to b 50, c 50 }
  route r { path prefix "/r" to b }
}
"#;

fn small_bundle() -> Vec<u8> {
    let (policy, diags) = sluice_lang::parse::parse_str("small.sluice", POLICY);
    assert!(diags.is_empty(), "{diags:?}");
    compile(&policy, &Config::default())
        .expect("compiles")
        .bundle
}

#[test]
fn every_flipped_byte_is_rejected() {
    let bundle = small_bundle();
    assert!(Bundle::from_bytes(AlignedBytes::new(&bundle).as_bytes()).is_ok());
    for i in 0..bundle.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut b = bundle.clone();
            b[i] ^= mask;
            let aligned = AlignedBytes::new(&b);
            assert!(
                Bundle::from_bytes(aligned.as_bytes()).is_err(),
                "flip {mask:#x} at byte {i} was accepted"
            );
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    let bundle = small_bundle();
    for len in 0..bundle.len() {
        let aligned = AlignedBytes::new(&bundle[..len]);
        assert!(
            Bundle::from_bytes(aligned.as_bytes()).is_err(),
            "truncation to {len} bytes was accepted"
        );
    }
}

#[test]
fn the_probes_reach_every_part_of_the_bundle() {
    let bytes = small_bundle();
    let aligned = AlignedBytes::new(&bytes);
    let bundle = Bundle::from_bytes(aligned.as_bytes()).expect("loads");
    let probes = probes(&bundle);
    let unreached = probes.unreached(&bundle);
    assert!(unreached.is_empty(), "not reached: {unreached:?}");
    let aims: Vec<&Aim> = probes.probes.iter().flat_map(|p| &p.aims).collect();
    let route = |server: &str, route: Option<&str>| Aim::ServerRoute {
        server: server.into(),
        route: route.map(Into::into),
    };
    let rule = |server: &str, rule: &str| Aim::Rule {
        server: server.into(),
        rule: rule.into(),
    };
    let service = |route: &str| Aim::ServiceRoute {
        service: "s".into(),
        route: Some(route.into()),
    };
    let egress = |rule: &str| Aim::EgressRule { rule: rule.into() };
    for want in [
        route("web", Some("api")),
        route("web", Some("ex")),
        route("web", Some("re")),
        route("rpc", Some("get")),
        route("db", None),
        rule("web", "a"),
        rule("web", "d"),
        rule("rpc", "g"),
        rule("db", "d"),
        rule("db", "t"),
        service("canary"),
        service("r"),
        egress("h"),
        egress("w"),
        egress("n"),
    ] {
        assert!(aims.contains(&&want), "no probe aims at {want:?}");
    }
}

#[test]
fn corruption_behind_a_valid_hash_names_only_original_entities() {
    let bundle = small_bundle();
    let original_bytes = AlignedBytes::new(&bundle);
    let original = Bundle::from_bytes(original_bytes.as_bytes()).expect("loads");
    let entities = Entities::of(&original);
    let mut variants = 0;
    let mut loaded = 0;
    let mut decisions = 0;
    let mut problems = Vec::new();
    for i in 24..bundle.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut b = bundle.clone();
            b[i] ^= mask;
            fuzz::rehash(&mut b);
            variants += 1;
            // What the fuzz target runs: loads cleanly or fails cleanly, and
            // a loaded copy's decisions name only its own entities.
            fuzz::load_bundle(&b);
            let aligned = AlignedBytes::new(&b);
            let Ok(variant) = Bundle::from_bytes(aligned.as_bytes()) else {
                continue;
            };
            loaded += 1;
            probes(&variant).decide_each(&variant, |probe, result| {
                decisions += 1;
                if let Err(e) = entities.check(variant.as_bytes(), &result) {
                    problems.push(format!(
                        "flip {mask:#x} at byte {i}: {e}: {:?} decided {result:?}",
                        probe.aims
                    ));
                }
            });
        }
    }
    eprintln!("{loaded} of {variants} corrupted copies loaded; {decisions} decisions checked");
    assert!(
        problems.is_empty(),
        "{} decisions name what the original bundle does not hold:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
    // Flips in names, padding and values load; a corrupt table or automaton does not.
    assert!(
        loaded >= 200 && loaded < variants / 2,
        "{loaded} of {variants} corrupted copies loaded"
    );
    assert!(decisions >= loaded * 20, "{decisions} decisions");
}

#[test]
fn misaligned_bytes_are_rejected() {
    let bundle = small_bundle();
    let mut shifted = vec![0u8; bundle.len() + 1];
    shifted[1..].copy_from_slice(&bundle);
    let aligned = AlignedBytes::new(&shifted);
    let inner = &aligned.as_bytes()[1..];
    assert!(Bundle::from_bytes(inner).is_err());
}

#[test]
fn same_input_same_bytes() {
    assert_eq!(small_bundle(), small_bundle());
}
