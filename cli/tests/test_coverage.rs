//! `sluice test --coverage`: the routes, rules and egress rules no case
//! took, as text and as JSON, and results and exit status left unchanged.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use support::{run_sluice as sluice, Run};

/// Line 1 is `mesh`; the declaration lines are asserted below.
const POLICY: &str = r#"mesh { trust-domain "prod.example.com" }
server web {
  port 8080
  route metrics { method GET  path "/metrics" }
  route api { path prefix "/api" }
  route admin { path "/admin" }
}
server legacy {
  port 9090
  default audit
}
allow scrape { to web.metrics  from network 10.0.0.0/8 }
allow frontend { to web.api  from namespace "shop" }
deny quarantine { to web  from network 10.66.0.0/16 }
deny old { to legacy  from network 10.0.0.0/8 }
egress {
  default deny
  allow google { host "*.googleapis.com"  port 443 }
  deny imds { network 169.254.169.254 }
}
service payments {
  authority "payments.prod:8080"
  backend east { endpoint 10.0.1.10:8080 }
  backend canary { endpoint 10.0.2.10:8080 }
  route beta { header "x-canary" = "1"  to canary }
  route main { to east }
}
"#;

/// Takes web.metrics with rule scrape, legacy's implicit route with rule
/// old (audit: allowed, the rule kept), egress rule google and
/// payments.main.
const CASES: &str = r#"
[[case]]
name = "scrape"
request = { direction = "inbound", port = 8080, method = "GET", path = "/metrics", peer = { ip = "10.1.2.3" } }
expect = { decision = "allow", rule = "scrape" }

[[case]]
name = "legacy audit"
request = { direction = "inbound", port = 9090, method = "GET", path = "/", peer = { ip = "10.1.2.3" } }
expect = { decision = "allow", rule = "old", audit = true }

[[case]]
name = "google"
request = { direction = "outbound", authority = "storage.googleapis.com:443" }
expect = { decision = "allow", rule = "google" }

[[case]]
name = "payments"
request = { direction = "outbound", authority = "payments.prod:8080", method = "GET", path = "/" }
expect = { route = "main" }

[[case]]
name = "rejected request"
request = { direction = "inbound", port = 8080, peer = { ip = "10.1.2.3" } }
expect = { error = "" }
"#;

/// A fresh directory for one test.
fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli-coverage-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn conformance(policy: &str, cases: &str) -> String {
    format!("policy = '''{policy}'''\n{cases}")
}

fn test(args: &[&str]) -> Run {
    sluice(&[&["test"], args].concat(), "")
}

#[test]
fn untaken_items_as_text() {
    let dir = tmp("text");
    let file = write(&dir, "x.toml", &conformance(POLICY, CASES));
    let plain = test(&[&file]);
    assert_eq!(
        (plain.code, plain.out.as_str()),
        (0, "5 passed, 0 failed\n")
    );
    let run = test(&[&file, "--coverage"]);
    assert_eq!(run.code, 0);
    let want = format!(
        "coverage {file}: 3 of 5 routes, 2 of 4 rules, 1 of 2 egress rules not taken:\n  \
         route web.api (line 5)\n  \
         route web.admin (line 6)\n  \
         route payments.beta (line 25)\n  \
         rule frontend (line 13)\n  \
         rule quarantine (line 14)\n  \
         egress rule imds (line 19)\n\
         5 passed, 0 failed\n"
    );
    assert_eq!(run.out, want);
}

#[test]
fn untaken_items_as_json() {
    let dir = tmp("json");
    let file = write(&dir, "x.toml", &conformance(POLICY, CASES));
    let run = test(&[&file, "--coverage", "--format", "json"]);
    assert_eq!(run.code, 0);
    let lines: Vec<&str> = run.out.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.out);
    assert_eq!(lines[1], "5 passed, 0 failed");
    let got: Value = serde_json::from_str(lines[0]).unwrap();
    let route = |parent: (&str, &str), route: &str, line: u32| json!({parent.0: parent.1, "route": route, "source": "<policy>", "line": line});
    let rule = |name: &str, line: u32| json!({"rule": name, "source": "<policy>", "line": line});
    let want = json!({
        "file": file,
        "files": [file],
        "routes": {
            "total": 5,
            "taken": 2,
            "untaken": [
                route(("server", "web"), "api", 5),
                route(("server", "web"), "admin", 6),
                route(("service", "payments"), "beta", 25),
            ],
        },
        "rules": {
            "total": 4,
            "taken": 2,
            "untaken": [rule("frontend", 13), rule("quarantine", 14)],
        },
        "egress_rules": {"total": 2, "taken": 1, "untaken": [rule("imds", 19)]},
    });
    assert_eq!(got, want);
}

