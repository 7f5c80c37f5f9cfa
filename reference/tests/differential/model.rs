//! The policy model: networks and the structured policy that always passes
//! the compiler's checks.

use std::net::IpAddr;

/// A network from the pools, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Net {
    pub(crate) text: String,
    pub(crate) addr: IpAddr,
    pub(crate) len: u32,
}

impl Net {
    pub(crate) fn parse(text: &str) -> Net {
        let (a, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u32>().expect("pool prefix length"))),
            None => (text, None),
        };
        let addr: IpAddr = a.parse().expect("pool address");
        let len = len.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        Net {
            text: text.to_string(),
            addr,
            len,
        }
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = if self.len == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.len)
                };
                u32::from(n) & m == u32::from(a) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = if self.len == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.len)
                };
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }

    pub(crate) fn contains_net(&self, other: &Net) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }
}

// ---------------------------------------------------------------------------
// The policy model.
// ---------------------------------------------------------------------------

/// A server, mesh default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Def {
    Allow,
    Deny,
    Audit,
    Authenticated,
}

impl Def {
    pub(crate) const ALL: [Def; 4] = [Def::Allow, Def::Deny, Def::Audit, Def::Authenticated];

    pub(crate) fn text(self) -> &'static str {
        match self {
            Def::Allow => "allow",
            Def::Deny => "deny",
            Def::Audit => "audit",
            Def::Authenticated => "authenticated",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Mesh {
    pub(crate) trust_domain: Option<String>,
    pub(crate) default: Option<Def>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    Http,
    Grpc,
    Tcp,
}

#[derive(Clone, Debug)]
pub(crate) struct Server {
    pub(crate) name: String,
    pub(crate) ports: Vec<(u16, u16)>,
    pub(crate) protocol: Option<Proto>,
    pub(crate) default: Option<Def>,
    pub(crate) routes: Vec<Route>,
}

impl Server {
    pub(crate) fn proto(&self) -> Proto {
        self.protocol.unwrap_or(Proto::Http)
    }
}

#[derive(Clone, Debug)]
pub(crate) enum PathCond {
    Exact(String),
    Prefix(String),
    Regex(String),
    /// `pkg.Svc/Method` or `pkg.Svc/*`.
    Grpc(String),
}

impl PathCond {
    /// The path kind for precedence: exact, prefix, regex or none.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            PathCond::Exact(_) => "exact",
            PathCond::Prefix(p) if p.trim_end_matches('/').is_empty() => "none",
            PathCond::Prefix(_) => "prefix",
            PathCond::Regex(_) => "regex",
            PathCond::Grpc(g) if g.ends_with("/*") => "prefix",
            PathCond::Grpc(_) => "exact",
        }
    }
}

/// A header or query value condition.
#[derive(Clone, Debug)]
pub(crate) enum Vm {
    Eq(String),
    Re(String),
    Present,
}

impl Vm {
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Vm::Eq(_) => "=",
            Vm::Re(_) => "~",
            Vm::Present => "present",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) methods: Vec<String>,
    pub(crate) path: Option<PathCond>,
    pub(crate) headers: Vec<(String, Vm)>,
    pub(crate) queries: Vec<(String, Vm)>,
    /// Service routes only: backends with optional weights.
    pub(crate) to: Vec<(String, Option<u32>)>,
    /// Service routes only.
    pub(crate) timeout: Option<(&'static str, u64)>,
    /// Service routes only: a `retry` block.
    pub(crate) retry: Option<RetrySpec>,
}

/// A `retry` block; `None` fields are left unwritten.
#[derive(Clone, Debug)]
pub(crate) struct RetrySpec {
    pub(crate) attempts: Option<u32>,
    pub(crate) on: Option<Vec<&'static str>>,
    pub(crate) per_try_timeout: Option<&'static str>,
    pub(crate) budget: Option<u8>,
}

/// A `circuit-breaker` block; `None` fields are left unwritten.
#[derive(Clone, Debug)]
pub(crate) struct BreakerSpec {
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) backoff: Option<(&'static str, &'static str)>,
    pub(crate) jitter: Option<u8>,
}

impl Route {
    pub(crate) fn path_kind(&self) -> &'static str {
        self.path.as_ref().map_or("none", PathCond::kind)
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Principal {
    Any,
    Authenticated,
    Identity(Vec<String>),
    Namespace(Vec<String>),
    Network(Vec<Net>, Vec<Net>),
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) deny: bool,
    pub(crate) targets: Vec<(String, Option<String>)>,
    pub(crate) froms: Vec<Principal>,
}

impl Rule {
    pub(crate) fn applies(&self, server: &str, route: Option<&str>) -> bool {
        self.targets
            .iter()
            .any(|(s, r)| s == server && (r.is_none() || r.as_deref() == route))
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Egress {
    /// `Some(true)`: `default allow`.
    pub(crate) default: Option<bool>,
    pub(crate) rules: Vec<EgressRule>,
}

#[derive(Clone, Debug)]
pub(crate) struct EgressRule {
    pub(crate) name: String,
    pub(crate) deny: bool,
    pub(crate) hosts: Vec<String>,
    pub(crate) nets: Option<(Vec<Net>, Vec<Net>)>,
    pub(crate) ports: Vec<(u16, u16)>,
}

#[derive(Clone, Debug)]
pub(crate) struct Backend {
    pub(crate) name: String,
    /// One `endpoint` statement's list (none when empty).
    pub(crate) endpoints: Vec<&'static str>,
    pub(crate) failover: Option<String>,
    pub(crate) identity: Option<&'static str>,
    pub(crate) cluster: Option<&'static str>,
    pub(crate) max_in_flight: Option<u32>,
}

#[derive(Clone, Debug)]
pub(crate) struct Service {
    pub(crate) name: String,
    /// Entries as written.
    pub(crate) authorities: Vec<String>,
    pub(crate) timeout: Option<(&'static str, u64)>,
    pub(crate) backends: Vec<Backend>,
    pub(crate) routes: Vec<Route>,
    pub(crate) retry: Option<RetrySpec>,
    pub(crate) breaker: Option<BreakerSpec>,
}

/// A whole policy.
#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub(crate) mesh: Option<Mesh>,
    pub(crate) servers: Vec<Server>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) egress: Option<Egress>,
    pub(crate) services: Vec<Service>,
    /// Seeds the layout choices of rendering (item order, separators).
    pub(crate) style: u64,
    /// Seeds a folder layout (spec section 1): the items cut into several
    /// files. `None`: one file.
    pub(crate) files: Option<u64>,
    /// Items written as text and placed at random (a policy broken on
    /// purpose, see [`gen_breakage`]).
    pub(crate) extra: Vec<String>,
}

impl Model {
    pub(crate) fn trust_domain(&self) -> Option<&str> {
        self.mesh.as_ref()?.trust_domain.as_deref()
    }

    pub(crate) fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }
}
