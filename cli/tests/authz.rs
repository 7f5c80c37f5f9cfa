//! `sluice authz`, Envoy's ext_authz external authorizer (issue 15), run
//! as the real binary and asked with a tonic client built from the Envoy
//! types (`envoy-types`), as Envoy asks it:
//!
//! - every inbound conformance case that can be expressed as a check
//!   (`../shared/conformance` and `conformance/`), sent as Envoy sends an
//!   HTTP/1.1, HTTP/2 (with `headers`, and with `header_map` as
//!   `encode_raw_headers: true` sends it) or gRPC request, or as the network
//!   filter sends a connection, is answered as `sluice eval` decides it;
//! - malformed, partial and huge check requests get clean answers (or a
//!   gRPC error for a request past `max-request-bytes` or bytes that are not
//!   a protobuf) and the server keeps answering;
//! - health, readiness, reload by file watch, metrics and the decision log.

use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, HeaderMap, HeaderValue, Pipe, SocketAddress,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// How long any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

/// The gRPC service name of the authorizer.
const AUTHORIZATION: &str = "envoy.service.auth.v3.Authorization";

/// gRPC status codes in `CheckResponse.status.code`.
const OK: i32 = 0;
const INVALID_ARGUMENT: i32 = 3;
const PERMISSION_DENIED: i32 = 7;
const UNAVAILABLE: i32 = 14;

// ---------------------------------------------------------------------------
// The server under test.

/// A temporary folder, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("sluice-authz-{name}-{}", std::process::id()));
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

/// Ports free on loopback right now (the listeners are closed again).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// A running `sluice authz --config FILE` and clients of it.
struct Authz {
    child: Child,
    dir: Dir,
    admin: SocketAddr,
    runtime: tokio::runtime::Runtime,
    channel: Channel,
}

