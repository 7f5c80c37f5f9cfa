//! Bundle contents as plain data, and their encoder (cargo feature
//! `encode`, which the compiler turns on and the proxy does not build).
//!
//! Each table's `encode` writes what `load.rs` reads, field for field, in
//! the order of [`schema::TABLES`](super::schema::TABLES); its `decode`,
//! beside it, reads the same fields back into the plain form, for tests and
//! tools. Automata are referred to by their index in
//! [`Contents::automata`].

use super::load::LoadError;
use super::load::{default_policy, read_breaker, read_retry};
use super::read::Reader;
use super::schema::Access;
use super::write::Writer;
use super::{Bundle, CircuitBreaker, DefaultPolicy, Protocol, Retry, RetryCond};
use super::{FORMAT_VERSION, HEADER_LEN, MAGIC};

/// Everything a bundle holds: the tables and the serialized automata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contents {
    /// The tables section.
    pub tables: Tables,
    /// Serialized dense DFAs (`write_to_little_endian`), indexed by the tables.
    pub automata: Vec<Vec<u8>>,
}

impl Contents {
    /// The bundle bytes: header, tables, automaton directory and automata,
    /// each 8-byte aligned, with the content hash.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.tables.encode(&mut w);
        assemble(&w.buf, &self.automata)
    }

    /// [`Contents::encode`], also returning every named write of the
    /// tables, in order (see `schema.rs`).
    pub fn encode_logged(&self) -> (Vec<u8>, Vec<Access>) {
        let mut w = Writer::default();
        w.start_log();
        self.tables.encode(&mut w);
        let log = w.take_log();
        (assemble(&w.buf, &self.automata), log)
    }

    /// The contents of `bytes`, which must load ([`Bundle::from_bytes`]
    /// checks them first, so they start at an 8-byte aligned address).
    pub fn decode(bytes: &[u8]) -> Result<Contents, LoadError> {
        Bundle::from_bytes(bytes)?;
        let le_u64 = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(a) as usize
        };
        let le_u32 = |at: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(a) as usize
        };
        let tables_len = le_u32(32);
        let dir = le_u64(40);
        let automata = (0..le_u32(36))
            .map(|i| {
                let (off, len) = (le_u64(dir + i * 16), le_u64(dir + i * 16 + 8));
                bytes[off..off + len].to_vec()
            })
            .collect();
        let mut r = Reader::new(&bytes[HEADER_LEN..HEADER_LEN + tables_len]);
        let tables = Tables::decode(&mut r)?;
        Ok(Contents { tables, automata })
    }
}

/// Lays out header, tables, automaton directory and automata, and hashes
/// them: what `Bundle::load` checks before it reads the tables.
fn assemble(tables: &[u8], automata: &[Vec<u8>]) -> Vec<u8> {
    fn pad8(v: &mut Vec<u8>) {
        while !v.len().is_multiple_of(8) {
            v.push(0);
        }
    }
    let mut out = vec![0u8; HEADER_LEN];
    out.extend_from_slice(tables);
    pad8(&mut out);
    let dir_offset = out.len();
    let mut offset = dir_offset + automata.len() * 16;
    for d in automata {
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        out.extend_from_slice(&(d.len() as u64).to_le_bytes());
        offset += d.len().div_ceil(8) * 8;
    }
    for d in automata {
        out.extend_from_slice(d);
        pad8(&mut out);
    }
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    // 12..16: flags, zero.
    let total = out.len() as u64;
    out[24..32].copy_from_slice(&total.to_le_bytes());
    out[32..36].copy_from_slice(&(tables.len() as u32).to_le_bytes());
    out[36..40].copy_from_slice(&(automata.len() as u32).to_le_bytes());
    out[40..48].copy_from_slice(&(dir_offset as u64).to_le_bytes());
    let hash = xxhash_rust::xxh3::xxh3_64(&out[24..]);
    out[16..24].copy_from_slice(&hash.to_le_bytes());
    out
}

