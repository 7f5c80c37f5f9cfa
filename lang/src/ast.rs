//! The abstract syntax tree of a policy, faithful to the source.
//!
//! Every statement keeps its [`Span`]; nothing is checked here beyond the
//! grammar: repeated statements, out-of-range numbers, bad addresses and so on
//! are kept as written and reported by the compiler's checks.

/// Index of a file in [`Policy::files`].
pub type FileId = u32;

/// Where a node starts and ends in its source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    /// The file, an index into [`Policy::files`].
    pub file: FileId,
    /// Byte offset of the first byte.
    pub start: u32,
    /// Byte offset one past the last byte.
    pub end: u32,
    /// 1-based line of `start`.
    pub line: u32,
    /// 1-based column of `start`, counted in characters.
    pub column: u32,
}

/// A value with the span it was written at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub node: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wraps `node` with `span`.
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

/// A name (`[a-z][a-z0-9-]*`; length is checked by the compiler).
pub type Name = Spanned<String>;
/// A string literal, escapes already decoded.
pub type Str = Spanned<String>;
/// An integer literal; values that overflow `u64` saturate to `u64::MAX`.
pub type Int = Spanned<u64>;

/// One source file of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Path as shown to users (relative to the policy root, `/`-separated).
    pub path: String,
    /// The full text.
    pub text: String,
}

/// A whole policy: its files and their items in declaration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Source files in byte order of their relative paths.
    pub files: Vec<SourceFile>,
    /// Items of all files, in declaration order.
    pub items: Vec<Item>,
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `mesh { ... }`
    Mesh(Mesh),
    /// `server NAME { ... }`
    Server(Server),
    /// `allow|deny NAME { ... }`
    Rule(Rule),
    /// `egress { ... }`
    Egress(Egress),
    /// `service NAME { ... }`
    Service(Service),
}

/// A server or mesh default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Default {
    /// `allow`
    Allow,
    /// `deny`
    Deny,
    /// `audit`
    Audit,
    /// `authenticated`
    Authenticated,
}

/// `mesh { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mesh {
    /// Span of the `mesh` keyword.
    pub span: Span,
    /// Statements in source order.
    pub stmts: Vec<Spanned<MeshStmt>>,
}

/// A statement of the `mesh` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeshStmt {
    /// `trust-domain STRING`
    TrustDomain(Str),
    /// `default DEFAULT`
    Default(Spanned<Default>),
}

/// Application protocol of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `http` (HTTP/1.1, HTTP/2 and gRPC)
    Http,
    /// `grpc`
    Grpc,
    /// `tcp` (opaque, decided per connection)
    Tcp,
}

/// One element of a port list: a port or an inclusive range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: Int,
    /// Last port, when written as a range.
    pub last: Option<Int>,
}

/// `server NAME { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Span of the `server` keyword.
    pub span: Span,
    /// The server's name.
    pub name: Name,
    /// Statements in source order.
    pub stmts: Vec<Spanned<ServerStmt>>,
}

/// A statement of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerStmt {
    /// `port PORTS`
    Port(Vec<PortRange>),
    /// `protocol http|grpc|tcp`
    Protocol(Spanned<Protocol>),
    /// `default DEFAULT`
    Default(Spanned<Default>),
    /// `route NAME { ... }`
    Route(Route),
}

/// `route NAME { ... }`, in a server or a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Span of the `route` keyword.
    pub span: Span,
    /// The route's name.
    pub name: Name,
    /// Statements in source order.
    pub stmts: Vec<Spanned<RouteStmt>>,
}

/// How a `path` statement matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// `path STRING`
    Exact(Str),
    /// `path prefix STRING`
    Prefix(Str),
    /// `path regex STRING`
    Regex(Str),
}

/// How a header or query value matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueMatch {
    /// `= STRING`
    Exact(Str),
    /// `~ STRING`
    Regex(Str),
    /// `present`
    Present,
}

/// A backend named in a `to` list, with its optional weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedName {
    /// The backend's name.
    pub name: Name,
    /// The weight, when written.
    pub weight: Option<Int>,
}

/// A statement of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteStmt {
    /// `method METHOD, ...`
    Method(Vec<Spanned<String>>),
    /// `path ...`
    Path(PathMatch),
    /// `grpc STRING`
    Grpc(Str),
    /// `header STRING value_match`
    Header(Str, ValueMatch),
    /// `query STRING value_match`
    Query(Str, ValueMatch),
    /// `to NAME INT?, ...` (service routes only)
    To(Vec<WeightedName>),
    /// `timeout DURATION` (service routes only)
    Timeout(Duration),
    /// `retry { ... }` (service routes only)
    Retry(Retry),
}

/// A duration literal (`500ms`, `2s`, `1m`, `1h`), in milliseconds,
/// saturating at `u64::MAX`.
pub type Duration = Spanned<u64>;
/// A percentage literal (`20%`); the number before `%`, saturating.
pub type Percent = Spanned<u64>;

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `allow`
    Allow,
    /// `deny`
    Deny,
}

