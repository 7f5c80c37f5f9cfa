//! The pest parser (`grammar.pest`) and the conversion of its concrete
//! syntax tree into the AST of [`crate::ast`].
//!
//! The grammar guarantees the shape of every pair, so the conversion only
//! fails on a `\u{...}` escape that is not a Unicode scalar value (a syntax
//! error the grammar does not check). A shape it does not expect would be a
//! bug; it is reported as a syntax error rather than a panic.

use crate::ast::*;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::LineIndex;
use pest::iterators::{Pair, Pairs};
use pest_derive::Parser;

/// The generated pest parser of `grammar.pest`.
#[derive(Parser)]
#[grammar = "grammar.pest"]
pub(crate) struct SluiceParser;

/// The result of converting a node: the node, or the file's one syntax error.
pub(crate) type Res<T> = Result<T, Diagnostic>;

/// What the conversion of one file needs: its text, id and line index.
pub(crate) struct Ctx<'a> {
    /// The file's text.
    pub text: &'a str,
    /// The file's id.
    pub file: FileId,
    /// Line starts of `text`.
    pub index: &'a LineIndex,
}

impl Ctx<'_> {
    /// The span of bytes `start..end`.
    pub fn span_at(&self, start: usize, end: usize) -> Span {
        self.index.span(self.text, self.file, start, end)
    }

    /// The span of a pair.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        self.span_at(s.start(), s.end())
    }

    /// A syntax error for a CST shape the conversion did not expect.
    fn unexpected(&self, span: Span, what: &str) -> Diagnostic {
        Diagnostic::new(
            Code::Syntax,
            span,
            format!("internal parser error: unexpected {what}"),
        )
    }

    /// `pair`'s text as a name.
    fn name(&self, pair: &Pair<'_, Rule>) -> Name {
        Spanned::new(pair.as_str().to_string(), self.span(pair))
    }

    /// `pair`'s text as an integer (saturating).
    fn int(&self, pair: &Pair<'_, Rule>) -> Int {
        Spanned::new(saturating_u64(pair.as_str()), self.span(pair))
    }

    /// A string literal, decoded.
    fn string(&self, pair: &Pair<'_, Rule>) -> Res<Str> {
        let span = self.span(pair);
        match lex_string(pair.as_str()) {
            Ok((value, _)) => Ok(Spanned::new(value, span)),
            Err((offset, message)) => {
                let start = pair.as_span().start() + offset;
                Err(Diagnostic::new(
                    Code::Syntax,
                    self.span_at(start, start + 1),
                    message,
                ))
            }
        }
    }

    /// A duration literal in milliseconds (saturating).
    fn duration(&self, pair: &Pair<'_, Rule>) -> Duration {
        let text = pair.as_str();
        let digits_end = text
            .bytes()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(text.len());
        let n = saturating_u64(&text[..digits_end]);
        let factor: u64 = match &text[digits_end..] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            _ => 3_600_000,
        };
        Spanned::new(n.saturating_mul(factor), self.span(pair))
    }

    /// A percent literal: the number before `%` (saturating).
    fn percent(&self, pair: &Pair<'_, Rule>) -> Percent {
        let text = pair.as_str();
        Spanned::new(saturating_u64(text.trim_end_matches('%')), self.span(pair))
    }
}

/// Decimal digits to `u64`, saturating at `u64::MAX`.
pub(crate) fn saturating_u64(digits: &str) -> u64 {
    digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        })
}

