//! Read-only accessors over the AST: the items of a policy sorted by kind,
//! and the first occurrence of each once-only statement.

use sluice_lang::ast::{
    self, DestStmt, EgressStmt, Item, MeshStmt, PortRange, Protocol, RouteStmt, RuleStmt,
    ServerStmt, ServiceStmt,
};

/// The items of a policy by kind, each list in declaration order.
pub(crate) struct View<'p> {
    /// The first `mesh` block, if any.
    pub mesh: Option<&'p ast::Mesh>,
    /// Servers.
    pub servers: Vec<&'p ast::Server>,
    /// Authorization rules.
    pub rules: Vec<&'p ast::Rule>,
    /// The first `egress` block, if any.
    pub egress: Option<&'p ast::Egress>,
    /// Services.
    pub services: Vec<&'p ast::Service>,
}

impl<'p> View<'p> {
    /// Sorts the items of `policy` by kind.
    pub fn new(policy: &'p ast::Policy) -> Self {
        let mut view = View {
            mesh: None,
            servers: Vec::new(),
            rules: Vec::new(),
            egress: None,
            services: Vec::new(),
        };
        for item in &policy.items {
            match item {
                Item::Mesh(m) => {
                    if view.mesh.is_none() {
                        view.mesh = Some(m);
                    }
                }
                Item::Server(s) => view.servers.push(s),
                Item::Rule(r) => view.rules.push(r),
                Item::Egress(e) => {
                    if view.egress.is_none() {
                        view.egress = Some(e);
                    }
                }
                Item::Service(s) => view.services.push(s),
            }
        }
        view
    }

    /// The mesh `trust-domain`, if written.
    pub fn trust_domain(&self) -> Option<&'p str> {
        self.mesh?.stmts.iter().find_map(|s| match &s.node {
            MeshStmt::TrustDomain(td) => Some(td.node.as_str()),
            MeshStmt::Default(_) => None,
        })
    }

    /// The mesh default (`allow` when unwritten).
    pub fn mesh_default(&self) -> ast::Default {
        let written = self.mesh.and_then(|m| {
            m.stmts.iter().find_map(|s| match &s.node {
                MeshStmt::Default(d) => Some(d.node),
                MeshStmt::TrustDomain(_) => None,
            })
        });
        written.unwrap_or(ast::Default::Allow)
    }

    /// The first server whose ports cover `port`.
    pub fn server_for_port(&self, port: u16) -> Option<&'p ast::Server> {
        self.servers.iter().copied().find(|s| {
            s.stmts.iter().any(|st| match &st.node {
                ServerStmt::Port(ranges) => ports_cover(ranges, port),
                _ => false,
            })
        })
    }
}

/// Whether one of `ranges` covers `port`.
pub(crate) fn ports_cover(ranges: &[PortRange], port: u16) -> bool {
    let port = u64::from(port);
    ranges.iter().any(|r| {
        let first = r.first.node;
        let last = r.last.as_ref().map_or(first, |l| l.node);
        first <= port && port <= last
    })
}

/// A server's protocol (`http` when unwritten).
pub(crate) fn server_protocol(server: &ast::Server) -> Protocol {
    server
        .stmts
        .iter()
        .find_map(|s| match &s.node {
            ServerStmt::Protocol(p) => Some(p.node),
            _ => None,
        })
        .unwrap_or(Protocol::Http)
}

/// A server's default (`deny` when unwritten).
pub(crate) fn server_default(server: &ast::Server) -> ast::Default {
    server
        .stmts
        .iter()
        .find_map(|s| match &s.node {
            ServerStmt::Default(d) => Some(d.node),
            _ => None,
        })
        .unwrap_or(ast::Default::Deny)
}

