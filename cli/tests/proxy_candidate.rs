//! A candidate bundle in a running proxy (`[policy] candidate`): the
//! candidate differs from the live policy on one route; requests on every
//! route are enforced by the live policy, and exactly the requests the
//! candidate decides differently are counted and logged with both
//! decisions, as `sluice eval` under each policy decides them and as
//! `sluice diff` of the two policies predicts.

mod support;

use serde_json::Value;
use sluice_cli::cmd::proxy::{policy_loader, source_compiler};
use sluice_proxy::{Config, Proxy};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LIVE: &str = r#"
server web {
  port 8080
  protocol http
  route api { path prefix "/api" }
  route admin { path prefix "/admin" }
}
allow frontend { to web.api  from network 127.0.0.0/8 }
allow ops { to web.admin  from network 127.0.0.0/8 }
"#;

/// The live policy without the rule `ops`.
const CANDIDATE: &str = r#"
server web {
  port 8080
  protocol http
  route api { path prefix "/api" }
  route admin { path prefix "/admin" }
}
allow frontend { to web.api  from network 127.0.0.0/8 }
"#;

/// The requests sent, in order.
const PATHS: [&str; 7] = [
    "/api/a",
    "/admin/users",
    "/api/b",
    "/other",
    "/admin/keys",
    "/api/c",
    "/admin/users",
];

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An application that answers every request `200 ok` and closes.
fn app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    addr
}