/// Lexes a string literal at the start of `src` (`"..."` or `r"..."`).
///
/// Returns the decoded value and the literal's length in bytes, or the byte
/// offset (in `src`) and message of the first problem: an unterminated
/// string, an unknown escape, a malformed `\u{...}`, or one that is not a
/// Unicode scalar value.
pub(crate) fn lex_string(src: &str) -> Result<(String, usize), (usize, String)> {
    if let Some(raw) = src.strip_prefix("r\"") {
        return match raw.find('"') {
            Some(end) => Ok((raw[..end].to_string(), end + 3)),
            None => Err((0, "unterminated raw string (no closing `\"`)".to_string())),
        };
    }
    let Some(body) = src.strip_prefix('"') else {
        return Err((0, "expected a string".to_string()));
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 2)),
            '\\' => {
                let at = i + 1; // offset of the backslash in `src`
                match chars.next() {
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'u')) => out.push(lex_unicode_escape(body, i, &mut chars)?),
                    Some((_, other)) => {
                        let shown = if other.is_control() || other == '`' {
                            format!("U+{:04X} after `\\`", u32::from(other))
                        } else {
                            format!("`\\{other}`")
                        };
                        return Err((
                            at,
                            format!(
                                "unknown escape {shown} in a string (write `\\\\`, `\\\"`, `\\n`, `\\r`, `\\t` or `\\u{{HEX}}`)"
                            ),
                        ));
                    }
                    None => return Err((0, "unterminated string (no closing `\"`)".to_string())),
                }
            }
            _ => out.push(c),
        }
    }
    Err((0, "unterminated string (no closing `\"`)".to_string()))
}

/// Lexes the rest of a `\u{HEX}` escape whose backslash is at byte
/// `backslash` of `body` (the string after its opening quote); `chars` is
/// just past the `u`. Offsets in errors are relative to the opening quote.
fn lex_unicode_escape(
    body: &str,
    backslash: usize,
    chars: &mut std::str::CharIndices<'_>,
) -> Result<char, (usize, String)> {
    let at = backslash + 1;
    let bad = || {
        (
            at,
            "malformed unicode escape in a string (write `\\u{HEX}` with 1 to 6 hex digits)"
                .to_string(),
        )
    };
    if !matches!(chars.next(), Some((_, '{'))) {
        return Err(bad());
    }
    let digits_start = backslash + 3;
    let mut digits = 0;
    loop {
        match chars.next() {
            Some((_, '}')) if (1..=6).contains(&digits) => break,
            Some((_, c)) if c.is_ascii_hexdigit() && digits < 6 => digits += 1,
            _ => return Err(bad()),
        }
    }
    let hex = body.get(digits_start..digits_start + digits).unwrap_or("");
    let value = u32::from_str_radix(hex, 16).map_err(|_| bad())?;
    char::from_u32(value).ok_or_else(|| {
        (at, format!("`\\u{{{hex}}}` in a string is not a Unicode scalar value (a surrogate or above 10FFFF)"))
    })
}

/// The children of a pair, without punctuation (`{`, `}`, `,`).
struct Kids<'i> {
    it: Pairs<'i, Rule>,
    /// The parent's byte range, for internal errors.
    range: (usize, usize),
}

impl<'i> Kids<'i> {
    /// The children of `pair`.
    fn of(pair: Pair<'i, Rule>) -> Self {
        let s = pair.as_span();
        Kids {
            range: (s.start(), s.end()),
            it: pair.into_inner(),
        }
    }

