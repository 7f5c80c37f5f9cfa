//! Policy text to canonical policy text: the layout of `sluice fmt`
//! (spec section 9).
//!
//! The parser drops comments, whitespace and `;` (they are silent in the
//! grammar), so the formatter takes the tokens (the leaves of the concrete
//! syntax tree) and recovers comments by scanning the gaps between them;
//! strings are tokens, so a `#` inside `"..."` or `r"..."` is never taken
//! for a comment. Only whitespace, `;` and comments change: the tokens, and
//! so the AST and the bundle, stay the same.
//!
//! The layout, where the spec leaves it open (see `docs/fmt.md`):
//! - Two spaces of indentation per block; one space between the tokens of a
//!   statement, none before and one after `,`; no column alignment.
//! - A block with no newline between its `{` and `}` (newlines inside
//!   strings do not count) and no comment in it or after its `}` on the
//!   same line stays on one line as `{ a  b }`, its statements separated by
//!   two spaces; an empty block without comments is `{}`; any other block
//!   has one statement per line. Top-level items always start a line.
//! - A comment after a statement on the same line stays at the end of that
//!   statement's line (one space before `#`); one after `{` stays after
//!   `{`. A comment on its own line stays on its own line before the
//!   statement that follows it, at that statement's indentation; comments
//!   before `}` stay at the end of the block, at the indentation of its
//!   statements. A comment inside a statement (between two of its tokens,
//!   or before the `{` of a block) moves to its own line just before the
//!   statement. Trailing spaces and tabs of a comment are dropped.
//! - Blank lines between top-level statements and comments are kept, at
//!   most one in a row; inside blocks they are dropped (the spec keeps
//!   them between top-level statements only); none at the start or end of
//!   the file.
//! - `;` separators are dropped; strings are kept exactly as written.
//! - The text ends with one newline (an empty policy formats to nothing).

use crate::cst_to_ast::{Rule, SluiceParser};
use crate::diagnostic::{Code, Diagnostic};
use crate::parse;
use crate::source::LineIndex;
use pest::iterators::Pair;
use pest::Parser as _;

/// Formats one policy file in the canonical layout.
///
/// Errors: the file's syntax diagnostics (as [`parse::parse_str`] gives
/// them, for file id 0), when it does not parse.
pub fn format_source(source: &str) -> Result<String, Vec<Diagnostic>> {
    let (_, diagnostics) = parse::parse_str("input.sluice", source);
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let tree = Tree::parse(source).map_err(|d| vec![d])?;
    let mut writer = Writer {
        tree: &tree,
        out: String::with_capacity(source.len() + source.len() / 8),
    };
    writer.body(&tree.items, 0, tree.tokens.len());
    Ok(writer.out)
}

/// The comments of a source text, in order, each from its `#` to the end
/// of its line with trailing spaces and tabs dropped (as [`format_source`]
/// writes them). `None` when the text does not parse.
pub fn comments(source: &str) -> Option<Vec<String>> {
    let tree = Tree::parse(source).ok()?;
    Some(
        tree.gaps
            .iter()
            .flat_map(|g| g.trailing.iter().chain(g.own.iter().map(|c| &c.text)))
            .map(|c| (*c).to_string())
            .collect(),
    )
}

/// The tokens of a source text, in order, each as its rule's name and its
/// text: two texts with the same tokens parse to the same AST (up to
/// spans). `None` when the text does not parse.
pub fn tokens(source: &str) -> Option<Vec<(String, String)>> {
    let tree = Tree::parse(source).ok()?;
    Some(
        tree.tokens
            .iter()
            .map(|t| (format!("{:?}", t.rule), source[t.start..t.end].to_string()))
            .collect(),
    )
}

/// Formats arbitrary bytes (decoded lossily) and checks the formatter's
/// contract, for fuzzing: the text formats exactly when it parses; the
/// result formats to itself, has the same tokens (so the same AST, up to
/// spans) and the same comments in the same order, no trailing spaces,
/// and ends with one newline unless empty. Panics when a check fails.
pub fn fuzz_format(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (_, diagnostics) = parse::parse_str("fuzz.sluice", &text);
    let formatted = match format_source(&text) {
        Ok(formatted) => formatted,
        Err(errors) => {
            assert!(!errors.is_empty(), "an error comes with a diagnostic");
            assert!(!diagnostics.is_empty(), "a policy that parses formats");
            return;
        }
    };
    assert!(diagnostics.is_empty(), "a policy that does not parse fails");
    assert_eq!(
        format_source(&formatted).as_ref(),
        Ok(&formatted),
        "formatting is idempotent"
    );
    assert_eq!(tokens(&formatted), tokens(&text), "the tokens are kept");
    assert_eq!(
        comments(&formatted),
        comments(&text),
        "the comments are kept"
    );
    assert!(formatted.is_empty() || formatted.ends_with('\n') && !formatted.ends_with("\n\n"));
    let tokens = tokens(&text).unwrap_or_default();
    if !tokens.iter().any(|(_, token)| token.contains('\n')) {
        for line in formatted.lines() {
            assert!(!line.ends_with([' ', '\t']), "trailing space in {line:?}");
        }
    }
}

