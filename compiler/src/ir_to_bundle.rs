//! Lowered policy to bundle bytes: automata and tables.

use crate::config::Config;
use crate::ir::Ir;
use sluice_lang::Diagnostic;

/// Builds the automata and serializes the bundle. Fails only when an
/// automaton cannot be built within the limits even after splitting.
pub fn ir_to_bundle(ir: &Ir, config: &Config) -> Result<Vec<u8>, Vec<Diagnostic>> {
    let _ = (ir, config);
    todo!()
}
