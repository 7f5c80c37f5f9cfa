//! `sluice fmt PATH... [--check]`: rewrites policy files in the canonical
//! layout of [`sluice_lang::format`].
//!
//! A PATH is a file (formatted whatever its extension) or a directory,
//! searched recursively for `.sluice` files as the policy loader does. A
//! file with a syntax error is left as it is and its diagnostics go to
//! standard error (as `lint` renders them); the other files are still
//! formatted. With `--check` nothing is written: the files that would
//! change are listed on standard output, one path a line.
//!
//! Exit status: 0 nothing to change (or everything rewritten), 1 `--check`
//! found files to change, 2 a syntax error or a file or directory that could
//! not be read or written (these win over 1).

use crate::args::FmtArgs;
use crate::{Io, EXIT_FAILED, EXIT_IO, EXIT_OK};
use sluice_lang::ast::SourceFile;
use sluice_lang::{format, render};
use std::io;
use std::path::{Path, PathBuf};

/// Runs `sluice fmt`.
pub fn run(args: &FmtArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let mut errors = false;
    let mut changed = false;
    for path in &args.paths {
        let files = match policy_files(path) {
            Ok(files) => files,
            Err(message) => {
                writeln!(io.err, "error: {message}")?;
                errors = true;
                continue;
            }
        };
        for (full, file) in files {
            let formatted = match format::format_source(&file.text) {
                Ok(formatted) => formatted,
                Err(diagnostics) => {
                    write!(
                        io.err,
                        "{}",
                        render::human(std::slice::from_ref(&file), &diagnostics)
                    )?;
                    errors = true;
                    continue;
                }
            };
            if formatted == file.text {
                continue;
            }
            changed = true;
            if args.check {
                writeln!(io.out, "{}", full.display())?;
            } else if let Err(e) = std::fs::write(&full, formatted) {
                writeln!(io.err, "error: cannot write `{}`: {e}", full.display())?;
                errors = true;
            }
        }
    }
    Ok(if errors {
        EXIT_IO
    } else if changed && args.check {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

/// The policy files of `path`, each with the path to write it back to and
/// shown by that path. A directory without `.sluice` files is an error.
fn policy_files(path: &Path) -> Result<Vec<(PathBuf, SourceFile)>, String> {
    let files = sluice_lang::source::load(path).map_err(|e| format!("cannot read: {e}"))?;
    if files.is_empty() {
        return Err(format!("no `.sluice` files in `{}`", path.display()));
    }
    let is_dir = path.is_dir();
    Ok(files
        .into_iter()
        .map(|mut file| {
            let full = if is_dir {
                path.join(&file.path)
            } else {
                path.to_path_buf()
            };
            file.path = full.to_string_lossy().into_owned();
            (full, file)
        })
        .collect())
}
