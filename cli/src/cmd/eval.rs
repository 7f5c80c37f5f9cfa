//! `sluice eval (--policy PATH | --bundle FILE) [--request JSON]... [--explain]`.
//!
//! Requests come from `--request` (repeatable) or as JSON lines on standard
//! input (blank lines skipped). Each gets one line on standard output: the
//! decision (spec section 10) or `{"error":"..."}` naming the input (e.g.
//! `stdin line 3: ...`); any error makes the exit status 1 at the end.
//! `--explain` writes each decision's trace in words to standard error.
//!
//! A line of the proxy's decision log is replayed: its request is decided
//! again, and the output adds `changed` (whether allow/deny or the status
//! differ), `recorded` (the logged decision) and `recorded_bundle`.

use crate::args::EvalArgs;
use crate::decide::Decider;
use crate::explain::{describe_decision, Explainer};
use crate::json::{self, error_line, DecisionJsonExt};
use crate::policy;
use crate::{Io, EXIT_FAILED, EXIT_IO, EXIT_OK};
use sluice_lang::render;
use sluice_runtime::{AlignedBytes, NoTrace};
use std::io;

/// Runs `sluice eval`.
pub fn run(args: &EvalArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let (bytes, what) = match (&args.policy, &args.bundle) {
        (Some(path), _) => {
            let parsed = match policy::load(path) {
                Ok(p) => p,
                Err(e) => return super::io_failure(io, e),
            };
            match policy::compile(&parsed, &super::config(args.dfa_size_limit)) {
                Ok(c) => {
                    if !c.warnings.is_empty() {
                        write!(io.err, "{}", render::human(parsed.files(), &c.warnings))?;
                    }
                    (
                        AlignedBytes::new(&c.bundle),
                        "the compiled policy".to_string(),
                    )
                }
                Err(diags) => {
                    write!(io.err, "{}", render::human(parsed.files(), &diags))?;
                    writeln!(io.err, "error: could not compile `{}`", path.display())?;
                    return Ok(EXIT_FAILED);
                }
            }
        }
        (None, Some(file)) => match std::fs::read(file) {
            Ok(b) => (AlignedBytes::new(&b), format!("`{}`", file.display())),
            Err(e) => {
                writeln!(
                    io.err,
                    "error: cannot read the bundle `{}`: {e}",
                    file.display()
                )?;
                return Ok(EXIT_IO);
            }
        },
        (None, None) => {
            writeln!(io.err, "error: give `--policy PATH` or `--bundle FILE`")?;
            return Ok(EXIT_IO);
        }
    };
    let bundle = match policy::bundle(&bytes, &what) {
        Ok(b) => b,
        Err(e) => {
            writeln!(io.err, "error: {e}")?;
            return Ok(EXIT_FAILED);
        }
    };
    let mut decider = Decider::new(&bundle);
    let mut all_ok = true;
    if !args.request.is_empty() {
        let many = args.request.len() > 1;
        for (i, text) in args.request.iter().enumerate() {
            let label = if many {
                format!("--request #{}", i + 1)
            } else {
                "--request".to_string()
            };
            all_ok &= eval_one(&mut decider, &label, text, args.explain, io)?;
        }
    } else {
        let mut line = Vec::new();
        let mut number = 0usize;
        loop {
            line.clear();
            match io.stdin.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    writeln!(io.err, "error: cannot read standard input: {e}")?;
                    return Ok(EXIT_IO);
                }
            }
            number += 1;
            let label = format!("stdin line {number}");
            match std::str::from_utf8(&line) {
                Ok(text) if text.trim().is_empty() => {}
                Ok(text) => {
                    all_ok &= eval_one(&mut decider, &label, text.trim(), args.explain, io)?
                }
                Err(_) => {
                    all_ok = false;
                    writeln!(
                        io.out,
                        "{}",
                        error_line(&format!("{label}: the line is not UTF-8"))
                    )?;
                }
            }
        }
    }
    Ok(if all_ok { EXIT_OK } else { EXIT_FAILED })
}

/// Whether a JSON line is a record of the proxy's decision log
/// (`{"bundle":…,"request":…,"decision":…}`), to be replayed.
fn is_decision_record(value: &serde_json::Value) -> bool {
    value.get("request").is_some_and(|r| r.is_object())
        && value.get("decision").is_some_and(|d| d.is_object())
}

/// Decides one request given as JSON text and prints the result line;
/// returns whether it got a decision.
fn eval_one(
    decider: &mut Decider<'_, '_>,
    label: &str,
    text: &str,
    explain: bool,
    io: &mut Io<'_>,
) -> io::Result<bool> {
    if explain {
        writeln!(io.err, "{label}: {text}")?;
    }
    let record = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .filter(is_decision_record);
    let parsed = match &record {
        Some(r) => json::request_from_value(&r["request"]),
        None => json::parse_request(text),
    };
    let request = match parsed {
        Ok(r) => r,
        Err(e) => {
            if explain {
                writeln!(io.err, "  error: {e}")?;
            }
            writeln!(io.out, "{}", error_line(&format!("{label}: {e}")))?;
            io.out.flush()?;
            return Ok(false);
        }
    };
    let mut explainer = Explainer::default();
    let result = if explain {
        decider.decide(&request, &mut explainer)
    } else {
        decider.decide(&request, &mut NoTrace)
    };
    for line in &explainer.lines {
        writeln!(io.err, "  {line}")?;
    }
    let ok = match result {
        Ok(decision) => {
            if explain {
                writeln!(io.err, "  {}", describe_decision(&decision))?;
            }
            match &record {
                Some(r) => {
                    let mut line = decision.to_value();
                    let changed = line["decision"] != r["decision"]["decision"]
                        || line["http_status"] != r["decision"]["http_status"];
                    line["changed"] = changed.into();
                    line["recorded"] = r["decision"].clone();
                    line["recorded_bundle"] = r["bundle"].clone();
                    writeln!(io.out, "{line}")?;
                }
                None => writeln!(io.out, "{}", decision.to_line())?,
            }
            true
        }
        Err(e) => {
            if explain {
                writeln!(io.err, "  error: {e}")?;
            }
            writeln!(io.out, "{}", error_line(&format!("{label}: {e}")))?;
            false
        }
    };
    io.out.flush()?;
    Ok(ok)
}
