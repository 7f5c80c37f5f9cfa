//! The bundle: bytes written by the compiler, validated and borrowed here.
//!
//! Layout (all integers little-endian; details in `docs/bundle.md`):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `SLUICEB\0` |
//! | 8..12 | format version |
//! | 12..16 | flags (zero) |
//! | 16..24 | xxh3-64 of every byte from 24 to the end |
//! | 24..32 | total length |
//! | 32..36 | length of the tables |
//! | 36..40 | number of DFAs |
//! | 40..48 | offset of the DFA directory |
//! | 48.. | tables, then the DFA directory, then DFAs, each 8-byte aligned |

#[cfg(feature = "encode")]
pub mod encode;
mod load;
mod read;
pub mod schema;
#[cfg(feature = "encode")]
mod write;

pub use load::LoadError;

use crate::decision::{BackendId, RouteId, ServiceId, WeightedBackend};
use crate::literals::LiteralTable;
use regex_automata::dfa::{dense, sparse, Automaton};

/// Magic bytes at the start of every bundle.
pub const MAGIC: [u8; 8] = *b"SLUICEB\0";
/// Bundle format version this runtime reads, and the only one it loads.
/// Bump it with every change of the layout (`schema.rs` has a test for
/// that; `docs/bundle.md`, "Format versions", has the rule).
pub const FORMAT_VERSION: u32 = 3;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 48;

/// A DFA borrowed from bundle bytes.
pub(crate) type Dfa<'a> = dense::DFA<&'a [u32]>;

/// The label a serialized sparse DFA starts with (regex-automata's own).
pub(crate) const SPARSE_LABEL: &[u8] = b"rust-regex-automata-dfa-sparse\0";

/// An automaton of a pattern set, borrowed from bundle bytes: dense, or
/// sparse where the compiler found the dense one large (smaller, slower to
/// walk).
#[derive(Clone, Debug)]
pub(crate) enum SetDfa<'a> {
    Dense(Dfa<'a>),
    Sparse(sparse::DFA<&'a [u8]>),
}

impl SetDfa<'_> {
    pub(crate) fn pattern_len(&self) -> usize {
        match self {
            SetDfa::Dense(d) => d.pattern_len(),
            SetDfa::Sparse(d) => d.pattern_len(),
        }
    }

    pub(crate) fn memory_usage(&self) -> usize {
        match self {
            SetDfa::Dense(d) => d.memory_usage(),
            SetDfa::Sparse(d) => d.memory_usage(),
        }
    }
}

/// An owned, 8-byte aligned copy of bundle bytes (e.g. read from a file),
/// from which a [`Bundle`] borrows.
#[derive(Clone, Debug, Default)]
pub struct AlignedBytes {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into storage whose first byte is 8-byte aligned.
    pub fn new(bytes: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(bytes.len() + 8);
        let start = (8 - (buf.as_ptr() as usize % 8)) % 8;
        buf.resize(start, 0);
        buf.extend_from_slice(bytes);
        AlignedBytes {
            buf,
            start,
            len: bytes.len(),
        }
    }

    /// The bytes, starting at an 8-byte aligned address.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// A server, mesh or egress default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefaultPolicy {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
    /// Deny, but allow with `audit: true`.
    Audit,
    /// Allow a peer with an identity, deny one without.
    Authenticated,
}

impl DefaultPolicy {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DefaultPolicy::Allow => "allow",
            DefaultPolicy::Deny => "deny",
            DefaultPolicy::Audit => "audit",
            DefaultPolicy::Authenticated => "authenticated",
        }
    }
}

/// The protocol of an inbound server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP requests.
    Http,
    /// gRPC requests (HTTP/2).
    Grpc,
    /// Connections, decided once each.
    Tcp,
}

/// DFAs over one set of patterns, split into chunks; chunk `k` holds the
/// patterns from `first[k]` on.
#[derive(Debug, Default)]
pub(crate) struct DfaSet<'a> {
    pub(crate) dfas: Vec<SetDfa<'a>>,
    pub(crate) first: Vec<u32>,
}

/// A value condition on a header or query parameter.
#[derive(Debug)]
pub(crate) enum ValueCond<'a> {
    Exact(&'a [u8]),
    Regex(u32),
    Present,
}

/// A header or query condition.
#[derive(Debug)]
pub(crate) struct Cond<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: ValueCond<'a>,
}