/// The tables section, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    /// The mesh default.
    pub mesh_default: DefaultPolicy,
    /// One automaton per distinct header or query regex.
    pub value_automata: Vec<u32>,
    /// The number of distinct `from` clauses.
    pub clause_count: u32,
    /// Clauses satisfied by any verified identity.
    pub authenticated_clauses: Vec<u32>,
    /// Identity patterns per trust domain, sorted by trust domain.
    pub trust_domains: Vec<TrustDomain>,
    /// Network table whose targets are clauses.
    pub peer_networks: Networks,
    /// Authorization rules in declaration order.
    pub rules: Vec<Rule>,
    /// Inbound servers in declaration order.
    pub servers: Vec<Server>,
    /// Outbound services in declaration order.
    pub services: Vec<Service>,
    /// The egress block, if written.
    pub egress: Option<Egress>,
}

impl Tables {
    fn encode(&self, w: &mut Writer) {
        w.u8("mesh default", default_code(self.mesh_default));
        automata(w, "value automata", &self.value_automata);
        w.u32("clause count", self.clause_count);
        w.ids("authenticated clauses", &self.authenticated_clauses);
        w.len("trust domains", self.trust_domains.len());
        for td in &self.trust_domains {
            td.encode(w);
        }
        self.peer_networks.encode(w);
        w.len("rules", self.rules.len());
        for rule in &self.rules {
            rule.encode(w);
        }
        w.len("servers", self.servers.len());
        for server in &self.servers {
            server.encode(w);
        }
        w.len("services", self.services.len());
        for service in &self.services {
            service.encode(w);
        }
        match &self.egress {
            Some(egress) => {
                w.bool("egress", true);
                egress.encode(w);
            }
            None => w.bool("egress", false),
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Tables, LoadError> {
        let mesh_default = default_policy(r.u8("mesh default")?)?;
        let value_automata = read_automata(r, "value automata")?;
        let clause_count = r.u32("clause count")?;
        let authenticated_clauses = r.ids("authenticated clauses", usize::MAX)?;
        let trust_domains = list(r, "trust domains", TrustDomain::decode)?;
        let peer_networks = Networks::decode(r)?;
        let rules = list(r, "rules", Rule::decode)?;
        let servers = list(r, "servers", Server::decode)?;
        let services = list(r, "services", Service::decode)?;
        let egress = if r.bool("egress")? {
            Some(Egress::decode(r)?)
        } else {
            None
        };
        Ok(Tables {
            mesh_default,
            value_automata,
            clause_count,
            authenticated_clauses,
            trust_domains,
            peer_networks,
            rules,
            servers,
            services,
            egress,
        })
    }
}

fn automata(w: &mut Writer, field: &'static str, ids: &[u32]) {
    w.len(field, ids.len());
    for &id in ids {
        w.u32("automaton", id);
    }
}

fn read_automata(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<u32>, LoadError> {
    list(r, field, |r| r.u32("automaton"))
}

fn list<T>(
    r: &mut Reader<'_>,
    field: &'static str,
    mut item: impl FnMut(&mut Reader<'_>) -> Result<T, LoadError>,
) -> Result<Vec<T>, LoadError> {
    let n = r.len(field, 1)?;
    (0..n).map(|_| item(r)).collect()
}

fn default_code(d: DefaultPolicy) -> u8 {
    match d {
        DefaultPolicy::Allow => 0,
        DefaultPolicy::Deny => 1,
        DefaultPolicy::Audit => 2,
        DefaultPolicy::Authenticated => 3,
    }
}

/// The identity patterns of one trust domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustDomain {
    /// The trust domain.
    pub name: String,
    /// Literal identity paths (distinct), each with its clauses.
    pub literals: Vec<LiteralIdentity>,
    /// Automata over the rest of the SPIFFE ID.
    pub automata: Vec<u32>,
    /// Per pattern, the clauses it satisfies.
    pub pattern_clauses: Vec<Vec<u32>>,
}

impl TrustDomain {
    fn encode(&self, w: &mut Writer) {
        w.str("trust domain", &self.name);
        w.len("literal identities", self.literals.len());
        for l in &self.literals {
            w.bytes("identity path", &l.path);
            w.ids("whole clauses", &l.whole);
            w.ids("one-segment clauses", &l.one_segment);
            w.ids("segments clauses", &l.segments);
        }
        automata(w, "identity automata", &self.automata);
        w.id_lists("pattern clauses", &self.pattern_clauses);
    }

    fn decode(r: &mut Reader<'_>) -> Result<TrustDomain, LoadError> {
        Ok(TrustDomain {
            name: r.str("trust domain")?.to_string(),
            literals: list(r, "literal identities", |r| {
                Ok(LiteralIdentity {
                    path: r.bytes("identity path")?.to_vec(),
                    whole: r.ids("whole clauses", usize::MAX)?,
                    one_segment: r.ids("one-segment clauses", usize::MAX)?,
                    segments: r.ids("segments clauses", usize::MAX)?,
                })
            })?,
            automata: read_automata(r, "identity automata")?,
            pattern_clauses: r.id_lists("pattern clauses", usize::MAX)?,
        })
    }
}

/// A literal identity path after the trust domain (empty, or `/` and
/// segments), with the clauses of the patterns built on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiteralIdentity {
    /// The path.
    pub path: Vec<u8>,
    /// Clauses of the pattern that is this path.
    pub whole: Vec<u32>,
    /// Clauses of the pattern that is this path then `/*`.
    pub one_segment: Vec<u32>,
    /// Clauses of the pattern that is this path then `/**`.
    pub segments: Vec<u32>,
}

/// An elementary address interval, first and last address inclusive
/// (IPv4 in the u32 space), with the atoms covering it.
pub type Interval = (u128, u128, Vec<u32>);

/// A network table: sorted disjoint intervals per family, each with atom
/// ids, and each atom's targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Networks {
    /// IPv4 intervals.
    pub v4: Vec<Interval>,
    /// IPv6 intervals.
    pub v6: Vec<Interval>,
    /// Per atom, its target ids (clauses or egress rules).
    pub atom_targets: Vec<Vec<u32>>,
}

impl Networks {
    fn encode(&self, w: &mut Writer) {
        for (field, family) in [("ipv4 intervals", &self.v4), ("ipv6 intervals", &self.v6)] {
            w.len(field, family.len());
            for (first, last, atoms) in family {
                w.u128("first", *first);
                w.u128("last", *last);
                w.ids("atoms", atoms);
            }
        }
        w.id_lists("atom targets", &self.atom_targets);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Networks, LoadError> {
        let interval = |r: &mut Reader<'_>| {
            Ok((
                r.u128("first")?,
                r.u128("last")?,
                r.ids("atoms", usize::MAX)?,
            ))
        };
        Ok(Networks {
            v4: list(r, "ipv4 intervals", interval)?,
            v6: list(r, "ipv6 intervals", interval)?,
            atom_targets: r.id_lists("atom targets", usize::MAX)?,
        })
    }
}

/// An authorization rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// Name.
    pub name: String,
    /// Deny (else allow).
    pub deny: bool,
    /// Clause ids the peer must all satisfy.
    pub clauses: Vec<u32>,
}

