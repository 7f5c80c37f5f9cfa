//! Route matching (spec section 7) and route precedence (section 6).

use std::cmp::Reverse;

use sluice_lang::ast::{PathMatch, Route, RouteStmt, ValueMatch};

use crate::{query, value};

/// The HTTP parts of a request that routes look at.
pub(crate) struct HttpRequest<'a> {
    /// The method (`""` when the request gave none: matches no `method`).
    pub method: &'a str,
    /// The normalized path.
    pub path: &'a str,
    /// The raw query string, `None` without `?`.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a [(String, String)],
}

/// A route's path condition, with `grpc` and `prefix "/"` resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PathCond {
    /// `path "/a"` or `grpc "pkg.Svc/Method"`.
    Exact(String),
    /// `path prefix "/a"` (trailing `/` dropped, never empty) or
    /// `grpc "pkg.Svc/*"`.
    Prefix(String),
    /// `path regex R`.
    Regex(String),
    /// No path condition, or `path prefix "/"`.
    None,
}

/// The conditions of a route, picked apart.
struct Conditions<'r> {
    path: PathCond,
    methods: Option<&'r [sluice_lang::ast::Spanned<String>]>,
    headers: Vec<(&'r str, &'r ValueMatch)>,
    queries: Vec<(&'r str, &'r ValueMatch)>,
}

/// Picks apart a route's statements (first `path`/`grpc` and first
/// `method` only; all `header` and `query` statements).
fn conditions(route: &Route) -> Conditions<'_> {
    let mut c = Conditions {
        path: PathCond::None,
        methods: None,
        headers: Vec::new(),
        queries: Vec::new(),
    };
    let mut have_path = false;
    for stmt in &route.stmts {
        match &stmt.node {
            RouteStmt::Path(p) if !have_path => {
                have_path = true;
                c.path = match p {
                    PathMatch::Exact(s) => PathCond::Exact(s.node.clone()),
                    PathMatch::Prefix(s) => prefix_cond(&s.node),
                    PathMatch::Regex(r) => PathCond::Regex(r.node.clone()),
                };
            }
            RouteStmt::Grpc(g) if !have_path => {
                have_path = true;
                c.path = match g.node.strip_suffix("/*") {
                    Some(service) => prefix_cond(&format!("/{service}")),
                    None => PathCond::Exact(format!("/{}", g.node)),
                };
            }
            RouteStmt::Method(m) => {
                c.methods.get_or_insert(m.as_slice());
            }
            RouteStmt::Header(name, cond) => c.headers.push((name.node.as_str(), cond)),
            RouteStmt::Query(key, cond) => c.queries.push((key.node.as_str(), cond)),
            _ => {}
        }
    }
    c
}

/// A prefix condition: the trailing `/` dropped; `/` (or nothing) is no
/// condition at all.
fn prefix_cond(prefix: &str) -> PathCond {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() {
        PathCond::None
    } else {
        PathCond::Prefix(trimmed.to_string())
    }
}

/// Whether the normalized `path` satisfies the path condition.
fn path_matches(cond: &PathCond, path: &str) -> bool {
    match cond {
        PathCond::Exact(p) => path == p,
        // Element-wise: `/a` matches `/a` and `/a/...`, not `/ab`.
        PathCond::Prefix(p) => match path.strip_prefix(p.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        },
        PathCond::Regex(r) => value::whole_match(r, path.as_bytes()),
        PathCond::None => true,
    }
}

/// Whether every condition of `route` holds for `req`.
fn route_matches(c: &Conditions<'_>, req: &HttpRequest<'_>) -> bool {
    if !path_matches(&c.path, req.path) {
        return false;
    }
    if let Some(methods) = c.methods {
        if !methods.iter().any(|m| m.node == req.method) {
            return false;
        }
    }
    let headers_hold = c.headers.iter().all(|(name, cond)| {
        value::value_matches(cond, value::header_value(req.headers, name).as_deref())
    });
    let queries_hold = c
        .queries
        .iter()
        .all(|(key, cond)| value::value_matches(cond, query::lookup(req.query, key).as_deref()));
    headers_hold && queries_hold
}

/// The precedence key of a route (smaller wins): path kind, longer prefix,
/// with a method, more headers, more queries, declaration order.
type Key = (
    u8,
    Reverse<usize>,
    bool,
    Reverse<usize>,
    Reverse<usize>,
    usize,
);

/// The precedence key of the route at `index`.
fn precedence(c: &Conditions<'_>, index: usize) -> Key {
    let (rank, prefix_len) = match &c.path {
        PathCond::Exact(_) => (0, 0),
        PathCond::Prefix(p) => (1, p.len()),
        PathCond::Regex(_) => (2, 0),
        PathCond::None => (3, 0),
    };
    (
        rank,
        Reverse(prefix_len),
        c.methods.is_none(),
        Reverse(c.headers.len()),
        Reverse(c.queries.len()),
        index,
    )
}

