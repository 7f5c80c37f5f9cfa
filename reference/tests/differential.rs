//! Differential property test: random policies and requests, decided by
//! the compiled runtime (`sluice-compiler` + `sluice-runtime`) and by the
//! reference interpreter, must agree field for field, on error versus
//! decision, and on the kind of error (`connection-to-http-server`,
//! `incomplete`, `bad-authority`).
//!
//! Policies are generated as a structured model ([`Model`]) that always
//! passes the compiler's checks, rendered to policy text, parsed, compiled
//! once and checked against 20 to 30 requests each. Names, paths,
//! identities, hosts and addresses come from small pools so that requests
//! often hit. Besides decisions, each case:
//! - compares every service's settings (retry attempts, conditions, budget
//!   and per-try timeout of the service and of each route, circuit
//!   breaker, backends with their endpoints, identity, cluster, failover
//!   and max-in-flight) between the bundle's accessors and
//!   [`sluice_reference::service_settings`];
//! - three times in ten, writes the policy as a folder of several
//!   files (spec section 1: byte order of relative paths, nested folders,
//!   files that are not policy files) that the compiler reads from disk,
//!   while the reference gets the same items as one file;
//! - about one time in eight, breaks the policy on purpose
//!   ([`gen_breakage`]) and checks that the compiler reports the diagnostic
//!   code the spec gives that break, and no other error;
//! - writes IPv4 peers and destinations as IPv6 addresses that carry them
//!   (`::ffff:a.b.c.d`, `64:ff9b::a.b.c.d`, `::a.b.c.d`; spec section 7,
//!   "Addresses"), and networks inside those prefixes are among the breaks
//!   (`invalid-network`).
//!
//! Minimum shares of pairs and of policies per category (reasons, path
//! kinds, IPv6 and IPv4-carrying peers, trust-domain near misses, gRPC
//! routes, error kinds, folders, settings, diagnostics...) keep the
//! generator from drifting into trivial cases (the fresh-seed run, being
//! smaller and untuned, needs half of each).
//!
//! Two runs: `runtime_agrees_with_reference` with proptest's fixed RNG
//! seed (700 policies, reproducible), and
//! `runtime_agrees_with_reference_fresh_seed` with a fresh seed each time
//! (250 policies), printed on stderr (even when the test passes) and in
//! every failure message.
//!
//! Knobs (environment variables):
//! - `SLUICE_DIFF_SEED`: replay a fresh-seed run: the decimal seed it
//!   printed, e.g.
//!   `SLUICE_DIFF_SEED=123 cargo test -p sluice-reference --test differential fresh_seed -- --nocapture`.
//! - `SLUICE_DIFF_CASES`: number of policies of the fixed run (default 700);
//!   `SLUICE_DIFF_FRESH_CASES`: of the fresh-seed run (default 250).
//! - `SLUICE_DIFF_CASE`: run the one case with this case seed (as printed
//!   on a mismatch) and print its policy and requests.
//! - `SLUICE_DIFF_POLICY=FILE` with `SLUICE_DIFF_REQUESTS=FILE` (JSON lines
//!   shaped as in spec section 10): decide those requests on both sides and
//!   print both decisions (for checking a reproduction by hand);
//!   `SLUICE_DIFF_DFA_LIMIT` sets the compiler's `dfa_size_limit` for it.
//!
//! Run with `--nocapture` to see the coverage tables.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Map, Value};
use sluice_compiler::Config;
use sluice_reference::{evaluate_request, Decision, Direction, ErrorKind, Request};
use sluice_runtime::{AlignedBytes, Bundle, Http, Inbound, Outbound, Peer, PeerClass, RequestError, Scratch};

// ---------------------------------------------------------------------------
// A small deterministic generator (splitmix64), seeded per case by proptest.
// ---------------------------------------------------------------------------

/// Random choices for one case, from a 64-bit seed.
#[derive(Clone)]
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with `percent`% probability.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn s(&mut self, xs: &[&str]) -> String {
        (*self.pick(xs)).to_string()
    }

    /// An index drawn with the given weights.
    fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut x = self.next() % total;
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }

    /// `n` distinct items of `xs` (fewer if `xs` is shorter).
    fn distinct(&mut self, xs: &[&str], n: usize) -> Vec<String> {
        let mut v = xs.to_vec();
        self.shuffle(&mut v);
        v.into_iter().take(n).map(String::from).collect()
    }

    /// `s` with its letters' case changed at random (all upper, title, mixed or unchanged).
    fn recase(&mut self, s: &str) -> String {
        match self.below(4) {
            0 => s.to_string(),
            1 => s.to_ascii_uppercase(),
            2 => s.to_ascii_lowercase(),
            _ => s
                .chars()
                .map(|c| if self.chance(50) { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// Pools.
// ---------------------------------------------------------------------------

const SERVER_NAMES: &[&str] = &["web", "api", "db", "grpc", "tcp", "admin"];
const ROUTE_NAMES: &[&str] = &["r1", "health", "prefix", "default", "v1", "all", "any", "metrics"];
const RULE_NAMES: &[&str] = &["allow-web", "deny", "any", "r-a", "r-b", "scrape", "quarantine", "authenticated"];
const EGRESS_RULE_NAMES: &[&str] = &["google", "imds", "gh", "allow", "db", "all"];
const SERVICE_NAMES: &[&str] = &["payments", "search", "users", "service"];
const BACKEND_NAMES: &[&str] = &["east", "west", "canary", "internal", "v2"];

/// Port slots: each server takes whole slots, so servers never overlap.
const PORT_SLOTS: &[&[(u16, u16)]] = &[
    &[(80, 80)],
    &[(443, 443)],
    &[(8080, 8080)],
    &[(8081, 8083)],
    &[(9000, 9099)],
    &[(5432, 5432)],
    &[(6379, 6379)],
    &[(3000, 3001)],
    &[(1, 1)],
    &[(65535, 65535)],
    &[(7070, 7070), (7072, 7079)],
    // One server whose own ranges overlap (the compiler merges them).
    &[(6000, 6005), (6003, 6009)],
];
/// Ports no slot covers.
const UNCOVERED_PORTS: &[u16] = &[7000, 1234, 8084, 9100, 7071, 0];

const SEGMENTS: &[&str] = &["a", "b", "api", "v1", "x"];
const PATH_REGEXES: &[&str] = &[
    r"/a/.*",
    r"/(api|x)/v[0-9]+(/.*)?",
    r"/[ab]+",
    r".*/x",
    r"/api(/.*)?",
    r"/v1/[^/]*",
    r"/pkg\.Svc/.*",
    r"(?i)/API/.*",
    r"/a/b",
    r"/%3A.*",
    r"/b/.+/x",
    // A verbose regex ending in a comment, with and without a final newline.
    r"(?x) /a/ .* # a comment",
    r"(?x) /a/ .* # a comment
",
    r"^/a.*$",
    r"/a|/b/.*",
    r"/\w+/x",
    r"\A/v1.*",
    r"/(?-u:\b)a(?-u:\b).*",
    r"/[[:alpha:]]+",
    r"/a{1,3}",
];
/// Paths that match some of [`PATH_REGEXES`].
const REGEX_SAMPLE_PATHS: &[&str] = &[
    "/a/x",
    "/a/",
    "/api/v1",
    "/api/v12/a",
    "/x/v1",
    "/x/v1/",
    "/ab",
    "/ba",
    "/b",
    "/b/x",
    "/v1/a",
    "/v1/",
    "/pkg.Svc/Get",
    "/API/x",
    "/Api/v1",
    "/a/b",
    "/%3A",
    "/%3Ab",
    "/b/a/x",
    "/b/a/b/x",
    "/api",
    "/x",
    "/aa",
    "/aaaa",
    "/a-b",
];
const GRPC_SERVICES: &[&str] = &["pkg.Svc", "pkg.v1.Other"];
const GRPC_METHODS: &[&str] = &["Get", "List"];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD"];
const REQUEST_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "get", "PATCH"];

const POLICY_HEADER_NAMES: &[&str] = &["x-tenant", "X-Tenant", "x-canary", "X-CANARY", "x-env", "Content-Type"];
const HEADER_VALUES: &[&str] =
    &["acme", "ACME", "beta", "1", "", "v1", "v12", "a,b", "x y", "é", " acme", "É", "acme-x"];
const HEADER_REGEXES: &[&str] = &[
    "[a-z]+",
    "v[0-9]+",
    "acme|beta",
    ".*",
    "(?i)acme",
    "",
    "[^,]*",
    "a,b",
    r"\w+",
    r"(?i)é",
    r"\p{L}+",
    r"(?-u:\b)acme(?-u:\b).*",
    r"\Aacme.*?\z",
    "a.*?",
];
// Not generated: a Unicode word boundary (`\b`), which the compiler rejects
// (`invalid-regex`: a DFA cannot match it on non-ASCII input); the ASCII
// form `(?-u:\b)` is generated.
const CONTENT_TYPES: &[&str] =
    &["application/grpc", "application/grpc+proto", "Application/GRPC", "application/json", "application/grp"];

const QUERY_KEYS: &[&str] = &["mode", "q", "a", "k y"];
const REQUEST_QUERY_KEYS: &[&str] = &["mode", "q", "a", "x", "b", "k%20y", "k y", "k+y", "M%6fde"];
const QUERY_EQ_VALUES: &[&str] = &["fast", "1", "", "1+2", "a b", "12"];
const QUERY_REGEXES: &[&str] = &["[0-9]+", "fa.*", ".*", "s(low|x)", r"\w+"];
const QUERY_RAW_VALUES: &[&str] = &[
    "fast", "slow", "1", "", "1+2", "f%61st", "%ff", "%zz", "a%20b", "a b", "12", "%2B", "sx", "%C3%A9", "%", "%4",
    "b=c", "%66ast",
];

const TRUST_DOMAINS: &[&str] = &["td.one", "td-two"];
const NAMESPACES: &[&str] = &["shop", "mon", "ns1"];
const ACCOUNTS: &[&str] = &["web", "api", "cron"];

const NETS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.2.0.0/16",
    "10.1.5.0/24",
    "10.1.5.7",
    "0.0.0.0/0",
    "10.1.5.6/31",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "2001:db8:1:5::/64",
    "2001:db8:1:5::7",
    "::/0",
    "2001:db8:2::/48",
    "10.0.0.0/12",
    "128.0.0.0/1",
    "8000::/1",
    "2001:db8:1:4::/63",
    // Next to the IPv4-carrying ranges of spec section 7, not inside them.
    "::1",
    "::/128",
    "::/95",
    "64:ff9b::/95",
];
const EXCEPT_NETS: &[&str] = &[
    "10.1.5.0/24",
    "10.1.5.7",
    "10.1.6.0/24",
    "10.2.0.0/16",
    "10.1.0.0/16",
    "10.1.5.6/31",
    "10.1.5.7/32",
    "2001:db8:1:5::/64",
    "2001:db8:1:5::7",
    "2001:db8:1:6::/64",
    "2001:db8:2::/48",
    "2001:db8:1:5::6/127",
    "10.1.5.4/30",
    "10.1.0.0/20",
    "2001:db8:1:4::/63",
];
const IPS_V4: &[&str] = &[
    "10.1.5.7",
    "10.1.5.6",
    "10.1.5.8",
    "10.1.6.3",
    "10.2.3.4",
    "10.3.0.1",
    "192.168.0.1",
    "10.1.255.255",
    "10.2.0.0",
    "10.15.255.255",
    "10.16.0.0",
    "0.0.0.0",
    "255.255.255.255",
    "127.255.255.255",
];
// Besides these, [`carrying_v6`] writes IPv4 addresses as IPv6 ones.
const IPS_V6: &[&str] = &[
    "::1",
    "::2",
    "::ffff:10.1.5.7",
    "64:ff9b::a01:507",
    "::a01:507",
    // Not IPv4-carrying: another NAT64 prefix, and just outside `::/96`.
    "64:ff9b:1::a01:507",
    "::1:a01:507",
    "2001:db8:1:5::7",
    "2001:db8:1:5::6",
    "2001:db8:1:5::8",
    "2001:db8:1:6::3",
    "2001:db8:2::1",
    "2001:db8:9::1",
    "fd00::1",
    "::",
    "2001:db8:1:5:ffff:ffff:ffff:ffff",
    "2001:db8:1:4::",
    "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

const HOST_PATTERNS: &[&str] = &[
    "api.example.com",
    "API.Example.COM",
    "*.example.com",
    "*.api.example.com",
    "github.com",
    "GitHub.com.",
    "*",
    "db.internal",
    "*.internal",
    "10.1.5.7",
];
const EGRESS_HOSTS: &[&str] = &[
    "api.example.com",
    "API.example.com.",
    "x.api.example.com",
    "example.com",
    "github.com",
    "GitHub.COM.",
    "db.internal",
    "a.b.internal",
    "10.1.5.7",
    "10.2.3.4",
    "[2001:db8:1:5::7]",
    "[::ffff:10.1.5.7]",
    "[64:ff9b::a02:304]",
    "unknown.org",
];
const EGRESS_PORT_SETS: &[&[(u16, u16)]] =
    &[&[(443, 443)], &[(80, 80)], &[(80, 80), (443, 443)], &[(8000, 8999)], &[(5432, 5432)], &[(1, 1024)]];
const OUT_PORTS: &[u16] = &[443, 80, 5432, 8443, 22, 8080];

const SERVICE_HOSTS: &[&str] =
    &["pay.svc", "Search", "users.prod.svc", "api.example.com", "10.1.5.7", "[2001:db8:1:5::7]"];
const ENDPOINTS: &[&str] = &[
    "10.0.1.10:8080",
    "10.0.1.11:8080",
    "10.0.1.10:80",
    "[2001:db8::10]:8080",
    "[::ffff:10.0.1.12]:8080",
    "\"east.svc:8080\"",
    "\"East.Svc.:9000\"",
];
const BACKEND_IDENTITIES: &[&str] = &["spiffe://td.one/ns/shop/sa/api", "spiffe://td-two/x"];
const CLUSTERS: &[&str] = &["east", "West-2", "", "eu/1"];
const RETRY_CONDS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "429",
    "503",
    "100",
    "599",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];
const BACKOFFS: &[(&str, &str)] = &[("1s", "60s"), ("100ms", "2s"), ("0s", "0s"), ("5s", "5s"), ("1m", "1h")];
const DURATIONS: &[(&str, u64)] =
    &[("500ms", 500), ("2s", 2000), ("1m", 60_000), ("1h", 3_600_000), ("1500ms", 1500), ("0s", 0)];

/// Malformed or odd authorities (both sides must agree on error versus decision).
const BAD_AUTHORITIES: &[&str] = &[
    "",
    ":80",
    "h:",
    "h:0",
    "h:65536",
    "[::1",
    "[::1]x",
    "a b",
    "u@h",
    "h:80:80",
    "::1",
    "h:+80",
    ".",
    ".:80",
    "h:080",
    "h..",
    "a!b",
    "a%20b",
    "[::1]:",
    "[10.1.5.7]",
    "h:00080",
    "a%zz",
    "-a",
    "a_b",
    "a..",
    // Hosts are RFC 3986 `reg-name`s: request errors on both sides.
    "a\"b", "a<b>", "a{b}", "a|b", "a^b", "a`b", "a#b", "a?b", "é.com", "a\\b", "a[b]",
    // A port with leading zeros is its value.
    "h:000080",
];
const INVALID_IDENTITIES: &[&str] = &[
    "spiffe://TD.ONE/ns/shop/sa/web",
    "spiffe://td.one/a//b",
    "spiffe://td.one/ns/shop/sa/",
    "spiffe://td.one/ns/./sa/web",
    "spiffe://td.one/ns/../sa/web",
    "https://td.one/ns/shop/sa/web",
    "spiffe://td.one/ns/sh op/sa/web",
    "spiffe://td.one:8080/ns/shop/sa/web",
    "web",
    "",
    "spiffe://td.one/",
    "spiffe://td.one/a%20b",
    "spiffe://td.one/ns/shop/sa/web?x",
    "spiffe://td.one/ns/shop/sa/web#f",
    "spiffe://",
    "spiffe://td.one/ns/shop/sa/wéb",
];

// ---------------------------------------------------------------------------
// Networks.
// ---------------------------------------------------------------------------

/// A network from the pools, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Net {
    text: String,
    addr: IpAddr,
    len: u32,
}

impl Net {
    fn parse(text: &str) -> Net {
        let (a, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u32>().expect("pool prefix length"))),
            None => (text, None),
        };
        let addr: IpAddr = a.parse().expect("pool address");
        let len = len.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        Net { text: text.to_string(), addr, len }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = if self.len == 0 { 0 } else { u32::MAX << (32 - self.len) };
                u32::from(n) & m == u32::from(a) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = if self.len == 0 { 0 } else { u128::MAX << (128 - self.len) };
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }

    fn contains_net(&self, other: &Net) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }
}

