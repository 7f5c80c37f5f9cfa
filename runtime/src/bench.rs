//! Entry points for `benches/` that time sub-steps of a decision, so that
//! the decision table can show what the decision costs above them; not
//! public API. Each takes an already normalized path and never allocates.

use crate::bundle::{Bundle, RouteSet, Scratch};
use crate::matching::RouteRequest;
use crate::peer::for_each_match;
use crate::request::Headers;
use crate::trace::NoTrace;

/// The bare walk of a route set's path automata over `path`, in the
/// decision's precedence order: the literal-path table (the path and each
/// prefix before a `/` looked up), then, only when no literal path matched,
/// every regex-path DFA (where a decision would go
/// on to the regex group at the least). Returns how many path patterns
/// matched; no candidate lists, conditions or rules.
fn walk(set: &RouteSet<'_>, path: &[u8]) -> usize {
    let mut matched = 0usize;
    set.literal.for_each_prefix(path, |_, _| matched += 1);
    if matched > 0 {
        return matched;
    }
    for_each_match(&set.regex, path.iter().copied(), |_| matched += 1);
    matched
}

/// The floor of an inbound HTTP decision: the bare walk of the route
/// automata of the server on `port` over the normalized `path` (see the
/// module docs); `None` when no server listens on `port`.
pub fn walk_server_routes(bundle: &Bundle<'_>, port: u16, path: &[u8]) -> Option<usize> {
    let server = bundle.servers.get(bundle.server_for(port)? as usize)?;
    Some(walk(&server.routes, path))
}

/// The floor of an outbound service decision: the bare walk of the route
/// automata of the service named `service` over the normalized `path`;
/// `None` when the bundle has no such service.
pub fn walk_service_routes(bundle: &Bundle<'_>, service: &str, path: &[u8]) -> Option<usize> {
    let svc = bundle.services.iter().find(|s| s.name == service)?;
    Some(walk(&svc.routes, path))
}

/// Route matching as an inbound decision runs it on the server on `port`:
/// the walk, the candidates sorted by rank, and their method, header and
/// query conditions. Returns the rank of the route taken; `None` when no
/// server listens on `port` or no route is taken.
pub fn match_server_route(
    bundle: &Bundle<'_>,
    port: u16,
    path: &[u8],
    method: &str,
    headers: &dyn Headers,
    query: Option<&[u8]>,
    scratch: &mut Scratch,
) -> Option<u32> {
    let server = bundle.servers.get(bundle.server_for(port)? as usize)?;
    let request = RouteRequest {
        path,
        method,
        headers,
        query,
    };
    bundle.match_route(
        &server.routes,
        &request,
        &mut scratch.candidates,
        &mut NoTrace,
    )
}
