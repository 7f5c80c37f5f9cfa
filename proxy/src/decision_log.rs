//! The decision log: every decision as a JSON line, replayable with
//! `sluice eval --bundle NEW`.
//!
//! A line is `{"time_ms":…,"bundle":HASH,"request":REQUEST,"decision":DECISION}`
//! where REQUEST and DECISION have the shapes of `sluice eval` (spec
//! section 10). Values of `authorization`, `proxy-authorization` and
//! `cookie` headers are replaced by `<redacted>`.

use serde_json::{json, Map, Value};
use sluice_runtime::Decision;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

const REDACTED: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// An append-only JSON lines file.
pub struct DecisionLog {
    file: Mutex<std::io::LineWriter<std::fs::File>>,
}

/// What the log needs of an inbound request.
pub struct LoggedRequest<'r> {
    /// The policy's server port.
    pub port: u16,
    /// Method and raw target, for HTTP.
    pub http: Option<(&'r str, &'r [u8], &'r http::HeaderMap)>,
    /// The peer's address.
    pub ip: Option<IpAddr>,
    /// The peer's verified identity.
    pub identity: Option<&'r str>,
}

impl DecisionLog {
    /// Opens `path` for appending, creating it.
    pub fn open(path: &Path) -> std::io::Result<DecisionLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(DecisionLog {
            file: Mutex::new(std::io::LineWriter::new(file)),
        })
    }

    /// Appends one decision.
    pub fn write(&self, bundle_hash: &str, request: &LoggedRequest<'_>, decision: &Decision<'_>) {
        let line = record(bundle_hash, request, decision).to_string();
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writeln!(file, "{line}") {
            tracing::warn!(error = %e, "cannot write the decision log");
        }
    }
}

/// The JSON record of one decision.
pub fn record(bundle_hash: &str, request: &LoggedRequest<'_>, decision: &Decision<'_>) -> Value {
    let time_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "time_ms": time_ms,
        "bundle": bundle_hash,
        "request": request_json(request),
        "decision": decision_json(decision),
    })
}

/// An inbound request in `sluice eval`'s request format.
pub fn request_json(r: &LoggedRequest<'_>) -> Value {
    let mut o = Map::new();
    o.insert("direction".into(), "inbound".into());
    o.insert("port".into(), r.port.into());
    if let Some((method, target, headers)) = r.http {
        o.insert("method".into(), method.into());
        o.insert(
            "path".into(),
            String::from_utf8_lossy(target).into_owned().into(),
        );
        let pairs: Vec<Value> = headers
            .iter()
            .map(|(name, value)| {
                let value = if REDACTED.contains(&name.as_str()) {
                    "<redacted>".into()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                json!([name.as_str(), value])
            })
            .collect();
        o.insert("headers".into(), pairs.into());
    }
    let mut peer = Map::new();
    if let Some(ip) = r.ip {
        peer.insert("ip".into(), ip.to_string().into());
    }
    if let Some(id) = r.identity {
        peer.insert("identity".into(), id.into());
    }
    o.insert("peer".into(), peer.into());
    o.into()
}

/// A decision in `sluice eval`'s decision format.
pub fn decision_json(d: &Decision<'_>) -> Value {
    let backends: Vec<Value> = d
        .backends
        .iter()
        .map(|b| json!({"name": b.name, "weight": b.weight}))
        .collect();
    json!({
        "decision": if d.allow { "allow" } else { "deny" },
        "reason": d.reason.as_str(),
        "server": d.server,
        "route": d.route,
        "rule": d.rule,
        "audit": d.audit,
        "http_status": d.http_status,
        "grpc_status": d.grpc_status,
        "service": d.service,
        "backends": backends,
        "timeout_ms": d.timeout_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::Reason;

    #[test]
    fn records_have_eval_shapes_and_redact_secrets() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-tenant", "acme".parse().unwrap());
        headers.insert("authorization", "Bearer secret".parse().unwrap());
        let r = LoggedRequest {
            port: 8080,
            http: Some(("GET", b"/a?b=1", &headers)),
            ip: Some("10.1.2.3".parse().unwrap()),
            identity: Some("spiffe://example.org/ns/a/sa/b"),
        };
        let mut d = Decision::new(false, Reason::Default);
        d.http_status = Some(403);
        let v = record("00112233aabbccdd", &r, &d);
        assert_eq!(v["bundle"], "00112233aabbccdd");
        assert_eq!(v["request"]["path"], "/a?b=1");
        assert_eq!(v["request"]["peer"]["ip"], "10.1.2.3");
        assert_eq!(v["decision"]["decision"], "deny");
        assert_eq!(v["decision"]["http_status"], 403);
        let text = v.to_string();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("[\"x-tenant\",\"acme\"]"), "{text}");
    }
}
