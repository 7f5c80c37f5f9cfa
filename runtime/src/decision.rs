//! Decisions: what the runtime answers, borrowing names from the bundle.

/// Why a decision came out as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// An allow or deny rule matched.
    Rule,
    /// No rule matched: a server, mesh or egress default decided.
    Default,
    /// Routed by a declared service.
    Service,
    /// No route of the server or service matched.
    NoRoute,
    /// The path could not be normalized.
    BadPath,
}

impl Reason {
    /// The name used in JSON (`rule`, `default`, `service`, `no-route`, `bad-path`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rule => "rule",
            Reason::Default => "default",
            Reason::Service => "service",
            Reason::NoRoute => "no-route",
            Reason::BadPath => "bad-path",
        }
    }
}

/// A declared service, by its position in the bundle: look it up with
/// [`Bundle::service_by_id`](crate::Bundle::service_by_id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub(crate) u32);

/// A route of a server or service, by its precedence rank there: look up a
/// service route with [`Bundle::service_route`](crate::Bundle::service_route).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(pub(crate) u32);

/// A backend of a service, by its position in the service's backends (the
/// index `failover` uses): look it up with
/// [`ServiceSettings::backend`](crate::ServiceSettings::backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId(pub(crate) u32);

impl ServiceId {
    /// The service's position in declaration order, from 0.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl RouteId {
    /// The route's precedence rank, from 0.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl BackendId {
    /// The backend's position in its service's backends, from 0.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The backend at position `index` of its service's backends.
    pub const fn new(index: u32) -> BackendId {
        BackendId(index)
    }
}

/// A backend of a taken service route, with its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightedBackend<'a> {
    /// The backend's name.
    pub name: &'a str,
    /// The backend, for lookups without its name.
    pub id: BackendId,
    /// Its weight (0 sends nothing).
    pub weight: u32,
}

/// The answer for one request. Names borrow from the bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Allowed (also when only an audit server let it through).
    pub allow: bool,
    /// Why.
    pub reason: Reason,
    /// The inbound server, if one covers the port.
    pub server: Option<&'a str>,
    /// The route taken (server or service route).
    pub route: Option<&'a str>,
    /// The route taken, by rank in its server or service.
    pub route_id: Option<RouteId>,
    /// The rule that decided (or would have, under audit).
    pub rule: Option<&'a str>,
    /// Allowed only because the server is in audit mode.
    pub audit: bool,
    /// Status of an HTTP denial.
    pub http_status: Option<u16>,
    /// gRPC status of a denial answered in gRPC.
    pub grpc_status: Option<u8>,
    /// The outbound service that routed the request.
    pub service: Option<&'a str>,
    /// The outbound service that routed the request, by id.
    pub service_id: Option<ServiceId>,
    /// The taken service route's backends in `to` order.
    pub backends: &'a [WeightedBackend<'a>],
    /// Whole-request timeout in milliseconds.
    pub timeout_ms: Option<u64>,
}

impl<'a> Decision<'a> {
    /// A decision with only `allow` and `reason` set.
    pub const fn new(allow: bool, reason: Reason) -> Self {
        Decision {
            allow,
            reason,
            server: None,
            route: None,
            route_id: None,
            rule: None,
            audit: false,
            http_status: None,
            grpc_status: None,
            service: None,
            service_id: None,
            backends: &[],
            timeout_ms: None,
        }
    }
}

/// A request the runtime cannot decide, e.g. a connection to an HTTP
/// server. Names borrow from the bundle, so an error never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError<'a> {
    /// A request without method and path sent to an `http` or `grpc` server.
    ConnectionToHttpServer {
        /// The server's name.
        server: &'a str,
    },
    /// An outbound request with neither authority nor IP and port, or HTTP without authority.
    Incomplete {
        /// What is missing.
        what: &'static str,
    },
    /// An authority that is not `host[:port]`.
    BadAuthority,
}

impl std::fmt::Display for RequestError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::ConnectionToHttpServer { server } => write!(
                f,
                "a connection (no method and path) cannot be sent to the HTTP server `{server}`"
            ),
            RequestError::Incomplete { what } => write!(f, "incomplete request: {what}"),
            RequestError::BadAuthority => write!(f, "the authority is not `host[:port]`"),
        }
    }
}

impl std::error::Error for RequestError<'_> {}