/// A route in precedence order.
#[derive(Debug)]
pub(crate) struct Route<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) methods: Vec<&'a str>,
    pub(crate) headers: Vec<Cond<'a>>,
    pub(crate) queries: Vec<Cond<'a>>,
    pub(crate) deny_rules: Vec<u32>,
    pub(crate) allow_rules: Vec<u32>,
    pub(crate) backends: Vec<WeightedBackend<'a>>,
    pub(crate) backend_ids: Vec<u32>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) retry: Option<Retry>,
}

/// The routes of a server or service with their path automata.
#[derive(Debug, Default)]
pub(crate) struct RouteSet<'a> {
    /// Exact and prefix paths: per distinct path, the ranks of its exact
    /// routes and of its prefix routes, ascending.
    pub(crate) literal: LiteralTable<'a, 2>,
    /// Regex paths, walked only when no literal route is taken.
    pub(crate) regex: DfaSet<'a>,
    /// Regex pattern id to the ranks of its routes, ascending.
    pub(crate) regex_routes: IdLists,
    /// Ranks of routes without a path condition, ascending.
    pub(crate) any_routes: Vec<u32>,
    /// Routes, index = precedence rank.
    pub(crate) routes: Vec<Route<'a>>,
}

/// Lists of ids stored one after the other in one vector: list `i` ends
/// at `ends[i]` and starts where list `i - 1` ends.
#[derive(Debug, Default)]
pub(crate) struct IdLists {
    ids: Vec<u32>,
    ends: Vec<u32>,
}

impl IdLists {
    /// The number of lists.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// List `i`.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&[u32]> {
        let end = *self.ends.get(i)? as usize;
        let start = match i.checked_sub(1) {
            Some(j) => *self.ends.get(j)? as usize,
            None => 0,
        };
        self.ids.get(start..end)
    }

    /// Every list, in order.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u32]> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The ids of all lists, one after the other.
    pub(crate) fn all(&self) -> &[u32] {
        &self.ids
    }

    /// Appends a list: the ids `push_ids` appends to the ids vector.
    pub(crate) fn push_with<E>(
        &mut self,
        push_ids: impl FnOnce(&mut Vec<u32>) -> Result<(), E>,
        too_many: E,
    ) -> Result<(), E> {
        push_ids(&mut self.ids)?;
        self.ends
            .push(u32::try_from(self.ids.len()).map_err(|_| too_many)?);
        Ok(())
    }
}

/// An authorization rule.
#[derive(Debug)]
pub(crate) struct Rule<'a> {
    pub(crate) name: &'a str,
    pub(crate) deny: bool,
    pub(crate) clauses: Vec<u32>,
}

/// An inbound server.
#[derive(Debug)]
pub(crate) struct Server<'a> {
    pub(crate) name: &'a str,
    pub(crate) protocol: Protocol,
    pub(crate) default: DefaultPolicy,
    pub(crate) ports: Vec<(u16, u16)>,
    pub(crate) routes: RouteSet<'a>,
}

/// Sorted disjoint address intervals, each with ids; and each id's targets.
#[derive(Debug, Default)]
pub(crate) struct NetTable {
    pub(crate) v4: Vec<(u32, u32, Vec<u32>)>,
    pub(crate) v6: Vec<(u128, u128, Vec<u32>)>,
    pub(crate) targets: Vec<Vec<u32>>,
}

/// A retry policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Extra attempts.
    pub attempts: u32,
    /// Conditions.
    pub on: Vec<RetryCond>,
    /// Per-try timeout in milliseconds.
    pub per_try_timeout_ms: Option<u64>,
    /// Budget in percent of requests.
    pub budget_percent: u8,
}

/// A retry condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryCond {
    /// Any 500-599.
    ServerError,
    /// 502, 503, 504.
    GatewayError,
    /// Connection refused or reset before a response.
    Reset,
    /// This HTTP status.
    Status(u16),
    /// This gRPC status code.
    Grpc(u8),
}

/// Circuit breaker settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Failures in a row that open the breaker.
    pub consecutive_failures: u32,
    /// First backoff in milliseconds.
    pub backoff_min_ms: u64,
    /// Longest backoff in milliseconds.
    pub backoff_max_ms: u64,
    /// Jitter in percent.
    pub jitter_percent: u8,
}

