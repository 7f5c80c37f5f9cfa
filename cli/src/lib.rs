//! The `sluice` command: lint, compile, inspect, eval and test Sluice
//! policies (spec section 9).
//!
//! The commands live here, one module each under [`cmd`], so that tests can
//! run them with in-memory streams; `main.rs` only parses the arguments.
//! Exit statuses: 0 success, 1 the input has errors (policy diagnostics, a
//! bad bundle, rejected requests, failed conformance cases), 2 an input or
//! output could not be read or written (and clap's usage errors).

pub mod args;
pub mod cmd;
pub mod conformance;
pub mod decide;
pub mod diff;
pub mod explain;
pub mod json;
pub mod policy;

use std::io::{self, BufRead, Write};

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the input has errors.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: a file could not be read or written.
pub const EXIT_IO: u8 = 2;

/// The standard streams a command uses.
pub struct Io<'a> {
    /// Standard input (requests for `eval`).
    pub stdin: &'a mut dyn BufRead,
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
}

/// Runs a parsed command line; returns the exit status. An `Err` is a
/// failure to write to `out` or `err`.
pub fn run(cli: args::Cli, io: &mut Io<'_>) -> io::Result<u8> {
    match &cli.command {
        args::Command::Lint(a) => cmd::lint::run(a, io),
        args::Command::Compile(a) => cmd::compile::run(a, io),
        args::Command::Inspect(a) => cmd::inspect::run(a, io),
        args::Command::Eval(a) => cmd::eval::run(a, io),
        args::Command::Fmt(a) => cmd::fmt::run(a, io),
        args::Command::Test(a) => cmd::test::run(a, io),
        args::Command::Diff(a) => cmd::diff::run(a, io),
        args::Command::Identity(a) => cmd::identity::run(a, io),
        args::Command::Proxy(a) => cmd::proxy::run(a, io),
        args::Command::Authz(a) => cmd::authz::run(a, io),
        args::Command::Init(a) => cmd::init::run(a, io),
        args::Command::Keys(a) => cmd::keys::run(a, io),
        args::Command::Push(a) => cmd::registry::run_push(a, io),
        args::Command::Pull(a) => cmd::registry::run_pull(a, io),
        args::Command::Sign(a) => cmd::registry::run_sign(a, io),
        args::Command::Inject(a) => cmd::inject::run_inject(a, io),
        args::Command::Uninject(a) => cmd::inject::run_uninject(a, io),
    }
}
