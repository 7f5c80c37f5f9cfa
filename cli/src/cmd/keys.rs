//! `sluice keys generate`: an ECDSA P-256 key pair for signing bundle
//! artifacts, `PREFIX.key` (unencrypted PKCS#8 PEM, mode 0600) and
//! `PREFIX.pub` (PKIX PEM), in the formats openssl and cosign read (see
//! docs/distribution.md); with `--encrypt`, `PREFIX.key` is cosign's
//! encrypted key under the password in `COSIGN_PASSWORD`. Prints both paths
//! and the key id. Exit 2 when a file exists or cannot be written, or
//! `--encrypt` is given without `COSIGN_PASSWORD`.

use crate::args::{KeysArgs, KeysCommand};
use crate::{Io, EXIT_IO, EXIT_OK};
use sluice_fleet::keys::{generate_files_with_password, password_from_env, PASSWORD_ENV};
use std::io;

/// Runs `sluice keys`.
pub fn run(args: &KeysArgs, io: &mut Io<'_>) -> io::Result<u8> {
    match &args.command {
        KeysCommand::Generate(a) => {
            let password = if a.encrypt {
                match password_from_env() {
                    Some(p) => Some(p),
                    None => {
                        writeln!(
                            io.err,
                            "error: `--encrypt` takes the password from `{PASSWORD_ENV}`, which is not set"
                        )?;
                        return Ok(EXIT_IO);
                    }
                }
            } else {
                None
            };
            generate(&a.out, password.as_deref(), io)
        }
    }
}

fn generate(out: &std::path::Path, password: Option<&[u8]>, io: &mut Io<'_>) -> io::Result<u8> {
    match generate_files_with_password(out, password) {
        Ok((key, public, id)) => {
            let private = match password {
                Some(_) => "private, encrypted with the password in `COSIGN_PASSWORD`",
                None => "private, keep it secret",
            };
            writeln!(
                io.out,
                "wrote {} ({private}) and {} (public), key id {}",
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
    }
}
