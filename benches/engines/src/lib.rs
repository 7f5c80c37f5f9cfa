//! One authorization workload, three decision engines: Sluice, Cedar
//! (`cedar-policy`) and Rego (`regorus`).
//!
//! [`Workload::generate`] makes, from a fixed seed, N routes of one HTTP
//! server, each with one allow rule: route by method and path prefix, allow
//! by SPIFFE identity (exact, or with a `*` segment), by namespace, or by an
//! IPv4 network. The workload is then written three ways:
//!
//! - [`Workload::sluice_policy`]: a Sluice policy (routes and `allow` rules,
//!   default deny), compiled to a bundle and decided by `sluice-runtime`;
//! - [`Workload::cedar_policies`]: one Cedar `permit` per route. Cedar has
//!   no routing, so each policy checks the method (the action), the path
//!   prefix (`context.path == P || context.path like "P/*"`) and the
//!   principal (`principal.identity like ...`, `principal.ip.isInRange(...)`);
//! - [`Workload::rego_policy`] and [`Workload::rego_data`]: one Rego rule
//!   `allow` that walks `data.routes`, finds the route whose prefix matches
//!   the path and whose methods hold the method, and checks the principal
//!   with `glob.match` or `net.cidr_contains`.
//!
//! Cedar and Rego each have a second, stronger encoding that does not scan
//! the routes:
//!
//! - [`CedarEntitiesEngine`]: the routes as entities in a path hierarchy,
//!   built once, with a fixed set of policies
//!   ([`Workload::cedar_entities_policies`]) reading the route that is the
//!   request's resource;
//! - [`Workload::rego_indexed_policy`] and [`Workload::rego_indexed_data`]:
//!   the routes in an object keyed by prefix, looked up under the path and
//!   each of its prefixes.
//!
//! Route prefixes all have three segments and are distinct, so no prefix
//! is a prefix of another: the longest-prefix rule of Sluice and the "any
//! matching policy" reading of Cedar and Rego pick the same route. Prefixes
//! match element-wise in all three (`/a/b/c` matches `/a/b/c` and
//! `/a/b/c/...`, not `/a/b/cx`).
//!
//! [`sample`] generates requests (allowed, denied by principal, wrong
//! method, no route); [`check_equivalence`] decides each with the five
//! engines and with a plain Rust [`Workload::reference`], and fails on the
//! first disagreement.
//!
//! The library also installs the counting global allocator of
//! `sluice-alloc-count` (every binary that links it counts; see
//! [`allocations`], the calling thread's count), so that the benchmark and
//! the tests can report allocations per decision.

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityUid, PolicySet,
    Request as CedarRequest, RestrictedExpression,
};
use regorus::Value;
pub use sluice_alloc_count::allocations;
use sluice_alloc_count::Counting;
use sluice_benches::{Rng, RESOURCES};
use sluice_runtime::{AlignedBytes, Bundle, Http, Inbound, NoHeaders, Peer, PeerClass, Scratch};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

// ---------------------------------------------------------------------------
// Allocation counting.

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per call of `f`, averaged over `calls` calls made after
/// `warm_up` calls.
pub fn allocations_per_call(warm_up: usize, calls: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warm_up {
        f();
    }
    let before = allocations();
    for _ in 0..calls {
        f();
    }
    (allocations() - before) as f64 / calls.max(1) as f64
}

// ---------------------------------------------------------------------------
// The workload.

/// The policy sizes (routes, with as many rules) of the benchmark.
pub const SIZES: [usize; 3] = [10, 100, 1_000];
/// Requests in the equivalence sample.
pub const SAMPLE_SIZE: usize = 1_000;
/// The mesh trust domain.
pub const TRUST_DOMAIN: &str = "prod.example.com";
/// The port of the server `web`.
pub const PORT: u16 = 8080;

/// Who a route's rule allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A SPIFFE ID, or a pattern in which a whole path segment is `*`
    /// (exactly one segment).
    Identity(String),
    /// Sluice's `namespace N`: the pattern `spiffe://TD/ns/N/sa/*`.
    Namespace(String),
    /// An IPv4 network.
    Network(Ipv4Addr, u8),
}

impl Principal {
    /// The identity pattern this principal stands for, if it is one.
    pub fn identity_pattern(&self) -> Option<String> {
        match self {
            Principal::Identity(p) => Some(p.clone()),
            Principal::Namespace(ns) => Some(format!("spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/*")),
            Principal::Network(..) => None,
        }
    }
}

/// One route of the server, with the one rule that allows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The route's name (`r0`, `r1`, ...); the rule is `allow-r0`, ...
    pub name: String,
    /// The methods the route matches (one or two).
    pub methods: Vec<&'static str>,
    /// The path prefix: three segments, no trailing `/`.
    pub prefix: String,
    /// Who may call the route.
    pub rule: Principal,
}

/// N routes with N rules, generated deterministically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The routes, in declaration order.
    pub routes: Vec<Route>,
}

const SEED: u64 = 0x5eed_e9e1_9e55_0002;
const SAMPLE_SEED: u64 = 0x5a3b_1e00_0000_0003;