/// A backend of a service.
#[derive(Clone, Debug)]
pub struct Backend<'a> {
    /// Name.
    pub name: &'a str,
    /// Endpoints: `ip:port`, `[v6]:port` or `host:port`.
    pub endpoints: Vec<Endpoint<'a>>,
    /// SPIFFE identity to require of the endpoints.
    pub identity: Option<&'a str>,
    /// Cluster label.
    pub cluster: Option<&'a str>,
    /// Index of the failover backend in the service.
    pub failover: Option<u32>,
    /// Concurrent request limit.
    pub max_in_flight: Option<u32>,
}

/// An endpoint of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// A socket address.
    Addr(std::net::SocketAddr),
    /// A DNS name and port, as `host:port`.
    Name(&'a str),
}

/// An outbound service.
#[derive(Debug)]
pub(crate) struct Service<'a> {
    pub(crate) name: &'a str,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) retry: Option<Retry>,
    pub(crate) breaker: Option<CircuitBreaker>,
    pub(crate) backends: Vec<Backend<'a>>,
    pub(crate) routes: RouteSet<'a>,
}

impl<'a> Service<'a> {
    fn settings(&self) -> ServiceSettings<'_, 'a> {
        ServiceSettings {
            name: self.name,
            timeout_ms: self.timeout_ms,
            retry: self.retry.as_ref(),
            breaker: self.breaker.as_ref(),
            backends: &self.backends,
        }
    }
}

/// An egress destination rule.
#[derive(Debug)]
pub(crate) struct EgressRule<'a> {
    pub(crate) name: &'a str,
    pub(crate) deny: bool,
    pub(crate) ports: Vec<(u16, u16)>,
}

/// The egress block.
#[derive(Debug)]
pub(crate) struct Egress<'a> {
    pub(crate) default_deny: bool,
    pub(crate) rules: Vec<EgressRule<'a>>,
    pub(crate) hosts: DfaSet<'a>,
    pub(crate) host_rules: IdLists,
    pub(crate) star_rules: Vec<u32>,
    /// Rules with neither host nor network.
    pub(crate) open_rules: Vec<u32>,
    pub(crate) nets: NetTable,
}

/// The identity patterns of one trust domain: literal patterns and those
/// ending in `/*` or `/**` after a literal in a table, the others as
/// automata over the rest of the SPIFFE ID (its path), and per pattern the
/// clauses it satisfies.
#[derive(Debug)]
pub(crate) struct TrustDomainPatterns<'a> {
    pub(crate) trust_domain: &'a str,
    /// Per literal path, the clauses of the patterns that are that path
    /// (whole), that path and one more segment, and that path and one or
    /// more segments.
    pub(crate) literals: LiteralTable<'a, 3>,
    pub(crate) dfas: DfaSet<'a>,
    pub(crate) clauses: IdLists,
}

/// A loaded, validated bundle borrowing its bytes.
#[derive(Debug)]
pub struct Bundle<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) hash: u64,
    pub(crate) mesh_default: DefaultPolicy,
    pub(crate) clause_count: u32,
    pub(crate) authenticated_clauses: Vec<u32>,
    /// Identity patterns per trust domain, sorted by trust domain.
    pub(crate) identities: Vec<TrustDomainPatterns<'a>>,
    pub(crate) peer_nets: NetTable,
    pub(crate) rules: Vec<Rule<'a>>,
    pub(crate) servers: Vec<Server<'a>>,
    /// Port ranges to server index, sorted by first port.
    pub(crate) ports: Vec<(u16, u16, u32)>,
    pub(crate) services: Vec<Service<'a>>,
    /// Lowercase host, port and service index, sorted by host then port.
    pub(crate) authorities: Vec<(&'a str, u16, u32)>,
    pub(crate) egress: Option<Egress<'a>>,
    pub(crate) value_dfas: Vec<Dfa<'a>>,
    pub(crate) max_routes: usize,
}

/// A declared service's client-side settings, for the outbound proxy.
#[derive(Clone, Copy, Debug)]
pub struct ServiceSettings<'b, 'a> {
    /// The service's name.
    pub name: &'a str,
    /// The service's whole-request timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The service's retry policy.
    pub retry: Option<&'b Retry>,
    /// The circuit breaker settings of its endpoints.
    pub breaker: Option<&'b CircuitBreaker>,
    /// Its backends in declaration order (`failover` indexes this list).
    pub backends: &'b [Backend<'a>],
}

