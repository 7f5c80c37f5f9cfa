//! Derives an nginx and an HAProxy configuration equivalent to one Sluice
//! policy, for the proxy comparison (`benches/proxy/compare.sh`): it parses
//! the policy with `sluice_lang` and walks the AST.
//!
//! Run: `cargo run --release -p sluice-benches --example peer_configs -- POLICY OUTDIR`.
//!
//! Writes `OUTDIR/nginx.conf` and `OUTDIR/haproxy.cfg` and, when every
//! route has a method, a second HAProxy variant that routes through maps
//! (`haproxy-map.cfg`, `routes-exact.map`, `routes-prefix.map`), with
//! placeholders that the script fills in: `@LISTEN@` (address:port),
//! `@UPSTREAM@` (address:port), `@WORKERS@` (nginx worker processes),
//! `@THREADS@` (HAProxy threads), `@DIR@` (nginx's folder), `@USER@` (an
//! nginx `user` line or nothing), `@TEMP_PATHS@` (nginx temp path lines)
//! and `@MAPS@` (the maps' folder).
//!
//! The supported subset, with Sluice's semantics kept exactly:
//!
//! - one `server` (protocol `http`), with any `default`;
//! - routes with `method` and `path` (exact or prefix) only: prefixes are
//!   element-wise (`/a` matches `/a` and `/a/x`, not `/ab`), so a prefix
//!   becomes nginx `location = /a` + `location /a/`, and HAProxy
//!   `path /a` or `path_beg /a/`; a route with a method answers 404 to
//!   other methods (no route), not 403 as nginx's `limit_except` would;
//! - rules whose principals are `any` and `network` (with `except`);
//!   principals that need an identity (`authenticated`, `identity`,
//!   `namespace`) never match a peer without one, and the generated
//!   listeners are plaintext, so such a clause makes its rule match no one
//!   there (the rule is kept for the Sluice mTLS listener only).
//!
//! Each route's allowed addresses (deny rules win over allow rules, then
//! the default) are computed as a set of IP ranges and written as the
//! minimal list of CIDRs. Route precedence: `haproxy.cfg` gets the routes
//! as ordered `use_backend` lines (one ACL rule per route, tried in turn),
//! most specific first (exact, longer prefix, with a method, declaration
//! order), so the first match is Sluice's route. `haproxy-map.cfg` looks
//! `METHOD:PATH` up in a map of exact keys (a tree), then in a map of
//! `METHOD:PREFIX/` keys (a prefix tree, longest match), which is the same
//! route when every route has a method.
//! nginx picks a location by path alone, so a policy where a request could
//! fall back, by its method, from one route to another route of overlapping
//! path is refused. Anything else (regex paths, headers, queries, gRPC,
//! `%` in paths, egress, services, several servers) is an error.

use sluice_lang::ast::{self, Effect, Item, PathMatch, Principal, RouteStmt, RuleStmt, ServerStmt};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;

/// Inclusive ranges of addresses, sorted and disjoint, per family.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct IpSet {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

const V4_MAX: u128 = u32::MAX as u128;