#[rustfmt::skip]
const SERVICES: [&str; 24] = [
    "payments", "checkout", "inventory", "shipping", "billing", "search", "catalog", "identity",
    "notifications", "analytics", "reporting", "orders", "users", "support", "marketing", "partners",
    "ledger", "fraud", "recommendations", "pricing", "reviews", "accounts", "media", "tenants",
];
#[rustfmt::skip]
const NAMESPACES: [&str; 20] = [
    "payments", "checkout", "frontend", "inventory", "shipping", "billing", "search", "catalog",
    "identity", "notifications", "analytics", "monitoring", "ingress", "batch", "ml-serving",
    "fraud", "ledger", "orders", "support", "platform",
];
#[rustfmt::skip]
const SERVICE_ACCOUNTS: [&str; 12] = [
    "checkout-frontend", "cart-api", "orders-worker", "ledger-sync", "fraud-scorer", "search-indexer",
    "catalog-api", "report-cron", "notify-worker", "batch-runner", "export-job", "gateway",
];
const METHOD_SETS: [&[&str]; 6] = [
    &["GET"],
    &["GET", "HEAD"],
    &["POST"],
    &["PUT", "PATCH"],
    &["DELETE"],
    &["GET", "POST"],
];
const ALL_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
#[rustfmt::skip]
const SUBPATHS: [&str; 8] = [
    "42", "42/details", "7f3a/history", "search", "2024/03/summary", "export", "9/lines/3", "latest",
];

impl Workload {
    /// The workload of `n` routes (and `n` rules). Same `n`, same workload;
    /// the routes of a smaller size are not a prefix of a larger one's.
    ///
    /// Rules: 30% `namespace`, 20% exact identity, 20% identity with a `*`
    /// service account (`.../ns/N/sa/*` written as an identity pattern, or
    /// `.../ns/*/sa/SA`: 10% each), 30% IPv4 network (`/16` or `/24`).
    pub fn generate(n: usize) -> Workload {
        let mut rng = Rng::new(SEED ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut seen = HashSet::new();
        let mut routes = Vec::with_capacity(n);
        while routes.len() < n {
            let prefix = format!(
                "/{}/v{}/{}",
                rng.pick(&SERVICES),
                1 + rng.below(3),
                rng.pick(&RESOURCES)
            );
            if !seen.insert(prefix.clone()) {
                continue;
            }
            let i = routes.len();
            let td = TRUST_DOMAIN;
            let rule = match rng.below(100) {
                0..=29 => Principal::Namespace(rng.pick(&NAMESPACES).to_string()),
                30..=49 => Principal::Identity(format!(
                    "spiffe://{td}/ns/{}/sa/{}",
                    rng.pick(&NAMESPACES),
                    rng.pick(&SERVICE_ACCOUNTS)
                )),
                50..=59 => {
                    Principal::Identity(format!("spiffe://{td}/ns/{}/sa/*", rng.pick(&NAMESPACES)))
                }
                60..=69 => Principal::Identity(format!(
                    "spiffe://{td}/ns/*/sa/{}",
                    rng.pick(&SERVICE_ACCOUNTS)
                )),
                p => {
                    let a = rng.below(256) as u8;
                    let b = rng.below(256) as u8;
                    if p < 85 {
                        Principal::Network(Ipv4Addr::new(10, a, 0, 0), 16)
                    } else {
                        Principal::Network(Ipv4Addr::new(10, a, b, 0), 24)
                    }
                }
            };
            routes.push(Route {
                name: format!("r{i}"),
                methods: rng.pick(&METHOD_SETS).to_vec(),
                prefix,
                rule,
            });
        }
        Workload { routes }
    }

    /// The Sluice policy: one server `web` on [`PORT`] with a route per
    /// [`Route`] and one `allow` rule per route; the server's default is
    /// `deny`.
    pub fn sluice_policy(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "mesh {{ trust-domain \"{TRUST_DOMAIN}\" }}\n");
        let _ = writeln!(s, "server web {{\n  port {PORT}\n  protocol http");
        for r in &self.routes {
            let _ = writeln!(
                s,
                "  route {} {{ method {}  path prefix \"{}\" }}",
                r.name,
                r.methods.join(", "),
                r.prefix
            );
        }
        s.push_str("}\n\n");
        for r in &self.routes {
            let from = match &r.rule {
                Principal::Identity(p) => format!("identity \"{p}\""),
                Principal::Namespace(ns) => format!("namespace \"{ns}\""),
                Principal::Network(ip, len) => format!("network {ip}/{len}"),
            };
            let _ = writeln!(s, "allow allow-{0} {{ to web.{0}  from {from} }}", r.name);
        }
        s
    }

    /// The Cedar policies: one `permit` per route, with the route's
    /// methods as actions, the prefix checked on `context.path` and the
    /// principal on the attributes `identity` (a string, `""` without one)
    /// and `ip` (an `ipaddr`) of the principal entity.
    ///
    /// Cedar's `like` lets `*` match any characters, `/` included, while a
    /// Sluice `*` is exactly one segment; each identity pattern with a `*`
    /// is therefore written `like P && !(like P')` where P' has `*/*` in
    /// place of the `*`: the star's part of the identity holds no `/`.
    pub fn cedar_policies(&self) -> String {
        let mut s = String::new();
        for r in &self.routes {
            let action = if r.methods.len() == 1 {
                format!("action == Action::\"{}\"", r.methods[0])
            } else {
                let list: Vec<String> = r
                    .methods
                    .iter()
                    .map(|m| format!("Action::\"{m}\""))
                    .collect();
                format!("action in [{}]", list.join(", "))
            };
            let principal = match &r.rule {
                Principal::Network(ip, len) => {
                    format!("principal.ip.isInRange(ip(\"{ip}/{len}\"))")
                }
                other => {
                    let pattern = other.identity_pattern().expect("an identity principal");
                    if pattern.contains('*') {
                        format!(
                            "principal.identity like \"{pattern}\" && \
                             !(principal.identity like \"{}\")",
                            pattern.replacen('*', "*/*", 1)
                        )
                    } else {
                        format!("principal.identity == \"{pattern}\"")
                    }
                }
            };
            let _ = writeln!(
                s,
                "@id(\"allow-{name}\")\npermit (principal, {action}, resource == Server::\"web\")\n\
                 when {{\n  (context.path == \"{p}\" || context.path like \"{p}/*\") &&\n  {principal}\n}};",
                name = r.name,
                p = r.prefix,
            );
        }
        s
    }

