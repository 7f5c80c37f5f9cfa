//! The `sluice` binary: parses arguments and runs [`sluice_cli::run`].

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

/// The process's allocator: jemalloc, told by [`return_freed_memory`] to give
/// freed memory back to the system (glibc's malloc keeps what closed
/// connections freed; BENCHMARKS.md, "Idle keep-alive connections").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long jemalloc keeps freed ("dirty") pages for reuse before it
/// returns them to the system, in milliseconds (jemalloc's default: 10 s).
const DIRTY_DECAY_MS: isize = 1000;

/// Makes jemalloc return freed pages to the system after
/// [`DIRTY_DECAY_MS`], from its own background thread, so that the memory of
/// closed connections goes back even while the proxy is idle. Best effort:
/// a setting jemalloc refuses is left at its default.
fn return_freed_memory() {
    use tikv_jemalloc_ctl::{Access, AsName};
    // Arenas created from now on, then the ones that exist already.
    let _ = b"arenas.dirty_decay_ms\0".name().write(DIRTY_DECAY_MS);
    let arenas = tikv_jemalloc_ctl::arenas::narenas::read().unwrap_or(0);
    for i in 0..arenas {
        let key = format!("arena.{i}.dirty_decay_ms\0");
        let _ = key.as_bytes().name().write(DIRTY_DECAY_MS);
    }
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
}

fn main() -> ExitCode {
    return_freed_memory();
    let cli = sluice_cli::args::Cli::parse();
    let mut stdin = std::io::stdin().lock();
    // Standard output and error are not locked for the whole command: the
    // proxy's worker threads write log lines to standard error.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut io = sluice_cli::Io {
        stdin: &mut stdin,
        out: &mut out,
        err: &mut err,
    };
    let status = match sluice_cli::run(cli, &mut io) {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => sluice_cli::EXIT_IO,
        Err(e) => {
            let _ = writeln!(err, "error: cannot write the output: {e}");
            sluice_cli::EXIT_IO
        }
    };
    let _ = out.flush();
    ExitCode::from(status)
}
