//! `sluice compile PATH -o FILE [--dfa-size-limit BYTES]`.
//!
//! Diagnostics go to standard error; on success one line goes to standard
//! output: `wrote FILE (N bytes, hash HEX)`. The bundle is loaded back before
//! it is written, so a bundle the runtime rejects is never written.

use crate::args::CompileArgs;
use crate::policy;
use crate::{Io, EXIT_FAILED, EXIT_IO, EXIT_OK};
use sluice_lang::render;
use sluice_runtime::AlignedBytes;
use std::io;

/// Runs `sluice compile`.
pub fn run(args: &CompileArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let parsed = match policy::load(&args.path) {
        Ok(p) => p,
        Err(e) => return super::io_failure(io, e),
    };
    let compiled = match policy::compile(&parsed, &super::config(args.dfa_size_limit)) {
        Ok(c) => c,
        Err(diags) => {
            write!(io.err, "{}", render::human(parsed.files(), &diags))?;
            writeln!(io.err, "error: could not compile `{}`", args.path.display())?;
            return Ok(EXIT_FAILED);
        }
    };
    if !compiled.warnings.is_empty() {
        write!(
            io.err,
            "{}",
            render::human(parsed.files(), &compiled.warnings)
        )?;
    }
    let aligned = AlignedBytes::new(&compiled.bundle);
    let hash = match policy::bundle(&aligned, "the compiled bundle") {
        Ok(bundle) => bundle.hash(),
        Err(e) => {
            writeln!(io.err, "error: internal error: {e}; nothing was written")?;
            return Ok(EXIT_FAILED);
        }
    };
    if let Err(e) = std::fs::write(&args.output, &compiled.bundle) {
        writeln!(
            io.err,
            "error: cannot write the bundle `{}`: {e}",
            args.output.display()
        )?;
        return Ok(EXIT_IO);
    }
    writeln!(
        io.out,
        "wrote {} ({} bytes, hash {})",
        args.output.display(),
        compiled.bundle.len(),
        policy::hex_hash(hash)
    )?;
    Ok(EXIT_OK)
}