    /// The Rego policy (package `sluice`, Rego v1): `allow` is true when
    /// some route of `data.routes` matches the path by prefix, lists the
    /// method, and admits the principal (`glob.match` with `/` as the
    /// delimiter, so that `*` is one segment, or `net.cidr_contains`).
    pub fn rego_policy() -> &'static str {
        r#"package sluice

default allow := false

# The path with a `/` appended starts with the prefix with a `/` appended
# exactly when the prefix matches element-wise (`/a/b` matches `/a/b` and
# `/a/b/c`, not `/a/bc`): one builtin call per route.
path_slash := concat("", [input.path, "/"])

allow if {
	some route in data.routes
	startswith(path_slash, route.prefix_slash)
	input.method in route.methods
	principal_matches(route)
}

principal_matches(route) if glob.match(route.identity, ["/"], input.identity)

principal_matches(route) if net.cidr_contains(route.network, input.ip)
"#
    }

    /// The Rego data document: `{"routes": [{"name", "prefix",
    /// "prefix_slash", "methods", and "identity" (a glob) or "network"}]}`.
    pub fn rego_data(&self) -> serde_json::Value {
        let routes: Vec<serde_json::Value> = self
            .routes
            .iter()
            .map(|r| {
                let mut o = serde_json::json!({
                    "name": r.name,
                    "prefix": r.prefix,
                    "prefix_slash": format!("{}/", r.prefix),
                    "methods": r.methods,
                });
                match &r.rule {
                    Principal::Network(ip, len) => o["network"] = format!("{ip}/{len}").into(),
                    other => o["identity"] = other.identity_pattern().into(),
                }
                o
            })
            .collect();
        serde_json::json!({ "routes": routes })
    }

    /// The Rego policy indexed by path (package `sluice`, Rego v1): instead
    /// of walking the routes, `allow` looks up `data.exact` under the
    /// request's path and `data.prefix` under the path and each of its
    /// prefixes (`/a/b/c` → `/a/b/c`, `/a/b`, `/a`, `/`), then checks the
    /// method and the principal of the route found, as
    /// [`Workload::rego_policy`] does. Same decisions: a prefix matches
    /// element-wise exactly when it is one of the path's segment prefixes.
    pub fn rego_indexed_policy() -> &'static str {
        r#"package sluice

default allow := false

# `/a/b/c` → ["", "a", "b", "c"]: the prefixes are the first k parts
# joined by `/`, for k from 2 (`/a`) to all of them (the path itself).
parts := split(input.path, "/")

allow if admits(data.exact[input.path])

allow if {
	some k in numbers.range(2, count(parts))
	admits(data.prefix[concat("/", array.slice(parts, 0, k))])
}

allow if admits(data.prefix["/"])

admits(route) if {
	route.methods[input.method]
	principal_matches(route)
}

principal_matches(route) if glob.match(route.identity, ["/"], input.identity)

principal_matches(route) if net.cidr_contains(route.network, input.ip)
"#
    }

    /// The data of [`Workload::rego_indexed_policy`]: `{"exact": {PATH:
    /// route}, "prefix": {PREFIX: route}}`, a route being `{"name",
    /// "methods": {METHOD: true}, and "identity" (a glob) or "network"}`.
    /// The workload has prefix routes only, so `exact` is empty. Prefixes
    /// do not nest, so each key holds one route.
    pub fn rego_indexed_data(&self) -> serde_json::Value {
        let mut prefix = serde_json::Map::new();
        for r in &self.routes {
            let methods: serde_json::Map<String, serde_json::Value> = r
                .methods
                .iter()
                .map(|m| (m.to_string(), true.into()))
                .collect();
            let mut o = serde_json::json!({ "name": r.name, "methods": methods });
            match &r.rule {
                Principal::Network(ip, len) => o["network"] = format!("{ip}/{len}").into(),
                other => o["identity"] = other.identity_pattern().into(),
            }
            prefix.insert(r.prefix.clone(), o);
        }
        serde_json::json!({ "exact": {}, "prefix": prefix })
    }

    /// The Cedar policies of the entity encoding ([`CedarEntitiesEngine`]):
    /// a fixed set that reads the route from the request's resource, a
    /// `Path` entity. One `permit` for routes allowing an exact identity
    /// (`resource.identity`), one for routes allowing a network
    /// (`resource.network`, an `ipaddr`), and one per distinct identity
    /// pattern with a `*` (Cedar's `like` takes only a literal pattern),
    /// applying to the routes `in` the group `Admits::"PATTERN"`. The
    /// method is an action in the route's `actions`.
    pub fn cedar_entities_policies(&self) -> String {
        let mut s = String::from(
            "@id(\"exact-identity\")\npermit (principal, action, resource)\n\
             when { resource has identity && context.identity == resource.identity && \
             action in resource.actions };\n\
             @id(\"network\")\npermit (principal, action, resource)\n\
             when { resource has network && context.ip.isInRange(resource.network) && \
             action in resource.actions };\n",
        );
        let mut patterns: Vec<String> = self
            .routes
            .iter()
            .filter_map(|r| r.rule.identity_pattern())
            .filter(|p| p.contains('*'))
            .collect();
        patterns.sort();
        patterns.dedup();
        for (k, pattern) in patterns.iter().enumerate() {
            let _ = writeln!(
                s,
                "@id(\"pattern-{k}\")\npermit (principal, action, resource in Admits::\"{pattern}\")\n\
                 when {{ context.identity like \"{pattern}\" && !(context.identity like \"{}\") && \
                 action in resource.actions }};",
                pattern.replacen('*', "*/*", 1)
            );
        }
        s
    }

    /// The answer the workload means, computed directly: allow when some
    /// route's prefix matches the path element-wise, the route lists the
    /// method, and its principal admits the peer.
    pub fn reference(&self, req: &Request) -> bool {
        self.routes.iter().any(|r| {
            prefix_matches(&r.prefix, &req.path)
                && r.methods.contains(&req.method)
                && match &r.rule {
                    Principal::Network(net, len) => in_network(req.ip, *net, *len),
                    other => match &req.identity {
                        Some(id) => identity_matches(
                            &other.identity_pattern().expect("an identity principal"),
                            id,
                        ),
                        None => false,
                    },
                }
        })
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn in_network(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// A SPIFFE pattern match in which `*` stands for exactly one segment.
fn identity_matches(pattern: &str, id: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let i: Vec<&str> = id.split('/').collect();
    p.len() == i.len() && p.iter().zip(&i).all(|(p, i)| *p == "*" || p == i)
}

// ---------------------------------------------------------------------------
// Requests.

/// What a request was generated to exercise (the answer itself comes from
/// [`Workload::reference`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intent {
    /// The route's method and a peer its rule admits.
    Allowed,
    /// The route's method and a peer its rule does not admit.
    WrongPeer,
    /// A method the route does not list.
    WrongMethod,
    /// A path no route's prefix matches.
    NoRoute,
}

/// An inbound HTTP request to `web`: method, normalized path, peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// What it was generated for.
    pub intent: Intent,
    /// The method.
    pub method: &'static str,
    /// The path (already normalized, no query).
    pub path: String,
    /// The peer's SPIFFE ID, `None` for a peer without a client certificate.
    pub identity: Option<String>,
    /// The peer's IP.
    pub ip: Ipv4Addr,
}