impl Authz {
    /// Writes `authz.toml` into `dir` (`[policy]` lines `policy`, and
    /// `[authz]` lines `authz` after its `listen`) and starts the server;
    /// returns once its gRPC port accepts connections.
    fn start(dir: Dir, policy: &str, authz: &str) -> Authz {
        let [grpc_port, admin_port] = free_ports::<2>();
        let config = format!(
            "[policy]\n{policy}\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\
             [authz]\nlisten = \"127.0.0.1:{grpc_port}\"\n{authz}\n\
             [log]\ndecision-log = \"decisions.jsonl\"\n"
        );
        std::fs::write(dir.path("authz.toml"), &config).unwrap();
        let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["authz", "--config"])
            .arg(dir.path("authz.toml"))
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("run sluice authz");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let channel = {
            let _guard = runtime.enter();
            Endpoint::from_shared(format!("http://127.0.0.1:{grpc_port}"))
                .unwrap()
                .connect_timeout(WAIT)
                .timeout(WAIT)
                .connect_lazy()
        };
        let mut server = Authz {
            child,
            dir,
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            runtime,
            channel,
        };
        let grpc = SocketAddr::from(([127, 0, 0, 1], grpc_port));
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(grpc).is_err() {
            server.assert_running();
            assert!(
                Instant::now() < deadline,
                "`sluice authz` does not listen on {grpc}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// What the server wrote to standard error.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("stderr")).unwrap_or_default()
    }

    /// Panics when the server has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("`sluice authz` exited ({status}):\n{}", self.log());
        }
    }

    /// One `Check`: the answer, or the gRPC error.
    fn check(&self, request: CheckRequest) -> Result<CheckResponse, tonic::Status> {
        let mut client = AuthorizationClient::new(self.channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        self.runtime.block_on(async {
            tokio::time::timeout(WAIT, client.check(request))
                .await
                .expect("no answer to a check in time")
                .map(tonic::Response::into_inner)
        })
    }

    /// One `Check` that must get an answer (not a gRPC error).
    fn answer(&self, request: CheckRequest) -> CheckResponse {
        self.check(request.clone()).unwrap_or_else(|e| {
            panic!(
                "a gRPC error instead of an answer: {e:?}\nfor {request:?}\n{}",
                self.log()
            )
        })
    }

    /// The `grpc.health.v1` status of `service`, or the gRPC error.
    fn health(&self, service: &str) -> Result<i32, tonic::Status> {
        let mut client = HealthClient::new(self.channel.clone());
        self.runtime.block_on(async {
            tokio::time::timeout(
                WAIT,
                client.check(HealthCheckRequest {
                    service: service.into(),
                }),
            )
            .await
            .expect("no health answer in time")
            .map(|r| r.into_inner().status)
        })
    }

    /// Waits until `service` is SERVING.
    fn wait_serving(&mut self, service: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = self.health(service);
            if matches!(status, Ok(s) if s == ServingStatus::Serving as i32) {
                return;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "`{service}` is not SERVING ({status:?}):\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A raw unary call of `Check` with `body` as the message bytes.
    fn raw_check(&self, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        self.runtime.block_on(async {
            tokio::time::timeout(WAIT, async {
                grpc.ready()
                    .await
                    .map_err(|e| tonic::Status::unknown(e.to_string()))?;
                grpc.unary(
                    tonic::Request::new(body),
                    tonic::codegen::http::uri::PathAndQuery::from_static(
                        "/envoy.service.auth.v3.Authorization/Check",
                    ),
                    RawCodec,
                )
                .await
                .map(tonic::Response::into_inner)
            })
            .await
            .expect("no answer to a raw check in time")
        })
    }

    /// `METHOD PATH` on the admin listener: status and body.
    fn admin(&self, method: &str, path: &str) -> (u16, String) {
        http(self.admin, method, path)
    }

    /// The bundle hash `/policy` shows, once one is loaded.
    fn policy_hash(&self) -> Option<String> {
        let (status, body) = self.admin("GET", "/policy");
        if status != 200 {
            return None;
        }
        let policy: Value = serde_json::from_str(&body).unwrap();
        policy["hash"].as_str().map(str::to_owned)
    }
}

impl Drop for Authz {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a new connection: status and body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
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

/// A codec that sends and receives message bytes as they are.
struct RawCodec;

/// The encoder of [`RawCodec`].
struct RawEncoder;

/// The decoder of [`RawCodec`].
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

// ---------------------------------------------------------------------------
// Check requests as Envoy builds them.

/// How Envoy saw the request it asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// HTTP/1.1, headers in the `headers` map (`Host` as `:authority`).
    Http1,
    /// HTTP/2 (or gRPC), headers in the `headers` map.
    Http2,
    /// HTTP/2 (or gRPC) with `encode_raw_headers: true`: `header_map`.
    Http2Raw,
    /// The network filter: a connection, no `request.http`.
    Tcp,
}

/// The parts of a check request.
#[derive(Clone, Debug, Default)]
struct Check {
    /// `destination.address` port (`None`: no destination).
    port: Option<u32>,
    /// `source.address` (a socket address with this text).
    ip: Option<String>,
    /// `source.principal`.
    identity: Option<String>,
    /// Method and path (both, for HTTP).
    method: String,
    path: String,
    /// Headers in order, names as the request had them.
    headers: Vec<(String, Vec<u8>)>,
    /// `:authority`: the case's `host`, or a made-up one.
    authority: String,
}

fn socket_address(address: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

fn pipe(path: &str) -> Address {
    Address {
        address: Some(address::Address::Pipe(Pipe {
            path: path.into(),
            mode: 0,
        })),
    }
}

impl Check {
    fn http(port: u32, method: &str, path: &str) -> Check {
        Check {
            port: Some(port),
            method: method.into(),
            path: path.into(),
            authority: "web.test".into(),
            ..Check::default()
        }
    }

    fn from(mut self, ip: &str) -> Check {
        self.ip = Some(ip.into());
        self
    }

    fn identity(mut self, id: &str) -> Check {
        self.identity = Some(id.into());
        self
    }

    fn header(mut self, name: &str, value: &[u8]) -> Check {
        self.headers.push((name.into(), value.to_vec()));
        self
    }

    /// The `CheckRequest` Envoy sends for this request in `form`.
    fn build(&self, form: Form) -> CheckRequest {
        let source = Peer {
            address: self.ip.as_deref().map(|ip| socket_address(ip, 43_210)),
            principal: self.identity.clone().unwrap_or_default(),
            ..Default::default()
        };
        let destination = Peer {
            address: self.port.map(|p| socket_address("10.0.0.80", p)),
            ..Default::default()
        };
        let http = (form != Form::Tcp).then(|| self.http_request(form));
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(source),
                destination: Some(destination),
                request: http.map(|http| Request {
                    http: Some(http),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    fn http_request(&self, form: Form) -> HttpRequest {
        let pseudo = [
            (":authority", self.authority.as_str()),
            (":method", self.method.as_str()),
            (":path", self.path.as_str()),
            (":scheme", "http"),
        ];
        let mut request = HttpRequest {
            id: "4b1d".into(),
            method: self.method.clone(),
            path: self.path.clone(),
            host: self.authority.clone(),
            scheme: "http".into(),
            size: -1,
            protocol: if form == Form::Http1 {
                "HTTP/1.1"
            } else {
                "HTTP/2"
            }
            .into(),
            ..Default::default()
        };
        if form == Form::Http2Raw {
            let entry = |key: &str, value: &[u8]| HeaderValue {
                key: key.to_ascii_lowercase(),
                raw_value: value.to_vec(),
                ..Default::default()
            };
            let mut headers: Vec<HeaderValue> =
                pseudo.iter().map(|(k, v)| entry(k, v.as_bytes())).collect();
            headers.extend(
                self.headers
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
                    .map(|(k, v)| entry(k, v)),
            );
            request.header_map = Some(HeaderMap { headers });
        } else {
            let map = &mut request.headers;
            for (k, v) in pseudo {
                map.insert(k.into(), v.into());
            }
            // Envoy joins repeated headers with `,` and replaces what is
            // not UTF-8; an HTTP/1.1 `Host` is `:authority` (above).
            for (k, v) in self
                .headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
            {
                let value = String::from_utf8_lossy(v).replace('\u{FFFD}', "!");
                map.entry(k.to_ascii_lowercase())
                    .and_modify(|joined| {
                        joined.push(',');
                        joined.push_str(&value);
                    })
                    .or_insert(value);
            }
        }
        request
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    fn is_grpc(&self) -> bool {
        self.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("content-type")
                && v.len() >= 16
                && v[..16].eq_ignore_ascii_case(b"application/grpc")
        })
    }

    /// The request `sluice eval` decides for this check in `form`
    /// (with `host`: the `:authority` Sluice reads as `host`).
    fn eval_request(&self, form: Form) -> Value {
        let mut request = json!({"direction": "inbound", "port": self.port.unwrap_or(0)});
        if form != Form::Tcp {
            let mut headers: Vec<Value> = self
                .headers
                .iter()
                .map(|(k, v)| json!([k, String::from_utf8_lossy(v)]))
                .collect();
            // Sluice reads `:authority` as `host` when no `host` was sent,
            // which Envoy never sends.
            if !self.has_header("host") {
                headers.push(json!(["host", self.authority]));
            }
            request["method"] = json!(self.method);
            request["path"] = json!(self.path);
            request["headers"] = Value::Array(headers);
        }
        let mut peer = serde_json::Map::new();
        if let Some(ip) = &self.ip {
            peer.insert("ip".into(), json!(ip));
        }
        if let Some(id) = &self.identity {
            peer.insert("identity".into(), json!(id));
        }
        request["peer"] = Value::Object(peer);
        request
    }
}

// ---------------------------------------------------------------------------
// Answers against `sluice eval`.

/// `sluice eval --policy POLICY` of each request: one decision (or
/// `{"error":…}`) each.
fn eval(policy: &Path, requests: &[Value]) -> Vec<Value> {
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    eval_lines(policy, &input, requests.len())
}

/// `sluice eval --policy POLICY` of `n` JSON lines.
fn eval_lines(policy: &Path, input: &str, n: usize) -> Vec<Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["eval", "--policy"])
        .arg(policy)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluice eval");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let decisions: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        decisions.len(),
        n,
        "sluice eval --policy {}: {out}\n{}",
        policy.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    decisions
}

/// The value of header `name` in a list of header options.
fn header<'a>(
    headers: &'a [envoy_types::pb::envoy::config::core::v3::HeaderValueOption],
    name: &str,
) -> Option<&'a str> {
    headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key.eq_ignore_ascii_case(name))
        .map(|h| {
            if h.value.is_empty() {
                std::str::from_utf8(&h.raw_value).unwrap_or("<not utf-8>")
            } else {
                h.value.as_str()
            }
        })
}

