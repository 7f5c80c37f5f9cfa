//! `sluice authz --config FILE`: Envoy's external authorization service
//! (`docs/ext-authz.md`). The configuration is the proxy's, with an
//! `[authz]` table; its policy sources, reloads, admin listener, metrics
//! and decision log work as the proxy's.

use crate::args::ProxyArgs;
use crate::{Io, EXIT_IO};
use sluice_proxy::Config;
use std::io;

/// Runs the ext_authz service until SIGTERM or SIGINT.
pub fn run(args: &ProxyArgs, io: &mut Io<'_>) -> io::Result<u8> {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return super::io_failure(io, e),
    };
    if config.authz.is_none() {
        writeln!(
            io.err,
            "error: `{}` has no `[authz]` table: write one with `listen = \"127.0.0.1:9191\"` (see docs/ext-authz.md)",
            args.config.display()
        )?;
        return Ok(EXIT_IO);
    }
    super::proxy::serve(config, args.log.as_deref(), io)
}