/// `count` requests against `workload`, generated deterministically: 40%
/// meant to be allowed, 30% with a peer the route's rule does not admit
/// (another namespace or service account, an extra path segment, another
/// trust domain, no identity, an IP outside the network), 10% with a method
/// the route does not list, 20% with a path no route matches (a segment
/// extended by a character, the parent of a prefix, an unknown path).
pub fn sample(workload: &Workload, count: usize) -> Vec<Request> {
    let mut rng = Rng::new(SAMPLE_SEED ^ workload.routes.len() as u64);
    (0..count).map(|_| request(workload, &mut rng)).collect()
}

fn random_identity(rng: &mut Rng) -> String {
    format!(
        "spiffe://{TRUST_DOMAIN}/ns/{}/sa/{}",
        rng.pick(&NAMESPACES),
        rng.pick(&SERVICE_ACCOUNTS)
    )
}

fn random_ip(rng: &mut Rng) -> Ipv4Addr {
    if rng.below(4) == 0 {
        Ipv4Addr::new(192, 168, rng.below(256) as u8, 1 + rng.below(254) as u8)
    } else {
        Ipv4Addr::new(
            10,
            rng.below(256) as u8,
            rng.below(256) as u8,
            1 + rng.below(254) as u8,
        )
    }
}

/// A peer the principal admits.
fn admitted_peer(rule: &Principal, rng: &mut Rng) -> (Option<String>, Ipv4Addr) {
    match rule {
        Principal::Network(net, len) => {
            let host = rng.next_u64() as u32 & !(u32::MAX << (32 - len));
            let ip = Ipv4Addr::from(u32::from(*net) | host);
            let identity = (rng.below(2) == 0).then(|| random_identity(rng));
            (identity, ip)
        }
        other => {
            let pattern = other.identity_pattern().expect("an identity principal");
            let id: Vec<String> = pattern
                .split('/')
                .enumerate()
                .map(|(k, seg)| match (seg, k) {
                    ("*", 4) => rng.pick(&NAMESPACES).to_string(),
                    ("*", _) => rng.pick(&SERVICE_ACCOUNTS).to_string(),
                    (seg, _) => seg.to_string(),
                })
                .collect();
            (Some(id.join("/")), random_ip(rng))
        }
    }
}

/// A peer the principal most likely does not admit (the reference decides).
fn other_peer(rule: &Principal, rng: &mut Rng) -> (Option<String>, Ipv4Addr) {
    let (identity, ip) = admitted_peer(rule, rng);
    match rule {
        Principal::Network(net, len) => {
            // Flip a bit inside the network part.
            let bit = 1u32 << (32 - len + rng.below(*len as usize - 8) as u8);
            (identity, Ipv4Addr::from((u32::from(*net) ^ bit) | 7))
        }
        _ => {
            let id = identity.expect("an identity");
            let identity = match rng.below(6) {
                0 => None,
                1 => Some(format!("{id}/extra")),
                2 => Some(id.replace(TRUST_DOMAIN, "partner.example.org")),
                3 => Some(id.replacen("/ns/", "/ns/x", 1)),
                4 => Some(format!("{id}-v2")),
                _ => Some(random_identity(rng)),
            };
            (identity, ip)
        }
    }
}

