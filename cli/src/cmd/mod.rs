//! One module per subcommand; each `run` returns the exit status.

pub mod compile;
pub mod eval;
pub mod identity;
pub mod init;
pub mod inspect;
pub mod lint;
pub mod proxy;
pub mod test;

use sluice_compiler::Config;

/// Compiler settings from the command line.
pub fn config(dfa_size_limit: Option<usize>) -> Config {
    match dfa_size_limit {
        Some(bytes) => Config::new().dfa_size_limit(bytes),
        None => Config::new(),
    }
}