impl Rule {
    fn encode(&self, w: &mut Writer) {
        w.str("name", &self.name);
        w.bool("deny", self.deny);
        w.ids("clauses", &self.clauses);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Rule, LoadError> {
        Ok(Rule {
            name: r.str("name")?.to_string(),
            deny: r.bool("deny")?,
            clauses: r.ids("clauses", usize::MAX)?,
        })
    }
}

/// An inbound server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Name.
    pub name: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Default.
    pub default: DefaultPolicy,
    /// Sorted, merged port ranges.
    pub ports: Vec<(u16, u16)>,
    /// Routes (at least one).
    pub routes: RouteSet,
}

impl Server {
    fn encode(&self, w: &mut Writer) {
        w.str("name", &self.name);
        let protocol = match self.protocol {
            Protocol::Http => 0,
            Protocol::Grpc => 1,
            Protocol::Tcp => 2,
        };
        w.u8("protocol", protocol);
        w.u8("default", default_code(self.default));
        w.ports("ports", &self.ports);
        self.routes.encode(w);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Server, LoadError> {
        Ok(Server {
            name: r.str("name")?.to_string(),
            protocol: match r.u8("protocol")? {
                0 => Protocol::Http,
                1 => Protocol::Grpc,
                2 => Protocol::Tcp,
                _ => return Err(LoadError::Invalid("protocol")),
            },
            default: default_policy(r.u8("default")?)?,
            ports: r.ports("ports")?,
            routes: RouteSet::decode(r)?,
        })
    }
}

/// The routes of a server or service with their path automata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteSet {
    /// Distinct exact and prefix paths, each with its routes' ranks.
    pub literal_paths: Vec<LiteralPath>,
    /// Automata over regex paths.
    pub regex_automata: Vec<u32>,
    /// Per regex pattern, the ranks of its routes.
    pub regex_routes: Vec<Vec<u32>>,
    /// Ranks of routes without a path condition.
    pub routes_without_path: Vec<u32>,
    /// Routes, index = precedence rank.
    pub routes: Vec<Route>,
}

