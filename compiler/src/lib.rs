//! The Sluice compiler: checks, lowering, automata, lint analyses and bundle bytes.
pub mod ir;
