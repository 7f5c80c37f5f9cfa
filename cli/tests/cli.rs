//! Runs the built `sluice` binary end to end.

mod support;

use std::path::{Path, PathBuf};
use support::{run_sluice as sluice, Run};

const POLICY: &str = r#"
server web {
  port 8080
  route metrics { method GET  path "/metrics" }
}
allow scrape { to web.metrics  from network 10.0.0.0/8 }
"#;

const ALLOW: &str = r#"{"direction":"inbound","port":8080,"method":"GET","path":"/metrics?x=1","peer":{"ip":"10.1.2.3"}}"#;
const ALLOW_DECISION: &str = r#"{"decision":"allow","reason":"rule","server":"web","route":"metrics","rule":"scrape","audit":false,"http_status":null,"grpc_status":null,"service":null,"backends":null,"timeout_ms":null}"#;
const DENY: &str = r#"{"direction":"inbound","port":8080,"method":"GET","path":"/metrics","peer":{"ip":"192.168.1.1"}}"#;
const DENY_DECISION: &str = r#"{"decision":"deny","reason":"default","server":"web","route":"metrics","rule":null,"audit":false,"http_status":403,"grpc_status":null,"service":null,"backends":null,"timeout_ms":null}"#;

/// Runs `sluice test ARGS` and asserts its exit code and its last line
/// (`N passed, N failed`).
#[track_caller]
fn sluice_test(args: &[&str], code: i32, summary: &str) -> Run {
    let run = sluice(&[&["test"], args].concat(), "");
    assert_eq!(run.code, code);
    assert_eq!(run.out.lines().last(), Some(summary));
    run
}

/// Asserts that `text` holds `part`, showing `text` when it does not.
#[track_caller]
fn assert_has(text: &str, part: &str) {
    assert!(text.contains(part), "{text}");
}

/// A fresh directory for one test.
fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli-tests")
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

const BAD: &str = "server web { port 80 }\nallow a { to nowhere  from any }\n";

#[test]
fn lint_human_reports_errors_on_stderr() {
    let dir = tmp("lint-human");
    let bad = write(&dir, "bad.sluice", BAD);
    let run = sluice(&["lint", &bad], "");
    assert_eq!(run.code, 1);
    assert!(run.out.is_empty());
    assert_has(&run.err, "unknown-reference");
    assert_has(&run.err, "nowhere");
}

#[test]
fn lint_json_is_an_array_on_stdout() {
    let dir = tmp("lint-json");
    let bad = write(&dir, "bad.sluice", BAD);
    let run = sluice(&["lint", &bad, "--format", "json"], "");
    assert_eq!(run.code, 1);
    let diags: serde_json::Value = serde_json::from_str(&run.out).expect("json array");
    let diags = diags.as_array().unwrap();
    let d = diags
        .iter()
        .find(|d| d["code"] == "unknown-reference")
        .expect("unknown-reference");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 2);
    assert!(d["column"].is_u64() && d["message"].is_string() && d["file"].is_string());

    let good = write(&dir, "good.sluice", POLICY);
    let run = sluice(&["lint", &good, "--format", "json"], "");
    assert_eq!(run.code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&run.out).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn lint_reports_only_syntax_errors_when_a_file_does_not_parse() {
    let dir = tmp("lint-syntax");
    write(
        &dir,
        "a.sluice",
        "server web { port 80 route r { path prefix } }\n",
    );
    // Alone, this file's target would be an unknown reference: spurious.
    write(&dir, "b.sluice", "allow x { to web  from any }\n");
    let run = sluice(&["lint", dir.to_str().unwrap(), "--format", "json"], "");
    assert_eq!(run.code, 1);
    let diags: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    let codes: Vec<_> = diags
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].clone())
        .collect();
    assert_eq!(codes, ["syntax"]);
}

#[test]
fn lint_missing_path_exits_2() {
    let dir = tmp("lint-missing");
    let missing = dir.join("nope.sluice");
    let run = sluice(&["lint", missing.to_str().unwrap()], "");
    assert_eq!(run.code, 2);
    assert_has(&run.err, "nope.sluice");
}

#[test]
fn compile_is_deterministic_and_inspect_shows_the_hash() {
    let dir = tmp("compile");
    let policy = write(&dir, "p.sluice", POLICY);
    let (b1, b2) = (dir.join("1.bundle"), dir.join("2.bundle"));
    let run1 = sluice(&["compile", &policy, "-o", b1.to_str().unwrap()], "");
    assert_eq!(run1.code, 0);
    let run2 = sluice(&["compile", &policy, "--output", b2.to_str().unwrap()], "");
    assert_eq!(run2.code, 0);
    let (bytes1, bytes2) = (std::fs::read(&b1).unwrap(), std::fs::read(&b2).unwrap());
    assert_eq!(bytes1, bytes2, "the same input gives the same bytes");
    assert!(
        run1.out.contains(&format!("{} bytes", bytes1.len())),
        "{}",
        run1.out
    );
    let hash = run1
        .out
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches(')');
    assert_eq!(hash.len(), 16);

    let inspect = sluice(&["inspect", b1.to_str().unwrap()], "");
    assert_eq!(inspect.code, 0);
    assert_has(&inspect.out, &format!("hash {hash}"));
    assert!(
        inspect.out.lines().count() > 2,
        "summary lines: {}",
        inspect.out
    );
}