// ---------------------------------------------------------------------------
// The policy model.
// ---------------------------------------------------------------------------

/// A server, mesh default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Def {
    Allow,
    Deny,
    Audit,
    Authenticated,
}

impl Def {
    const ALL: [Def; 4] = [Def::Allow, Def::Deny, Def::Audit, Def::Authenticated];

    fn text(self) -> &'static str {
        match self {
            Def::Allow => "allow",
            Def::Deny => "deny",
            Def::Audit => "audit",
            Def::Authenticated => "authenticated",
        }
    }
}

#[derive(Clone, Debug)]
struct Mesh {
    trust_domain: Option<String>,
    default: Option<Def>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Http,
    Grpc,
    Tcp,
}

#[derive(Clone, Debug)]
struct Server {
    name: String,
    ports: Vec<(u16, u16)>,
    protocol: Option<Proto>,
    default: Option<Def>,
    routes: Vec<Route>,
}

impl Server {
    fn proto(&self) -> Proto {
        self.protocol.unwrap_or(Proto::Http)
    }
}

#[derive(Clone, Debug)]
enum PathCond {
    Exact(String),
    Prefix(String),
    Regex(String),
    /// `pkg.Svc/Method` or `pkg.Svc/*`.
    Grpc(String),
}

impl PathCond {
    /// The path kind for precedence: exact, prefix, regex or none.
    fn kind(&self) -> &'static str {
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
enum Vm {
    Eq(String),
    Re(String),
    Present,
}

impl Vm {
    fn op(&self) -> &'static str {
        match self {
            Vm::Eq(_) => "=",
            Vm::Re(_) => "~",
            Vm::Present => "present",
        }
    }
}

#[derive(Clone, Debug)]
struct Route {
    name: String,
    methods: Vec<String>,
    path: Option<PathCond>,
    headers: Vec<(String, Vm)>,
    queries: Vec<(String, Vm)>,
    /// Service routes only: backends with optional weights.
    to: Vec<(String, Option<u32>)>,
    /// Service routes only.
    timeout: Option<(&'static str, u64)>,
    /// Service routes only: a `retry` block.
    retry: Option<RetrySpec>,
}

/// A `retry` block; `None` fields are left unwritten.
#[derive(Clone, Debug)]
struct RetrySpec {
    attempts: Option<u32>,
    on: Option<Vec<&'static str>>,
    per_try_timeout: Option<&'static str>,
    budget: Option<u8>,
}

/// A `circuit-breaker` block; `None` fields are left unwritten.
#[derive(Clone, Debug)]
struct BreakerSpec {
    consecutive_failures: Option<u32>,
    backoff: Option<(&'static str, &'static str)>,
    jitter: Option<u8>,
}

impl Route {
    fn path_kind(&self) -> &'static str {
        self.path.as_ref().map_or("none", PathCond::kind)
    }
}

#[derive(Clone, Debug)]
enum Principal {
    Any,
    Authenticated,
    Identity(Vec<String>),
    Namespace(Vec<String>),
    Network(Vec<Net>, Vec<Net>),
}

#[derive(Clone, Debug)]
struct Rule {
    name: String,
    deny: bool,
    targets: Vec<(String, Option<String>)>,
    froms: Vec<Principal>,
}

impl Rule {
    fn applies(&self, server: &str, route: Option<&str>) -> bool {
        self.targets.iter().any(|(s, r)| s == server && (r.is_none() || r.as_deref() == route))
    }
}

#[derive(Clone, Debug)]
struct Egress {
    /// `Some(true)`: `default allow`.
    default: Option<bool>,
    rules: Vec<EgressRule>,
}

#[derive(Clone, Debug)]
struct EgressRule {
    name: String,
    deny: bool,
    hosts: Vec<String>,
    nets: Option<(Vec<Net>, Vec<Net>)>,
    ports: Vec<(u16, u16)>,
}

#[derive(Clone, Debug)]
struct Backend {
    name: String,
    /// One `endpoint` statement's list (none when empty).
    endpoints: Vec<&'static str>,
    failover: Option<String>,
    identity: Option<&'static str>,
    cluster: Option<&'static str>,
    max_in_flight: Option<u32>,
}

#[derive(Clone, Debug)]
struct Service {
    name: String,
    /// Entries as written.
    authorities: Vec<String>,
    timeout: Option<(&'static str, u64)>,
    backends: Vec<Backend>,
    routes: Vec<Route>,
    retry: Option<RetrySpec>,
    breaker: Option<BreakerSpec>,
}

/// A whole policy.
#[derive(Clone, Debug)]
struct Model {
    mesh: Option<Mesh>,
    servers: Vec<Server>,
    rules: Vec<Rule>,
    egress: Option<Egress>,
    services: Vec<Service>,
    /// Seeds the layout choices of rendering (item order, separators).
    style: u64,
    /// Seeds a folder layout (spec section 1): the items cut into several
    /// files. `None`: one file.
    files: Option<u64>,
    /// Items written as text and placed at random (a policy broken on
    /// purpose, see [`gen_breakage`]).
    extra: Vec<String>,
}

impl Model {
    fn trust_domain(&self) -> Option<&str> {
        self.mesh.as_ref()?.trust_domain.as_deref()
    }

    fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }
}

// ---------------------------------------------------------------------------
// Rendering the model as policy text.
// ---------------------------------------------------------------------------

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn raw(s: &str) -> String {
    assert!(!s.contains('"'), "raw strings cannot hold quotes: {s}");
    format!("r\"{s}\"")
}

fn ports_text(ports: &[(u16, u16)]) -> String {
    ports.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect::<Vec<_>>().join(", ")
}

fn nets_text(include: &[Net], except: &[Net]) -> String {
    let list = |l: &[Net]| l.iter().map(|n| n.text.clone()).collect::<Vec<_>>().join(", ");
    if except.is_empty() {
        list(include)
    } else {
        format!("{} except {}", list(include), list(except))
    }
}

/// A block `head { stmts }` with random (but harmless) separators.
fn block(g: &mut Gen, head: &str, stmts: &[String]) -> String {
    let sep = match g.below(5) {
        0 => " ",
        1 => "; ",
        2 => "\n  ",
        3 => "\n  # a comment\n  ",
        _ => "\n    ",
    };
    format!("{head} {{{sep}{}{sep}}}", stmts.join(sep))
}

/// `fixed` keeps its order; each of `free` goes to a random place.
fn interleave(g: &mut Gen, fixed: Vec<String>, free: Vec<String>) -> Vec<String> {
    let mut out = fixed;
    for f in free {
        let at = g.below(out.len() + 1);
        out.insert(at, f);
    }
    out
}

fn vm_text(v: &Vm) -> String {
    match v {
        Vm::Eq(s) => format!("= {}", quoted(s)),
        Vm::Re(r) => format!("~ {}", raw(r)),
        Vm::Present => "present".to_string(),
    }
}

fn render_route(g: &mut Gen, r: &Route) -> String {
    let mut stmts = Vec::new();
    if !r.methods.is_empty() {
        let sep = if g.chance(30) { "," } else { ", " };
        stmts.push(format!("method {}", r.methods.join(sep)));
    }
    match &r.path {
        None => {}
        Some(PathCond::Exact(p)) => stmts.push(format!("path {}", quoted(p))),
        Some(PathCond::Prefix(p)) => stmts.push(format!("path prefix {}", quoted(p))),
        Some(PathCond::Regex(re)) => stmts.push(format!("path regex {}", raw(re))),
        Some(PathCond::Grpc(s)) => stmts.push(format!("grpc {}", quoted(s))),
    }
    for (name, v) in &r.headers {
        stmts.push(format!("header {} {}", quoted(name), vm_text(v)));
    }
    for (key, v) in &r.queries {
        stmts.push(format!("query {} {}", quoted(key), vm_text(v)));
    }
    if !r.to.is_empty() {
        let list: Vec<String> =
            r.to.iter()
                .map(|(b, w)| match w {
                    Some(w) => format!("{b} {w}"),
                    None => b.clone(),
                })
                .collect();
        stmts.push(format!("to {}", list.join(", ")));
    }
    if let Some((t, _)) = r.timeout {
        stmts.push(format!("timeout {t}"));
    }
    if let Some(retry) = &r.retry {
        stmts.push(retry_text(g, retry));
    }
    g.shuffle(&mut stmts);
    block(g, &format!("route {}", r.name), &stmts)
}

fn retry_text(g: &mut Gen, r: &RetrySpec) -> String {
    let mut stmts = Vec::new();
    if let Some(n) = r.attempts {
        stmts.push(format!("attempts {n}"));
    }
    if let Some(on) = &r.on {
        stmts.push(format!("on {}", on.join(", ")));
    }
    if let Some(t) = r.per_try_timeout {
        stmts.push(format!("per-try-timeout {t}"));
    }
    if let Some(b) = r.budget {
        stmts.push(format!("budget {b}%"));
    }
    g.shuffle(&mut stmts);
    block(g, "retry", &stmts)
}

fn breaker_text(g: &mut Gen, b: &BreakerSpec) -> String {
    let mut stmts = Vec::new();
    if let Some(n) = b.consecutive_failures {
        stmts.push(format!("consecutive-failures {n}"));
    }
    if let Some((lo, hi)) = b.backoff {
        stmts.push(format!("backoff {lo} {hi}"));
    }
    if let Some(j) = b.jitter {
        stmts.push(format!("jitter {j}%"));
    }
    g.shuffle(&mut stmts);
    block(g, "circuit-breaker", &stmts)
}

fn render_server(g: &mut Gen, s: &Server) -> String {
    let mut free = Vec::new();
    if !s.ports.is_empty() {
        free.push(format!("port {}", ports_text(&s.ports)));
    }
    if let Some(p) = s.protocol {
        free.push(format!(
            "protocol {}",
            match p {
                Proto::Http => "http",
                Proto::Grpc => "grpc",
                Proto::Tcp => "tcp",
            }
        ));
    }
    if let Some(d) = s.default {
        free.push(format!("default {}", d.text()));
    }
    let routes: Vec<String> = s.routes.iter().map(|r| render_route(g, r)).collect();
    let stmts = interleave(g, routes, free);
    block(g, &format!("server {}", s.name), &stmts)
}

fn principal_text(p: &Principal) -> String {
    let list = |l: &[String]| l.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", ");
    match p {
        Principal::Any => "from any".to_string(),
        Principal::Authenticated => "from authenticated".to_string(),
        Principal::Identity(ps) => format!("from identity {}", list(ps)),
        Principal::Namespace(ns) => format!("from namespace {}", list(ns)),
        Principal::Network(inc, exc) => format!("from network {}", nets_text(inc, exc)),
    }
}

fn render_rule(g: &mut Gen, r: &Rule) -> String {
    let target = |(s, route): &(String, Option<String>)| match route {
        Some(route) => format!("{s}.{route}"),
        None => s.clone(),
    };
    let targets: Vec<String> = r.targets.iter().map(target).collect();
    let mut tos = Vec::new();
    if targets.len() > 1 && g.chance(30) {
        // `to` lists add up.
        for t in &targets {
            tos.push(format!("to {t}"));
        }
    } else {
        tos.push(format!("to {}", targets.join(", ")));
    }
    let froms: Vec<String> = r.froms.iter().map(principal_text).collect();
    let stmts = interleave(g, froms, tos);
    block(g, &format!("{} {}", if r.deny { "deny" } else { "allow" }, r.name), &stmts)
}

fn render_egress(g: &mut Gen, e: &Egress) -> String {
    let mut rules = Vec::new();
    for r in &e.rules {
        let mut stmts = Vec::new();
        if !r.hosts.is_empty() {
            stmts.push(format!("host {}", r.hosts.iter().map(|h| quoted(h)).collect::<Vec<_>>().join(", ")));
        }
        if let Some((inc, exc)) = &r.nets {
            stmts.push(format!("network {}", nets_text(inc, exc)));
        }
        if !r.ports.is_empty() {
            stmts.push(format!("port {}", ports_text(&r.ports)));
        }
        g.shuffle(&mut stmts);
        rules.push(block(g, &format!("{} {}", if r.deny { "deny" } else { "allow" }, r.name), &stmts));
    }
    let free = match e.default {
        Some(true) => vec!["default allow".to_string()],
        Some(false) => vec!["default deny".to_string()],
        None => vec![],
    };
    let stmts = interleave(g, rules, free);
    block(g, "egress", &stmts)
}

fn render_service(g: &mut Gen, s: &Service) -> String {
    let mut free =
        vec![format!("authority {}", s.authorities.iter().map(|a| quoted(a)).collect::<Vec<_>>().join(", "))];
    if let Some((t, _)) = s.timeout {
        free.push(format!("timeout {t}"));
    }
    if let Some(retry) = &s.retry {
        free.push(retry_text(g, retry));
    }
    if let Some(breaker) = &s.breaker {
        free.push(breaker_text(g, breaker));
    }
    for b in &s.backends {
        let mut stmts = Vec::new();
        if !b.endpoints.is_empty() {
            let sep = if g.chance(30) { "," } else { ", " };
            stmts.push(format!("endpoint {}", b.endpoints.join(sep)));
        }
        if let Some(f) = &b.failover {
            stmts.push(format!("failover {f}"));
        }
        if let Some(id) = b.identity {
            stmts.push(format!("identity {}", quoted(id)));
        }
        if let Some(c) = b.cluster {
            stmts.push(format!("cluster {}", quoted(c)));
        }
        if let Some(n) = b.max_in_flight {
            stmts.push(format!("max-in-flight {n}"));
        }
        g.shuffle(&mut stmts);
        free.push(block(g, &format!("backend {}", b.name), &stmts));
    }
    let routes: Vec<String> = s.routes.iter().map(|r| render_route(g, r)).collect();
    let stmts = interleave(g, routes, free);
    block(g, &format!("service {}", s.name), &stmts)
}

/// The policy text. Items come in a random order, except that rules keep
/// their declaration order (it decides which rule is named).
fn render(m: &Model) -> String {
    render_items(m).into_iter().map(|t| t + "\n").collect()
}

/// The texts of the items in declaration order.
fn render_items(m: &Model) -> Vec<String> {
    let mut g = Gen(m.style);
    let mut items: Vec<(u64, Option<String>)> = Vec::new();
    if let Some(mesh) = &m.mesh {
        let mut stmts = Vec::new();
        if let Some(td) = &mesh.trust_domain {
            stmts.push(format!("trust-domain {}", quoted(td)));
        }
        if let Some(d) = mesh.default {
            stmts.push(format!("default {}", d.text()));
        }
        g.shuffle(&mut stmts);
        items.push((g.next(), Some(block(&mut g, "mesh", &stmts))));
    }
    for s in &m.servers {
        items.push((g.next(), Some(render_server(&mut g, s))));
    }
    let mut rules = Vec::new();
    for r in &m.rules {
        items.push((g.next(), None));
        rules.push(render_rule(&mut g, r));
    }
    if let Some(e) = &m.egress {
        items.push((g.next(), Some(render_egress(&mut g, e))));
    }
    for s in &m.services {
        items.push((g.next(), Some(render_service(&mut g, s))));
    }
    items.sort_by_key(|i| i.0);
    let mut rules = rules.into_iter();
    let mut out: Vec<String> =
        items.into_iter().map(|(_, text)| text.or_else(|| rules.next()).unwrap_or_default()).collect();
    for e in &m.extra {
        let at = g.below(out.len() + 1);
        out.insert(at, e.clone());
    }
    out
}

/// Relative paths of policy files in a folder: their byte order (`-` <
/// `.` < `/` < digits < upper case < `_` < lower case < UTF-8) is the
/// declaration order, which sorting path components instead would break.
const FILE_PATHS: &[&str] = &[
    "a.sluice",
    "a-b.sluice",
    "a.b.sluice",
    "a/b.sluice",
    "a/a/z.sluice",
    "B.sluice",
    "_.sluice",
    "z.sluice",
    "10.sluice",
    "9.sluice",
    "\u{e9}.sluice",
    "b/c/d.sluice",
];
/// A file of a policy folder: its relative path and its text.
type FileText = (String, String);

/// Files of a policy folder that are not policy files (never read).
const JUNK_FILES: &[(&str, &str)] =
    &[("README.md", "not { a policy"), ("a/x.sluice.bak", "server {"), ("b/notes.txt", "}"), ("c/sluice", "{")];