impl RouteSet {
    fn encode(&self, w: &mut Writer) {
        w.len("literal paths", self.literal_paths.len());
        for l in &self.literal_paths {
            w.bytes("path", &l.path);
            w.ids("exact routes", &l.exact);
            w.ids("prefix routes", &l.prefix);
        }
        automata(w, "regex path automata", &self.regex_automata);
        w.id_lists("regex pattern routes", &self.regex_routes);
        w.ids("routes without path", &self.routes_without_path);
        w.len("routes", self.routes.len());
        for route in &self.routes {
            route.encode(w);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<RouteSet, LoadError> {
        Ok(RouteSet {
            literal_paths: list(r, "literal paths", |r| {
                Ok(LiteralPath {
                    path: r.bytes("path")?.to_vec(),
                    exact: r.ids("exact routes", usize::MAX)?,
                    prefix: r.ids("prefix routes", usize::MAX)?,
                })
            })?,
            regex_automata: read_automata(r, "regex path automata")?,
            regex_routes: r.id_lists("regex pattern routes", usize::MAX)?,
            routes_without_path: r.ids("routes without path", usize::MAX)?,
            routes: list(r, "routes", Route::decode)?,
        })
    }
}

/// A literal path with the ranks of its exact and its prefix routes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiteralPath {
    /// The path.
    pub path: Vec<u8>,
    /// Ranks of the routes whose path is exactly this one.
    pub exact: Vec<u32>,
    /// Ranks of the routes whose path prefix is this one.
    pub prefix: Vec<u32>,
}

/// A route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// Name (`None` for a server's implicit route).
    pub name: Option<String>,
    /// Allowed methods; empty means any.
    pub methods: Vec<String>,
    /// Header conditions.
    pub headers: Vec<Cond>,
    /// Query conditions.
    pub queries: Vec<Cond>,
    /// Deny rules that apply.
    pub deny_rules: Vec<u32>,
    /// Allow rules that apply.
    pub allow_rules: Vec<u32>,
    /// Backend indices into the service's backends, with weights.
    pub backends: Vec<(u32, u32)>,
    /// Timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Retry policy.
    pub retry: Option<Retry>,
}

impl Route {
    fn encode(&self, w: &mut Writer) {
        w.opt_str("name", self.name.as_deref());
        w.len("methods", self.methods.len());
        for m in &self.methods {
            w.str("method", m);
        }
        for (field, conds) in [("headers", &self.headers), ("queries", &self.queries)] {
            w.len(field, conds.len());
            for cond in conds {
                cond.encode(w);
            }
        }
        w.ids("deny rules", &self.deny_rules);
        w.ids("allow rules", &self.allow_rules);
        w.len("backends", self.backends.len());
        for &(backend, weight) in &self.backends {
            w.u32("backend", backend);
            w.u32("weight", weight);
        }
        w.opt_u64("timeout ms", self.timeout_ms);
        encode_retry(w, self.retry.as_ref());
    }

    fn decode(r: &mut Reader<'_>) -> Result<Route, LoadError> {
        Ok(Route {
            name: r.opt_str("name")?.map(str::to_string),
            methods: list(r, "methods", |r| r.str("method").map(str::to_string))?,
            headers: list(r, "headers", Cond::decode)?,
            queries: list(r, "queries", Cond::decode)?,
            deny_rules: r.ids("deny rules", usize::MAX)?,
            allow_rules: r.ids("allow rules", usize::MAX)?,
            backends: list(r, "backends", |r| Ok((r.u32("backend")?, r.u32("weight")?)))?,
            timeout_ms: r.opt_u64("timeout ms")?,
            retry: read_retry(r)?,
        })
    }
}

