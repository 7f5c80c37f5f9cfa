//! Minimizing a mismatch.

use sluice_compiler::Config;
use sluice_reference::Request;

use crate::compare::{compile_policy, run_reference, sources, Outcome, Runtime};
use crate::model::{Model, Principal, Route};

/// Both outcomes when `m` compiles and the two sides disagree on `r`.
pub(crate) fn mismatch(m: &Model, r: &Request, config: &Config) -> Option<(Outcome, Outcome)> {
    let (policy, folder) = sources(m).ok()?;
    let bytes = compile_policy(folder.as_ref().unwrap_or(&policy), config).ok()?;
    let mut rt = Runtime::new(&bytes).ok()?;
    let expected = run_reference(&policy, r);
    let actual = rt.run(r);
    (!expected.agrees(&actual)).then_some((expected, actual))
}

/// Removes rule targets (and rules left without targets) that `drop` selects.
pub(crate) fn drop_targets(m: &mut Model, drop: impl Fn(&(String, Option<String>)) -> bool) {
    for r in &mut m.rules {
        r.targets.retain(|t| !drop(t));
    }
    m.rules.retain(|r| !r.targets.is_empty());
}

/// Smaller variants of a route (one condition fewer each).
pub(crate) fn route_reductions(r: &Route) -> Vec<Route> {
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

pub(crate) fn principal_reductions(p: &Principal) -> Vec<Principal> {
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
pub(crate) fn model_reductions(m: &Model) -> Vec<Model> {
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
                out.push(with(&mut |c| {
                    c.egress.as_mut().unwrap().rules[i].hosts.clear()
                }));
            }
            if r.nets.is_some() {
                out.push(with(&mut |c| {
                    c.egress.as_mut().unwrap().rules[i].nets = None
                }));
            }
            if !r.ports.is_empty() {
                out.push(with(&mut |c| {
                    c.egress.as_mut().unwrap().rules[i].ports.clear()
                }));
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

pub(crate) fn request_reductions(r: &Request) -> Vec<Request> {
    let mut out = Vec::new();
    for i in 0..r.headers.len() {
        let mut c = r.clone();
        c.headers.remove(i);
        out.push(c);
    }
    if r.peer_identity.is_some() {
        out.push(Request {
            peer_identity: None,
            ..r.clone()
        });
    }
    if r.peer_ip.is_some() {
        out.push(Request {
            peer_ip: None,
            ..r.clone()
        });
    }
    if r.ip.is_some() && r.authority.is_some() {
        out.push(Request {
            ip: None,
            ..r.clone()
        });
    }
    out
}

/// Greedily removes parts of the policy and the request while the two
/// sides still disagree.
pub(crate) fn minimize(m: &Model, r: &Request, config: &Config) -> (Model, Request) {
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
