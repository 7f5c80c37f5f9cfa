//! Runs the built `sluice` binary for the CLI's integration tests.

use std::io::Write;
use std::process::{Command, Stdio};

/// What one `sluice` run printed, and its exit code.
pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs `sluice ARGS` with `stdin` on its standard input and echoes the
/// run to the test's stderr (shown when a test fails).
pub fn run_sluice(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluice");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    eprintln!(
        "$ sluice {}\n[exit {}]\n{}\n[stderr]\n{}",
        args.join(" "),
        run.code,
        run.out,
        run.err
    );
    run
}
