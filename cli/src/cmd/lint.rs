//! `sluice lint PATH [--format human|json]`.
//!
//! Human output (rustc-like, with its own count line) goes to standard
//! error; JSON (an array, `[]` when clean) to standard output.
//! When a file has a syntax error only syntax errors are reported (see
//! [`crate::policy`]).

use crate::args::{Format, LintArgs};
use crate::policy;
use crate::{Io, EXIT_FAILED, EXIT_OK};
use sluice_lang::render;
use std::io;

/// Runs `sluice lint`.
pub fn run(args: &LintArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let parsed = match policy::load(&args.path) {
        Ok(p) => p,
        Err(e) => return super::io_failure(io, e),
    };
    let diags = policy::lint(&parsed, &super::config(args.dfa_size_limit));
    match args.format {
        Format::Json => {
            let text = render::json(parsed.files(), &diags);
            write!(io.out, "{text}")?;
            if !text.ends_with('\n') {
                writeln!(io.out)?;
            }
        }
        Format::Human => {
            write!(io.err, "{}", render::human(parsed.files(), &diags))?;
        }
    }
    Ok(if policy::has_errors(&diags) {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}