/// The policy as a folder (spec section 1): its items, in declaration
/// order, cut into runs, one run per file, the files taken in byte order
/// of their paths; some files empty or only a comment; and some files that
/// are not policy files. `(path, text)` pairs, policy files first, sorted.
fn render_files(m: &Model, seed: u64) -> (Vec<FileText>, Vec<FileText>) {
    let items = render_items(m);
    let mut g = Gen(seed);
    let k = g.range(2, 5);
    let mut paths = g.distinct(FILE_PATHS, k);
    paths.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut cuts: Vec<usize> = (0..k - 1).map(|_| g.range(0, items.len())).collect();
    cuts.sort_unstable();
    cuts.insert(0, 0);
    cuts.push(items.len());
    let files = paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| {
            let mut text = if g.chance(20) { format!("# {path}\n") } else { String::new() };
            for item in &items[cuts[i]..cuts[i + 1]] {
                text.push_str(item);
                text.push('\n');
            }
            (path, text)
        })
        .collect();
    let n_junk = g.weighted(&[60, 30, 10]);
    let junk = g
        .distinct(&JUNK_FILES.iter().map(|j| j.0).collect::<Vec<_>>(), n_junk)
        .into_iter()
        .map(|p| {
            let text = JUNK_FILES.iter().find(|j| j.0 == p).map_or("", |j| j.1).to_string();
            (p, text)
        })
        .collect();
    (files, junk)
}

/// Distinguishes the temporary folders of concurrent cases.
static FOLDER_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes the files of [`render_files`] to a fresh temporary folder (in a
/// random order) and reads it back as the compiler's input does
/// (`sluice_lang::source::load`); checks that exactly the policy files
/// came back, in byte order of their paths.
fn load_folder(m: &Model, seed: u64) -> Result<Vec<sluice_lang::ast::SourceFile>, String> {
    let (files, junk) = render_files(m, seed);
    let n = FOLDER_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sluice-differential-{}-{n}", std::process::id()));
    let mut all: Vec<&FileText> = files.iter().chain(&junk).collect();
    Gen(seed ^ 0x5eed).shuffle(&mut all);
    let written = all.iter().try_for_each(|(path, text)| {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap_or(&dir))?;
        std::fs::write(full, text)
    });
    let loaded = written.and_then(|()| sluice_lang::source::load(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    let loaded = loaded.map_err(|e| format!("the policy folder does not load: {e}"))?;
    let got: Vec<&str> = loaded.iter().map(|f| f.path.as_str()).collect();
    let want: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    if got != want {
        return Err(format!("the policy folder loads the files {got:?}, not {want:?} (byte order of their paths)"));
    }
    Ok(loaded)
}

// ---------------------------------------------------------------------------
// Generating a policy.
// ---------------------------------------------------------------------------

/// A normalized policy path of `lo..=hi` segments.
fn policy_path(g: &mut Gen, lo: usize, hi: usize) -> String {
    let n = g.range(lo, hi);
    let mut p = String::new();
    for _ in 0..n {
        p.push('/');
        if g.chance(4) {
            p.push_str(&g.s(&["%3A", "%C3%A9", "a;b", "a+b", "..."]));
        } else {
            p.push_str(&g.s(SEGMENTS));
        }
    }
    if p.is_empty() {
        p.push('/');
    }
    p
}

fn gen_vm(g: &mut Gen, eq: &[&str], re: &[&str]) -> Vm {
    match g.weighted(&[40, 30, 30]) {
        0 => Vm::Eq(g.s(eq)),
        1 => Vm::Re(g.s(re)),
        _ => Vm::Present,
    }
}

/// A route; `backends` is `Some` for a service route.
fn gen_route(g: &mut Gen, name: &str, backends: Option<&[Backend]>) -> Route {
    let path = match g.weighted(&[20, 20, 25, 15, 20]) {
        0 => None,
        1 => {
            let mut p = policy_path(g, 1, 3);
            if g.chance(15) {
                p.push('/');
            }
            if g.chance(5) {
                p = "/".to_string();
            }
            Some(PathCond::Exact(p))
        }
        2 => {
            if g.chance(8) {
                Some(PathCond::Prefix("/".to_string()))
            } else {
                let mut p = policy_path(g, 1, 2);
                if g.chance(30) {
                    p.push('/');
                }
                Some(PathCond::Prefix(p))
            }
        }
        3 => Some(PathCond::Regex(g.s(PATH_REGEXES))),
        _ => {
            let svc = g.s(GRPC_SERVICES);
            let method = if g.chance(50) { "*".to_string() } else { g.s(GRPC_METHODS) };
            Some(PathCond::Grpc(format!("{svc}/{method}")))
        }
    };
    let methods = if g.chance(35) {
        let n = g.range(1, 2);
        g.distinct(METHODS, n)
    } else {
        Vec::new()
    };
    let n_headers = g.weighted(&[45, 30, 18, 7]);
    let headers =
        (0..n_headers).map(|_| (g.s(POLICY_HEADER_NAMES), gen_vm(g, HEADER_VALUES, HEADER_REGEXES))).collect();
    let n_queries = g.weighted(&[60, 30, 10]);
    let queries = (0..n_queries).map(|_| (g.s(QUERY_KEYS), gen_vm(g, QUERY_EQ_VALUES, QUERY_REGEXES))).collect();
    let mut route =
        Route { name: name.to_string(), methods, path, headers, queries, to: Vec::new(), timeout: None, retry: None };
    if let Some(backends) = backends {
        let names: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
        let n = g.range(1, names.len().min(3));
        for b in g.distinct(&names, n) {
            let w = match g.weighted(&[35, 20, 40, 5]) {
                0 => None,
                1 => Some(0),
                2 => Some(g.range(1, 100) as u32),
                _ => Some(u32::MAX),
            };
            route.to.push((b, w));
        }
        if route.to.iter().all(|(_, w)| *w == Some(0)) {
            route.to[0].1 = if g.chance(50) { None } else { Some(1) };
        }
        if g.chance(35) {
            route.timeout = Some(*g.pick(DURATIONS));
        }
        route.retry = g.chance(15).then(|| gen_retry(g));
    }
    route
}

/// A `retry` block, each statement written or not.
fn gen_retry(g: &mut Gen) -> RetrySpec {
    RetrySpec {
        attempts: g.chance(60).then(|| *g.pick(&[0u32, 1, 2, 5, u32::MAX])),
        on: g.chance(60).then(|| {
            let n = g.range(1, 4);
            let mut on: Vec<&'static str> = Vec::new();
            for _ in 0..n {
                let c = *g.pick(RETRY_CONDS);
                if !on.contains(&c) {
                    on.push(c);
                }
            }
            on
        }),
        per_try_timeout: g.chance(50).then(|| g.pick(DURATIONS).0),
        budget: g.chance(40).then(|| *g.pick(&[0u8, 5, 20, 100])),
    }
}

/// A `circuit-breaker` block, each statement written or not.
fn gen_breaker(g: &mut Gen) -> BreakerSpec {
    BreakerSpec {
        consecutive_failures: g.chance(60).then(|| *g.pick(&[0u32, 1, 5, u32::MAX])),
        backoff: g.chance(50).then(|| *g.pick(BACKOFFS)),
        jitter: g.chance(50).then(|| *g.pick(&[0u8, 10, 100])),
    }
}

/// An identity pattern.
fn gen_pattern(g: &mut Gen, td: Option<&str>) -> String {
    if g.chance(10) {
        return "*".to_string();
    }
    let td = match td {
        Some(td) if g.chance(70) => td.to_string(),
        _ => g.s(TRUST_DOMAINS),
    };
    let ns = g.s(NAMESPACES);
    let ns = if g.chance(8) { g.recase(&ns) } else { ns };
    let sa = g.s(ACCOUNTS);
    match g.weighted(&[35, 12, 15, 15, 8, 3, 5, 5]) {
        0 => format!("spiffe://{td}/ns/{ns}/sa/{sa}"),
        1 => format!("spiffe://{td}/ns/*/sa/{sa}"),
        2 => format!("spiffe://{td}/ns/{ns}/sa/*"),
        3 => format!("spiffe://{td}/ns/{ns}/**"),
        4 => format!("spiffe://{td}/**"),
        5 => format!("spiffe://{td}"),
        6 => format!("spiffe://{td}/x"),
        _ => format!("spiffe://{td}/*/*/sa/*"),
    }
}

fn gen_networks(g: &mut Gen) -> (Vec<Net>, Vec<Net>) {
    let n = g.range(1, 2);
    let include: Vec<Net> = g.distinct(NETS, n).iter().map(|s| Net::parse(s)).collect();
    let mut except = Vec::new();
    if g.chance(50) {
        let candidates: Vec<&str> = EXCEPT_NETS
            .iter()
            .copied()
            .filter(|e| {
                let e = Net::parse(e);
                include.iter().any(|i| i.contains_net(&e))
            })
            .collect();
        if !candidates.is_empty() {
            let n = g.range(1, 2);
            except = g.distinct(&candidates, n).iter().map(|s| Net::parse(s)).collect();
        }
    }
    (include, except)
}

fn gen_principal(g: &mut Gen, td: Option<&str>) -> Principal {
    let ns_weight = if td.is_some() { 15 } else { 0 };
    match g.weighted(&[8, 10, 35, ns_weight, 32]) {
        0 => Principal::Any,
        1 => Principal::Authenticated,
        2 => {
            let n = g.range(1, 3);
            Principal::Identity((0..n).map(|_| gen_pattern(g, td)).collect())
        }
        3 => {
            let n = g.range(1, 2);
            Principal::Namespace(g.distinct(NAMESPACES, n))
        }
        _ => {
            let (inc, exc) = gen_networks(g);
            Principal::Network(inc, exc)
        }
    }
}

/// The normalized `(host, port)` of an authority entry, for conflicts.
fn authority_key(a: &str) -> (String, u16) {
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let close = rest.find(']').unwrap_or(rest.len());
        let port = rest[close..].strip_prefix("]:").map_or(80, |p| p.parse().unwrap_or(0));
        (rest[..close].to_string(), port)
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().unwrap_or(0)),
            None => (a.to_string(), 80),
        }
    };
    let host = host.to_ascii_lowercase();
    (host.strip_suffix('.').map(str::to_string).unwrap_or(host), port)
}

