//! The `sluice` binary: parses arguments and runs [`sluice_cli::run`].

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = sluice_cli::args::Cli::parse();
    let mut stdin = std::io::stdin().lock();
    // Standard output and error are not locked for the whole command: the
    // proxy's worker threads write log lines to standard error.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut io = sluice_cli::Io {
        stdin: &mut stdin,
        out: &mut out,
        err: &mut err,
    };
    let status = match sluice_cli::run(cli, &mut io) {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => sluice_cli::EXIT_IO,
        Err(e) => {
            let _ = writeln!(err, "error: cannot write the output: {e}");
            sluice_cli::EXIT_IO
        }
    };
    let _ = out.flush();
    ExitCode::from(status)
}
