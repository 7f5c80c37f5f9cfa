//! Rendering diagnostics: rustc-like text, or JSON.

use crate::ast::SourceFile;
use crate::diagnostic::Diagnostic;

/// Renders diagnostics like rustc: `error[code]: message`, the location,
/// the source line and a caret under the span.
pub fn human(files: &[SourceFile], diagnostics: &[Diagnostic]) -> String {
    let _ = (files, diagnostics);
    todo!("lang helper")
}

/// Renders diagnostics as a JSON array of
/// `{severity, code, message, file, line, column}`.
pub fn json(files: &[SourceFile], diagnostics: &[Diagnostic]) -> String {
    let _ = (files, diagnostics);
    todo!("lang helper")
}
