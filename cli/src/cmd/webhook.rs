//! `sluice inject --serve`: the admission webhook
//! (`sluice_kube::webhook`), injecting with the same settings as
//! `sluice inject` on the command line. Runs until SIGTERM or SIGINT.

use crate::{Io, EXIT_FAILED, EXIT_IO, EXIT_OK};
use sluice_kube::inject::InjectConfig;
use sluice_kube::webhook::{self, Webhook};
use std::io;
use std::net::SocketAddr;
use std::path::Path;

/// Serves the webhook on `listen` with the PEM `cert` and `key`; exit 0
/// after a signal, 1 when it cannot start.
pub fn run(
    listen: SocketAddr,
    cert: &Path,
    key: &Path,
    config: InjectConfig,
    io: &mut Io<'_>,
) -> io::Result<u8> {
    super::proxy::init_logging(None);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            writeln!(io.err, "error: cannot start the runtime: {e}")?;
            return Ok(EXIT_IO);
        }
    };
    let webhook = match runtime.block_on(Webhook::bind(listen, cert, key, config)) {
        Ok(w) => w,
        Err(e) => {
            writeln!(io.err, "error: {e}")?;
            return Ok(EXIT_FAILED);
        }
    };
    let addr = webhook.local_addr()?;
    writeln!(
        io.err,
        "admission webhook on https://{addr}: POST /mutate, POST /mutate/namespace-enabled, GET /healthz"
    )?;
    runtime.block_on(webhook.run(webhook::terminated()));
    writeln!(io.err, "admission webhook stopped")?;
    Ok(EXIT_OK)
}