fn request(workload: &Workload, rng: &mut Rng) -> Request {
    let route = &workload.routes[rng.below(workload.routes.len())];
    let path = if rng.below(5) == 0 {
        route.prefix.clone()
    } else {
        format!("{}/{}", route.prefix, rng.pick(&SUBPATHS))
    };
    let method = *rng.pick(&route.methods);
    let p = rng.below(100);
    let (intent, method, path, (identity, ip)) = match p {
        0..=39 => (
            Intent::Allowed,
            method,
            path,
            admitted_peer(&route.rule, rng),
        ),
        40..=69 => (
            Intent::WrongPeer,
            method,
            path,
            other_peer(&route.rule, rng),
        ),
        70..=79 => {
            let others: Vec<&'static str> = ALL_METHODS
                .iter()
                .copied()
                .filter(|m| !route.methods.contains(m))
                .collect();
            let m = *rng.pick(&others);
            (
                Intent::WrongMethod,
                m,
                path,
                admitted_peer(&route.rule, rng),
            )
        }
        _ => {
            let path = match rng.below(5) {
                // `/svc/v1/items` → `/svc/v1/itemsx/...`: element-wise, no match.
                0 | 1 => format!("{}x/{}", route.prefix, rng.pick(&SUBPATHS)),
                2 => route.prefix[..route.prefix.rfind('/').expect("a segment")].to_string(),
                3 => format!("/{}/v9/{}", rng.pick(&SERVICES), rng.pick(&RESOURCES)),
                _ => "/healthz".to_string(),
            };
            (
                Intent::NoRoute,
                method,
                path,
                admitted_peer(&route.rule, rng),
            )
        }
    };
    Request {
        intent,
        method,
        path,
        identity,
        ip,
    }
}

// ---------------------------------------------------------------------------
// The engines.

/// Compiles the workload's Sluice policy: the bundle bytes, aligned for
/// [`Bundle::from_bytes`].
pub fn compile_sluice(workload: &Workload) -> Result<AlignedBytes, String> {
    let text = workload.sluice_policy();
    let (policy, diags) = sluice_lang::parse::parse_str("engines.sluice", &text);
    if diags.iter().any(|d| d.is_error()) {
        return Err(sluice_lang::render::human(&policy.files, &diags));
    }
    let compiled = sluice_compiler::compile(&policy, &sluice_compiler::Config::default())
        .map_err(|d| sluice_lang::render::human(&policy.files, &d))?;
    if !compiled.warnings.is_empty() {
        return Err(sluice_lang::render::human(
            &policy.files,
            &compiled.warnings,
        ));
    }
    Ok(AlignedBytes::new(&compiled.bundle))
}

/// A loaded Sluice bundle with its per-decision state.
pub struct SluiceEngine<'a> {
    bundle: Bundle<'a>,
    class: PeerClass,
    scratch: Scratch,
}

/// A request as the Sluice runtime takes it (borrowing a [`Request`]).
pub struct SluiceRequest<'r> {
    peer: Peer<'r>,
    inbound: Inbound<'r>,
}

impl<'a> SluiceEngine<'a> {
    /// Loads the bundle (see [`compile_sluice`]).
    pub fn new(bytes: &'a AlignedBytes) -> Result<Self, String> {
        let bundle = Bundle::from_bytes(bytes.as_bytes()).map_err(|e| format!("{e:?}"))?;
        let class = bundle.create_peer_class();
        let scratch = bundle.create_scratch();
        Ok(SluiceEngine {
            bundle,
            class,
            scratch,
        })
    }

    /// The request in the runtime's form.
    pub fn request<'r>(&self, req: &'r Request) -> SluiceRequest<'r> {
        SluiceRequest {
            peer: Peer {
                ip: Some(IpAddr::V4(req.ip)),
                identity: req.identity.as_deref(),
            },
            inbound: Inbound {
                port: PORT,
                http: Some(Http {
                    method: req.method,
                    path: req.path.as_bytes(),
                    headers: &NoHeaders,
                }),
            },
        }
    }

    /// End to end: classifies the peer, then decides the request. True
    /// when allowed.
    #[inline]
    pub fn decide(&mut self, req: &SluiceRequest<'_>) -> bool {
        self.bundle.classify(&req.peer, &mut self.class);
        match self
            .bundle
            .decide_inbound(&req.inbound, &self.class, &mut self.scratch)
        {
            Ok(d) => d.allow,
            Err(e) => panic!("sluice: request error {e:?}"),
        }
    }
}

/// The Cedar policy set with an authorizer.
pub struct CedarEngine {
    policies: PolicySet,
    authorizer: Authorizer,
}

/// A request as Cedar takes it: the request and the entities (the
/// principal with its attributes).
pub struct CedarInput {
    request: CedarRequest,
    entities: Entities,
}

impl CedarEngine {
    /// Parses the workload's Cedar policies.
    pub fn new(workload: &Workload) -> Result<Self, String> {
        let policies = PolicySet::from_str(&workload.cedar_policies())
            .map_err(|e| format!("cedar policies: {e:?}"))?;
        Ok(CedarEngine {
            policies,
            authorizer: Authorizer::new(),
        })
    }