/// One token: a leaf of the concrete syntax tree.
struct Token {
    /// Its rule.
    rule: Rule,
    /// Byte range in the source.
    start: usize,
    end: usize,
}

/// A comment on its own line.
struct OwnComment<'a> {
    /// `#...`, trailing spaces and tabs dropped.
    text: &'a str,
    /// Whether a blank line stands before it.
    blank_before: bool,
}

/// What stands between two tokens besides whitespace and `;`.
#[derive(Default)]
struct Gap<'a> {
    /// A comment on the same line as the token before.
    trailing: Option<&'a str>,
    /// Comments on lines of their own.
    own: Vec<OwnComment<'a>>,
    /// Whether a blank line stands before the next token.
    blank_after: bool,
    /// Whether the gap holds a newline (outside comments' text).
    newline: bool,
}

impl Gap<'_> {
    /// Whether the gap holds a comment.
    fn has_comments(&self) -> bool {
        self.trailing.is_some() || !self.own.is_empty()
    }
}

/// A statement or item: its tokens are indices into [`Tree::tokens`].
enum Node {
    /// A statement without a block: tokens `first..=last`.
    Simple { first: usize, last: usize },
    /// A block: header tokens `first..open`, `{` at `open`, `}` at `close`.
    Block {
        first: usize,
        open: usize,
        body: Vec<Node>,
        close: usize,
    },
}

impl Node {
    /// Its first token.
    fn first(&self) -> usize {
        match self {
            Node::Simple { first, .. } | Node::Block { first, .. } => *first,
        }
    }
}

/// A parsed file: tokens, the gaps around them, and the statement tree.
struct Tree<'a> {
    /// The source text.
    text: &'a str,
    /// Every token, in order.
    tokens: Vec<Token>,
    /// `gaps[i]` stands before token `i`; `gaps[tokens.len()]` ends the file.
    gaps: Vec<Gap<'a>>,
    /// The top-level items.
    items: Vec<Node>,
}

impl<'a> Tree<'a> {
    /// Parses `text` with the grammar and scans its gaps.
    fn parse(text: &'a str) -> Result<Self, Diagnostic> {
        let mut pairs = SluiceParser::parse(Rule::policy, text).map_err(|e| {
            let index = LineIndex::new(text);
            let pos = match e.location {
                pest::error::InputLocation::Pos(p) => p,
                pest::error::InputLocation::Span((s, _)) => s,
            };
            let pos = pos.min(text.len());
            let pos = (0..=pos)
                .rev()
                .find(|p| text.is_char_boundary(*p))
                .unwrap_or(0);
            Diagnostic::new(
                Code::Syntax,
                index.span(text, 0, pos, pos),
                "the file could not be parsed".to_string(),
            )
        })?;
        let mut tree = Tree {
            text,
            tokens: Vec::new(),
            gaps: Vec::new(),
            items: Vec::new(),
        };
        if let Some(policy) = pairs.next() {
            for pair in policy.into_inner() {
                if pair.as_rule() != Rule::EOI {
                    let node = tree.node(pair);
                    tree.items.push(node);
                }
            }
        }
        let mut prev = 0;
        for i in 0..=tree.tokens.len() {
            let next = tree.tokens.get(i).map_or(text.len(), |t| t.start);
            tree.gaps.push(scan_gap(&text[prev..next], i > 0));
            prev = tree.tokens.get(i).map_or(prev, |t| t.end);
        }
        Ok(tree)
    }

