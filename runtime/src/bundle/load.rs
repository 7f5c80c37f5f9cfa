//! Bundle bytes to a [`Bundle`]: every byte checked, DFAs borrowed.

use super::read::Reader;
use super::schema::Access;
use super::*;
use crate::literals::LiteralTable;
use regex_automata::dfa::Automaton;
use regex_automata::util::start;
use regex_automata::Anchored;

/// Why bundle bytes were rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// Shorter than its header or its own length fields say.
    Truncated,
    /// Not a bundle: the magic bytes are wrong.
    BadMagic,
    /// Written in a format version this runtime does not read (see
    /// `docs/bundle.md`, "Format versions").
    UnsupportedVersion {
        /// The version in the bundle's header.
        found: u32,
        /// The version this runtime reads ([`FORMAT_VERSION`]).
        supported: u32,
    },
    /// The content hash does not match: the bytes were changed.
    HashMismatch {
        /// The hash in the header.
        expected: u64,
        /// The hash of the bytes.
        actual: u64,
    },
    /// The bytes do not start at an 8-byte aligned address (see [`AlignedBytes`]).
    Misaligned,
    /// A table is inconsistent.
    Invalid(&'static str),
    /// An automaton failed validation.
    Dfa(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Truncated => f.write_str("the bundle is truncated"),
            LoadError::BadMagic => f.write_str("not a sluice bundle (bad magic bytes)"),
            LoadError::UnsupportedVersion { found, supported } => write!(
                f,
                "bundle format version `{found}` is not supported: this runtime reads version `{supported}`"
            ),
            LoadError::HashMismatch { expected, actual } => write!(
                f,
                "the bundle is corrupt: content hash {actual:016x} does not match {expected:016x}"
            ),
            LoadError::Misaligned => f.write_str("the bundle bytes are not 8-byte aligned"),
            LoadError::Invalid(what) => write!(f, "the bundle is invalid: {what}"),
            LoadError::Dfa(e) => write!(f, "the bundle holds an invalid automaton: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

pub(super) fn default_policy(code: u8) -> Result<DefaultPolicy, LoadError> {
    Ok(match code {
        0 => DefaultPolicy::Allow,
        1 => DefaultPolicy::Deny,
        2 => DefaultPolicy::Audit,
        3 => DefaultPolicy::Authenticated,
        _ => return Err(LoadError::Invalid("default")),
    })
}

struct Loader<'a> {
    dfas: Vec<Option<SetDfa<'a>>>,
}

impl<'a> Loader<'a> {
    /// Takes DFA `i` out of the directory: each DFA is used exactly once.
    fn take_dfa(&mut self, i: u32) -> Result<SetDfa<'a>, LoadError> {
        self.dfas
            .get_mut(i as usize)
            .and_then(Option::take)
            .ok_or(LoadError::Invalid("automaton index"))
    }

    fn dfa_set(
        &mut self,
        r: &mut Reader<'a>,
        field: &'static str,
    ) -> Result<DfaSet<'a>, LoadError> {
        let n = r.len(field, 4)?;
        let mut set = DfaSet::default();
        let mut first = 0u32;
        for _ in 0..n {
            let dfa = self.take_dfa(r.u32("automaton")?)?;
            set.first.push(first);
            first = first
                .checked_add(dfa.pattern_len() as u32)
                .ok_or(LoadError::Invalid("pattern count"))?;
            set.dfas.push(dfa);
        }
        Ok(set)
    }

    /// A pattern group: automata and, per pattern, the ranks of its routes.
    fn pattern_group(
        &mut self,
        r: &mut Reader<'a>,
        automata: &'static str,
        routes: &'static str,
    ) -> Result<(DfaSet<'a>, IdLists), LoadError> {
        let set = self.dfa_set(r, automata)?;
        check_anchored(&set)?;
        let patterns: usize = set.dfas.iter().map(|d| d.pattern_len()).sum();
        // Route ranks are checked once the route count is known.
        let lists = r.id_lists_flat(routes, u32::MAX as usize)?;
        if lists.len() != patterns {
            return Err(LoadError::Invalid(
                "pattern lists do not match the automata",
            ));
        }
        Ok((set, lists))
    }

    fn route_set(
        &mut self,
        r: &mut Reader<'a>,
        rules: usize,
        backends: usize,
        value_dfas: usize,
    ) -> Result<RouteSet<'a>, LoadError> {
        let n_literal = r.len("literal paths", 12)?;
        let mut literal = LiteralTable::with_capacity(n_literal, b'/')?;
        for _ in 0..n_literal {
            let key = r.bytes("path")?;
            // Route ranks are checked once the route count is known.
            let ids = literal.ids_mut();
            r.ids_into("exact routes", u32::MAX as usize, ids)?;
            let exact = ids.len();
            r.ids_into("prefix routes", u32::MAX as usize, ids)?;
            let prefix = ids.len();
            literal.push(key, [exact, prefix])?;
        }
        let (regex, regex_routes) =
            self.pattern_group(r, "regex path automata", "regex pattern routes")?;
        let any_routes = r.ids("routes without path", u32::MAX as usize)?;
        let n = r.len("routes", 8)?;
        let mut seen = vec![false; n];
        // Every route is in exactly one list, and the groups come in
        // precedence order (literal, regex, none), which the matcher relies on.
        let mut last_rank: Option<u32> = None;
        for group in [
            &[literal.ids()][..],
            &[regex_routes.all()][..],
            &[&any_routes[..]][..],
        ] {
            let mut group_max: Option<u32> = None;
            for l in group {
                for &rank in l.iter() {
                    let slot = seen
                        .get_mut(rank as usize)
                        .ok_or(LoadError::Invalid("route rank"))?;
                    if *slot {
                        return Err(LoadError::Invalid("route listed twice"));
                    }
                    *slot = true;
                    if last_rank.is_some_and(|last| rank <= last) {
                        return Err(LoadError::Invalid("route groups out of precedence order"));
                    }
                    group_max = group_max.max(Some(rank));
                }
            }
            if group_max.is_some() {
                last_rank = group_max;
            }
        }
        if seen.iter().any(|s| !s) {
            return Err(LoadError::Invalid("route without a path pattern"));
        }

        let mut routes = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.opt_str("name")?;
            let m = r.len("methods", 4)?;
            let mut methods = Vec::with_capacity(m);
            for _ in 0..m {
                methods.push(r.str("method")?);
            }
            let headers = self.conds(r, "headers", value_dfas)?;
            let queries = self.conds(r, "queries", value_dfas)?;
            let deny_rules = r.ids("deny rules", rules)?;
            let allow_rules = r.ids("allow rules", rules)?;
            let b = r.len("backends", 8)?;
            let mut backend_ids = Vec::with_capacity(b);
            let mut weighted = Vec::with_capacity(b);
            for _ in 0..b {
                let id = r.u32("backend")?;
                if id as usize >= backends {
                    return Err(LoadError::Invalid("backend index"));
                }
                backend_ids.push(id);
                // Names are filled in once the service's backends are known.
                weighted.push(WeightedBackend {
                    name: "",
                    id: BackendId(id),
                    weight: r.u32("weight")?,
                });
            }
            let timeout_ms = r.opt_u64("timeout ms")?;
            let retry = read_retry(r)?;
            routes.push(Route {
                name,
                methods,
                headers,
                queries,
                deny_rules,
                allow_rules,
                backends: weighted,
                backend_ids,
                timeout_ms,
                retry,
            });
        }
        Ok(RouteSet {
            literal,
            regex,
            regex_routes,
            any_routes,
            routes,
        })
    }

    fn conds(
        &mut self,
        r: &mut Reader<'a>,
        field: &'static str,
        value_dfas: usize,
    ) -> Result<Vec<Cond<'a>>, LoadError> {
        let n = r.len(field, 5)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.str("name")?;
            let value = match r.u8("value")? {
                0 => ValueCond::Exact(r.bytes("value")?),
                1 => {
                    let i = r.u32("value automaton")?;
                    if i as usize >= value_dfas {
                        return Err(LoadError::Invalid("value automaton index"));
                    }
                    ValueCond::Regex(i)
                }
                2 => ValueCond::Present,
                _ => return Err(LoadError::Invalid("value condition")),
            };
            v.push(Cond { name, value });
        }
        Ok(v)
    }

    fn net_table(
        &mut self,
        r: &mut Reader<'a>,
        targets_bound: usize,
    ) -> Result<NetTable, LoadError> {
        let mut t = NetTable::default();
        let mut raw: [Vec<(u128, u128, Vec<u32>)>; 2] = [Vec::new(), Vec::new()];
        for (fam, field) in raw.iter_mut().zip(["ipv4 intervals", "ipv6 intervals"]) {
            let n = r.len(field, 36)?;
            for _ in 0..n {
                let lo = r.u128("first")?;
                let hi = r.u128("last")?;
                let ids = r.ids("atoms", u32::MAX as usize)?;
                fam.push((lo, hi, ids));
            }
        }
        t.targets = r.id_lists("atom targets", targets_bound)?;
        let atoms = t.targets.len();
        for (fam, max) in raw.iter().zip([u32::MAX as u128, u128::MAX]) {
            let mut prev: Option<u128> = None;
            for (lo, hi, ids) in fam {
                if lo > hi || *hi > max || prev.is_some_and(|p| *lo <= p) {
                    return Err(LoadError::Invalid("network intervals"));
                }
                if ids.iter().any(|&i| i as usize >= atoms) {
                    return Err(LoadError::Invalid("network atom"));
                }
                prev = Some(*hi);
            }
        }
        let [v4, v6] = raw;
        t.v4 = v4
            .into_iter()
            .map(|(lo, hi, ids)| (lo as u32, hi as u32, ids))
            .collect();
        t.v6 = v6;
        Ok(t)
    }
}