/// Sends one HTTP/1.1 request on a new connection; status and body.
fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: web\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn compile(source: &Path, bundle: &Path) {
    let run = support::run_sluice(
        &[
            "compile",
            source.to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.err);
}

/// `sluice eval --policy POLICY` of each request; one decision each.
fn eval(policy: &Path, requests: &[Value]) -> Vec<Value> {
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    let run = support::run_sluice(&["eval", "--policy", policy.to_str().unwrap()], &input);
    assert_eq!(run.code, 0, "{}", run.err);
    let decisions: Vec<Value> = run
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(decisions.len(), requests.len(), "{}", run.out);
    decisions
}

/// The value of the metric line that starts with `series`, if present.
fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Starts the proxy from `toml` (paths relative to `dir`) on a runtime of
/// its own, which the caller keeps alive.
fn start(dir: &Dir, toml: &str) -> (tokio::runtime::Runtime, Proxy) {
    let config = Config::parse(toml, &dir.0).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let loader = policy_loader(&config);
    let proxy = runtime
        .block_on(Proxy::start_with_compiler(
            config,
            loader,
            source_compiler(),
        ))
        .unwrap();
    (runtime, proxy)
}

fn config(app: SocketAddr, policy: &str) -> String {
    format!(
        "[policy]\n{policy}\nwatch = false\n[admin]\nlisten = \"127.0.0.1:0\"\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 8080\napp = \"{app}\"\ntls = \"plaintext\"\n[log]\ndecision-log = \"decisions.jsonl\"\n"
    )
}

/// The decision log's lines, once it has `n` of them.
fn log_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn disagreements_are_counted_and_logged_as_eval_decides_them() {
    let dir = Dir::new("proxy-candidate");
    std::fs::write(dir.path("live.sluice"), LIVE).unwrap();
    std::fs::write(dir.path("candidate.sluice"), CANDIDATE).unwrap();
    // The live policy as a bundle, the candidate as source: the proxy
    // compiles the candidate.
    compile(&dir.path("live.sluice"), &dir.path("live.bundle"));
    compile(&dir.path("candidate.sluice"), &dir.path("candidate.bundle"));
    let hash = |name: &str| {
        sluice_proxy::store::LoadedBundle::load(&std::fs::read(dir.path(name)).unwrap(), 0)
            .unwrap()
            .hash()
            .to_owned()
    };
    let (live_hash, candidate_hash) = (hash("live.bundle"), hash("candidate.bundle"));
    let app = app();
    let toml = config(
        app,
        "bundle = \"live.bundle\"\ncandidate = \"candidate.sluice\"",
    );
    let (runtime, proxy) = start(&dir, &toml);
    let (addr, admin) = (proxy.inbound_addrs()[0], proxy.admin_addr());

    let (status, body) = request(admin, "GET", "/policy");
    assert_eq!(status, 200, "{body}");
    let policy: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(policy["hash"], live_hash.as_str(), "{policy}");
    let candidate = &policy["candidate"];
    assert_eq!(candidate["hash"], candidate_hash.as_str(), "{policy}");
    assert_eq!(
        candidate["source"],
        dir.path("candidate.sluice").display().to_string()
    );
    assert!(candidate["error"].is_null(), "{policy}");

    // Enforcement follows the live policy: `/admin` is allowed.
    let statuses: Vec<u16> = PATHS.iter().map(|p| request(addr, "GET", p).0).collect();
    let log = log_lines(&dir.path("decisions.jsonl"), PATHS.len());
    assert_eq!(log.len(), PATHS.len(), "{log:?}");

    // What `sluice eval` says each policy decides for the requests logged.
    let requests: Vec<Value> = log.iter().map(|l| l["request"].clone()).collect();
    let live = eval(&dir.path("live.sluice"), &requests);
    let cand = eval(&dir.path("candidate.sluice"), &requests);
    let mut expected_counts = std::collections::BTreeMap::new();
    for (i, line) in log.iter().enumerate() {
        assert_eq!(line["request"]["path"], PATHS[i], "lines in request order");
        assert_eq!(line["bundle"], live_hash.as_str());
        assert_eq!(line["decision"], live[i], "{line}");
        let allowed = live[i]["decision"] == "allow";
        assert_eq!(statuses[i] == 200, allowed, "{}: {}", PATHS[i], statuses[i]);
        if live[i] == cand[i] {
            assert!(
                line.get("candidate").is_none(),
                "an agreement logged: {line}"
            );
            assert!(line.get("candidate_bundle").is_none(), "{line}");
        } else {
            assert_eq!(line["candidate"], cand[i], "{line}");
            assert_eq!(line["candidate_bundle"], candidate_hash.as_str());
            let label = |d: &Value| {
                let outcome = d["decision"].as_str().unwrap();
                let reason = d["reason"].as_str().unwrap();
                match d["rule"].as_str() {
                    Some(rule) if reason == "rule" => format!("{outcome}:{reason}:{rule}"),
                    _ => format!("{outcome}:{reason}"),
                }
            };
            let key = format!(
                "sluice_candidate_disagreements_total{{server=\"{}\",route=\"{}\",live=\"{}\",candidate=\"{}\"}}",
                live[i]["server"].as_str().unwrap_or(""),
                live[i]["route"].as_str().unwrap_or(""),
                label(&live[i]),
                label(&cand[i]),
            );
            *expected_counts.entry(key).or_insert(0u64) += 1;
        }
    }
    // The policies differ on `/admin` only: three of the seven requests.
    let admin_requests = PATHS.iter().filter(|p| p.starts_with("/admin")).count();

    // `sluice diff` predicts the same: each logged (live, candidate) pair
    // of a disagreement is one of its entries, and each request whose pair
    // of decisions is among its entries was logged as a disagreement.
    let entries =
        sluice_cli::diff::diff_paths(&dir.path("live.bundle"), &dir.path("candidate.sluice"))
            .unwrap_or_else(|e| panic!("sluice diff: {e:?}"));
    assert!(!entries.is_empty());
    let predicted: Vec<(&Value, &Value)> = entries.iter().map(|e| (&e.old, &e.new)).collect();
    for line in &log {
        let pair = (
            &line["decision"],
            line.get("candidate").unwrap_or(&line["decision"]),
        );
        assert_eq!(
            predicted.contains(&pair),
            line.get("candidate").is_some(),
            "{line} against diff's {predicted:?}"
        );
    }
    assert_eq!(expected_counts.values().sum::<u64>(), admin_requests as u64);
    assert_eq!(
        expected_counts.keys().collect::<Vec<_>>(),
        ["sluice_candidate_disagreements_total{server=\"web\",route=\"admin\",live=\"allow:rule:ops\",candidate=\"deny:default\"}"]
    );

    let (_, metrics) = request(admin, "GET", "/metrics");
    assert_eq!(
        metric(&metrics, "sluice_candidate_decisions_total"),
        Some(PATHS.len() as u64),
        "{metrics}"
    );
    for (series, n) in &expected_counts {
        assert_eq!(metric(&metrics, series), Some(*n), "{series} in\n{metrics}");
    }
    let counted = metrics
        .lines()
        .filter(|l| l.starts_with("sluice_candidate_disagreements_total{"))
        .count();
    assert_eq!(counted, expected_counts.len(), "{metrics}");

    // The candidate reloads with the policy: now equal to it, it agrees.
    std::fs::write(dir.path("candidate.sluice"), LIVE).unwrap();
    let (status, body) = request(admin, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    let reloaded: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reloaded["candidate"]["hash"], live_hash.as_str(), "{body}");
    assert_eq!(request(addr, "GET", "/admin/users").0, 200);
    let log = log_lines(&dir.path("decisions.jsonl"), PATHS.len() + 1);
    assert!(
        log[PATHS.len()].get("candidate").is_none(),
        "{:?}",
        log.last()
    );
    let (_, metrics) = request(admin, "GET", "/metrics");
    assert_eq!(
        metric(&metrics, "sluice_candidate_decisions_total"),
        Some(PATHS.len() as u64 + 1)
    );
    runtime.block_on(proxy.shutdown());
}

#[test]
fn a_candidate_that_does_not_load_leaves_the_proxy_serving() {
    let dir = Dir::new("proxy-candidate-broken");
    std::fs::write(dir.path("live.sluice"), LIVE).unwrap();
    std::fs::write(
        dir.path("candidate.sluice"),
        "allow a { to nowhere  from any }\n",
    )
    .unwrap();
    let app = app();
    let toml = config(
        app,
        "source = \"live.sluice\"\ncandidate = \"candidate.sluice\"",
    );
    let (runtime, proxy) = start(&dir, &toml);
    let (addr, admin) = (proxy.inbound_addrs()[0], proxy.admin_addr());
    assert_eq!(request(admin, "GET", "/ready").0, 200);
    let (status, body) = request(admin, "GET", "/policy");
    assert_eq!(status, 200, "{body}");
    let policy: Value = serde_json::from_str(&body).unwrap();
    assert!(policy["candidate"]["hash"].is_null(), "{policy}");
    let error = policy["candidate"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("no server `nowhere`"), "{policy}");
    assert_eq!(request(addr, "GET", "/admin/users").0, 200);
    let (_, metrics) = request(admin, "GET", "/metrics");
    assert_eq!(
        metric(&metrics, "sluice_candidate_reloads_total{result=\"error\"}"),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "sluice_candidate_decisions_total"),
        Some(0),
        "{metrics}"
    );
    let log = log_lines(&dir.path("decisions.jsonl"), 1);
    assert_eq!(log.len(), 1);
    assert!(log[0].get("candidate").is_none(), "{:?}", log[0]);
    runtime.block_on(proxy.shutdown());
}