/// The encoder of what `load::read_retry` reads.
fn encode_retry(w: &mut Writer, retry: Option<&Retry>) {
    let Some(r) = retry else {
        w.bool("retry", false);
        return;
    };
    w.bool("retry", true);
    w.u32("attempts", r.attempts);
    w.len("on", r.on.len());
    for c in &r.on {
        let (kind, v) = match *c {
            RetryCond::ServerError => (0u8, 0u16),
            RetryCond::GatewayError => (1, 0),
            RetryCond::Reset => (2, 0),
            RetryCond::Status(s) => (3, s),
            RetryCond::Grpc(g) => (4, u16::from(g)),
        };
        w.u8("condition", kind);
        w.u16("value", v);
    }
    w.opt_u64("per-try timeout ms", r.per_try_timeout_ms);
    w.u8("budget percent", r.budget_percent);
}

/// A header or query condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Header name (lowercase) or query key.
    pub name: String,
    /// What the value must be.
    pub value: ValueCond,
}

/// A value condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueCond {
    /// The whole value equals these bytes.
    Exact(Vec<u8>),
    /// The value automaton at this index of [`Tables::value_automata`] matches.
    Regex(u32),
    /// The header or parameter is present.
    Present,
}

impl Cond {
    fn encode(&self, w: &mut Writer) {
        w.str("name", &self.name);
        match &self.value {
            ValueCond::Exact(v) => {
                w.u8("value", 0);
                w.bytes("value", v);
            }
            ValueCond::Regex(id) => {
                w.u8("value", 1);
                w.u32("value automaton", *id);
            }
            ValueCond::Present => w.u8("value", 2),
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Cond, LoadError> {
        let name = r.str("name")?.to_string();
        let value = match r.u8("value")? {
            0 => ValueCond::Exact(r.bytes("value")?.to_vec()),
            1 => ValueCond::Regex(r.u32("value automaton")?),
            2 => ValueCond::Present,
            _ => return Err(LoadError::Invalid("value condition")),
        };
        Ok(Cond { name, value })
    }
}

/// An outbound service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Service {
    /// Name.
    pub name: String,
    /// Lowercase hosts and ports.
    pub authorities: Vec<(String, u16)>,
    /// Timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Retry policy.
    pub retry: Option<Retry>,
    /// Circuit breaker settings.
    pub breaker: Option<CircuitBreaker>,
    /// Backends in declaration order.
    pub backends: Vec<Backend>,
    /// Routes.
    pub routes: RouteSet,
}

impl Service {
    fn encode(&self, w: &mut Writer) {
        w.str("name", &self.name);
        w.len("authorities", self.authorities.len());
        for (host, port) in &self.authorities {
            w.str("host", host);
            w.u16("port", *port);
        }
        w.opt_u64("timeout ms", self.timeout_ms);
        encode_retry(w, self.retry.as_ref());
        match &self.breaker {
            Some(b) => {
                w.bool("circuit breaker", true);
                w.u32("consecutive failures", b.consecutive_failures);
                w.u64("backoff min ms", b.backoff_min_ms);
                w.u64("backoff max ms", b.backoff_max_ms);
                w.u8("jitter percent", b.jitter_percent);
            }
            None => w.bool("circuit breaker", false),
        }
        w.len("backends", self.backends.len());
        for backend in &self.backends {
            backend.encode(w);
        }
        self.routes.encode(w);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Service, LoadError> {
        Ok(Service {
            name: r.str("name")?.to_string(),
            authorities: list(r, "authorities", |r| {
                Ok((r.str("host")?.to_string(), r.u16("port")?))
            })?,
            timeout_ms: r.opt_u64("timeout ms")?,
            retry: read_retry(r)?,
            breaker: read_breaker(r)?,
            backends: list(r, "backends", Backend::decode)?,
            routes: RouteSet::decode(r)?,
        })
    }
}

/// A backend of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backend {
    /// Name.
    pub name: String,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
    /// SPIFFE identity to require of the endpoints.
    pub identity: Option<String>,
    /// Cluster label.
    pub cluster: Option<String>,
    /// Index of the failover backend in the service.
    pub failover: Option<u32>,
    /// Concurrent request limit.
    pub max_in_flight: Option<u32>,
}

/// An endpoint, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A socket address (`ip:port` or `[v6]:port`).
    Address(String),
    /// A DNS name and port, as `host:port`.
    Name(String),
}

