//! Policy generators and fixed realistic requests for the benchmarks.
//!
//! [`generate`] writes a deterministic Sluice policy with one HTTP server
//! (`web`) and one service (`checkout-api`) of N routes each, about N rules,
//! one TCP server (`db`) and an egress block of N/10 + 5 rules. The route
//! mix is 60% prefix, 25% exact, 10% regex and 5% no path (or
//! `path prefix "/"`), some with `method`, `header` and `query` conditions.
//! Every size also holds a few pinned routes and rules ([`PINNED_ROUTES`])
//! that the fixed requests of [`Kind`] hit, so that every benchmark decides
//! an allowed request that went through normalization, route precedence,
//! header conditions and rules.

pub mod check;

use sluice_compiler::{Compiled, Config};
use sluice_runtime::{
    BackendId, Bundle, Decision, Http, Inbound, Outbound, Peer, PeerClass, Reason, RequestError,
    Scratch, WeightedBackend,
};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The policy sizes (routes per server and per service) that the benchmarks use.
pub const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// [`SIZES`], or the comma-separated sizes in the environment variable
/// `SLUICE_BENCH_SIZES` (e.g. `10,1000`, for profiling one size).
pub fn bench_sizes() -> Vec<usize> {
    match std::env::var("SLUICE_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) => SIZES.to_vec(),
    }
}

/// The mesh trust domain of generated policies.
pub const TRUST_DOMAIN: &str = "prod.example.com";
/// The port of the HTTP server `web`.
pub const WEB_PORT: u16 = 8080;
/// The port of the TCP server `db`.
pub const DB_PORT: u16 = 5432;
/// The authority of the service `checkout-api` used by the outbound request.
pub const SERVICE_AUTHORITY: &str = "checkout.prod.svc.cluster.local:8080";

/// The peer's SPIFFE ID (60 bytes).
pub const PEER_IDENTITY: &str = "spiffe://prod.example.com/ns/payments/sa/checkout-frontend-v2";
/// The peer's IPv6 address, `2001:db8:4:1::17`.
pub const PEER_IP: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 4, 1, 0, 0, 0, 0x17));

/// The raw request target of the HTTP requests: needs `%2e` decoding, a
/// `//` merge and `.` removal, and carries a query (62 bytes).
pub const REQUEST_PATH: &str = "/api/v1/svc7/%2e/items//42/details/./summary?view=full&lang=en";
/// [`REQUEST_PATH`] after normalization, without the query.
pub const NORMALIZED_PATH: &str = "/api/v1/svc7/items/42/details/summary";
/// The two headers of the HTTP requests.
pub static REQUEST_HEADERS: [(&str, &str); 2] = [
    ("x-tenant", "acme-retail"),
    ("content-type", "application/json"),
];

/// The authority of the egress HTTP request, allowed by the wildcard rule `google-apis`.
pub const EGRESS_AUTHORITY: &str = "storage.googleapis.com:443";
/// The raw target of the egress HTTP request.
pub const EGRESS_PATH: &str = "/upload/storage/v1/b/media-bucket/o?uploadType=media&name=a.png";
/// The headers of the egress HTTP request.
pub static EGRESS_HEADERS: [(&str, &str); 2] = [
    ("content-type", "image/png"),
    ("x-goog-api-client", "gl-rust/1.80"),
];
/// The `CONNECT` target of the tunnel, allowed by the rule `github`.
pub const TUNNEL_AUTHORITY: &str = "github.com:443";
/// The destination of the TCP egress connection, allowed by the rule `private-db`.
pub const EGRESS_TCP_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 20, 0, 5));
/// The destination port of the TCP egress connection.
pub const EGRESS_TCP_PORT: u16 = 5432;

/// Routes present in every generated server and service (in addition to
/// the generated ones): `svc7-items-canary` ranks first for the fixed
/// request and fails on its `x-tenant` header, `svc7-items` is taken.
pub const PINNED_ROUTES: [&str; 3] = ["svc7-items-canary", "svc7-items", "svc7"];