    /// The next child that is not punctuation.
    fn next(&mut self) -> Option<Pair<'i, Rule>> {
        self.it
            .by_ref()
            .find(|p| !matches!(p.as_rule(), Rule::lbrace | Rule::rbrace | Rule::comma))
    }

    /// The next child, which must be `rule`.
    fn expect(&mut self, cx: &Ctx<'_>, rule: Rule) -> Res<Pair<'i, Rule>> {
        match self.next() {
            Some(p) if p.as_rule() == rule => Ok(p),
            Some(p) => {
                Err(cx.unexpected(cx.span(&p), &format!("{:?} (wanted {rule:?})", p.as_rule())))
            }
            None => Err(cx.unexpected(
                cx.span_at(self.range.0, self.range.1),
                &format!("end of node (wanted {rule:?})"),
            )),
        }
    }

    /// The next child, whatever it is.
    fn any(&mut self, cx: &Ctx<'_>) -> Res<Pair<'i, Rule>> {
        self.next()
            .ok_or_else(|| cx.unexpected(cx.span_at(self.range.0, self.range.1), "end of node"))
    }

    /// The children of `pair` after its first child, which must be `keyword`.
    fn after(cx: &Ctx<'_>, pair: Pair<'i, Rule>, keyword: Rule) -> Res<Self> {
        let mut kids = Kids::of(pair);
        kids.expect(cx, keyword)?;
        Ok(kids)
    }

    /// The remaining children as statements, each converted by `node`
    /// (given the statement and its span) and kept with its span.
    fn statements<T>(
        &mut self,
        cx: &Ctx<'_>,
        mut node: impl FnMut(Pair<'i, Rule>, Span) -> Res<T>,
    ) -> Res<Vec<Spanned<T>>> {
        let mut stmts = Vec::new();
        while let Some(stmt) = self.next() {
            let span = cx.span(&stmt);
            stmts.push(Spanned::new(node(stmt, span)?, span));
        }
        Ok(stmts)
    }

    /// Like [`Kids::statements`], for statements that open with a keyword:
    /// `node` is given the statement's rule, its children after the keyword
    /// and its span.
    fn keyword_statements<T>(
        &mut self,
        cx: &Ctx<'_>,
        mut node: impl FnMut(Rule, Kids<'i>, Span) -> Res<T>,
    ) -> Res<Vec<Spanned<T>>> {
        self.statements(cx, |stmt, span| {
            let rule = stmt.as_rule();
            let mut kids = Kids::of(stmt);
            kids.any(cx)?; // the keyword
            node(rule, kids, span)
        })
    }
}

/// Converts the `policy` pair of one file into its items.
pub(crate) fn convert_policy(cx: &Ctx<'_>, policy: Pair<'_, Rule>) -> Res<Vec<Item>> {
    let mut items = Vec::new();
    for pair in policy.into_inner() {
        let item = match pair.as_rule() {
            Rule::mesh => Item::Mesh(mesh(cx, pair)?),
            Rule::server => Item::Server(server(cx, pair)?),
            Rule::auth_rule => Item::Rule(auth_rule(cx, pair)?),
            Rule::egress => Item::Egress(egress(cx, pair)?),
            Rule::service => Item::Service(service(cx, pair)?),
            Rule::EOI => continue,
            other => return Err(cx.unexpected(cx.span(&pair), &format!("{other:?} at top level"))),
        };
        items.push(item);
    }
    Ok(items)
}

/// A block opened by `keyword`: the keyword's span and the block's children
/// after it.
fn block<'i>(cx: &Ctx<'_>, pair: Pair<'i, Rule>, keyword: Rule) -> Res<(Span, Kids<'i>)> {
    let mut kids = Kids::of(pair);
    let span = cx.span(&kids.expect(cx, keyword)?);
    Ok((span, kids))
}

/// A block opened by `keyword NAME`: the keyword's span, the name and the
/// block's children after it.
fn named_block<'i>(
    cx: &Ctx<'_>,
    pair: Pair<'i, Rule>,
    keyword: Rule,
) -> Res<(Span, Name, Kids<'i>)> {
    let (span, mut kids) = block(cx, pair, keyword)?;
    let name = cx.name(&kids.expect(cx, Rule::name)?);
    Ok((span, name, kids))
}

/// A rule opened by `allow NAME` or `deny NAME`: the keyword's span, its
/// effect, the name and the rule's children after it.
fn effect_block<'i>(cx: &Ctx<'_>, pair: Pair<'i, Rule>) -> Res<(Span, Effect, Name, Kids<'i>)> {
    let mut kids = Kids::of(pair);
    let kw = kids.any(cx)?;
    let span = cx.span(&kw);
    let effect = effect(cx, &kw)?;
    let name = cx.name(&kids.expect(cx, Rule::name)?);
    Ok((span, effect, name, kids))
}

/// The effect of a `kw_allow`/`kw_deny` pair.
fn effect(cx: &Ctx<'_>, pair: &Pair<'_, Rule>) -> Res<Effect> {
    match pair.as_rule() {
        Rule::kw_allow => Ok(Effect::Allow),
        Rule::kw_deny => Ok(Effect::Deny),
        other => Err(cx.unexpected(cx.span(pair), &format!("{other:?} as allow/deny"))),
    }
}

