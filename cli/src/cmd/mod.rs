//! One module per subcommand; each `run` returns the exit status.

pub mod authz;
pub mod compile;
pub mod diff;
pub mod eval;
pub mod fmt;
pub mod identity;
pub mod init;
pub mod inject;
pub mod inspect;
pub mod keys;
pub mod lint;
pub mod proxy;
pub mod registry;
pub mod test;
pub mod webhook;

use crate::{Io, EXIT_IO};
use sluice_compiler::Config;
use std::fmt::Display;
use std::io;

/// Compiler settings from the command line.
pub fn config(dfa_size_limit: Option<usize>) -> Config {
    match dfa_size_limit {
        Some(bytes) => Config::new().dfa_size_limit(bytes),
        None => Config::new(),
    }
}

/// Writes `error: MESSAGE` to standard error and gives the exit status of an
/// input or output failure.
pub fn io_failure(io: &mut Io<'_>, message: impl Display) -> io::Result<u8> {
    writeln!(io.err, "error: {message}")?;
    Ok(EXIT_IO)
}