impl<'b, 'a> ServiceSettings<'b, 'a> {
    /// The backend `id` (from a [`WeightedBackend`] of this service).
    pub fn backend(&self, id: BackendId) -> Option<&'b Backend<'a>> {
        self.backends.get(id.index())
    }
}

/// A service route's settings, for the outbound proxy.
#[derive(Clone, Copy, Debug)]
pub struct RouteSettings<'b, 'a> {
    /// The route's name.
    pub name: Option<&'a str>,
    /// Its retry policy: the route's own, else the service's.
    pub retry: Option<&'b Retry>,
    /// Its backends with their weights, in `to` order.
    pub backends: &'b [WeightedBackend<'a>],
}

/// What a bundle holds, for `sluice inspect`.
#[derive(Clone, Debug)]
pub struct Summary<'a> {
    /// The content hash.
    pub hash: u64,
    /// Length in bytes.
    pub len: usize,
    /// The mesh default (`allow`, `deny`, `audit` or `authenticated`).
    pub mesh_default: &'static str,
    /// Inbound servers in declaration order.
    pub servers: Vec<ServerSummary<'a>>,
    /// Number of allow rules.
    pub allow_rules: usize,
    /// Number of deny rules.
    pub deny_rules: usize,
    /// Number of distinct `from` clauses.
    pub clauses: u32,
    /// Outbound services in declaration order.
    pub services: Vec<ServiceSummary<'a>>,
    /// The egress block: whether its default is deny, and its rule count.
    pub egress: Option<(bool, usize)>,
    /// Number of DFAs.
    pub dfa_count: usize,
    /// Bytes of DFAs.
    pub dfa_bytes: usize,
}

/// An inbound server in a [`Summary`].
#[derive(Clone, Debug)]
pub struct ServerSummary<'a> {
    /// Name.
    pub name: &'a str,
    /// Port ranges, first and last port.
    pub ports: Vec<(u16, u16)>,
    /// Protocol.
    pub protocol: Protocol,
    /// Default (`allow`, `deny`, `audit` or `authenticated`).
    pub default: &'static str,
    /// Names of its routes in precedence order.
    pub routes: Vec<&'a str>,
}

/// An outbound service in a [`Summary`].
#[derive(Clone, Debug)]
pub struct ServiceSummary<'a> {
    /// Name.
    pub name: &'a str,
    /// Number of routes.
    pub routes: usize,
    /// Names of its backends in declaration order.
    pub backends: Vec<&'a str>,
}