    /// Builds the request: principal `Peer::"peer"` with attributes
    /// `identity` (`""` without one) and `ip`, action `Action::"METHOD"`,
    /// resource `Server::"web"`, context `{path}`.
    pub fn request(&self, req: &Request) -> CedarInput {
        let principal = EntityUid::from_str(r#"Peer::"peer""#).expect("a uid");
        let action = EntityUid::from_str(&format!("Action::\"{}\"", req.method)).expect("a uid");
        let resource = EntityUid::from_str(r#"Server::"web""#).expect("a uid");
        let attrs = HashMap::from([
            (
                "identity".to_string(),
                RestrictedExpression::new_string(req.identity.clone().unwrap_or_default()),
            ),
            (
                "ip".to_string(),
                RestrictedExpression::new_ip(req.ip.to_string()),
            ),
        ]);
        let peer = Entity::new(principal.clone(), attrs, HashSet::new()).expect("an entity");
        let entities = Entities::from_entities([peer], None).expect("entities");
        let context = Context::from_pairs([(
            "path".to_string(),
            RestrictedExpression::new_string(req.path.clone()),
        )])
        .expect("a context");
        let request =
            CedarRequest::new(principal, action, resource, context, None).expect("a request");
        CedarInput { request, entities }
    }

    /// `is_authorized`; true when the decision is `Allow`. Panics when a
    /// policy failed to evaluate (the generated policies never should).
    #[inline]
    pub fn decide(&self, input: &CedarInput) -> bool {
        let response =
            self.authorizer
                .is_authorized(&input.request, &self.policies, &input.entities);
        if let Some(e) = response.diagnostics().errors().next() {
            panic!("cedar: evaluation error {e}");
        }
        response.decision() == CedarDecision::Allow
    }
}

/// A regorus engine holding the policy and the data.
pub struct RegoEngine {
    engine: regorus::Engine,
}

impl RegoEngine {
    /// The rule evaluated for each decision.
    pub const RULE: &'static str = "data.sluice.allow";

    /// Loads [`Workload::rego_policy`] and [`Workload::rego_data`] (the
    /// encoding that walks the routes).
    pub fn new(workload: &Workload) -> Result<Self, String> {
        Self::load(Workload::rego_policy(), &workload.rego_data())
    }

    /// Loads [`Workload::rego_indexed_policy`] and
    /// [`Workload::rego_indexed_data`] (the encoding indexed by path).
    pub fn indexed(workload: &Workload) -> Result<Self, String> {
        Self::load(
            Workload::rego_indexed_policy(),
            &workload.rego_indexed_data(),
        )
    }

    fn load(policy: &str, data: &serde_json::Value) -> Result<Self, String> {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("sluice.rego".to_string(), policy.to_string())
            .map_err(|e| format!("rego policy: {e}"))?;
        engine
            .add_data(
                Value::from_json_str(&data.to_string()).map_err(|e| format!("rego data: {e}"))?,
            )
            .map_err(|e| format!("rego data: {e}"))?;
        Ok(RegoEngine { engine })
    }

    /// The input document: `{"method", "path", "identity" ("" without
    /// one), "ip"}`.
    pub fn request(&self, req: &Request) -> Value {
        let input = serde_json::json!({
            "method": req.method,
            "path": req.path,
            "identity": req.identity.clone().unwrap_or_default(),
            "ip": req.ip.to_string(),
        });
        Value::from_json_str(&input.to_string()).expect("an input value")
    }

    /// Sets the input and evaluates `data.sluice.allow`; true when it is
    /// `true`.
    #[inline]
    pub fn decide(&mut self, input: &Value) -> bool {
        self.engine.set_input(input.clone());
        match self.engine.eval_rule(Self::RULE.to_string()) {
            Ok(Value::Bool(b)) => b,
            other => panic!("rego: {other:?}"),
        }
    }
}

/// Cedar as its documentation recommends for many resources: the routes
/// are entities, built once, and a fixed set of policies
/// ([`Workload::cedar_entities_policies`]) reads them.
///
/// Each route is the entity `Path::"PREFIX"` with the attributes `actions`
/// (its methods as `Action` entities) and `identity` (an exact SPIFFE ID)
/// or `network` (an `ipaddr`); its parents are its parent path (`Path::"/a/b/c"`
/// `in` `Path::"/a/b"` `in` `Path::"/a"` `in` `Path::"/"`) and, for a rule
/// with an identity pattern, the group `Admits::"PATTERN"`. Cedar does no
/// routing: the request's resource is the route, found by looking up the
/// request's path and then each of its prefixes, longest first, in a map
/// from prefix to entity (when none matches, the path itself, an entity
/// Cedar does not know, which no policy permits). That lookup happens when
/// the request is built, outside the timed region, as the plain
/// encoding's request building does. The peer's `identity` (`""` without
/// one) and `ip` are the request's context.
pub struct CedarEntitiesEngine {
    policies: PolicySet,
    entities: Entities,
    routes: HashMap<String, EntityUid>,
    authorizer: Authorizer,
}

/// A request of the entity encoding: the request alone (the entities are
/// the engine's).
pub struct CedarEntitiesInput {
    request: CedarRequest,
}

fn path_uid(path: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(
        "Path".parse().expect("a type name"),
        path.parse().expect("an entity id"),
    )
}

/// `/a/b/c` → `/a/b`, `/a/b` → `/a`, `/a` → `/`, `/` → none.
fn parent_path(path: &str) -> Option<&str> {
    match path.rfind('/') {
        _ if path == "/" => None,
        Some(0) => Some("/"),
        Some(k) => Some(&path[..k]),
        None => None,
    }
}

impl CedarEntitiesEngine {
    /// Parses the policies and builds the entities (routes, their parent
    /// paths and their identity-pattern groups) once.
    pub fn new(workload: &Workload) -> Result<Self, String> {
        let policies = PolicySet::from_str(&workload.cedar_entities_policies())
            .map_err(|e| format!("cedar entity-encoding policies: {e:?}"))?;
        let action =
            |m: &str| EntityUid::from_str(&format!("Action::\"{m}\"")).expect("an action uid");
        // Every path entity: the routes with their attributes, and their
        // ancestors without.
        let mut paths: HashMap<
            String,
            (HashMap<String, RestrictedExpression>, HashSet<EntityUid>),
        > = HashMap::new();
        let mut routes = HashMap::new();
        for r in &workload.routes {
            let mut attrs = HashMap::from([(
                "actions".to_string(),
                RestrictedExpression::new_set(
                    r.methods
                        .iter()
                        .map(|m| RestrictedExpression::new_entity_uid(action(m))),
                ),
            )]);
            let mut parents = HashSet::new();
            match &r.rule {
                Principal::Network(ip, len) => {
                    attrs.insert(
                        "network".to_string(),
                        RestrictedExpression::new_ip(format!("{ip}/{len}")),
                    );
                }
                other => {
                    let pattern = other.identity_pattern().expect("an identity principal");
                    if pattern.contains('*') {
                        parents.insert(EntityUid::from_type_name_and_id(
                            "Admits".parse().expect("a type name"),
                            pattern.parse().expect("an entity id"),
                        ));
                    } else {
                        attrs.insert(
                            "identity".to_string(),
                            RestrictedExpression::new_string(pattern),
                        );
                    }
                }
            }
            let mut path = r.prefix.as_str();
            let entry = paths.entry(path.to_string()).or_default();
            entry.0.extend(attrs);
            entry.1.extend(parents);
            while let Some(parent) = parent_path(path) {
                paths
                    .entry(path.to_string())
                    .or_default()
                    .1
                    .insert(path_uid(parent));
                paths.entry(parent.to_string()).or_default();
                path = parent;
            }
            routes.insert(r.prefix.clone(), path_uid(&r.prefix));
        }
        let entities = paths
            .into_iter()
            .map(|(path, (attrs, parents))| {
                Entity::new(path_uid(&path), attrs, parents)
                    .map_err(|e| format!("cedar entity {path}: {e:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let entities = Entities::from_entities(entities, None)
            .map_err(|e| format!("cedar entities: {e:?}"))?;
        Ok(CedarEntitiesEngine {
            policies,
            entities,
            routes,
            authorizer: Authorizer::new(),
        })
    }

    /// The route of `path`: the path itself or its longest prefix that is
    /// a route (prefixes match element-wise).
    fn route(&self, path: &str) -> Option<&EntityUid> {
        let mut p = path;
        loop {
            if let Some(uid) = self.routes.get(p) {
                return Some(uid);
            }
            p = parent_path(p)?;
        }
    }

    /// Builds the request: principal `Peer::"peer"`, action
    /// `Action::"METHOD"`, resource the route (see the type's
    /// documentation), context `{identity, ip}`.
    pub fn request(&self, req: &Request) -> CedarEntitiesInput {
        let principal = EntityUid::from_str(r#"Peer::"peer""#).expect("a uid");
        let action = EntityUid::from_str(&format!("Action::\"{}\"", req.method)).expect("a uid");
        let resource = self
            .route(&req.path)
            .cloned()
            .unwrap_or_else(|| path_uid(&req.path));
        let context = Context::from_pairs([
            (
                "identity".to_string(),
                RestrictedExpression::new_string(req.identity.clone().unwrap_or_default()),
            ),
            (
                "ip".to_string(),
                RestrictedExpression::new_ip(req.ip.to_string()),
            ),
        ])
        .expect("a context");
        let request =
            CedarRequest::new(principal, action, resource, context, None).expect("a request");
        CedarEntitiesInput { request }
    }

    /// `is_authorized` against the engine's entities; true when the
    /// decision is `Allow`. Panics when a policy failed to evaluate.
    #[inline]
    pub fn decide(&self, input: &CedarEntitiesInput) -> bool {
        let response =
            self.authorizer
                .is_authorized(&input.request, &self.policies, &self.entities);
        if let Some(e) = response.diagnostics().errors().next() {
            panic!("cedar (entities): evaluation error {e}");
        }
        response.decision() == CedarDecision::Allow
    }
}

// ---------------------------------------------------------------------------
// The equivalence check.

/// What [`check_equivalence`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agreement {
    /// Routes (and rules) of the workload.
    pub routes: usize,
    /// Requests decided by all five engines.
    pub requests: usize,
    /// Of those, allowed.
    pub allowed: usize,
    /// Requests per [`Intent`], and how many of each were allowed.
    pub by_intent: Vec<(Intent, usize, usize)>,
}

impl std::fmt::Display for Agreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} routes: Sluice, Cedar (policies, entities) and Rego (scan, indexed) agree on {} requests ({} allowed, {} denied;",
            self.routes,
            self.requests,
            self.allowed,
            self.requests - self.allowed
        )?;
        for (intent, n, allowed) in &self.by_intent {
            write!(f, " {intent:?} {n} ({allowed} allowed)")?;
        }
        write!(f, ")")
    }
}

/// The engines built for one workload: Sluice, and Cedar and Rego in two
/// encodings each.
pub struct Engines<'a> {
    /// The workload.
    pub workload: &'a Workload,
    /// Sluice, loaded from `bytes`.
    pub sluice: SluiceEngine<'a>,
    /// Cedar, one policy per route.
    pub cedar: CedarEngine,
    /// Cedar, routes as entities with a fixed set of policies.
    pub cedar_entities: CedarEntitiesEngine,
    /// Rego, walking the routes.
    pub rego: RegoEngine,
    /// Rego, indexed by path.
    pub rego_indexed: RegoEngine,
}

impl<'a> Engines<'a> {
    /// Builds Cedar and Rego (both encodings of each) from the workload
    /// and loads the Sluice bundle compiled from it ([`compile_sluice`]).
    pub fn new(workload: &'a Workload, bytes: &'a AlignedBytes) -> Result<Self, String> {
        Ok(Engines {
            workload,
            sluice: SluiceEngine::new(bytes)?,
            cedar: CedarEngine::new(workload)?,
            cedar_entities: CedarEntitiesEngine::new(workload)?,
            rego: RegoEngine::new(workload)?,
            rego_indexed: RegoEngine::indexed(workload)?,
        })
    }

    /// Decides each request with the five engines and the reference;
    /// fails with the first request on which any answer differs, or when
    /// the sample lacks any kind of request (allowed and denied for
    /// each intent but `NoRoute`, which is always denied).
    pub fn check_equivalence(&mut self, requests: &[Request]) -> Result<Agreement, String> {
        let mut by_intent: HashMap<Intent, (usize, usize)> = HashMap::new();
        let mut allowed = 0;
        for (k, req) in requests.iter().enumerate() {
            let want = self.workload.reference(req);
            let sluice = self.sluice.decide(&self.sluice.request(req));
            let cedar = self.cedar.decide(&self.cedar.request(req));
            let cedar_entities = self
                .cedar_entities
                .decide(&self.cedar_entities.request(req));
            let rego = self.rego.decide(&self.rego.request(req));
            let rego_indexed = self.rego_indexed.decide(&self.rego_indexed.request(req));
            if [sluice, cedar, cedar_entities, rego, rego_indexed]
                .iter()
                .any(|&d| d != want)
            {
                let route = self
                    .workload
                    .routes
                    .iter()
                    .find(|r| prefix_matches(&r.prefix, &req.path));
                return Err(format!(
                    "{} routes, request {k} {req:?}: reference {want}, sluice {sluice}, \
                     cedar {cedar}, cedar entities {cedar_entities}, rego {rego}, \
                     rego indexed {rego_indexed}; route {route:?}",
                    self.workload.routes.len()
                ));
            }
            let e = by_intent.entry(req.intent).or_default();
            e.0 += 1;
            if want {
                e.1 += 1;
                allowed += 1;
            }
        }
        let mut by_intent: Vec<(Intent, usize, usize)> =
            by_intent.into_iter().map(|(i, (n, a))| (i, n, a)).collect();
        by_intent.sort();
        let agreement = Agreement {
            routes: self.workload.routes.len(),
            requests: requests.len(),
            allowed,
            by_intent,
        };
        let count = |i: Intent| agreement.by_intent.iter().find(|e| e.0 == i).copied();
        for intent in [
            Intent::Allowed,
            Intent::WrongPeer,
            Intent::WrongMethod,
            Intent::NoRoute,
        ] {
            match count(intent) {
                Some((_, n, _)) if n > 0 => {}
                _ => return Err(format!("{agreement}: no {intent:?} request")),
            }
        }
        if agreement.allowed == 0 || agreement.allowed == agreement.requests {
            return Err(format!("{agreement}: answers are all the same"));
        }
        Ok(agreement)
    }
}

/// Generates the workload of `routes` routes and its [`SAMPLE_SIZE`]
/// requests, builds the five engines and checks that they agree
/// ([`Engines::check_equivalence`]).
pub fn check_equivalence(routes: usize) -> Result<Agreement, String> {
    let workload = Workload::generate(routes);
    let bytes = compile_sluice(&workload)?;
    let mut engines = Engines::new(&workload, &bytes)?;
    engines.check_equivalence(&sample(&workload, SAMPLE_SIZE))
}

/// The request the benchmark times at each size: allowed, on the first
/// route at or after the middle whose rule is a `namespace` (so every
/// engine matches an identity pattern), path `PREFIX/42/details`, from
/// `spiffe://TD/ns/N/sa/checkout-frontend` at `10.1.2.3`.
pub fn timed_request(workload: &Workload) -> Request {
    let n = workload.routes.len();
    let route = (n / 2..n)
        .chain(0..n / 2)
        .map(|i| &workload.routes[i])
        .find(|r| matches!(r.rule, Principal::Namespace(_)))
        .expect("a namespace rule");
    let Principal::Namespace(ns) = &route.rule else {
        unreachable!()
    };
    let req = Request {
        intent: Intent::Allowed,
        method: route.methods[0],
        path: format!("{}/42/details", route.prefix),
        identity: Some(format!(
            "spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/checkout-frontend"
        )),
        ip: Ipv4Addr::new(10, 1, 2, 3),
    };
    assert!(workload.reference(&req), "the timed request is allowed");
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_prefixes_do_not_nest() {
        assert_eq!(Workload::generate(100), Workload::generate(100));
        let w = Workload::generate(1_000);
        assert_eq!(w.routes.len(), 1_000);
        for a in &w.routes {
            assert_eq!(a.prefix.matches('/').count(), 3, "{}", a.prefix);
            for b in &w.routes {
                assert!(a.name == b.name || !prefix_matches(&a.prefix, &b.prefix));
            }
        }
        assert_eq!(sample(&w, 50), sample(&w, 50));
    }

    #[test]
    fn the_reference_matches_segments_and_prefixes_element_wise() {
        assert!(identity_matches(
            "spiffe://td/ns/a/sa/*",
            "spiffe://td/ns/a/sa/b"
        ));
        assert!(!identity_matches(
            "spiffe://td/ns/a/sa/*",
            "spiffe://td/ns/a/sa/b/c"
        ));
        assert!(!identity_matches(
            "spiffe://td/ns/*/sa/x",
            "spiffe://td/ns/a/b/sa/x"
        ));
        assert!(prefix_matches("/a/b", "/a/b"));
        assert!(prefix_matches("/a/b", "/a/b/c"));
        assert!(!prefix_matches("/a/b", "/a/bc"));
        assert!(in_network(
            Ipv4Addr::new(10, 3, 9, 9),
            Ipv4Addr::new(10, 3, 0, 0),
            16
        ));
        assert!(!in_network(
            Ipv4Addr::new(10, 4, 0, 1),
            Ipv4Addr::new(10, 3, 0, 0),
            16
        ));
    }

    #[test]
    fn the_allocation_counter_counts() {
        let before = allocations();
        drop(std::hint::black_box(vec![0u8; 64]));
        assert!(allocations() > before);
    }
}
