//! `sluice diff`: the spec-shaped examples end to end (every witness given to
//! `sluice eval` on both sides gives the reported decisions), exit codes, and
//! every example and conformance policy against itself.

mod support;

use serde_json::Value;
use sluice_cli::diff::{diff_bundles, diff_paths, human_line, DiffError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use support::run_sluice as sluice;

fn temp(name: &str, text: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sluice-diff-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `sluice diff OLD NEW --format json`, checks the exit code, and runs
/// every witness through `sluice eval` with each policy.
fn diff(old: &str, new: &str) -> Vec<Value> {
    let (o, n) = (temp("old.sluice", old), temp("new.sluice", new));
    let (os, ns) = (o.to_str().unwrap(), n.to_str().unwrap());
    let run = sluice(&["diff", os, ns, "--format", "json"], "");
    let entries: Vec<Value> = run
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(run.code, if entries.is_empty() { 0 } else { 1 });
    let requests: Vec<String> = entries.iter().map(|e| e["request"].to_string()).collect();
    for (side, path) in [("old", os), ("new", ns)] {
        let stdin = requests.join("\n");
        let eval = sluice(&["eval", "--policy", path], &stdin);
        assert_eq!(eval.code, 0);
        let decisions: Vec<Value> = eval
            .out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(decisions.len(), entries.len());
        for (e, d) in entries.iter().zip(&decisions) {
            assert_eq!(&e[side], d, "{side} decision of {}", e["request"]);
        }
    }
    // Distinct pairs.
    for (i, a) in entries.iter().enumerate() {
        for b in &entries[i + 1..] {
            assert!(a["old"] != b["old"] || a["new"] != b["new"]);
        }
    }
    entries
}

fn human(old: &str, new: &str) -> Vec<String> {
    let (o, n) = (temp("old.sluice", old), temp("new.sluice", new));
    diff_paths(&o, &n).unwrap().iter().map(human_line).collect()
}

const WEB: &str = r#"
mesh { trust-domain "prod.example.com" }
server web {
  port 8080
  route metrics { method GET  path "/metrics" }
  route api     { path prefix "/api"  header "x-tenant" ~ r"[a-z]+" }
}
allow scrape   { to web.metrics  from namespace "monitoring" }
allow frontend { to web.api      from identity "spiffe://prod.example.com/ns/shop/sa/*" }
deny  quarantine { to web        from network 10.66.0.0/16 }
"#;

#[test]
fn a_removed_rule_gives_its_allow_to_deny_pairs() {
    let new = WEB.replace(
        "allow frontend { to web.api      from identity \"spiffe://prod.example.com/ns/shop/sa/*\" }",
        "",
    );
    let entries = diff(WEB, &new);
    assert!(!entries.is_empty());
    for e in &entries {
        assert_eq!(e["old"]["rule"], "frontend");
        assert_eq!(e["new"]["decision"], "deny");
        assert_eq!(e["new"]["reason"], "default");
        assert_eq!(e["old"]["route"], "api");
    }
    let lines = human(WEB, &new);
    assert!(
        lines.iter().any(|l| l
            .starts_with("web.api: allow (rule frontend) -> deny (default, 403), e.g. GET /api ")
            && l.contains("x-tenant: a")
            && l.contains("from spiffe://prod.example.com/ns/shop/sa/")),
        "{lines:#?}"
    );
}

#[test]
fn a_changed_path_moves_requests_between_routes() {
    let new = WEB.replace("path \"/metrics\"", "path \"/stats\"");
    let entries = diff(WEB, &new);
    let kinds: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["old"]["reason"].to_string(),
                e["new"]["reason"].to_string(),
            )
        })
        .collect();
    // /metrics: scraped before, no route now; /stats the other way round.
    assert!(
        entries
            .iter()
            .any(|e| e["request"]["path"] == "/metrics" && e["new"]["reason"] == "no-route"),
        "{kinds:?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["request"]["path"] == "/stats" && e["old"]["reason"] == "no-route"),
        "{kinds:?}"
    );
}