    /// Converts an item or statement pair, collecting its tokens.
    fn node(&mut self, pair: Pair<'a, Rule>) -> Node {
        let first = self.tokens.len();
        let is_block = pair
            .clone()
            .into_inner()
            .any(|p| p.as_rule() == Rule::lbrace);
        if !is_block {
            self.leaves(pair);
            let last = self.tokens.len().saturating_sub(1).max(first);
            return Node::Simple { first, last };
        }
        let mut open = None;
        let mut close = first;
        let mut body = Vec::new();
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::lbrace => {
                    open = Some(self.tokens.len());
                    self.leaves(child);
                }
                Rule::rbrace => {
                    close = self.tokens.len();
                    self.leaves(child);
                }
                _ if open.is_some() => {
                    let node = self.node(child);
                    body.push(node);
                }
                _ => self.leaves(child),
            }
        }
        Node::Block {
            first,
            open: open.unwrap_or(first),
            body,
            close,
        }
    }

    /// Appends the leaves of `pair` to the tokens.
    fn leaves(&mut self, pair: Pair<'a, Rule>) {
        let span = pair.as_span();
        let rule = pair.as_rule();
        let mut inner = pair.into_inner().peekable();
        if inner.peek().is_none() {
            self.tokens.push(Token {
                rule,
                start: span.start(),
                end: span.end(),
            });
            return;
        }
        for child in inner {
            self.leaves(child);
        }
    }

    /// The text of token `i`.
    fn token(&self, i: usize) -> &'a str {
        let t = &self.tokens[i];
        &self.text[t.start..t.end]
    }

    /// Whether the block statement `first..=close` stays on one line: an
    /// empty body without comments (`{}`), or no comment in the statement
    /// or on its line after its `}` and no newline between `{` and `}`.
    fn one_line(&self, first: usize, open: usize, close: usize, empty: bool) -> bool {
        let inner = &self.gaps[open + 1..=close];
        if empty {
            return !inner.iter().any(Gap::has_comments);
        }
        !self.gaps[first + 1..=close].iter().any(Gap::has_comments)
            && self
                .gaps
                .get(close + 1)
                .is_none_or(|g| g.trailing.is_none())
            && !inner.iter().any(|g| g.newline)
    }
}

/// Scans the text between two tokens: whitespace, `;` and comments.
/// `after_token` is false before the first token (no comment trails it).
fn scan_gap(gap: &str, after_token: bool) -> Gap<'_> {
    let mut out = Gap::default();
    let mut newlines = 0usize;
    let mut rest = gap;
    while let Some(c) = rest.chars().next() {
        if c == '#' {
            let end = rest.find('\n').unwrap_or(rest.len());
            let text = rest[..end].trim_end_matches([' ', '\t', '\r', '\x0b', '\x0c']);
            if after_token && newlines == 0 && out.trailing.is_none() && out.own.is_empty() {
                out.trailing = Some(text);
            } else {
                out.own.push(OwnComment {
                    text,
                    blank_before: newlines >= 2,
                });
            }
            newlines = 0;
            rest = &rest[end..];
            continue;
        }
        if c == '\n' {
            newlines += 1;
            out.newline = true;
        }
        rest = &rest[c.len_utf8()..];
    }
    out.blank_after = newlines >= 2;
    out
}

/// Writes the canonical text of a [`Tree`].
struct Writer<'t, 'a> {
    /// What is written.
    tree: &'t Tree<'a>,
    /// The text so far.
    out: String,
}