fn gen_model(g: &mut Gen) -> Model {
    let mesh = g.chance(70).then(|| Mesh {
        trust_domain: g.chance(75).then(|| g.s(TRUST_DOMAINS)),
        default: g.chance(55).then(|| *g.pick(&Def::ALL)),
    });
    let td = mesh.as_ref().and_then(|m| m.trust_domain.clone());

    // Servers.
    let n_servers = g.range(1, 4);
    let names = g.distinct(SERVER_NAMES, n_servers);
    let mut slots: Vec<usize> = (0..PORT_SLOTS.len()).collect();
    g.shuffle(&mut slots);
    let mut slots = slots.into_iter();
    let mut servers = Vec::new();
    for name in names {
        let mut ports = Vec::new();
        // A server without `port` covers nothing.
        let n_slots = if g.chance(3) { 0 } else { g.range(1, 2) };
        for _ in 0..n_slots {
            if let Some(slot) = slots.next() {
                ports.extend_from_slice(PORT_SLOTS[slot]);
            }
        }
        let protocol = match g.weighted(&[30, 15, 25, 30]) {
            0 => None,
            1 => Some(Proto::Http),
            2 => Some(Proto::Grpc),
            _ => Some(Proto::Tcp),
        };
        let default = g.chance(80).then(|| *g.pick(&Def::ALL));
        let mut routes = Vec::new();
        if protocol != Some(Proto::Tcp) && g.chance(78) {
            let n = g.range(1, 4);
            for rname in g.distinct(ROUTE_NAMES, n) {
                routes.push(gen_route(g, &rname, None));
            }
        }
        servers.push(Server { name, ports, protocol, default, routes });
    }

    // Rules.
    let n_rules = g.weighted(&[8, 15, 20, 20, 15, 12, 10]);
    let mut rules = Vec::new();
    for name in g.distinct(RULE_NAMES, n_rules) {
        let n_targets = g.range(1, 2);
        let mut targets: Vec<(String, Option<String>)> = Vec::new();
        for _ in 0..n_targets {
            let s = g.pick(&servers);
            let t = if s.proto() != Proto::Tcp && !s.routes.is_empty() && g.chance(55) {
                (s.name.clone(), Some(g.pick(&s.routes).name.clone()))
            } else {
                (s.name.clone(), None)
            };
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
        let n_froms = g.weighted(&[0, 60, 30, 10]);
        let froms = (0..n_froms).map(|_| gen_principal(g, td.as_deref())).collect();
        rules.push(Rule { name, deny: g.chance(35), targets, froms });
    }

    // Egress.
    let egress = g.chance(60).then(|| {
        let default = match g.weighted(&[30, 35, 35]) {
            0 => None,
            1 => Some(true),
            _ => Some(false),
        };
        let n = g.weighted(&[10, 25, 25, 25, 15]);
        let rules = g
            .distinct(EGRESS_RULE_NAMES, n)
            .into_iter()
            .map(|name| {
                let (hosts, nets) = match g.weighted(&[40, 25, 10, 25]) {
                    0 => (true, false),
                    1 => (false, true),
                    2 => (true, true),
                    _ => (false, false),
                };
                let hosts = if hosts {
                    let n = g.range(1, 2);
                    g.distinct(HOST_PATTERNS, n)
                } else {
                    Vec::new()
                };
                let nets = nets.then(|| gen_networks(g));
                let ports = if g.chance(55) { g.pick(EGRESS_PORT_SETS).to_vec() } else { Vec::new() };
                EgressRule { name, deny: g.chance(40), hosts, nets, ports }
            })
            .collect();
        Egress { default, rules }
    });

    // Services.
    let n_services = g.weighted(&[30, 45, 25]);
    let mut services = Vec::new();
    let mut taken_authorities: Vec<(String, u16)> = Vec::new();
    for name in g.distinct(SERVICE_NAMES, n_services) {
        let mut authorities = Vec::new();
        for _ in 0..g.range(1, 2) {
            let host = g.s(SERVICE_HOSTS);
            let host = if host.starts_with('[') || host.starts_with("10.") {
                host
            } else {
                let mut h = g.recase(&host);
                if g.chance(15) {
                    h.push('.');
                }
                h
            };
            let text = match g.weighted(&[45, 10, 30, 15]) {
                0 => host,
                1 => format!("{host}:80"),
                2 => format!("{host}:8080"),
                _ => format!("{host}:9090"),
            };
            let key = authority_key(&text);
            if !taken_authorities.contains(&key) {
                taken_authorities.push(key);
                authorities.push(text);
            }
        }
        if authorities.is_empty() {
            continue;
        }
        let n_backends = g.range(1, 3);
        let names = g.distinct(BACKEND_NAMES, n_backends);
        let mut backends: Vec<Backend> = names
            .iter()
            .map(|n| {
                let n_endpoints = if g.chance(70) { g.range(1, 3) } else { 0 };
                let mut endpoints: Vec<&'static str> = Vec::new();
                for _ in 0..n_endpoints {
                    let e = *g.pick(ENDPOINTS);
                    if !endpoints.contains(&e) {
                        endpoints.push(e);
                    }
                }
                Backend {
                    name: n.clone(),
                    endpoints,
                    failover: None,
                    identity: g.chance(20).then(|| *g.pick(BACKEND_IDENTITIES)),
                    cluster: g.chance(20).then(|| *g.pick(CLUSTERS)),
                    max_in_flight: g.chance(20).then(|| *g.pick(&[0u32, 1, 100, u32::MAX])),
                }
            })
            .collect();
        for i in 0..backends.len().saturating_sub(1) {
            if g.chance(15) {
                let j = g.range(i + 1, backends.len() - 1);
                backends[i].failover = Some(backends[j].name.clone());
            }
        }
        let n_routes = g.range(1, 3);
        let routes = g.distinct(ROUTE_NAMES, n_routes).iter().map(|r| gen_route(g, r, Some(&backends))).collect();
        services.push(Service {
            name,
            authorities,
            timeout: g.chance(40).then(|| *g.pick(DURATIONS)),
            backends,
            routes,
            retry: g.chance(20).then(|| gen_retry(g)),
            breaker: g.chance(20).then(|| gen_breaker(g)),
        });
    }
    let style = g.next();
    let files = g.chance(30).then(|| g.next());
    Model { mesh, servers, rules, egress, services, style, files, extra: Vec::new() }
}

// ---------------------------------------------------------------------------
// Policies broken on purpose.
// ---------------------------------------------------------------------------

/// Networks inside `::ffff:0:0/96`, `64:ff9b::/96` or `::/96` (other than
/// `::/128` and `::1/128`): `invalid-network` (spec section 7, "Addresses").
const IPV4_CARRYING_NETS: &[&str] = &[
    "::ffff:10.0.0.0/104",
    "::ffff:0:0/96",
    "::ffff:10.1.5.7",
    "::ffff:0.0.0.0/128",
    "64:ff9b::/96",
    "64:ff9b::a00:0/104",
    "64:ff9b::a01:507",
    "::/96",
    "::a00:0/104",
    "::10.1.5.7",
    "::2",
    "::/127",
];

/// A copy of `m` with one thing broken, and the diagnostic code that the
/// spec (sections 1, 2, 4, 5, 7 and 8) gives that break.
fn gen_breakage(g: &mut Gen, m: &Model) -> (Model, &'static str) {
    let mut b = m.clone();
    let server = g.pick(&m.servers).name.clone();
    let http_server = m.servers.iter().find(|s| s.proto() != Proto::Tcp).map(|s| s.name.clone());
    let svc = |body: &str| format!("service zz-extra {{ authority \"zz.extra\"  {body} }}");
    loop {
        let code = match g.weighted(&[40, 6, 6, 5, 5, 6, 5, 6, 4, 5, 8, 4, 5, 5, 5, 5]) {
            0 => {
                let bad = Net::parse(&g.s(IPV4_CARRYING_NETS));
                let with_network =
                    b.rules.iter().position(|r| r.froms.iter().any(|p| matches!(p, Principal::Network(..))));
                match g.below(4) {
                    1 => {
                        b.extra.push(format!("deny zz-extra {{ to {server}  from network ::/0 except {} }}", bad.text))
                    }
                    2 if b.egress.as_ref().is_some_and(|e| !e.rules.is_empty()) => {
                        let rules = &mut b.egress.as_mut().expect("an egress block").rules;
                        let i = g.below(rules.len());
                        match &mut rules[i].nets {
                            Some((include, _)) => include.push(bad),
                            None => rules[i].nets = Some((vec![bad], Vec::new())),
                        }
                    }
                    3 if with_network.is_some() => {
                        let rule = &mut b.rules[with_network.expect("a rule with a network")];
                        for p in &mut rule.froms {
                            if let Principal::Network(include, _) = p {
                                include.push(bad);
                                break;
                            }
                        }
                    }
                    _ => b.extra.push(format!("allow zz-extra {{ to {server}  from network {} }}", bad.text)),
                }
                "invalid-network"
            }
            1 => {
                match g.below(3) {
                    0 if m.mesh.is_some() => b.extra.push("mesh { default allow }".to_string()),
                    0 => b.extra.extend(["mesh { }".to_string(), "mesh { default deny }".to_string()]),
                    1 if m.egress.is_some() => b.extra.push("egress { default allow }".to_string()),
                    _ => b.extra.push(svc("timeout 1s  timeout 2s  backend a { }  route r { to a }")),
                }
                "duplicate-statement"
            }
            2 => {
                match g.below(4) {
                    0 if !m.rules.is_empty() => {
                        let name = &g.pick(&m.rules).name;
                        b.extra.push(format!("allow {name} {{ to {server}  from any }}"));
                    }
                    1 if !m.services.is_empty() => {
                        let name = &g.pick(&m.services).name;
                        b.extra.push(format!(
                            "service {name} {{ authority \"zz.extra\"  backend a {{ }}  route r {{ to a }} }}"
                        ));
                    }
                    2 => b.extra.push(svc("backend a { }  backend a { }  route r { to a }")),
                    _ => b.extra.push(format!("server {server} {{ }}")),
                }
                "duplicate-name"
            }
            3 => {
                let Some(s) = m.servers.iter().find(|s| !s.ports.is_empty()) else { continue };
                let port = port_of(g, s);
                b.extra.push(format!("server zz-extra {{ port {port} }}"));
                "port-conflict"
            }
            4 => {
                if m.services.is_empty() {
                    continue;
                }
                let service = g.pick(&m.services);
                let entry = g.pick(&service.authorities).clone();
                let (host, port) = authority_key(&entry);
                let host = if host.contains(':') {
                    format!("[{}]", host.to_ascii_uppercase())
                } else {
                    host.to_ascii_uppercase() + "."
                };
                let written = if port == 80 && g.chance(50) { host } else { format!("{host}:{port}") };
                b.extra.push(format!(
                    "service zz-extra {{ authority {}  backend a {{ }}  route r {{ to a }} }}",
                    quoted(&written)
                ));
                "authority-conflict"
            }
            5 => {
                match g.below(4) {
                    0 => b.extra.push("allow zz-extra { to nosuch  from any }".to_string()),
                    1 if http_server.is_some() => b.extra.push(format!(
                        "allow zz-extra {{ to {}.nosuch  from any }}",
                        http_server.as_deref().unwrap_or_default()
                    )),
                    2 => b.extra.push(svc("backend a { }  route r { to nosuch }")),
                    _ => b.extra.push(svc("backend a { failover nosuch }  route r { to a }")),
                }
                "unknown-reference"
            }
            6 => {
                b.extra.push(if g.chance(50) {
                    svc("backend a { failover b }  backend b { failover a }  route r { to a }")
                } else {
                    svc("backend a { failover a }  route r { to a }")
                });
                "failover-cycle"
            }
            7 => {
                b.extra.push(match g.below(3) {
                    0 => svc("backend a { }  route r { to a 0 }"),
                    1 => svc("backend a { }"),
                    _ => svc("backend a { }  route r { path \"/\" }"),
                });
                "no-backend"
            }
            8 => {
                if m.trust_domain().is_some() {
                    continue;
                }
                b.extra.push(format!("allow zz-extra {{ to {server}  from namespace \"shop\" }}"));
                "missing-trust-domain"
            }
            9 => {
                b.extra.push(if g.chance(50) {
                    format!("allow zz-extra {{ to {server} }}")
                } else {
                    "deny zz-extra { from any }".to_string()
                });
                "empty-rule"
            }
            10 => {
                b.extra.push(match g.below(8) {
                    0 => "server zz-extra { port 0 }".to_string(),
                    1 => "server zz-extra { port 65536 }".to_string(),
                    2 => "server zz-extra { port 9-8 }".to_string(),
                    3 => "server zz-extra { route r { path \"/a/../b\" } }".to_string(),
                    4 => "server zz-extra { route r { grpc \"pkg.Svc\" } }".to_string(),
                    5 => svc("retry { budget 101% }  backend a { }  route r { to a }"),
                    6 => svc("backend a { }  route r { to a 4294967296 }"),
                    _ => format!("server {} {{ }}", "a".repeat(64)),
                });
                "invalid-value"
            }
            11 => {
                let re = g.s(&["(", "[a-", "a{2,1}", "(?P<x>a)(?P<x>b)"]);
                b.extra.push(if g.chance(50) {
                    format!("server zz-extra {{ route r {{ path regex {} }} }}", raw(&re))
                } else {
                    format!("server zz-extra {{ route r {{ header \"x\" ~ {} }} }}", raw(&re))
                });
                "invalid-regex"
            }
            12 => {
                let (inc, exc) = *g.pick(&[
                    ("10.1.0.0/16", "10.2.0.0/16"),
                    ("2001:db8:1::/48", "2001:db8:2::/48"),
                    ("10.0.0.0/8", "2001:db8::/32"),
                    ("10.1.5.0/24", "10.1.0.0/16"),
                ]);
                b.extra.push(format!("allow zz-extra {{ to {server}  from network {inc} except {exc} }}"));
                "except-outside-network"
            }
            13 => {
                b.extra.push(match g.below(3) {
                    0 => "server zz-extra { route r { timeout 1s } }".to_string(),
                    1 => "server zz-extra { route r { retry { } } }".to_string(),
                    _ => "server zz-extra { protocol tcp  route r { } }".to_string(),
                });
                "misplaced-statement"
            }
            14 => {
                let bad = g.s(&["a.*.com", "*example.com", "api.*", "*.*.com"]);
                let egress = b.egress.get_or_insert_with(|| Egress { default: None, rules: Vec::new() });
                match egress.rules.iter_mut().find(|r| !r.hosts.is_empty()) {
                    Some(r) if g.chance(50) => r.hosts.push(bad),
                    _ => egress.rules.push(EgressRule {
                        name: "zz-extra".to_string(),
                        deny: false,
                        hosts: vec![bad],
                        nets: None,
                        ports: Vec::new(),
                    }),
                }
                "invalid-host"
            }
            _ => {
                let bad = g.s(&[
                    "spiffe://td.one/a/**/b",
                    "spiffe://*/ns/x",
                    "spiffe://TD.ONE/x",
                    "spiffe://td.one/a*",
                    "spiffe://td.one/ns//x",
                    "td.one/ns/x",
                    "spiffe://td.one/**/**",
                ]);
                b.extra.push(format!("allow zz-extra {{ to {server}  from identity {} }}", quoted(&bad)));
                "invalid-identity"
            }
        };
        return (b, code);
    }
}

/// `None` when the compiler rejects the broken policy with errors of
/// `code` only; else what went wrong.
fn check_breakage(broken: &Model, code: &str) -> Option<String> {
    let policy = match sources(broken) {
        Ok((policy, folder)) => folder.unwrap_or(policy),
        Err(e) => return Some(e),
    };
    match sluice_compiler::compile(&policy, &Config::default()) {
        Ok(_) => Some(format!("compiled, but the spec makes it `{code}`\n")),
        Err(diagnostics) => {
            let errors: Vec<String> = diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| format!("{} at line {}: {}", d.code.as_str(), d.span.line, d.message))
                .collect();
            let all_expected = diagnostics.iter().filter(|d| d.is_error()).all(|d| d.code.as_str() == code);
            (errors.is_empty() || !all_expected)
                .then(|| format!("want errors `{code}` only, got:\n  {}\n", errors.join("\n  ")))
        }
    }
}

/// Per-policy coverage of the service settings.
fn account_settings(m: &Model, stats: &mut Stats) {
    for s in &m.services {
        stats.bump_policy("settings:service");
        if s.retry.is_some() {
            stats.bump_policy("settings:service-retry");
        }
        if s.routes.iter().any(|r| r.retry.is_some()) {
            stats.bump_policy("settings:route-retry");
        }
        if s.breaker.is_some() {
            stats.bump_policy("settings:breaker");
        }
        for b in &s.backends {
            if b.endpoints.len() > 1 {
                stats.bump_policy("settings:endpoints>1");
            }
            if b.failover.is_some() {
                stats.bump_policy("settings:failover");
            }
            if b.identity.is_some() {
                stats.bump_policy("settings:identity");
            }
            if b.cluster.is_some() {
                stats.bump_policy("settings:cluster");
            }
            if b.max_in_flight.is_some() {
                stats.bump_policy("settings:max-in-flight");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Generating requests.
// ---------------------------------------------------------------------------

thread_local! {
    /// Compiled whole-match regexes of the pools, for picking values that match.
    static REGEXES: RefCell<BTreeMap<String, Option<regex::bytes::Regex>>> = const { RefCell::new(BTreeMap::new()) };
}

/// Whether `re` matches all of `value` (the generator's own check, only
/// used to pick values that are likely to match).
fn regex_matches(re: &str, value: &[u8]) -> bool {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        let compiled = cache.entry(re.to_string()).or_insert_with(|| {
            // A `(?x)` regex may end in a comment: a newline closes it.
            regex::bytes::Regex::new(&format!(r"\A(?:{re})\z"))
                .or_else(|_| regex::bytes::Regex::new(&format!("\\A(?:{re}\n)\\z")))
                .ok()
        });
        compiled.as_ref().is_some_and(|r| r.is_match(value))
    })
}

/// One of `pool` that `re` matches, if any (`pct`: percent-decode first).
fn matching_value(g: &mut Gen, re: &str, pool: &[&str], pct: bool) -> Option<String> {
    let hits: Vec<&str> = pool
        .iter()
        .copied()
        .filter(|v| if pct { regex_matches(re, &percent_decode(v)) } else { regex_matches(re, v.as_bytes()) })
        .collect();
    (!hits.is_empty()).then(|| g.s(&hits))
}

/// Percent-decoding as the spec's query rule does it.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = ((b[i + 1] as char).to_digit(16), (b[i + 2] as char).to_digit(16)) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// What a generated request is meant to exercise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    InHttp,
    InConnection,
    OutService,
    OutEgress,
    Tunnel,
    OutTcp,
    Malformed,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::InHttp => "req:inbound-http",
            Kind::InConnection => "req:inbound-connection",
            Kind::OutService => "req:outbound-http-service",
            Kind::OutEgress => "req:outbound-http-egress",
            Kind::Tunnel => "req:tunnel",
            Kind::OutTcp => "req:outbound-tcp",
            Kind::Malformed => "req:outbound-malformed",
        }
    }
}

#[derive(Clone, Debug)]
struct Req {
    kind: Kind,
    r: Request,
}

/// A random request path (normalized) from the pools.
fn random_path(g: &mut Gen) -> String {
    match g.weighted(&[55, 20, 15, 10]) {
        0 => {
            let mut p = String::new();
            for _ in 0..g.range(0, 4) {
                p.push('/');
                p.push_str(&g.s(SEGMENTS));
            }
            if p.is_empty() || g.chance(15) {
                p.push('/');
            }
            p
        }
        1 => g.s(REGEX_SAMPLE_PATHS),
        2 => format!("/{}/{}", g.s(GRPC_SERVICES), g.s(GRPC_METHODS)),
        _ => {
            let mut p = policy_path(g, 1, 3);
            if g.chance(50) {
                p.push('x');
            }
            p
        }
    }
}

/// A path that the route's path condition likely matches.
fn path_for(g: &mut Gen, route: Option<&Route>) -> String {
    let Some(cond) = route.and_then(|r| r.path.as_ref()) else {
        return random_path(g);
    };
    match cond {
        PathCond::Exact(p) => p.clone(),
        PathCond::Prefix(p) => {
            let base = p.trim_end_matches('/');
            if base.is_empty() {
                return random_path(g);
            }
            match g.below(5) {
                0 => base.to_string(),
                1 => format!("{base}/"),
                2 => format!("{base}x"),
                _ => format!("{base}/{}", g.s(SEGMENTS)),
            }
        }
        PathCond::Regex(re) => match matching_value(g, re, REGEX_SAMPLE_PATHS, false) {
            Some(p) if g.chance(85) => p,
            _ => g.s(REGEX_SAMPLE_PATHS),
        },
        PathCond::Grpc(s) => match s.strip_suffix("/*") {
            Some(svc) => {
                if g.chance(85) {
                    format!("/{svc}/{}", g.s(GRPC_METHODS))
                } else {
                    format!("/{svc}")
                }
            }
            None => format!("/{s}"),
        },
    }
}

/// A raw path with an attack or encoding variant applied to `base`.
fn attack(g: &mut Gen, base: &str) -> String {
    if !base.starts_with('/') {
        return format!("/..{base}");
    }
    match g.below(18) {
        0 => format!("/x/..{base}"),
        1 => format!("/x/%2e%2E{base}"),
        2 => match base[1..].find('/') {
            Some(i) => format!("{}%2F{}", &base[..=i], &base[i + 2..]),
            None => format!("{base}%2fx"),
        },
        3 => base.replace('/', "//"),
        4 => {
            if let Some(i) = base.find('a') {
                format!("{}%61{}", &base[..i], &base[i + 1..])
            } else if let Some(i) = base.find('p') {
                format!("{}%70{}", &base[..i], &base[i + 1..])
            } else {
                format!("/%61{base}")
            }
        }
        5 => format!("{base}\\x"),
        6 => format!("{base}#{}", g.s(&["frag", "?mode=fast", "a/../b"])),
        7 => format!("/.{base}"),
        8 => format!("{base}/.."),
        9 => format!("{base}%3a"),
        10 => format!("/%2E{base}"),
        11 => g.s(&["a/b", "*", "", "/a b", "/é", "/a%zz", "/a%2", "/%00", "/a\tb", "/%5c"]),
        12 => format!("/..{base}"),
        13 => format!("{base}/%2e%2e/%2E"),
        14 => format!("/x/.%2e{base}"),
        15 => format!("{base}%7e%7E%41%c3%a9"),
        16 => g.s(&["?a=1", "http://h/a", "/a;x/..", "/a+b", "/.../a", "/%25/x", "/%2", "/.%2E/%2e./x"]),
        _ => format!("{base}/./.././"),
    }
}

/// Whether a raw path holds one of the attack patterns.
fn attack_kinds(raw: &str) -> Vec<&'static str> {
    let lower = raw.to_ascii_lowercase();
    let mut out = Vec::new();
    if raw.contains("..") {
        out.push("attack:..");
    }
    if lower.contains("%2e") {
        out.push("attack:%2e");
    }
    if lower.contains("%2f") {
        out.push("attack:%2f");
    }
    if raw.contains("//") {
        out.push("attack://");
    }
    if raw.contains('\\') {
        out.push("attack:backslash");
    }
    out
}

fn percent_encode_some(g: &mut Gen, s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            ' ' if g.chance(60) => out.push_str("%20"),
            'a' if g.chance(20) => out.push_str("%61"),
            '+' if g.chance(20) => out.push_str("%2B"),
            c => out.push(c),
        }
    }
    out
}

