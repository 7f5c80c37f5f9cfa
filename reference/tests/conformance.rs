//! Runs every decision case of the conformance files (spec section 11)
//! through the reference interpreter: the project's own corpus
//! (`conformance/` in the repository) and the shared one
//! (`../shared/conformance/*.toml` next to the repository), which is
//! skipped when absent except under CI, where that is a failure.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sluice_reference::{evaluate, Decision, Direction, Request};
use sluice_runtime::wire;
use support::request_of;

/// The shared conformance folder; `None` (a failure under CI) when absent.
fn shared_dir() -> Option<PathBuf> {
    sluice_testkit::shared_dir("conformance", "the shared conformance cases")
}

/// The project's own conformance folder.
fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance")
}

/// The decision as the JSON of spec section 10, with the runtime's wire
/// types: `backends` is a list only for reason `service`.
fn decision_json(d: &Decision) -> Value {
    let wire = wire::Decision::<&str> {
        decision: if d.allow { "allow" } else { "deny" },
        reason: d.reason,
        server: d.server.as_deref(),
        route: d.route.as_deref(),
        rule: d.rule.as_deref(),
        audit: d.audit,
        http_status: d.http_status,
        grpc_status: d.grpc_status,
        service: d.service.as_deref(),
        backends: (d.reason == "service").then(|| {
            d.backends
                .iter()
                .map(|(name, weight)| wire::Backend {
                    name: name.as_str(),
                    weight: *weight,
                })
                .collect()
        }),
        timeout_ms: d.timeout_ms,
    };
    serde_json::to_value(wire).expect("a decision as JSON")
}

/// A request table shaped as in spec section 10, read with the runtime's
/// wire types.
fn request(v: &Value) -> Result<Request, String> {
    if !v.is_object() {
        return Err("a request must be an object".to_string());
    }
    let wire: wire::Request = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    wire.check().map_err(|e| e.to_string())?;
    let headers = |h: Option<wire::HeaderList>| h.map(|h| h.0).unwrap_or_default();
    Ok(match wire {
        wire::Request::Inbound(r) => {
            let peer = r.peer.unwrap_or_default();
            Request {
                direction: Direction::Inbound,
                port: Some(r.port),
                method: r.method,
                path: r.path,
                headers: headers(r.headers),
                peer_ip: peer.ip,
                peer_identity: peer.identity,
                authority: None,
                ip: None,
            }
        }
        wire::Request::Outbound(r) => Request {
            direction: Direction::Outbound,
            port: r.port,
            method: r.method,
            path: r.path,
            headers: headers(r.headers),
            peer_ip: None,
            peer_identity: None,
            authority: r.authority,
            ip: r.ip,
        },
    })
}

/// Checks one case; the list of mismatches.
fn check_case(policy: &sluice_lang::Policy, case: &Value) -> Vec<String> {
    let req = match case
        .get("request")
        .ok_or("no request".to_string())
        .and_then(request)
    {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let decision = match evaluate(policy, &req) {
        Ok(d) => decision_json(&d),
        Err(e) => return vec![format!("evaluate failed: {e}")],
    };
    let Some(Value::Object(expect)) = case.get("expect") else {
        return vec!["no expect table".to_string()];
    };
    if expect.is_empty() {
        return vec!["the expect table is empty, so the case checks nothing".to_string()];
    }
    let mut problems = Vec::new();
    for (key, want) in expect {
        let got = decision.get(key);
        let ok = match (want, got) {
            (Value::String(s), got) if s.is_empty() => matches!(got, None | Some(Value::Null)),
            (_, None) => false,
            (want, Some(got)) => want == got,
        };
        if !ok {
            problems.push(format!(
                "`{key}`: expected {want}, got {}",
                got.unwrap_or(&Value::Null)
            ));
        }
    }
    problems
}

/// Runs the decision cases of the `*.toml` files directly in `dir` (the
/// `lint/` subfolder holds diagnostics only); panics on any mismatch or
/// when there is no case at all. The number of cases run.
fn run_decisions(dir: &Path) -> usize {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut cases = 0;
    for file in &files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(file).expect("read conformance file");
        let doc: toml::Value =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: bad TOML: {e}"));
        let doc = serde_json::to_value(doc).expect("TOML to JSON");
        let Some(Value::Array(case_list)) = doc.get("case") else {
            assert!(
                doc.get("diagnostic").is_some(),
                "{name}: neither cases nor diagnostics"
            );
            continue;
        };
        let source = doc
            .get("policy")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{name}: no policy"));
        let (policy, diagnostics) = sluice_lang::parse::parse_str(&name, source);
        let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
        assert!(
            errors.is_empty(),
            "{name}: the policy does not parse: {errors:?}"
        );
        for case in case_list {
            cases += 1;
            let case_name = case.get("name").and_then(Value::as_str).unwrap_or("?");
            for problem in check_case(&policy, case) {
                failures.push(format!("{name} / {case_name}: {problem}"));
            }
        }
    }
    assert!(cases > 0, "no decision cases found in {}", dir.display());
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    cases
}

