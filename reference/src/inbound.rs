//! Inbound (server-side) decisions, spec section 4.

use sluice_lang::ast::{self, Effect, Principal, Protocol};

use crate::model::{self, View};
use crate::route::{self, HttpRequest};
use crate::status::{self, BAD_REQUEST, FORBIDDEN, NOT_FOUND};
use crate::{identity, net, path, value, Decision, ErrorKind, Request, RequestError};

/// The outcome of authorization, before audit and statuses.
struct Verdict {
    allow: bool,
    reason: &'static str,
    rule: Option<String>,
}

/// Decides an inbound request.
pub(crate) fn evaluate(view: &View<'_>, req: &Request) -> Result<Decision, RequestError> {
    // A request without method and path is a connection.
    let is_connection = req.method.is_none() && req.path.is_none();
    let grpc_content_type =
        status::is_grpc_content_type(value::header_value(&req.headers, "content-type").as_deref());

    // 1. Server: none covers the port -> the mesh default decides.
    let Some(server) = req.port.and_then(|p| view.server_for_port(p)) else {
        let default = view.mesh_default();
        let verdict = Verdict {
            allow: default_allows(default, req),
            reason: "default",
            rule: None,
        };
        let mut d = authorized(verdict, default == ast::Default::Audit);
        if !is_connection {
            deny_status(&mut d, FORBIDDEN, grpc_content_type);
        }
        return Ok(d);
    };
    let server_name = server.name.node.clone();
    let protocol = model::server_protocol(server);

    // A tcp server decides per connection: method, path and headers are
    // ignored, there is no route and no status.
    if protocol == Protocol::Tcp {
        let mut d = authorized(authorize(view, server, None, req), is_audit(server));
        d.server = Some(server_name);
        return Ok(d);
    }
    if is_connection {
        let kind = if protocol == Protocol::Grpc {
            "grpc"
        } else {
            "http"
        };
        return Err(RequestError {
            kind: ErrorKind::ConnectionToHttpServer,
            message: format!(
                "a connection (a request without method and path) cannot go to the {kind} server `{server_name}`"
            ),
        });
    }
    let grpc = protocol == Protocol::Grpc || grpc_content_type;

    // 2. Path: a missing path cannot be normalized either.
    let (raw_path, query) = path::split_target(req.path.as_deref().unwrap_or(""));
    let Some(normalized) = path::normalize(raw_path) else {
        let mut d = Decision::new(false, "bad-path");
        d.server = Some(server_name);
        deny_status(&mut d, BAD_REQUEST, grpc);
        return Ok(d);
    };

    // 3. Route.
    let routes = model::server_routes(server);
    let route_name = if routes.is_empty() {
        None
    } else {
        let http = HttpRequest {
            method: req.method.as_deref().unwrap_or(""),
            path: &normalized,
            query,
            headers: &req.headers,
        };
        match route::select(&routes, &http) {
            Some(r) => Some(r.name.node.clone()),
            None => {
                let mut d = Decision::new(false, "no-route");
                d.server = Some(server_name);
                deny_status(&mut d, NOT_FOUND, grpc);
                return Ok(d);
            }
        }
    };

    // 4. Rules, 5. answers.
    let mut d = authorized(
        authorize(view, server, route_name.as_deref(), req),
        is_audit(server),
    );
    d.server = Some(server_name);
    d.route = route_name;
    deny_status(&mut d, FORBIDDEN, grpc);
    Ok(d)
}

/// Whether the server's default is `audit`.
fn is_audit(server: &ast::Server) -> bool {
    model::server_default(server) == ast::Default::Audit
}

/// Turns a verdict into a decision; under `audit`, a denial becomes an
/// allow with `audit: true`, keeping its reason and rule.
fn authorized(verdict: Verdict, audit: bool) -> Decision {
    let mut d = Decision::new(verdict.allow, verdict.reason);
    d.rule = verdict.rule;
    if audit && !d.allow {
        d.allow = true;
        d.audit = true;
    }
    d
}

/// Sets the statuses of a denied HTTP request: `http` and, when gRPC
/// applies, the gRPC status it maps to. Allowed requests get none.
fn deny_status(d: &mut Decision, http: u16, grpc: bool) {
    if d.allow {
        return;
    }
    d.http_status = Some(http);
    if grpc {
        d.grpc_status = Some(status::grpc_for(http));
    }
}

/// What a server or mesh default says about the peer of `req`.
fn default_allows(default: ast::Default, req: &Request) -> bool {
    match default {
        ast::Default::Allow => true,
        ast::Default::Authenticated => req.peer_identity.is_some(),
        ast::Default::Deny | ast::Default::Audit => false,
    }
}

/// Section 4, step 4: the first matching applicable deny rule, else the
/// first matching applicable allow rule, else the server default.
fn authorize(view: &View<'_>, server: &ast::Server, route: Option<&str>, req: &Request) -> Verdict {
    let mut first_allow: Option<&ast::Rule> = None;
    for rule in &view.rules {
        if !applies(rule, server, route) || !peer_matches(view, rule, req) {
            continue;
        }
        match rule.effect {
            Effect::Deny => {
                return Verdict {
                    allow: false,
                    reason: "rule",
                    rule: Some(rule.name.node.clone()),
                }
            }
            Effect::Allow => {
                first_allow.get_or_insert(rule);
            }
        }
    }
    match first_allow {
        Some(rule) => Verdict {
            allow: true,
            reason: "rule",
            rule: Some(rule.name.node.clone()),
        },
        None => Verdict {
            allow: default_allows(model::server_default(server), req),
            reason: "default",
            rule: None,
        },
    }
}

/// Whether one of the rule's targets names the server, or `server.route`
/// with `route` the route taken.
fn applies(rule: &ast::Rule, server: &ast::Server, route: Option<&str>) -> bool {
    model::rule_targets(rule).any(|t| {
        t.server.node == server.name.node
            && match &t.route {
                None => true,
                Some(r) => route == Some(r.node.as_str()),
            }
    })
}

/// Whether the peer satisfies every `from` clause of the rule.
fn peer_matches(view: &View<'_>, rule: &ast::Rule, req: &Request) -> bool {
    model::rule_clauses(rule).all(|p| principal_matches(view, p, req))
}

/// Whether the peer satisfies one `from` clause (any of its items).
fn principal_matches(view: &View<'_>, principal: &Principal, req: &Request) -> bool {
    match principal {
        Principal::Any => true,
        Principal::Authenticated => req.peer_identity.is_some(),
        Principal::Identity(patterns) => match &req.peer_identity {
            Some(id) => patterns.iter().any(|p| identity::matches(&p.node, id)),
            None => false,
        },
        Principal::Namespace(namespaces) => match (&req.peer_identity, view.trust_domain()) {
            (Some(id), Some(td)) => namespaces.iter().any(|n| {
                // A namespace that is no valid segment would make a pattern
                // with different shape; a checked policy has none.
                identity::is_segment(&n.node)
                    && identity::matches(&identity::namespace_pattern(td, &n.node), id)
            }),
            _ => false,
        },
        Principal::Network(nets) => net::in_networks(nets, req.peer_ip),
    }
}