/// `allow|deny NAME { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Span of the `allow`/`deny` keyword.
    pub span: Span,
    /// Allow or deny.
    pub effect: Effect,
    /// The rule's name.
    pub name: Name,
    /// Statements in source order.
    pub stmts: Vec<Spanned<RuleStmt>>,
}

/// A rule target: `server` or `server.route`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The server's name.
    pub server: Name,
    /// The route's name, when written.
    pub route: Option<Name>,
    /// The whole target.
    pub span: Span,
}

/// A statement of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleStmt {
    /// `to TARGET, ...`
    To(Vec<Target>),
    /// `from PRINCIPAL`
    From(Principal),
}

/// A network token as written (`10.0.0.0/8`, `::1`), checked by the compiler.
pub type Net = Spanned<String>;

/// A network set: `NET, ... except NET, ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Networks {
    /// The listed networks.
    pub include: Vec<Net>,
    /// The `except` networks (possibly empty).
    pub except: Vec<Net>,
}

/// A principal of a `from` clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// `any`
    Any,
    /// `authenticated`
    Authenticated,
    /// `identity STRING, ...`
    Identity(Vec<Str>),
    /// `namespace STRING, ...`
    Namespace(Vec<Str>),
    /// `network NET, ... except NET, ...`
    Network(Networks),
}

/// `egress { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    /// Span of the `egress` keyword.
    pub span: Span,
    /// Statements in source order.
    pub stmts: Vec<Spanned<EgressStmt>>,
}

/// A statement of the egress block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressStmt {
    /// `default allow|deny`
    Default(Spanned<Effect>),
    /// `allow|deny NAME { ... }`
    Rule(EgressRule),
}

/// An egress destination rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressRule {
    /// Span of the `allow`/`deny` keyword.
    pub span: Span,
    /// Allow or deny.
    pub effect: Effect,
    /// The rule's name.
    pub name: Name,
    /// Statements in source order.
    pub stmts: Vec<Spanned<DestStmt>>,
}

/// A statement of an egress rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestStmt {
    /// `host STRING, ...`
    Host(Vec<Str>),
    /// `network NET, ... except NET, ...`
    Network(Networks),
    /// `port PORTS`
    Port(Vec<PortRange>),
}

/// `service NAME { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Span of the `service` keyword.
    pub span: Span,
    /// The service's name.
    pub name: Name,
    /// Statements in source order.
    pub stmts: Vec<Spanned<ServiceStmt>>,
}

/// A statement of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceStmt {
    /// `authority STRING, ...`
    Authority(Vec<Str>),
    /// `timeout DURATION`
    Timeout(Duration),
    /// `retry { ... }`
    Retry(Retry),
    /// `circuit-breaker { ... }`
    CircuitBreaker(CircuitBreaker),
    /// `backend NAME { ... }`
    Backend(Backend),
    /// `route NAME { ... }`
    Route(Route),
}

/// An endpoint as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `a.b.c.d:port` or `[v6]:port`, the raw token, checked by the compiler.
    Addr(String),
    /// `"host.name:port"`, resolved by DNS at run time.
    Name(String),
}

/// `backend NAME { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Span of the `backend` keyword.
    pub span: Span,
    /// The backend's name.
    pub name: Name,
    /// Statements in source order.
    pub stmts: Vec<Spanned<BackendStmt>>,
}

/// A statement of a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendStmt {
    /// `endpoint ENDPOINT, ...`
    Endpoint(Vec<Spanned<Endpoint>>),
    /// `identity STRING`
    Identity(Str),
    /// `cluster STRING`
    Cluster(Str),
    /// `failover NAME`
    Failover(Name),
    /// `max-in-flight INT`
    MaxInFlight(Int),
}

/// A retry condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    /// `5xx`: any 500-599
    ServerError,
    /// `gateway-error`: 502, 503, 504
    GatewayError,
    /// `reset`: connection refused or reset before a response
    Reset,
    /// An HTTP status code
    Status(u64),
    /// `cancelled`
    Cancelled,
    /// `deadline-exceeded`
    DeadlineExceeded,
    /// `internal`
    Internal,
    /// `resource-exhausted`
    ResourceExhausted,
    /// `unavailable`
    Unavailable,
}

/// `retry { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Span of the `retry` keyword.
    pub span: Span,
    /// Statements in source order.
    pub stmts: Vec<Spanned<RetryStmt>>,
}

/// A statement of a retry block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryStmt {
    /// `attempts INT`
    Attempts(Int),
    /// `on COND, ...`
    On(Vec<Spanned<Cond>>),
    /// `per-try-timeout DURATION`
    PerTryTimeout(Duration),
    /// `budget PERCENT`
    Budget(Percent),
}

/// `circuit-breaker { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Span of the `circuit-breaker` keyword.
    pub span: Span,
    /// Statements in source order.
    pub stmts: Vec<Spanned<BreakerStmt>>,
}

/// A statement of a circuit-breaker block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakerStmt {
    /// `consecutive-failures INT`
    ConsecutiveFailures(Int),
    /// `backoff DURATION DURATION`
    Backoff(Duration, Duration),
    /// `jitter PERCENT`
    Jitter(Percent),
}
