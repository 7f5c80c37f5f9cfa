//! `unused-route` and `shadowed-allow`: analyses of the authorization rules.

use super::netset::Addrs;
use super::product::{identity_included, Dfa, Inclusion};
use crate::automata::{build_dfa, identity_regex, Flavor};
use crate::config::Config;
use crate::ir::{Clause, DefaultPolicy, Effect, Ir, PrincipalItem, Protocol, Rule, Target};
use sluice_lang::{Code, Diagnostic};
use std::collections::{BTreeSet, HashMap, HashSet};

/// `unused-route`: a route of a deny-by-default server that no rule targets,
/// neither by name nor through its whole server.
pub(crate) fn unused_routes(ir: &Ir, out: &mut Vec<Diagnostic>) {
    let targeted: HashSet<Target> = ir
        .rules
        .iter()
        .flat_map(|r| r.targets.iter().copied())
        .collect();
    for (s, server) in ir.servers.iter().enumerate() {
        if server.default != DefaultPolicy::Deny || server.protocol == Protocol::Tcp {
            continue;
        }
        if targeted.contains(&Target {
            server: s,
            route: None,
        }) {
            continue;
        }
        for (r, route) in server.routes.iter().enumerate() {
            if !targeted.contains(&Target {
                server: s,
                route: Some(r),
            }) {
                out.push(Diagnostic::new(
                    Code::UnusedRoute,
                    route.span,
                    format!(
                        "route `{}` of server `{}` is never allowed: no rule targets it or its server, and the server's default is `deny`",
                        route.name, server.name
                    ),
                ));
            }
        }
    }
}

/// `shadowed-allow`: an allow rule that, on each of its targets, some deny
/// rule applying there overrides for every peer the allow rule matches.
pub(crate) fn shadowed_allows(ir: &Ir, config: &Config, out: &mut Vec<Diagnostic>) {
    // Deny rules by target.
    let mut denies: HashMap<Target, Vec<usize>> = HashMap::new();
    for (i, rule) in ir.rules.iter().enumerate() {
        if rule.effect == Effect::Deny {
            for &t in &rule.targets {
                denies.entry(t).or_default().push(i);
            }
        }
    }
    let on = |server: usize, route: Option<usize>| {
        denies
            .get(&Target { server, route })
            .into_iter()
            .flatten()
            .copied()
    };
    if denies.is_empty() {
        return;
    }
    let mut peers = Peers::new(config);
    for allow in ir.rules.iter().filter(|r| r.effect == Effect::Allow) {
        if allow.targets.is_empty() || allow.clauses.is_empty() {
            continue;
        }
        let mut memo: HashMap<usize, bool> = HashMap::new();
        let mut covers = |d: usize| {
            *memo
                .entry(d)
                .or_insert_with(|| peers.rule_covers(&ir.rules[d], allow))
        };
        let mut by: BTreeSet<usize> = BTreeSet::new();
        let mut all = true;
        for t in &allow.targets {
            // A deny on the whole server applies to every target on it.
            let whole = on(t.server, None).find(|&d| covers(d));
            if let Some(d) = whole {
                by.insert(d);
                continue;
            }
            let routes: Vec<usize> = match t.route {
                Some(r) => vec![r],
                // A whole-server allow only allows through the server's
                // routes: shadowed when each route's denies cover it.
                None => (0..ir.servers.get(t.server).map_or(0, |s| s.routes.len())).collect(),
            };
            if routes.is_empty() {
                all = false;
                break;
            }
            for r in routes {
                let d = on(t.server, Some(r)).find(|&d| covers(d));
                match d {
                    Some(d) => {
                        by.insert(d);
                    }
                    None => {
                        all = false;
                        break;
                    }
                }
            }
            if !all {
                break;
            }
        }
        if all {
            let names: Vec<String> = by
                .iter()
                .map(|&d| format!("`{}`", ir.rules[d].name))
                .collect();
            let message = if names.len() == 1 {
                format!(
                    "allow rule `{}` can never allow: deny rule {} matches every peer it matches on each of its targets",
                    allow.name, names[0]
                )
            } else {
                format!(
                    "allow rule `{}` can never allow: on each of its targets a deny rule ({}) matches every peer it matches",
                    allow.name,
                    names.join(", ")
                )
            };
            let mut diagnostic = Diagnostic::new(Code::ShadowedAllow, allow.span, message);
            for &d in &by {
                let label = format!("deny rule `{}` overrides it", ir.rules[d].name);
                diagnostic = diagnostic.with_label(ir.rules[d].span, label);
            }
            out.push(diagnostic);
        }
    }
}