/// A query string (without `?`), or `None`.
fn gen_query(g: &mut Gen, route: Option<&Route>) -> Option<String> {
    let mut pairs: Vec<String> = Vec::new();
    if let Some(r) = route {
        if !r.queries.is_empty() && g.chance(70) {
            for (key, v) in &r.queries {
                let k = match key.as_str() {
                    "mode" if g.chance(20) => "m%6Fde".to_string(),
                    "k y" => g.s(&["k%20y", "k y", "k%20y"]),
                    _ => key.clone(),
                };
                let pair = match v {
                    Vm::Eq(val) => format!("{k}={}", percent_encode_some(g, val)),
                    Vm::Re(re) => {
                        let v = matching_value(g, re, QUERY_RAW_VALUES, true).unwrap_or_else(|| g.s(QUERY_RAW_VALUES));
                        format!("{k}={v}")
                    }
                    Vm::Present if g.chance(30) => k,
                    Vm::Present => format!("{k}={}", g.s(QUERY_RAW_VALUES)),
                };
                pairs.push(pair);
            }
        }
    }
    for _ in 0..g.weighted(&[50, 30, 20]) {
        let key = g.s(REQUEST_QUERY_KEYS);
        let pair = if g.chance(15) { key } else { format!("{key}={}", g.s(QUERY_RAW_VALUES)) };
        // Before or after: a duplicate key before the route's pair wins.
        let at = g.below(pairs.len() + 1);
        pairs.insert(at, pair);
    }
    if pairs.is_empty() {
        return g.chance(20).then(String::new);
    }
    let mut q = pairs.join("&");
    if g.chance(5) {
        q.push('&');
    }
    if g.chance(5) {
        q = format!("&{q}");
    }
    Some(q)
}

fn gen_headers(g: &mut Gen, route: Option<&Route>) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(r) = route {
        for (name, v) in &r.headers {
            if !g.chance(75) {
                continue;
            }
            let name = g.recase(name);
            match v {
                Vm::Eq(val) if val.contains(',') && g.chance(50) => {
                    // Repeated header lines join with `,`.
                    for part in val.split(',') {
                        headers.push((name.clone(), part.to_string()));
                    }
                }
                Vm::Eq(val) => headers.push((name, val.clone())),
                Vm::Re(re) => {
                    let v = matching_value(g, re, HEADER_VALUES, false).unwrap_or_else(|| g.s(HEADER_VALUES));
                    headers.push((name, v));
                }
                Vm::Present => headers.push((name, g.s(HEADER_VALUES))),
            }
        }
    }
    for _ in 0..g.weighted(&[55, 30, 15]) {
        let name = g.s(&["x-tenant", "x-canary", "x-env", "x-other"]);
        let name = g.recase(&name);
        headers.push((name, g.s(HEADER_VALUES)));
    }
    if !headers.is_empty() && g.chance(12) {
        // Repeat a name already present.
        let (n, _) = g.pick(&headers).clone();
        headers.push((g.recase(&n), g.s(HEADER_VALUES)));
    }
    if g.chance(14) {
        headers.push((g.recase("content-type"), g.s(CONTENT_TYPES)));
    }
    if g.chance(3) {
        // Two content-type lines: the joined value decides.
        headers.push((g.recase("content-type"), g.s(CONTENT_TYPES)));
        headers.push((g.recase("content-type"), g.s(CONTENT_TYPES)));
    }
    g.shuffle(&mut headers);
    headers
}

/// An identity that one of the model's identity patterns or namespaces matches.
fn instantiate(g: &mut Gen, m: &Model) -> Option<String> {
    let mut patterns: Vec<String> = Vec::new();
    for r in &m.rules {
        for p in &r.froms {
            match p {
                Principal::Identity(ps) => patterns.extend(ps.iter().filter(|p| *p != "*").cloned()),
                Principal::Namespace(ns) => {
                    let td = m.trust_domain().unwrap_or("td.one");
                    patterns.extend(ns.iter().map(|n| format!("spiffe://{td}/ns/{n}/sa/*")));
                }
                _ => {}
            }
        }
    }
    if patterns.is_empty() {
        return None;
    }
    let p = g.pick(&patterns).clone();
    let rest = p.strip_prefix("spiffe://")?;
    let mut segs: Vec<String> = Vec::new();
    const FILL: &[&str] = &["shop", "mon", "web", "x", "ns", "sa", "Web", "a.b"];
    for (i, seg) in rest.split('/').enumerate() {
        match seg {
            "*" if i > 0 => segs.push(g.s(FILL)),
            "**" if i > 0 => {
                for _ in 0..g.range(1, 2) {
                    segs.push(g.s(FILL));
                }
            }
            s => segs.push(s.to_string()),
        }
    }
    if g.chance(20) {
        // The same path in another trust domain: a near miss.
        let other: Vec<&str> = TRUST_DOMAINS.iter().copied().filter(|td| *td != segs[0]).collect();
        if !other.is_empty() {
            segs[0] = g.s(&other);
        }
    }
    Some(format!("spiffe://{}", segs.join("/")))
}

fn gen_identity(g: &mut Gen, m: &Model) -> String {
    let td = m.trust_domain();
    if g.chance(50) {
        if let Some(id) = instantiate(g, m) {
            return id;
        }
    }
    if g.chance(12) {
        return g.s(INVALID_IDENTITIES);
    }
    if g.chance(2) {
        // Around the 2048-byte limit.
        return format!("spiffe://td.one/{}", "a".repeat(2048 - 16 + g.below(2)));
    }
    let td = match td {
        Some(td) if g.chance(65) => td.to_string(),
        _ => g.s(TRUST_DOMAINS),
    };
    let ns = g.s(NAMESPACES);
    let sa = g.s(ACCOUNTS);
    match g.weighted(&[70, 8, 8, 4, 5, 5]) {
        0 => format!("spiffe://{td}/ns/{ns}/sa/{sa}"),
        1 => format!("spiffe://{td}/ns/{ns}/sa/{sa}/extra"),
        2 => format!("spiffe://{td}/x"),
        3 => format!("spiffe://{td}"),
        4 => format!("spiffe://{td}/ns/{ns}"),
        _ => format!("spiffe://{td}/ns/{}/sa/...", g.recase(&ns)),
    }
}

fn gen_ip(g: &mut Gen) -> IpAddr {
    let s = if g.chance(60) { g.pick(IPS_V4) } else { g.pick(IPS_V6) };
    let ip = s.parse().expect("pool address");
    maybe_carry(g, ip)
}

/// `v4` written as an IPv6 address that carries it (spec section 7,
/// "Addresses"): IPv4-mapped, NAT64 or IPv4-compatible (which for
/// `0.0.0.0` and `0.0.0.1` gives `::` and `::1`, which carry nothing).
fn carrying_v6(g: &mut Gen, v4: std::net::Ipv4Addr) -> IpAddr {
    let x = u128::from(u32::from(v4));
    IpAddr::V6(std::net::Ipv6Addr::from(match g.below(3) {
        0 => 0xffff_0000_0000 | x,
        1 => (0x64_ff9b_u128 << 96) | x,
        _ => x,
    }))
}

/// Sometimes an IPv4 address written as an IPv6 one that carries it.
fn maybe_carry(g: &mut Gen, ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if g.chance(20) => carrying_v6(g, v4),
        _ => ip,
    }
}

/// The address that `network`s see (spec section 7, "Addresses"): an IPv6
/// address in `::ffff:0:0/96`, `64:ff9b::/96` or `::/96` (but not `::` and
/// `::1`) stands for the IPv4 address in its last 32 bits.
fn carried(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let x = u128::from(v6);
    let high = x >> 32;
    if high == 0xffff || high == 0x64_ff9b << 64 || (high == 0 && x > 1) {
        IpAddr::V4(std::net::Ipv4Addr::from(x as u32))
    } else {
        ip
    }
}

/// Whether an address is IPv6 as written but IPv4 to `network`s.
fn is_carrying(ip: IpAddr) -> bool {
    ip.is_ipv6() && carried(ip).is_ipv4()
}

/// An address inside `net`, near its start or its end.
fn ip_in(g: &mut Gen, net: &Net) -> IpAddr {
    let offset = g.below(4) as u128;
    match net.addr {
        IpAddr::V4(a) => {
            let host = if net.len == 32 { 0 } else { u32::MAX >> net.len };
            let o = (offset as u32) & host;
            let base = u32::from(a);
            IpAddr::V4(if g.chance(50) { base | o } else { (base | host) - o }.into())
        }
        IpAddr::V6(a) => {
            let host = if net.len == 128 { 0 } else { u128::MAX >> net.len };
            let o = offset & host;
            let base = u128::from(a);
            IpAddr::V6(std::net::Ipv6Addr::from(if g.chance(50) { base | o } else { (base | host) - o }))
        }
    }
}

/// An address from the pools, or (often) one inside a network that the
/// model names, `except` ranges first.
fn gen_model_ip(g: &mut Gen, m: &Model, outbound: bool) -> IpAddr {
    let mut nets: Vec<&Net> = Vec::new();
    let mut excepts: Vec<&Net> = Vec::new();
    if outbound {
        for r in m.egress.iter().flat_map(|e| &e.rules) {
            if let Some((inc, exc)) = &r.nets {
                nets.extend(inc);
                excepts.extend(exc);
            }
        }
    } else {
        for r in &m.rules {
            for p in &r.froms {
                if let Principal::Network(inc, exc) = p {
                    nets.extend(inc);
                    excepts.extend(exc);
                }
            }
        }
    }
    if !excepts.is_empty() && g.chance(if outbound { 40 } else { 25 }) {
        let n = (*g.pick(&excepts)).clone();
        let ip = ip_in(g, &n);
        return maybe_carry(g, ip);
    }
    if !nets.is_empty() && g.chance(30) {
        let n = (*g.pick(&nets)).clone();
        let ip = ip_in(g, &n);
        return maybe_carry(g, ip);
    }
    gen_ip(g)
}

fn gen_peer(g: &mut Gen, m: &Model, r: &mut Request) {
    if g.chance(65) {
        r.peer_identity = Some(gen_identity(g, m));
    }
    if g.chance(72) {
        r.peer_ip = Some(gen_model_ip(g, m, false));
    }
}

/// A port of `server`.
fn port_of(g: &mut Gen, server: &Server) -> u16 {
    if server.ports.is_empty() {
        return *g.pick(UNCOVERED_PORTS);
    }
    let &(a, b) = g.pick(&server.ports);
    match g.below(3) {
        0 => a,
        1 => b,
        _ => g.range(usize::from(a), usize::from(b)) as u16,
    }
}

fn http_parts(g: &mut Gen, r: &mut Request, route: Option<&Route>) {
    let method = match route {
        Some(route) if !route.methods.is_empty() && g.chance(75) => g.pick(&route.methods).clone(),
        _ => g.s(REQUEST_METHODS),
    };
    let mut path = path_for(g, route);
    if g.chance(1) {
        // Around the 8192-byte limit.
        path = format!("/{}", "a".repeat(8190 + g.below(3)));
    }
    if g.chance(28) {
        path = attack(g, &path);
    }
    if let Some(q) = gen_query(g, route) {
        // A fragment in the path part would swallow the query; keep it last.
        match path.find('#') {
            Some(i) => path = format!("{}?{q}{}", &path[..i], &path[i..]),
            None => path = format!("{path}?{q}"),
        }
    }
    r.method = Some(method);
    r.path = Some(path);
    r.headers = gen_headers(g, route);
}

/// An authority for a service entry, varied as a client might write it.
fn service_authority(g: &mut Gen, entry: &str) -> String {
    let (host, port) = authority_key(entry);
    let written_port = entry.starts_with('[') && entry.contains("]:") || !entry.starts_with('[') && entry.contains(':');
    let host = if host.contains(':') {
        format!("[{}]", if g.chance(30) { host.to_ascii_uppercase() } else { host })
    } else {
        let mut h = g.recase(&host);
        if g.chance(15) {
            h.push('.');
        }
        h
    };
    match g.weighted(&[75, 12, 13]) {
        0 if port == 80 && !written_port && g.chance(50) => host,
        0 => format!("{host}:{port}"),
        1 => host,
        _ => format!("{host}:{}", g.pick(&[80u16, 8080, 9090, 443])),
    }
}

fn egress_authority(g: &mut Gen) -> String {
    let host = g.s(EGRESS_HOSTS);
    match g.weighted(&[30, 35, 10, 10, 15]) {
        0 => host,
        1 => format!("{host}:443"),
        2 => format!("{host}:80"),
        3 => format!("{host}:5432"),
        _ => format!("{host}:8443"),
    }
}

fn gen_request(g: &mut Gen, m: &Model) -> Req {
    let has_services = !m.services.is_empty();
    let kind = match g.weighted(&[45, 9, if has_services { 15 } else { 0 }, 12, 7, 8, 4]) {
        0 => Kind::InHttp,
        1 => Kind::InConnection,
        2 => Kind::OutService,
        3 => Kind::OutEgress,
        4 => Kind::Tunnel,
        5 => Kind::OutTcp,
        _ => Kind::Malformed,
    };
    let mut r = match kind {
        Kind::InHttp | Kind::InConnection => Request::inbound(0),
        _ => Request::outbound(),
    };
    match kind {
        Kind::InHttp => {
            let server = g.chance(87).then(|| g.pick(&m.servers).clone());
            r.port = Some(match &server {
                Some(s) => port_of(g, s),
                None => *g.pick(UNCOVERED_PORTS),
            });
            let route = match &server {
                Some(s) if !s.routes.is_empty() && g.chance(80) => Some(g.pick(&s.routes).clone()),
                _ => None,
            };
            http_parts(g, &mut r, route.as_ref());
            gen_peer(g, m, &mut r);
        }
        Kind::InConnection => {
            let tcp: Vec<&Server> = m.servers.iter().filter(|s| s.proto() == Proto::Tcp).collect();
            r.port = Some(if !tcp.is_empty() && g.chance(75) {
                let s = *g.pick(&tcp);
                port_of(g, s)
            } else if g.chance(60) {
                let s = g.pick(&m.servers).clone();
                port_of(g, &s)
            } else {
                *g.pick(UNCOVERED_PORTS)
            });
            gen_peer(g, m, &mut r);
        }
        Kind::OutService => {
            let s = g.pick(&m.services).clone();
            let entry = g.pick(&s.authorities).clone();
            r.authority = Some(service_authority(g, &entry));
            let route = g.chance(85).then(|| g.pick(&s.routes).clone());
            http_parts(g, &mut r, route.as_ref());
            if g.chance(15) {
                r.ip = Some(gen_ip(g));
            }
        }
        Kind::OutEgress => {
            r.authority = Some(egress_authority(g));
            http_parts(g, &mut r, None);
            if g.chance(25) {
                r.ip = Some(gen_model_ip(g, m, true));
            }
        }
        Kind::Tunnel => {
            r.authority = Some(if has_services && g.chance(25) {
                let s = g.pick(&m.services).clone();
                let entry = g.pick(&s.authorities).clone();
                service_authority(g, &entry)
            } else {
                egress_authority(g)
            });
            if g.chance(25) {
                r.ip = Some(gen_model_ip(g, m, true));
            }
        }
        Kind::OutTcp => {
            r.ip = Some(gen_model_ip(g, m, true));
            r.port = Some(*g.pick(OUT_PORTS));
        }
        Kind::Malformed => match g.below(5) {
            0 => http_parts(g, &mut r, None),
            1 => {}
            2 => {
                r.authority = Some(g.s(BAD_AUTHORITIES));
                http_parts(g, &mut r, None);
            }
            3 => r.authority = Some(g.s(BAD_AUTHORITIES)),
            _ => r.ip = Some(gen_ip(g)),
        },
    }
    Req { kind, r }
}

// ---------------------------------------------------------------------------
// Running both sides.
// ---------------------------------------------------------------------------

/// A decision with owned fields, comparable across the two sides.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Flat {
    allow: bool,
    reason: String,
    server: Option<String>,
    route: Option<String>,
    rule: Option<String>,
    audit: bool,
    http_status: Option<u16>,
    grpc_status: Option<u8>,
    service: Option<String>,
    backends: Vec<(String, u32)>,
    timeout_ms: Option<u64>,
}

/// A decision, an error (its kind compared, not its message), or a panic.
#[derive(Clone, Debug)]
enum Outcome {
    Decision(Flat),
    /// The kind (`connection-to-http-server`, `incomplete`,
    /// `bad-authority`) and the message.
    Error(&'static str, String),
    Panic(String),
}

impl Outcome {
    fn agrees(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Decision(a), Outcome::Decision(b)) => a == b,
            (Outcome::Error(a, _), Outcome::Error(b, _)) => a == b,
            _ => false,
        }
    }
}

fn flat_reference(d: &Decision) -> Flat {
    Flat {
        allow: d.allow,
        reason: d.reason.to_string(),
        server: d.server.clone(),
        route: d.route.clone(),
        rule: d.rule.clone(),
        audit: d.audit,
        http_status: d.http_status,
        grpc_status: d.grpc_status,
        service: d.service.clone(),
        backends: d.backends.clone(),
        timeout_ms: d.timeout_ms,
    }
}