fn code(response: &CheckResponse) -> i32 {
    response.status.as_ref().map_or(0, |s| s.code)
}

fn denied(response: &CheckResponse) -> Option<&DeniedHttpResponse> {
    match &response.http_response {
        Some(HttpResponse::DeniedResponse(d)) => Some(d),
        _ => None,
    }
}

fn ok_response(response: &CheckResponse) -> Option<&OkHttpResponse> {
    match &response.http_response {
        Some(HttpResponse::OkResponse(o)) => Some(o),
        _ => None,
    }
}

fn denied_status(response: &CheckResponse) -> Option<i32> {
    denied(response)
        .and_then(|d| d.status.as_ref())
        .map(|s| s.code)
}

fn denied_header<'a>(response: &'a CheckResponse, name: &str) -> Option<&'a str> {
    denied(response).and_then(|d| header(&d.headers, name))
}

/// Which `add-headers` the server was configured with.
#[derive(Clone, Copy)]
struct Added {
    identity: bool,
    route: bool,
    rule: bool,
}

const ALL_HEADERS: Added = Added {
    identity: true,
    route: true,
    rule: true,
};

const NO_HEADERS: Added = Added {
    identity: false,
    route: false,
    rule: false,
};

/// The problems of `response` as the answer to `check` sent in `form`,
/// when `sluice eval` decided `expected` (empty when it agrees).
fn compare(
    response: &CheckResponse,
    expected: &Value,
    check: &Check,
    form: Form,
    added: Added,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut want = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    let got = code(response);
    if expected.get("error").is_some() {
        want(
            got == INVALID_ARGUMENT,
            format!("eval rejects the request, so code 3; got {got}"),
        );
        want(
            denied_status(response) == Some(403),
            format!("a bad check is denied 403: {:?}", denied_status(response)),
        );
        want(
            denied_header(response, "x-sluice-error") == Some("bad-check"),
            "x-sluice-error: bad-check".into(),
        );
        return problems;
    }
    let grpc = expected["grpc_status"].as_i64();
    match expected["decision"].as_str() {
        Some("allow") => {
            want(got == OK, format!("allowed, so code 0; got {got}"));
            if form == Form::Tcp {
                return problems;
            }
            let Some(ok) = ok_response(response) else {
                want(false, "no ok_response".into());
                return problems;
            };
            let is = |name: &str| header(&ok.headers, name);
            // `x-sluice-route` is `server.route`.
            let route = expected["route"]
                .as_str()
                .map(|r| format!("{}.{r}", expected["server"].as_str().unwrap_or_default()));
            let route = route.as_deref();
            let rule = expected["rule"].as_str();
            let removed = |name: &str| ok.headers_to_remove.iter().any(|h| h == name);
            if added.route {
                want(
                    is("x-sluice-route") == route && removed("x-sluice-route") == route.is_none(),
                    format!("x-sluice-route {:?}, eval {route:?}", is("x-sluice-route")),
                );
            }
            if added.rule {
                want(
                    is("x-sluice-rule") == rule && removed("x-sluice-rule") == rule.is_none(),
                    format!("x-sluice-rule {:?}, eval {rule:?}", is("x-sluice-rule")),
                );
            }
            if added.identity {
                let removed = removed("x-sluice-peer-identity");
                want(
                    is("x-sluice-peer-identity") == check.identity.as_deref(),
                    format!(
                        "x-sluice-peer-identity {:?}, principal {:?}",
                        is("x-sluice-peer-identity"),
                        check.identity
                    ),
                );
                want(
                    removed == check.identity.is_none(),
                    format!(
                        "x-sluice-peer-identity removed: {removed}, principal {:?}",
                        check.identity
                    ),
                );
            }
            if !(added.identity || added.route || added.rule) {
                let sluice = ok
                    .headers
                    .iter()
                    .filter_map(|h| h.header.as_ref())
                    .filter(|h| h.key.starts_with("x-sluice-"))
                    .count();
                want(sluice == 0, "x-sluice- headers without add-headers".into());
            }
        }
        Some("deny") => {
            want(
                got == PERMISSION_DENIED,
                format!("denied, so code 7; got {got}"),
            );
            if form == Form::Tcp {
                return problems;
            }
            let status = denied_status(response);
            let error = denied_header(response, "x-sluice-error");
            let reason = match expected["reason"].as_str() {
                Some("no-route") => "no-route",
                Some("bad-path") => "bad-path",
                _ => "forbidden",
            };
            want(
                error == Some(reason),
                format!("x-sluice-error {error:?}, expected {reason}"),
            );
            // The denial's HTTP status (a request to a tcp server has none
            // in eval: 403), also for gRPC (commit 4a3e132: Envoy turns a
            // gRPC client's local reply into trailers-only with the
            // `grpc-status` itself).
            let http_status = expected["http_status"].as_i64().unwrap_or(403);
            want(
                status.map(i64::from) == Some(http_status),
                format!("status {status:?}, eval {http_status}"),
            );
            let grpc_status = denied_header(response, "grpc-status");
            let content_type = denied_header(response, "content-type");
            match grpc {
                Some(g) => {
                    want(
                        grpc_status == Some(g.to_string().as_str())
                            && content_type == Some("application/grpc"),
                        format!("grpc-status {grpc_status:?} ({content_type:?}), eval {g}"),
                    );
                }
                None => {
                    want(
                        grpc_status.is_none(),
                        format!("grpc-status {grpc_status:?} on a non-gRPC denial"),
                    );
                    want(
                        denied(response).is_some_and(|d| !d.body.is_empty()),
                        "a denial without a body".into(),
                    );
                }
            }
        }
        other => want(false, format!("eval gave no decision: {other:?}")),
    }
    problems
}

// ---------------------------------------------------------------------------
// 1. The conformance walk.

/// Why cases were not checked, and how many.
#[derive(Default)]
struct Counts {
    files: usize,
    cases: usize,
    checks: usize,
    skipped: BTreeMap<&'static str, usize>,
    /// Checks by what eval decided.
    outcomes: BTreeMap<&'static str, usize>,
}