#[test]
fn everything_taken_gives_empty_lists() {
    let dir = tmp("all");
    let policy =
        "server web {\n  port 80\n  route r { path \"/r\" }\n}\nallow a { to web  from any }\n";
    let cases = r#"
[[case]]
name = "r"
request = { direction = "inbound", port = 80, method = "GET", path = "/r", peer = {} }
expect = { rule = "a", route = "r" }
"#;
    let file = write(&dir, "all.toml", &conformance(policy, cases));
    let run = test(&[&file, "--coverage"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.out,
        format!(
            "coverage {file}: 0 of 1 route, 0 of 1 rule, 0 of 0 egress rules not taken\n\
             1 passed, 0 failed\n"
        )
    );
    let run = test(&[&file, "--coverage", "--format", "json"]);
    let first: Value = serde_json::from_str(run.out.lines().next().unwrap()).unwrap();
    for list in ["routes", "rules", "egress_rules"] {
        assert_eq!(first[list]["untaken"], json!([]), "{list}");
        assert_eq!(first[list]["total"], first[list]["taken"], "{list}");
    }
}

#[test]
fn failures_and_exit_status_unchanged() {
    let dir = tmp("failing");
    let failing = CASES.replace(
        r#"expect = { route = "main" }"#,
        r#"expect = { route = "beta" }"#,
    );
    let file = write(&dir, "x.toml", &conformance(POLICY, &failing));
    // A diagnostics file has no cases and no coverage.
    write(
        &dir,
        "y.toml",
        "policy = \"server a { port 1 }\\nserver b { port 1 }\"\n[[diagnostic]]\ncode = 'port-conflict'\nseverity = 'error'\n",
    );
    let dir_arg = dir.to_string_lossy().into_owned();
    let plain = test(&[&dir_arg]);
    assert_eq!(plain.code, 1);
    assert_eq!(plain.out.lines().last(), Some("5 passed, 1 failed"));
    for format in ["human", "json"] {
        let run = test(&[&dir_arg, "--coverage", "--format", format]);
        assert_eq!(run.code, 1, "{format}");
        assert!(run
            .out
            .starts_with(&plain.out[..plain.out.find('\n').unwrap()]));
        assert_eq!(run.out.lines().last(), Some("5 passed, 1 failed"));
        // The failed case's decision still counts: payments.main taken.
        let coverage: Vec<&str> = run
            .out
            .lines()
            .filter(|l| l.starts_with("coverage ") || l.starts_with('{'))
            .collect();
        assert_eq!(coverage.len(), 1, "{}", run.out);
        assert!(coverage[0].contains(&file), "{}", coverage[0]);
    }
    let run = test(&[&dir_arg, "--coverage"]);
    assert!(run.out.contains("3 of 5 routes"), "{}", run.out);
    // `--format` alone is a usage error.
    assert_eq!(test(&[&dir_arg, "--format", "json"]).code, 2);
}

#[test]
fn files_naming_one_policy_file_share_one_report() {
    let dir = tmp("shared");
    std::fs::create_dir_all(dir.join("policy")).unwrap();
    std::fs::create_dir_all(dir.join("tests/more")).unwrap();
    let policy = "server web {\n  port 80\n  route a { path \"/a\" }\n  route b { path \"/b\" }\n  route c { path \"/c\" }\n}\nallow x { to web.a  from any }\nallow y { to web.b  from any }\n";
    write(&dir.join("policy"), "p.sluice", policy);
    let case = |path: &str| {
        format!(
            "policy-file = '{}'\n[[case]]\nname = '{path}'\nrequest = {{ direction = 'inbound', port = 80, method = 'GET', path = '{path}', peer = {{}} }}\nexpect = {{ route = '{}' }}\n",
            if path == "/a" { "../policy" } else { "../../policy" },
            &path[1..]
        )
    };
    let first = write(&dir.join("tests"), "a.toml", &case("/a"));
    let second = write(&dir.join("tests/more"), "b.toml", &case("/b"));
    // An inline policy keeps a report of its own.
    let inline = write(
        &dir.join("tests/more"),
        "c.toml",
        &conformance(policy, "[[case]]\nname = 'c'\nrequest = { direction = 'inbound', port = 80, method = 'GET', path = '/c', peer = {} }\nexpect = { route = 'c' }\n"),
    );
    let tests = dir.join("tests").to_string_lossy().into_owned();
    let run = test(&[&first, &tests, "--coverage"]);
    assert_eq!(run.code, 0, "{}", run.out);
    assert_eq!(
        run.out,
        format!(
            "coverage {first}, {second}: 1 of 3 routes, 0 of 2 rules, 0 of 0 egress rules not taken:\n  \
             route web.c (line 5)\n\
             coverage {inline}: 2 of 3 routes, 2 of 2 rules, 0 of 0 egress rules not taken:\n  \
             route web.a (line 3)\n  \
             route web.b (line 4)\n  \
             rule x (line 7)\n  \
             rule y (line 8)\n\
             4 passed, 0 failed\n"
        )
    );
    let run = test(&[&tests, "--coverage", "--format", "json"]);
    let lines: Vec<Value> = run
        .out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.out);
    assert_eq!(lines[0]["file"], json!(first));
    assert_eq!(lines[0]["files"], json!([first, second]));
    assert_eq!(lines[0]["routes"]["taken"], json!(2));
    assert_eq!(lines[0]["rules"]["untaken"], json!([]));
    assert_eq!(lines[1]["files"], json!([inline]));
}