impl<'a> Bundle<'a> {
    /// The bundle's content hash (xxh3-64 over every byte after the hash field).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The bundle's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The names of the declared services, in declaration order.
    pub fn service_names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.services.iter().map(|s| s.name)
    }

    /// The settings of the service named `name`.
    pub fn service(&self, name: &str) -> Option<ServiceSettings<'_, 'a>> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .map(Service::settings)
    }

    /// The declared services with their ids, in declaration order.
    pub fn services(&self) -> impl Iterator<Item = (ServiceId, ServiceSettings<'_, 'a>)> + '_ {
        (0u32..)
            .zip(&self.services)
            .map(|(i, s)| (ServiceId(i), s.settings()))
    }

    /// The settings of the service `id` (from a [`Decision`](crate::Decision)
    /// of this bundle).
    pub fn service_by_id(&self, id: ServiceId) -> Option<ServiceSettings<'_, 'a>> {
        self.services.get(id.index()).map(Service::settings)
    }

    /// Route `route` of service `service` (both from a
    /// [`Decision`](crate::Decision) of this bundle).
    pub fn service_route(
        &self,
        service: ServiceId,
        route: RouteId,
    ) -> Option<RouteSettings<'_, 'a>> {
        let svc = self.services.get(service.index())?;
        let r = svc.routes.routes.get(route.index())?;
        Some(RouteSettings {
            name: r.name,
            retry: r.retry.as_ref().or(svc.retry.as_ref()),
            backends: &r.backends,
        })
    }

    /// The protocol of the inbound server covering `port`, if one does.
    pub fn server_protocol(&self, port: u16) -> Option<Protocol> {
        let server = self.servers.get(self.server_for(port)? as usize)?;
        Some(server.protocol)
    }

    /// The retry policy of route `route` of service `service`: the route's
    /// own, else the service's.
    pub fn route_retry(&self, service: &str, route: &str) -> Option<&Retry> {
        let svc = self.services.iter().find(|s| s.name == service)?;
        let own = svc
            .routes
            .routes
            .iter()
            .find(|r| r.name == Some(route))
            .and_then(|r| r.retry.as_ref());
        own.or(svc.retry.as_ref())
    }

    /// What the bundle holds.
    pub fn summary(&self) -> Summary<'a> {
        let mut dfa_bytes = 0usize;
        let mut dfa_count = 0usize;
        let mut count = |set: &DfaSet<'_>| {
            for d in &set.dfas {
                dfa_bytes += d.memory_usage();
                dfa_count += 1;
            }
        };
        for td in &self.identities {
            count(&td.dfas);
        }
        for s in &self.servers {
            count(&s.routes.regex);
        }
        for s in &self.services {
            count(&s.routes.regex);
        }
        if let Some(e) = &self.egress {
            count(&e.hosts);
        }
        for d in &self.value_dfas {
            dfa_bytes += d.memory_usage();
            dfa_count += 1;
        }
        let allow_rules = self.rules.iter().filter(|r| !r.deny).count();
        Summary {
            hash: self.hash,
            len: self.bytes.len(),
            mesh_default: self.mesh_default.as_str(),
            servers: self
                .servers
                .iter()
                .map(|s| ServerSummary {
                    name: s.name,
                    ports: s.ports.clone(),
                    protocol: s.protocol,
                    default: s.default.as_str(),
                    routes: s.routes.routes.iter().filter_map(|r| r.name).collect(),
                })
                .collect(),
            allow_rules,
            deny_rules: self.rules.len() - allow_rules,
            clauses: self.clause_count,
            services: self
                .services
                .iter()
                .map(|s| ServiceSummary {
                    name: s.name,
                    routes: s.routes.routes.len(),
                    backends: s.backends.iter().map(|b| b.name).collect(),
                })
                .collect(),
            egress: self
                .egress
                .as_ref()
                .map(|e| (e.default_deny, e.rules.len())),
            dfa_count,
            dfa_bytes,
        }
    }

    /// Fresh scratch space sized for this bundle.
    pub fn create_scratch(&self) -> Scratch {
        Scratch {
            path: Vec::with_capacity(crate::normalize::MAX_PATH_LEN + 8),
            path_normalized: false,
            candidates: Vec::with_capacity(self.max_routes + 1),
            class: self.create_peer_class(),
        }
    }

    /// A fresh peer classification sized for this bundle.
    pub fn create_peer_class(&self) -> PeerClass {
        PeerClass {
            stamps: vec![0; self.clause_count as usize],
            generation: 1,
            has_identity: false,
        }
    }
}

/// Caller-owned scratch space for decisions; create one per thread with
/// [`Bundle::create_scratch`] and reuse it.
#[derive(Clone, Debug)]
pub struct Scratch {
    pub(crate) path: Vec<u8>,
    /// Whether `path` holds the last decided request's normalized path.
    pub(crate) path_normalized: bool,
    pub(crate) candidates: Vec<u32>,
    pub(crate) class: PeerClass,
}

impl Scratch {
    /// The normalized path (spec section 7) of the request decided last
    /// with this scratch space, when that decision normalized it: an HTTP
    /// request to an HTTP or gRPC server, or an outbound HTTP request,
    /// whose path is not bad. `None` otherwise.
    pub fn normalized_path(&self) -> Option<&[u8]> {
        self.path_normalized.then_some(self.path.as_slice())
    }
}

/// What a peer satisfies, computed once per connection by [`Bundle::classify`].
///
/// A clause is satisfied when its stamp equals the current generation, so
/// re-classifying never clears the table.
#[derive(Clone, Debug)]
pub struct PeerClass {
    pub(crate) stamps: Vec<u32>,
    pub(crate) generation: u32,
    pub(crate) has_identity: bool,
}

impl PeerClass {
    /// Whether the classified peer presented a verified identity.
    pub fn has_identity(&self) -> bool {
        self.has_identity
    }

    #[inline]
    pub(crate) fn satisfies(&self, clause: u32) -> bool {
        self.stamps.get(clause as usize) == Some(&self.generation)
    }
}
