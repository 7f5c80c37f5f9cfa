//! `sluice keys generate`: an ECDSA P-256 key pair for signing bundle
//! artifacts, `PREFIX.key` (unencrypted PKCS#8 PEM, mode 0600) and
//! `PREFIX.pub` (PKIX PEM), in the formats openssl and cosign read (see
//! docs/distribution.md). Prints both paths and the key id. Exit 2 when a
//! file exists or cannot be written.

use crate::args::{KeysArgs, KeysCommand};
use crate::{Io, EXIT_IO, EXIT_OK};
use std::io;

/// Runs `sluice keys`.
pub fn run(args: &KeysArgs, io: &mut Io<'_>) -> io::Result<u8> {
    match &args.command {
        KeysCommand::Generate(a) => match sluice_fleet::keys::generate_files(&a.out) {
            Ok((key, public, id)) => {
                writeln!(
                    io.out,
                    "wrote {} (private, keep it secret) and {} (public), key id {}",
                    key.display(),
                    public.display(),
                    id.key_id()
                )?;
                Ok(EXIT_OK)
            }
            Err(e) => {
                writeln!(io.err, "error: {e}")?;
                Ok(EXIT_IO)
            }
        },
    }
}
