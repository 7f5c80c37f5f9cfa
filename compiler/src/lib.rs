//! The Sluice compiler: checks, lowering, automata, lint analyses and bundle bytes.
//!
//! Text becomes an AST in `sluice-lang`; here `ast_to_ir` checks it and lowers
//! it into an [`ir::Ir`], `lint` runs the analyses, and `ir_to_bundle`
//! builds the automata and the bundle bytes that `sluice-runtime` loads.

pub mod automata;
pub mod config;
pub mod ir;

pub use config::Config;
pub mod ast_to_ir;
pub mod diff;
pub mod ir_to_bundle;
pub mod lint;

use sluice_lang::{Diagnostic, Policy};

/// A compiled policy.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The bundle bytes (same input, same bytes).
    pub bundle: Vec<u8>,
    /// Warnings found on the way (errors make [`compile`] fail).
    pub warnings: Vec<Diagnostic>,
}

/// Checks `policy` and runs the lint analyses: every error and warning,
/// sorted by file, line and column.
pub fn lint(policy: &Policy, config: &Config) -> Vec<Diagnostic> {
    let (ir, mut diags) = ast_to_ir::ast_to_ir(policy, config);
    if let Some(ir) = ir {
        diags.extend(lint::lint(&ir, config));
    }
    diags.sort_by_key(|d| (d.span.file, d.span.line, d.span.column));
    diags
}

/// Checks, lints and compiles `policy` into bundle bytes; on errors,
/// returns every diagnostic (errors and warnings).
pub fn compile(policy: &Policy, config: &Config) -> Result<Compiled, Vec<Diagnostic>> {
    let (ir, mut diags) = ast_to_ir::ast_to_ir(policy, config);
    let Some(ir) = ir else {
        diags.sort_by_key(|d| (d.span.file, d.span.line, d.span.column));
        return Err(diags);
    };
    diags.extend(lint::lint(&ir, config));
    match ir_to_bundle::ir_to_bundle(&ir, config) {
        Ok(bundle) => {
            diags.sort_by_key(|d| (d.span.file, d.span.line, d.span.column));
            Ok(Compiled {
                bundle,
                warnings: diags,
            })
        }
        Err(mut errors) => {
            diags.append(&mut errors);
            diags.sort_by_key(|d| (d.span.file, d.span.line, d.span.column));
            Err(diags)
        }
    }
}