/// A server's routes in declaration order.
pub(crate) fn server_routes(server: &ast::Server) -> Vec<&ast::Route> {
    server
        .stmts
        .iter()
        .filter_map(|s| match &s.node {
            ServerStmt::Route(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// A service's routes in declaration order.
pub(crate) fn service_routes(service: &ast::Service) -> Vec<&ast::Route> {
    service
        .stmts
        .iter()
        .filter_map(|s| match &s.node {
            ServiceStmt::Route(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// All authority entries of a service, as written.
pub(crate) fn service_authorities(service: &ast::Service) -> Vec<&str> {
    let mut out = Vec::new();
    for s in &service.stmts {
        if let ServiceStmt::Authority(list) = &s.node {
            out.extend(list.iter().map(|a| a.node.as_str()));
        }
    }
    out
}

/// A service's own `timeout`, in milliseconds.
pub(crate) fn service_timeout(service: &ast::Service) -> Option<u64> {
    service.stmts.iter().find_map(|s| match &s.node {
        ServiceStmt::Timeout(d) => Some(d.node),
        _ => None,
    })
}

/// A route's `timeout`, in milliseconds.
pub(crate) fn route_timeout(route: &ast::Route) -> Option<u64> {
    route.stmts.iter().find_map(|s| match &s.node {
        RouteStmt::Timeout(d) => Some(d.node),
        _ => None,
    })
}

/// A service's own `retry` block, if written.
pub(crate) fn service_retry(service: &ast::Service) -> Option<&ast::Retry> {
    service.stmts.iter().find_map(|s| match &s.node {
        ServiceStmt::Retry(r) => Some(r),
        _ => None,
    })
}

/// A service's `circuit-breaker` block, if written.
pub(crate) fn service_breaker(service: &ast::Service) -> Option<&ast::CircuitBreaker> {
    service.stmts.iter().find_map(|s| match &s.node {
        ServiceStmt::CircuitBreaker(b) => Some(b),
        _ => None,
    })
}

/// A service's backends in declaration order.
pub(crate) fn service_backends(service: &ast::Service) -> Vec<&ast::Backend> {
    service
        .stmts
        .iter()
        .filter_map(|s| match &s.node {
            ServiceStmt::Backend(b) => Some(b),
            _ => None,
        })
        .collect()
}

/// A route's own `retry` block, if written.
pub(crate) fn route_retry(route: &ast::Route) -> Option<&ast::Retry> {
    route.stmts.iter().find_map(|s| match &s.node {
        RouteStmt::Retry(r) => Some(r),
        _ => None,
    })
}

/// A route's backends with weights (default 1), from its first `to`.
pub(crate) fn route_backends(route: &ast::Route) -> Vec<(String, u32)> {
    let to = route.stmts.iter().find_map(|s| match &s.node {
        RouteStmt::To(list) => Some(list),
        _ => None,
    });
    to.map(|list| {
        list.iter()
            .map(|w| {
                let weight = w
                    .weight
                    .as_ref()
                    .map_or(1, |i| u32::try_from(i.node).unwrap_or(u32::MAX));
                (w.name.node.clone(), weight)
            })
            .collect()
    })
    .unwrap_or_default()
}

/// All targets of a rule (its `to` lists add up).
pub(crate) fn rule_targets(rule: &ast::Rule) -> impl Iterator<Item = &ast::Target> {
    rule.stmts.iter().flat_map(|s| match &s.node {
        RuleStmt::To(targets) => targets.as_slice(),
        RuleStmt::From(_) => &[],
    })
}

/// The `from` clauses of a rule, in source order.
pub(crate) fn rule_clauses(rule: &ast::Rule) -> impl Iterator<Item = &ast::Principal> {
    rule.stmts.iter().filter_map(|s| match &s.node {
        RuleStmt::From(p) => Some(p),
        RuleStmt::To(_) => None,
    })
}

/// The egress default: `deny` unless written (the caller handles a missing
/// egress block, which allows everything).
pub(crate) fn egress_default(egress: &ast::Egress) -> ast::Effect {
    egress
        .stmts
        .iter()
        .find_map(|s| match &s.node {
            EgressStmt::Default(e) => Some(e.node),
            EgressStmt::Rule(_) => None,
        })
        .unwrap_or(ast::Effect::Deny)
}

/// The egress destination rules in declaration order.
pub(crate) fn egress_rules(egress: &ast::Egress) -> Vec<&ast::EgressRule> {
    egress
        .stmts
        .iter()
        .filter_map(|s| match &s.node {
            EgressStmt::Rule(r) => Some(r),
            EgressStmt::Default(_) => None,
        })
        .collect()
}

/// The statements of an egress rule, picked apart.
pub(crate) struct Dest<'a> {
    /// Host patterns of the first `host` statement, if any.
    pub hosts: Option<&'a [ast::Str]>,
    /// The first `network` statement, if any.
    pub networks: Option<&'a ast::Networks>,
    /// The first `port` statement, if any.
    pub ports: Option<&'a [PortRange]>,
}

/// Picks apart the statements of an egress rule.
pub(crate) fn dest(rule: &ast::EgressRule) -> Dest<'_> {
    let mut d = Dest {
        hosts: None,
        networks: None,
        ports: None,
    };
    for s in &rule.stmts {
        match &s.node {
            DestStmt::Host(h) => {
                d.hosts.get_or_insert(h.as_slice());
            }
            DestStmt::Network(n) => {
                d.networks.get_or_insert(n);
            }
            DestStmt::Port(p) => {
                d.ports.get_or_insert(p.as_slice());
            }
        }
    }
    d
}