fn flat_runtime(d: &sluice_runtime::Decision<'_>) -> Flat {
    Flat {
        allow: d.allow,
        reason: d.reason.as_str().to_string(),
        server: d.server.map(str::to_string),
        route: d.route.map(str::to_string),
        rule: d.rule.map(str::to_string),
        audit: d.audit,
        http_status: d.http_status,
        grpc_status: d.grpc_status,
        service: d.service.map(str::to_string),
        backends: d.backends.iter().map(|b| (b.name.to_string(), b.weight)).collect(),
        timeout_ms: d.timeout_ms,
    }
}

fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".to_string())
}

fn run_reference(policy: &sluice_lang::Policy, r: &Request) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| evaluate_request(policy, r))) {
        Ok(Ok(d)) => Outcome::Decision(flat_reference(&d)),
        Ok(Err(e)) => Outcome::Error(
            match e.kind {
                ErrorKind::ConnectionToHttpServer => "connection-to-http-server",
                ErrorKind::Incomplete => "incomplete",
                ErrorKind::BadAuthority => "bad-authority",
            },
            e.message,
        ),
        Err(e) => Outcome::Panic(panic_message(&*e)),
    }
}

/// A loaded bundle with its scratch space.
struct Runtime<'a> {
    bundle: Bundle<'a>,
    scratch: Scratch,
    class: PeerClass,
}

impl<'a> Runtime<'a> {
    fn new(bytes: &'a AlignedBytes) -> Result<Self, String> {
        let bundle = Bundle::from_bytes(bytes.as_bytes()).map_err(|e| format!("the bundle does not load: {e:?}"))?;
        let scratch = bundle.create_scratch();
        let class = bundle.create_peer_class();
        Ok(Runtime { bundle, scratch, class })
    }

    fn run(&mut self, r: &Request) -> Outcome {
        let Runtime { bundle, scratch, class } = self;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let http = match (&r.method, &r.path) {
                (None, None) => None,
                (m, p) => Some(Http {
                    method: m.as_deref().unwrap_or(""),
                    path: p.as_deref().unwrap_or("").as_bytes(),
                    headers: &r.headers,
                }),
            };
            match r.direction {
                Direction::Inbound => {
                    bundle.classify(&Peer { ip: r.peer_ip, identity: r.peer_identity.as_deref() }, class);
                    bundle
                        .decide_inbound(&Inbound { port: r.port.unwrap_or(0), http }, class, scratch)
                        .map(|d| flat_runtime(&d))
                }
                Direction::Outbound => bundle
                    .decide_outbound(
                        &Outbound { authority: r.authority.as_deref(), ip: r.ip, port: r.port, http },
                        scratch,
                    )
                    .map(|d| flat_runtime(&d)),
            }
        }));
        match result {
            Ok(Ok(d)) => Outcome::Decision(d),
            Ok(Err(e)) => Outcome::Error(
                match e {
                    RequestError::ConnectionToHttpServer { .. } => "connection-to-http-server",
                    RequestError::Incomplete { .. } => "incomplete",
                    RequestError::BadAuthority => "bad-authority",
                },
                e.to_string(),
            ),
            Err(e) => Outcome::Panic(panic_message(&*e)),
        }
    }
}

/// A service's settings as the runtime's accessors give them, in the
/// reference's types (a failover index becomes its backend's name), with
/// the retry policy of each of `routes`.
fn settings_of_runtime(bundle: &Bundle<'_>, name: &str, routes: &[&str]) -> Option<sluice_reference::ServiceSettings> {
    use sluice_reference::{Backend, Breaker, Endpoint, Retry, RetryOn, RouteSettings, ServiceSettings};
    use sluice_runtime::{Endpoint as RtEndpoint, RetryCond};
    let s = bundle.service(name)?;
    let retry = |r: &sluice_runtime::Retry| Retry {
        attempts: r.attempts,
        on: r
            .on
            .iter()
            .map(|c| match *c {
                RetryCond::ServerError => RetryOn::ServerError,
                RetryCond::GatewayError => RetryOn::GatewayError,
                RetryCond::Reset => RetryOn::Reset,
                RetryCond::Status(s) => RetryOn::Status(s),
                RetryCond::Grpc(c) => RetryOn::Grpc(c),
            })
            .collect(),
        per_try_timeout_ms: r.per_try_timeout_ms,
        budget_percent: r.budget_percent,
    };
    let backends = s
        .backends
        .iter()
        .map(|b| Backend {
            name: b.name.to_string(),
            endpoints: b
                .endpoints
                .iter()
                .map(|e| match *e {
                    RtEndpoint::Addr(a) => Endpoint::Addr(a),
                    RtEndpoint::Name(n) => Endpoint::Name(n.to_string()),
                })
                .collect(),
            identity: b.identity.map(str::to_string),
            cluster: b.cluster.map(str::to_string),
            failover: b.failover.map(|i| {
                s.backends.get(i as usize).map_or_else(|| format!("#{i} (out of range)"), |f| f.name.to_string())
            }),
            max_in_flight: b.max_in_flight,
        })
        .collect();
    let routes = routes
        .iter()
        .map(|r| RouteSettings { name: r.to_string(), retry: bundle.route_retry(name, r).map(retry) })
        .collect();
    Some(ServiceSettings {
        name: s.name.to_string(),
        timeout_ms: s.timeout_ms,
        retry: s.retry.map(retry),
        breaker: s.breaker.map(|b| Breaker {
            consecutive_failures: b.consecutive_failures,
            backoff_min_ms: b.backoff_min_ms,
            backoff_max_ms: b.backoff_max_ms,
            jitter_percent: b.jitter_percent,
        }),
        backends,
        routes,
    })
}

/// Compares every service's settings (retry, budget, per-try timeout,
/// breaker, failover, endpoints, cluster, max-in-flight, backend identity)
/// between the bundle and the reference. Returns `(field, report)` for
/// each difference.
fn compare_settings(m: &Model, policy: &sluice_lang::Policy, bundle: &Bundle<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let names: Vec<&str> = bundle.service_names().collect();
    let expected: Vec<&str> = policy
        .items
        .iter()
        .filter_map(|i| match i {
            sluice_lang::ast::Item::Service(s) => Some(s.name.node.as_str()),
            _ => None,
        })
        .collect();
    if names != expected {
        out.push(("service names".to_string(), format!("runtime {names:?}, declaration order {expected:?}")));
    }
    for svc in &m.services {
        let reference = sluice_reference::service_settings(policy, &svc.name);
        let routes: Vec<&str> = svc.routes.iter().map(|r| r.name.as_str()).collect();
        let runtime = settings_of_runtime(bundle, &svc.name, &routes);
        // DNS names compare case-insensitively: the bundle keeps endpoint
        // names lowercased, the reference as written.
        let lower_names = |s: Option<sluice_reference::ServiceSettings>| {
            s.map(|mut s| {
                for b in &mut s.backends {
                    for e in &mut b.endpoints {
                        if let sluice_reference::Endpoint::Name(n) = e {
                            n.make_ascii_lowercase();
                        }
                    }
                }
                s
            })
        };
        let (reference, runtime) = (lower_names(reference), lower_names(runtime));
        let (Some(e), Some(a)) = (&reference, &runtime) else {
            if reference.is_some() != runtime.is_some() {
                out.push((
                    "service missing".to_string(),
                    format!("service `{}`: reference {reference:?}, runtime {runtime:?}", svc.name),
                ));
            }
            continue;
        };
        let mut fields = Vec::new();
        macro_rules! cmp {
            ($($field:ident),*) => { $( if e.$field != a.$field { fields.push(stringify!($field).to_string()); } )* };
        }
        cmp!(timeout_ms, retry, breaker, routes);
        if e.backends.len() != a.backends.len() {
            fields.push("backends".to_string());
        }
        for (x, y) in e.backends.iter().zip(&a.backends) {
            macro_rules! cmp_backend {
                ($($field:ident),*) => {
                    $( if x.$field != y.$field { fields.push(format!("backend.{}", stringify!($field))); } )*
                };
            }
            cmp_backend!(name, endpoints, identity, cluster, failover, max_in_flight);
        }
        fields.dedup();
        for f in fields {
            out.push((
                format!("settings [{f}]"),
                format!("service `{}`\n  reference: {e:?}\n  runtime:   {a:?}", svc.name),
            ));
        }
    }
    out
}

/// Parses and compiles policy text; `Err` holds a report (a generator bug).
fn build(text: &str, config: &Config) -> Result<(sluice_lang::Policy, AlignedBytes), String> {
    let policy = parse_text(text)?;
    let bytes = compile_policy(&policy, config)?;
    Ok((policy, bytes))
}

/// Parses policy text as one file; `Err` holds a report.
fn parse_text(text: &str) -> Result<sluice_lang::Policy, String> {
    let (policy, diagnostics) = sluice_lang::parse::parse_str("diff.sluice", text);
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        return Err(format!("the generated policy does not parse: {errors:#?}"));
    }
    Ok(policy)
}

/// The policy the reference decides (the model rendered as one file) and,
/// for a folder layout, the policy the compiler gets (the model rendered
/// as a folder and read back from disk); they have the same declaration
/// order.
fn sources(m: &Model) -> Result<(sluice_lang::Policy, Option<sluice_lang::Policy>), String> {
    let reference = parse_text(&render(m))?;
    let Some(seed) = m.files else { return Ok((reference, None)) };
    let (folder, diagnostics) = sluice_lang::parse::parse_files(load_folder(m, seed)?);
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        return Err(format!("the generated policy folder does not parse: {errors:#?}"));
    }
    Ok((reference, Some(folder)))
}

/// The text of a model for a report: one file, or each file of its folder.
fn model_text(m: &Model) -> String {
    match m.files {
        None => render(m),
        Some(seed) => {
            let (files, junk) = render_files(m, seed);
            let mut out = String::new();
            for (path, text) in files {
                let _ = write!(out, "--- file {path}\n{text}");
            }
            for (path, _) in junk {
                let _ = writeln!(out, "--- (not a policy file: {path})");
            }
            out
        }
    }
}

/// Compiles a parsed policy; `Err` holds a report (a generator bug).
fn compile_policy(policy: &sluice_lang::Policy, config: &Config) -> Result<AlignedBytes, String> {
    match sluice_compiler::compile(policy, config) {
        Ok(compiled) => Ok(AlignedBytes::new(&compiled.bundle)),
        Err(diagnostics) => {
            let list: String = diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| {
                    format!("  {} at line {} column {}: {}\n", d.code.as_str(), d.span.line, d.span.column, d.message)
                })
                .collect();
            Err(format!("the generated policy does not compile:\n{list}"))
        }
    }
}

/// The request as the JSON of spec section 10.
fn request_json(r: &Request) -> Value {
    let mut o = Map::new();
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    match r.direction {
        Direction::Inbound => {
            put("direction", json!("inbound"));
            if let Some(p) = r.port {
                put("port", json!(p));
            }
        }
        Direction::Outbound => {
            put("direction", json!("outbound"));
            if let Some(a) = &r.authority {
                put("authority", json!(a));
            }
            if let Some(ip) = r.ip {
                put("ip", json!(ip.to_string()));
            }
            if let Some(p) = r.port {
                put("port", json!(p));
            }
        }
    }
    if let Some(m) = &r.method {
        put("method", json!(m));
    }
    if let Some(p) = &r.path {
        put("path", json!(p));
    }
    if !r.headers.is_empty() {
        put("headers", Value::Array(r.headers.iter().map(|(n, v)| json!([n, v])).collect()));
    }
    if r.direction == Direction::Inbound {
        let mut peer = Map::new();
        if let Some(ip) = r.peer_ip {
            peer.insert("ip".to_string(), json!(ip.to_string()));
        }
        if let Some(id) = &r.peer_identity {
            peer.insert("identity".to_string(), json!(id));
        }
        put("peer", Value::Object(peer));
    }
    Value::Object(o)
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Decision(d) => format!("{d:?}"),
        Outcome::Error(kind, e) => format!("error ({kind}): {e}"),
        Outcome::Panic(e) => format!("PANIC: {e}"),
    }
}

// ---------------------------------------------------------------------------
// Minimizing a mismatch.
// ---------------------------------------------------------------------------

/// Both outcomes when `m` compiles and the two sides disagree on `r`.
fn mismatch(m: &Model, r: &Request, config: &Config) -> Option<(Outcome, Outcome)> {
    let (policy, folder) = sources(m).ok()?;
    let bytes = compile_policy(folder.as_ref().unwrap_or(&policy), config).ok()?;
    let mut rt = Runtime::new(&bytes).ok()?;
    let expected = run_reference(&policy, r);
    let actual = rt.run(r);
    (!expected.agrees(&actual)).then_some((expected, actual))
}

/// Removes rule targets (and rules left without targets) that `drop` selects.
fn drop_targets(m: &mut Model, drop: impl Fn(&(String, Option<String>)) -> bool) {
    for r in &mut m.rules {
        r.targets.retain(|t| !drop(t));
    }
    m.rules.retain(|r| !r.targets.is_empty());
}

/// Smaller variants of a route (one condition fewer each).
fn route_reductions(r: &Route) -> Vec<Route> {
    let mut out = Vec::new();
    let mut push = |f: &dyn Fn(&mut Route)| {
        let mut c = r.clone();
        f(&mut c);
        out.push(c);
    };
    if !r.methods.is_empty() {
        push(&|c| c.methods.clear());
    }
    if r.path.is_some() {
        push(&|c| c.path = None);
    }
    for i in 0..r.headers.len() {
        push(&|c| {
            c.headers.remove(i);
        });
    }
    for i in 0..r.queries.len() {
        push(&|c| {
            c.queries.remove(i);
        });
    }
    for i in 0..r.to.len() {
        push(&|c| {
            c.to.remove(i);
        });
    }
    if r.timeout.is_some() {
        push(&|c| c.timeout = None);
    }
    if r.retry.is_some() {
        push(&|c| c.retry = None);
    }
    out
}

fn principal_reductions(p: &Principal) -> Vec<Principal> {
    let mut out = Vec::new();
    match p {
        Principal::Identity(l) | Principal::Namespace(l) if l.len() > 1 => {
            for i in 0..l.len() {
                let mut l2 = l.clone();
                l2.remove(i);
                out.push(match p {
                    Principal::Identity(_) => Principal::Identity(l2),
                    _ => Principal::Namespace(l2),
                });
            }
        }
        Principal::Network(inc, exc) => {
            for i in 0..inc.len() {
                let mut l = inc.clone();
                l.remove(i);
                if !l.is_empty() {
                    out.push(Principal::Network(l, exc.clone()));
                }
            }
            for i in 0..exc.len() {
                let mut l = exc.clone();
                l.remove(i);
                out.push(Principal::Network(inc.clone(), l));
            }
        }
        _ => {}
    }
    out
}