fn merge(mut r: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    r.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::new();
    for (lo, hi) in r {
        match out.last_mut() {
            Some(last) if last.1 == u128::MAX || lo <= last.1 + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn subtract(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for &(lo, hi) in a {
        let mut pieces = vec![(lo, hi)];
        for &(blo, bhi) in b {
            let mut next = Vec::new();
            for (plo, phi) in pieces {
                if bhi < plo || blo > phi {
                    next.push((plo, phi));
                    continue;
                }
                if blo > plo {
                    next.push((plo, blo - 1));
                }
                if bhi < phi {
                    next.push((bhi + 1, phi));
                }
            }
            pieces = next;
        }
        out.extend(pieces);
    }
    merge(out)
}

/// CIDR blocks covering `lo..=hi` exactly, in an address space of `bits` bits.
fn blocks(mut lo: u128, hi: u128, bits: u32) -> Vec<(u128, u32)> {
    let max = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    if lo == 0 && hi == max {
        return vec![(0, 0)];
    }
    let mut out = Vec::new();
    loop {
        // The largest aligned block starting at `lo` that stays within `hi`.
        let mut k = 0u32;
        while k + 1 < bits {
            let size = 1u128 << (k + 1);
            if lo & (size - 1) != 0 || lo.checked_add(size - 1).is_none_or(|end| end > hi) {
                break;
            }
            k += 1;
        }
        out.push((lo, bits - k));
        match lo.checked_add(1u128 << k) {
            Some(next) if next <= hi => lo = next,
            _ => break,
        }
    }
    out
}

impl IpSet {
    fn all() -> IpSet {
        IpSet {
            v4: vec![(0, V4_MAX)],
            v6: vec![(0, u128::MAX)],
        }
    }
    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
    fn union(&self, o: &IpSet) -> IpSet {
        IpSet {
            v4: merge(self.v4.iter().chain(&o.v4).copied().collect()),
            v6: merge(self.v6.iter().chain(&o.v6).copied().collect()),
        }
    }
    fn minus(&self, o: &IpSet) -> IpSet {
        IpSet {
            v4: subtract(&self.v4, &o.v4),
            v6: subtract(&self.v6, &o.v6),
        }
    }
    fn intersect(&self, o: &IpSet) -> IpSet {
        self.minus(&IpSet::all().minus(o))
    }
    /// The set as a minimal list of CIDRs, IPv4 first.
    fn cidrs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for &(lo, hi) in &self.v4 {
            for (a, len) in blocks(lo, hi, 32) {
                out.push(format!("{}/{len}", Ipv4Addr::from(a as u32)));
            }
        }
        for &(lo, hi) in &self.v6 {
            for (a, len) in blocks(lo, hi, 128) {
                out.push(format!("{}/{len}", Ipv6Addr::from(a)));
            }
        }
        out
    }
    /// A network token as the spec writes it: an address or address/length,
    /// without host bits.
    fn parse_net(token: &str) -> Result<IpSet, String> {
        let (addr, len) = match token.split_once('/') {
            Some((a, l)) => (
                a,
                Some(
                    l.parse::<u32>()
                        .map_err(|_| format!("bad prefix length in `{token}`"))?,
                ),
            ),
            None => (token, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("bad address `{token}`"))?;
        let (value, bits) = match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        };
        let len = len.unwrap_or(bits);
        if len > bits {
            return Err(format!("prefix length over {bits} in `{token}`"));
        }
        let host = if len == 0 {
            if bits == 128 {
                u128::MAX
            } else {
                V4_MAX
            }
        } else {
            (1u128 << (bits - len)) - 1
        };
        if value & host != 0 {
            return Err(format!("host bits set in `{token}`"));
        }
        let range = vec![(value, value | host)];
        Ok(if bits == 32 {
            IpSet {
                v4: range,
                v6: vec![],
            }
        } else {
            IpSet {
                v4: vec![],
                v6: range,
            }
        })
    }
}

/// A route's path condition.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PathSet {
    Exact(String),
    /// Without a trailing `/`; never `/` itself (that is `All`).
    Prefix(String),
    All,
}

fn covers(prefix: &str, path: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl PathSet {
    fn overlaps(&self, o: &PathSet) -> bool {
        match (self, o) {
            (PathSet::All, _) | (_, PathSet::All) => true,
            (PathSet::Exact(a), PathSet::Exact(b)) => a == b,
            (PathSet::Exact(e), PathSet::Prefix(p)) | (PathSet::Prefix(p), PathSet::Exact(e)) => {
                covers(p, e)
            }
            (PathSet::Prefix(a), PathSet::Prefix(b)) => covers(a, b) || covers(b, a),
        }
    }
    /// Sort key of section 6 of the spec: exact, longer prefix, none.
    fn rank(&self) -> (u8, std::cmp::Reverse<usize>) {
        match self {
            PathSet::Exact(_) => (0, std::cmp::Reverse(0)),
            PathSet::Prefix(p) => (1, std::cmp::Reverse(p.len())),
            PathSet::All => (2, std::cmp::Reverse(0)),
        }
    }
}

struct Route {
    name: String,
    path: PathSet,
    methods: Option<Vec<String>>,
    /// Rules (by name) that apply to it, allow and deny.
    allows: Vec<(String, IpSet)>,
    denies: Vec<(String, IpSet)>,
}

impl Route {
    /// Whether every method this route accepts is accepted by `other`.
    fn methods_within(&self, other: &Route) -> bool {
        match (&self.methods, &other.methods) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => a.iter().all(|m| b.contains(m)),
        }
    }
}

struct Model {
    server: String,
    default: ast::Default,
    /// In declaration order.
    routes: Vec<Route>,
    /// Indices into `routes`, by precedence.
    order: Vec<usize>,
    /// Rules whose match needs an identity (dropped on plaintext).
    identity_rules: Vec<String>,
}

fn check_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/')
        || !p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._~-".contains(&b))
    {
        return Err(format!(
            "path `{p}`: only `/`, letters, digits and `._~-` are supported"
        ));
    }
    if p.contains("//") || p.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("path `{p}` is not normalized"));
    }
    Ok(())
}

