//! The decision log: every decision as a JSON line, replayable with
//! `sluice eval --bundle NEW`.
//!
//! A line is `{"time_ms":…,"bundle":HASH,"request":REQUEST,"decision":DECISION}`
//! where REQUEST and DECISION have the shapes of `sluice eval` (spec
//! section 10). Values of `authorization`, `proxy-authorization` and
//! `cookie` headers are replaced by `<redacted>`.
//!
//! With a candidate bundle (`[policy] candidate`), a request the candidate
//! decides differently gets `"candidate_bundle":HASH,"candidate":DECISION`
//! on its line; an outbound request or connection, which has no line of its
//! own, gets a line only then, with its request in the outbound form. A
//! request a bundle cannot decide has `{"error":MESSAGE}` for its decision.
//!
//! Requests hand their line to a bounded channel and never wait: one
//! writer thread appends the lines to the file, and a line that finds the
//! channel full is dropped and counted.

use crate::candidate::Decided;
use prometheus_client::metrics::counter::Counter;
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use sluice_runtime::{wire, Decision, Outbound};
use std::borrow::Cow;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::SystemTime;
use tokio::sync::{mpsc, oneshot};

const REDACTED: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// Lines that may wait for the writer before new ones are dropped.
const QUEUED_LINES: usize = 16 * 1024;

/// An append-only JSON lines file, written by its own thread.
pub(crate) struct DecisionLog {
    queue: mpsc::Sender<Queued>,
    dropped: Counter,
}

/// What the writer thread is handed.
enum Queued {
    /// One line, without its newline.
    Line(String),
    /// Write out everything queued before, then answer.
    Flush(oneshot::Sender<()>),
}

/// What the log needs of an inbound request.
pub(crate) struct LoggedRequest<'r> {
    /// The policy's server port.
    pub port: u16,
    /// Method, raw target and headers, for HTTP.
    pub http: Option<(&'r str, &'r [u8], &'r (dyn HeaderPairs + Sync))>,
    /// The peer's address.
    pub ip: Option<IpAddr>,
    /// The peer's verified identity.
    pub identity: Option<&'r str>,
}