/// Smaller variants of a model (one thing fewer each). Some do not compile;
/// the caller skips those.
fn model_reductions(m: &Model) -> Vec<Model> {
    let mut out = Vec::new();
    let with = |f: &mut dyn FnMut(&mut Model)| {
        let mut c = m.clone();
        f(&mut c);
        c
    };
    // Whole items first.
    for i in 0..m.services.len() {
        out.push(with(&mut |c| {
            c.services.remove(i);
        }));
    }
    if m.egress.is_some() {
        out.push(with(&mut |c| c.egress = None));
    }
    for i in 0..m.servers.len() {
        let name = m.servers[i].name.clone();
        out.push(with(&mut |c| {
            c.servers.remove(i);
            drop_targets(c, |t| t.0 == name);
        }));
    }
    for i in 0..m.rules.len() {
        out.push(with(&mut |c| {
            c.rules.remove(i);
        }));
    }
    if let Some(mesh) = &m.mesh {
        out.push(with(&mut |c| c.mesh = None));
        if mesh.trust_domain.is_some() {
            out.push(with(&mut |c| c.mesh.as_mut().unwrap().trust_domain = None));
        }
        if mesh.default.is_some() {
            out.push(with(&mut |c| c.mesh.as_mut().unwrap().default = None));
        }
    }
    // Then their parts.
    for i in 0..m.servers.len() {
        let name = m.servers[i].name.clone();
        for j in 0..m.servers[i].routes.len() {
            let route = m.servers[i].routes[j].name.clone();
            out.push(with(&mut |c| {
                c.servers[i].routes.remove(j);
                drop_targets(c, |t| t.0 == name && t.1.as_deref() == Some(route.as_str()));
            }));
            for smaller in route_reductions(&m.servers[i].routes[j]) {
                out.push(with(&mut |c| c.servers[i].routes[j] = smaller.clone()));
            }
        }
        if m.servers[i].default.is_some() {
            out.push(with(&mut |c| c.servers[i].default = None));
        }
        if m.servers[i].protocol.is_some() {
            out.push(with(&mut |c| c.servers[i].protocol = None));
        }
        if m.servers[i].ports.len() > 1 {
            for k in 0..m.servers[i].ports.len() {
                out.push(with(&mut |c| {
                    c.servers[i].ports.remove(k);
                }));
            }
        }
    }
    for i in 0..m.rules.len() {
        for k in 0..m.rules[i].froms.len() {
            out.push(with(&mut |c| {
                c.rules[i].froms.remove(k);
            }));
            for smaller in principal_reductions(&m.rules[i].froms[k]) {
                out.push(with(&mut |c| c.rules[i].froms[k] = smaller.clone()));
            }
        }
        if m.rules[i].targets.len() > 1 {
            for k in 0..m.rules[i].targets.len() {
                out.push(with(&mut |c| {
                    c.rules[i].targets.remove(k);
                }));
            }
        }
    }
    if let Some(e) = &m.egress {
        if e.default.is_some() {
            out.push(with(&mut |c| c.egress.as_mut().unwrap().default = None));
        }
        for i in 0..e.rules.len() {
            out.push(with(&mut |c| {
                c.egress.as_mut().unwrap().rules.remove(i);
            }));
            let r = &e.rules[i];
            if !r.hosts.is_empty() {
                out.push(with(&mut |c| c.egress.as_mut().unwrap().rules[i].hosts.clear()));
            }
            if r.nets.is_some() {
                out.push(with(&mut |c| c.egress.as_mut().unwrap().rules[i].nets = None));
            }
            if !r.ports.is_empty() {
                out.push(with(&mut |c| c.egress.as_mut().unwrap().rules[i].ports.clear()));
            }
        }
    }
    for i in 0..m.services.len() {
        let s = &m.services[i];
        for j in 0..s.routes.len() {
            out.push(with(&mut |c| {
                c.services[i].routes.remove(j);
            }));
            for smaller in route_reductions(&s.routes[j]) {
                out.push(with(&mut |c| c.services[i].routes[j] = smaller.clone()));
            }
        }
        for j in 0..s.authorities.len() {
            out.push(with(&mut |c| {
                c.services[i].authorities.remove(j);
            }));
        }
        for j in 0..s.backends.len() {
            out.push(with(&mut |c| {
                c.services[i].backends.remove(j);
            }));
            if !s.backends[j].endpoints.is_empty() {
                out.push(with(&mut |c| c.services[i].backends[j].endpoints.clear()));
            }
            if s.backends[j].failover.is_some() {
                out.push(with(&mut |c| c.services[i].backends[j].failover = None));
            }
        }
        if s.timeout.is_some() {
            out.push(with(&mut |c| c.services[i].timeout = None));
        }
        if s.retry.is_some() {
            out.push(with(&mut |c| c.services[i].retry = None));
        }
        if s.breaker.is_some() {
            out.push(with(&mut |c| c.services[i].breaker = None));
        }
    }
    out
}

fn request_reductions(r: &Request) -> Vec<Request> {
    let mut out = Vec::new();
    for i in 0..r.headers.len() {
        let mut c = r.clone();
        c.headers.remove(i);
        out.push(c);
    }
    if r.peer_identity.is_some() {
        out.push(Request { peer_identity: None, ..r.clone() });
    }
    if r.peer_ip.is_some() {
        out.push(Request { peer_ip: None, ..r.clone() });
    }
    if r.ip.is_some() && r.authority.is_some() {
        out.push(Request { ip: None, ..r.clone() });
    }
    out
}

/// Greedily removes parts of the policy and the request while the two
/// sides still disagree.
fn minimize(m: &Model, r: &Request, config: &Config) -> (Model, Request) {
    let mut model = m.clone();
    let mut request = r.clone();
    'outer: for _ in 0..400 {
        for c in model_reductions(&model) {
            if mismatch(&c, &request, config).is_some() {
                model = c;
                continue 'outer;
            }
        }
        for c in request_reductions(&request) {
            if mismatch(&model, &c, config).is_some() {
                request = c;
                continue 'outer;
            }
        }
        break;
    }
    (model, request)
}

// ---------------------------------------------------------------------------
// Coverage accounting (from the request, the model and the reference).
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    counts: BTreeMap<String, u64>,
    /// Counts of policies (not pairs) by category.
    policy_counts: BTreeMap<String, u64>,
    pairs: u64,
    policies: u64,
    /// Mismatches: (signature, report).
    mismatches: Vec<(String, String)>,
    mismatch_count: u64,
}

impl Stats {
    fn bump(&mut self, key: &str) {
        *self.counts.entry(key.to_string()).or_insert(0) += 1;
    }