/// Peer-set inclusion between rules, with cached identity automata.
struct Peers<'a> {
    config: &'a Config,
    /// Identity-pattern DFAs by pattern list (`None`: did not build).
    dfas: HashMap<Vec<String>, Option<Dfa>>,
    /// Answers of [`Peers::identity_covered`].
    answers: HashMap<(String, Vec<String>), bool>,
}

impl<'a> Peers<'a> {
    fn new(config: &'a Config) -> Self {
        Peers {
            config,
            dfas: HashMap::new(),
            answers: HashMap::new(),
        }
    }

    /// Whether every peer `allow` matches is matched by `deny`: each clause
    /// of `deny` contains some clause of `allow` (sound, not complete).
    fn rule_covers(&mut self, deny: &Rule, allow: &Rule) -> bool {
        deny.clauses
            .iter()
            .all(|d| allow.clauses.iter().any(|a| self.clause_covers(d, a)))
    }

    /// Whether every peer satisfying clause `a` satisfies clause `d`.
    fn clause_covers(&mut self, d: &Clause, a: &Clause) -> bool {
        let any = d.contains(&PrincipalItem::Any);
        if any {
            return true;
        }
        let star = d
            .iter()
            .any(|i| matches!(i, PrincipalItem::Identity(ps) if ps.iter().any(|p| p == "*")));
        let authenticated = star || d.contains(&PrincipalItem::Authenticated);
        let mut patterns: Vec<String> = d
            .iter()
            .filter_map(|i| match i {
                PrincipalItem::Identity(ps) => Some(ps.iter().filter(|p| *p != "*").cloned()),
                _ => None,
            })
            .flatten()
            .collect();
        patterns.sort();
        patterns.dedup();
        let mut addrs: Option<Addrs> = None;
        for item in a {
            let ok = match item {
                PrincipalItem::Any => false,
                PrincipalItem::Authenticated => authenticated,
                PrincipalItem::Identity(ps) => {
                    authenticated
                        || ps
                            .iter()
                            .all(|p| p != "*" && self.identity_covered(p, &patterns))
                }
                PrincipalItem::Network(set) => {
                    let union = addrs.get_or_insert_with(|| {
                        let mut u = Addrs::default();
                        for i in d {
                            if let PrincipalItem::Network(s) = i {
                                u.extend(&Addrs::of(s));
                            }
                        }
                        u
                    });
                    Addrs::of(set).is_subset(union)
                }
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// Whether every SPIFFE ID matching `pattern` matches one of `patterns`.
    fn identity_covered(&mut self, pattern: &str, patterns: &[String]) -> bool {
        if patterns.iter().any(|p| p == pattern) {
            return true;
        }
        if patterns.is_empty() {
            return false;
        }
        let key = (pattern.to_string(), patterns.to_vec());
        if let Some(&answer) = self.answers.get(&key) {
            return answer;
        }
        let single = vec![pattern.to_string()];
        self.dfa(&single);
        self.dfa(patterns);
        let answer = match (self.dfas.get(&single), self.dfas.get(patterns)) {
            (Some(Some(a)), Some(Some(b))) => identity_included(a, b) == Inclusion::Included,
            _ => false,
        };
        self.answers.insert(key, answer);
        answer
    }

    fn dfa(&mut self, patterns: &[String]) {
        if !self.dfas.contains_key(patterns) {
            let regexes: Vec<String> = patterns.iter().map(|p| identity_regex(p)).collect();
            let dfa = build_dfa(&regexes, Flavor::Unicode, self.config).ok();
            self.dfas.insert(patterns.to_vec(), dfa);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;
    use crate::ir::PathCond;

    fn shadowed(ir: &Ir) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        shadowed_allows(ir, &Config::default(), &mut out);
        out.iter()
            .map(|d| (d.code.as_str().to_string(), d.span.line))
            .collect()
    }

    fn unused(ir: &Ir) -> Vec<u32> {
        let mut out = Vec::new();
        unused_routes(ir, &mut out);
        out.iter().map(|d| d.span.line).collect()
    }

    fn web() -> crate::ir::Server {
        server(
            "web",
            DefaultPolicy::Deny,
            vec![
                route("api", 2, PathCond::Prefix("/api".into())),
                route("b", 3, PathCond::Any),
            ],
        )
    }

    #[test]
    fn unused_routes_of_deny_servers() {
        let mut ir = ir(
            vec![web()],
            vec![rule(
                "a",
                10,
                Effect::Allow,
                &[(0, Some(0))],
                vec![vec![PrincipalItem::Any]],
            )],
        );
        assert_eq!(unused(&ir), vec![3]);
        // A deny rule targets too.
        ir.rules.push(rule(
            "d",
            11,
            Effect::Deny,
            &[(0, Some(1))],
            vec![vec![PrincipalItem::Any]],
        ));
        assert_eq!(unused(&ir), Vec::<u32>::new());
        // A whole-server target covers every route.
        ir.rules = vec![rule(
            "a",
            10,
            Effect::Allow,
            &[(0, None)],
            vec![vec![PrincipalItem::Any]],
        )];
        assert_eq!(unused(&ir), Vec::<u32>::new());
        // Not a deny server: nothing to say.
        ir.rules.clear();
        assert_eq!(unused(&ir), vec![2, 3]);
        ir.servers[0].default = DefaultPolicy::Audit;
        assert_eq!(unused(&ir), Vec::<u32>::new());
    }

    fn id(ps: &[&str]) -> PrincipalItem {
        PrincipalItem::Identity(ps.iter().map(|p| p.to_string()).collect())
    }

    fn net(include: &[&str], except: &[&str]) -> PrincipalItem {
        PrincipalItem::Network(crate::ir::NetSet {
            include: include.iter().map(|n| n.parse().unwrap()).collect(),
            except: except.iter().map(|n| n.parse().unwrap()).collect(),
        })
    }

    /// Allow `a` against deny `d`, both on `web.api` with one clause of one
    /// principal: is `a` shadowed?
    fn shadowed_on_api(allow: PrincipalItem, deny: PrincipalItem) -> bool {
        pair(API, vec![vec![allow]], API, vec![vec![deny]])
    }

    /// Allow `a` on `target`, with clauses `a`, against deny `d` with clauses `d`
    /// on `dt`: is `a` shadowed?
    fn pair(
        at: &[(usize, Option<usize>)],
        a: Vec<Clause>,
        dt: &[(usize, Option<usize>)],
        d: Vec<Clause>,
    ) -> bool {
        let ir = ir(
            vec![web()],
            vec![
                rule("d", 1, Effect::Deny, dt, d),
                rule("a", 9, Effect::Allow, at, a),
            ],
        );
        let got = shadowed(&ir);
        assert!(got.iter().all(|(c, l)| c == "shadowed-allow" && *l == 9));
        !got.is_empty()
    }

    const API: &[(usize, Option<usize>)] = &[(0, Some(0))];
    const WEB: &[(usize, Option<usize>)] = &[(0, None)];

    #[test]
    fn shadowed_by_targets() {
        let any = || vec![vec![PrincipalItem::Any]];
        // The conformance example: deny from any on the same route.
        assert!(pair(API, vec![vec![net(&["10.0.0.0/8"], &[])]], API, any()));
        // A deny on the whole server covers a route target.
        assert!(pair(API, any(), WEB, any()));
        // A deny on one route does not cover the whole server...
        assert!(!pair(WEB, any(), API, any()));
        // ...unless every route is covered.
        let ir2 = ir(
            vec![web()],
            vec![
                rule("d1", 1, Effect::Deny, &[(0, Some(0))], any()),
                rule("d2", 2, Effect::Deny, &[(0, Some(1))], any()),
                rule("a", 9, Effect::Allow, WEB, any()),
            ],
        );
        assert_eq!(shadowed(&ir2), vec![("shadowed-allow".to_string(), 9)]);
        // Each deny rule that overrides it is a label.
        let mut out = Vec::new();
        shadowed_allows(&ir2, &Config::default(), &mut out);
        let labels: Vec<(u32, &str)> = out[0]
            .labels
            .iter()
            .map(|l| (l.span.line, l.message.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                (1, "deny rule `d1` overrides it"),
                (2, "deny rule `d2` overrides it")
            ]
        );
        // A deny on another route does not apply.
        assert!(!pair(API, any(), &[(0, Some(1))], any()));
        // Every target must be covered.
        assert!(!pair(&[(0, Some(0)), (0, Some(1))], any(), API, any()));
        assert!(pair(
            &[(0, Some(0)), (0, Some(1))],
            any(),
            &[(0, Some(0)), (0, Some(1))],
            any()
        ));
    }

    #[test]
    fn shadowed_by_principals() {
        use PrincipalItem::{Any, Authenticated};
        // Same principals.
        assert!(shadowed_on_api(
            id(&["spiffe://td/ns/a/sa/x"]),
            id(&["spiffe://td/ns/a/sa/x"])
        ));
        // Identity inclusion by automata.
        assert!(shadowed_on_api(
            id(&["spiffe://td/ns/a/sa/x"]),
            id(&["spiffe://td/ns/*/sa/*"])
        ));
        assert!(pair(
            API,
            vec![vec![id(&["spiffe://td/ns/a/sa/*", "spiffe://td/ns/b/**"])]],
            API,
            vec![vec![
                id(&["spiffe://td/ns/b/**"]),
                id(&["spiffe://td/ns/*/sa/*"])
            ]]
        ));
        assert!(!shadowed_on_api(
            id(&["spiffe://td/ns/a/**"]),
            id(&["spiffe://td/ns/*/sa/*"])
        ));
        assert!(!shadowed_on_api(
            id(&["spiffe://td/ns/a/sa/x"]),
            id(&["spiffe://other/ns/*/sa/*"])
        ));
        // `*` and authenticated.
        assert!(shadowed_on_api(id(&["spiffe://td/a"]), Authenticated));
        assert!(shadowed_on_api(id(&["*"]), Authenticated));
        assert!(shadowed_on_api(Authenticated, id(&["*"])));
        assert!(!shadowed_on_api(id(&["*"]), id(&["spiffe://td/**"])));
        assert!(!shadowed_on_api(Authenticated, id(&["spiffe://td/**"])));
        assert!(!shadowed_on_api(Any, Authenticated));
        // Networks, unions of deny items.
        assert!(shadowed_on_api(
            net(&["10.1.0.0/16"], &[]),
            net(&["10.0.0.0/8"], &["10.2.0.0/16"])
        ));
        assert!(!shadowed_on_api(
            net(&["10.0.0.0/8"], &[]),
            net(&["10.0.0.0/8"], &["10.2.0.0/16"])
        ));
        assert!(pair(
            API,
            vec![vec![net(&["10.0.0.0/8"], &[])]],
            API,
            vec![vec![net(&["10.0.0.0/9"], &[]), net(&["10.128.0.0/9"], &[])]]
        ));
        assert!(!shadowed_on_api(net(&["10.0.0.0/8"], &[]), Authenticated));
        // A mixed allow clause needs every item covered.
        assert!(!pair(
            API,
            vec![vec![net(&["10.0.0.0/8"], &[]), Authenticated]],
            API,
            vec![vec![net(&["10.0.0.0/8"], &[])]]
        ));
        assert!(pair(
            API,
            vec![vec![net(&["10.0.0.0/8"], &[]), Authenticated]],
            API,
            vec![vec![net(&["10.0.0.0/8"], &[]), id(&["*"])]]
        ));
        // Clauses: the allow's AND is narrower; each deny clause needs one allow clause inside it.
        assert!(pair(
            API,
            vec![vec![Authenticated], vec![net(&["10.0.0.0/8"], &[])]],
            API,
            vec![vec![net(&["10.0.0.0/8"], &[])]]
        ));
        assert!(!pair(
            API,
            vec![vec![Authenticated]],
            API,
            vec![vec![Authenticated], vec![net(&["10.0.0.0/8"], &[])]]
        ));
        assert!(pair(
            API,
            vec![vec![Authenticated], vec![net(&["10.0.0.0/8"], &[])]],
            API,
            vec![vec![id(&["*"])], vec![net(&["10.0.0.0/8"], &[])]]
        ));
    }
}