impl Backend {
    fn encode(&self, w: &mut Writer) {
        w.str("name", &self.name);
        w.len("endpoints", self.endpoints.len());
        for e in &self.endpoints {
            let (code, text) = match e {
                Endpoint::Address(text) => (0, text),
                Endpoint::Name(text) => (1, text),
            };
            w.u8("endpoint", code);
            w.str("text", text);
        }
        w.opt_str("identity", self.identity.as_deref());
        w.opt_str("cluster", self.cluster.as_deref());
        w.opt_u64("failover", self.failover.map(u64::from));
        w.opt_u64("max in flight", self.max_in_flight.map(u64::from));
    }

    fn decode(r: &mut Reader<'_>) -> Result<Backend, LoadError> {
        let small = |v: Option<u64>| {
            v.map(u32::try_from)
                .transpose()
                .map_err(|_| LoadError::Invalid("backend index or limit"))
        };
        Ok(Backend {
            name: r.str("name")?.to_string(),
            endpoints: list(r, "endpoints", |r| {
                let code = r.u8("endpoint")?;
                let text = r.str("text")?.to_string();
                match code {
                    0 => Ok(Endpoint::Address(text)),
                    1 => Ok(Endpoint::Name(text)),
                    _ => Err(LoadError::Invalid("endpoint")),
                }
            })?,
            identity: r.opt_str("identity")?.map(str::to_string),
            cluster: r.opt_str("cluster")?.map(str::to_string),
            failover: small(r.opt_u64("failover")?)?,
            max_in_flight: small(r.opt_u64("max in flight")?)?,
        })
    }
}

/// The egress block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Egress {
    /// Deny by default (else allow).
    pub default_deny: bool,
    /// Destination rules in declaration order.
    pub rules: Vec<EgressRule>,
    /// Automata over reversed hosts.
    pub host_automata: Vec<u32>,
    /// Per host pattern, the rules it belongs to.
    pub host_pattern_rules: Vec<Vec<u32>>,
    /// Rules with host `"*"`.
    pub star_rules: Vec<u32>,
    /// Network table whose targets are rules.
    pub networks: Networks,
}

/// An egress destination rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressRule {
    /// Name.
    pub name: String,
    /// Deny (else allow).
    pub deny: bool,
    /// Port ranges; empty means every port.
    pub ports: Vec<(u16, u16)>,
    /// Neither host nor network was written: every destination.
    pub any_destination: bool,
}

impl Egress {
    fn encode(&self, w: &mut Writer) {
        w.bool("default deny", self.default_deny);
        w.len("rules", self.rules.len());
        for rule in &self.rules {
            w.str("name", &rule.name);
            w.bool("deny", rule.deny);
            w.ports("ports", &rule.ports);
            w.bool("any destination", rule.any_destination);
        }
        automata(w, "host automata", &self.host_automata);
        w.id_lists("host pattern rules", &self.host_pattern_rules);
        w.ids("star rules", &self.star_rules);
        self.networks.encode(w);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Egress, LoadError> {
        Ok(Egress {
            default_deny: r.bool("default deny")?,
            rules: list(r, "rules", |r| {
                Ok(EgressRule {
                    name: r.str("name")?.to_string(),
                    deny: r.bool("deny")?,
                    ports: r.ports("ports")?,
                    any_destination: r.bool("any destination")?,
                })
            })?,
            host_automata: read_automata(r, "host automata")?,
            host_pattern_rules: r.id_lists("host pattern rules", usize::MAX)?,
            star_rules: r.ids("star rules", usize::MAX)?,
            networks: Networks::decode(r)?,
        })
    }
}