impl Counts {
    fn skip(&mut self, why: &'static str, n: usize) {
        *self.skipped.entry(why).or_default() += n;
    }
}

/// The check of a conformance case's request, or why it cannot be one.
fn case_check(request: &Value) -> Result<Check, &'static str> {
    match request["direction"].as_str() {
        Some("inbound") => {}
        Some("outbound") => return Err("outbound"),
        _ => return Err("no direction"),
    }
    let port = request["port"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .ok_or("no port")?;
    if port == 0 {
        return Err("port 0 (no port in a check)");
    }
    let text = |key: &str| -> Result<Option<String>, &'static str> {
        match &request[key] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err("not a string"),
        }
    };
    let mut check = Check {
        port: Some(port),
        method: text("method")?.unwrap_or_default(),
        path: text("path")?.unwrap_or_default(),
        ..Check::default()
    };
    if request["method"] == "" || request["path"] == "" {
        return Err("empty method or path (a bad check, decided by eval)");
    }
    match &request["headers"] {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                check
                    .headers
                    .push((k.clone(), v.as_str().ok_or("header value")?.into()));
            }
        }
        Value::Array(pairs) => {
            for pair in pairs {
                match pair.as_array().map(Vec::as_slice) {
                    Some([Value::String(k), Value::String(v)]) => {
                        check.headers.push((k.clone(), v.as_bytes().to_vec()))
                    }
                    _ => return Err("header pair"),
                }
            }
        }
        _ => return Err("headers"),
    }
    if check.has_header(":authority") {
        return Err("pseudo-header in the case");
    }
    check.authority = check
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or("conformance.test".into(), |(_, v)| {
            String::from_utf8_lossy(v).into_owned()
        });
    let peer = &request["peer"];
    if let Some(ip) = peer["ip"].as_str() {
        if ip.parse::<IpAddr>().is_err() {
            return Err("peer ip not an address");
        }
        check.ip = Some(ip.into());
    }
    check.identity = peer["identity"].as_str().map(str::to_owned);
    if check.identity.as_deref() == Some("") {
        return Err("empty identity (no principal in a check)");
    }
    Ok(check)
}

/// The forms a case's request is sent in: a connection, or HTTP/1.1 and
/// HTTP/2 both ways, or (gRPC) HTTP/2 both ways.
fn forms(check: &Check) -> &'static [Form] {
    if check.method.is_empty() && check.path.is_empty() && check.headers.is_empty() {
        &[Form::Tcp]
    } else if check.is_grpc() {
        &[Form::Http2, Form::Http2Raw]
    } else {
        &[Form::Http1, Form::Http2, Form::Http2Raw]
    }
}

/// The conformance files: the shared ones (when `../shared` is there; a
/// failure under CI when not), then the repository's; and whether the
/// shared ones are among them.
fn conformance_files() -> (Vec<PathBuf>, bool) {
    let mut files = Vec::new();
    let shared = sluice_testkit::shared_dir("conformance", "the shared conformance walk");
    if let Some(shared) = &shared {
        sluice_cli::conformance::find_files(shared, true, &mut files).unwrap();
    }
    let own = sluice_testkit::repository().join("conformance");
    sluice_cli::conformance::find_files(&own, true, &mut files).unwrap();
    (files, shared.is_some())
}

