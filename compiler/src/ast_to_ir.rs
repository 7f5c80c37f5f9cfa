//! Checks (spec section 8 errors) and lowering from the AST to the IR.

use crate::config::Config;
use crate::ir::Ir;
use sluice_lang::{Diagnostic, Policy};

/// Checks `policy` and lowers it. Returns the IR only when there is no
/// error, and every error found (not only the first).
pub fn ast_to_ir(policy: &Policy, config: &Config) -> (Option<Ir>, Vec<Diagnostic>) {
    let _ = (policy, config);
    todo!("checks helper")
}