impl DecisionLog {
    /// Opens `path` for appending, creating it, and starts its writer
    /// thread; lines dropped because the writer is behind count in `dropped`.
    pub(crate) fn open(path: &Path, dropped: Counter) -> std::io::Result<DecisionLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (queue, lines) = mpsc::channel(QUEUED_LINES);
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_lines(lines, std::io::BufWriter::new(file)))?;
        Ok(DecisionLog { queue, dropped })
    }

    /// Queues one decision for the writer, or counts it as dropped when the
    /// queue is full; `candidate` is the candidate bundle's hash and
    /// decision, when it disagrees.
    pub(crate) fn write(
        &self,
        bundle_hash: &str,
        request: &LoggedRequest<'_>,
        decision: &Decision<'_>,
        candidate: Option<(&str, &Decided<'_>)>,
    ) {
        self.queue_line(line(bundle_hash, request, decision, candidate));
    }

    /// Queues the line of an outbound request or connection that the
    /// candidate bundle (`candidate_hash`) decided differently.
    pub(crate) fn write_outbound_disagreement(
        &self,
        bundle_hash: &str,
        request: &Outbound<'_>,
        headers: Option<&http::HeaderMap>,
        decision: &Decided<'_>,
        (candidate_hash, candidate): (&str, &Decided<'_>),
    ) {
        let record = Record {
            time_ms: now_ms(),
            bundle: bundle_hash,
            request: outbound_json(request, headers),
            decision: LoggedDecision::of(decision),
            candidate_bundle: Some(candidate_hash),
            candidate: Some(LoggedDecision::of(candidate)),
        };
        // serializing borrowed fields into a `String` cannot fail
        self.queue_line(serde_json::to_string(&record).unwrap_or_default());
    }

    fn queue_line(&self, line: String) {
        if self.queue.try_send(Queued::Line(line)).is_err() {
            self.dropped.inc();
        }
    }

    /// Waits until every line queued before this call is in the file.
    pub(crate) async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Queued::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// The writer thread: appends queued lines, flushing whenever the queue is
/// empty, until every sender is gone.
fn write_lines(mut lines: mpsc::Receiver<Queued>, mut file: impl Write) {
    let report = |result: std::io::Result<()>| {
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot write the decision log");
        }
    };
    while let Some(queued) = lines.blocking_recv() {
        match queued {
            Queued::Line(line) => {
                report(writeln!(file, "{line}"));
                if lines.is_empty() {
                    report(file.flush());
                }
            }
            Queued::Flush(done) => {
                report(file.flush());
                let _ = done.send(());
            }
        }
    }
    report(file.flush());
}

/// One line of the log: the record of one inbound decision (and the
/// candidate's, when it disagrees), without a newline.
pub(crate) fn line(
    bundle_hash: &str,
    request: &LoggedRequest<'_>,
    decision: &Decision<'_>,
    candidate: Option<(&str, &Decided<'_>)>,
) -> String {
    let record = Record {
        time_ms: now_ms(),
        bundle: bundle_hash,
        request: request_json(request),
        decision: LoggedDecision::of(&Ok(*decision)),
        candidate_bundle: candidate.map(|(hash, _)| hash),
        candidate: candidate.map(|(_, d)| LoggedDecision::of(d)),
    };
    // serializing borrowed fields into a `String` cannot fail
    serde_json::to_string(&record).unwrap_or_default()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `{"time_ms":…,"bundle":…,"request":…,"decision":…}`, and the
/// candidate's hash and decision when it disagrees.
#[derive(Serialize)]
struct Record<'r> {
    time_ms: u64,
    bundle: &'r str,
    request: wire::Request<Cow<'r, str>, LoggedHeaders<'r>>,
    decision: LoggedDecision<'r>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_bundle: Option<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate: Option<LoggedDecision<'r>>,
}

/// A decision as `sluice eval` prints it, or `{"error":MESSAGE}`.
#[derive(Serialize)]
#[serde(untagged)]
enum LoggedDecision<'r> {
    Decided(wire::Decision<&'r str>),
    Error { error: String },
}

impl<'r> LoggedDecision<'r> {
    fn of(d: &Decided<'r>) -> Self {
        match d {
            Ok(d) => LoggedDecision::Decided(wire::Decision::from_runtime(d)),
            Err(e) => LoggedDecision::Error {
                error: e.to_string(),
            },
        }
    }
}

/// An outbound request in `sluice eval`'s request format, borrowing.
fn outbound_json<'r>(
    r: &Outbound<'r>,
    headers: Option<&'r http::HeaderMap>,
) -> wire::Request<Cow<'r, str>, LoggedHeaders<'r>> {
    wire::Request::Outbound(wire::OutboundRequest {
        authority: r.authority.map(Cow::Borrowed),
        ip: r.ip,
        port: r.port,
        method: r.http.as_ref().map(|h| Cow::Borrowed(h.method)),
        path: r.http.as_ref().map(|h| String::from_utf8_lossy(h.path)),
        headers: r
            .http
            .as_ref()
            .and(headers)
            .map(|h| LoggedHeaders(h as &(dyn HeaderPairs + Sync))),
    })
}

/// An inbound request in `sluice eval`'s request format, borrowing.
fn request_json<'r>(r: &LoggedRequest<'r>) -> wire::Request<Cow<'r, str>, LoggedHeaders<'r>> {
    let (method, path, headers) = match r.http {
        Some((method, target, headers)) => (
            Some(Cow::Borrowed(method)),
            Some(String::from_utf8_lossy(target)),
            Some(LoggedHeaders(headers)),
        ),
        None => (None, None, None),
    };
    wire::Request::Inbound(wire::InboundRequest {
        port: r.port,
        method,
        path,
        headers,
        peer: Some(wire::Peer {
            ip: r.ip,
            identity: r.identity.map(Cow::Borrowed),
        }),
    })
}

/// A request's headers as the log reads them: `(name, value)` pairs in
/// order, names in lowercase.
pub(crate) trait HeaderPairs {
    /// Calls `f` with each header.
    fn for_each_pair(&self, f: &mut dyn FnMut(&str, &[u8]));
}

impl HeaderPairs for http::HeaderMap {
    fn for_each_pair(&self, f: &mut dyn FnMut(&str, &[u8])) {
        for (name, value) in self {
            f(name.as_str(), value.as_bytes());
        }
    }
}

/// Headers written as `[name, value]` pairs, secrets redacted.
struct LoggedHeaders<'r>(&'r (dyn HeaderPairs + Sync));