#[test]
fn shared_conformance_decisions() {
    let Some(dir) = shared_dir() else { return };
    let cases = run_decisions(&dir);
    eprintln!("{cases} shared conformance cases passed");
}

#[test]
fn project_conformance_decisions() {
    let cases = run_decisions(&project_dir());
    eprintln!("{cases} project conformance cases passed");
}

#[test]
fn harness_reports_mismatches() {
    let (policy, _) = sluice_lang::parse::parse_str("t.sluice", "server web { port 80 }");
    let case = json!({
        "request": { "direction": "inbound", "port": 80, "method": "GET", "path": "/", "peer": {} },
        "expect": { "decision": "allow", "server": "", "http_status": 403, "grpc_status": "", "nonsense": 1 }
    });
    let problems = check_case(&policy, &case);
    assert_eq!(problems.len(), 3, "{problems:?}");
    let case = json!({
        "request": { "direction": "inbound", "port": 80, "method": "GET", "path": "/", "peer": {} },
        "expect": { "decision": "deny", "server": "web", "route": "", "http_status": 403, "backends": "" }
    });
    assert_eq!(check_case(&policy, &case), Vec::<String>::new());
    let case = json!({
        "request": { "direction": "inbound", "port": 80, "method": "GET", "path": "/", "peer": {} },
        "expect": {}
    });
    assert_eq!(
        check_case(&policy, &case).len(),
        1,
        "an empty expect table checks nothing"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Every conformance policy (the project's, and the shared ones when
    /// present: their absence fails `shared_conformance_decisions` under CI)
    /// decides arbitrary requests without panicking, and the same way twice.
    #[test]
    fn conformance_policies_never_panic(
        inbound in proptest::bool::ANY,
        port in proptest::option::of(proptest::sample::select(vec![80u16, 443, 5432, 7001, 7004, 8080, 9000, 9999, 50051])),
        method in proptest::option::of(r"GET|POST|DELETE|[A-Z]{0,3}"),
        path in proptest::option::of(r"/(api|q|t|h|public|one|two|four|billing\.v1\.Ledger)?[/a-z.%2eE?=&]{0,12}|\PC{0,10}"),
        headers in proptest::collection::vec((r"x-tenant|X-Version|content-type|x-canary", r"1|acme|v1|application/grpc|\PC{0,4}"), 0..3),
        peer_ip in proptest::option::of(proptest::sample::select(vec!["10.66.1.1", "192.168.13.7", "2001:db8::1", "10.3.3.3"])),
        peer_identity in proptest::option::of(r"spiffe://prod\.example\.com/ns/[a-z]{1,3}/sa/[a-z]{1,3}|\PC{0,8}"),
        authority in proptest::option::of(r"payments\.prod:8080|search|[a-z]{1,3}\.googleapis\.com(:443)?|\[::1\]|\PC{0,8}"),
        ip in proptest::option::of(proptest::sample::select(vec!["169.254.169.254", "10.96.0.1", "::1"])),
    ) {
        let req = request_of(inbound, port, method, path, headers, (peer_ip, peer_identity), (authority, ip));
        let shared = sluice_testkit::repository().join("../shared/conformance");
        let mut files: Vec<PathBuf> = [project_dir(), shared]
            .iter()
            .filter(|dir| dir.is_dir())
            .flat_map(|dir| std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok().map(|e| e.path())))
            .collect();
        files.sort();
        proptest::prop_assert!(files.len() > 1);
        for file in files.iter().filter(|p| p.extension().is_some_and(|x| x == "toml")) {
            let doc: toml::Value = toml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            if doc.get("case").is_none() {
                continue;
            }
            let Some(source) = doc.get("policy").and_then(|p| p.as_str()) else { continue };
            let (policy, _) = sluice_lang::parse::parse_str("p.sluice", source);
            let first = evaluate(&policy, &req);
            proptest::prop_assert_eq!(&first, &evaluate(&policy, &req));
        }
    }
}
