//! Round trip of the runtime's bundle codec on generated contents: every
//! table the encoder writes, `Bundle::from_bytes` accepts and the decoder
//! reads back unchanged, and the loaded bundle's services say what was
//! encoded.

use sluice_compiler::automata::{build_dfa, Flavor};
use sluice_compiler::Config;
use sluice_runtime::bundle::encode::{
    Backend, Cond, Contents, Egress, EgressRule, Endpoint, LiteralIdentity, LiteralPath, Networks,
    Route, RouteSet, Rule, Server, Service, Tables, TrustDomain, ValueCond,
};
use sluice_runtime::bundle::{CircuitBreaker, DefaultPolicy, Protocol, Retry, RetryCond};
use sluice_runtime::{AlignedBytes, Bundle};
use sluice_testkit::Rng;

/// Builds contents that the loader accepts: every index in range, every
/// automaton used once, route ranks in precedence groups, sorted trust
/// domains and intervals, disjoint server ports and authorities.
struct Generator {
    rng: Rng,
    automata: Vec<Vec<u8>>,
    value_automata: u32,
}

impl Generator {
    fn name(&mut self) -> String {
        const PARTS: &[&str] = &["a", "b", "api", "é", "-", "x9", "ünï", "/"];
        let n = self.rng.range(1, 4);
        (0..n).map(|_| *self.rng.pick(PARTS)).collect()
    }

    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        self.rng.chance(50).then(|| f(self))
    }

    fn ids(&mut self, bound: usize, max: usize) -> Vec<u32> {
        if bound == 0 {
            return Vec::new();
        }
        let n = self.rng.range(0, max);
        (0..n).map(|_| self.rng.below(bound) as u32).collect()
    }

    fn default_policy(&mut self) -> DefaultPolicy {
        *self.rng.pick(&[
            DefaultPolicy::Allow,
            DefaultPolicy::Deny,
            DefaultPolicy::Audit,
            DefaultPolicy::Authenticated,
        ])
    }

    /// Automata over `patterns` distinct literals, in chunks; their indices.
    fn automata(&mut self, patterns: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut next = 0;
        while next < patterns {
            let take = self.rng.range(1, patterns - next);
            let literals: Vec<String> = (next..next + take).map(|i| format!("p{i}")).collect();
            let dfa = build_dfa(&literals, Flavor::Bytes, &Config::default()).expect("builds");
            let mut bytes = vec![0u8; dfa.write_to_len()];
            let n = dfa.write_to_little_endian(&mut bytes).expect("writes");
            bytes.truncate(n);
            out.push(self.automata.len() as u32);
            self.automata.push(bytes);
            next += take;
        }
        out
    }

    /// One list per pattern; each item (rank or target) in exactly one list.
    fn spread(&mut self, items: std::ops::Range<u32>, lists: usize) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); lists];
        for item in items {
            let at = self.rng.below(lists);
            out[at].push(item);
        }
        out
    }

    fn networks(&mut self, targets: usize) -> Networks {
        let atoms = self.rng.range(0, 3);
        let atom_targets = (0..atoms).map(|_| self.ids(targets, 3)).collect();
        let family = |max: u128, rng: &mut Rng| {
            let mut out = Vec::new();
            let mut lo: u128 = rng.below(1000) as u128;
            for _ in 0..rng.range(0, 3) {
                let hi = lo + rng.below(1 << 20) as u128;
                if hi > max {
                    break;
                }
                let covering = if atoms == 0 {
                    Vec::new()
                } else {
                    (0..rng.range(1, 2))
                        .map(|_| rng.below(atoms) as u32)
                        .collect()
                };
                out.push((lo, hi, covering));
                lo = hi + 1 + rng.below(1 << 20) as u128;
            }
            out
        };
        Networks {
            v4: family(u32::MAX as u128, &mut self.rng),
            v6: family(u128::MAX, &mut self.rng),
            atom_targets,
        }
    }

    fn retry(&mut self) -> Retry {
        let conds = [
            RetryCond::ServerError,
            RetryCond::GatewayError,
            RetryCond::Reset,
            RetryCond::Status(503),
            RetryCond::Grpc(14),
        ];
        Retry {
            attempts: self.rng.below(5) as u32,
            on: (0..self.rng.range(0, 3))
                .map(|_| *self.rng.pick(&conds))
                .collect(),
            per_try_timeout_ms: self.opt(|g| g.rng.next_u64()),
            budget_percent: self.rng.below(101) as u8,
        }
    }

    fn conds(&mut self) -> Vec<Cond> {
        (0..self.rng.range(0, 2))
            .map(|_| Cond {
                name: self.name(),
                value: match self.rng.below(3) {
                    0 => ValueCond::Exact(self.name().into_bytes()),
                    1 if self.value_automata > 0 => {
                        ValueCond::Regex(self.rng.below(self.value_automata as usize) as u32)
                    }
                    _ => ValueCond::Present,
                },
            })
            .collect()
    }

    fn route_set(&mut self, rules: usize, backends: usize, min_routes: usize) -> RouteSet {
        let n = self.rng.range(min_routes, 4) as u32;
        // Ranks: literal group first, then regex, then without path.
        let literal = self.rng.range(0, n as usize) as u32;
        let regex = self.rng.range(0, (n - literal) as usize) as u32;
        let literal_patterns = if literal == 0 {
            0
        } else {
            self.rng.range(1, literal as usize)
        };
        let regex_patterns = if regex == 0 {
            0
        } else {
            self.rng.range(1, regex as usize)
        };
        let regex_automata = self.automata(regex_patterns);
        // Each literal path has an exact and a prefix list.
        let mut lists = self.spread(0..literal, 2 * literal_patterns).into_iter();
        let literal_paths = (0..literal_patterns)
            .map(|i| LiteralPath {
                path: format!("/{}/{i}", self.name()).into_bytes(),
                exact: lists.next().unwrap_or_default(),
                prefix: lists.next().unwrap_or_default(),
            })
            .collect();
        RouteSet {
            literal_paths,
            regex_automata,
            regex_routes: self.spread(literal..literal + regex, regex_patterns),
            routes_without_path: (literal + regex..n).collect(),
            routes: (0..n)
                .map(|_| Route {
                    name: self.opt(Self::name),
                    methods: (0..self.rng.range(0, 2)).map(|_| self.name()).collect(),
                    headers: self.conds(),
                    queries: self.conds(),
                    deny_rules: self.ids(rules, 2),
                    allow_rules: self.ids(rules, 2),
                    backends: (0..if backends == 0 {
                        0
                    } else {
                        self.rng.range(0, 2)
                    })
                        .map(|_| (self.rng.below(backends) as u32, self.rng.below(100) as u32))
                        .collect(),
                    timeout_ms: self.opt(|g| g.rng.next_u64()),
                    retry: self.opt(Self::retry),
                })
                .collect(),
        }
    }

    fn contents(&mut self) -> Contents {
        self.automata.clear();
        self.value_automata = self.rng.range(0, 2) as u32;
        let value_automata: Vec<u32> = (0..self.value_automata)
            .flat_map(|_| self.automata(1))
            .collect();
        let clause_count = self.rng.range(0, 4);
        let mut domains: Vec<String> = (0..self.rng.range(0, 2)).map(|_| self.name()).collect();
        domains.sort();
        domains.dedup();
        let trust_domains = domains
            .into_iter()
            .map(|name| {
                let patterns = self.rng.range(1, 3);
                let literals = (0..self.rng.range(0, 2))
                    .map(|i| LiteralIdentity {
                        path: if i == 0 {
                            Vec::new()
                        } else {
                            format!("/{}", self.name()).into_bytes()
                        },
                        whole: self.ids(clause_count, 2),
                        one_segment: self.ids(clause_count, 2),
                        segments: self.ids(clause_count, 2),
                    })
                    .collect();
                TrustDomain {
                    name,
                    literals,
                    automata: self.automata(patterns),
                    pattern_clauses: (0..patterns).map(|_| self.ids(clause_count, 2)).collect(),
                }
            })
            .collect();
        let peer_networks = self.networks(clause_count);
        let rules: Vec<Rule> = (0..self.rng.range(0, 3))
            .map(|_| Rule {
                name: self.name(),
                deny: self.rng.chance(50),
                clauses: self.ids(clause_count, 2),
            })
            .collect();
        let mut port = 1u16;
        let servers = (0..self.rng.range(0, 2))
            .map(|_| {
                let first = port + self.rng.below(10) as u16;
                let last = first + self.rng.below(10) as u16;
                port = last + 1;
                Server {
                    name: self.name(),
                    protocol: *self
                        .rng
                        .pick(&[Protocol::Http, Protocol::Grpc, Protocol::Tcp]),
                    default: self.default_policy(),
                    ports: vec![(first, last)],
                    routes: self.route_set(rules.len(), 0, 1),
                }
            })
            .collect();
        let services = (0..self.rng.range(0, 2) as u16)
            .map(|s| {
                let backends: Vec<Backend> = (0..self.rng.range(0, 3))
                    .map(|_| Backend {
                        name: self.name(),
                        endpoints: vec![
                            Endpoint::Address("10.0.0.1:8080".to_string()),
                            Endpoint::Address("[::1]:443".to_string()),
                            Endpoint::Name("svc.example:80".to_string()),
                        ],
                        identity: self.opt(Self::name),
                        cluster: self.opt(Self::name),
                        failover: None,
                        max_in_flight: self.opt(|g| g.rng.below(1000) as u32),
                    })
                    .collect();
                let n = backends.len();
                let backends = backends
                    .into_iter()
                    .map(|b| Backend {
                        failover: (n > 0 && self.rng.chance(50)).then(|| self.rng.below(n) as u32),
                        ..b
                    })
                    .collect();
                Service {
                    name: self.name(),
                    authorities: vec![(format!("svc{s}.example"), 80 + s)],
                    timeout_ms: self.opt(|g| g.rng.next_u64()),
                    retry: self.opt(Self::retry),
                    breaker: self.opt(|g| CircuitBreaker {
                        consecutive_failures: g.rng.below(10) as u32,
                        backoff_min_ms: g.rng.next_u64(),
                        backoff_max_ms: g.rng.next_u64(),
                        jitter_percent: g.rng.below(101) as u8,
                    }),
                    backends,
                    routes: self.route_set(0, n, 0),
                }
            })
            .collect();
        let egress = self.opt(|g| {
            let n = g.rng.range(0, 3);
            let patterns = if n == 0 { 0 } else { g.rng.range(0, 2) };
            Egress {
                default_deny: g.rng.chance(50),
                rules: (0..n)
                    .map(|_| EgressRule {
                        name: g.name(),
                        deny: g.rng.chance(50),
                        ports: if g.rng.chance(50) {
                            vec![(443, 443), (8000, 8080)]
                        } else {
                            Vec::new()
                        },
                        any_destination: g.rng.chance(30),
                    })
                    .collect(),
                host_automata: g.automata(patterns),
                host_pattern_rules: (0..patterns).map(|_| g.ids(n, 2)).collect(),
                star_rules: g.ids(n, 2),
                networks: g.networks(n),
            }
        });
        Contents {
            tables: Tables {
                mesh_default: self.default_policy(),
                value_automata,
                clause_count: clause_count as u32,
                authenticated_clauses: self.ids(clause_count, 3),
                trust_domains,
                peer_networks,
                rules,
                servers,
                services,
                egress,
            },
            automata: std::mem::take(&mut self.automata),
        }
    }
}

