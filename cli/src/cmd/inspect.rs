//! `sluice inspect FILE`: the bundle's summary (from the runtime) as
//! lines, which include its content hash as 16 hex digits, on standard
//! output; a `hash HEX` line is added if the summary lacks the hash.

use crate::args::InspectArgs;
use crate::policy;
use crate::{Io, EXIT_FAILED, EXIT_IO, EXIT_OK};
use sluice_runtime::bundle::FORMAT_VERSION;
use sluice_runtime::{AlignedBytes, Protocol, Summary};
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
    let lines = summary_lines(&bundle.summary());
    for line in &lines {
        writeln!(io.out, "{line}")?;
    }
    if !lines.iter().any(|l| l.contains(&hash)) {
        writeln!(io.out, "hash {hash}")?;
    }
    Ok(EXIT_OK)
}

/// The summary as lines of text.
fn summary_lines(summary: &Summary<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    lines.push(format!(
        "hash {:016x}, {} bytes, format version {FORMAT_VERSION}",
        summary.hash, summary.len
    ));
    lines.push(format!("mesh default {}", summary.mesh_default));
    for s in &summary.servers {
        let ports: Vec<String> = s
            .ports
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        let proto = match s.protocol {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Tcp => "tcp",
        };
        lines.push(format!(
            "server {} port {} protocol {proto} default {}: {} routes in precedence order [{}]",
            s.name,
            ports.join(","),
            s.default,
            s.routes.len(),
            s.routes.join(", ")
        ));
    }
    lines.push(format!(
        "rules: {} allow, {} deny, {} distinct from-clauses",
        summary.allow_rules, summary.deny_rules, summary.clauses
    ));
    for s in &summary.services {
        lines.push(format!(
            "service {}: {} routes, backends [{}]",
            s.name,
            s.routes,
            s.backends.join(", ")
        ));
    }
    match summary.egress {
        Some((default_deny, rules)) => lines.push(format!(
            "egress default {}: {rules} rules",
            if default_deny { "deny" } else { "allow" },
        )),
        None => lines.push("egress: no block (all allowed)".to_string()),
    }
    lines.push(format!(
        "automata: {} DFAs, {} bytes",
        summary.dfa_count, summary.dfa_bytes
    ));
    lines
}