#[test]
fn a_changed_header_condition_is_found_with_a_value_on_each_side() {
    let new = WEB.replace(r#"r"[a-z]+""#, r#"r"[a-z0-9]+""#);
    let entries = diff(WEB, &new);
    assert!(!entries.is_empty());
    for e in &entries {
        let tenant = e["request"]["headers"]["x-tenant"].as_str().unwrap();
        assert!(
            tenant.chars().all(|c| c.is_ascii_alphanumeric())
                && tenant.chars().any(|c| c.is_ascii_digit()),
            "{tenant}"
        );
        assert_eq!(e["old"]["reason"], "no-route");
        assert_eq!(e["new"]["route"], "api");
    }
}

#[test]
fn an_added_egress_host_allows_it() {
    let old = r#"egress { default deny  allow gh { host "github.com"  port 443 } }"#;
    let new =
        r#"egress { default deny  allow gh { host "github.com", "*.googleapis.com"  port 443 } }"#;
    let entries = diff(old, new);
    assert!(!entries.is_empty());
    for e in &entries {
        let a = e["request"]["authority"].as_str().unwrap();
        assert!(a.ends_with(".googleapis.com:443"), "{a}");
        assert_eq!(e["old"]["decision"], "deny");
        assert_eq!(e["new"]["rule"], "gh");
    }
    // HTTP and CONNECT are denied alike (403), gRPC with its own status.
    assert_eq!(entries.len(), 2, "{entries:#?}");
}

#[test]
fn changed_service_weights_are_one_pair() {
    let svc = |w: u32| {
        format!(
            r#"service payments {{
  authority "payments.prod:8080"
  backend east {{ endpoint 10.0.1.10:8080 }}
  backend canary {{ endpoint 10.0.2.10:8080 }}
  route main {{ to east {}, canary {} }}
}}"#,
            100 - w,
            w
        )
    };
    let entries = diff(&svc(10), &svc(20));
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["request"]["authority"], "payments.prod:8080");
    let lines = human(&svc(10), &svc(20));
    assert_eq!(
        lines[0],
        "payments.main: allow (service payments route main, backends east 90, canary 10) -> \
         allow (service payments route main, backends east 80, canary 20), e.g. GET payments.prod:8080/"
    );
}

#[test]
fn identical_policies_have_no_entry_and_exit_0() {
    assert!(diff(WEB, WEB).is_empty());
    let (o, n) = (temp("old.sluice", WEB), temp("new.sluice", WEB));
    let run = sluice(&["diff", o.to_str().unwrap(), n.to_str().unwrap()], "");
    assert_eq!(run.code, 0);
    assert!(run.out.is_empty());
    assert!(run.err.contains("no differences"));
}

#[test]
fn exit_codes_and_errors() {
    let good = temp("good.sluice", WEB);
    let broken = temp("broken.sluice", "server web { port }");
    let g = good.to_str().unwrap();
    let missing = sluice(&["diff", g, "/nonexistent/policy.sluice"], "");
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .err
            .contains("cannot read `/nonexistent/policy.sluice`"),
        "{}",
        missing.err
    );
    let bad = sluice(&["diff", broken.to_str().unwrap(), g], "");
    assert_eq!(bad.code, 2);
    assert!(bad.err.contains("does not compile"), "{}", bad.err);
    assert!(matches!(
        diff_paths(&broken, &good),
        Err(DiffError::Compile(_))
    ));
    // A bundle against its policy: no difference; a changed one: exit 1.
    let bundle = good.with_extension("bundle");
    let compiled = sluice(&["compile", g, "-o", bundle.to_str().unwrap()], "");
    assert_eq!(compiled.code, 0);
    assert_eq!(sluice(&["diff", bundle.to_str().unwrap(), g], "").code, 0);
    let other = temp(
        "other.sluice",
        &WEB.replace("deny  quarantine", "allow quarantine"),
    );
    assert_eq!(
        sluice(
            &["diff", bundle.to_str().unwrap(), other.to_str().unwrap()],
            ""
        )
        .code,
        1
    );
    let corrupt = std::fs::read(&bundle).unwrap();
    let mut flipped = corrupt.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    assert!(matches!(
        diff_bundles(&flipped, &corrupt),
        Err(DiffError::BadBundle(_))
    ));
}

fn policies_under(dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            policies_under(&p, out);
        } else if p.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            let Ok(table) = text.parse::<toml::Table>() else {
                continue;
            };
            if let Some(policy) = table.get("policy").and_then(|v| v.as_str()) {
                out.push((p.display().to_string(), policy.to_string()));
            }
        }
    }
}

#[test]
fn every_example_and_conformance_policy_against_itself_has_no_entry() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut n = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("policies"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        let Ok(entries) = diff_paths(&d, &d) else {
            continue;
        };
        assert!(entries.is_empty(), "{}: {entries:#?}", d.display());
        n += 1;
    }
    let mut found = Vec::new();
    policies_under(&root.join("conformance"), &mut found);
    policies_under(Path::new("/work/shared/conformance"), &mut found);
    for (name, policy) in found {
        let p = temp("p.sluice", &policy);
        match diff_paths(&p, &p) {
            Ok(entries) => {
                assert!(entries.is_empty(), "{name}: {entries:#?}");
                n += 1;
            }
            Err(DiffError::Compile(_)) => {}
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert!(n > 20, "{n}");
}

#[test]
fn an_ipv6_literal_authority_is_its_own_host_class() {
    let svc = |w: u32| {
        format!(
            r#"service users {{
  authority "[2001:db8:1:5::7]:80"
  backend a {{ endpoint 10.0.1.10:8080 }}
  route main {{ to a {w} }}
}}"#
        )
    };
    let entries = diff(&svc(1), &svc(2));
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["request"]["authority"], "[2001:db8:1:5::7]:80");
}
