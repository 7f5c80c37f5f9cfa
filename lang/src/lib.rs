//! The Sluice policy language: a pest grammar, an AST whose nodes carry
//! source spans, and diagnostics that render like rustc's or as JSON.
//!
//! Parsing never panics. A file with a syntax error yields one `syntax`
//! diagnostic; the other files are still parsed.

pub mod ast;
mod cst_to_ast;
pub mod diagnostic;
pub mod format;
pub mod parse;
pub mod render;
pub mod source;

pub use ast::{Policy, Span};
pub use diagnostic::{Code, Diagnostic, Label, Severity};

/// Parses arbitrary bytes as a one-file policy and renders its diagnostics
/// both ways, for fuzzing: bytes that are not UTF-8 are decoded lossily.
/// Panics only if the parser or the renderers break their contract (a
/// syntax error must come with no items and at most one diagnostic).
pub fn fuzz_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (policy, diagnostics) = parse::parse_str("fuzz.sluice", &text);
    assert!(
        diagnostics.len() <= 1,
        "one file gives at most one diagnostic"
    );
    assert!(
        diagnostics.is_empty() || policy.items.is_empty(),
        "a file with a syntax error gives no items"
    );
    for d in &diagnostics {
        assert_eq!(d.code, Code::Syntax);
        assert!(d.span.line >= 1 && d.span.column >= 1, "spans are 1-based");
        assert!(d.span.start as usize <= text.len());
    }
    let human = render::human(&policy.files, &diagnostics);
    assert_eq!(human.is_empty(), diagnostics.is_empty());
    let json = render::json(&policy.files, &diagnostics);
    assert!(json.starts_with('[') && json.ends_with(']'));
}