/// A `default_stmt` value.
fn default_value(cx: &Ctx<'_>, pair: &Pair<'_, Rule>) -> Res<Spanned<Default>> {
    let value = match pair.as_rule() {
        Rule::kw_allow => Default::Allow,
        Rule::kw_deny => Default::Deny,
        Rule::kw_audit => Default::Audit,
        Rule::kw_authenticated => Default::Authenticated,
        other => return Err(cx.unexpected(cx.span(pair), &format!("{other:?} as a default"))),
    };
    Ok(Spanned::new(value, cx.span(pair)))
}

/// The default of a `default_stmt` pair.
fn default_stmt(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Spanned<Default>> {
    let value = Kids::after(cx, pair, Rule::kw_default)?.any(cx)?;
    default_value(cx, &value)
}

fn mesh(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Mesh> {
    let (span, mut kids) = block(cx, pair, Rule::kw_mesh)?;
    let stmts = kids.statements(cx, |stmt, stmt_span| {
        Ok(match stmt.as_rule() {
            Rule::trust_domain_stmt => {
                let mut k = Kids::after(cx, stmt, Rule::kw_trust_domain)?;
                MeshStmt::TrustDomain(cx.string(&k.expect(cx, Rule::string)?)?)
            }
            Rule::default_stmt => MeshStmt::Default(default_stmt(cx, stmt)?),
            other => return Err(cx.unexpected(stmt_span, &format!("{other:?} in mesh"))),
        })
    })?;
    Ok(Mesh { span, stmts })
}

/// The port ranges of a `port_stmt` pair.
fn ports(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Vec<PortRange>> {
    let mut kids = Kids::after(cx, pair, Rule::kw_port)?;
    let mut out = Vec::new();
    while let Some(range) = kids.next() {
        if range.as_rule() != Rule::port_range {
            return Err(cx.unexpected(cx.span(&range), "token in a port list"));
        }
        let text = range.as_str();
        let start = range.as_span().start();
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => {
                let b_start = start + a.len() + 1;
                (
                    Spanned::new(saturating_u64(a), cx.span_at(start, start + a.len())),
                    Some(Spanned::new(
                        saturating_u64(b),
                        cx.span_at(b_start, b_start + b.len()),
                    )),
                )
            }
            None => (cx.int(&range), None),
        };
        out.push(PortRange { first, last });
    }
    Ok(out)
}

fn server(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Server> {
    let (span, name, mut kids) = named_block(cx, pair, Rule::kw_server)?;
    let stmts = kids.statements(cx, |stmt, stmt_span| {
        Ok(match stmt.as_rule() {
            Rule::port_stmt => ServerStmt::Port(ports(cx, stmt)?),
            Rule::protocol_stmt => {
                let value = Kids::after(cx, stmt, Rule::kw_protocol)?.any(cx)?;
                let protocol = match value.as_rule() {
                    Rule::kw_http => Protocol::Http,
                    Rule::kw_grpc => Protocol::Grpc,
                    Rule::kw_tcp => Protocol::Tcp,
                    other => {
                        return Err(
                            cx.unexpected(cx.span(&value), &format!("{other:?} as a protocol"))
                        )
                    }
                };
                ServerStmt::Protocol(Spanned::new(protocol, cx.span(&value)))
            }
            Rule::default_stmt => ServerStmt::Default(default_stmt(cx, stmt)?),
            Rule::route => ServerStmt::Route(route(cx, stmt)?),
            other => return Err(cx.unexpected(stmt_span, &format!("{other:?} in a server"))),
        })
    })?;
    Ok(Server { span, name, stmts })
}

/// A header or query statement's name and value match.
fn value_match(cx: &Ctx<'_>, kids: &mut Kids<'_>) -> Res<(Str, ValueMatch)> {
    let name = cx.string(&kids.expect(cx, Rule::string)?)?;
    let op = kids.any(cx)?;
    let m = match op.as_rule() {
        Rule::op_eq => ValueMatch::Exact(cx.string(&kids.expect(cx, Rule::string)?)?),
        Rule::op_match => ValueMatch::Regex(cx.string(&kids.expect(cx, Rule::string)?)?),
        Rule::kw_present => ValueMatch::Present,
        other => return Err(cx.unexpected(cx.span(&op), &format!("{other:?} as a value match"))),
    };
    Ok((name, m))
}

fn route(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Route> {
    let (span, name, mut kids) = named_block(cx, pair, Rule::kw_route)?;
    let stmts = kids.statements(cx, |stmt, stmt_span| match stmt.as_rule() {
        Rule::retry => Ok(RouteStmt::Retry(retry(cx, stmt)?)),
        Rule::timeout_stmt => Ok(RouteStmt::Timeout(timeout(cx, stmt)?)),
        rule => {
            let mut k = Kids::of(stmt);
            k.any(cx)?; // the keyword
            route_match(cx, rule, k, stmt_span)
        }
    })?;
    Ok(Route { span, name, stmts })
}

/// A route statement of rule `rule` other than `retry` and `timeout`, from
/// its children after the keyword.
fn route_match(cx: &Ctx<'_>, rule: Rule, mut k: Kids<'_>, stmt_span: Span) -> Res<RouteStmt> {
    Ok(match rule {
        Rule::method_stmt => {
            let mut methods = Vec::new();
            while let Some(m) = k.next() {
                methods.push(Spanned::new(m.as_str().to_string(), cx.span(&m)));
            }
            RouteStmt::Method(methods)
        }
        Rule::path_stmt => {
            let first = k.any(cx)?;
            RouteStmt::Path(match first.as_rule() {
                Rule::string => PathMatch::Exact(cx.string(&first)?),
                Rule::kw_prefix => PathMatch::Prefix(cx.string(&k.expect(cx, Rule::string)?)?),
                Rule::kw_regex => PathMatch::Regex(cx.string(&k.expect(cx, Rule::string)?)?),
                other => {
                    return Err(cx.unexpected(cx.span(&first), &format!("{other:?} in a path")))
                }
            })
        }
        Rule::grpc_stmt => RouteStmt::Grpc(cx.string(&k.expect(cx, Rule::string)?)?),
        Rule::header_stmt => {
            let (n, m) = value_match(cx, &mut k)?;
            RouteStmt::Header(n, m)
        }
        Rule::query_stmt => {
            let (n, m) = value_match(cx, &mut k)?;
            RouteStmt::Query(n, m)
        }
        Rule::route_to_stmt => {
            let mut to = Vec::new();
            while let Some(w) = k.next() {
                let mut wk = Kids::of(w);
                let name = cx.name(&wk.expect(cx, Rule::name)?);
                let weight = wk.next().map(|int| cx.int(&int));
                to.push(WeightedName { name, weight });
            }
            RouteStmt::To(to)
        }
        other => return Err(cx.unexpected(stmt_span, &format!("{other:?} in a route"))),
    })
}

/// The duration of a `timeout_stmt` pair.
fn timeout(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Duration> {
    let mut k = Kids::after(cx, pair, Rule::kw_timeout)?;
    Ok(cx.duration(&k.expect(cx, Rule::duration)?))
}

fn retry(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Retry> {
    let (span, mut kids) = block(cx, pair, Rule::kw_retry)?;
    let stmts = kids.keyword_statements(cx, |rule, mut k, stmt_span| {
        Ok(match rule {
            Rule::attempts_stmt => RetryStmt::Attempts(cx.int(&k.expect(cx, Rule::int)?)),
            Rule::on_stmt => {
                let mut conds = Vec::new();
                while let Some(c) = k.next() {
                    conds.push(cond(cx, c)?);
                }
                RetryStmt::On(conds)
            }
            Rule::per_try_timeout_stmt => {
                RetryStmt::PerTryTimeout(cx.duration(&k.expect(cx, Rule::duration)?))
            }
            Rule::budget_stmt => RetryStmt::Budget(cx.percent(&k.expect(cx, Rule::percent)?)),
            other => return Err(cx.unexpected(stmt_span, &format!("{other:?} in a retry"))),
        })
    })?;
    Ok(Retry { span, stmts })
}

/// A `cond` pair.
fn cond(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Spanned<Cond>> {
    let span = cx.span(&pair);
    let mut k = Kids::of(pair);
    let inner = k.any(cx)?;
    let c = match inner.as_rule() {
        Rule::kw_5xx => Cond::ServerError,
        Rule::kw_gateway_error => Cond::GatewayError,
        Rule::kw_reset => Cond::Reset,
        Rule::kw_cancelled => Cond::Cancelled,
        Rule::kw_deadline_exceeded => Cond::DeadlineExceeded,
        Rule::kw_internal => Cond::Internal,
        Rule::kw_resource_exhausted => Cond::ResourceExhausted,
        Rule::kw_unavailable => Cond::Unavailable,
        Rule::int => Cond::Status(saturating_u64(inner.as_str())),
        other => return Err(cx.unexpected(span, &format!("{other:?} as a retry condition"))),
    };
    Ok(Spanned::new(c, span))
}

fn auth_rule(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<crate::ast::Rule> {
    let (span, effect, name, mut kids) = effect_block(cx, pair)?;
    let stmts = kids.statements(cx, |stmt, stmt_span| {
        Ok(match stmt.as_rule() {
            Rule::rule_to_stmt => {
                let mut k = Kids::after(cx, stmt, Rule::kw_to)?;
                let mut targets = Vec::new();
                while let Some(t) = k.next() {
                    targets.push(target(cx, &t));
                }
                RuleStmt::To(targets)
            }
            Rule::from_stmt => RuleStmt::From(principal(cx, stmt)?),
            other => return Err(cx.unexpected(stmt_span, &format!("{other:?} in a rule"))),
        })
    })?;
    Ok(crate::ast::Rule {
        span,
        effect,
        name,
        stmts,
    })
}

/// A `target` pair: `server` or `server.route`.
fn target(cx: &Ctx<'_>, pair: &Pair<'_, Rule>) -> Target {
    let text = pair.as_str();
    let start = pair.as_span().start();
    let span = cx.span(pair);
    match text.split_once('.') {
        Some((server, route)) => {
            let route_start = start + server.len() + 1;
            Target {
                server: Spanned::new(server.to_string(), cx.span_at(start, start + server.len())),
                route: Some(Spanned::new(
                    route.to_string(),
                    cx.span_at(route_start, route_start + route.len()),
                )),
                span,
            }
        }
        None => Target {
            server: Spanned::new(text.to_string(), span),
            route: None,
            span,
        },
    }
}

/// The principal of a `from_stmt` pair.
fn principal(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Principal> {
    let mut k = Kids::after(cx, pair, Rule::kw_from)?;
    let kw = k.any(cx)?;
    Ok(match kw.as_rule() {
        Rule::kw_any => Principal::Any,
        Rule::kw_authenticated => Principal::Authenticated,
        Rule::kw_identity => Principal::Identity(strings(cx, &mut k)?),
        Rule::kw_namespace => Principal::Namespace(strings(cx, &mut k)?),
        Rule::kw_network => Principal::Network(networks(cx, &mut k)?),
        other => return Err(cx.unexpected(cx.span(&kw), &format!("{other:?} as a principal"))),
    })
}

/// The remaining children, all strings.
fn strings(cx: &Ctx<'_>, kids: &mut Kids<'_>) -> Res<Vec<Str>> {
    let mut out = Vec::new();
    while let Some(s) = kids.next() {
        if s.as_rule() != Rule::string {
            return Err(cx.unexpected(cx.span(&s), "token in a string list"));
        }
        out.push(cx.string(&s)?);
    }
    Ok(out)
}

/// The remaining children: `NET, ... (except NET, ...)?`.
fn networks(cx: &Ctx<'_>, kids: &mut Kids<'_>) -> Res<Networks> {
    let mut nets = Networks {
        include: Vec::new(),
        except: Vec::new(),
    };
    let mut in_except = false;
    while let Some(p) = kids.next() {
        match p.as_rule() {
            Rule::kw_except => in_except = true,
            Rule::net => {
                let net = Spanned::new(p.as_str().to_string(), cx.span(&p));
                if in_except {
                    nets.except.push(net);
                } else {
                    nets.include.push(net);
                }
            }
            other => {
                return Err(cx.unexpected(cx.span(&p), &format!("{other:?} in a network list")))
            }
        }
    }
    Ok(nets)
}

fn egress(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Egress> {
    let (span, mut kids) = block(cx, pair, Rule::kw_egress)?;
    let stmts = kids.statements(cx, |stmt, stmt_span| {
        Ok(match stmt.as_rule() {
            Rule::egress_default_stmt => {
                let v = Kids::after(cx, stmt, Rule::kw_default)?.any(cx)?;
                EgressStmt::Default(Spanned::new(effect(cx, &v)?, cx.span(&v)))
            }
            Rule::egress_rule => EgressStmt::Rule(egress_rule(cx, stmt)?),
            other => return Err(cx.unexpected(stmt_span, &format!("{other:?} in egress"))),
        })
    })?;
    Ok(Egress { span, stmts })
}

fn egress_rule(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<EgressRule> {
    let (span, effect, name, mut kids) = effect_block(cx, pair)?;
    let stmts = kids.statements(cx, |stmt, stmt_span| {
        Ok(match stmt.as_rule() {
            Rule::port_stmt => DestStmt::Port(ports(cx, stmt)?),
            Rule::host_stmt => {
                DestStmt::Host(strings(cx, &mut Kids::after(cx, stmt, Rule::kw_host)?)?)
            }
            Rule::network_stmt => {
                DestStmt::Network(networks(cx, &mut Kids::after(cx, stmt, Rule::kw_network)?)?)
            }
            other => return Err(cx.unexpected(stmt_span, &format!("{other:?} in an egress rule"))),
        })
    })?;
    Ok(EgressRule {
        span,
        effect,
        name,
        stmts,
    })
}

fn service(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Service> {
    let (span, name, mut kids) = named_block(cx, pair, Rule::kw_service)?;
    let stmts = kids.statements(cx, |stmt, stmt_span| {
        Ok(match stmt.as_rule() {
            Rule::authority_stmt => ServiceStmt::Authority(strings(
                cx,
                &mut Kids::after(cx, stmt, Rule::kw_authority)?,
            )?),
            Rule::timeout_stmt => ServiceStmt::Timeout(timeout(cx, stmt)?),
            Rule::retry => ServiceStmt::Retry(retry(cx, stmt)?),
            Rule::circuit_breaker => ServiceStmt::CircuitBreaker(circuit_breaker(cx, stmt)?),
            Rule::backend => ServiceStmt::Backend(backend(cx, stmt)?),
            Rule::route => ServiceStmt::Route(route(cx, stmt)?),
            other => return Err(cx.unexpected(stmt_span, &format!("{other:?} in a service"))),
        })
    })?;
    Ok(Service { span, name, stmts })
}

fn backend(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<Backend> {
    let (span, name, mut kids) = named_block(cx, pair, Rule::kw_backend)?;
    let stmts = kids.keyword_statements(cx, |rule, mut k, stmt_span| {
        Ok(match rule {
            Rule::endpoint_stmt => {
                let mut eps = Vec::new();
                while let Some(ep) = k.next() {
                    let ep_span = cx.span(&ep);
                    let inner = Kids::of(ep).any(cx)?;
                    let value = match inner.as_rule() {
                        Rule::endpoint_addr => Endpoint::Addr(inner.as_str().to_string()),
                        Rule::string => Endpoint::Name(cx.string(&inner)?.node),
                        other => {
                            return Err(cx.unexpected(ep_span, &format!("{other:?} as an endpoint")))
                        }
                    };
                    eps.push(Spanned::new(value, ep_span));
                }
                BackendStmt::Endpoint(eps)
            }
            Rule::identity_stmt => BackendStmt::Identity(cx.string(&k.expect(cx, Rule::string)?)?),
            Rule::cluster_stmt => BackendStmt::Cluster(cx.string(&k.expect(cx, Rule::string)?)?),
            Rule::failover_stmt => BackendStmt::Failover(cx.name(&k.expect(cx, Rule::name)?)),
            Rule::max_in_flight_stmt => BackendStmt::MaxInFlight(cx.int(&k.expect(cx, Rule::int)?)),
            other => return Err(cx.unexpected(stmt_span, &format!("{other:?} in a backend"))),
        })
    })?;
    Ok(Backend { span, name, stmts })
}

fn circuit_breaker(cx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Res<CircuitBreaker> {
    let (span, mut kids) = block(cx, pair, Rule::kw_circuit_breaker)?;
    let stmts = kids.keyword_statements(cx, |rule, mut k, stmt_span| {
        Ok(match rule {
            Rule::consecutive_failures_stmt => {
                BreakerStmt::ConsecutiveFailures(cx.int(&k.expect(cx, Rule::int)?))
            }
            Rule::backoff_stmt => {
                let a = cx.duration(&k.expect(cx, Rule::duration)?);
                let b = cx.duration(&k.expect(cx, Rule::duration)?);
                BreakerStmt::Backoff(a, b)
            }
            Rule::jitter_stmt => BreakerStmt::Jitter(cx.percent(&k.expect(cx, Rule::percent)?)),
            other => {
                return Err(cx.unexpected(stmt_span, &format!("{other:?} in a circuit-breaker")))
            }
        })
    })?;
    Ok(CircuitBreaker { span, stmts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturating_numbers() {
        assert_eq!(saturating_u64("0"), 0);
        assert_eq!(saturating_u64("65535"), 65535);
        assert_eq!(saturating_u64("18446744073709551615"), u64::MAX);
        assert_eq!(saturating_u64("99999999999999999999999999"), u64::MAX);
    }

    #[test]
    fn lexes_strings() {
        assert_eq!(
            lex_string(r#""a\"b\\c\n\r\t" tail"#),
            Ok(("a\"b\\c\n\r\t".to_string(), 15))
        );
        assert_eq!(
            lex_string(r#""\u{41}\u{1F600}\u{0}""#).map(|v| v.0),
            Ok("A\u{1F600}\0".to_string())
        );
        assert_eq!(
            lex_string(r#"r"[a-z]+\d""#),
            Ok(("[a-z]+\\d".to_string(), 11))
        );
        assert_eq!(lex_string(r#""""#), Ok((String::new(), 2)));
        assert_eq!(lex_string("\"é\""), Ok(("é".to_string(), 4)));
    }

    #[test]
    fn string_errors_point_at_the_problem() {
        assert_eq!(lex_string(r#""abc"#).unwrap_err().0, 0);
        assert_eq!(lex_string(r#"r"abc"#).unwrap_err().0, 0);
        let (at, msg) = lex_string(r#""ab\qc""#).unwrap_err();
        assert_eq!(at, 3);
        assert!(msg.contains("`\\q`"), "{msg}");
        let (at, msg) = lex_string(r#""a\u{D800}""#).unwrap_err();
        assert_eq!(at, 2);
        assert!(msg.contains("not a Unicode scalar value"), "{msg}");
        assert!(lex_string(r#""\u{110000}""#)
            .unwrap_err()
            .1
            .contains("scalar"));
        assert!(lex_string(r#""\u{}""#).unwrap_err().1.contains("malformed"));
        assert!(lex_string(r#""\u{1234567}""#)
            .unwrap_err()
            .1
            .contains("malformed"));
        assert!(lex_string(r#""\u41""#).unwrap_err().1.contains("malformed"));
        assert!(lex_string("\"\\").is_err());
    }
}