#[test]
fn compile_errors_write_nothing() {
    let dir = tmp("compile-bad");
    let bad = write(&dir, "bad.sluice", BAD);
    let out = dir.join("bad.bundle");
    let run = sluice(&["compile", &bad, "-o", out.to_str().unwrap()], "");
    assert_eq!(run.code, 1);
    assert_has(&run.err, "unknown-reference");
    assert!(!out.exists());
}

#[test]
fn inspect_rejects_a_bad_bundle() {
    let dir = tmp("inspect-bad");
    let junk = write(
        &dir,
        "junk.bundle",
        "this is not a bundle at all, not even close",
    );
    let run = sluice(&["inspect", &junk], "");
    assert_eq!(run.code, 1);
    assert_has(&run.err, "junk.bundle");
    assert_has(&run.err, "not a valid bundle");
    let run = sluice(&["inspect", dir.join("missing").to_str().unwrap()], "");
    assert_eq!(run.code, 2);
}

#[test]
fn eval_with_request_flag() {
    let dir = tmp("eval-request");
    let policy = write(&dir, "p.sluice", POLICY);
    let run = sluice(&["eval", "--policy", &policy, "--request", ALLOW], "");
    assert_eq!(run.code, 0);
    assert_eq!(run.out, format!("{ALLOW_DECISION}\n"));

    let bundle = dir.join("p.bundle");
    assert_eq!(
        sluice(&["compile", &policy, "-o", bundle.to_str().unwrap()], "").code,
        0
    );
    let run = sluice(
        &[
            "eval",
            "--bundle",
            bundle.to_str().unwrap(),
            "--request",
            DENY,
            "--request",
            ALLOW,
        ],
        "",
    );
    assert_eq!(run.code, 0);
    assert_eq!(run.out, format!("{DENY_DECISION}\n{ALLOW_DECISION}\n"));
}

#[test]
fn eval_with_stdin_lines() {
    let dir = tmp("eval-stdin");
    let policy = write(&dir, "p.sluice", POLICY);
    let tcp = r#"{"direction":"inbound","port":8080}"#;
    let input = format!("{ALLOW}\n\n   \n{{not json\n{DENY}\n{tcp}\n");
    let run = sluice(&["eval", "--policy", &policy], &input);
    assert_eq!(run.code, 1, "a bad line makes the exit status 1");
    let lines: Vec<&str> = run.out.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.out);
    assert_eq!(lines[0], ALLOW_DECISION);
    let error: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("stdin line 4: "),
        "{error}"
    );
    assert_eq!(lines[2], DENY_DECISION);
    let error: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(
        message.starts_with("stdin line 6: ") && message.contains("web"),
        "{message}"
    );
}

#[test]
fn eval_replays_decision_log_lines() {
    let dir = tmp("eval-replay");
    let policy = write(&dir, "p.sluice", POLICY);
    // Two lines as the proxy's decision log writes them: the first was
    // allowed under the old bundle and would now be denied.
    let log = format!(
        "{{\"time_ms\":1,\"bundle\":\"00000000000000aa\",\"request\":{DENY},\"decision\":{ALLOW_DECISION}}}\n\
         {{\"time_ms\":2,\"bundle\":\"00000000000000aa\",\"request\":{ALLOW},\"decision\":{ALLOW_DECISION}}}\n"
    );
    let run = sluice(&["eval", "--policy", &policy], &log);
    assert_eq!(run.code, 0);
    let lines: Vec<serde_json::Value> = run
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.out);
    assert_eq!(lines[0]["decision"], "deny");
    assert_eq!(lines[0]["changed"], true);
    assert_eq!(lines[0]["recorded"]["decision"], "allow");
    assert_eq!(lines[0]["recorded_bundle"], "00000000000000aa");
    assert_eq!(lines[1]["decision"], "allow");
    assert_eq!(lines[1]["changed"], false);
}

#[test]
fn eval_explain_traces_on_stderr() {
    let dir = tmp("eval-explain");
    let policy = write(&dir, "p.sluice", POLICY);
    let run = sluice(
        &["eval", "--policy", &policy, "--explain", "--request", DENY],
        "",
    );
    assert_eq!(run.code, 0);
    assert_eq!(run.out, format!("{DENY_DECISION}\n"));
    assert_has(&run.err, "server `web`");
    assert_has(
        &run.err,
        "route `metrics` (candidate 1 by precedence, its path matches): taken",
    );
    assert_has(
        &run.err,
        "allow rule `scrape` applies; the peer does not match it",
    );
    assert_has(&run.err, "decision: deny (reason default)");
}

