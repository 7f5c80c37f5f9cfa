//! `sluice test PATH...`: runs conformance files ([`crate::conformance`]),
//! printing one line per failure and then `N passed, N failed` on standard
//! output.

use crate::args::TestArgs;
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
    if outcome.files == 0 && outcome.failed == 0 {
        writeln!(io.err, "warning: no conformance files found")?;
    }
    writeln!(io.out, "{outcome}")?;
    Ok(if outcome.failed > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}
