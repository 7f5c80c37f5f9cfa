//! Pools of names, paths, identities, hosts and addresses the generator draws from.

pub(crate) const SERVER_NAMES: &[&str] = &["web", "api", "db", "grpc", "tcp", "admin"];
pub(crate) const ROUTE_NAMES: &[&str] = &[
    "r1", "health", "prefix", "default", "v1", "all", "any", "metrics",
];
pub(crate) const RULE_NAMES: &[&str] = &[
    "allow-web",
    "deny",
    "any",
    "r-a",
    "r-b",
    "scrape",
    "quarantine",
    "authenticated",
];
pub(crate) const EGRESS_RULE_NAMES: &[&str] = &["google", "imds", "gh", "allow", "db", "all"];
pub(crate) const SERVICE_NAMES: &[&str] = &["payments", "search", "users", "service"];
pub(crate) const BACKEND_NAMES: &[&str] = &["east", "west", "canary", "internal", "v2"];

/// Port slots: each server takes whole slots, so servers never overlap.
pub(crate) const PORT_SLOTS: &[&[(u16, u16)]] = &[
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
pub(crate) const UNCOVERED_PORTS: &[u16] = &[7000, 1234, 8084, 9100, 7071, 0];

pub(crate) const SEGMENTS: &[&str] = &["a", "b", "api", "v1", "x"];
pub(crate) const PATH_REGEXES: &[&str] = &[
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
pub(crate) const REGEX_SAMPLE_PATHS: &[&str] = &[
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
pub(crate) const GRPC_SERVICES: &[&str] = &["pkg.Svc", "pkg.v1.Other"];
pub(crate) const GRPC_METHODS: &[&str] = &["Get", "List"];
pub(crate) const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD"];
pub(crate) const REQUEST_METHODS: &[&str] =
    &["GET", "POST", "PUT", "DELETE", "HEAD", "get", "PATCH"];

pub(crate) const POLICY_HEADER_NAMES: &[&str] = &[
    "x-tenant",
    "X-Tenant",
    "x-canary",
    "X-CANARY",
    "x-env",
    "Content-Type",
];
pub(crate) const HEADER_VALUES: &[&str] = &[
    "acme", "ACME", "beta", "1", "", "v1", "v12", "a,b", "x y", "é", " acme", "É", "acme-x",
];
pub(crate) const HEADER_REGEXES: &[&str] = &[
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
pub(crate) const CONTENT_TYPES: &[&str] = &[
    "application/grpc",
    "application/grpc+proto",
    "Application/GRPC",
    "application/json",
    "application/grp",
];

pub(crate) const QUERY_KEYS: &[&str] = &["mode", "q", "a", "k y"];
pub(crate) const REQUEST_QUERY_KEYS: &[&str] =
    &["mode", "q", "a", "x", "b", "k%20y", "k y", "k+y", "M%6fde"];
pub(crate) const QUERY_EQ_VALUES: &[&str] = &["fast", "1", "", "1+2", "a b", "12"];
pub(crate) const QUERY_REGEXES: &[&str] = &["[0-9]+", "fa.*", ".*", "s(low|x)", r"\w+"];
pub(crate) const QUERY_RAW_VALUES: &[&str] = &[
    "fast", "slow", "1", "", "1+2", "f%61st", "%ff", "%zz", "a%20b", "a b", "12", "%2B", "sx",
    "%C3%A9", "%", "%4", "b=c", "%66ast",
];

pub(crate) const TRUST_DOMAINS: &[&str] = &["td.one", "td-two"];
pub(crate) const NAMESPACES: &[&str] = &["shop", "mon", "ns1"];
pub(crate) const ACCOUNTS: &[&str] = &["web", "api", "cron"];

pub(crate) const NETS: &[&str] = &[
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
pub(crate) const EXCEPT_NETS: &[&str] = &[
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
pub(crate) const IPS_V4: &[&str] = &[
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
pub(crate) const IPS_V6: &[&str] = &[
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

pub(crate) const HOST_PATTERNS: &[&str] = &[
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
pub(crate) const EGRESS_HOSTS: &[&str] = &[
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
pub(crate) const EGRESS_PORT_SETS: &[&[(u16, u16)]] = &[
    &[(443, 443)],
    &[(80, 80)],
    &[(80, 80), (443, 443)],
    &[(8000, 8999)],
    &[(5432, 5432)],
    &[(1, 1024)],
];
pub(crate) const OUT_PORTS: &[u16] = &[443, 80, 5432, 8443, 22, 8080];

pub(crate) const SERVICE_HOSTS: &[&str] = &[
    "pay.svc",
    "Search",
    "users.prod.svc",
    "api.example.com",
    "10.1.5.7",
    "[2001:db8:1:5::7]",
];
pub(crate) const ENDPOINTS: &[&str] = &[
    "10.0.1.10:8080",
    "10.0.1.11:8080",
    "10.0.1.10:80",
    "[2001:db8::10]:8080",
    "[::ffff:10.0.1.12]:8080",
    "\"east.svc:8080\"",
    "\"East.Svc.:9000\"",
];
pub(crate) const BACKEND_IDENTITIES: &[&str] =
    &["spiffe://td.one/ns/shop/sa/api", "spiffe://td-two/x"];
pub(crate) const CLUSTERS: &[&str] = &["east", "West-2", "", "eu/1"];
pub(crate) const RETRY_CONDS: &[&str] = &[
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
pub(crate) const BACKOFFS: &[(&str, &str)] = &[
    ("1s", "60s"),
    ("100ms", "2s"),
    ("0s", "0s"),
    ("5s", "5s"),
    ("1m", "1h"),
];
pub(crate) const DURATIONS: &[(&str, u64)] = &[
    ("500ms", 500),
    ("2s", 2000),
    ("1m", 60_000),
    ("1h", 3_600_000),
    ("1500ms", 1500),
    ("0s", 0),
];

/// Malformed or odd authorities (both sides must agree on error versus decision).
pub(crate) const BAD_AUTHORITIES: &[&str] = &[
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
    "a\"b",
    "a<b>",
    "a{b}",
    "a|b",
    "a^b",
    "a`b",
    "a#b",
    "a?b",
    "é.com",
    "a\\b",
    "a[b]",
    // A port with leading zeros is its value.
    "h:000080",
];
pub(crate) const INVALID_IDENTITIES: &[&str] = &[
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