/// The matching route of highest precedence among `routes`, if any.
pub(crate) fn select<'r>(routes: &[&'r Route], req: &HttpRequest<'_>) -> Option<&'r Route> {
    routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let c = conditions(r);
            route_matches(&c, req).then(|| (precedence(&c, i), *r))
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_lang::ast::{Span, Spanned};

    fn sp<T>(node: T) -> Spanned<T> {
        Spanned::new(node, Span::default())
    }

    fn route(name: &str, stmts: Vec<RouteStmt>) -> Route {
        Route {
            span: Span::default(),
            name: sp(name.to_string()),
            stmts: stmts.into_iter().map(sp).collect(),
        }
    }

    fn prefix(p: &str) -> RouteStmt {
        RouteStmt::Path(PathMatch::Prefix(sp(p.to_string())))
    }

    fn exact(p: &str) -> RouteStmt {
        RouteStmt::Path(PathMatch::Exact(sp(p.to_string())))
    }

    fn regex(p: &str) -> RouteStmt {
        RouteStmt::Path(PathMatch::Regex(sp(p.to_string())))
    }

    fn method(m: &[&str]) -> RouteStmt {
        RouteStmt::Method(m.iter().map(|m| sp(m.to_string())).collect())
    }

    fn header(n: &str) -> RouteStmt {
        RouteStmt::Header(sp(n.to_string()), ValueMatch::Present)
    }

    fn pick(
        routes: &[Route],
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Option<String> {
        let (path, query) = crate::path::split_target(target);
        let path = crate::path::normalize(path).unwrap();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let req = HttpRequest {
            method,
            path: &path,
            query,
            headers: &headers,
        };
        let refs: Vec<&Route> = routes.iter().collect();
        select(&refs, &req).map(|r| r.name.node.clone())
    }

    #[test]
    fn prefixes_are_element_wise() {
        assert!(path_matches(&prefix_cond("/api"), "/api"));
        assert!(path_matches(&prefix_cond("/api"), "/api/x"));
        assert!(path_matches(&prefix_cond("/api/"), "/api"));
        assert!(!path_matches(&prefix_cond("/api"), "/apiary"));
        assert_eq!(prefix_cond("/"), PathCond::None);
        assert!(path_matches(&prefix_cond("/"), "/anything"));
    }

    #[test]
    fn precedence_order() {
        let routes = vec![
            route("anything", vec![]),
            route("catch-all", vec![prefix("/")]),
            route("by-regex", vec![regex("/api/v[0-9]+/.*")]),
            route("api", vec![prefix("/api")]),
            route("api-v1", vec![prefix("/api/v1/")]),
            route(
                "api-v1-get",
                vec![prefix("/api/v1"), method(&["GET", "HEAD"])],
            ),
            route("health", vec![exact("/api/v1/health")]),
            route("t1", vec![prefix("/t"), header("x-a")]),
            route("t2", vec![prefix("/t"), header("x-a"), header("x-b")]),
        ];
        assert_eq!(
            pick(&routes, "GET", "/api/v1/health", &[]).as_deref(),
            Some("health")
        );
        assert_eq!(
            pick(&routes, "POST", "/api/v1/users", &[]).as_deref(),
            Some("api-v1")
        );
        assert_eq!(
            pick(&routes, "HEAD", "/api/v1/users", &[]).as_deref(),
            Some("api-v1-get")
        );
        assert_eq!(
            pick(&routes, "GET", "/api/v2/users", &[]).as_deref(),
            Some("api")
        );
        assert_eq!(
            pick(&routes, "GET", "/v9/x", &[]).as_deref(),
            Some("anything")
        );
        assert_eq!(
            pick(&routes, "GET", "/t", &[("x-a", ""), ("X-B", "1")]).as_deref(),
            Some("t2")
        );
        assert_eq!(
            pick(&routes, "GET", "/t", &[("x-a", "")]).as_deref(),
            Some("t1")
        );
        // A regex beats a catch-all prefix "/".
        let r2 = vec![
            route("catch-all", vec![prefix("/")]),
            route("re", vec![regex("/x.*")]),
        ];
        assert_eq!(pick(&r2, "GET", "/xyz", &[]).as_deref(), Some("re"));
        assert_eq!(pick(&r2, "GET", "/y", &[]).as_deref(), Some("catch-all"));
        assert_eq!(
            pick(&[route("only", vec![method(&["GET"])])], "POST", "/", &[]),
            None
        );
    }

    #[test]
    fn grpc_paths() {
        let routes = vec![
            route(
                "charge",
                vec![RouteStmt::Grpc(sp("billing.v1.Billing/Charge".to_string()))],
            ),
            route(
                "ledger",
                vec![RouteStmt::Grpc(sp("billing.v1.Ledger/*".to_string()))],
            ),
        ];
        assert_eq!(
            pick(&routes, "POST", "/billing.v1.Billing/Charge", &[]).as_deref(),
            Some("charge")
        );
        assert_eq!(
            pick(&routes, "POST", "/billing.v1.Ledger/List", &[]).as_deref(),
            Some("ledger")
        );
        assert_eq!(
            pick(&routes, "POST", "/billing.v1.Ledger", &[]).as_deref(),
            Some("ledger")
        );
        assert_eq!(pick(&routes, "POST", "/billing.v1.LedgerX/List", &[]), None);
        assert_eq!(
            pick(&routes, "POST", "/billing.v1.Billing/Refund", &[]),
            None
        );
    }

    #[test]
    fn queries() {
        let q = |k: &str, v: ValueMatch| RouteStmt::Query(sp(k.to_string()), v);
        let routes = vec![
            route("q1", vec![prefix("/q"), q("a", ValueMatch::Present)]),
            route(
                "q2",
                vec![
                    prefix("/q"),
                    q("a", ValueMatch::Present),
                    q("b", ValueMatch::Exact(sp("1".into()))),
                ],
            ),
        ];
        assert_eq!(
            pick(&routes, "GET", "/q?b=1&a=", &[]).as_deref(),
            Some("q2")
        );
        assert_eq!(pick(&routes, "GET", "/q?b=2&a", &[]).as_deref(), Some("q1"));
        assert_eq!(pick(&routes, "GET", "/q", &[]), None);
    }
}
