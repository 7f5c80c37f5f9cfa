//! `sluice diff OLD NEW [--format json|human]`: how the decisions of NEW
//! differ from those of OLD over every request (spec section 9; see
//! docs/diff.md). Exit 0 without differences, 1 with, 2 on errors.

use crate::args::{DiffArgs, Format};
use crate::diff::{diff_paths, human_line, json_line};
use crate::{Io, EXIT_FAILED, EXIT_IO, EXIT_OK};
use std::io;

/// Runs `sluice diff`.
pub fn run(args: &DiffArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let entries = match diff_paths(&args.old, &args.new) {
        Ok(e) => e,
        Err(e) => {
            writeln!(io.err, "error: {e}")?;
            return Ok(EXIT_IO);
        }
    };
    for e in &entries {
        match args.format {
            Format::Json => writeln!(io.out, "{}", json_line(e))?,
            Format::Human => writeln!(io.out, "{}", human_line(e))?,
        }
    }
    if args.format == Format::Human {
        let n = entries.len();
        if n == 0 {
            writeln!(io.err, "no differences: every request is decided alike")?;
        } else {
            writeln!(io.err, "{}", crate::policy::plural(n, "difference"))?;
        }
    }
    Ok(if entries.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}
