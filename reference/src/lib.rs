//! Reference interpreter for Sluice policies.
//!
//! [`evaluate`] decides one [`Request`] by walking the AST
//! ([`sluice_lang::ast`]) directly, following sections 4 to 7 of the
//! language spec step by step. It is written to be obviously right, not
//! fast, and shares nothing with the compiler or the runtime but the AST:
//! path normalization, query parsing, header joining, SPIFFE identity
//! matching, host matching, CIDR containment and route precedence are all
//! implemented here again, so that a differential test can compare the two.
//!
//! `evaluate` assumes the policy passed the compiler's checks. Where a
//! checked policy cannot contain something (a repeated once-only statement,
//! a bad network, an invalid identity pattern), the interpreter takes the
//! first occurrence or lets the broken item match nothing. It never panics
//! and is deterministic.

mod authority;
mod identity;
mod inbound;
mod model;
mod net;
mod outbound;
mod path;
mod query;
mod route;
mod value;

use std::net::IpAddr;

use sluice_lang::ast::Policy;

/// Which side of the proxy a request is seen from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A request to the local workload (server-side policy, section 4).
    Inbound,
    /// A request from the local workload (services and egress, section 5).
    Outbound,
}

/// A request as the interpreter sees it: owned, shaped like the JSON of
/// section 10.
///
/// Inbound: `port`, the peer (`peer_ip`, `peer_identity`) and, for HTTP,
/// `method`, `path` (with query) and `headers`; without method and path it
/// is a connection. Outbound: HTTP has `authority`, `method` and `path`; a
/// tunnel (`CONNECT`) has `authority` only; TCP has `ip` and `port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Inbound or outbound.
    pub direction: Direction,
    /// Inbound: the destination port. Outbound: the port of a TCP request.
    pub port: Option<u16>,
    /// The HTTP method, e.g. `GET`.
    pub method: Option<String>,
    /// The raw request target: path, optional query and fragment.
    pub path: Option<String>,
    /// Header `(name, value)` pairs in order; names in any case.
    pub headers: Vec<(String, String)>,
    /// Inbound: the peer's IP address, when known.
    pub peer_ip: Option<IpAddr>,
    /// Inbound: the peer's verified identity, when it presented a certificate.
    pub peer_identity: Option<String>,
    /// Outbound: `Host`/`:authority`, or the `CONNECT` target.
    pub authority: Option<String>,
    /// Outbound: the address the proxy will connect to.
    pub ip: Option<IpAddr>,
}

impl Request {
    /// An inbound request to `port` with nothing else set (a connection
    /// from an unknown, unauthenticated peer).
    pub fn inbound(port: u16) -> Self {
        Request {
            direction: Direction::Inbound,
            port: Some(port),
            method: None,
            path: None,
            headers: Vec::new(),
            peer_ip: None,
            peer_identity: None,
            authority: None,
            ip: None,
        }
    }

    /// An outbound request with nothing set yet.
    pub fn outbound() -> Self {
        Request {
            direction: Direction::Outbound,
            port: None,
            ..Request::inbound(0)
        }
    }
}

/// The decision for one request, with the fields of section 10.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allowed (also when only audit mode let it through).
    pub allow: bool,
    /// Why: `rule`, `default`, `service`, `no-route` or `bad-path`.
    pub reason: &'static str,
    /// The inbound server that covers the port, if any.
    pub server: Option<String>,
    /// The route taken (a server's or a service's); `None` for the
    /// implicit route of a server without routes.
    pub route: Option<String>,
    /// The rule that decided (or would have denied, under audit).
    pub rule: Option<String>,
    /// Allowed only because the server (or mesh default) is `audit`.
    pub audit: bool,
    /// HTTP status of a denial: 403, 404 or 400.
    pub http_status: Option<u16>,
    /// gRPC status of a denial answered in gRPC: 7, 12 or 13.
    pub grpc_status: Option<u8>,
    /// The outbound service that took the request.
    pub service: Option<String>,
    /// Backends of the taken service route with their weights, in `to` order.
    pub backends: Vec<(String, u32)>,
    /// Timeout of a routed request in milliseconds.
    pub timeout_ms: Option<u64>,
}

impl Decision {
    /// A decision with only `allow` and `reason` set.
    fn new(allow: bool, reason: &'static str) -> Self {
        Decision {
            allow,
            reason,
            server: None,
            route: None,
            rule: None,
            audit: false,
            http_status: None,
            grpc_status: None,
            service: None,
            backends: Vec::new(),
            timeout_ms: None,
        }
    }
}

/// Why a request cannot be decided (the requests the spec calls errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A connection (no method and no path) to an `http` or `grpc` server.
    ConnectionToHttpServer,
    /// An outbound request that is neither HTTP (authority, method and
    /// path), a tunnel (authority only) nor TCP (ip and port).
    Incomplete,
    /// An authority that does not parse as `host[:port]`.
    BadAuthority,
}

/// A request that cannot be decided: its kind and a lowercase message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError {
    /// What is wrong.
    pub kind: ErrorKind,
    /// Says so in words, with user input in backticks.
    pub message: String,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RequestError {}

/// Decides `request` against `policy`, which must have passed the
/// compiler's checks.
///
/// Returns `Err` (a lowercase message) only for requests the spec calls
/// errors: a connection (no method and no path) to an `http` or `grpc`
/// server; an outbound request that is neither HTTP (authority, method and
/// path), a tunnel (authority only) nor TCP (ip and port); an authority that
/// does not parse. [`evaluate_request`] also tells which.
pub fn evaluate(policy: &Policy, request: &Request) -> Result<Decision, String> {
    evaluate_request(policy, request).map_err(|e| e.message)
}