    fn get(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    fn bump_policy(&mut self, key: &str) {
        *self.policy_counts.entry(key.to_string()).or_insert(0) += 1;
    }

    fn get_policy(&self, key: &str) -> u64 {
        self.policy_counts.get(key).copied().unwrap_or(0)
    }
}

/// SPIFFE ID check for accounting (the spec's rules, simply).
fn is_spiffe_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("spiffe://") else { return false };
    let (td, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let td_ok =
        !td.is_empty() && td.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let segment_ok = |s: &str| {
        !s.is_empty() && s != "." && s != ".." && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    td_ok
        && match path {
            None => true,
            Some(p) => p.split('/').all(segment_ok),
        }
}

/// Identity pattern match for accounting.
fn pattern_matches(pattern: &str, id: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if !is_spiffe_id(id) {
        return false;
    }
    let p: Vec<&str> = pattern.trim_start_matches("spiffe://").split('/').collect();
    let i: Vec<&str> = id.trim_start_matches("spiffe://").split('/').collect();
    for (k, ps) in p.iter().enumerate() {
        if *ps == "**" && k + 1 == p.len() {
            return i.len() > k;
        }
        match i.get(k) {
            Some(s) if (*ps == "*" && k > 0) || ps == s => {}
            _ => return false,
        }
    }
    i.len() == p.len()
}

fn pattern_form(p: &str) -> &'static str {
    if p == "*" {
        "id:\"*\""
    } else if p.ends_with("/**") {
        "id:**"
    } else if p.split('/').any(|s| s == "*") {
        "id:*-segment"
    } else {
        "id:literal"
    }
}

/// The IP that an authority's host literally is, if any.
fn authority_ip(a: &str) -> Option<IpAddr> {
    let (host, _) = authority_key(a);
    host.parse().ok()
}

fn account(m: &Model, req: &Req, reference: &Outcome, stats: &mut Stats) {
    let r = &req.r;
    stats.bump(req.kind.label());
    if let Some(ip) = r.peer_ip.filter(|_| r.direction == Direction::Inbound) {
        if ip.is_ipv6() {
            stats.bump("peer:ipv6");
        }
        if is_carrying(ip) {
            stats.bump("peer:ipv4-in-ipv6");
            let in_network = m.rules.iter().flat_map(|r| &r.froms).any(|p| match p {
                Principal::Network(inc, _) => inc.iter().any(|n| n.contains(carried(ip))),
                _ => false,
            });
            if in_network {
                stats.bump("peer:ipv4-in-ipv6-in-a-network");
            }
        }
    }
    if r.direction == Direction::Outbound {
        let ip = r.ip.or_else(|| r.authority.as_deref().and_then(authority_ip));
        if let Some(ip) = ip.filter(|ip| is_carrying(*ip)) {
            stats.bump("destination:ipv4-in-ipv6");
            let in_network = m.egress.iter().flat_map(|e| &e.rules).any(|r| match &r.nets {
                Some((inc, _)) => inc.iter().any(|n| n.contains(carried(ip))),
                None => false,
            });
            if in_network {
                stats.bump("destination:ipv4-in-ipv6-in-a-network");
            }
        }
    }
    if let Some(p) = &r.path {
        let kinds = attack_kinds(p);
        if !kinds.is_empty() {
            stats.bump("attack:any");
        }
        for k in kinds {
            stats.bump(k);
        }
    }
    let d = match reference {
        Outcome::Decision(d) => d,
        Outcome::Error(kind, _) => {
            stats.bump("outcome:error");
            stats.bump(&format!("error:{kind}"));
            if req.kind == Kind::InConnection {
                stats.bump("in:connection-to-http-server (error)");
            }
            return;
        }
        Outcome::Panic(_) => {
            stats.bump("outcome:reference-panic");
            return;
        }
    };
    stats.bump(&format!("reason:{}", d.reason));
    stats.bump(if d.allow { "decision:allow" } else { "decision:deny" });
    if d.audit {
        stats.bump("audit:true");
    }
    if let Some(s) = d.http_status {
        stats.bump(&format!("http_status:{s}"));
    }
    if let Some(s) = d.grpc_status {
        stats.bump(&format!("grpc_status:{s}"));
    }
    if d.timeout_ms.is_some() {
        stats.bump("timeout_ms:set");
    }
    if d.backends.iter().any(|b| b.1 == 0) {
        stats.bump("backends:weight-0-listed");
    }
    let is_http = r.method.is_some() || r.path.is_some();
    match r.direction {
        Direction::Inbound => {
            let Some(server) = d.server.as_deref().and_then(|s| m.server(s)) else {
                stats.bump("in:no-server (mesh default)");
                return;
            };
            if server.proto() == Proto::Tcp {
                stats.bump(if is_http { "in:http-to-tcp-server" } else { "in:connection-to-tcp-server" });
            }
            if r.peer_identity.as_deref().is_some_and(|id| trust_domain_mismatch(m, &server.name, id)) {
                stats.bump("id:trust-domain-mismatch");
            }
            if !matches!(d.reason.as_str(), "rule" | "default") {
                return;
            }
            let taken = d.route.as_deref().and_then(|name| server.routes.iter().find(|r| r.name == name));
            if server.proto() != Proto::Tcp {
                match taken {
                    Some(route) => account_route(route, stats),
                    None => stats.bump("route:implicit"),
                }
            }
            // Identity forms that decided the deciding rule.
            if d.reason == "rule" {
                let rule = d.rule.as_deref().and_then(|n| m.rules.iter().find(|r| r.name == n));
                if let (Some(rule), Some(id)) = (rule, r.peer_identity.as_deref()) {
                    for p in &rule.froms {
                        match p {
                            Principal::Identity(ps) => {
                                for pat in ps.iter().filter(|pat| pattern_matches(pat, id)) {
                                    stats.bump(pattern_form(pat));
                                }
                            }
                            Principal::Namespace(ns) => {
                                let td = m.trust_domain().unwrap_or("");
                                if ns.iter().any(|n| pattern_matches(&format!("spiffe://{td}/ns/{n}/sa/*"), id)) {
                                    stats.bump("id:namespace");
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            // An `except` that excluded the peer from an applicable rule
            // that would have matched without it.
            if let Some(ip) = r.peer_ip.map(carried) {
                let excluded =
                    m.rules.iter().filter(|rule| rule.applies(&server.name, d.route.as_deref())).any(|rule| {
                        let excluded_here = rule.froms.iter().any(|p| match p {
                            Principal::Network(inc, exc) => {
                                inc.iter().any(|n| n.contains(ip)) && exc.iter().any(|n| n.contains(ip))
                            }
                            _ => false,
                        });
                        excluded_here && rule.froms.iter().all(|p| principal_matches_ignoring_except(m, p, r))
                    });
                if excluded {
                    stats.bump("except:excluded-peer");
                }
            }
        }
        Direction::Outbound => {
            if let Some(svc) = d.service.as_deref().and_then(|s| m.services.iter().find(|x| x.name == s)) {
                stats.bump("out:service-matched");
                if let Some(route) = d.route.as_deref().and_then(|n| svc.routes.iter().find(|r| r.name == n)) {
                    account_route(route, stats);
                }
                return;
            }
            if !matches!(d.reason.as_str(), "rule" | "default") {
                return;
            }
            let Some(egress) = &m.egress else {
                stats.bump("egress:no-block");
                return;
            };
            stats.bump(if d.reason == "rule" { "egress:rule" } else { "egress:default" });
            let ip = r.ip.or_else(|| r.authority.as_deref().and_then(authority_ip)).map(carried);
            if let Some(ip) = ip {
                // A destination rule that would have matched by its network,
                // but for an `except` (and its host patterns do not match).
                let host = r.authority.as_deref().map(|a| authority_key(a).0);
                let port = r.authority.as_deref().map_or(r.port.unwrap_or(0), |a| authority_key(a).1);
                let excluded = egress.rules.iter().any(|e| match &e.nets {
                    Some((inc, exc)) => {
                        let port_ok = e.ports.is_empty() || e.ports.iter().any(|&(a, b)| a <= port && port <= b);
                        let host_ok = host.as_deref().is_some_and(|h| e.hosts.iter().any(|p| host_matches(p, h)));
                        port_ok && !host_ok && inc.iter().any(|n| n.contains(ip)) && exc.iter().any(|n| n.contains(ip))
                    }
                    None => false,
                });
                if excluded {
                    stats.bump("except:excluded-destination");
                }
            }
        }
    }
}

/// Whether the peer satisfies a `from` clause, taking no account of
/// `except` (for accounting).
fn principal_matches_ignoring_except(m: &Model, p: &Principal, r: &Request) -> bool {
    let id = r.peer_identity.as_deref();
    match p {
        Principal::Any => true,
        Principal::Authenticated => id.is_some(),
        Principal::Identity(ps) => id.is_some_and(|id| ps.iter().any(|p| pattern_matches(p, id))),
        Principal::Namespace(ns) => match (id, m.trust_domain()) {
            (Some(id), Some(td)) => ns.iter().any(|n| pattern_matches(&format!("spiffe://{td}/ns/{n}/sa/*"), id)),
            _ => false,
        },
        Principal::Network(inc, _) => r.peer_ip.map(carried).is_some_and(|ip| inc.iter().any(|n| n.contains(ip))),
    }
}

/// Host pattern match (for accounting): `host` is lowercase without a
/// trailing dot.
fn host_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let p = p.strip_suffix('.').unwrap_or(&p);
    match p.strip_prefix("*.") {
        _ if p == "*" => true,
        Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
        None => host == p,
    }
}

/// Whether `id` is a SPIFFE ID that some identity pattern or namespace
/// of a rule on `server` would match but for its trust domain.
fn trust_domain_mismatch(m: &Model, server: &str, id: &str) -> bool {
    fn split(s: &str) -> Option<(&str, &str)> {
        s.strip_prefix("spiffe://").map(|rest| rest.split_once('/').unwrap_or((rest, "")))
    }
    let Some((id_td, id_path)) = split(id) else {
        return false;
    };
    let near_miss = |pattern: &str| {
        let Some((td, _)) = split(pattern) else {
            return false;
        };
        let moved = if id_path.is_empty() { format!("spiffe://{td}") } else { format!("spiffe://{td}/{id_path}") };
        td != id_td && is_spiffe_id(id) && pattern_matches(pattern, &moved)
    };
    m.rules.iter().filter(|rule| rule.targets.iter().any(|t| t.0 == server)).any(|rule| {
        rule.froms.iter().any(|p| match p {
            Principal::Identity(ps) => ps.iter().any(|p| near_miss(p)),
            Principal::Namespace(ns) => {
                let td = m.trust_domain().unwrap_or("");
                ns.iter().any(|n| near_miss(&format!("spiffe://{td}/ns/{n}/sa/*")))
            }
            _ => false,
        })
    })
}

fn account_route(route: &Route, stats: &mut Stats) {
    stats.bump(&format!("route:{}", route.path_kind()));
    if matches!(route.path, Some(PathCond::Grpc(_))) {
        stats.bump("route:grpc");
    }
    if !route.methods.is_empty() {
        stats.bump("route:with-method");
    }
    for (_, v) in &route.headers {
        stats.bump(&format!("header:{}", v.op()));
    }
    for (_, v) in &route.queries {
        stats.bump(&format!("query:{}", v.op()));
    }
}

// ---------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------

/// How many distinct mismatch shapes get minimized and reported in full.
const REPORTED_MISMATCHES: usize = 8;

/// Which fields differ, as a short signature for deduplication.
fn signature(req: &Req, expected: &Outcome, actual: &Outcome) -> String {
    let fields = match (expected, actual) {
        (Outcome::Decision(a), Outcome::Decision(b)) => {
            let mut f = Vec::new();
            macro_rules! cmp {
                ($($field:ident),*) => { $( if a.$field != b.$field { f.push(stringify!($field)); } )* };
            }
            cmp!(allow, reason, server, route, rule, audit, http_status, grpc_status, service, backends, timeout_ms);
            f.join(",")
        }
        (Outcome::Decision(_), Outcome::Error(..)) => "reference decides, runtime errs".to_string(),
        (Outcome::Error(..), Outcome::Decision(_)) => "reference errs, runtime decides".to_string(),
        (Outcome::Error(a, _), Outcome::Error(b, _)) => format!("error kinds: reference {a}, runtime {b}"),
        _ => "panic".to_string(),
    };
    format!("{} [{fields}]", req.kind.label())
}

/// Runs one case: one policy and its requests.
fn run_case(seed: u64, stats: &mut Stats, verbose: bool) -> Result<(), String> {
    let mut g = Gen(seed);
    let model = gen_model(&mut g);
    let text = model_text(&model);
    let default_config = Config::default();
    let (policy, folder) = sources(&model).map_err(|e| format!("case seed {seed}:\n{text}\n{e}"))?;
    // The compiler's input: the folder when there is one.
    let input = folder.as_ref().unwrap_or(&policy);
    let default_bytes = compile_policy(input, &default_config)
        .map_err(|e| format!("generator bug (case seed {seed}):\n{text}\n{e}"))?;
    // Some policies are compiled with a small DFA size limit, so that the
    // compiler splits pattern sets into several DFAs (chunks). A single
    // regex over the limit is `invalid-regex`; then the default is used.
    let mut config = default_config;
    let mut config_label = "config:default";
    let mut bytes = default_bytes;
    if g.chance(35) {
        let small = Config { dfa_size_limit: *g.pick(&[1usize << 12, 1 << 14, 1 << 16]), ..Config::default() };
        match compile_policy(input, &small) {
            Ok(small_bytes) => {
                let dfas = |b: &AlignedBytes| -> Result<usize, String> {
                    let summary = Runtime::new(b)?.bundle.summary();
                    Ok(summary
                        .lines
                        .iter()
                        .find_map(|l| l.strip_prefix("automata: ")?.split(' ').next()?.parse().ok())
                        .unwrap_or(0))
                };
                let chunked = dfas(&small_bytes).map_err(|e| format!("case seed {seed} (small limit): {e}\n{text}"))?
                    > dfas(&bytes).map_err(|e| format!("case seed {seed}: {e}\n{text}"))?;
                config_label = if chunked { "config:small-dfa-limit-chunked" } else { "config:small-dfa-limit" };
                config = small;
                bytes = small_bytes;
            }
            Err(_) => config_label = "config:small-dfa-limit-rejected",
        }
    }
    let mut rt = Runtime::new(&bytes).map_err(|e| format!("case seed {seed}: {e}\n{text}"))?;
    let n = g.range(20, 30);
    *stats.counts.entry(config_label.to_string()).or_insert(0) += n as u64;
    let requests: Vec<Req> = (0..n).map(|_| gen_request(&mut g, &model)).collect();
    stats.policies += 1;
    if verbose {
        println!("case seed {seed}:\n{text}");
    }
    if model.files.is_some() {
        stats.bump_policy("layout:folder");
    }
    account_settings(&model, stats);
    for (field, detail) in compare_settings(&model, &policy, &rt.bundle) {
        stats.mismatch_count += 1;
        let sig = format!("service settings: {field}");
        if stats.mismatches.iter().all(|(s, _)| *s != sig) && stats.mismatches.len() < REPORTED_MISMATCHES {
            let report = format!(
                "MISMATCH {sig} (case seed {seed}; rerun with SLUICE_DIFF_CASE={seed})\npolicy:\n{text}{detail}"
            );
            stats.mismatches.push((sig, report));
        }
    }
    // Some policies are broken on purpose: the compiler must reject them
    // with the diagnostic code the spec gives the break, and no other error.
    if g.chance(12) {
        let (broken, code) = gen_breakage(&mut g, &model);
        stats.bump_policy(&format!("diagnostic:{code}"));
        if let Some(problem) = check_breakage(&broken, code) {
            stats.mismatch_count += 1;
            let sig = format!("diagnostic {code}");
            if stats.mismatches.iter().all(|(s, _)| *s != sig) && stats.mismatches.len() < REPORTED_MISMATCHES {
                let report = format!(
                    "MISMATCH {sig} (case seed {seed}; rerun with SLUICE_DIFF_CASE={seed})\n\
                     broken policy:\n{}{problem}",
                    model_text(&broken)
                );
                stats.mismatches.push((sig, report));
            }
        }
    }
    for req in &requests {
        let expected = run_reference(&policy, &req.r);
        let actual = rt.run(&req.r);
        stats.pairs += 1;
        account(&model, req, &expected, stats);
        if verbose {
            println!(
                "{}\n  reference: {}\n  runtime:   {}",
                request_json(&req.r),
                outcome_text(&expected),
                outcome_text(&actual)
            );
        }
        if expected.agrees(&actual) {
            continue;
        }
        stats.mismatch_count += 1;
        let sig = signature(req, &expected, &actual);
        if stats.mismatches.iter().any(|(s, _)| *s == sig) || stats.mismatches.len() >= REPORTED_MISMATCHES {
            continue;
        }
        let (small_model, small_req) = minimize(&model, &req.r, &config);
        let (e2, a2) = mismatch(&small_model, &small_req, &config).unwrap_or((expected.clone(), actual.clone()));
        let mut report = String::new();
        let _ = writeln!(report, "MISMATCH {sig} (case seed {seed}; rerun with SLUICE_DIFF_CASE={seed})");
        if config_label != "config:default" {
            let _ = writeln!(report, "compiled with dfa_size_limit {} (SLUICE_DIFF_DFA_LIMIT)", config.dfa_size_limit);
        }
        let _ = writeln!(report, "minimal policy:\n{}", model_text(&small_model));
        let _ = writeln!(report, "request: {}", request_json(&small_req));
        let _ = writeln!(report, "reference: {}", outcome_text(&e2));
        let _ = writeln!(report, "runtime:   {}", outcome_text(&a2));
        let _ = writeln!(report, "original request: {}", request_json(&req.r));
        stats.mismatches.push((sig, report));
    }
    Ok(())
}

/// A request from the JSON of spec section 10 (for hand-written checks).
fn request_from_json(v: &Value) -> Request {
    let s = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let ip = |o: &Value, k: &str| s(o, k).map(|x| x.parse::<IpAddr>().expect("an IP address"));
    let mut r =
        if s(v, "direction").as_deref() == Some("outbound") { Request::outbound() } else { Request::inbound(0) };
    r.port = v.get("port").and_then(Value::as_u64).map(|p| u16::try_from(p).expect("a port"));
    r.method = s(v, "method");
    r.path = s(v, "path");
    r.authority = s(v, "authority");
    r.ip = ip(v, "ip");
    r.headers = match v.get("headers") {
        Some(Value::Object(map)) => {
            map.iter().map(|(k, x)| (k.clone(), x.as_str().unwrap_or("").to_string())).collect()
        }
        Some(Value::Array(pairs)) => pairs
            .iter()
            .map(|p| (p[0].as_str().unwrap_or("").to_string(), p[1].as_str().unwrap_or("").to_string()))
            .collect(),
        _ => Vec::new(),
    };
    if let Some(peer) = v.get("peer") {
        r.peer_ip = ip(peer, "ip");
        r.peer_identity = s(peer, "identity");
    }
    r
}

/// Runs hand-written requests against a hand-written policy on both sides.
fn run_files(policy_file: &str, requests_file: &str) {
    let text = std::fs::read_to_string(policy_file).expect("the policy file");
    let config = match env_u64("SLUICE_DIFF_DFA_LIMIT") {
        Some(limit) => Config { dfa_size_limit: usize::try_from(limit).unwrap_or(usize::MAX), ..Config::default() },
        None => Config::default(),
    };
    let (policy, bytes) = build(&text, &config).unwrap_or_else(|e| panic!("{e}"));
    let mut rt = Runtime::new(&bytes).unwrap_or_else(|e| panic!("{e}"));
    for line in std::fs::read_to_string(requests_file).expect("the requests file").lines() {
        if line.trim().is_empty() {
            continue;
        }
        let r = request_from_json(&serde_json::from_str(line).expect("a JSON request"));
        let (e, a) = (run_reference(&policy, &r), rt.run(&r));
        let verdict = if e.agrees(&a) { "agree" } else { "MISMATCH" };
        println!(
            "{}
  {verdict}
  reference: {}
  runtime:   {}",
            request_json(&r),
            outcome_text(&e),
            outcome_text(&a)
        );
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}")))
}

/// Minimum number of pairs per category, in thousandths of all pairs.
const MIN_SHARES: &[(&str, u64)] = &[
    ("reason:rule", 10),
    ("reason:default", 10),
    ("reason:service", 10),
    ("reason:no-route", 10),
    ("reason:bad-path", 10),
    ("outcome:error", 10),
    ("decision:allow", 100),
    ("decision:deny", 100),
    ("audit:true", 10),
    ("route:exact", 10),
    ("route:prefix", 10),
    ("route:regex", 10),
    ("route:none", 10),
    ("route:implicit", 10),
    ("route:with-method", 10),
    ("id:literal", 5),
    ("id:*-segment", 5),
    ("id:**", 5),
    ("id:\"*\"", 5),
    ("id:namespace", 5),
    ("except:excluded-peer", 10),
    ("except:excluded-destination", 5),
    ("header:=", 10),
    ("header:~", 10),
    ("header:present", 10),
    ("query:=", 10),
    ("query:~", 10),
    ("query:present", 10),
    ("attack:any", 30),
    ("attack:..", 10),
    ("attack:%2e", 10),
    ("attack:%2f", 5),
    ("attack://", 5),
    ("attack:backslash", 5),
    ("grpc_status:7", 10),
    ("grpc_status:12", 5),
    ("grpc_status:13", 3),
    ("http_status:403", 10),
    ("http_status:404", 10),
    ("http_status:400", 10),
    ("egress:rule", 10),
    ("egress:default", 10),
    ("egress:no-block", 5),
    ("req:tunnel", 30),
    ("req:outbound-tcp", 30),
    ("in:connection-to-tcp-server", 20),
    ("in:http-to-tcp-server", 10),
    ("in:connection-to-http-server (error)", 5),
    ("in:no-server (mesh default)", 10),
    ("out:service-matched", 30),
    ("timeout_ms:set", 5),
    ("backends:weight-0-listed", 3),
    ("config:small-dfa-limit-chunked", 10),
    ("error:connection-to-http-server", 10),
    ("error:incomplete", 10),
    ("error:bad-authority", 5),
    ("peer:ipv6", 100),
    ("peer:ipv4-in-ipv6", 30),
    ("peer:ipv4-in-ipv6-in-a-network", 10),
    ("destination:ipv4-in-ipv6", 20),
    ("destination:ipv4-in-ipv6-in-a-network", 3),
    ("id:trust-domain-mismatch", 20),
    ("route:grpc", 10),
];

/// Minimum number of policies per category, in thousandths of all policies.
const MIN_POLICY_SHARES: &[(&str, u64)] = &[
    ("layout:folder", 200),
    ("diagnostic:any", 60),
    ("diagnostic:invalid-network", 15),
    ("settings:service-retry", 50),
    ("settings:route-retry", 50),
    ("settings:breaker", 50),
    ("settings:endpoints>1", 50),
    ("settings:failover", 30),
    ("settings:identity", 50),
    ("settings:cluster", 50),
    ("settings:max-in-flight", 50),
];

/// Policies of the run with a fresh seed (the fixed run has 700).
const FRESH_CASES: u64 = 250;

/// Runs `cases` policies with case seeds drawn from `rng`, prints the
/// coverage tables, and checks that there is no mismatch and that the
/// generator covered what it should: at least the minimum shares divided
/// by `slack` (a run with a fresh seed is smaller and cannot be tuned, so
/// it gets more room for chance). `label` names the run in messages.
fn run_many(cases: u64, rng: TestRng, label: &str, slack: u64) {
    let start = Instant::now();
    let stats = RefCell::new(Stats::default());
    let config = ProptestConfig {
        cases: u32::try_from(cases).unwrap_or(u32::MAX),
        failure_persistence: None,
        max_shrink_iters: 0,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&proptest::num::u64::ANY.no_shrink(), |seed| {
        run_case(seed, &mut stats.borrow_mut(), false).map_err(proptest::test_runner::TestCaseError::fail)
    });
    let mut stats = stats.into_inner();
    let elapsed = start.elapsed();
    let diagnostics: u64 =
        stats.policy_counts.iter().filter(|(k, _)| k.starts_with("diagnostic:")).map(|(_, v)| *v).sum();
    stats.policy_counts.insert("diagnostic:any".to_string(), diagnostics);

    println!(
        "differential test ({label}): {} policies, {} pairs, {:.1} s",
        stats.policies,
        stats.pairs,
        elapsed.as_secs_f64()
    );
    println!("{:<42} {:>7} {:>7}", "category", "pairs", "share");
    for (k, v) in &stats.counts {
        println!("{k:<42} {v:>7} {:>6.2}%", *v as f64 * 100.0 / stats.pairs.max(1) as f64);
    }
    println!("{:<42} {:>7} {:>7}", "category", "policies", "share");
    for (k, v) in &stats.policy_counts {
        println!("{k:<42} {v:>7} {:>6.2}%", *v as f64 * 100.0 / stats.policies.max(1) as f64);
    }
    for (_, report) in &stats.mismatches {
        println!("\n{report}");
    }
    if let Err(e) = result {
        panic!("{label}: {e}");
    }
    assert_eq!(
        stats.mismatch_count, 0,
        "{label}: {} mismatches in {} pairs and {} policies; the first of each shape is printed above",
        stats.mismatch_count, stats.pairs, stats.policies
    );
    assert!(stats.pairs >= cases * 20, "{label}: too few pairs: {}", stats.pairs);
    if cases >= 200 {
        let mut short: Vec<String> = MIN_SHARES
            .iter()
            .filter(|(k, min)| stats.get(k) * 1000 * slack < min * stats.pairs)
            .map(|(k, min)| {
                let want = *min as f64 / 10.0 / slack as f64;
                format!("{k}: {} pairs, want at least {want:.2}%", stats.get(k))
            })
            .collect();
        short.extend(
            MIN_POLICY_SHARES
                .iter()
                .filter(|(k, min)| stats.get_policy(k) * 1000 * slack < min * stats.policies)
                .map(|(k, min)| {
                    let want = *min as f64 / 10.0 / slack as f64;
                    format!("{k}: {} policies, want at least {want:.2}%", stats.get_policy(k))
                }),
        );
        assert!(short.is_empty(), "{label}: the generator drifted into trivial cases:\n{}", short.join("\n"));
    }
}

/// A seed that differs from run to run (the clock and the process id).
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Gen(nanos ^ (u64::from(std::process::id()) << 32)).next()
}

/// The runner's RNG for a seed.
fn seeded_rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Whether a single case or hand-written files were asked for: the fixed
/// run handles those, the fresh-seed run stands aside.
fn one_off() -> bool {
    std::env::var_os("SLUICE_DIFF_CASE").is_some()
        || (std::env::var_os("SLUICE_DIFF_POLICY").is_some() && std::env::var_os("SLUICE_DIFF_REQUESTS").is_some())
}

#[test]
fn runtime_agrees_with_reference() {
    if let (Ok(p), Ok(r)) = (std::env::var("SLUICE_DIFF_POLICY"), std::env::var("SLUICE_DIFF_REQUESTS")) {
        run_files(&p, &r);
        return;
    }
    if let Some(seed) = env_u64("SLUICE_DIFF_CASE") {
        let mut stats = Stats::default();
        run_case(seed, &mut stats, true).unwrap_or_else(|e| panic!("{e}"));
        for (_, report) in &stats.mismatches {
            println!("{report}");
        }
        assert_eq!(stats.mismatch_count, 0, "{} mismatches", stats.mismatch_count);
        return;
    }
    let cases = env_u64("SLUICE_DIFF_CASES").unwrap_or(700);
    run_many(cases, TestRng::deterministic_rng(RngAlgorithm::ChaCha), "fixed seed", 1);
}

/// The same check on other policies each run: a fresh seed, printed, that
/// `SLUICE_DIFF_SEED` replays.
#[test]
fn runtime_agrees_with_reference_fresh_seed() {
    if one_off() {
        return;
    }
    let (seed, replay) = match env_u64("SLUICE_DIFF_SEED") {
        Some(seed) => (seed, true),
        None => (fresh_seed(), false),
    };
    let cases = env_u64("SLUICE_DIFF_FRESH_CASES").unwrap_or(FRESH_CASES);
    println!(
        "differential test: {} seed {seed} (replay: SLUICE_DIFF_SEED={seed} \
         cargo test -p sluice-reference --test differential fresh_seed -- --nocapture)",
        if replay { "replaying" } else { "fresh" }
    );
    // Also written to stderr directly, past the test harness's capture, so
    // that the CI log shows the seed of a run that passed too.
    let _ = writeln!(std::io::stderr(), "differential test: seed {seed} (SLUICE_DIFF_SEED={seed} replays it)");
    run_many(cases, seeded_rng(seed), &format!("seed {seed}; replay with SLUICE_DIFF_SEED={seed}"), 2);
}