#[test]
fn outbound_disagreements_are_counted_and_logged() {
    let dir = Dir::new("proxy-candidate-outbound");
    std::fs::write(dir.path("live.sluice"), "egress { default allow }\n").unwrap();
    std::fs::write(dir.path("candidate.sluice"), "egress { default deny }\n").unwrap();
    // The live policy as source, the candidate as a bundle: read as is.
    compile(&dir.path("candidate.sluice"), &dir.path("candidate.bundle"));
    let app = app();
    let toml = "[policy]\nsource = \"live.sluice\"\ncandidate = \"candidate.bundle\"\nwatch = false\n[admin]\nlisten = \"127.0.0.1:0\"\n[[outbound]]\nlisten = \"127.0.0.1:0\"\n[log]\ndecision-log = \"decisions.jsonl\"\n";
    let (runtime, proxy) = start(&dir, toml);
    let (out, admin) = (proxy.outbound_addrs()[0], proxy.admin_addr());
    // Enforced by the live policy: allowed.
    let (status, body) = request(out, "GET", &format!("http://{app}/x"));
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (_, metrics) = request(admin, "GET", "/metrics");
    assert_eq!(
        metric(&metrics, "sluice_candidate_decisions_total"),
        Some(1),
        "{metrics}"
    );
    let series = "sluice_candidate_disagreements_total{server=\"\",route=\"\",live=\"allow:default\",candidate=\"deny:default\"}";
    assert_eq!(metric(&metrics, series), Some(1), "{metrics}");
    // The one line: the outbound request with both decisions, as
    // `sluice eval` and `sluice diff` have them.
    let log = log_lines(&dir.path("decisions.jsonl"), 1);
    assert_eq!(log.len(), 1, "{log:?}");
    let line = &log[0];
    assert_eq!(line["request"]["direction"], "outbound", "{line}");
    assert_eq!(line["request"]["authority"], app.to_string());
    assert_eq!(line["request"]["path"], "/x");
    let request = line["request"].clone();
    assert_eq!(
        line["decision"],
        eval(&dir.path("live.sluice"), std::slice::from_ref(&request))[0]
    );
    assert_eq!(
        line["candidate"],
        eval(&dir.path("candidate.sluice"), &[request])[0]
    );
    let entries =
        sluice_cli::diff::diff_paths(&dir.path("live.sluice"), &dir.path("candidate.bundle"))
            .unwrap_or_else(|e| panic!("sluice diff: {e:?}"));
    assert!(
        entries
            .iter()
            .any(|e| e.old == line["decision"] && e.new == line["candidate"]),
        "{line} against {:?}",
        entries.iter().map(|e| (&e.old, &e.new)).collect::<Vec<_>>()
    );
    runtime.block_on(proxy.shutdown());
}