fn model(policy: &ast::Policy) -> Result<Model, String> {
    let mut servers = Vec::new();
    let mut rules = Vec::new();
    for item in &policy.items {
        match item {
            Item::Mesh(_) => {}
            Item::Server(s) => servers.push(s),
            Item::Rule(r) => rules.push(r),
            Item::Egress(_) => return Err("unsupported: egress".into()),
            Item::Service(s) => return Err(format!("unsupported: service {}", s.name.node)),
        }
    }
    let [server] = servers[..] else {
        return Err(format!(
            "the policy must have exactly one server, not {}",
            servers.len()
        ));
    };
    let mut default = ast::Default::Deny;
    let mut routes = Vec::new();
    for stmt in &server.stmts {
        match &stmt.node {
            ServerStmt::Port(_) => {}
            ServerStmt::Protocol(p) if p.node == ast::Protocol::Http => {}
            ServerStmt::Protocol(_) => return Err("unsupported: a protocol other than http".into()),
            ServerStmt::Default(d) => default = d.node,
            ServerStmt::Route(r) => {
                let mut path = PathSet::All;
                let mut methods = None;
                for s in &r.stmts {
                    match &s.node {
                        RouteStmt::Method(m) => {
                            methods = Some(m.iter().map(|m| m.node.clone()).collect())
                        }
                        RouteStmt::Path(PathMatch::Exact(p)) => {
                            check_path(&p.node)?;
                            path = PathSet::Exact(p.node.clone());
                        }
                        RouteStmt::Path(PathMatch::Prefix(p)) => {
                            check_path(&p.node)?;
                            let p = p.node.trim_end_matches('/');
                            path = if p.is_empty() {
                                PathSet::All
                            } else {
                                PathSet::Prefix(p.to_string())
                            };
                        }
                        other => {
                            let what = match other {
                                RouteStmt::Path(PathMatch::Regex(_)) => "path regex",
                                RouteStmt::Grpc(_) => "grpc",
                                RouteStmt::Header(..) => "header",
                                RouteStmt::Query(..) => "query",
                                _ => "a service-route statement",
                            };
                            return Err(format!(
                                "route {}: unsupported condition `{what}` (only method, path and path prefix)",
                                r.name.node
                            ));
                        }
                    }
                }
                routes.push(Route {
                    name: r.name.node.clone(),
                    path,
                    methods,
                    allows: vec![],
                    denies: vec![],
                });
            }
        }
    }
    if routes.is_empty() {
        // A server without routes has one implicit route matching everything.
        routes.push(Route {
            name: "(implicit)".into(),
            path: PathSet::All,
            methods: None,
            allows: vec![],
            denies: vec![],
        });
    }
    let mut identity_rules = Vec::new();
    for rule in rules {
        let name = rule.name.node.clone();
        let mut targets = Vec::new();
        let mut matches = IpSet::all();
        let mut any_from = false;
        let mut needs_identity = false;
        for stmt in &rule.stmts {
            match &stmt.node {
                RuleStmt::To(ts) => targets.extend(ts.iter()),
                RuleStmt::From(p) => {
                    any_from = true;
                    let set = match p {
                        Principal::Any => IpSet::all(),
                        Principal::Network(n) => {
                            let mut inc = IpSet::default();
                            for t in &n.include {
                                inc = inc.union(&IpSet::parse_net(&t.node)?);
                            }
                            let mut exc = IpSet::default();
                            for t in &n.except {
                                exc = exc.union(&IpSet::parse_net(&t.node)?);
                            }
                            inc.minus(&exc)
                        }
                        Principal::Authenticated
                        | Principal::Identity(_)
                        | Principal::Namespace(_) => {
                            needs_identity = true;
                            IpSet::default()
                        }
                    };
                    matches = matches.intersect(&set);
                }
            }
        }
        if targets.is_empty() || !any_from {
            return Err(format!("rule {name}: a rule needs `to` and `from`"));
        }
        if needs_identity {
            identity_rules.push(name.clone());
        }
        for t in targets {
            if t.server.node != server.name.node {
                return Err(format!("rule {name}: unknown server {}", t.server.node));
            }
            for r in routes.iter_mut() {
                if t.route.as_ref().is_none_or(|n| n.node == r.name) {
                    let list = if rule.effect == Effect::Allow {
                        &mut r.allows
                    } else {
                        &mut r.denies
                    };
                    if !list.iter().any(|(n, _)| *n == name) {
                        list.push((name.clone(), matches.clone()));
                    }
                }
            }
            if let Some(n) = &t.route {
                if !routes.iter().any(|r| r.name == n.node) {
                    return Err(format!(
                        "rule {name}: unknown route {}.{}",
                        t.server.node, n.node
                    ));
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..routes.len()).collect();
    order.sort_by_key(|&i| (routes[i].path.rank(), routes[i].methods.is_none(), i));
    Ok(Model {
        server: server.name.node.clone(),
        default,
        routes,
        order,
        identity_rules,
    })
}

impl Model {
    /// Peers a route lets through on a plaintext listener.
    fn allowed(&self, r: &Route) -> IpSet {
        let union = |l: &[(String, IpSet)]| l.iter().fold(IpSet::default(), |a, (_, s)| a.union(s));
        let denied = union(&r.denies);
        match self.default {
            ast::Default::Deny | ast::Default::Authenticated => union(&r.allows).minus(&denied),
            ast::Default::Allow => IpSet::all().minus(&denied),
            ast::Default::Audit => IpSet::all(),
        }
    }

    /// Routes grouped by their allowed set, groups in order of first route.
    fn groups(&self) -> Vec<(IpSet, Vec<usize>)> {
        let mut groups: Vec<(IpSet, Vec<usize>)> = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let set = self.allowed(r);
            match groups.iter_mut().find(|(s, _)| *s == set) {
                Some((_, members)) => members.push(i),
                None => groups.push((set, vec![i])),
            }
        }
        groups
    }

    fn rules_of(&self, r: &Route) -> String {
        let names: Vec<String> = r
            .denies
            .iter()
            .map(|(n, _)| format!("deny {n}"))
            .chain(r.allows.iter().map(|(n, _)| format!("allow {n}")))
            .collect();
        let default = match self.default {
            ast::Default::Deny => "deny",
            ast::Default::Allow => "allow",
            ast::Default::Audit => "audit",
            ast::Default::Authenticated => "authenticated",
        };
        format!(
            "{}; default {default}",
            if names.is_empty() {
                "no rules".into()
            } else {
                names.join(", ")
            }
        )
    }

    /// Refuses a policy in which a request's method could make it fall from
    /// one route to another of overlapping path: nginx locations cannot.
    fn check_nginx(&self) -> Result<(), String> {
        for (k, &i) in self.order.iter().enumerate() {
            for &j in &self.order[k + 1..] {
                let (hi, lo) = (&self.routes[i], &self.routes[j]);
                if hi.methods.is_some() && hi.path.overlaps(&lo.path) && !lo.methods_within(hi) {
                    return Err(format!(
                        "nginx: a request to route {} with another method falls to route {} (overlapping paths); \
                         nginx picks a location by path alone",
                        hi.name, lo.name
                    ));
                }
            }
        }
        Ok(())
    }

    fn nginx(&self, source: &str) -> Result<String, String> {
        self.check_nginx()?;
        let groups = self.groups();
        // The most common allowed set goes at server level; other locations
        // carry their own (an `allow`/`deny` in a location replaces the
        // server's list).
        let main = groups
            .iter()
            .enumerate()
            .max_by_key(|(k, (_, m))| (m.len(), std::cmp::Reverse(*k)))
            .map(|(k, _)| k);
        let mut group_of = vec![0usize; self.routes.len()];
        for (g, (_, members)) in groups.iter().enumerate() {
            for &i in members {
                group_of[i] = g;
            }
        }
        let access = |set: &IpSet, indent: &str| -> String {
            let mut s = String::new();
            if *set == IpSet::all() {
                let _ = writeln!(s, "{indent}allow all;");
            } else if set.is_empty() {
                let _ = writeln!(s, "{indent}deny all;");
            } else {
                let allow = set.cidrs();
                let deny = IpSet::all().minus(set).cidrs();
                if allow.len() <= deny.len() {
                    for c in allow {
                        let _ = writeln!(s, "{indent}allow {c};");
                    }
                    let _ = writeln!(s, "{indent}deny all;");
                } else {
                    for c in deny {
                        let _ = writeln!(s, "{indent}deny {c};");
                    }
                    let _ = writeln!(s, "{indent}allow all;");
                }
            }
            s
        };
        let mut o = self.header(source);
        o.push_str(
            "daemon off;\nmaster_process on;\nworker_processes @WORKERS@;\n@USER@\npid @DIR@/nginx.pid;\n\
             error_log @DIR@/error.log warn;\n\nevents {\n    worker_connections 4096;\n}\n\nhttp {\n    access_log off;\n\
             @TEMP_PATHS@\n    keepalive_requests 100000000;\n    keepalive_timeout 600s;\n\n    upstream app {\n        \
             server @UPSTREAM@;\n        keepalive 64;\n        keepalive_requests 100000000;\n        \
             keepalive_timeout 600s;\n    }\n\n    server {\n        listen @LISTEN@ backlog=4096;\n        \
             proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n        proxy_buffering off;\n",
        );
        if let Some(main) = main {
            let r = &self.routes[groups[main].1[0]];
            let _ = writeln!(o, "        # Peers allowed ({}):", self.rules_of(r));
            o.push_str(&access(&groups[main].0, "        "));
        }
        let has_all = self.routes.iter().any(|r| r.path == PathSet::All);
        if !has_all {
            o.push_str("        # No route: 404 (`return` runs before the access checks).\n");
            o.push_str("        location / {\n            return 404;\n        }\n");
        }
        let exact_paths: Vec<&str> = self
            .routes
            .iter()
            .filter_map(|r| {
                if let PathSet::Exact(p) = &r.path {
                    Some(p.as_str())
                } else {
                    None
                }
            })
            .collect();
        let mut seen: Vec<&PathSet> = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            if seen.contains(&&r.path) {
                let _ = writeln!(
                    o,
                    "        # route {}: shadowed by an earlier route of the same path",
                    r.name
                );
                continue;
            }
            seen.push(&r.path);
            let mut body = String::new();
            if let Some(m) = &r.methods {
                let _ = writeln!(
                    body,
                    "            if ($request_method !~ ^(?:{})$) {{\n                return 404;\n            }}",
                    m.join("|")
                );
            }
            if Some(group_of[i]) != main {
                let _ = writeln!(body, "            # Peers allowed ({}):", self.rules_of(r));
                body.push_str(&access(&groups[group_of[i]].0, "            "));
            }
            body.push_str("            proxy_pass http://app;\n");
            let locations: Vec<String> = match &r.path {
                PathSet::Exact(p) => vec![format!("= {p}")],
                PathSet::Prefix(p) if exact_paths.contains(&p.as_str()) => vec![format!("{p}/")],
                PathSet::Prefix(p) => vec![format!("= {p}"), format!("{p}/")],
                PathSet::All => vec!["/".into()],
            };
            for l in locations {
                let _ = writeln!(
                    o,
                    "        location {l} {{ # route {}\n{body}        }}",
                    r.name
                );
            }
        }
        o.push_str("    }\n}\n");
        Ok(o)
    }

    /// The comment lines that open a generated configuration: where it
    /// comes from and the rules it leaves out.
    fn header(&self, source: &str) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# Generated by benches/examples/peer_configs.rs from {source} (server {}, {} routes):\n\
             # the same routes and address rules as Sluice's plaintext listener.",
            self.server,
            self.routes.len()
        );
        if !self.identity_rules.is_empty() {
            let _ = writeln!(
                o,
                "# Rules that need an identity match no plaintext peer and are left out: {}.",
                self.identity_rules.join(", ")
            );
        }
        o
    }

    /// The HAProxy configuration: routes as one ACL rule each (`map` false),
    /// or looked up in two maps (`map` true; also returns the maps' text).
    fn haproxy(&self, source: &str, map: bool) -> Result<(String, String, String), String> {
        let groups = self.groups();
        let mut o = self.header(source);
        let (mut exact_map, mut prefix_map) = (String::new(), String::new());
        o.push_str(
            "global\n    nbthread @THREADS@\n    maxconn 4096\n    \
             # normalize-uri (below) is experimental in HAProxy 2.4-2.6.\n    expose-experimental-directives\n\ndefaults\n    mode http\n    option http-keep-alive\n    \
             http-reuse safe\n    timeout connect 5s\n    timeout client 600s\n    timeout server 600s\n    \
             timeout http-request 10s\n    timeout http-keep-alive 600s\n\nfrontend sluice-equivalent\n    bind @LISTEN@\n    \
             # Sluice normalizes paths before routing and forwards the normalized one.\n    \
             http-request normalize-uri path-merge-slashes\n    http-request normalize-uri path-strip-dotdot\n    \
             http-request normalize-uri percent-decode-unreserved\n    http-request normalize-uri percent-to-uppercase\n",
        );
        if map {
            self.haproxy_maps(&groups, &mut o, &mut exact_map, &mut prefix_map)?;
        } else {
            for &i in &self.order {
                let r = &self.routes[i];
                let mut cond = Vec::new();
                match &r.path {
                    PathSet::Exact(p) => {
                        let _ = writeln!(o, "    acl route_{}_path path {p}", r.name);
                        cond.push(format!("route_{}_path", r.name));
                    }
                    PathSet::Prefix(p) => {
                        let _ = writeln!(o, "    acl route_{}_path path {p}", r.name);
                        let _ = writeln!(o, "    acl route_{}_path path_beg {p}/", r.name);
                        cond.push(format!("route_{}_path", r.name));
                    }
                    PathSet::All => {}
                }
                if let Some(m) = &r.methods {
                    let _ = writeln!(o, "    acl route_{}_method method {}", r.name, m.join(" "));
                    cond.push(format!("route_{}_method", r.name));
                }
                let g = groups.iter().position(|(_, m)| m.contains(&i)).unwrap_or(0);
                let cond = if cond.is_empty() {
                    "TRUE".to_string()
                } else {
                    cond.join(" ")
                };
                let _ = writeln!(o, "    use_backend peers_{g} if {cond}");
            }
        }
        o.push_str("    default_backend no_route\n\n");
        for (g, (set, members)) in groups.iter().enumerate() {
            let names: Vec<&str> = members
                .iter()
                .take(3)
                .map(|&i| self.routes[i].name.as_str())
                .collect();
            let more = if members.len() > 3 {
                format!(" and {} more", members.len() - 3)
            } else {
                String::new()
            };
            let _ = writeln!(o, "backend peers_{g}");
            let _ = writeln!(
                o,
                "    # Routes {}{more}; peers allowed ({}):",
                names.join(", "),
                self.rules_of(&self.routes[members[0]])
            );
            if set.is_empty() {
                o.push_str("    http-request deny deny_status 403\n");
            } else if *set != IpSet::all() {
                // At most 64 words on a line: lists are split over lines of one ACL (OR).
                for chunk in set.cidrs().chunks(32) {
                    let _ = writeln!(o, "    acl allowed src {}", chunk.join(" "));
                }
                o.push_str("    http-request deny deny_status 403 if !allowed\n");
            }
            o.push_str("    server app @UPSTREAM@\n\n");
        }
        o.push_str("backend no_route\n    http-request return status 404\n");
        Ok((o, exact_map, prefix_map))
    }

    /// Routes through two maps keyed by `METHOD:PATH`: `map_str` (a tree) for
    /// exact paths and prefixes themselves, then `map_beg` (a prefix tree,
    /// longest match) for `PREFIX/`. With a method in every key, the longest
    /// match among the request's method's keys is Sluice's route, so this
    /// needs a method on every route.
    fn haproxy_maps(
        &self,
        groups: &[(IpSet, Vec<usize>)],
        o: &mut String,
        exact_map: &mut String,
        prefix_map: &mut String,
    ) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for &i in &self.order {
            let r = &self.routes[i];
            let Some(methods) = &r.methods else {
                return Err(format!("haproxy maps: route {} has no method", r.name));
            };
            let g = groups.iter().position(|(_, m)| m.contains(&i)).unwrap_or(0);
            for m in methods {
                // In precedence order: the first route to claim a key keeps it.
                let mut add = |map: &mut String, key: String| {
                    if seen.insert(key.clone()) {
                        let _ = writeln!(map, "{key} peers_{g}");
                    }
                };
                match &r.path {
                    PathSet::Exact(p) => add(exact_map, format!("{m}:{p}")),
                    PathSet::Prefix(p) => {
                        add(exact_map, format!("{m}:{p}"));
                        add(prefix_map, format!("{m}:{p}/"));
                    }
                    PathSet::All => add(prefix_map, format!("{m}:/")),
                }
            }
        }
        o.push_str(
            "    # Routes: METHOD:PATH looked up in a tree of exact keys, then a prefix tree (longest match).\n    \
             http-request set-var-fmt(txn.key) \"%[method]:%[path]\"\n    \
             http-request set-var(txn.peers) var(txn.key),map_str(@MAPS@/routes-exact.map)\n    \
             http-request set-var(txn.peers) var(txn.key),map_beg(@MAPS@/routes-prefix.map) if !{ var(txn.peers) -m found }\n    \
             use_backend %[var(txn.peers)] if { var(txn.peers) -m found }\n",
        );
        Ok(())
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [policy_path, out_dir] = &args[..] else {
        return Err("usage: peer_configs POLICY OUTDIR".into());
    };
    let text = std::fs::read_to_string(policy_path).map_err(|e| format!("{policy_path}: {e}"))?;
    let (policy, diags) = sluice_lang::parse::parse_str(policy_path, &text);
    if !diags.is_empty() {
        return Err(sluice_lang::render::human(&policy.files, &diags));
    }
    let m = model(&policy)?;
    let source = std::path::Path::new(policy_path)
        .file_name()
        .map_or(policy_path.clone(), |f| f.to_string_lossy().into());
    let nginx = m.nginx(&source)?;
    let (haproxy, _, _) = m.haproxy(&source, false)?;
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{out_dir}: {e}"))?;
    let mut files = vec![("nginx.conf", nginx), ("haproxy.cfg", haproxy)];
    match m.haproxy(&source, true) {
        Ok((cfg, exact, prefix)) => files.extend([
            ("haproxy-map.cfg", cfg),
            ("routes-exact.map", exact),
            ("routes-prefix.map", prefix),
        ]),
        Err(e) => eprintln!("peer_configs: no haproxy-map.cfg: {e}"),
    }
    for (name, text) in files {
        let path = format!("{out_dir}/{name}");
        std::fs::write(&path, text).map_err(|e| format!("{path}: {e}"))?;
    }
    let groups: BTreeMap<usize, usize> = m
        .groups()
        .iter()
        .enumerate()
        .map(|(g, (_, mm))| (g, mm.len()))
        .collect();
    eprintln!(
        "peer_configs: {} routes, {} peer set(s) {:?}; wrote nginx.conf and haproxy.cfg (and the map variant) in {out_dir}",
        m.routes.len(),
        groups.len(),
        groups.values().collect::<Vec<_>>()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