pub(super) fn read_retry(r: &mut Reader<'_>) -> Result<Option<Retry>, LoadError> {
    if !r.bool("retry")? {
        return Ok(None);
    }
    let attempts = r.u32("attempts")?;
    let n = r.len("on", 3)?;
    let mut on = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = r.u8("condition")?;
        let v = r.u16("value")?;
        on.push(match kind {
            0 => RetryCond::ServerError,
            1 => RetryCond::GatewayError,
            2 => RetryCond::Reset,
            3 => RetryCond::Status(v),
            4 => RetryCond::Grpc(u8::try_from(v).map_err(|_| LoadError::Invalid("grpc status"))?),
            _ => return Err(LoadError::Invalid("retry condition")),
        });
    }
    let per_try_timeout_ms = r.opt_u64("per-try timeout ms")?;
    let budget_percent = r.u8("budget percent")?;
    Ok(Some(Retry {
        attempts,
        on,
        per_try_timeout_ms,
        budget_percent,
    }))
}

pub(super) fn read_breaker(r: &mut Reader<'_>) -> Result<Option<CircuitBreaker>, LoadError> {
    if !r.bool("circuit breaker")? {
        return Ok(None);
    }
    Ok(Some(CircuitBreaker {
        consecutive_failures: r.u32("consecutive failures")?,
        backoff_min_ms: r.u64("backoff min ms")?,
        backoff_max_ms: r.u64("backoff max ms")?,
        jitter_percent: r.u8("jitter percent")?,
    }))
}

