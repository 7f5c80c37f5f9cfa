//! The Sluice policy language: a pest grammar, an AST whose nodes carry
//! source spans, and diagnostics that render like rustc's or as JSON.
//!
//! Parsing never panics. A file with a syntax error yields one `syntax`
//! diagnostic; the other files are still parsed.

pub mod ast;
pub mod diagnostic;
pub mod parse;
pub mod render;
pub mod source;

pub use ast::{Policy, Span};
pub use diagnostic::{Code, Diagnostic, Severity};
