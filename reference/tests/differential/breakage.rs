//! Policies broken on purpose, and the settings shares of a model.

use sluice_compiler::Config;

use crate::compare::sources;
use crate::generate::authority_key;
use crate::model::{Egress, EgressRule, Model, Net, Principal, Proto};
use crate::render::{quoted, raw};
use crate::requests::port_of;
use crate::rng::{Draw, Gen};
use crate::shares::Stats;

/// Networks inside `::ffff:0:0/96`, `64:ff9b::/96` or `::/96` (other than
/// `::/128` and `::1/128`): `invalid-network` (spec section 7, "Addresses").
pub(crate) const IPV4_CARRYING_NETS: &[&str] = &[
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
pub(crate) fn gen_breakage(g: &mut Gen, m: &Model) -> (Model, &'static str) {
    let mut b = m.clone();
    let server = g.pick(&m.servers).name.clone();
    let http_server = m
        .servers
        .iter()
        .find(|s| s.proto() != Proto::Tcp)
        .map(|s| s.name.clone());
    let svc = |body: &str| format!("service zz-extra {{ authority \"zz.extra\"  {body} }}");
    loop {
        let code = match g.weighted(&[40, 6, 6, 5, 5, 6, 5, 6, 4, 5, 8, 4, 5, 5, 5, 5]) {
            0 => {
                let bad = Net::parse(&g.s(IPV4_CARRYING_NETS));
                let with_network = b
                    .rules
                    .iter()
                    .position(|r| r.froms.iter().any(|p| matches!(p, Principal::Network(..))));
                match g.below(4) {
                    1 => b.extra.push(format!(
                        "deny zz-extra {{ to {server}  from network ::/0 except {} }}",
                        bad.text
                    )),
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
                    _ => b.extra.push(format!(
                        "allow zz-extra {{ to {server}  from network {} }}",
                        bad.text
                    )),
                }
                "invalid-network"
            }
            1 => {
                match g.below(3) {
                    0 if m.mesh.is_some() => b.extra.push("mesh { default allow }".to_string()),
                    0 => b
                        .extra
                        .extend(["mesh { }".to_string(), "mesh { default deny }".to_string()]),
                    1 if m.egress.is_some() => b.extra.push("egress { default allow }".to_string()),
                    _ => b.extra.push(svc(
                        "timeout 1s  timeout 2s  backend a { }  route r { to a }",
                    )),
                }
                "duplicate-statement"
            }
            2 => {
                match g.below(4) {
                    0 if !m.rules.is_empty() => {
                        let name = &g.pick(&m.rules).name;
                        b.extra
                            .push(format!("allow {name} {{ to {server}  from any }}"));
                    }
                    1 if !m.services.is_empty() => {
                        let name = &g.pick(&m.services).name;
                        b.extra.push(format!(
                            "service {name} {{ authority \"zz.extra\"  backend a {{ }}  route r {{ to a }} }}"
                        ));
                    }
                    2 => b
                        .extra
                        .push(svc("backend a { }  backend a { }  route r { to a }")),
                    _ => b.extra.push(format!("server {server} {{ }}")),
                }
                "duplicate-name"
            }
            3 => {
                let Some(s) = m.servers.iter().find(|s| !s.ports.is_empty()) else {
                    continue;
                };
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
                let written = if port == 80 && g.chance(50) {
                    host
                } else {
                    format!("{host}:{port}")
                };
                b.extra.push(format!(
                    "service zz-extra {{ authority {}  backend a {{ }}  route r {{ to a }} }}",
                    quoted(&written)
                ));
                "authority-conflict"
            }
            5 => {
                match g.below(4) {
                    0 => b
                        .extra
                        .push("allow zz-extra { to nosuch  from any }".to_string()),
                    1 if http_server.is_some() => b.extra.push(format!(
                        "allow zz-extra {{ to {}.nosuch  from any }}",
                        http_server.as_deref().unwrap_or_default()
                    )),
                    2 => b.extra.push(svc("backend a { }  route r { to nosuch }")),
                    _ => b
                        .extra
                        .push(svc("backend a { failover nosuch }  route r { to a }")),
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
                b.extra.push(format!(
                    "allow zz-extra {{ to {server}  from namespace \"shop\" }}"
                ));
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
                    format!(
                        "server zz-extra {{ route r {{ path regex {} }} }}",
                        raw(&re)
                    )
                } else {
                    format!(
                        "server zz-extra {{ route r {{ header \"x\" ~ {} }} }}",
                        raw(&re)
                    )
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
                b.extra.push(format!(
                    "allow zz-extra {{ to {server}  from network {inc} except {exc} }}"
                ));
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
                let egress = b.egress.get_or_insert_with(|| Egress {
                    default: None,
                    rules: Vec::new(),
                });
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
                b.extra.push(format!(
                    "allow zz-extra {{ to {server}  from identity {} }}",
                    quoted(&bad)
                ));
                "invalid-identity"
            }
        };
        return (b, code);
    }
}

/// `None` when the compiler rejects the broken policy with errors of
/// `code` only; else what went wrong.
pub(crate) fn check_breakage(broken: &Model, code: &str) -> Option<String> {
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
            let all_expected = diagnostics
                .iter()
                .filter(|d| d.is_error())
                .all(|d| d.code.as_str() == code);
            (errors.is_empty() || !all_expected).then(|| {
                format!(
                    "want errors `{code}` only, got:\n  {}\n",
                    errors.join("\n  ")
                )
            })
        }
    }
}

/// Per-policy coverage of the service settings.
pub(crate) fn account_settings(m: &Model, stats: &mut Stats) {
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
