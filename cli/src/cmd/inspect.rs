//! `sluice inspect FILE`: the bundle's summary lines (from the runtime),
//! which include its content hash as 16 hex digits, on standard output; a
//! `hash HEX` line is added if the summary lacks the hash.

use crate::args::InspectArgs;
use crate::policy;
use crate::{Io, EXIT_FAILED, EXIT_IO, EXIT_OK};
use sluice_runtime::AlignedBytes;
use std::io;

/// Runs `sluice inspect`.
pub fn run(args: &InspectArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => {
            writeln!(
                io.err,
                "error: cannot read the bundle `{}`: {e}",
                args.file.display()
            )?;
            return Ok(EXIT_IO);
        }
    };
    let aligned = AlignedBytes::new(&bytes);
    let bundle = match policy::bundle(&aligned, &format!("`{}`", args.file.display())) {
        Ok(b) => b,
        Err(e) => {
            writeln!(io.err, "error: {e}")?;
            return Ok(EXIT_FAILED);
        }
    };
    let hash = policy::hex_hash(bundle.hash());
    let lines = bundle.summary().lines;
    for line in &lines {
        writeln!(io.out, "{line}")?;
    }
    if !lines.iter().any(|l| l.contains(&hash)) {
        writeln!(io.out, "hash {hash}")?;
    }
    Ok(EXIT_OK)
}
