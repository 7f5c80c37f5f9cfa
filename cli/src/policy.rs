//! Loading, checking and compiling a policy; shared by every command.
//!
//! When any file has a syntax error, only the parser's diagnostics are
//! reported: the AST then lacks that file's items, so the compiler's checks
//! would report spurious errors (unknown references to the missing items,
//! unused routes, ...).

use sluice_compiler::Config;
use sluice_lang::ast::SourceFile;
use sluice_lang::{Diagnostic, Policy};
use sluice_runtime::{AlignedBytes, Bundle, LoadError};
use std::path::Path;

/// A parsed policy with the parser's diagnostics.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The policy (without the items of files that did not parse).
    pub policy: Policy,
    /// The parser's diagnostics (`syntax` errors).
    pub syntax: Vec<Diagnostic>,
}

impl Parsed {
    /// Whether some file did not parse.
    pub fn has_syntax_errors(&self) -> bool {
        has_errors(&self.syntax)
    }

    /// The source files, for rendering diagnostics.
    pub fn files(&self) -> &[SourceFile] {
        &self.policy.files
    }
}

/// Reads and parses a `.sluice` file or a directory of them.
///
/// Errors are messages naming the path (`sluice_lang::source::load` names
/// the file in its errors): it cannot be read, or holds no
/// `.sluice` file (an empty policy would silently allow everything).
pub fn load(path: &Path) -> Result<Parsed, String> {
    let files =
        sluice_lang::source::load(path).map_err(|e| format!("cannot read the policy: {e}"))?;
    if files.is_empty() {
        return Err(format!("no `.sluice` files in `{}`", path.display()));
    }
    let (policy, syntax) = sluice_lang::parse::parse_files(files);
    Ok(Parsed { policy, syntax })
}

/// Parses one in-memory source shown as `display`.
pub fn parse_str(display: &str, text: &str) -> Parsed {
    let (policy, syntax) = sluice_lang::parse::parse_str(display, text);
    Parsed { policy, syntax }
}

/// Every diagnostic `sluice lint` reports: the syntax errors if there are
/// any, else the compiler's checks and lint analyses.
pub fn lint(parsed: &Parsed, config: &Config) -> Vec<Diagnostic> {
    if parsed.has_syntax_errors() {
        return parsed.syntax.clone();
    }
    let mut diags = parsed.syntax.clone();
    diags.extend(sluice_compiler::lint(&parsed.policy, config));
    diags
}

/// Compiles a parsed policy: the bundle bytes and warnings, or every
/// diagnostic when there are errors (syntax errors stop before the compiler).
pub fn compile(
    parsed: &Parsed,
    config: &Config,
) -> Result<sluice_compiler::Compiled, Vec<Diagnostic>> {
    if parsed.has_syntax_errors() {
        return Err(parsed.syntax.clone());
    }
    let mut compiled = sluice_compiler::compile(&parsed.policy, config)?;
    if !parsed.syntax.is_empty() {
        let mut all = parsed.syntax.clone();
        all.append(&mut compiled.warnings);
        compiled.warnings = all;
    }
    Ok(compiled)
}

/// Whether any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

/// `1 thing`, `2 things`.
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A bundle load error as a message.
pub fn load_error(error: &LoadError) -> String {
    error.to_string()
}

/// Loads bundle bytes that are already aligned, with a message naming `what`.
pub fn bundle<'a>(bytes: &'a AlignedBytes, what: &str) -> Result<Bundle<'a>, String> {
    Bundle::from_bytes(bytes.as_bytes())
        .map_err(|e| format!("{what} is not a valid bundle: {}", load_error(&e)))
}

/// The content hash as 16 lowercase hex digits.
pub fn hex_hash(hash: u64) -> String {
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_hashes() {
        assert_eq!(plural(1, "error"), "1 error");
        assert_eq!(plural(0, "error"), "0 errors");
        assert_eq!(hex_hash(0xab), "00000000000000ab");
    }
}