/// The calling peer: [`PEER_IDENTITY`] from [`PEER_IP`].
pub fn realistic_peer() -> Peer<'static> {
    Peer {
        ip: Some(PEER_IP),
        identity: Some(PEER_IDENTITY),
    }
}

/// The inbound HTTP request: `GET` [`REQUEST_PATH`] on [`WEB_PORT`] with [`REQUEST_HEADERS`].
pub fn realistic_inbound() -> Inbound<'static> {
    Inbound {
        port: WEB_PORT,
        http: Some(Http {
            method: "GET",
            path: REQUEST_PATH.as_bytes(),
            headers: &REQUEST_HEADERS,
        }),
    }
}

/// The inbound TCP connection to [`DB_PORT`].
pub fn realistic_inbound_tcp() -> Inbound<'static> {
    Inbound {
        port: DB_PORT,
        http: None,
    }
}

/// The outbound HTTP request to the service: `GET` [`REQUEST_PATH`] at [`SERVICE_AUTHORITY`].
pub fn realistic_outbound_service() -> Outbound<'static> {
    Outbound {
        authority: Some(SERVICE_AUTHORITY),
        ip: None,
        port: None,
        http: Some(Http {
            method: "GET",
            path: REQUEST_PATH.as_bytes(),
            headers: &REQUEST_HEADERS,
        }),
    }
}

/// The egress HTTP request: `POST` [`EGRESS_PATH`] at [`EGRESS_AUTHORITY`].
pub fn realistic_egress_http() -> Outbound<'static> {
    Outbound {
        authority: Some(EGRESS_AUTHORITY),
        ip: None,
        port: None,
        http: Some(Http {
            method: "POST",
            path: EGRESS_PATH.as_bytes(),
            headers: &EGRESS_HEADERS,
        }),
    }
}

/// The tunnel: `CONNECT github.com:443`.
pub fn realistic_tunnel() -> Outbound<'static> {
    Outbound {
        authority: Some(TUNNEL_AUTHORITY),
        ip: None,
        port: None,
        http: None,
    }
}

/// The TCP egress connection to `10.20.0.5:5432`.
pub fn realistic_egress_tcp() -> Outbound<'static> {
    Outbound {
        authority: None,
        ip: Some(EGRESS_TCP_IP),
        port: Some(EGRESS_TCP_PORT),
        http: None,
    }
}

/// The kinds of decisions benchmarked, each with its fixed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// [`realistic_inbound`], allowed by rule `svc7-items-checkout` on route `svc7-items`.
    InboundHttp,
    /// [`realistic_inbound_tcp`], allowed by rule `db-payments`.
    InboundTcp,
    /// [`realistic_outbound_service`], routed by `checkout-api` route `svc7-items`.
    OutboundService,
    /// [`realistic_egress_http`], allowed by egress rule `google-apis`.
    EgressHttp,
    /// [`realistic_tunnel`], allowed by egress rule `github`.
    Tunnel,
    /// [`realistic_egress_tcp`], allowed by egress rule `private-db`.
    EgressTcp,
}