/// [`evaluate`], with the kind of error of a request that cannot be decided.
pub fn evaluate_request(policy: &Policy, request: &Request) -> Result<Decision, RequestError> {
    let view = model::View::new(policy);
    match request.direction {
        Direction::Inbound => inbound::evaluate(&view, request),
        Direction::Outbound => outbound::evaluate(&view, request),
    }
}

/// Spec section 7, steps 1 to 6, on a raw request target: its normalized
/// path (`None` when the path is a `bad-path`) and its query, as the
/// interpreter sees them. Bytes that are not UTF-8 are replaced first (the
/// path rejects any such byte anyway). For comparing implementations, as
/// the `normalize` fuzz target does.
pub fn normalize_target(target: &[u8]) -> (Option<String>, Option<String>) {
    let target = String::from_utf8_lossy(target);
    let (path_part, query) = path::split_target(&target);
    (path::normalize(path_part), query.map(str::to_owned))
}

/// A service's client-side settings (spec section 5, "Backends, retries,
/// circuit breaking, failover"), with the spec's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSettings {
    /// The service's name.
    pub name: String,
    /// The service's own `timeout` in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The service's `retry` block; `None` without one (no retries).
    pub retry: Option<Retry>,
    /// The service's `circuit-breaker` block; `None` without one.
    pub breaker: Option<Breaker>,
    /// Backends in declaration order.
    pub backends: Vec<Backend>,
    /// Routes in declaration order.
    pub routes: Vec<RouteSettings>,
}

/// The settings of one service route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSettings {
    /// The route's name.
    pub name: String,
    /// The retry policy that applies: the route's own `retry` block, else
    /// the service's (a route's block replaces the service's whole).
    pub retry: Option<Retry>,
}

/// A `retry` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Extra attempts (`attempts`, default 1).
    pub attempts: u32,
    /// Conditions in the order written (default `gateway-error, reset`).
    pub on: Vec<RetryOn>,
    /// `per-try-timeout` in milliseconds (default none).
    pub per_try_timeout_ms: Option<u64>,
    /// `budget` in percent (default 20).
    pub budget_percent: u8,
}

/// A retry condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryOn {
    /// `5xx`: any status 500 to 599.
    ServerError,
    /// `gateway-error`: 502, 503 or 504.
    GatewayError,
    /// `reset`: connection refused or reset before a response.
    Reset,
    /// One HTTP status.
    Status(u16),
    /// A gRPC status by its code (`cancelled` 1, `deadline-exceeded` 4,
    /// `resource-exhausted` 8, `internal` 13, `unavailable` 14).
    Grpc(u8),
}

/// A `circuit-breaker` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breaker {
    /// Failures in a row that eject an endpoint (default 7).
    pub consecutive_failures: u32,
    /// First backoff in milliseconds (default 1 s).
    pub backoff_min_ms: u64,
    /// Longest backoff in milliseconds (default 60 s).
    pub backoff_max_ms: u64,
    /// Jitter in percent (default 50).
    pub jitter_percent: u8,
}

/// A backend of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// The backend's name.
    pub name: String,
    /// Its endpoints in the order written.
    pub endpoints: Vec<Endpoint>,
    /// The SPIFFE identity its endpoints must present (`identity`).
    pub identity: Option<String>,
    /// The `cluster` label.
    pub cluster: Option<String>,
    /// The backend its traffic fails over to (`failover`).
    pub failover: Option<String>,
    /// `max-in-flight`: the bound on concurrent requests.
    pub max_in_flight: Option<u32>,
}

/// An endpoint of a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `a.b.c.d:port` or `[v6]:port`.
    Addr(std::net::SocketAddr),
    /// `"host.name:port"` as written, resolved by DNS at run time.
    Name(String),
}

/// The settings of the service named `name` in `policy` (which must have
/// passed the compiler's checks), or `None` when there is no such service.
pub fn service_settings(policy: &Policy, name: &str) -> Option<ServiceSettings> {
    let view = model::View::new(policy);
    let service = view
        .services
        .iter()
        .copied()
        .find(|s| s.name.node == name)?;
    Some(outbound::settings(service))
}

/// Status codes shared by inbound and outbound denials.
mod status {
    /// HTTP status for a denial by a rule or a default.
    pub const FORBIDDEN: u16 = 403;
    /// HTTP status for `no-route`.
    pub const NOT_FOUND: u16 = 404;
    /// HTTP status for `bad-path`.
    pub const BAD_REQUEST: u16 = 400;

    /// The gRPC status the standard HTTP-to-gRPC mapping gives `http`.
    pub fn grpc_for(http: u16) -> u8 {
        match http {
            403 => 7,  // PERMISSION_DENIED
            404 => 12, // UNIMPLEMENTED
            _ => 13,   // 400 -> INTERNAL
        }
    }

    /// Whether a `content-type` value marks a gRPC request.
    pub fn is_grpc_content_type(value: Option<&[u8]>) -> bool {
        const GRPC: &[u8] = b"application/grpc";
        match value {
            Some(v) => v.len() >= GRPC.len() && v[..GRPC.len()].eq_ignore_ascii_case(GRPC),
            None => false,
        }
    }
}