/// Copies `.sluice` files under `from` into `to` (same relative paths).
fn copy_sources(from: &Path, to: &Path) {
    if from.is_file() {
        std::fs::copy(from, to.join(from.file_name().unwrap())).unwrap();
        return;
    }
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let sub = to.join(path.file_name().unwrap());
            std::fs::create_dir_all(&sub).unwrap();
            copy_sources(&path, &sub);
        } else if path.extension().is_some_and(|e| e == "sluice") {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn every_conformance_case_that_is_a_check_is_answered_as_eval_decides() {
    let started = Instant::now();
    let (files, with_shared) = conformance_files();
    let dir = Dir::new("conformance");
    let served = dir.path("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("policy.sluice"), "").unwrap();
    let mut authz = Authz::start(
        dir,
        "source = \"served\"\nwatch = false",
        "add-headers = [\"peer-identity\", \"route\", \"rule\"]",
    );
    authz.wait_serving("");
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    for (n, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap();
        let table: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let cases = table.get("case").and_then(|c| c.as_array());
        let Some(cases) = cases else {
            let diagnostics = table
                .get("diagnostic")
                .and_then(|d| d.as_array())
                .map_or(1, Vec::len);
            counts.skip("lint (diagnostics, no cases)", diagnostics);
            continue;
        };
        counts.files += 1;
        // The policy, for eval and (copied into `served`) for the server.
        let policy = authz.dir.path(&format!("policy-{n}"));
        std::fs::create_dir_all(&policy).unwrap();
        match (table.get("policy"), table.get("policy-file")) {
            (Some(toml::Value::String(text)), _) => {
                std::fs::write(policy.join("policy.sluice"), text).unwrap()
            }
            (_, Some(toml::Value::String(rel))) => {
                copy_sources(&file.parent().unwrap().join(rel), &policy)
            }
            _ => panic!("{}: no policy", file.display()),
        }
        std::fs::remove_dir_all(&served).unwrap();
        std::fs::create_dir_all(&served).unwrap();
        copy_sources(&policy, &served);
        let (status, body) = authz.admin("POST", "/reload");
        if status != 200 {
            failures.push(format!(
                "{}: the policy does not load: {status} {body}",
                file.display()
            ));
            continue;
        }

        // Every case's checks, and the eval request of each.
        let mut sent: Vec<(String, Check, Form)> = Vec::new();
        let mut requests = Vec::new();
        for case in cases {
            let name = case.get("name").and_then(|n| n.as_str()).unwrap_or("?");
            let request = serde_json::to_value(case.get("request")).unwrap();
            let check = match case_check(&request) {
                Ok(c) => c,
                Err(why) => {
                    counts.skip(why, 1);
                    continue;
                }
            };
            counts.cases += 1;
            for &form in forms(&check) {
                requests.push(check.eval_request(form));
                sent.push((name.to_owned(), check.clone(), form));
            }
        }
        if sent.is_empty() {
            continue;
        }
        let expected = eval(&policy, &requests);
        for ((name, check, form), expected) in sent.iter().zip(&expected) {
            counts.checks += 1;
            let kind = match (expected["decision"].as_str(), *form) {
                (None, _) => "eval error (bad check)",
                (Some("allow"), Form::Tcp) => "connection allowed",
                (Some(_), Form::Tcp) => "connection denied",
                (Some("allow"), _) => "http allowed",
                (Some(_), _) if expected["grpc_status"].is_number() => "grpc denied",
                (Some(_), _) => "http denied",
            };
            *counts.outcomes.entry(kind).or_default() += 1;
            let response = match authz.check(check.build(*form)) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!(
                        "{}: case `{name}` as {form:?}: gRPC error {e:?}",
                        file.display()
                    ));
                    continue;
                }
            };
            let problems = compare(&response, expected, check, *form, ALL_HEADERS);
            if !problems.is_empty() {
                failures.push(format!(
                    "{}: case `{name}` as {form:?}: {}\n    eval: {expected}\n    answer: {response:?}",
                    file.display(),
                    problems.join("; ")
                ));
            }
        }
    }
    authz.assert_running();
    eprintln!(
        "conformance walk: {} files, {} cases checked with {} checks ({:?}), skipped {:?}, {} failures, {:.1} s",
        counts.files,
        counts.cases,
        counts.checks,
        counts.outcomes,
        counts.skipped,
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} checks disagree with eval:\n{}",
        failures.len(),
        counts.checks,
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The repository's inbound cases alone are 314 (Dec 2026), the shared
    // corpus adds 73.
    let minimum = if with_shared { 350 } else { 250 };
    assert!(
        counts.cases >= minimum,
        "only {} cases checked",
        counts.cases
    );
    assert!(counts.checks >= 2 * counts.cases, "{}", counts.checks);
    // Every kind of answer was among them.
    for kind in [
        "connection allowed",
        "connection denied",
        "http allowed",
        "grpc denied",
        "http denied",
    ] {
        assert!(
            counts.outcomes.get(kind).is_some_and(|&n| n > 0),
            "no check of kind `{kind}`: {:?}",
            counts.outcomes
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Malformed, partial and huge check requests.

const POLICY: &str = r#"
server web {
  port 8080
  protocol http
  route api { path prefix "/api" }
  route hdr { path "/hdr"  header "x-v" present }
}
server db {
  port 5432
  protocol tcp
}
allow local { to web  from network 10.0.0.0/8 }
allow anyone { to db  from identity "*" }
"#;

/// A bad check's answer: code 3, denied 403, `x-sluice-error: bad-check`.
fn assert_bad_check(response: &CheckResponse, what: &str) {
    assert_eq!(code(response), INVALID_ARGUMENT, "{what}: {response:?}");
    let message = &response.status.as_ref().unwrap().message;
    assert!(!message.is_empty(), "{what}: no message");
    assert_eq!(denied_status(response), Some(403), "{what}: {response:?}");
    assert_eq!(
        denied_header(response, "x-sluice-error"),
        Some("bad-check"),
        "{what}: {response:?}"
    );
}

#[test]
fn malformed_partial_and_huge_checks_get_clean_answers() {
    let dir = Dir::new("malformed");
    std::fs::write(dir.path("policy.sluice"), POLICY).unwrap();
    let mut authz = Authz::start(
        dir,
        "source = \"policy.sluice\"\nwatch = false",
        "add-headers = [\"route\"]\nmax-request-bytes = 1048576",
    );
    authz.wait_serving(AUTHORIZATION);
    let good = Check::http(8080, "GET", "/api/x").from("10.0.0.1");
    let still_answers = |authz: &mut Authz, after: &str| {
        authz.assert_running();
        let response = authz.answer(good.build(Form::Http2));
        assert_eq!(code(&response), OK, "after {after}: {response:?}");
    };
    still_answers(&mut authz, "start");

    // Partial requests: nothing to decide on.
    let empty = CheckRequest::default();
    assert_bad_check(&authz.answer(empty), "an empty CheckRequest");
    let mut no_destination = good.build(Form::Http1);
    no_destination.attributes.as_mut().unwrap().destination = None;
    assert_bad_check(&authz.answer(no_destination), "no destination");
    let mut port_zero = good.clone();
    port_zero.port = Some(0);
    assert_bad_check(&authz.answer(port_zero.build(Form::Http1)), "port 0");
    let mut no_port = good.build(Form::Http2);
    no_port
        .attributes
        .as_mut()
        .unwrap()
        .destination
        .as_mut()
        .unwrap()
        .address = Some(pipe("/run/app.sock"));
    assert_bad_check(&authz.answer(no_port), "a pipe destination");
    let mut out_of_range = good.clone();
    out_of_range.port = Some(70_000);
    let response = authz.answer(out_of_range.build(Form::Http1));
    assert_bad_check(&response, "port 70000");
    for (method, path) in [("", "/api"), ("GET", ""), ("", "")] {
        let check = Check::http(8080, method, path).from("10.0.0.1");
        for form in [Form::Http1, Form::Http2Raw] {
            let what = format!("method {method:?} path {path:?} as {form:?}");
            assert_bad_check(&authz.answer(check.build(form)), &what);
        }
    }
    let connection_to_http = Check {
        port: Some(8080),
        ip: Some("10.0.0.1".into()),
        ..Check::default()
    };
    assert_bad_check(
        &authz.answer(connection_to_http.build(Form::Tcp)),
        "a connection check on an http port",
    );
    still_answers(&mut authz, "partial requests");

    // Odd peers and requests, each decided as eval decides it.
    let policy = authz.dir.path("policy.sluice");
    let mut decided: Vec<(&str, Check, Form, CheckRequest)> = Vec::new();
    let mut add = |what: &'static str, check: Check, form: Form, f: &dyn Fn(&mut CheckRequest)| {
        let mut request = check.build(form);
        f(&mut request);
        decided.push((what, check, form, request));
    };
    // A pipe as source address: no peer ip, so `network` does not match.
    let mut piped = Check::http(8080, "GET", "/api/x");
    piped.ip = None;
    add("a pipe source address", piped.clone(), Form::Http2, &|r| {
        r.attributes
            .as_mut()
            .unwrap()
            .source
            .as_mut()
            .unwrap()
            .address = Some(pipe("/run/peer.sock"));
    });
    add(
        "a source address that is not an ip",
        piped.clone(),
        Form::Http1,
        &|r| {
            r.attributes
                .as_mut()
                .unwrap()
                .source
                .as_mut()
                .unwrap()
                .address = Some(socket_address("peer.example", 1));
        },
    );
    add("no source at all", piped.clone(), Form::Http1, &|r| {
        r.attributes.as_mut().unwrap().source = None;
    });
    // A principal that is not a SPIFFE ID matches only `identity "*"`.
    let tcp = Check {
        port: Some(5432),
        ..Check::default()
    };
    add(
        "a principal that is not a SPIFFE ID",
        tcp.clone().identity("not a spiffe id"),
        Form::Tcp,
        &|_| {},
    );
    add(
        "a principal that is almost a SPIFFE ID",
        tcp.clone().identity("spiffe://Upper.Case/../x"),
        Form::Tcp,
        &|_| {},
    );
    add("no principal", tcp.clone(), Form::Tcp, &|_| {});
    add(
        "a valid principal on an http check",
        Check::http(8080, "GET", "/api").identity("spiffe://td/ns/a/sa/b"),
        Form::Http2Raw,
        &|_| {},
    );
    // A header whose raw value is not UTF-8 is still present.
    add(
        "a raw header value that is not UTF-8",
        Check::http(8080, "GET", "/hdr")
            .from("10.0.0.1")
            .header("x-v", b"\xff\xfe\x80"),
        Form::Http2Raw,
        &|_| {},
    );
    add(
        "odd header names",
        Check::http(8080, "GET", "/api/x")
            .from("10.0.0.1")
            .header("X-Mixed-Case", b"1")
            .header("with space", b"2")
            .header("", b"3"),
        Form::Http2Raw,
        &|_| {},
    );
    for path in [
        "/a b",
        "*",
        "http://web.test/api/x",
        "/api/%2f",
        "/api/../api/x",
    ] {
        add(
            "an odd path",
            Check::http(8080, "GET", path).from("10.0.0.1"),
            Form::Http1,
            &|_| {},
        );
    }
    add(
        "an odd method",
        Check::http(8080, "G E\tT", "/api").from("10.0.0.1"),
        Form::Http2,
        &|_| {},
    );
    add(
        "an IPv6 peer",
        Check::http(8080, "GET", "/api").from("::ffff:10.1.2.3"),
        Form::Http1,
        &|_| {},
    );
    // Headers map values set only in `value` (not `raw_value`) also count.
    add(
        "header_map entries with `value`",
        Check::http(8080, "GET", "/hdr").from("10.0.0.1"),
        Form::Http2Raw,
        &|r| {
            let http = r
                .attributes
                .as_mut()
                .unwrap()
                .request
                .as_mut()
                .unwrap()
                .http
                .as_mut()
                .unwrap();
            http.header_map.as_mut().unwrap().headers.push(HeaderValue {
                key: "x-v".into(),
                value: "1".into(),
                ..Default::default()
            });
        },
    );
    let requests: Vec<Value> = decided
        .iter()
        .map(|(what, check, form, _)| {
            let mut r = check.eval_request(*form);
            if *what == "header_map entries with `value`" {
                r["headers"] = json!([["x-v", "1"]]);
            }
            r
        })
        .collect();
    let expected = eval(&policy, &requests);
    let mut failures = Vec::new();
    for ((what, check, form, request), expected) in decided.iter().zip(&expected) {
        let response = authz.answer(request.clone());
        let added = Added {
            identity: false,
            route: true,
            rule: false,
        };
        let problems = compare(&response, expected, check, *form, added);
        if !problems.is_empty() {
            failures.push(format!(
                "{what} ({:?} {:?}): {}\n    eval: {expected}\n    answer: {response:?}",
                check.method,
                check.path,
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The expectations eval gave are the design's.
    assert_eq!(expected[0]["decision"], "deny", "{}", expected[0]);
    assert_eq!(expected[3]["decision"], "allow", "{}", expected[3]);
    assert_eq!(expected[5]["decision"], "deny", "{}", expected[5]);
    assert_eq!(expected[7]["route"], "hdr", "{}", expected[7]);
    still_answers(&mut authz, "odd requests");

    // 10,000 headers: an answer, not an error.
    let mut many = Check::http(8080, "GET", "/api/x").from("10.0.0.1");
    for i in 0..10_000 {
        many = many.header(&format!("x-h-{i}"), b"v");
    }
    for form in [Form::Http2, Form::Http2Raw] {
        let response = authz.answer(many.build(form));
        // The policy allows GET /api/x from anyone: headers do not matter.
        assert_eq!(
            code(&response),
            OK,
            "10,000 headers as {form:?}: {:?}",
            response.status
        );
        eprintln!("10,000 headers as {form:?}: {:?}", response.status);
    }
    still_answers(&mut authz, "10,000 headers");

    // Past max-request-bytes: a gRPC error, not an answer.
    let huge = Check::http(8080, "GET", "/api/x")
        .from("10.0.0.1")
        .header("x-big", &vec![b'a'; 1_100_000]);
    match authz.check(huge.build(Form::Http2Raw)) {
        Ok(response) => panic!(
            "a CheckRequest past max-request-bytes answered: {:?}",
            response.status
        ),
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
            eprintln!("huge check: {:?} {}", status.code(), status.message());
        }
    }
    still_answers(&mut authz, "a huge request");

    // Bytes that are not a CheckRequest, through a raw call.
    use prost::Message;
    let valid = good.build(Form::Http2).encode_to_vec();
    let answer = authz.raw_check(valid.clone()).expect("the raw call works");
    let answer = CheckResponse::decode(answer.as_slice()).unwrap();
    assert_eq!(code(&answer), OK, "{answer:?}");
    for (what, body) in [
        ("0xff bytes", vec![0xff; 64]),
        (
            "a truncated CheckRequest",
            valid[..valid.len() - 3].to_vec(),
        ),
        (
            "a length past the end",
            vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2],
        ),
        ("a wrong wire type", vec![0x0b, 0x0c]),
    ] {
        match authz.raw_check(body) {
            Err(status) => {
                assert_ne!(status.code(), tonic::Code::Ok, "{what}");
                eprintln!("{what}: {:?} {}", status.code(), status.message());
            }
            Ok(bytes) => {
                // prost may read some of these as a (partial) message: then
                // the answer must be a clean CheckResponse.
                let answer = CheckResponse::decode(bytes.as_slice())
                    .unwrap_or_else(|e| panic!("{what}: not a CheckResponse: {e}"));
                assert!(
                    [INVALID_ARGUMENT, PERMISSION_DENIED, OK].contains(&code(&answer)),
                    "{what}: {answer:?}"
                );
                eprintln!("{what}: answered {:?}", answer.status);
            }
        }
        still_answers(&mut authz, what);
    }
    // A raw call of an unknown method: UNIMPLEMENTED.
    let mut grpc = tonic::client::Grpc::new(authz.channel.clone());
    let unknown: Result<tonic::Response<Vec<u8>>, tonic::Status> = authz.runtime.block_on(async {
        tokio::time::timeout(WAIT, async {
            grpc.ready().await.unwrap();
            grpc.unary(
                tonic::Request::new(Vec::new()),
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/envoy.service.auth.v3.Authorization/Nope",
                ),
                RawCodec,
            )
            .await
        })
        .await
        .unwrap()
    });
    assert_eq!(
        unknown.unwrap_err().code(),
        tonic::Code::Unimplemented,
        "an unknown method"
    );
    still_answers(&mut authz, "an unknown method");
}

// ---------------------------------------------------------------------------
// 3. Health, readiness, reload, metrics and the decision log.

#[test]
fn a_broken_policy_at_start_is_not_served_until_fixed() {
    let dir = Dir::new("broken");
    std::fs::write(dir.path("policy.sluice"), "server web {\n  port 8080\n").unwrap();
    let mut authz = Authz::start(
        dir,
        "source = \"policy.sluice\"\nwatch-interval-ms = 50",
        "",
    );
    for service in ["", AUTHORIZATION] {
        let status = authz.health(service);
        assert_eq!(
            status.as_ref().map_err(|e| e.code()),
            Ok(&(ServingStatus::NotServing as i32)),
            "`{service}` without a policy"
        );
        eprintln!("health of {service:?} without a policy: {status:?}");
    }
    let (status, body) = authz.admin("GET", "/ready");
    assert_eq!(status, 503, "{body}");
    let check = Check::http(8080, "GET", "/api").from("10.0.0.1");
    let response = authz.answer(check.build(Form::Http1));
    assert_eq!(code(&response), UNAVAILABLE, "{response:?}");
    assert_eq!(denied_status(&response), Some(503), "{response:?}");
    assert_eq!(
        denied_header(&response, "x-sluice-error"),
        Some("not-ready"),
        "{response:?}"
    );
    let grpc = Check::http(8080, "POST", "/pkg.Svc/M")
        .from("10.0.0.1")
        .header("content-type", b"application/grpc");
    let response = authz.answer(grpc.build(Form::Http2));
    assert_eq!(code(&response), UNAVAILABLE, "{response:?}");
    assert_eq!(
        denied_header(&response, "grpc-status"),
        Some("14"),
        "{response:?}"
    );
    assert_eq!(denied_status(&response), Some(503), "{response:?}");

    // Fixed: the watch loads it, and the service becomes SERVING.
    let policy = authz.dir.path("policy.sluice");
    std::fs::write(&policy, POLICY).unwrap();
    authz.wait_serving("");
    authz.wait_serving(AUTHORIZATION);
    let (status, body) = authz.admin("GET", "/ready");
    assert_eq!(status, 200, "{body}");
    let response = authz.answer(check.build(Form::Http1));
    assert_eq!(code(&response), OK, "{response:?}");
    let response = authz.answer(check.clone().from("192.0.2.1").build(Form::Http1));
    assert_eq!(code(&response), PERMISSION_DENIED, "{response:?}");
}

/// The value of the series in `metrics` named `family` whose labels
/// include every one of `labels` (`name="value"`), summed.
fn metric(metrics: &str, family: &str, labels: &[&str]) -> u64 {
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(family)?;
            let (series, value) = rest.rsplit_once(' ')?;
            let ok = labels.iter().all(|label| series.contains(label));
            ok.then(|| value.parse::<f64>().ok())?
        })
        .map(|v| v as u64)
        .sum()
}