#[test]
fn generated_contents_survive_encode_load_and_decode() {
    let mut g = Generator {
        rng: Rng::new(0x5eed_b0d1e),
        automata: Vec::new(),
        value_automata: 0,
    };
    let (mut automata, mut routes, mut backends, mut egress) = (0, 0, 0, 0);
    for case in 0..300 {
        let contents = g.contents();
        automata += contents.automata.len();
        routes += contents
            .tables
            .servers
            .iter()
            .map(|s| s.routes.routes.len())
            .sum::<usize>();
        backends += contents
            .tables
            .services
            .iter()
            .map(|s| s.backends.len())
            .sum::<usize>();
        egress += usize::from(contents.tables.egress.is_some());
        let bytes = contents.encode();
        let aligned = AlignedBytes::new(&bytes);
        let bundle = Bundle::from_bytes(aligned.as_bytes())
            .unwrap_or_else(|e| panic!("case {case}: {e}\n{contents:#?}"));
        let decoded = Contents::decode(aligned.as_bytes())
            .unwrap_or_else(|e| panic!("case {case}: {e}\n{contents:#?}"));
        assert_eq!(decoded, contents, "case {case}");
        assert_eq!(decoded.encode(), bytes, "case {case}");
        // What the loader made of the services is what was encoded.
        let names: Vec<&str> = bundle.service_names().collect();
        let encoded: Vec<&str> = contents
            .tables
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, encoded, "case {case}");
        for service in &contents.tables.services {
            let loaded = bundle.service(&service.name).expect("service");
            if names.iter().filter(|n| **n == service.name).count() > 1 {
                continue;
            }
            assert_eq!(loaded.timeout_ms, service.timeout_ms, "case {case}");
            assert_eq!(loaded.retry, service.retry.as_ref(), "case {case}");
            assert_eq!(loaded.breaker, service.breaker.as_ref(), "case {case}");
            assert_eq!(loaded.backends.len(), service.backends.len(), "case {case}");
            for (l, e) in loaded.backends.iter().zip(&service.backends) {
                assert_eq!(l.name, e.name, "case {case}");
                assert_eq!(l.identity, e.identity.as_deref(), "case {case}");
                assert_eq!(l.cluster, e.cluster.as_deref(), "case {case}");
                assert_eq!(l.failover, e.failover, "case {case}");
                assert_eq!(l.max_in_flight, e.max_in_flight, "case {case}");
                assert_eq!(l.endpoints.len(), e.endpoints.len(), "case {case}");
            }
        }
    }
    // The generator reaches every part of the tables.
    assert!(
        automata > 300 && routes > 100 && backends > 100 && egress > 50,
        "{automata} automata, {routes} server routes, {backends} backends, {egress} egress blocks"
    );
}
