//! Checks (spec section 8 errors) and lowering from the AST to the IR.
//!
//! Every error is reported, not only the first, and one mistake yields one
//! diagnostic: a repeated statement is checked but only the first one is
//! lowered; a duplicated server, service or backend name still resolves
//! references; an unknown target leaves the rest of its rule checked.

mod values;

#[cfg(test)]
mod tests;

use crate::automata::check_regex;
use crate::config::Config;
use crate::ir;
use crate::ir::{Ir, PathCond};
use regex_automata::nfa::thompson;
use sluice_lang::ast::SourceFile;
use sluice_lang::ast::{
    Backend, BackendStmt, BreakerStmt, CircuitBreaker, Cond, Default, DestStmt, Effect, Egress,
    EgressStmt, Endpoint, Int, Item, Mesh, MeshStmt, Name, Networks, PathMatch, PortRange,
    Principal, Protocol, Retry, RetryStmt, Route, RouteStmt, Rule, RuleStmt, Server, ServerStmt,
    Service, ServiceStmt, Span, Spanned, Str, Target, ValueMatch,
};
use sluice_lang::{Code, Diagnostic, Policy};
use std::collections::HashMap;

/// Checks `policy` and lowers it. Returns the IR only when there is no
/// error, and every error found (not only the first).
pub fn ast_to_ir(policy: &Policy, config: &Config) -> (Option<Ir>, Vec<Diagnostic>) {
    let mut checker = Checker {
        config,
        files: &policy.files,
        diags: Vec::new(),
        trust_domain: None,
        trust_domain_ok: None,
    };
    let ir = checker.policy(policy);
    let failed = checker.diags.iter().any(Diagnostic::is_error);
    (if failed { None } else { Some(ir) }, checker.diags)
}

/// The checking and lowering state: where diagnostics go.
struct Checker<'a> {
    config: &'a Config,
    files: &'a [SourceFile],
    diags: Vec<Diagnostic>,
    /// The mesh trust domain (the first one written).
    trust_domain: Option<Str>,
    /// Whether the trust domain is valid, once checked (it is checked, and
    /// reported, at most once: when a `namespace` needs it).
    trust_domain_ok: Option<bool>,
}

