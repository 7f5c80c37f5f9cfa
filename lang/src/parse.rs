//! Text to AST: the pest grammar (`grammar.pest`) and the CST-to-AST conversion.

use crate::ast::{Policy, SourceFile};
use crate::diagnostic::Diagnostic;

/// Parses every file (in the given order) into one policy.
///
/// A file with a syntax error contributes one `syntax` diagnostic and no
/// items; the other files are still parsed. Never panics.
pub fn parse_files(files: Vec<SourceFile>) -> (Policy, Vec<Diagnostic>) {
    let _ = files;
    todo!("lang helper")
}

/// Parses one in-memory source (shown as `path`) into a policy.
pub fn parse_str(path: &str, text: &str) -> (Policy, Vec<Diagnostic>) {
    parse_files(vec![SourceFile { path: path.to_string(), text: text.to_string() }])
}
