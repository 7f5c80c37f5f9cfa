//! Text to AST: the pest grammar (`grammar.pest`) and the CST-to-AST conversion.
//!
//! Each file is parsed on its own. A file with a syntax error contributes one
//! `syntax` diagnostic (at the line and column where parsing stopped, saying
//! in words what could stand there) and no items.

use crate::ast::{FileId, Item, Policy, SourceFile};
use crate::cst_to_ast::{convert_policy, lex_string, Ctx, Rule, SluiceParser};
use crate::diagnostic::{Code, Diagnostic};
use crate::source::LineIndex;
use pest::error::{ErrorVariant, InputLocation};
use pest::Parser as _;

/// Parses every file (in the given order) into one policy.
///
/// A file with a syntax error contributes one `syntax` diagnostic and no
/// items; the other files are still parsed. Never panics.
pub fn parse_files(files: Vec<SourceFile>) -> (Policy, Vec<Diagnostic>) {
    let mut items = Vec::new();
    let mut diagnostics = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let id = FileId::try_from(i).unwrap_or(FileId::MAX);
        match parse_one(id, &file.text) {
            Ok(mut file_items) => items.append(&mut file_items),
            Err(diagnostic) => diagnostics.push(diagnostic),
        }
    }
    (Policy { files, items }, diagnostics)
}

/// Parses one in-memory source (shown as `path`) into a policy.
pub fn parse_str(path: &str, text: &str) -> (Policy, Vec<Diagnostic>) {
    parse_files(vec![SourceFile {
        path: path.to_string(),
        text: text.to_string(),
    }])
}

/// The items of one file, or its syntax error.
fn parse_one(file: FileId, text: &str) -> Result<Vec<Item>, Diagnostic> {
    let index = LineIndex::new(text);
    let cx = Ctx {
        text,
        file,
        index: &index,
    };
    match SluiceParser::parse(Rule::policy, text) {
        Ok(mut pairs) => match pairs.next() {
            Some(policy) => convert_policy(&cx, policy),
            None => Ok(Vec::new()),
        },
        Err(error) => {
            let pos = match error.location {
                InputLocation::Pos(p) => p,
                InputLocation::Span((s, _)) => s,
            };
            let pos = clamp_to_char_boundary(text, pos);
            Err(match error.variant {
                ErrorVariant::ParsingError { positives, .. } => syntax_error(&cx, pos, &positives),
                ErrorVariant::CustomError { message } => Diagnostic::new(
                    Code::Syntax,
                    cx.span_at(pos, pos),
                    format!("the file could not be parsed ({message})"),
                ),
            })
        }
    }
}

/// The largest char boundary of `text` at or before `pos`.
fn clamp_to_char_boundary(text: &str, pos: usize) -> usize {
    let mut pos = pos.min(text.len());
    while !text.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}

