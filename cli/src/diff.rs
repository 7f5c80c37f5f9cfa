//! The exact decision diff of two policies or bundles (`sluice diff`, spec
//! section 9): the compiler enumerates witness requests that cover every
//! request for both bundles at once (`sluice_compiler::diff`), and each is
//! decided here with both bundles, as `eval` decides it. See docs/diff.md.

use crate::decide::Decider;
use crate::json::{self, DecisionJsonExt};
use crate::policy;
use serde_json::{json, Map, Value};
use sluice_compiler::diff::{witness_requests, EnumerateError, HttpPart, WitnessRequest};
use sluice_compiler::Config;
use sluice_lang::render;
use sluice_runtime::bundle::encode::Contents;
use sluice_runtime::bundle::MAGIC;
use sluice_runtime::{AlignedBytes, Bundle, NoTrace};
use std::collections::BTreeMap;
use std::path::Path;

/// One pair of decisions that differ, with a request that gets them.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The decision of OLD, as `eval` prints it.
    pub old: Value,
    /// The decision of NEW, as `eval` prints it.
    pub new: Value,
    /// The witness: a request of spec section 10 that `eval` accepts.
    pub request: Value,
}

/// Why a diff could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffError {
    /// A file or folder could not be read.
    Read(ReadError),
    /// A policy does not compile.
    Compile(CompileError),
    /// A bundle does not load.
    BadBundle(BadBundleError),
    /// A budget was exceeded: no exact answer within it.
    TooLarge(TooLargeError),
    /// A witness request did not read back as a request (a bug of the diff).
    Witness(WitnessError),
}

/// A witness that `eval` would not accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessError {
    /// The witness JSON.
    pub request: String,
    /// Why it was refused.
    pub message: String,
}

/// A path that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    /// The path.
    pub path: String,
    /// Why.
    pub message: String,
}

/// A policy that does not compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    /// The policy's path.
    pub path: String,
    /// The diagnostics, rendered as `lint` prints them.
    pub diagnostics: String,
}

/// A bundle that does not load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadBundleError {
    /// Which input (`OLD`/`NEW` path, or `old`/`new` bytes).
    pub what: String,
    /// Why.
    pub message: String,
}

/// A budget of the exact diff was exceeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooLargeError {
    /// Which budget.
    pub message: String,
}

impl std::fmt::Display for DiffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiffError::Read(e) => write!(f, "cannot read `{}`: {}", e.path, e.message),
            DiffError::Compile(e) => write!(
                f,
                "`{}` does not compile:\n{}",
                e.path,
                e.diagnostics.trim_end()
            ),
            DiffError::BadBundle(e) => write!(f, "{} is not a valid bundle: {}", e.what, e.message),
            DiffError::TooLarge(e) => write!(
                f,
                "the policies are too large to diff exactly: {}",
                e.message
            ),
            DiffError::Witness(e) => write!(
                f,
                "internal error: the witness `{}` is not a valid request: {}",
                e.request, e.message
            ),
        }
    }
}

impl std::error::Error for DiffError {}

fn bad(what: &str, message: impl ToString) -> DiffError {
    DiffError::BadBundle(BadBundleError {
        what: what.to_string(),
        message: message.to_string(),
    })
}

/// Reads a policy (file or folder, compiled with the default config) or a
/// bundle file (one that starts with the bundle magic) as bundle bytes.
pub fn bundle_bytes(path: &Path) -> Result<Vec<u8>, DiffError> {
    let read_err = |message: String| {
        DiffError::Read(ReadError {
            path: path.display().to_string(),
            message,
        })
    };
    if path.is_file() {
        let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
        if bytes.starts_with(&MAGIC) {
            return Ok(bytes);
        }
    }
    let parsed = policy::load(path).map_err(read_err)?;
    match policy::compile(&parsed, &Config::new()) {
        Ok(c) => Ok(c.bundle),
        Err(diags) => Err(DiffError::Compile(CompileError {
            path: path.display().to_string(),
            diagnostics: render::human(parsed.files(), &diags),
        })),
    }
}

/// The diff of two policies or bundles given by path.
pub fn diff_paths(old: &Path, new: &Path) -> Result<Vec<Entry>, DiffError> {
    let o = bundle_bytes(old)?;
    let n = bundle_bytes(new)?;
    diff_named(
        &o,
        &n,
        [
            &format!("`{}`", old.display()),
            &format!("`{}`", new.display()),
        ],
    )
}

/// The diff of two bundles (bytes as `sluice compile` writes them):
/// one entry per distinct pair of differing decisions, in a deterministic
/// order (by group, then by the order witnesses were found).
pub fn diff_bundles(old: &[u8], new: &[u8]) -> Result<Vec<Entry>, DiffError> {
    diff_named(old, new, ["the old bundle", "the new bundle"])
}