/// The backends of the service route `svc7-items`, in `to` order (ids:
/// positions among `checkout-api`'s backends east, west, canary, edge).
pub const SVC7_BACKENDS: [WeightedBackend<'static>; 2] = [
    WeightedBackend {
        name: "east",
        id: BackendId::new(0),
        weight: 90,
    },
    WeightedBackend {
        name: "canary",
        id: BackendId::new(2),
        weight: 10,
    },
];

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::InboundHttp,
        Kind::InboundTcp,
        Kind::OutboundService,
        Kind::EgressHttp,
        Kind::Tunnel,
        Kind::EgressTcp,
    ];

    /// The benchmark name (`inbound_http`, `egress_tcp`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::InboundHttp => "inbound_http",
            Kind::InboundTcp => "inbound_tcp",
            Kind::OutboundService => "outbound_service",
            Kind::EgressHttp => "egress_http",
            Kind::Tunnel => "tunnel",
            Kind::EgressTcp => "egress_tcp",
        }
    }

    /// Decides this kind's fixed request; `class` must hold [`realistic_peer`].
    pub fn decide<'b>(
        self,
        bundle: &'b Bundle<'_>,
        class: &PeerClass,
        scratch: &mut Scratch,
    ) -> Result<Decision<'b>, RequestError<'b>> {
        match self {
            Kind::InboundHttp => bundle.decide_inbound(&realistic_inbound(), class, scratch),
            Kind::InboundTcp => bundle.decide_inbound(&realistic_inbound_tcp(), class, scratch),
            Kind::OutboundService => bundle.decide_outbound(&realistic_outbound_service(), scratch),
            Kind::EgressHttp => bundle.decide_outbound(&realistic_egress_http(), scratch),
            Kind::Tunnel => bundle.decide_outbound(&realistic_tunnel(), scratch),
            Kind::EgressTcp => bundle.decide_outbound(&realistic_egress_tcp(), scratch),
        }
    }

    /// The decision this kind's fixed request must get from every generated policy.
    pub fn expected(self) -> Decision<'static> {
        let mut d = Decision::new(true, Reason::Rule);
        match self {
            Kind::InboundHttp => {
                d.server = Some("web");
                d.route = Some("svc7-items");
                d.rule = Some("svc7-items-checkout");
            }
            Kind::InboundTcp => {
                d.server = Some("db");
                d.rule = Some("db-payments");
            }
            Kind::OutboundService => {
                d.reason = Reason::Service;
                d.service = Some("checkout-api");
                d.route = Some("svc7-items");
                d.backends = &SVC7_BACKENDS;
                d.timeout_ms = Some(1500);
            }
            Kind::EgressHttp => d.rule = Some("google-apis"),
            Kind::Tunnel => d.rule = Some("github"),
            Kind::EgressTcp => d.rule = Some("private-db"),
        }
        d
    }

    /// Checks that `got` is [`Kind::expected`], field for field, except
    /// the service and route ids, which depend on the generated policy.
    pub fn check(self, got: &Result<Decision<'_>, RequestError<'_>>) -> Result<(), String> {
        let want = self.expected();
        match got {
            Ok(d)
                if Decision {
                    service_id: None,
                    route_id: None,
                    ..*d
                } == want =>
            {
                Ok(())
            }
            other => Err(format!("{}: expected {want:?}, got {other:?}", self.name())),
        }
    }
}

/// Counts of what [`generate_with_mix`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mix {
    /// Routes of `web` (and, equally, of `checkout-api`), pinned ones included.
    pub routes: usize,
    /// Routes with an exact path.
    pub exact: usize,
    /// Routes with a path prefix other than `/`.
    pub prefix: usize,
    /// Routes with a path regex.
    pub regex: usize,
    /// Routes without a path, or with `path prefix "/"`.
    pub any_path: usize,
    /// Routes with a `method` condition.
    pub with_method: usize,
    /// Routes with at least one `header` condition.
    pub with_header: usize,
    /// Routes with a `query` condition.
    pub with_query: usize,
    /// Authorization rules (all servers).
    pub rules: usize,
    /// Deny rules among them.
    pub deny_rules: usize,
    /// Egress destination rules.
    pub egress_rules: usize,
}