/// What the parser wanted at the error position, in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// A value or punctuation, already worded (`a string`, "`{`").
    Thing(&'static str),
    /// A keyword.
    Kw(&'static str),
    /// `}`.
    Close,
    /// The end of the file.
    End,
}

/// The keywords that start an item or a statement somewhere; at a position
/// where `}` or the end of the file may stand, they are grouped as "a
/// statement (...)" or "an item (...)".
const STATEMENT_KEYWORDS: &[&str] = &[
    "mesh",
    "server",
    "allow",
    "deny",
    "egress",
    "service",
    "trust-domain",
    "default",
    "port",
    "protocol",
    "route",
    "method",
    "path",
    "grpc",
    "header",
    "query",
    "to",
    "timeout",
    "retry",
    "from",
    "host",
    "network",
    "authority",
    "circuit-breaker",
    "backend",
    "endpoint",
    "identity",
    "cluster",
    "failover",
    "max-in-flight",
    "attempts",
    "on",
    "per-try-timeout",
    "budget",
    "consecutive-failures",
    "backoff",
    "jitter",
];

/// The statements of each kind of block (and the items), then value
/// keywords, in grammar order: keywords are listed in the order of the
/// first of these that holds all of them (else in the grammar's order).
const BLOCK_ORDERS: &[&[&str]] = &[
    &["mesh", "server", "allow", "deny", "egress", "service"],
    &["trust-domain", "default"],
    &["port", "protocol", "default", "route"],
    &[
        "method", "path", "grpc", "header", "query", "to", "timeout", "retry",
    ],
    &["to", "from"],
    &["default", "allow", "deny"],
    &["host", "network", "port"],
    &[
        "authority",
        "timeout",
        "retry",
        "circuit-breaker",
        "backend",
        "route",
    ],
    &[
        "endpoint",
        "identity",
        "cluster",
        "failover",
        "max-in-flight",
    ],
    &["attempts", "on", "per-try-timeout", "budget"],
    &["consecutive-failures", "backoff", "jitter"],
    // Value keywords.
    &["any", "authenticated", "identity", "namespace", "network"],
    &["allow", "deny", "audit", "authenticated"],
];

/// The keywords of the items.
const ITEMS: &[Want] = &[
    Want::Kw("mesh"),
    Want::Kw("server"),
    Want::Kw("allow"),
    Want::Kw("deny"),
    Want::Kw("egress"),
    Want::Kw("service"),
];

/// What a rule that the parser tried stands for.
fn describe(rule: Rule) -> Vec<Want> {
    use Want::{Kw, Thing};
    let one = |w: Want| vec![w];
    match rule {
        Rule::EOI => one(Want::End),
        Rule::policy => {
            let mut v = ITEMS.to_vec();
            v.push(Want::End);
            v
        }
        Rule::rbrace => one(Want::Close),
        Rule::lbrace => one(Thing("`{`")),
        Rule::comma => one(Thing("`,`")),
        Rule::op_eq => one(Thing("`=`")),
        Rule::op_match => one(Thing("`~`")),
        Rule::name | Rule::weighted => one(Thing("a name")),
        Rule::target => one(Thing("a target (`server` or `server.route`)")),
        Rule::method => one(Thing("a method (like `GET`)")),
        Rule::int => one(Thing("a number")),
        Rule::port_range => one(Thing("a port (like `80` or `8000-8099`)")),
        Rule::duration => one(Thing("a duration (like `500ms`, `2s`, `1m` or `1h`)")),
        Rule::percent => one(Thing("a percentage (like `20%`)")),
        Rule::net => one(Thing("a network (like `10.0.0.0/8` or `2001:db8::/32`)")),
        Rule::endpoint | Rule::endpoint_addr => {
            one(Thing("an endpoint (`a.b.c.d:port`, `[v6]:port` or a string)"))
        }
        Rule::string => one(Thing("a string")),
        Rule::cond => one(Thing(
            "a retry condition (`5xx`, `gateway-error`, `reset`, a status code or a gRPC status name)",
        )),
        Rule::auth_rule | Rule::egress_rule => vec![Kw("allow"), Kw("deny")],
        other => keyword(other).map(|k| vec![Kw(k)]).unwrap_or_default(),
    }
}

/// The keyword a keyword rule matches, or that a statement rule starts with.
fn keyword(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::kw_mesh | Rule::mesh => "mesh",
        Rule::kw_server | Rule::server => "server",
        Rule::kw_allow => "allow",
        Rule::kw_deny => "deny",
        Rule::kw_egress | Rule::egress => "egress",
        Rule::kw_service | Rule::service => "service",
        Rule::kw_trust_domain | Rule::trust_domain_stmt => "trust-domain",
        Rule::kw_default | Rule::default_stmt | Rule::egress_default_stmt => "default",
        Rule::kw_audit => "audit",
        Rule::kw_authenticated => "authenticated",
        Rule::kw_port | Rule::port_stmt => "port",
        Rule::kw_protocol | Rule::protocol_stmt => "protocol",
        Rule::kw_http => "http",
        Rule::kw_grpc | Rule::grpc_stmt => "grpc",
        Rule::kw_tcp => "tcp",
        Rule::kw_route | Rule::route => "route",
        Rule::kw_method | Rule::method_stmt => "method",
        Rule::kw_path | Rule::path_stmt => "path",
        Rule::kw_prefix => "prefix",
        Rule::kw_regex => "regex",
        Rule::kw_header | Rule::header_stmt => "header",
        Rule::kw_query | Rule::query_stmt => "query",
        Rule::kw_present => "present",
        Rule::kw_to | Rule::route_to_stmt | Rule::rule_to_stmt => "to",
        Rule::kw_timeout | Rule::timeout_stmt => "timeout",
        Rule::kw_from | Rule::from_stmt => "from",
        Rule::kw_any => "any",
        Rule::kw_identity | Rule::identity_stmt => "identity",
        Rule::kw_namespace => "namespace",
        Rule::kw_network | Rule::network_stmt => "network",
        Rule::kw_except => "except",
        Rule::kw_host | Rule::host_stmt => "host",
        Rule::kw_authority | Rule::authority_stmt => "authority",
        Rule::kw_backend | Rule::backend => "backend",
        Rule::kw_endpoint | Rule::endpoint_stmt => "endpoint",
        Rule::kw_cluster | Rule::cluster_stmt => "cluster",
        Rule::kw_failover | Rule::failover_stmt => "failover",
        Rule::kw_max_in_flight | Rule::max_in_flight_stmt => "max-in-flight",
        Rule::kw_retry | Rule::retry => "retry",
        Rule::kw_attempts | Rule::attempts_stmt => "attempts",
        Rule::kw_on | Rule::on_stmt => "on",
        Rule::kw_per_try_timeout | Rule::per_try_timeout_stmt => "per-try-timeout",
        Rule::kw_budget | Rule::budget_stmt => "budget",
        Rule::kw_5xx => "5xx",
        Rule::kw_gateway_error => "gateway-error",
        Rule::kw_reset => "reset",
        Rule::kw_cancelled => "cancelled",
        Rule::kw_deadline_exceeded => "deadline-exceeded",
        Rule::kw_internal => "internal",
        Rule::kw_resource_exhausted => "resource-exhausted",
        Rule::kw_unavailable => "unavailable",
        Rule::kw_circuit_breaker | Rule::circuit_breaker => "circuit-breaker",
        Rule::kw_consecutive_failures | Rule::consecutive_failures_stmt => "consecutive-failures",
        Rule::kw_backoff | Rule::backoff_stmt => "backoff",
        Rule::kw_jitter | Rule::jitter_stmt => "jitter",
        _ => return None,
    })
}