fn diff_named(old: &[u8], new: &[u8], names: [&str; 2]) -> Result<Vec<Entry>, DiffError> {
    let aligned = [AlignedBytes::new(old), AlignedBytes::new(new)];
    let mut bundles = Vec::new();
    let mut contents = Vec::new();
    for (a, name) in aligned.iter().zip(names) {
        bundles
            .push(Bundle::from_bytes(a.as_bytes()).map_err(|e| bad(name, policy::load_error(&e)))?);
        contents
            .push(Contents::decode(a.as_bytes()).map_err(|e| bad(name, policy::load_error(&e)))?);
    }
    let witnesses = witness_requests(&contents[0], &contents[1]).map_err(|e| match e {
        EnumerateError::TooLarge(t) => DiffError::TooLarge(TooLargeError {
            message: t.to_string(),
        }),
        EnumerateError::Automaton(m) => bad("a bundle", m),
    })?;
    let mut deciders = [Decider::new(&bundles[0]), Decider::new(&bundles[1])];
    let mut seen = std::collections::HashSet::new();
    let mut entries = Vec::new();
    for w in &witnesses {
        let request = request_json(w);
        let parsed = json::request_from_value(&request).map_err(|message| {
            DiffError::Witness(WitnessError {
                request: request.to_string(),
                message,
            })
        })?;
        let (Ok(o), Ok(n)) = (
            deciders[0].decide(&parsed, &mut NoTrace),
            deciders[1].decide(&parsed, &mut NoTrace),
        ) else {
            continue;
        };
        let (o, n) = (o.to_value(), n.to_value());
        if o == n {
            continue;
        }
        let key = (o.to_string(), n.to_string());
        if seen.insert(key) {
            entries.push(Entry {
                old: o,
                new: n,
                request,
            });
        }
    }
    // Stable: within a group, the order the witnesses came in.
    entries.sort_by_cached_key(group);
    Ok(entries)
}

fn http_fields(m: &mut Map<String, Value>, h: &HttpPart) {
    m.insert("method".into(), json!(h.method));
    m.insert("path".into(), json!(h.path));
    let headers: Map<String, Value> = h
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    m.insert("headers".into(), Value::Object(headers));
}

/// A witness as the request JSON of spec section 10.
pub fn request_json(w: &WitnessRequest) -> Value {
    let mut m = Map::new();
    match w {
        WitnessRequest::Inbound {
            port,
            http,
            ip,
            identity,
        } => {
            m.insert("direction".into(), json!("inbound"));
            m.insert("port".into(), json!(port));
            if let Some(h) = http {
                http_fields(&mut m, h);
            }
            let mut peer = Map::new();
            if let Some(ip) = ip {
                peer.insert("ip".into(), json!(ip.to_string()));
            }
            if let Some(id) = identity {
                peer.insert("identity".into(), json!(id));
            }
            m.insert("peer".into(), Value::Object(peer));
        }
        WitnessRequest::Outbound {
            authority,
            http,
            ip,
            port,
        } => {
            m.insert("direction".into(), json!("outbound"));
            if let Some(a) = authority {
                m.insert("authority".into(), json!(a));
            }
            if let Some(h) = http {
                http_fields(&mut m, h);
            }
            if let Some(ip) = ip {
                m.insert("ip".into(), json!(ip.to_string()));
            }
            if let Some(p) = port {
                m.insert("port".into(), json!(p));
            }
        }
    }
    Value::Object(m)
}

fn str_of<'v>(v: &'v Value, field: &str) -> Option<&'v str> {
    v.get(field).and_then(Value::as_str)
}

/// The group of an entry: `server.route`, `server` or `port N` inbound;
/// `service.route`, `service` or `egress` outbound.
pub fn group(e: &Entry) -> String {
    let either = |f: &str| str_of(&e.old, f).or_else(|| str_of(&e.new, f));
    if str_of(&e.request, "direction") == Some("inbound") {
        let Some(server) = either("server") else {
            let port = e.request.get("port").and_then(Value::as_u64).unwrap_or(0);
            return format!("port {port}");
        };
        match either("route") {
            Some(r) => format!("{server}.{r}"),
            None => server.to_string(),
        }
    } else {
        match (either("service"), either("route")) {
            (Some(s), Some(r)) => format!("{s}.{r}"),
            (Some(s), None) => s.to_string(),
            _ => "egress".to_string(),
        }
    }
}