#[test]
fn eval_policy_with_errors_exits_1() {
    let dir = tmp("eval-bad");
    let bad = write(&dir, "bad.sluice", BAD);
    let run = sluice(&["eval", "--policy", &bad, "--request", ALLOW], "");
    assert_eq!(run.code, 1);
    assert!(run.out.is_empty());
    assert_has(&run.err, "could not compile");
}

fn conformance_file(policy: &str, expect: &str) -> String {
    format!(
        "policy = '''{policy}'''\n\n[[case]]\nname = \"scrape\"\nrequest = {{ direction = \"inbound\", port = 8080, method = \"GET\", path = \"/metrics\", peer = {{ ip = \"10.1.2.3\" }} }}\nexpect = {expect}\n"
    )
}

#[test]
fn test_passing_and_failing_files() {
    let dir = tmp("test");
    let pass = write(
        &dir,
        "pass.toml",
        &conformance_file(
            POLICY,
            r#"{ decision = "allow", rule = "scrape", http_status = "" }"#,
        ),
    );
    sluice_test(&[&pass], 0, "1 passed, 0 failed");

    let fail = write(
        &dir,
        "fail.toml",
        &conformance_file(POLICY, r#"{ decision = "deny" }"#),
    );
    let run = sluice_test(&[&fail], 1, "0 passed, 1 failed");
    let line = run.out.lines().next().unwrap();
    assert!(
        line.contains("fail.toml") && line.contains("scrape") && line.contains("`decision`"),
        "{line}"
    );
    assert!(
        line.contains("\"deny\"") && line.contains("\"allow\""),
        "{line}"
    );

    // A directory runs every file in it.
    sluice_test(&[dir.to_str().unwrap()], 1, "1 passed, 1 failed");
}

#[test]
fn test_diagnostic_expectations() {
    let dir = tmp("test-diagnostics");
    let text = format!(
        "policy = '''{BAD}'''\n[[diagnostic]]\ncode = \"unknown-reference\"\nseverity = \"error\"\nline = 2\n"
    );
    let file = write(&dir, "lint.toml", &text);
    sluice_test(&[&file], 0, "1 passed, 0 failed");

    let text = format!(
        "policy = '''{BAD}'''\n[[diagnostic]]\ncode = \"port-conflict\"\nseverity = \"error\"\n"
    );
    let file = write(&dir, "wrong.toml", &text);
    let run = sluice_test(&[&file], 1, "0 passed, 2 failed");
    assert_has(&run.out, "missing diagnostic error[port-conflict]");
    assert_has(&run.out, "unexpected diagnostic");
}

#[test]
fn test_without_conformance_files_fails() {
    let dir = tmp("test-empty");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    write(&dir, "notes.md", "not a conformance file\n");
    let run = sluice_test(&[empty.to_str().unwrap()], 1, "0 passed, 1 failed");
    assert_has(&run.out, "no conformance files");
    assert_has(&run.out, "empty");

    // A folder of other files (`notes.md`, `empty/`) is no better, even
    // next to a file that passes.
    let good = tmp("test-empty-good");
    let pass = write(
        &good,
        "pass.toml",
        &conformance_file(POLICY, r#"{ decision = "allow" }"#),
    );
    let run = sluice_test(&[&pass, dir.to_str().unwrap()], 1, "1 passed, 1 failed");
    assert_has(&run.out, "no conformance files");
}

#[test]
fn test_with_an_empty_expect_table_fails() {
    let dir = tmp("test-empty-expect");
    let file = write(&dir, "empty.toml", &conformance_file(POLICY, "{}"));
    let run = sluice_test(&[&file], 1, "0 passed, 1 failed");
    assert_has(&run.out, "scrape");
    assert_has(&run.out, "`expect` table is empty");
}

#[test]
fn test_a_file_without_cases_or_diagnostics_fails() {
    let dir = tmp("test-no-cases");
    for (name, text) in [
        ("policy-only.toml", format!("policy = '''{POLICY}'''\n")),
        (
            "empty-case-list.toml",
            format!("policy = '''{POLICY}'''\ncase = []\n"),
        ),
        ("empty.toml", String::new()),
    ] {
        let file = write(&dir, name, &text);
        let run = sluice(&["test", &file], "");
        assert_eq!(run.code, 1, "{name}");
        assert!(
            run.out.contains("no `[[case]]` or `[[diagnostic]]` tables")
                || run.out.contains("no `policy`"),
            "{name}: {}",
            run.out
        );
        assert_eq!(run.out.lines().last(), Some("0 passed, 1 failed"), "{name}");
    }
}
