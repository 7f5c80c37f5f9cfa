//! The checked, lowered policy: what `ast_to_ir` produces from a policy
//! without errors. Values are validated and normalized; names are resolved
//! to indices; spans are kept for the lint analyses.

use ipnet::IpNet;
use sluice_lang::ast::Span;

// Plain types shared with the runtime's bundle, which reads and writes
// them as they are: defaults, protocols, retry policies (defaults applied:
// 1 attempt on gateway-error and reset, budget 20%) and circuit breakers
// (defaults applied: 7 failures, backoff 1000 to 60000 ms, jitter 50%).
pub use sluice_runtime::bundle::{CircuitBreaker, DefaultPolicy, Protocol, Retry, RetryCond};

/// The whole lowered policy.
#[derive(Clone, Debug)]
pub struct Ir {
    /// The mesh trust domain, if declared.
    pub trust_domain: Option<String>,
    /// The mesh default (`Allow` when unwritten).
    pub mesh_default: DefaultPolicy,
    /// Servers in declaration order.
    pub servers: Vec<Server>,
    /// Authorization rules in declaration order.
    pub rules: Vec<Rule>,
    /// The egress block, if written.
    pub egress: Option<Egress>,
    /// Services in declaration order.
    pub services: Vec<Service>,
}

/// An inbound server.
#[derive(Clone, Debug)]
pub struct Server {
    /// Name.
    pub name: String,
    /// Span of the server's name.
    pub span: Span,
    /// Inclusive port ranges, as written.
    pub ports: Vec<(u16, u16)>,
    /// Protocol (`Http` when unwritten).
    pub protocol: Protocol,
    /// Default (`Deny` when unwritten).
    pub default: DefaultPolicy,
    /// Routes in declaration order (empty: one implicit catch-all route).
    pub routes: Vec<Route>,
}

/// The path condition of a route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathCond {
    /// No path condition, or `path prefix "/"`.
    Any,
    /// `path "/a/b"` (normalized).
    Exact(String),
    /// `path prefix "/a"`: normalized, without trailing `/`, never empty.
    Prefix(String),
    /// `path regex R`: R as written; matches the whole path.
    Regex(String),
}

/// A header or query value condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ValueCond {
    /// `= STRING`: the whole value equals it.
    Exact(String),
    /// `~ R`: R matches the whole value.
    Regex(String),
    /// `present`.
    Present,
}

/// A route of a server or a service.
#[derive(Clone, Debug)]
pub struct Route {
    /// Name.
    pub name: String,
    /// Span of the route's name.
    pub span: Span,
    /// Path condition (`grpc` already turned into a path).
    pub path: PathCond,
    /// Allowed methods; empty means any.
    pub methods: Vec<String>,
    /// Header conditions: lowercase name and condition, in source order.
    pub headers: Vec<(String, ValueCond)>,
    /// Query conditions: key and condition, in source order.
    pub queries: Vec<(String, ValueCond)>,
    /// Service routes: backends (indices into the service's backends) and weights.
    pub to: Vec<(usize, u32)>,
    /// Service routes: the route's timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Service routes: the route's retry policy.
    pub retry: Option<Retry>,
}

/// The precedence key of spec section 6: among matching routes, the smallest wins.
pub type PrecedenceKey = (
    u8,
    std::cmp::Reverse<usize>,
    bool,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
    usize,
);

impl Route {
    /// A route with no conditions (the implicit route of a server without routes).
    pub fn catch_all(name: &str, span: Span) -> Route {
        Route {
            name: name.to_string(),
            span,
            path: PathCond::Any,
            methods: Vec::new(),
            headers: Vec::new(),
            queries: Vec::new(),
            to: Vec::new(),
            timeout_ms: None,
            retry: None,
        }
    }

    /// This route's precedence key when declared at position `decl`:
    /// exact, then prefix (longer first), then regex, then none; a method
    /// before none; more headers; more queries; declaration order.
    pub fn precedence_key(&self, decl: usize) -> PrecedenceKey {
        use std::cmp::Reverse;
        let (kind, len) = match &self.path {
            PathCond::Exact(_) => (0, 0),
            PathCond::Prefix(p) => (1, p.len()),
            PathCond::Regex(_) => (2, 0),
            PathCond::Any => (3, 0),
        };
        (
            kind,
            Reverse(len),
            self.methods.is_empty(),
            Reverse(self.headers.len()),
            Reverse(self.queries.len()),
            decl,
        )
    }
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
}

/// What a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// Index into [`Ir::servers`].
    pub server: usize,
    /// Index into that server's routes, or `None` for the whole server.
    pub route: Option<usize>,
}

/// One alternative of a `from` clause.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalItem {
    /// Everyone.
    Any,
    /// Any peer with a verified identity.
    Authenticated,
    /// Identity patterns (`namespace` already expanded; `"*"` kept as is).
    Identity(Vec<String>),
    /// Networks minus exceptions.
    Network(NetSet),
}

/// A set of addresses: the union of `include` minus the union of `except`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetSet {
    /// Listed networks (host bits clear).
    pub include: Vec<IpNet>,
    /// Exceptions, each inside some listed network.
    pub except: Vec<IpNet>,
}

/// A `from` clause: the peer must satisfy one of its items.
pub type Clause = Vec<PrincipalItem>;

/// An allow or deny rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Name.
    pub name: String,
    /// Span of the rule's name.
    pub span: Span,
    /// Allow or deny.
    pub effect: Effect,
    /// Targets, in source order.
    pub targets: Vec<Target>,
    /// `from` clauses; the peer must satisfy all.
    pub clauses: Vec<Clause>,
}

/// The egress block.
#[derive(Clone, Debug)]
pub struct Egress {
    /// Default (`Deny` when unwritten).
    pub default: Effect,
    /// Destination rules in declaration order.
    pub rules: Vec<EgressRule>,
}

/// An egress destination rule.
#[derive(Clone, Debug)]
pub struct EgressRule {
    /// Name.
    pub name: String,
    /// Span of the rule's name.
    pub span: Span,
    /// Allow or deny.
    pub effect: Effect,
    /// Host patterns, lowercase, without trailing dot (`*`, `*.x.y`, `x.y`).
    pub hosts: Vec<String>,
    /// Networks, if a `network` statement was written.
    pub networks: Option<NetSet>,
    /// Port ranges; empty means every port.
    pub ports: Vec<(u16, u16)>,
}

/// An outbound service.
#[derive(Clone, Debug)]
pub struct Service {
    /// Name.
    pub name: String,
    /// Span of the service's name.
    pub span: Span,
    /// Authorities: lowercase host without trailing dot, and port (80 when unwritten).
    pub authorities: Vec<(String, u16)>,
    /// Service timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Service retry policy.
    pub retry: Option<Retry>,
    /// Circuit breaker settings (defaults applied).
    pub breaker: Option<CircuitBreaker>,
    /// Backends in declaration order.
    pub backends: Vec<Backend>,
    /// Routes in declaration order.
    pub routes: Vec<Route>,
}

/// An endpoint of a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A socket address.
    Addr(std::net::SocketAddr),
    /// A DNS name and port.
    Name(String, u16),
}

/// A backend of a service.
#[derive(Clone, Debug)]
pub struct Backend {
    /// Name.
    pub name: String,
    /// Span of the backend's name.
    pub span: Span,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
    /// SPIFFE identity to require when originating mTLS.
    pub identity: Option<String>,
    /// Cluster label.
    pub cluster: Option<String>,
    /// Index of the failover backend in the same service.
    pub failover: Option<usize>,
    /// Concurrent request limit.
    pub max_in_flight: Option<u32>,
}