impl Writer<'_, '_> {
    /// Two spaces per level.
    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
    }

    /// A comment on its own line.
    fn comment_line(&mut self, depth: usize, text: &str) {
        self.indent(depth);
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// ` #...` if a comment trails the token before `gap`.
    fn trailing(&mut self, gap: usize) {
        if let Some(text) = self.tree.gaps[gap].trailing {
            self.out.push(' ');
            self.out.push_str(text);
        }
    }

    /// The statements of a block (or the file) at `depth`, then the own-line
    /// comments of the gap before `close` (the `}`, or the end of the file).
    /// Blank lines are kept (at most one in a row) only at the top level.
    fn body(&mut self, nodes: &[Node], depth: usize, close: usize) {
        let mut first = true;
        let top = depth == 0;
        for node in nodes {
            let gap = &self.tree.gaps[node.first()];
            for c in &gap.own {
                if top && c.blank_before && !first {
                    self.out.push('\n');
                }
                self.comment_line(depth, c.text);
                first = false;
            }
            self.statement(node, depth, top && gap.blank_after && !first);
            first = false;
        }
        for c in &self.tree.gaps[close].own {
            if top && c.blank_before && !first {
                self.out.push('\n');
            }
            self.comment_line(depth, c.text);
            first = false;
        }
    }

    /// One statement on its own line(s) at `depth`, after a blank line if
    /// `blank`; comments inside it go on lines of their own before it.
    fn statement(&mut self, node: &Node, depth: usize, blank: bool) {
        if blank {
            self.out.push('\n');
        }
        let (first, head_end) = match node {
            Node::Simple { first, last } => (*first, *last),
            Node::Block { first, open, .. } => (*first, *open),
        };
        for gap in first + 1..=head_end {
            let g = &self.tree.gaps[gap];
            for text in g.trailing.iter().chain(g.own.iter().map(|c| &c.text)) {
                self.comment_line(depth, text);
            }
        }
        self.indent(depth);
        match node {
            Node::Simple { first, last } => {
                self.tokens(*first, *last);
                self.trailing(last + 1);
            }
            Node::Block {
                first,
                open,
                body,
                close,
            } => {
                if self.tree.one_line(*first, *open, *close, body.is_empty()) {
                    self.inline(node);
                } else {
                    self.tokens(*first, *open);
                    self.trailing(open + 1);
                    self.out.push('\n');
                    self.body(body, depth + 1, *close);
                    self.indent(depth);
                    self.out.push('}');
                }
                self.trailing(close + 1);
            }
        }
        self.out.push('\n');
    }

    /// Tokens `from..=to` separated by one space (none before `,`).
    fn tokens(&mut self, from: usize, to: usize) {
        for i in from..=to {
            if i > from && self.tree.tokens[i].rule != Rule::comma {
                self.out.push(' ');
            }
            self.out.push_str(self.tree.token(i));
        }
    }

    /// A statement on one line (a block as `{ a  b }` or `{}`).
    fn inline(&mut self, node: &Node) {
        match node {
            Node::Simple { first, last } => self.tokens(*first, *last),
            Node::Block {
                first, open, body, ..
            } => {
                self.tokens(*first, *open);
                if body.is_empty() {
                    self.out.push('}');
                    return;
                }
                for (i, stmt) in body.iter().enumerate() {
                    self.out.push_str(if i == 0 { " " } else { "  " });
                    self.inline(stmt);
                }
                self.out.push_str(" }");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(source: &str) -> String {
        let out = format_source(source).expect("formats");
        assert_eq!(format_source(&out).expect("reformats"), out, "idempotent");
        assert_eq!(tokens(&out), tokens(source), "same tokens");
        assert_eq!(comments(&out), comments(source), "same comments");
        out
    }

    #[test]
    fn one_line_blocks_stay_on_one_line() {
        assert_eq!(
            fmt("server web {\n port 80\n route a {   method GET ;path \"/a\"}\n}"),
            "server web {\n  port 80\n  route a { method GET  path \"/a\" }\n}\n"
        );
        assert_eq!(
            fmt("allow a{to web.api from namespace \"x\",\"y\"}; deny b { to web from any }"),
            "allow a { to web.api  from namespace \"x\", \"y\" }\ndeny b { to web  from any }\n"
        );
        assert_eq!(
            fmt("server a { route b { path \"/\" } }"),
            "server a { route b { path \"/\" } }\n"
        );
    }

    #[test]
    fn multi_line_blocks_have_one_statement_per_line() {
        assert_eq!(
            fmt("service s { timeout 2s\n    retry { attempts 2  on 5xx ,reset,\n 503 } backend b {\nendpoint 10.0.0.1:80 } }"),
            "service s {\n  timeout 2s\n  retry {\n    attempts 2\n    on 5xx, reset, 503\n  }\n  backend b {\n    endpoint 10.0.0.1:80\n  }\n}\n"
        );
    }

    #[test]
    fn empty_blocks() {
        assert_eq!(fmt("egress {\n\n}\nmesh {  }"), "egress {}\nmesh {}\n");
        assert_eq!(
            fmt("egress { # nothing yet\n}"),
            "egress { # nothing yet\n}\n"
        );
        assert_eq!(fmt(""), "");
        assert_eq!(fmt(" ;\n\n ; "), "");
    }

    #[test]
    fn comments_stay_beside_their_statements() {
        let source = "# header\n\n\n# about web\nserver web { # the web server\n  port 80    # http\n\n\n  # routes:\n  route a {\n    path \"/a#b\" # not r\"#\"\n  }\n  # end of web\n} # after web\n# the end   \n";
        assert_eq!(
            fmt(source),
            "# header\n\n# about web\nserver web { # the web server\n  port 80 # http\n  # routes:\n  route a {\n    path \"/a#b\" # not r\"#\"\n  }\n  # end of web\n} # after web\n# the end\n"
        );
    }

    #[test]
    fn comments_inside_a_statement_move_before_it() {
        assert_eq!(
            fmt("server web {\n  port 80, # first\n    81 # second\n}\nallow a # a rule\n{ to web\n from any }\n"),
            "server web {\n  # first\n  port 80, 81 # second\n}\n# a rule\nallow a {\n  to web\n  from any\n}\n"
        );
    }

    #[test]
    fn blank_lines_collapse_to_one() {
        assert_eq!(
            fmt("\n\nmesh { default deny }\n\n\n\nserver a {\n\n  port 1\n\n\n  protocol tcp\n\n}\nserver b {}\n\n"),
            "mesh { default deny }\n\nserver a {\n  port 1\n  protocol tcp\n}\nserver b {}\n"
        );
    }

    #[test]
    fn a_block_with_a_comment_beside_it_has_one_statement_per_line() {
        assert_eq!(
            fmt("mesh { trust-domain \"x\" } # prod\nserver a { route b { method GET } }   # a\n"),
            "mesh {\n  trust-domain \"x\"\n} # prod\nserver a {\n  route b { method GET }\n} # a\n"
        );
        assert_eq!(
            fmt("server a {\n  route b { method GET  path \"/b\" } # b\n  route c { method GET }\n}"),
            "server a {\n  route b {\n    method GET\n    path \"/b\"\n  } # b\n  route c { method GET }\n}\n"
        );
        assert_eq!(
            fmt("server a {} # nothing yet\nserver b # b\n{\n}"),
            "server a {} # nothing yet\n# b\nserver b {}\n"
        );
        assert_eq!(
            fmt("allow a # why\n{ to web  from any }"),
            "# why\nallow a {\n  to web\n  from any\n}\n"
        );
    }

    #[test]
    fn every_depth_is_indented_by_two_spaces() {
        assert_eq!(
            fmt("service s {\nauthority \"s:80\"\nbackend b {\nendpoint 10.0.0.1:80\nfailover c\n}\nbackend c { endpoint [::1]:80 }\nroute r {\nheader \"x\"=\"1\"\nto b 90,c 10\nretry {\nattempts 2\non 5xx,reset\n}\n}\ncircuit-breaker {\nconsecutive-failures 5\nbackoff 1s   60s\n}\n}\negress {\ndefault deny\nallow a {\nhost \"a.com\",\"b.com\"\nnetwork 10.0.0.0/8,fd00::/8   except 10.1.0.0/16\nport 443,8000-8099\n}\n}"),
            "service s {\n  authority \"s:80\"\n  backend b {\n    endpoint 10.0.0.1:80\n    failover c\n  }\n  backend c { endpoint [::1]:80 }\n  route r {\n    header \"x\" = \"1\"\n    to b 90, c 10\n    retry {\n      attempts 2\n      on 5xx, reset\n    }\n  }\n  circuit-breaker {\n    consecutive-failures 5\n    backoff 1s 60s\n  }\n}\negress {\n  default deny\n  allow a {\n    host \"a.com\", \"b.com\"\n    network 10.0.0.0/8, fd00::/8 except 10.1.0.0/16\n    port 443, 8000-8099\n  }\n}\n"
        );
    }

    #[test]
    fn blank_lines_inside_blocks_are_dropped() {
        assert_eq!(
            fmt("server a {\n\n  port 1\n\n\n  # the route\n\n  route r {\n\n    path \"/\"\n\n    # end\n  }\n\n}\n\n\n\n# b\n\nserver b {}"),
            "server a {\n  port 1\n  # the route\n  route r {\n    path \"/\"\n    # end\n  }\n}\n\n# b\n\nserver b {}\n"
        );
    }

    #[test]
    fn line_ends_tabs_comments_only_and_unicode() {
        assert_eq!(
            fmt("mesh {\r\n\ttrust-domain \"x\"\t# c\t\r\n}\r\n\r\n\r\nserver\ta\t{ port 80 }\r\n"),
            "mesh {\n  trust-domain \"x\" # c\n}\n\nserver a { port 80 }\n"
        );
        assert_eq!(
            fmt("\n# only\n   #  comments  \n\n\n# here"),
            "# only\n#  comments\n\n# here\n"
        );
        assert_eq!(
            fmt("# ünïcode ✓  \nallow a { to web  from identity \"spiffe://x/é—ü\" }\nserver web {\n  port 80 # ü\n}"),
            "# ünïcode ✓\nallow a { to web  from identity \"spiffe://x/é—ü\" }\nserver web {\n  port 80 # ü\n}\n"
        );
    }

    #[test]
    fn strings_are_kept_as_written() {
        assert_eq!(
            fmt("server s { route r { header \"a\\u{41}\\n\" ~ r\"[#]+\"  path \"x\ny\" } }"),
            "server s { route r { header \"a\\u{41}\\n\" ~ r\"[#]+\"  path \"x\ny\" } }\n"
        );
    }

    #[test]
    fn syntax_errors_are_diagnostics() {
        let errors = format_source("server {").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code, Code::Syntax);
        assert!(format_source("server s { route r { path \"\\u{d800}\" } }").is_err());
        assert_eq!(comments("server {"), None);
    }
}