/// A small xorshift64 generator: deterministic and dependency-free. The
/// generated policies here and the workload of `sluice-engines` draw from it.
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed` (not 0: xorshift stays at 0).
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with a chance of `p` in 100.
    pub fn percent(&mut self, p: u64) -> bool {
        self.next_u64() % 100 < p
    }

    /// One of `items`, which must not be empty.
    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.below(items.len())]
    }
}

const SEED: u64 = 0x5eed_5104_ce2b_0001;

/// Resource names that generated paths are made of (here and in
/// `sluice-engines`).
#[rustfmt::skip]
pub const RESOURCES: [&str; 30] = [
    "items", "orders", "users", "carts", "payments", "invoices", "products", "reviews", "sessions", "tokens",
    "accounts", "shipments", "refunds", "coupons", "addresses", "catalogs", "prices", "stocks", "reports",
    "events", "alerts", "jobs", "files", "images", "notes", "tags", "teams", "roles", "plans", "quotas",
];
#[rustfmt::skip]
const SUBS: [&str; 15] = [
    "details", "history", "status", "summary", "lines", "export", "search", "count", "latest",
    "archive", "settings", "members", "audit", "preview", "metadata",
];
#[rustfmt::skip]
const NAMESPACES: [&str; 30] = [
    "payments", "checkout", "frontend", "inventory", "shipping", "billing", "search", "catalog", "identity",
    "notifications", "analytics", "reporting", "monitoring", "logging", "ingress", "batch", "ml-serving",
    "recommendations", "fraud", "ledger", "orders", "users", "support", "marketing", "partners", "qa",
    "staging-tools", "platform", "security", "data",
];
#[rustfmt::skip]
const SA_HEADS: [&str; 12] = [
    "checkout", "cart", "orders", "ledger", "fraud", "search", "catalog", "report", "notify",
    "batch", "sync", "export",
];
const SA_TAILS: [&str; 6] = [
    "frontend",
    "backend",
    "worker",
    "api",
    "cron",
    "frontend-v2",
];
const TENANTS: [&str; 6] = ["acme", "globex", "initech", "umbrella", "hooli", "stark"];
const METHODS: [&str; 6] = [
    "GET",
    "GET, HEAD",
    "POST",
    "PUT, PATCH",
    "DELETE",
    "GET, POST",
];

/// Path kinds in a fixed cycle of 20: 12 prefix, 5 exact, 2 regex, 1 any,
/// spread so that small policies get a mix too.
const KIND_CYCLE: &[u8; 20] = b"PEPRPEPPNPEPRPEPPEPP";

/// One generated route, written for both the server and the service.
struct GenRoute {
    name: String,
    /// Conditions, without `to` (added for the service).
    body: String,
}

fn service_account(rng: &mut Rng) -> String {
    format!("{}-{}", rng.pick(&SA_HEADS), rng.pick(&SA_TAILS))
}

/// The text of a generated Sluice policy with `routes` routes per server and
/// service (at least the three pinned ones). Same input, same text.
pub fn generate(routes: usize) -> String {
    generate_with_mix(routes).0
}

/// [`generate`], also counting what was written.
pub fn generate_with_mix(routes: usize) -> (String, Mix) {
    let mut rng = Rng::new(SEED);
    let mut mix = Mix::default();
    let generated = routes.saturating_sub(PINNED_ROUTES.len());
    // Services `svcK` of the paths; `svc7` is reserved for the pinned routes.
    let svc_count = (generated / 6).max(12);
    let mut seen: HashSet<String> = HashSet::new();
    let mut gen_routes: Vec<GenRoute> = Vec::with_capacity(generated);
    for i in 0..generated {
        let kind = KIND_CYCLE[i % KIND_CYCLE.len()];
        let mut body = String::new();
        let mut name;
        loop {
            let mut s = rng.below(svc_count);
            if s == 7 {
                s = svc_count;
            }
            let v = 1 + rng.below(3);
            let res = *rng.pick(&RESOURCES);
            let sub = *rng.pick(&SUBS);
            let (key, cond) = match kind {
                b'P' => {
                    let p = match rng.below(3) {
                        0 => format!("/api/v{v}/svc{s}/{res}"),
                        1 => format!("/api/v{v}/svc{s}/{res}/{sub}"),
                        _ => format!("/internal/svc{s}/{res}"),
                    };
                    (format!("P{p}"), format!("path prefix \"{p}\""))
                }
                b'E' => {
                    let p = match rng.below(3) {
                        0 => format!("/api/v{v}/svc{s}/{res}/{sub}"),
                        1 => format!("/api/v{v}/svc{s}/{res}"),
                        _ => format!("/healthz/svc{s}/{sub}"),
                    };
                    (format!("E{p}"), format!("path \"{p}\""))
                }
                b'R' => {
                    let r = match rng.below(4) {
                        0 => format!("/api/v[0-9]+/svc{s}/[a-z]+"),
                        1 => format!("/api/v[0-9]+/svc{s}/{res}/[0-9]+"),
                        2 => format!(r"/static/svc{s}/[a-z0-9_-]+\.(?:js|css|png)"),
                        _ => format!("/api/v[0-9]+/svc{s}/{res}/[0-9a-f]{{8}}(?:/{sub})?"),
                    };
                    (format!("R{r}"), format!("path regex r\"{r}\""))
                }
                _ => {
                    // No path (or prefix "/"): always with a distinguishing header.
                    let c = if rng.percent(50) {
                        String::new()
                    } else {
                        "path prefix \"/\" ".to_string()
                    };
                    (
                        format!("N{i}"),
                        format!("{c}header \"x-route-hint\" = \"hint-{i}\""),
                    )
                }
            };
            if seen.insert(key) {
                name = match kind {
                    b'P' | b'E' | b'R' => format!("{res}-{i}"),
                    _ => format!("fallback-{i}"),
                };
                body.push_str(&cond);
                match kind {
                    b'P' => mix.prefix += 1,
                    b'E' => mix.exact += 1,
                    b'R' => mix.regex += 1,
                    _ => {
                        mix.any_path += 1;
                        mix.with_header += 1;
                    }
                }
                break;
            }
        }
        if kind != b'N' {
            if rng.percent(30) {
                let _ = write!(body, " method {}", rng.pick(&METHODS));
                mix.with_method += 1;
            }
            if rng.percent(15) {
                let h = match rng.below(4) {
                    0 => format!("header \"x-tenant\" = \"{}\"", rng.pick(&TENANTS)),
                    1 => "header \"x-api-version\" ~ r\"v[0-9]+\"".to_string(),
                    2 => "header \"x-canary\" present".to_string(),
                    _ => "header \"authorization\" present".to_string(),
                };
                let _ = write!(body, " {h}");
                mix.with_header += 1;
            }
            if rng.percent(3) {
                let q = if rng.percent(50) {
                    "query \"format\" = \"json\""
                } else {
                    "query \"page\" ~ r\"[0-9]+\""
                };
                let _ = write!(body, " {q}");
                mix.with_query += 1;
            }
        } else if rng.percent(50) {
            let _ = write!(body, " method {}", rng.pick(&METHODS));
            mix.with_method += 1;
        }
        name.truncate(63);
        gen_routes.push(GenRoute { name, body });
    }
    mix.routes = generated + PINNED_ROUTES.len();
    mix.prefix += 3; // the pinned routes are all prefixes
    mix.with_method += 2;
    mix.with_header += 2;
    mix.with_query += 1;

    let mut out = String::with_capacity(routes * 200 + 4096);
    let _ = writeln!(
        out,
        "# Generated by sluice-benches: {routes} routes per server and service."
    );
    let _ = writeln!(
        out,
        "mesh {{ trust-domain \"{TRUST_DOMAIN}\" default deny }}\n"
    );

    // The HTTP server.
    let pinned_at = generated / 2;
    let _ = writeln!(
        out,
        "server web {{\n  port {WEB_PORT}\n  protocol http\n  default deny"
    );
    for (i, r) in gen_routes.iter().enumerate() {
        if i == pinned_at {
            write_pinned_routes(&mut out, false);
        }
        let _ = writeln!(out, "  route {} {{ {} }}", r.name, r.body);
    }
    if generated <= pinned_at {
        write_pinned_routes(&mut out, false);
    }
    out.push_str("}\n\n");

    // Its rules: the pinned ones, then one per generated route.
    out.push_str(concat!(
        "deny quarantine { to web from network 10.66.0.0/16, 2001:db8:dead::/48 }\n",
        "deny svc7-items-legacy { to web.svc7-items from identity \"spiffe://prod.example.com/ns/payments/sa/legacy-batch\" }\n",
        "allow svc7-items-checkout { to web.svc7-items from namespace \"payments\" from network 2001:db8:4::/48 except 2001:db8:4:ff::/64 }\n",
        "allow svc7-canary-qa { to web.svc7-items-canary from namespace \"qa\" }\n",
        "allow svc7-readers { to web.svc7 from authenticated }\n",
    ));
    mix.rules += 5;
    mix.deny_rules += 2;
    for (j, r) in gen_routes.iter().enumerate() {
        if j % 25 == 12 && j > 0 {
            let prev = &gen_routes[j - 1].name;
            let _ = writeln!(
                out,
                "deny {}-block {{ to web.{prev}, web.{} from identity \"spiffe://{TRUST_DOMAIN}/ns/legacy/**\" }}",
                r.name, r.name
            );
            mix.deny_rules += 1;
        } else {
            let _ = writeln!(
                out,
                "allow {}-access {{ to web.{} {} }}",
                r.name,
                r.name,
                principals(&mut rng)
            );
        }
        mix.rules += 1;
    }
    out.push('\n');

    // The TCP server and its rules.
    out.push_str(concat!(
        "server db { port 5432 protocol tcp default deny }\n",
        "deny db-quarantine { to db from network 10.66.0.0/16 }\n",
        "allow db-payments { to db from namespace \"payments\", \"ledger\" }\n",
        "allow db-admins { to db from identity \"spiffe://prod.example.com/ns/platform/sa/*\" }\n\n",
    ));
    mix.rules += 3;
    mix.deny_rules += 1;

    // The service.
    out.push_str(concat!(
        "service checkout-api {\n",
        "  authority \"checkout.prod.svc.cluster.local:8080\", \"checkout.prod:8080\"\n",
        "  timeout 2s\n",
        "  retry { attempts 2 on gateway-error, reset budget 20% }\n",
        "  circuit-breaker { consecutive-failures 5 backoff 1s 60s }\n",
        "  backend east { endpoint 10.0.1.10:8080, 10.0.1.11:8080 cluster \"east\" failover west }\n",
        "  backend west { endpoint 10.8.0.10:8080 cluster \"west\" }\n",
        "  backend canary { endpoint 10.0.2.10:8080 }\n",
        "  backend edge { endpoint \"edge.checkout.internal:8443\" identity \"spiffe://prod.example.com/ns/checkout/sa/edge\" }\n",
    ));
    for (i, r) in gen_routes.iter().enumerate() {
        if i == pinned_at {
            write_pinned_routes(&mut out, true);
        }
        let to = match rng.below(10) {
            0..=4 => " to east",
            5 | 6 => " to east 90, canary 10",
            7 => " to west",
            8 => " to edge",
            _ => " to east 50, west 50",
        };
        let extra = match rng.below(20) {
            0 => " timeout 500ms",
            1 => " retry { attempts 3 on 5xx, reset per-try-timeout 200ms }",
            _ => "",
        };
        let _ = writeln!(out, "  route {} {{ {}{to}{extra} }}", r.name, r.body);
    }
    if generated <= pinned_at {
        write_pinned_routes(&mut out, true);
    }
    out.push_str("}\n\n");

    // Egress: five pinned rules, then N/10 generated ones.
    out.push_str(concat!(
        "egress {\n",
        "  default deny\n",
        "  allow google-apis { host \"*.googleapis.com\" port 443 }\n",
        "  deny evil-googleapis { host \"evil.googleapis.com\" }\n",
        "  allow github { host \"github.com\", \"api.github.com\" port 443 }\n",
        "  allow private-db { network 10.0.0.0/8 except 10.96.0.0/12 port 5432, 6379 }\n",
        "  deny imds { network 169.254.169.254 }\n",
    ));
    mix.egress_rules += 5;
    for k in 0..routes / 10 {
        let line = match rng.below(20) {
            0..=5 => {
                if rng.percent(50) {
                    format!("allow partner-{k} {{ host \"api.partner{k}.com\" port 443 }}")
                } else {
                    format!("allow partner-{k} {{ host \"api.partner{k}.com\", \"auth.partner{k}.com\" port 443, 8443 }}")
                }
            }
            6..=10 => format!("allow vendor-{k} {{ host \"*.vendor{k}.io\" port 443, 8443 }}"),
            11 | 12 => format!("deny tracker-{k} {{ host \"*.tracker{k}.net\", \"ads{k}.example.net\" }}"),
            13..=15 => {
                let (a, b) = (16 + k % 16, (k / 16) % 256);
                format!("allow corp-net-{k} {{ network 172.{a}.{b}.0/24 except 172.{a}.{b}.128/25 port 9000-9100 }}")
            }
            16 | 17 => format!("allow v6-net-{k} {{ network fd00:{k:x}:1::/48 except fd00:{k:x}:1:ff::/64 port 443 }}"),
            _ => format!("deny blocked-net-{k} {{ network 100.{}.{}.0/24 }}", 64 + (k / 256) % 64, k % 256),
        };
        let _ = writeln!(out, "  {line}");
        mix.egress_rules += 1;
    }
    out.push_str("}\n");
    (out, mix)
}

/// The pinned routes; `service` adds backends and a timeout.
fn write_pinned_routes(out: &mut String, service: bool) {
    let (canary, items, svc7) = if service {
        (
            " to canary",
            " to east 90, canary 10 timeout 1500ms",
            " to east",
        )
    } else {
        ("", "", "")
    };
    let _ = writeln!(
        out,
        "  route svc7-items-canary {{ method GET path prefix \"/api/v1/svc7/items\" header \"x-tenant\" = \"canary\" header \"content-type\" = \"application/json\" query \"debug\" present{canary} }}"
    );
    let _ = writeln!(
        out,
        "  route svc7-items {{ method GET, HEAD path prefix \"/api/v1/svc7/items\" header \"x-tenant\" ~ r\"[a-z][a-z0-9-]*\" header \"content-type\" = \"application/json\"{items} }}"
    );
    let _ = writeln!(out, "  route svc7 {{ path prefix \"/api/v1/svc7\"{svc7} }}");
}

/// `from` clauses of a generated allow rule.
fn principals(rng: &mut Rng) -> String {
    let td = TRUST_DOMAIN;
    let one = |rng: &mut Rng| -> String {
        match rng.below(20) {
            0..=4 => {
                if rng.percent(30) {
                    format!("from namespace \"{}\", \"{}\"", rng.pick(&NAMESPACES), rng.pick(&NAMESPACES))
                } else {
                    format!("from namespace \"{}\"", rng.pick(&NAMESPACES))
                }
            }
            5..=7 => format!("from identity \"spiffe://{td}/ns/{}/sa/{}\"", rng.pick(&NAMESPACES), service_account(rng)),
            8..=10 => format!("from identity \"spiffe://{td}/ns/*/sa/{}\"", service_account(rng)),
            11 | 12 => format!("from identity \"spiffe://{td}/ns/{}/**\"", rng.pick(&NAMESPACES)),
            13 => format!(
                "from identity \"spiffe://{td}/ns/{}/sa/*\", \"spiffe://partner.example.org/ns/{}/sa/{}\"",
                rng.pick(&NAMESPACES),
                rng.pick(&NAMESPACES),
                service_account(rng)
            ),
            14 | 15 => {
                // Not 10.66/16, which the server-wide deny `quarantine` covers.
                let mut a = rng.below(256);
                if a == 66 {
                    a = 67;
                }
                let b = rng.below(256);
                format!("from network 10.{a}.0.0/16 except 10.{a}.{b}.0/24")
            }
            16 | 17 => {
                let a = rng.below(0x100);
                let b = rng.below(0x100);
                format!("from network 2001:db8:{a:x}::/48 except 2001:db8:{a:x}:{b:x}::/64")
            }
            _ => "from authenticated".to_string(),
        }
    };
    let first = one(rng);
    if rng.percent(10) {
        let a = rng.below(256);
        let a = if a == 66 { 67 } else { a };
        format!("{first} from network 10.{a}.0.0/16, 2001:db8:{a:x}::/48")
    } else {
        first
    }
}

/// Parses and compiles a policy text with the default configuration;
/// errors are rendered as one string.
pub fn compile_text(text: &str) -> Result<Compiled, String> {
    compile_text_with(text, &Config::default())
}

/// [`compile_text`] with a given configuration.
pub fn compile_text_with(text: &str, config: &Config) -> Result<Compiled, String> {
    let (policy, diags) = sluice_lang::parse::parse_str("bench.sluice", text);
    if diags.iter().any(|d| d.is_error()) {
        return Err(sluice_lang::render::human(&policy.files, &diags));
    }
    sluice_compiler::compile(&policy, config)
        .map_err(|d| sluice_lang::render::human(&policy.files, &d))
}

/// Generates and compiles the policy of `routes` routes: the bundle bytes.
pub fn compile_generated(routes: usize) -> Result<Vec<u8>, String> {
    compile_text(&generate(routes)).map(|c| c.bundle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::AlignedBytes;

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(generate(100), generate(100));
        assert_ne!(generate(100), generate(101));
    }

    #[test]
    fn mix_follows_the_brief() {
        for n in [100, 1000, 10_000] {
            let (_, m) = generate_with_mix(n);
            assert_eq!(m.routes, n);
            let pct = |x: usize| x * 100 / n;
            assert!((58..=63).contains(&pct(m.prefix)), "{m:?}");
            assert!((23..=27).contains(&pct(m.exact)), "{m:?}");
            assert!((8..=12).contains(&pct(m.regex)), "{m:?}");
            assert!((3..=7).contains(&pct(m.any_path)), "{m:?}");
            assert!(
                m.with_method > n / 5 && m.with_header > n / 10 && m.with_query > 0,
                "{m:?}"
            );
            assert!(m.deny_rules > n / 50 && m.rules >= n, "{m:?}");
            assert_eq!(m.egress_rules, n / 10 + 5);
        }
    }

    #[test]
    fn names_are_unique_and_valid() {
        let text = generate(2000);
        let mut names = HashSet::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [kw, name, "{", ..] = words.as_slice() {
                if matches!(
                    *kw,
                    "route" | "allow" | "deny" | "backend" | "server" | "service"
                ) {
                    let scope = if line.starts_with("  ") {
                        "inner"
                    } else {
                        "top"
                    };
                    assert!(
                        name.len() <= 63 && name.starts_with(|c: char| c.is_ascii_lowercase()),
                        "{name}"
                    );
                    // Routes repeat between the server and the service; count them once per block.
                    if *kw != "route" {
                        assert!(
                            names.insert((scope, kw.to_string(), name.to_string())),
                            "duplicate {kw} {name}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_fixed_request_path_is_about_60_bytes() {
        assert!((55..=70).contains(&REQUEST_PATH.len()));
        assert!((55..=65).contains(&PEER_IDENTITY.len()));
    }

    #[test]
    fn generated_policies_compile_and_decide_as_expected() {
        compiles_and_decides_as_expected(&[3, 10, 100, 1000]);
    }

    /// The largest size takes a while: `cargo test --release -p sluice-benches -- --ignored`.
    #[test]
    #[ignore]
    fn the_largest_policy_compiles_and_decides_as_expected() {
        compiles_and_decides_as_expected(&[10_000]);
    }

    fn compiles_and_decides_as_expected(sizes: &[usize]) {
        for &n in sizes {
            let compiled =
                compile_text(&generate(n)).unwrap_or_else(|e| panic!("{n} routes:\n{e}"));
            assert!(
                compiled.warnings.is_empty(),
                "{n} routes: {:?}",
                compiled.warnings
            );
            let aligned = AlignedBytes::new(&compiled.bundle);
            let bundle = Bundle::from_bytes(aligned.as_bytes()).expect("bundle loads");
            let mut scratch = bundle.create_scratch();
            let mut class = bundle.create_peer_class();
            bundle.classify(&realistic_peer(), &mut class);
            for kind in Kind::ALL {
                let d = kind.decide(&bundle, &class, &mut scratch);
                if let Err(e) = kind.check(&d) {
                    panic!("{n} routes: {e}");
                }
            }
        }
    }
}