fn check_anchored(set: &DfaSet<'_>) -> Result<(), LoadError> {
    let anchored = start::Config::new().anchored(Anchored::Yes);
    for d in &set.dfas {
        match d {
            SetDfa::Dense(d) => d.start_state(&anchored).map(drop),
            SetDfa::Sparse(d) => d.start_state(&anchored).map(drop),
        }
        .map_err(|e| LoadError::Dfa(e.to_string()))?;
    }
    Ok(())
}

impl<'a> Bundle<'a> {
    /// Validates `bytes` (magic, version, content hash, every table and
    /// automaton) and borrows them. `bytes` must start at an 8-byte aligned
    /// address (use [`AlignedBytes`]). Never panics.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Bundle<'a>, LoadError> {
        Self::load(bytes, false).map(|(bundle, _)| bundle)
    }

    /// [`Bundle::from_bytes`]; with `log`, also every named read of the
    /// tables, in order (see `schema.rs`).
    pub(crate) fn load(bytes: &'a [u8], log: bool) -> Result<(Bundle<'a>, Vec<Access>), LoadError> {
        if bytes.len() < HEADER_LEN {
            return Err(LoadError::Truncated);
        }
        if bytes[0..8] != MAGIC {
            return Err(LoadError::BadMagic);
        }
        let version = le_u32(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(LoadError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if le_u64(bytes, 24) != bytes.len() as u64 {
            return Err(LoadError::Truncated);
        }
        let expected = le_u64(bytes, 16);
        let actual = xxhash_rust::xxh3::xxh3_64(&bytes[24..]);
        if expected != actual {
            return Err(LoadError::HashMismatch { expected, actual });
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(8) {
            return Err(LoadError::Misaligned);
        }
        if le_u32(bytes, 12) != 0 {
            return Err(LoadError::Invalid("flags"));
        }
        let tables_len = le_u32(bytes, 32) as usize;
        let dfa_count = le_u32(bytes, 36) as usize;
        let dir = usize::try_from(le_u64(bytes, 40)).map_err(|_| LoadError::Truncated)?;
        let tables = bytes
            .get(HEADER_LEN..HEADER_LEN + tables_len)
            .ok_or(LoadError::Truncated)?;
        let dir_end = dfa_count
            .checked_mul(16)
            .and_then(|n| n.checked_add(dir))
            .ok_or(LoadError::Truncated)?;
        let directory = bytes.get(dir..dir_end).ok_or(LoadError::Truncated)?;
        if dir < HEADER_LEN + tables_len || !dir.is_multiple_of(8) {
            return Err(LoadError::Invalid("automaton directory"));
        }
        let mut dfas = Vec::with_capacity(dfa_count);
        let mut next_free = dir_end;
        for i in 0..dfa_count {
            let off =
                usize::try_from(le_u64(directory, i * 16)).map_err(|_| LoadError::Truncated)?;
            let len =
                usize::try_from(le_u64(directory, i * 16 + 8)).map_err(|_| LoadError::Truncated)?;
            if !off.is_multiple_of(8) || off < next_free {
                return Err(LoadError::Invalid("automaton offset"));
            }
            let end = off.checked_add(len).ok_or(LoadError::Truncated)?;
            let slice = bytes.get(off..end).ok_or(LoadError::Truncated)?;
            // A serialized DFA names its kind in its first bytes.
            let (dfa, read) = if slice.starts_with(SPARSE_LABEL) {
                sparse::DFA::from_bytes(slice).map(|(d, n)| (SetDfa::Sparse(d), n))
            } else {
                dense::DFA::from_bytes(slice).map(|(d, n)| (SetDfa::Dense(d), n))
            }
            .map_err(|e| LoadError::Dfa(e.to_string()))?;
            if read != len {
                return Err(LoadError::Invalid("automaton length"));
            }
            next_free = end;
            dfas.push(Some(dfa));
        }
        let mut loader = Loader { dfas };
        let mut r = Reader::new(tables);
        if log {
            r.start_log();
        }
        let mesh_default = default_policy(r.u8("mesh default")?)?;
        let n_values = r.len("value automata", 4)?;
        let mut value_dfas = Vec::with_capacity(n_values);
        for _ in 0..n_values {
            let SetDfa::Dense(dfa) = loader.take_dfa(r.u32("automaton")?)? else {
                return Err(LoadError::Invalid("value automaton not dense"));
            };
            if dfa.pattern_len() != 1 {
                return Err(LoadError::Invalid("value automaton"));
            }
            dfa.start_state(&start::Config::new().anchored(Anchored::Yes))
                .map_err(|e| LoadError::Dfa(e.to_string()))?;
            value_dfas.push(dfa);
        }
        let clause_count = r.u32("clause count")?;
        if clause_count as usize > bytes.len() {
            return Err(LoadError::Invalid("clause count"));
        }
        let cc = clause_count as usize;
        let authenticated_clauses = r.ids("authenticated clauses", cc)?;
        let n_domains = r.len("trust domains", 8)?;
        let mut identities: Vec<TrustDomainPatterns<'a>> = Vec::with_capacity(n_domains);
        for _ in 0..n_domains {
            let trust_domain = r.str("trust domain")?;
            if identities
                .last()
                .is_some_and(|last| last.trust_domain >= trust_domain)
            {
                return Err(LoadError::Invalid("trust domains out of order"));
            }
            let n_literal = r.len("literal identities", 16)?;
            let mut literals = LiteralTable::with_capacity(n_literal, b'/')?;
            for _ in 0..n_literal {
                let key = r.bytes("identity path")?;
                let ids = literals.ids_mut();
                r.ids_into("whole clauses", cc, ids)?;
                let whole = ids.len();
                r.ids_into("one-segment clauses", cc, ids)?;
                let one = ids.len();
                r.ids_into("segments clauses", cc, ids)?;
                let segments = ids.len();
                literals.push(key, [whole, one, segments])?;
            }
            let dfas = loader.dfa_set(&mut r, "identity automata")?;
            check_anchored(&dfas)?;
            let clauses = r.id_lists_flat("pattern clauses", cc)?;
            let patterns: usize = dfas.dfas.iter().map(|d| d.pattern_len()).sum();
            if clauses.len() != patterns {
                return Err(LoadError::Invalid("identity pattern lists"));
            }
            identities.push(TrustDomainPatterns {
                trust_domain,
                literals,
                dfas,
                clauses,
            });
        }
        let peer_nets = loader.net_table(&mut r, cc)?;

        let n_rules = r.len("rules", 6)?;
        let mut rules = Vec::with_capacity(n_rules);
        for _ in 0..n_rules {
            let name = r.str("name")?;
            let deny = r.bool("deny")?;
            let clauses = r.ids("clauses", cc)?;
            rules.push(Rule {
                name,
                deny,
                clauses,
            });
        }

        let n_servers = r.len("servers", 8)?;
        let mut servers = Vec::with_capacity(n_servers);
        let mut ports = Vec::new();
        let mut max_routes = 0;
        for si in 0..n_servers {
            let name = r.str("name")?;
            let protocol = match r.u8("protocol")? {
                0 => Protocol::Http,
                1 => Protocol::Grpc,
                2 => Protocol::Tcp,
                _ => return Err(LoadError::Invalid("protocol")),
            };
            let default = default_policy(r.u8("default")?)?;
            let server_ports = r.ports("ports")?;
            for &(a, b) in &server_ports {
                ports.push((a, b, si as u32));
            }
            let routes = loader.route_set(&mut r, n_rules, 0, value_dfas.len())?;
            if routes.routes.is_empty() {
                return Err(LoadError::Invalid("server without routes"));
            }
            max_routes = max_routes.max(routes.routes.len());
            servers.push(Server {
                name,
                protocol,
                default,
                ports: server_ports,
                routes,
            });
        }
        ports.sort_unstable();
        if ports.windows(2).any(|w| w[1].0 <= w[0].1) {
            return Err(LoadError::Invalid("overlapping server ports"));
        }

        let n_services = r.len("services", 8)?;
        let mut services = Vec::with_capacity(n_services);
        let mut authorities = Vec::new();
        for si in 0..n_services {
            let name = r.str("name")?;
            let n_auth = r.len("authorities", 6)?;
            for _ in 0..n_auth {
                let host = r.str("host")?;
                if host.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(LoadError::Invalid("authority host not lowercase"));
                }
                authorities.push((host, r.u16("port")?, si as u32));
            }
            let timeout_ms = r.opt_u64("timeout ms")?;
            let retry = read_retry(&mut r)?;
            let breaker = read_breaker(&mut r)?;
            let n_backends = r.len("backends", 8)?;
            let mut backends = Vec::with_capacity(n_backends);
            for _ in 0..n_backends {
                let bname = r.str("name")?;
                let n_ep = r.len("endpoints", 5)?;
                let mut endpoints = Vec::with_capacity(n_ep);
                for _ in 0..n_ep {
                    let kind = r.u8("endpoint")?;
                    let text = r.str("text")?;
                    endpoints.push(match kind {
                        0 => Endpoint::Addr(
                            text.parse()
                                .map_err(|_| LoadError::Invalid("endpoint address"))?,
                        ),
                        1 => Endpoint::Name(text),
                        _ => return Err(LoadError::Invalid("endpoint")),
                    });
                }
                let identity = r.opt_str("identity")?;
                let cluster = r.opt_str("cluster")?;
                let failover = match r.opt_u64("failover")? {
                    Some(f) if (f as usize) < n_backends => Some(f as u32),
                    Some(_) => return Err(LoadError::Invalid("failover index")),
                    None => None,
                };
                let max_in_flight = r.opt_u64("max in flight")?.map(|m| m as u32);
                backends.push(Backend {
                    name: bname,
                    endpoints,
                    identity,
                    cluster,
                    failover,
                    max_in_flight,
                });
            }
            let mut routes = loader.route_set(&mut r, 0, n_backends, value_dfas.len())?;
            for route in &mut routes.routes {
                for (wb, &id) in route.backends.iter_mut().zip(&route.backend_ids) {
                    wb.name = backends[id as usize].name;
                }
            }
            max_routes = max_routes.max(routes.routes.len());
            services.push(Service {
                name,
                timeout_ms,
                retry,
                breaker,
                backends,
                routes,
            });
        }
        authorities.sort_unstable();
        if authorities
            .windows(2)
            .any(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1)
        {
            return Err(LoadError::Invalid("two services with one authority"));
        }

        let egress = if r.bool("egress")? {
            let default_deny = r.bool("default deny")?;
            let n = r.len("rules", 8)?;
            let mut rules = Vec::with_capacity(n);
            let mut open_rules = Vec::new();
            for i in 0..n {
                let name = r.str("name")?;
                let deny = r.bool("deny")?;
                let ports = r.ports("ports")?;
                let any_destination = r.bool("any destination")?;
                if any_destination {
                    open_rules.push(i as u32);
                }
                rules.push(EgressRule { name, deny, ports });
            }
            let hosts = loader.dfa_set(&mut r, "host automata")?;
            check_anchored(&hosts)?;
            let host_rules = r.id_lists_flat("host pattern rules", n)?;
            let patterns: usize = hosts.dfas.iter().map(|d| d.pattern_len()).sum();
            if host_rules.len() != patterns {
                return Err(LoadError::Invalid("host pattern lists"));
            }
            let star_rules = r.ids("star rules", n)?;
            let nets = loader.net_table(&mut r, n)?;
            Some(Egress {
                default_deny,
                rules,
                hosts,
                host_rules,
                star_rules,
                open_rules,
                nets,
            })
        } else {
            None
        };
        if !r.is_empty() {
            return Err(LoadError::Invalid("trailing bytes in the tables"));
        }
        if loader.dfas.iter().any(Option::is_some) {
            return Err(LoadError::Invalid("unused automaton"));
        }
        let log = r.take_log();
        Ok((
            Bundle {
                bytes,
                hash: actual,
                mesh_default,
                clause_count,
                authenticated_clauses,
                identities,
                peer_nets,
                rules,
                servers,
                ports,
                services,
                authorities,
                egress,
                value_dfas,
                max_routes,
            },
            log,
        ))
    }
}
