//! `sluice test PATH... [--coverage [--format json]]`: runs conformance
//! files ([`crate::conformance`]), printing one line per failure and then
//! `N passed, N failed` on standard output. A path without conformance
//! files, a file without cases or diagnostics and a case with an empty
//! `expect` table are failures.
//!
//! With `--coverage`, before the last line, each policy whose cases ran gets
//! its coverage report ([`crate::conformance::Coverage`]; the files whose
//! `policy-file` names the same policy share one): text, or one JSON object
//! per line with `--format json`. The results and the exit status do
//! not change.

use crate::args::{Format, TestArgs};
use crate::conformance;
use crate::{Io, EXIT_FAILED, EXIT_OK};
use std::io;

/// Runs `sluice test`.
pub fn run(args: &TestArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let mut write_error = None;
    let outcome = conformance::run_paths(&args.paths, &mut |message| {
        if let Err(e) = writeln!(io.out, "{message}") {
            write_error.get_or_insert(e);
        }
    });
    if let Some(e) = write_error {
        return Err(e);
    }
    if args.coverage {
        for coverage in &outcome.coverage {
            match args.format {
                Format::Human => writeln!(io.out, "{}", coverage.to_text())?,
                Format::Json => writeln!(io.out, "{}", coverage.to_json())?,
            }
        }
    }
    writeln!(io.out, "{outcome}")?;
    Ok(if outcome.failed > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}