/// Once-only statements seen so far in one block, with where each was
/// first written.
#[derive(Default)]
struct Seen(Vec<(&'static str, Span)>);

/// Per-kind names seen so far in one scope.
struct Names<'p> {
    kind: &'static str,
    first: HashMap<&'p str, Span>,
}

impl<'p> Names<'p> {
    fn new(kind: &'static str) -> Self {
        Names {
            kind,
            first: HashMap::new(),
        }
    }
}

/// Puts `value` in `slot` when its statement is the first of its kind in
/// the block (`first`, from [`Checker::once`]); a repeated statement is
/// only checked.
fn keep_first<T>(first: bool, slot: &mut T, value: T) {
    if first {
        *slot = value;
    }
}

fn grpc_code(cond: &Cond) -> Option<u8> {
    match cond {
        Cond::Cancelled => Some(1),
        Cond::DeadlineExceeded => Some(4),
        Cond::ResourceExhausted => Some(8),
        Cond::Internal => Some(13),
        Cond::Unavailable => Some(14),
        _ => None,
    }
}

fn default_policy(d: Default) -> ir::DefaultPolicy {
    match d {
        Default::Allow => ir::DefaultPolicy::Allow,
        Default::Deny => ir::DefaultPolicy::Deny,
        Default::Audit => ir::DefaultPolicy::Audit,
        Default::Authenticated => ir::DefaultPolicy::Authenticated,
    }
}

fn effect(e: Effect) -> ir::Effect {
    match e {
        Effect::Allow => ir::Effect::Allow,
        Effect::Deny => ir::Effect::Deny,
    }
}

fn ranges_overlap(a: &[(u16, u16)], b: &[(u16, u16)]) -> Option<u16> {
    a.iter()
        .flat_map(|x| b.iter().map(move |y| (x, y)))
        .find(|(x, y)| x.0 <= y.1 && y.0 <= x.1)
        .map(|(x, y)| x.0.max(y.0))
}

/// A lowered server with what the later checks need.
struct ServerOut {
    server: ir::Server,
    /// The first `port` statement.
    port_span: Option<Span>,
}

impl<'a> Checker<'a> {
    /// Where `earlier` is, as seen from `here`: `line N`, or `FILE:N` when
    /// it is in another file.
    fn place(&self, earlier: Span, here: Span) -> String {
        match self.files.get(earlier.file as usize) {
            Some(f) if earlier.file != here.file => format!("{}:{}", f.path, earlier.line),
            _ => format!("line {}", earlier.line),
        }
    }

    fn error(&mut self, code: Code, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(code, span, message));
    }

    /// Records a once-only statement; reports a repeat. True for the first.
    fn once(&mut self, seen: &mut Seen, key: &'static str, span: Span, block: &str) -> bool {
        if let Some(&(_, first)) = seen.0.iter().find(|(k, _)| *k == key) {
            let msg = if key == "path" {
                format!("a {block} has at most one path condition (`path` or `grpc`)")
            } else {
                format!("`{key}` is repeated; it may appear once in a {block}")
            };
            self.diags.push(
                Diagnostic::new(Code::DuplicateStatement, span, msg)
                    .with_label(first, "first written here"),
            );
            false
        } else {
            seen.0.push((key, span));
            true
        }
    }

    /// Checks a declared name's length and uniqueness in its scope. True
    /// when it is the first with that name.
    fn declare<'p>(&mut self, names: &mut Names<'p>, name: &'p Name) -> bool {
        self.name_length(name);
        if let Some(first) = names.first.get(name.node.as_str()) {
            let msg = format!(
                "{} `{}` is already declared ({})",
                names.kind,
                name.node,
                self.place(*first, name.span)
            );
            let label = format!("{} `{}` first declared here", names.kind, name.node);
            self.diags.push(
                Diagnostic::new(Code::DuplicateName, name.span, msg).with_label(*first, label),
            );
            false
        } else {
            names.first.insert(&name.node, name.span);
            true
        }
    }

    fn name_length(&mut self, name: &Name) -> bool {
        if name.node.len() > values::MAX_NAME_LEN {
            let msg = format!(
                "name `{}` is longer than {} bytes",
                name.node,
                values::MAX_NAME_LEN
            );
            self.error(Code::InvalidValue, name.span, msg);
            false
        } else {
            true
        }
    }

    /// Reports an unresolved reference (or, for a name too long to be
    /// declared, an invalid value).
    fn unknown(&mut self, name: &Name, what: String) {
        if self.name_length(name) {
            self.error(Code::UnknownReference, name.span, what);
        }
    }

    fn port(&mut self, int: &Int) -> Option<u16> {
        match u16::try_from(int.node) {
            Ok(p) if p != 0 => Some(p),
            _ => {
                self.error(
                    Code::InvalidValue,
                    int.span,
                    format!("port `{}` is out of range (1 to 65535)", int.node),
                );
                None
            }
        }
    }

    /// Valid ranges of a port list; invalid ones are reported and left out.
    fn ports(&mut self, list: &[PortRange]) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        for range in list {
            let first = self.port(&range.first);
            let last = match &range.last {
                Some(l) => self.port(l),
                None => first,
            };
            if let (Some(a), Some(b)) = (first, last) {
                if a > b {
                    let msg = format!("port range `{a}-{b}` is reversed (the first port must be at most the second)");
                    self.error(Code::InvalidValue, range.first.span, msg);
                } else {
                    out.push((a, b));
                }
            }
        }
        out
    }

    fn u32_value(&mut self, int: &Int, what: &str) -> u32 {
        u32::try_from(int.node).unwrap_or_else(|_| {
            let msg = format!("{what} `{}` is out of range (0 to {})", int.node, u32::MAX);
            self.error(Code::InvalidValue, int.span, msg);
            0
        })
    }

    fn percent(&mut self, p: &Spanned<u64>, what: &str) -> u8 {
        match u8::try_from(p.node) {
            Ok(v) if v <= 100 => v,
            _ => {
                self.error(
                    Code::InvalidValue,
                    p.span,
                    format!("{what} `{}%` is out of range (0% to 100%)", p.node),
                );
                0
            }
        }
    }

    fn regex(&mut self, re: &Str) {
        // Bound the NFA first: `check_regex` builds it without a limit, and
        // `a{99999999}` would take gigabytes before the DFA limit applies.
        let limit = self
            .config
            .determinize_size_limit
            .max(self.config.dfa_size_limit);
        let nfa = thompson::Compiler::new()
            .configure(thompson::Config::new().nfa_size_limit(Some(limit)))
            .build(&re.node);
        if let Err(e) = nfa {
            if e.size_limit().is_some() {
                let msg = format!(
                    "`{}` cannot be compiled into an automaton within the size limit: {e}",
                    re.node
                );
                self.error(Code::InvalidRegex, re.span, msg);
                return;
            }
        }
        if let Err(msg) = check_regex(&re.node, self.config) {
            self.error(Code::InvalidRegex, re.span, msg);
        }
    }

    fn networks(&mut self, nets: &Networks) -> ir::NetSet {
        let mut include = Vec::new();
        for n in &nets.include {
            match values::network(&n.node) {
                Ok(net) => include.push(net),
                Err(msg) => self.error(Code::InvalidNetwork, n.span, msg),
            }
        }
        let all_included_valid = include.len() == nets.include.len();
        let mut except = Vec::new();
        for n in &nets.except {
            match values::network(&n.node) {
                Ok(net) => {
                    // Only judge containment when every listed network is
                    // valid: an invalid one might have contained it.
                    if all_included_valid && !include.iter().any(|c| c.contains(&net)) {
                        let listed: Vec<String> = nets
                            .include
                            .iter()
                            .map(|c| format!("`{}`", c.node))
                            .collect();
                        let msg = format!(
                            "except `{}` is not inside any listed network ({})",
                            n.node,
                            listed.join(", ")
                        );
                        self.error(Code::ExceptOutsideNetwork, n.span, msg);
                    }
                    except.push(net);
                }
                Err(msg) => self.error(Code::InvalidNetwork, n.span, msg),
            }
        }
        ir::NetSet { include, except }
    }

    /// The whole policy.
    fn policy(&mut self, policy: &Policy) -> Ir {
        let mut meshes = Vec::new();
        let mut servers = Vec::new();
        let mut rules = Vec::new();
        let mut egresses = Vec::new();
        let mut services = Vec::new();
        for item in &policy.items {
            match item {
                Item::Mesh(m) => meshes.push(m),
                Item::Server(s) => servers.push(s),
                Item::Rule(r) => rules.push(r),
                Item::Egress(e) => egresses.push(e),
                Item::Service(s) => services.push(s),
            }
        }

        let mut mesh_default = None;
        for (i, mesh) in meshes.iter().enumerate() {
            if i > 0 {
                let msg = "a policy has at most one `mesh` block";
                self.diags.push(
                    Diagnostic::new(Code::DuplicateStatement, mesh.span, msg)
                        .with_label(meshes[0].span, "first `mesh` block here"),
                );
            }
            let d = self.mesh(mesh);
            mesh_default = mesh_default.or(d);
        }

        let servers = self.servers(&servers);
        let rules = self.rules(&rules, &servers);

        let mut egress = None;
        for (i, e) in egresses.iter().enumerate() {
            if i > 0 {
                let msg = "a policy has at most one `egress` block";
                self.diags.push(
                    Diagnostic::new(Code::DuplicateStatement, e.span, msg)
                        .with_label(egresses[0].span, "first `egress` block here"),
                );
            }
            let lowered = self.egress(e);
            egress = egress.or(Some(lowered));
        }

        let services = self.services(&services);

        Ir {
            trust_domain: self.trust_domain.as_ref().map(|t| t.node.clone()),
            mesh_default: mesh_default.unwrap_or(ir::DefaultPolicy::Allow),
            servers: servers.into_iter().map(|s| s.server).collect(),
            rules,
            egress,
            services,
        }
    }

    /// A mesh block; returns its default. The first trust domain of any
    /// mesh block is the policy's.
    fn mesh(&mut self, mesh: &Mesh) -> Option<ir::DefaultPolicy> {
        let mut seen = Seen::default();
        let mut default = None;
        for stmt in &mesh.stmts {
            match &stmt.node {
                MeshStmt::TrustDomain(td) => {
                    if self.once(&mut seen, "trust-domain", stmt.span, "mesh block")
                        && self.trust_domain.is_none()
                    {
                        self.trust_domain = Some(td.clone());
                    }
                }
                MeshStmt::Default(d) => {
                    if self.once(&mut seen, "default", stmt.span, "mesh block") {
                        default = Some(default_policy(d.node));
                    }
                }
            }
        }
        default
    }

    fn servers(&mut self, servers: &[&Server]) -> Vec<ServerOut> {
        let mut names = Names::new("server");
        let mut out: Vec<ServerOut> = Vec::new();
        for s in servers {
            self.declare(&mut names, &s.name);
            let lowered = self.server(s);
            // Port conflicts with every earlier server, except one with the
            // same name (already a `duplicate-name`).
            if let Some(span) = lowered.port_span {
                for earlier in &out {
                    if earlier.server.name == lowered.server.name {
                        continue;
                    }
                    if let Some(port) = ranges_overlap(&lowered.server.ports, &earlier.server.ports)
                    {
                        let msg = format!(
                            "server `{}` covers port `{port}`, which server `{}` ({}) already covers",
                            lowered.server.name,
                            earlier.server.name,
                            self.place(earlier.server.span, span)
                        );
                        let label =
                            format!("server `{}` covers port `{port}` here", earlier.server.name);
                        let there = earlier.port_span.unwrap_or(earlier.server.span);
                        self.diags.push(
                            Diagnostic::new(Code::PortConflict, span, msg).with_label(there, label),
                        );
                    }
                }
            }
            out.push(lowered);
        }
        out
    }

    fn server(&mut self, s: &Server) -> ServerOut {
        let mut seen = Seen::default();
        let mut ports = None;
        let mut port_span = None;
        let mut protocol = None;
        let mut default = None;
        let mut routes = Vec::new();
        let mut route_names = Names::new("route");
        let mut route_spans = Vec::new();
        for stmt in &s.stmts {
            match &stmt.node {
                ServerStmt::Port(list) => {
                    let first = self.once(&mut seen, "port", stmt.span, "server");
                    let list = self.ports(list);
                    if first {
                        ports = Some(list);
                        port_span = Some(stmt.span);
                    }
                }
                ServerStmt::Protocol(p) => {
                    if self.once(&mut seen, "protocol", stmt.span, "server") {
                        protocol = Some(p.node);
                    }
                }
                ServerStmt::Default(d) => {
                    if self.once(&mut seen, "default", stmt.span, "server") {
                        default = Some(default_policy(d.node));
                    }
                }
                ServerStmt::Route(r) => {
                    self.declare(&mut route_names, &r.name);
                    routes.push(self.route(r, None));
                    route_spans.push(stmt.span);
                }
            }
        }
        let protocol = match protocol {
            None | Some(Protocol::Http) => ir::Protocol::Http,
            Some(Protocol::Grpc) => ir::Protocol::Grpc,
            Some(Protocol::Tcp) => ir::Protocol::Tcp,
        };
        if protocol == ir::Protocol::Tcp {
            for (route, span) in routes.iter().zip(route_spans) {
                let msg = format!(
                    "route `{}` is on `tcp` server `{}`: a `tcp` server has no routes (it is decided per connection)",
                    route.name, s.name.node
                );
                self.error(Code::MisplacedStatement, span, msg);
            }
        }
        ServerOut {
            server: ir::Server {
                name: s.name.node.clone(),
                span: s.name.span,
                ports: ports.unwrap_or_default(),
                protocol,
                default: default.unwrap_or(ir::DefaultPolicy::Deny),
                routes,
            },
            port_span,
        }
    }

    /// A route of a server (`backends == None`) or of a service (the
    /// service's backend names and indices).
    fn route(&mut self, r: &Route, backends: Option<&HashMap<&str, usize>>) -> ir::Route {
        let block = "route";
        let mut seen = Seen::default();
        let mut out = ir::Route::catch_all(&r.name.node, r.name.span);
        let mut to_span = None;
        for stmt in &r.stmts {
            match &stmt.node {
                RouteStmt::Method(methods) => {
                    if self.once(&mut seen, "method", stmt.span, block) {
                        out.methods = methods.iter().map(|m| m.node.clone()).collect();
                    }
                }
                RouteStmt::Path(m) => {
                    let first = self.once(&mut seen, "path", stmt.span, block);
                    let cond = match m {
                        PathMatch::Exact(p) => self.path_value(p, values::exact_path),
                        PathMatch::Prefix(p) => self.path_value(p, values::prefix_path),
                        PathMatch::Regex(re) => {
                            self.regex(re);
                            PathCond::Regex(re.node.clone())
                        }
                    };
                    if first {
                        out.path = cond;
                    }
                }
                RouteStmt::Grpc(g) => {
                    keep_first(
                        self.once(&mut seen, "path", stmt.span, block),
                        &mut out.path,
                        self.path_value(g, values::grpc_path),
                    );
                }
                RouteStmt::Header(name, m) => {
                    let name = match values::header_name(&name.node) {
                        Ok(n) => n,
                        Err(msg) => {
                            self.error(Code::InvalidValue, name.span, msg);
                            name.node.clone()
                        }
                    };
                    let cond = self.value_match(m);
                    out.headers.push((name, cond));
                }
                RouteStmt::Query(key, m) => {
                    let cond = self.value_match(m);
                    out.queries.push((key.node.clone(), cond));
                }
                RouteStmt::To(list) => {
                    let Some(backends) = backends else {
                        self.misplaced_in_server_route(stmt.span, "to");
                        continue;
                    };
                    let first = self.once(&mut seen, "to", stmt.span, block);
                    let mut to = Vec::new();
                    let mut all_zero = true;
                    for wn in list {
                        let weight = match &wn.weight {
                            Some(w) => {
                                if w.node != 0 {
                                    all_zero = false;
                                }
                                self.u32_value(w, "weight")
                            }
                            None => {
                                all_zero = false;
                                1
                            }
                        };
                        match backends.get(wn.name.node.as_str()) {
                            Some(&i) => to.push((i, weight)),
                            None => {
                                let msg = format!("no backend `{}` in this service", wn.name.node);
                                self.unknown(&wn.name, msg);
                            }
                        }
                    }
                    if all_zero {
                        let msg = format!(
                            "every backend of route `{}` has weight 0: it sends traffic nowhere",
                            r.name.node
                        );
                        self.error(Code::NoBackend, stmt.span, msg);
                    }
                    if first {
                        out.to = to;
                        to_span = Some(stmt.span);
                    }
                }
                RouteStmt::Timeout(d) => {
                    if backends.is_none() {
                        self.misplaced_in_server_route(stmt.span, "timeout");
                    } else if self.once(&mut seen, "timeout", stmt.span, block) {
                        out.timeout_ms = Some(d.node);
                    }
                }
                RouteStmt::Retry(retry) => {
                    if backends.is_none() {
                        self.misplaced_in_server_route(stmt.span, "retry");
                        continue;
                    }
                    keep_first(
                        self.once(&mut seen, "retry", stmt.span, block),
                        &mut out.retry,
                        Some(self.retry(retry)),
                    );
                }
            }
        }
        if backends.is_some() && to_span.is_none() {
            let msg = format!(
                "route `{}` has no `to`: it sends traffic nowhere",
                r.name.node
            );
            self.error(Code::NoBackend, r.name.span, msg);
        }
        out
    }

    fn misplaced_in_server_route(&mut self, span: Span, key: &str) {
        let msg = format!("`{key}` belongs in a service route, not in a server route");
        self.error(Code::MisplacedStatement, span, msg);
    }

    fn path_value(&mut self, s: &Str, f: fn(&str) -> Result<PathCond, String>) -> PathCond {
        f(&s.node).unwrap_or_else(|msg| {
            self.error(Code::InvalidValue, s.span, msg);
            PathCond::Any
        })
    }

    fn value_match(&mut self, m: &ValueMatch) -> ir::ValueCond {
        match m {
            ValueMatch::Exact(v) => ir::ValueCond::Exact(v.node.clone()),
            ValueMatch::Regex(re) => {
                self.regex(re);
                ir::ValueCond::Regex(re.node.clone())
            }
            ValueMatch::Present => ir::ValueCond::Present,
        }
    }

    fn retry(&mut self, r: &Retry) -> ir::Retry {
        let block = "retry block";
        let mut seen = Seen::default();
        let mut out = ir::Retry {
            attempts: 1,
            on: vec![ir::RetryCond::GatewayError, ir::RetryCond::Reset],
            per_try_timeout_ms: None,
            budget_percent: 20,
        };
        for stmt in &r.stmts {
            match &stmt.node {
                RetryStmt::Attempts(n) => {
                    keep_first(
                        self.once(&mut seen, "attempts", stmt.span, block),
                        &mut out.attempts,
                        self.u32_value(n, "attempts"),
                    );
                }
                RetryStmt::On(conds) => {
                    let first = self.once(&mut seen, "on", stmt.span, block);
                    let mut on = Vec::new();
                    for c in conds {
                        let lowered = match &c.node {
                            Cond::ServerError => Some(ir::RetryCond::ServerError),
                            Cond::GatewayError => Some(ir::RetryCond::GatewayError),
                            Cond::Reset => Some(ir::RetryCond::Reset),
                            Cond::Status(s) => match u16::try_from(*s) {
                                Ok(s @ 100..=599) => Some(ir::RetryCond::Status(s)),
                                _ => {
                                    let msg =
                                        format!("status `{s}` is not an HTTP status (100 to 599)");
                                    self.error(Code::InvalidValue, c.span, msg);
                                    None
                                }
                            },
                            other => grpc_code(other).map(ir::RetryCond::Grpc),
                        };
                        on.extend(lowered);
                    }
                    if first {
                        out.on = on;
                    }
                }
                RetryStmt::PerTryTimeout(d) => {
                    if self.once(&mut seen, "per-try-timeout", stmt.span, block) {
                        out.per_try_timeout_ms = Some(d.node);
                    }
                }
                RetryStmt::Budget(p) => {
                    keep_first(
                        self.once(&mut seen, "budget", stmt.span, block),
                        &mut out.budget_percent,
                        self.percent(p, "budget"),
                    );
                }
            }
        }
        out
    }

    fn breaker(&mut self, b: &CircuitBreaker) -> ir::CircuitBreaker {
        let block = "circuit-breaker block";
        let mut seen = Seen::default();
        let mut out = ir::CircuitBreaker {
            consecutive_failures: 7,
            backoff_min_ms: 1000,
            backoff_max_ms: 60000,
            jitter_percent: 50,
        };
        for stmt in &b.stmts {
            match &stmt.node {
                BreakerStmt::ConsecutiveFailures(n) => {
                    keep_first(
                        self.once(&mut seen, "consecutive-failures", stmt.span, block),
                        &mut out.consecutive_failures,
                        self.u32_value(n, "consecutive-failures"),
                    );
                }
                BreakerStmt::Backoff(min, max) => {
                    let first = self.once(&mut seen, "backoff", stmt.span, block);
                    if min.node > max.node {
                        let msg = format!(
                            "backoff starts at `{}ms`, past its maximum `{}ms` (the first duration must be at most the second)",
                            min.node, max.node
                        );
                        self.error(Code::InvalidValue, min.span, msg);
                    }
                    if first {
                        out.backoff_min_ms = min.node;
                        out.backoff_max_ms = max.node;
                    }
                }
                BreakerStmt::Jitter(p) => {
                    keep_first(
                        self.once(&mut seen, "jitter", stmt.span, block),
                        &mut out.jitter_percent,
                        self.percent(p, "jitter"),
                    );
                }
            }
        }
        out
    }

    fn rules(&mut self, rules: &[&Rule], servers: &[ServerOut]) -> Vec<ir::Rule> {
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, s) in servers.iter().enumerate() {
            by_name.entry(s.server.name.as_str()).or_default().push(i);
        }
        let mut names = Names::new("rule");
        let mut out = Vec::new();
        for r in rules {
            self.declare(&mut names, &r.name);
            out.push(self.rule(r, servers, &by_name));
        }
        out
    }

    fn rule(
        &mut self,
        r: &Rule,
        servers: &[ServerOut],
        by_name: &HashMap<&str, Vec<usize>>,
    ) -> ir::Rule {
        let mut targets = Vec::new();
        let mut clauses = Vec::new();
        let mut has_to = false;
        let mut has_from = false;
        for stmt in &r.stmts {
            match &stmt.node {
                RuleStmt::To(list) => {
                    has_to = true;
                    for t in list {
                        if let Some(t) = self.target(t, servers, by_name) {
                            targets.push(t);
                        }
                    }
                }
                RuleStmt::From(p) => {
                    has_from = true;
                    clauses.push(vec![self.principal(p, stmt.span)]);
                }
            }
        }
        let missing = match (has_to, has_from) {
            (false, false) => Some("neither `to` nor `from`"),
            (false, true) => Some("no `to`"),
            (true, false) => Some("no `from`"),
            (true, true) => None,
        };
        if let Some(missing) = missing {
            let msg = format!(
                "rule `{}` has {missing}: it applies to nothing",
                r.name.node
            );
            self.error(Code::EmptyRule, r.name.span, msg);
        }
        ir::Rule {
            name: r.name.node.clone(),
            span: r.name.span,
            effect: effect(r.effect),
            targets,
            clauses,
        }
    }

    /// Resolves a target. A server name declared twice resolves when any of
    /// its servers has the route.
    fn target(
        &mut self,
        t: &Target,
        servers: &[ServerOut],
        by_name: &HashMap<&str, Vec<usize>>,
    ) -> Option<ir::Target> {
        let Some(candidates) = by_name.get(t.server.node.as_str()) else {
            self.unknown(&t.server, format!("no server `{}`", t.server.node));
            return None;
        };
        let Some(route) = &t.route else {
            return Some(ir::Target {
                server: candidates[0],
                route: None,
            });
        };
        let find = |i: usize| {
            servers[i]
                .server
                .routes
                .iter()
                .position(|r| r.name == route.node)
        };
        let usable = candidates.iter().find_map(|&i| {
            let s = &servers[i].server;
            if s.protocol == ir::Protocol::Tcp {
                return None;
            }
            find(i).map(|ri| ir::Target {
                server: i,
                route: Some(ri),
            })
        });
        if usable.is_some() {
            return usable;
        }
        if candidates
            .iter()
            .any(|&i| servers[i].server.protocol == ir::Protocol::Tcp)
        {
            let msg = format!(
                "target `{}.{}` names a route of `tcp` server `{}`, which has no routes; target the whole server",
                t.server.node, route.node, t.server.node
            );
            self.error(Code::MisplacedStatement, t.span, msg);
        } else {
            self.unknown(
                route,
                format!("server `{}` has no route `{}`", t.server.node, route.node),
            );
        }
        None
    }

    /// Checks the mesh trust domain once; reports it when invalid.
    fn trust_domain_ok(&mut self) -> bool {
        if let Some(ok) = self.trust_domain_ok {
            return ok;
        }
        let Some(td) = self.trust_domain.clone() else {
            return false;
        };
        let ok = match values::trust_domain(&td.node) {
            Ok(()) => true,
            Err(msg) => {
                self.error(Code::InvalidIdentity, td.span, format!("mesh {msg}"));
                false
            }
        };
        self.trust_domain_ok = Some(ok);
        ok
    }

    fn principal(&mut self, p: &Principal, stmt_span: Span) -> ir::PrincipalItem {
        match p {
            Principal::Any => ir::PrincipalItem::Any,
            Principal::Authenticated => ir::PrincipalItem::Authenticated,
            Principal::Identity(list) => {
                for id in list {
                    if let Err(msg) = values::identity(&id.node, true) {
                        self.error(Code::InvalidIdentity, id.span, msg);
                    }
                }
                ir::PrincipalItem::Identity(list.iter().map(|s| s.node.clone()).collect())
            }
            Principal::Namespace(list) => {
                let td = if self.trust_domain.is_none() {
                    let msg = "`namespace` needs the mesh `trust-domain`, and none is declared";
                    self.error(Code::MissingTrustDomain, stmt_span, msg);
                    None
                } else if self.trust_domain_ok() {
                    self.trust_domain.as_ref().map(|t| t.node.clone())
                } else {
                    None
                };
                let mut patterns = Vec::new();
                for ns in list {
                    if ns.node == "*" {
                        let msg =
                            "namespace `*` is not allowed; use `identity` with a pattern to match every namespace";
                        self.error(Code::InvalidIdentity, ns.span, msg);
                        continue;
                    }
                    if let Err(msg) = values::segment(&ns.node) {
                        self.error(
                            Code::InvalidIdentity,
                            ns.span,
                            format!("namespace `{}` is invalid: {msg}", ns.node),
                        );
                        continue;
                    }
                    if let Some(td) = &td {
                        let pattern = format!("spiffe://{td}/ns/{}/sa/*", ns.node);
                        match values::identity(&pattern, true) {
                            Ok(()) => patterns.push(pattern),
                            Err(msg) => self.error(Code::InvalidIdentity, ns.span, msg),
                        }
                    }
                }
                ir::PrincipalItem::Identity(patterns)
            }
            Principal::Network(nets) => ir::PrincipalItem::Network(self.networks(nets)),
        }
    }

    fn egress(&mut self, e: &Egress) -> ir::Egress {
        let mut seen = Seen::default();
        let mut default = None;
        let mut names = Names::new("egress rule");
        let mut rules = Vec::new();
        for stmt in &e.stmts {
            match &stmt.node {
                EgressStmt::Default(d) => {
                    if self.once(&mut seen, "default", stmt.span, "egress block") {
                        default = Some(effect(d.node));
                    }
                }
                EgressStmt::Rule(r) => {
                    self.declare(&mut names, &r.name);
                    let block = "egress rule";
                    let mut seen = Seen::default();
                    let mut out = ir::EgressRule {
                        name: r.name.node.clone(),
                        span: r.name.span,
                        effect: effect(r.effect),
                        hosts: Vec::new(),
                        networks: None,
                        ports: Vec::new(),
                    };
                    for stmt in &r.stmts {
                        match &stmt.node {
                            DestStmt::Host(hosts) => {
                                let first = self.once(&mut seen, "host", stmt.span, block);
                                let mut lowered = Vec::new();
                                for h in hosts {
                                    match values::host_pattern(&h.node) {
                                        Ok(h) => lowered.push(h),
                                        Err(msg) => self.error(Code::InvalidHost, h.span, msg),
                                    }
                                }
                                if first {
                                    out.hosts = lowered;
                                }
                            }
                            DestStmt::Network(nets) => {
                                keep_first(
                                    self.once(&mut seen, "network", stmt.span, block),
                                    &mut out.networks,
                                    Some(self.networks(nets)),
                                );
                            }
                            DestStmt::Port(list) => {
                                keep_first(
                                    self.once(&mut seen, "port", stmt.span, block),
                                    &mut out.ports,
                                    self.ports(list),
                                );
                            }
                        }
                    }
                    rules.push(out);
                }
            }
        }
        ir::Egress {
            default: default.unwrap_or(ir::Effect::Deny),
            rules,
        }
    }

    fn services(&mut self, services: &[&Service]) -> Vec<ir::Service> {
        let mut names = Names::new("service");
        // Normalized authority -> (service name, span) of its first claim.
        let mut claimed: HashMap<(String, u16), (String, Span)> = HashMap::new();
        let mut out = Vec::new();
        for s in services {
            self.declare(&mut names, &s.name);
            let (service, authority_strs) = self.service(s);
            for (auth, written) in service.authorities.iter().zip(authority_strs) {
                match claimed.get(auth) {
                    // Same service (written twice) or a duplicate service
                    // name (already `duplicate-name`): no conflict.
                    Some((owner, _)) if *owner == service.name => {}
                    Some((owner, first)) => {
                        let msg = format!(
                            "authority `{}` (`{}:{}`) is already claimed by service `{owner}` ({})",
                            written.node,
                            auth.0,
                            auth.1,
                            self.place(*first, written.span)
                        );
                        let label = format!("claimed by service `{owner}` here");
                        self.diags.push(
                            Diagnostic::new(Code::AuthorityConflict, written.span, msg)
                                .with_label(*first, label),
                        );
                    }
                    None => {
                        claimed.insert(auth.clone(), (service.name.clone(), written.span));
                    }
                }
            }
            out.push(service);
        }
        out
    }

    /// A service, and the written authority of each lowered authority.
    fn service<'s>(&mut self, s: &'s Service) -> (ir::Service, Vec<&'s Str>) {
        let block = "service";
        let mut seen = Seen::default();
        let mut out = ir::Service {
            name: s.name.node.clone(),
            span: s.name.span,
            authorities: Vec::new(),
            timeout_ms: None,
            retry: None,
            breaker: None,
            backends: Vec::new(),
            routes: Vec::new(),
        };
        let mut authority_strs = Vec::new();

        // Backends first: routes may name backends declared after them.
        let mut backend_names = Names::new("backend");
        let mut backend_index: HashMap<&str, usize> = HashMap::new();
        let mut backend_asts: Vec<&Backend> = Vec::new();
        for stmt in &s.stmts {
            if let ServiceStmt::Backend(b) = &stmt.node {
                if self.declare(&mut backend_names, &b.name) {
                    backend_index.insert(&b.name.node, backend_asts.len());
                }
                backend_asts.push(b);
            }
        }
        let mut failover_names = Vec::new();
        for b in &backend_asts {
            let (backend, failover) = self.backend(b, &backend_index);
            out.backends.push(backend);
            failover_names.push(failover);
        }
        self.failover_cycles(&out.backends, &failover_names);

        let mut route_names = Names::new("route");
        for stmt in &s.stmts {
            match &stmt.node {
                ServiceStmt::Authority(list) => {
                    let first = self.once(&mut seen, "authority", stmt.span, block);
                    for a in list {
                        match values::authority(&a.node) {
                            Ok(auth) => {
                                if first {
                                    out.authorities.push(auth);
                                    authority_strs.push(a);
                                }
                            }
                            Err(msg) => self.error(Code::InvalidValue, a.span, msg),
                        }
                    }
                }
                ServiceStmt::Timeout(d) => {
                    if self.once(&mut seen, "timeout", stmt.span, block) {
                        out.timeout_ms = Some(d.node);
                    }
                }
                ServiceStmt::Retry(r) => {
                    keep_first(
                        self.once(&mut seen, "retry", stmt.span, block),
                        &mut out.retry,
                        Some(self.retry(r)),
                    );
                }
                ServiceStmt::CircuitBreaker(b) => {
                    keep_first(
                        self.once(&mut seen, "circuit-breaker", stmt.span, block),
                        &mut out.breaker,
                        Some(self.breaker(b)),
                    );
                }
                ServiceStmt::Backend(_) => {}
                ServiceStmt::Route(r) => {
                    self.declare(&mut route_names, &r.name);
                    out.routes.push(self.route(r, Some(&backend_index)));
                }
            }
        }
        if out.routes.is_empty() {
            let msg = format!(
                "service `{}` has no routes: it sends traffic nowhere",
                s.name.node
            );
            self.error(Code::NoBackend, s.name.span, msg);
        }
        (out, authority_strs)
    }

    /// A backend, and the name of its (first) failover when it resolved.
    fn backend<'s>(
        &mut self,
        b: &'s Backend,
        index: &HashMap<&str, usize>,
    ) -> (ir::Backend, Option<&'s Name>) {
        let block = "backend";
        let mut seen = Seen::default();
        let mut out = ir::Backend {
            name: b.name.node.clone(),
            span: b.name.span,
            endpoints: Vec::new(),
            identity: None,
            cluster: None,
            failover: None,
            max_in_flight: None,
        };
        let mut failover_name = None;
        for stmt in &b.stmts {
            match &stmt.node {
                BackendStmt::Endpoint(list) => {
                    let first = self.once(&mut seen, "endpoint", stmt.span, block);
                    let mut endpoints = Vec::new();
                    for ep in list {
                        let lowered = match &ep.node {
                            Endpoint::Addr(a) => values::endpoint_addr(a).map(ir::Endpoint::Addr),
                            Endpoint::Name(n) => values::endpoint_name(n),
                        };
                        match lowered {
                            Ok(e) => endpoints.push(e),
                            Err(msg) => self.error(Code::InvalidValue, ep.span, msg),
                        }
                    }
                    if first {
                        out.endpoints = endpoints;
                    }
                }
                BackendStmt::Identity(id) => {
                    let first = self.once(&mut seen, "identity", stmt.span, block);
                    if let Err(msg) = values::identity(&id.node, false) {
                        self.error(Code::InvalidIdentity, id.span, msg);
                    }
                    if first {
                        out.identity = Some(id.node.clone());
                    }
                }
                BackendStmt::Cluster(c) => {
                    if self.once(&mut seen, "cluster", stmt.span, block) {
                        out.cluster = Some(c.node.clone());
                    }
                }
                BackendStmt::Failover(name) => {
                    let first = self.once(&mut seen, "failover", stmt.span, block);
                    match index.get(name.node.as_str()) {
                        Some(&i) => {
                            if first {
                                out.failover = Some(i);
                                failover_name = Some(name);
                            }
                        }
                        None => {
                            let msg = format!(
                                "no backend `{}` in this service to fail over to",
                                name.node
                            );
                            self.unknown(name, msg);
                        }
                    }
                }
                BackendStmt::MaxInFlight(n) => {
                    keep_first(
                        self.once(&mut seen, "max-in-flight", stmt.span, block),
                        &mut out.max_in_flight,
                        Some(self.u32_value(n, "max-in-flight")),
                    );
                }
            }
        }
        (out, failover_name)
    }

    /// Reports each failover loop once, at the `failover` of its member
    /// declared last.
    fn failover_cycles(&mut self, backends: &[ir::Backend], names: &[Option<&Name>]) {
        // 0: not visited, 1: on the current walk, 2: done.
        let mut state = vec![0u8; backends.len()];
        for start in 0..backends.len() {
            let mut walk = Vec::new();
            let mut at = Some(start);
            while let Some(i) = at {
                match state[i] {
                    2 => break,
                    1 => {
                        let pos = walk.iter().position(|&w| w == i).unwrap_or(0);
                        let cycle = &walk[pos..];
                        let &last = cycle.iter().max().unwrap_or(&i);
                        let first = cycle
                            .iter()
                            .position(|&c| c == *cycle.iter().min().unwrap_or(&i))
                            .unwrap_or(0);
                        let mut path: Vec<String> = (0..=cycle.len())
                            .map(|k| {
                                format!("`{}`", backends[cycle[(first + k) % cycle.len()]].name)
                            })
                            .collect();
                        if cycle.len() == 1 {
                            path.truncate(1);
                            let msg = format!("backend {} fails over to itself", path[0]);
                            self.cycle_error(names[last], backends[last].span, msg);
                        } else {
                            let msg = format!("failover loops: {}", path.join(" -> "));
                            self.cycle_error(names[last], backends[last].span, msg);
                        }
                        break;
                    }
                    _ => {
                        state[i] = 1;
                        walk.push(i);
                        at = backends[i].failover;
                    }
                }
            }
            for w in walk {
                state[w] = 2;
            }
        }
    }

    fn cycle_error(&mut self, name: Option<&Name>, fallback: Span, msg: String) {
        self.error(Code::FailoverCycle, name.map_or(fallback, |n| n.span), msg);
    }
}