/// A decision in a few words: `allow (rule frontend)`, `deny (default)`,
/// `allow (service payments, backends east 90, canary 10)`.
pub fn describe(d: &Value) -> String {
    let verdict = str_of(d, "decision").unwrap_or("?");
    let reason = str_of(d, "reason").unwrap_or("?");
    let mut why = match (reason, str_of(d, "rule"), str_of(d, "service")) {
        ("rule", Some(rule), _) => format!("rule {rule}"),
        ("service", _, Some(s)) => {
            let route = str_of(d, "route")
                .map(|r| format!(" route {r}"))
                .unwrap_or_default();
            let backends: Vec<String> = d
                .get("backends")
                .and_then(Value::as_array)
                .map(|bs| {
                    bs.iter()
                        .map(|b| {
                            format!(
                                "{} {}",
                                str_of(b, "name").unwrap_or("?"),
                                b.get("weight").and_then(Value::as_u64).unwrap_or(0)
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut s = format!("service {s}{route}, backends {}", backends.join(", "));
            if let Some(t) = d.get("timeout_ms").and_then(Value::as_u64) {
                s.push_str(&format!(", timeout {t} ms"));
            }
            s
        }
        _ => reason.to_string(),
    };
    if d.get("audit").and_then(Value::as_bool) == Some(true) {
        why.push_str(", audit");
    }
    if let Some(g) = d.get("grpc_status").and_then(Value::as_u64) {
        why.push_str(&format!(", grpc {g}"));
    } else if let Some(h) = d.get("http_status").and_then(Value::as_u64) {
        why.push_str(&format!(", {h}"));
    }
    format!("{verdict} ({why})")
}

/// A request in a few words: `GET /api/x from spiffe://...`,
/// `connection from 10.0.0.1`, `CONNECT github.com:443`, `tcp 10.0.0.5:5432`.
pub fn describe_request(r: &Value) -> String {
    let mut s = String::new();
    if let Some(a) = str_of(r, "authority") {
        match (str_of(r, "method"), str_of(r, "path")) {
            (Some(m), Some(p)) => s.push_str(&format!("{m} {a}{p}")),
            _ => s.push_str(&format!("CONNECT {a}")),
        }
    } else if str_of(r, "direction") == Some("outbound") {
        let ip = str_of(r, "ip").unwrap_or("?");
        let port = r.get("port").and_then(Value::as_u64).unwrap_or(0);
        s.push_str(&format!("tcp {ip} port {port}"));
    } else {
        match (str_of(r, "method"), str_of(r, "path")) {
            (Some(m), Some(p)) => s.push_str(&format!("{m} {p}")),
            _ => s.push_str("connection"),
        }
        if let Some(port) = r.get("port").and_then(Value::as_u64) {
            s.push_str(&format!(" on port {port}"));
        }
    }
    if let Some(Value::Object(h)) = r.get("headers") {
        for (k, v) in h {
            s.push_str(&format!(" {k}: {}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(peer) = r.get("peer") {
        let from: Vec<&str> = ["identity", "ip"]
            .iter()
            .filter_map(|f| str_of(peer, f))
            .collect();
        if from.is_empty() {
            s.push_str(" from an unauthenticated peer without ip");
        } else {
            s.push_str(&format!(" from {}", from.join(" at ")));
        }
    } else if let (Some(ip), Some(_)) = (str_of(r, "ip"), str_of(r, "authority")) {
        s.push_str(&format!(" to {ip}"));
    }
    s
}

/// The human summary line of an entry.
pub fn human_line(e: &Entry) -> String {
    format!(
        "{}: {} -> {}, e.g. {}",
        group(e),
        describe(&e.old),
        describe(&e.new),
        describe_request(&e.request)
    )
}

/// The JSON line of an entry: `{"old": …, "new": …, "request": …}`.
pub fn json_line(e: &Entry) -> String {
    let mut m = BTreeMap::new();
    m.insert("old", &e.old);
    m.insert("new", &e.new);
    m.insert("request", &e.request);
    serde_json::to_string(&m).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(src: &str) -> Vec<u8> {
        let parsed = policy::parse_str("t.sluice", src);
        policy::compile(&parsed, &Config::new()).unwrap().bundle
    }

    #[test]
    fn a_removed_rule_gives_allow_to_deny_with_a_witness() {
        let old = bundle(
            r#"server web { port 8080  route api { path prefix "/api" } }
allow frontend { to web.api  from identity "spiffe://prod.example.com/ns/shop/sa/web" }"#,
        );
        let new = bundle(r#"server web { port 8080  route api { path prefix "/api" } }"#);
        let entries = diff_bundles(&old, &new).unwrap();
        // Plain HTTP and gRPC requests are denied with different statuses.
        let lines: Vec<String> = entries.iter().map(human_line).collect();
        assert_eq!(
            lines,
            vec![
                "web.api: allow (rule frontend) -> deny (default, 403), e.g. GET /api on port 8080 \
                 from spiffe://prod.example.com/ns/shop/sa/web",
                "web.api: allow (rule frontend) -> deny (default, grpc 7), e.g. GET /api on port 8080 \
                 content-type: application/grpc from spiffe://prod.example.com/ns/shop/sa/web",
            ]
        );
        assert!(diff_bundles(&old, &old).unwrap().is_empty());
    }
}