impl Serialize for LoggedHeaders<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        let mut result = Ok(());
        self.0.for_each_pair(&mut |name, value| {
            if result.is_err() {
                return;
            }
            let value = if REDACTED.contains(&name) {
                Cow::Borrowed("<redacted>")
            } else {
                String::from_utf8_lossy(value)
            };
            result = seq.serialize_element(&(name, value));
        });
        result?;
        seq.end()
    }
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
        let v: serde_json::Value =
            serde_json::from_str(&line("00112233aabbccdd", &r, &d, None)).unwrap();
        assert_eq!(v["bundle"], "00112233aabbccdd");
        assert_eq!(v["request"]["path"], "/a?b=1");
        assert_eq!(v["request"]["peer"]["ip"], "10.1.2.3");
        assert_eq!(v["decision"]["decision"], "deny");
        assert_eq!(v["decision"]["http_status"], 403);
        let text = v.to_string();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("[\"x-tenant\",\"acme\"]"), "{text}");
        // the one decision form: `backends` is null unless the reason is `service`
        assert!(v["decision"]["backends"].is_null(), "{text}");
        // the request reads back as `sluice eval` reads it
        let back: wire::Request = serde::Deserialize::deserialize(&v["request"]).unwrap();
        let wire::Request::Inbound(back) = back else {
            panic!("not inbound: {back:?}")
        };
        assert_eq!(back.port, 8080);
        assert_eq!(
            back.as_peer().identity,
            Some("spiffe://example.org/ns/a/sa/b")
        );
        let headers = back.headers.unwrap().0;
        assert!(headers.contains(&("authorization".into(), "<redacted>".into())));
    }

    #[test]
    fn a_disagreeing_candidate_is_written_beside_the_decision() {
        let r = tcp_request();
        let live = Decision::new(true, Reason::Default);
        let v: serde_json::Value =
            serde_json::from_str(&line("00112233aabbccdd", &r, &live, None)).unwrap();
        assert!(v.get("candidate").is_none() && v.get("candidate_bundle").is_none());
        let mut cand = Decision::new(false, Reason::Rule);
        cand.rule = Some("no-db");
        let cand: Decided<'_> = Ok(cand);
        let text = line(
            "00112233aabbccdd",
            &r,
            &live,
            Some(("ffeeddccbbaa9988", &cand)),
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["candidate_bundle"], "ffeeddccbbaa9988");
        assert_eq!(v["decision"]["decision"], "allow");
        assert_eq!(v["candidate"]["decision"], "deny");
        assert_eq!(v["candidate"]["rule"], "no-db");
        // the same shape as the live decision
        let keys = |d: &serde_json::Value| {
            let mut k: Vec<String> = d.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&v["decision"]), keys(&v["candidate"]));
        let err: Decided<'_> =
            Err(sluice_runtime::RequestError::ConnectionToHttpServer { server: "db" });
        let text = line(
            "00112233aabbccdd",
            &r,
            &live,
            Some(("ffeeddccbbaa9988", &err)),
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            v["candidate"]["error"].as_str().unwrap().contains("`db`"),
            "{v}"
        );
    }

    #[tokio::test]
    async fn outbound_disagreements_have_lines_in_the_outbound_form() {
        let path = std::env::temp_dir().join(format!(
            "sluice-decision-log-outbound-{}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let log = DecisionLog::open(&path, Counter::default()).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("cookie", "session=secret".parse().unwrap());
        let hm = crate::enforce::HeaderMapHeaders(&headers);
        let request = Outbound {
            authority: Some("api.example.com:443"),
            ip: None,
            port: None,
            http: Some(sluice_runtime::Http {
                method: "GET",
                path: b"/v1/x",
                headers: &hm,
            }),
        };
        let live: Decided<'_> = Ok(Decision::new(true, Reason::Default));
        let cand: Decided<'_> = Ok(Decision::new(false, Reason::Default));
        log.write_outbound_disagreement(
            "00112233aabbccdd",
            &request,
            Some(&headers),
            &live,
            ("ffeeddccbbaa9988", &cand),
        );
        log.flush().await;
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["request"]["direction"], "outbound", "{v}");
        assert_eq!(v["request"]["authority"], "api.example.com:443");
        assert_eq!(v["request"]["path"], "/v1/x");
        assert!(!text.contains("secret"), "{text}");
        assert_eq!(v["decision"]["decision"], "allow");
        assert_eq!(v["candidate"]["decision"], "deny");
        let back: wire::Request = serde::Deserialize::deserialize(&v["request"]).unwrap();
        assert!(matches!(back, wire::Request::Outbound(_)), "{back:?}");
    }

    fn tcp_request() -> LoggedRequest<'static> {
        LoggedRequest {
            port: 5432,
            http: None,
            ip: Some("10.1.2.3".parse().unwrap()),
            identity: None,
        }
    }

    #[tokio::test]
    async fn the_writer_appends_every_line_before_flush_returns() {
        let path = std::env::temp_dir().join(format!(
            "sluice-decision-log-{}-{:?}.jsonl",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        let log = DecisionLog::open(&path, Counter::default()).unwrap();
        let d = Decision::new(true, Reason::Default);
        for _ in 0..100 {
            log.write("00112233aabbccdd", &tcp_request(), &d, None);
        }
        log.flush().await;
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(text.lines().count(), 100, "{text}");
        assert!(text.ends_with("}\n"), "{text}");
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["request"]["port"], 5432);
        }
    }

    #[test]
    fn lines_that_find_the_queue_full_are_counted_as_dropped() {
        // a queue nobody reads: the first two lines wait, the rest are dropped
        let (queue, _lines) = mpsc::channel(2);
        let log = DecisionLog {
            queue,
            dropped: Counter::default(),
        };
        let d = Decision::new(false, Reason::Default);
        for _ in 0..5 {
            log.write("00112233aabbccdd", &tcp_request(), &d, None);
        }
        assert_eq!(log.dropped.get(), 3);
    }
}