/// The syntax error for a parse that stopped at byte `pos`, where the
/// parser tried the rules `positives`.
fn syntax_error(cx: &Ctx<'_>, pos: usize, positives: &[Rule]) -> Diagnostic {
    let text = cx.text;
    let rest = text.get(pos..).unwrap_or("");
    // A malformed string where a string may stand: say what is wrong with it.
    let wants_string = positives
        .iter()
        .any(|r| matches!(r, Rule::string | Rule::endpoint | Rule::endpoint_addr));
    if wants_string && (rest.starts_with('"') || rest.starts_with("r\"")) {
        if let Err((offset, message)) = lex_string(rest) {
            let at = clamp_to_char_boundary(text, pos + offset);
            return Diagnostic::new(Code::Syntax, cx.span_at(at, at + 1), message);
        }
    }
    let mut wants: Vec<Want> = Vec::new();
    for &rule in positives {
        for w in describe(rule) {
            if !wants.contains(&w) {
                wants.push(w);
            }
        }
    }
    let message = format!(
        "expected {}, found {}",
        expected_words(&wants),
        found_words(rest)
    );
    let end = pos + rest.chars().next().map_or(0, char::len_utf8);
    Diagnostic::new(Code::Syntax, cx.span_at(pos, end), message)
}

/// "`,`, `}` or a statement (`to`, `from`)".
fn expected_words(wants: &[Want]) -> String {
    let close = wants.contains(&Want::Close);
    let end = wants.contains(&Want::End);
    let mut parts: Vec<String> = Vec::new();
    let mut group: Vec<&str> = Vec::new();
    let mut keywords: Vec<&str> = Vec::new();
    for w in wants {
        match *w {
            Want::Thing(t) => parts.push(t.to_string()),
            Want::Kw(k) if (close || end) && STATEMENT_KEYWORDS.contains(&k) => group.push(k),
            Want::Kw(k) => keywords.push(k),
            Want::Close | Want::End => {}
        }
    }
    sort_keywords(&mut keywords);
    // Values ("a string") before punctuation ("`,`").
    parts.sort_by_key(|p| p.starts_with('`'));
    parts.extend(keywords.iter().map(|k| format!("`{k}`")));
    if close {
        parts.push("`}`".to_string());
    }
    if !group.is_empty() {
        sort_keywords(&mut group);
        let listed = group
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let what = if end && !close {
            "an item"
        } else {
            "a statement"
        };
        parts.push(format!("{what} ({listed})"));
    }
    if end {
        parts.push("the end of the file".to_string());
    }
    match parts.len() {
        0 => "something else".to_string(),
        1 => parts.remove(0),
        n => {
            let last = parts.remove(n - 1);
            format!("{} or {last}", parts.join(", "))
        }
    }
}

/// Sorts keywords as the first of [`BLOCK_ORDERS`] that holds them all.
fn sort_keywords(keywords: &mut [&str]) {
    if let Some(order) = BLOCK_ORDERS
        .iter()
        .find(|o| keywords.iter().all(|k| o.contains(k)))
    {
        keywords.sort_by_key(|k| order.iter().position(|o| o == k));
    }
}