#[test]
fn reload_metrics_and_the_decision_log() {
    let dir = Dir::new("reload");
    std::fs::write(dir.path("policy.sluice"), POLICY).unwrap();
    let mut authz = Authz::start(
        dir,
        "source = \"policy.sluice\"\nwatch-interval-ms = 50",
        "",
    );
    authz.wait_serving("");
    authz.wait_serving(AUTHORIZATION);
    assert_eq!(
        authz.health("no.such.Service").map_err(|e| e.code()),
        Err(tonic::Code::NotFound)
    );
    let first = authz.policy_hash().expect("a policy is loaded");

    // Checks of every kind; no add-headers configured, so none added.
    let allowed = Check::http(8080, "GET", "/api/a").from("10.0.0.1");
    let denied_rule = Check::http(8080, "GET", "/api/b").from("192.0.2.7");
    let no_route = Check::http(8080, "GET", "/nothing").from("10.0.0.1");
    let connection = Check {
        port: Some(5432),
        identity: Some("spiffe://td/ns/a/sa/b".into()),
        ..Check::default()
    };
    let sent = [
        (&allowed, Form::Http1),
        (&allowed, Form::Http2Raw),
        (&denied_rule, Form::Http2),
        (&no_route, Form::Http1),
        (&connection, Form::Tcp),
    ];
    let policy = authz.dir.path("policy.sluice");
    let requests: Vec<Value> = sent.iter().map(|(c, f)| c.eval_request(*f)).collect();
    let expected = eval(&policy, &requests);
    for ((check, form), expected) in sent.iter().zip(&expected) {
        let response = authz.answer(check.build(*form));
        let problems = compare(&response, expected, check, *form, NO_HEADERS);
        assert!(problems.is_empty(), "{problems:?}: {response:?}");
    }
    let bad = authz.answer(CheckRequest::default());
    assert_bad_check(&bad, "an empty check");

    // Metrics as the proxy counts them.
    let (status, metrics) = authz.admin("GET", "/metrics");
    assert_eq!(status, 200);
    let requests_total = "sluice_inbound_requests_total{";
    let web = "server=\"web\"";
    assert_eq!(
        metric(
            &metrics,
            requests_total,
            &[web, "route=\"api\"", "rule=\"local\"", "decision=\"allow\""]
        ),
        2,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            requests_total,
            &[web, "route=\"api\"", "decision=\"deny\""]
        ),
        1,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, requests_total, &[web, "decision=\"no-route\""]),
        1,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "sluice_inbound_connections_total{",
            &["server=\"db\"", "rule=\"anyone\"", "decision=\"allow\""]
        ),
        1,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "sluice_inbound_bad_requests_total{",
            &["reason=\"check\""]
        ),
        1,
        "{metrics}"
    );
    // By result, and the time of each of the six checks.
    for (result, n) in [("ok", 3), ("denied", 2), ("bad-check", 1)] {
        let label = format!("result=\"{result}\"");
        assert_eq!(
            metric(&metrics, "sluice_authz_checks_total{", &[&label]),
            n,
            "{result} in {metrics}"
        );
    }
    assert_eq!(
        metric(&metrics, "sluice_authz_check_duration_seconds_count", &[]),
        6,
        "{metrics}"
    );

    // The decision log replays with eval to the same decisions.
    let log_path = authz.dir.path("decisions.jsonl");
    let deadline = Instant::now() + WAIT;
    let log = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.lines().count() >= sent.len() || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One line per decided check (the connection check too); the bad
    // check has none.
    assert_eq!(lines.len(), sent.len(), "{log}");
    assert!(
        lines.iter().any(|l| l["request"]["port"] == 5432
            && l["request"].get("path").is_none()
            && l["request"]["peer"]["identity"] == "spiffe://td/ns/a/sa/b"),
        "the connection check is not logged: {log}"
    );
    for line in &lines {
        assert_eq!(line["bundle"], first.as_str(), "{line}");
    }
    let paths: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["request"]["path"].as_str())
        .collect();
    for path in ["/api/a", "/api/b", "/nothing"] {
        assert!(paths.contains(&path), "{path} not logged: {log}");
    }
    for line in &lines {
        let names: Vec<&str> = match &line["request"]["headers"] {
            Value::Object(map) => map.keys().map(String::as_str).collect(),
            Value::Array(pairs) => pairs.iter().filter_map(|p| p[0].as_str()).collect(),
            _ => Vec::new(),
        };
        assert!(
            names.iter().all(|n| !n.starts_with(':')),
            "pseudo-headers logged: {line}"
        );
    }
    let replayed = eval_lines(&policy, &log, lines.len());
    for (line, replay) in lines.iter().zip(&replayed) {
        assert_eq!(replay["changed"], false, "{line}\n{replay}");
        let decision = replay.get("recorded").unwrap_or(&line["decision"]);
        assert_eq!(decision, &line["decision"], "{replay}");
    }
    for (i, (check, _)) in sent
        .iter()
        .enumerate()
        .filter(|(_, (_, f))| *f != Form::Tcp)
    {
        let logged = lines
            .iter()
            .find(|l| l["request"]["path"] == check.path.as_str())
            .unwrap();
        assert_eq!(
            logged["decision"]["decision"], expected[i]["decision"],
            "{logged}"
        );
        assert_eq!(
            logged["decision"]["route"], expected[i]["route"],
            "{logged}"
        );
    }

    // A policy change is picked up by the watch, then by the next checks.
    std::fs::write(&policy, POLICY.replace("10.0.0.0/8", "192.0.2.0/24")).unwrap();
    let deadline = Instant::now() + WAIT;
    while authz.policy_hash().as_deref() == Some(first.as_str()) {
        assert!(Instant::now() < deadline, "no reload: {}", authz.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let response = authz.answer(allowed.build(Form::Http1));
    assert_eq!(code(&response), PERMISSION_DENIED, "{response:?}");
    let response = authz.answer(denied_rule.build(Form::Http1));
    assert_eq!(code(&response), OK, "{response:?}");
    authz.wait_serving(AUTHORIZATION);
    authz.assert_running();
}

#[test]
fn a_configured_port_decides_every_check_and_authz_needs_its_table() {
    let dir = Dir::new("port");
    std::fs::write(dir.path("policy.sluice"), POLICY).unwrap();
    // Without `[authz]`: exit 2, and a message.
    std::fs::write(
        dir.path("proxy.toml"),
        "[policy]\nsource = \"policy.sluice\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["authz", "--config"])
        .arg(dir.path("proxy.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("[authz]"), "{stderr}");

    let mut authz = Authz::start(
        dir,
        "source = \"policy.sluice\"\nwatch = false",
        "port = 8080\nadd-headers = [\"route\", \"rule\"]",
    );
    authz.wait_serving(AUTHORIZATION);
    // No destination, or another port: decided on 8080 all the same.
    let mut check = Check::http(8080, "GET", "/api/x").from("10.0.0.1");
    check.port = None;
    let response = authz.answer(check.build(Form::Http1));
    assert_eq!(code(&response), OK, "{response:?}");
    let ok = ok_response(&response).unwrap();
    assert_eq!(header(&ok.headers, "x-sluice-route"), Some("web.api"));
    assert_eq!(header(&ok.headers, "x-sluice-rule"), Some("local"));
    check.port = Some(5432);
    let response = authz.answer(check.build(Form::Http2Raw));
    assert_eq!(code(&response), OK, "{response:?}");
    let response = authz.answer(check.clone().from("192.0.2.1").build(Form::Http2));
    assert_eq!(code(&response), PERMISSION_DENIED, "{response:?}");
    assert_eq!(denied_status(&response), Some(403));
    assert_eq!(
        denied_header(&response, "x-sluice-error"),
        Some("forbidden")
    );
    // A connection check on 8080 (an http server) cannot be decided.
    check.port = None;
    assert_bad_check(
        &authz.answer(check.build(Form::Tcp)),
        "a connection check on the configured http port",
    );
    authz.assert_running();
}