/// What stands at the error position, in words: "`foo`", "the end of the file".
fn found_words(rest: &str) -> String {
    let Some(first) = rest.chars().next() else {
        return "the end of the file".to_string();
    };
    if rest.starts_with('"') || rest.starts_with("r\"") {
        return "a string".to_string();
    }
    let is_token =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '%');
    if is_token(first) {
        let token: String = rest.chars().take_while(|&c| is_token(c)).take(40).collect();
        return format!("`{token}`");
    }
    if first.is_whitespace() || first.is_control() || first == '`' {
        return format!("the character U+{:04X}", u32::from(first));
    }
    format!("`{first}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> Diagnostic {
        let (policy, diags) = parse_str("t.sluice", text);
        assert!(policy.items.is_empty(), "{text:?}");
        assert_eq!(diags.len(), 1, "{text:?}: {diags:?}");
        assert_eq!(diags[0].code, Code::Syntax);
        diags[0].clone()
    }

    fn at(text: &str) -> (u32, u32, String) {
        let d = error(text);
        (d.span.line, d.span.column, d.message)
    }

    #[test]
    fn statement_lists_are_worded() {
        let (line, col, msg) = at("server a {\n  protocol http\n  bogus\n}");
        assert_eq!((line, col), (3, 3));
        assert_eq!(
            msg,
            "expected `}` or a statement (`port`, `protocol`, `default`, `route`), found `bogus`"
        );
        let (_, _, msg) = at("server a { port 80 x }");
        assert_eq!(
            msg,
            "expected `,`, `}` or a statement (`port`, `protocol`, `default`, `route`), found `x`"
        );
    }

    #[test]
    fn top_level_is_worded() {
        let (line, col, msg) = at("# nothing\n  nonsense");
        assert_eq!((line, col), (2, 3));
        assert_eq!(
            msg,
            "expected an item (`mesh`, `server`, `allow`, `deny`, `egress`, `service`) or the end of the file, found `nonsense`"
        );
        let (_, _, msg) = at("server a { }\nwhat");
        assert!(msg.starts_with("expected an item ("), "{msg}");
    }

    #[test]
    fn values_are_worded() {
        assert_eq!(
            at("server a { route r { path prefix } }").2,
            "expected a string, found `}`"
        );
        assert_eq!(
            at("server a { protocol udp }").2,
            "expected `http`, `grpc` or `tcp`, found `udp`"
        );
        assert_eq!(
            at("allow a { from everyone }").2,
            "expected `any`, `authenticated`, `identity`, `namespace` or `network`, found `everyone`"
        );
        assert_eq!(
            at("allow a { from network 10.0.0.0/8 x }").2,
            "expected `,`, `except`, `}` or a statement (`to`, `from`), found `x`"
        );
        assert_eq!(at("server {").2, "expected a name, found `{`");
        assert_eq!(at("server a").2, "expected `{`, found the end of the file");
        assert!(at("service s { timeout 5 }")
            .2
            .starts_with("expected a duration"));
        assert!(at("service s { timeout 5sec }")
            .2
            .starts_with("expected a duration"));
        assert!(at("service s { retry { on bogus } }")
            .2
            .starts_with("expected a retry condition"));
        assert!(at("service s { backend b { endpoint 10.0.0.1 } }")
            .2
            .starts_with("expected an endpoint"));
        assert!(at("server a { route r { header \"x\" } }")
            .2
            .starts_with("expected `=`, `~` or `present`"));
    }

    #[test]
    fn values_come_before_punctuation() {
        assert_eq!(
            at("service s { route r { to a").2,
            "expected a number, `,`, `}` or a statement (`method`, `path`, `grpc`, `header`, `query`, `to`, `timeout`, `retry`), found the end of the file"
        );
    }

    #[test]
    fn bad_strings_are_pointed_at() {
        let (line, col, msg) = at("server a {\n  route r { path \"/a\\qb\" }\n}");
        assert_eq!((line, col), (2, 21));
        assert!(msg.contains("unknown escape `\\q`"), "{msg}");
        let (line, col, msg) = at("server a {\n  route r { path \"/a }\n}\n");
        assert_eq!((line, col), (2, 18));
        assert!(msg.starts_with("unterminated string"), "{msg}");
        let (line, col, msg) = at("mesh { trust-domain \"a\\u{DFFF}\" }");
        assert_eq!((line, col), (1, 23));
        assert!(msg.contains("not a Unicode scalar value"), "{msg}");
    }
}
