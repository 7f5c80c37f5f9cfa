//! `sluice proxy --config FILE`: runs the proxy. When the configuration
//! names a policy source, it is compiled here, so the proxy crate never
//! carries the compiler; so is the signed source of a remote artifact whose
//! bundle format this Sluice does not read (`compile-source-on-mismatch`).

use crate::args::ProxyArgs;
use crate::{policy, Io, EXIT_FAILED, EXIT_IO, EXIT_OK};
use sluice_proxy::config::CandidateSource;
use sluice_proxy::{reload, remote, Config, Proxy};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Runs the proxy until SIGTERM or SIGINT.
pub fn run(args: &ProxyArgs, io: &mut Io<'_>) -> io::Result<u8> {
    match Config::load(&args.config) {
        Ok(config) => serve(config, args.log.as_deref(), io),
        Err(e) => super::io_failure(io, e),
    }
}

/// Serves `config` (listeners, `[authz]`, admin) until SIGTERM or SIGINT,
/// logging with the tracing filter `log`.
pub(crate) fn serve(config: Config, log: Option<&str>, io: &mut Io<'_>) -> io::Result<u8> {
    init_logging(log);
    let loader = policy_loader(&config);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Ok(value) = std::env::var("SLUICE_WORKERS") {
        match value.parse::<usize>() {
            Ok(n) if n > 0 => {
                builder.worker_threads(n);
            }
            _ => {
                writeln!(
                    io.err,
                    "error: `SLUICE_WORKERS` must be a positive number, not `{value}`"
                )?;
                return Ok(EXIT_IO);
            }
        }
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            writeln!(io.err, "error: cannot start the runtime: {e}")?;
            return Ok(EXIT_IO);
        }
    };
    let result = runtime.block_on(async move {
        let proxy = Proxy::start_with_compiler(config, loader, source_compiler())
            .await
            .map_err(|e| e.to_string())?;
        proxy
            .run_until_signal()
            .await
            .map_err(|e| format!("cannot handle signals: {e}"))
    });
    match result {
        Ok(()) => Ok(EXIT_OK),
        Err(e) => {
            writeln!(io.err, "error: {e}")?;
            Ok(EXIT_FAILED)
        }
    }
}

/// The loader the proxy reads its policy files with: compiling a policy
/// source (the live `source`, or a `candidate` that is not a bundle file;
/// the proxy reads a candidate bundle file as is), reading a live `bundle`
/// as is.
pub fn policy_loader(config: &Config) -> reload::PolicyLoader {
    let local_candidate = matches!(
        config.policy.candidate_source,
        Some(CandidateSource::Path(_))
    );
    match (&config.policy.bundle, local_candidate) {
        (Some(bundle), true) => {
            let (bundle, read, compile) = (
                bundle.clone(),
                reload::bundle_file_loader(),
                source_loader(),
            );
            Arc::new(move |path: &Path| {
                if path == bundle {
                    read(path)
                } else {
                    compile(path)
                }
            })
        }
        _ if config.policy.source.is_some() || local_candidate => source_loader(),
        _ => reload::bundle_file_loader(),
    }
}

/// A loader that compiles policy source; diagnostics become one message.
pub fn source_loader() -> reload::PolicyLoader {
    Arc::new(|path: &Path| compile_parsed(policy::load(path)?))
}

/// Compiles the source layer of a remote artifact (one file) as
/// [`source_loader`] compiles a file.
pub fn source_compiler() -> remote::PolicySourceCompiler {
    Arc::new(|text: &[u8]| {
        let text = std::str::from_utf8(text)
            .map_err(|e| format!("the policy source is not UTF-8: {e}"))?;
        compile_parsed(policy::parse_str("policy.sluice", text))
    })
}

/// Compiles parsed policy source; diagnostics become one message.
fn compile_parsed(parsed: policy::Parsed) -> Result<Vec<u8>, String> {
    match policy::compile(&parsed, &sluice_compiler::Config::default()) {
        Ok(compiled) => Ok(compiled.bundle),
        Err(diags) => {
            let errors: Vec<String> = diags
                .iter()
                .filter(|d| d.is_error())
                .map(|d| {
                    let file = parsed
                        .files()
                        .get(d.span.file as usize)
                        .map_or("?", |f| f.path.as_str());
                    format!("{file}:{}:{}: {}", d.span.line, d.span.column, d.message)
                })
                .collect();
            Err(format!(
                "the policy has {}: {}",
                policy::plural(errors.len(), "error"),
                errors.join("; ")
            ))
        }
    }
}

/// Logs to standard error with the tracing filter `filter`, `SLUICE_LOG`
/// or `info`.
pub(crate) fn init_logging(filter: Option<&str>) {
    let filter = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("SLUICE_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: `kubectl logs`, journald and log files
    // get plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compile_hook_builds_a_bundle_or_names_the_errors() {
        let compile = source_compiler();
        let text = b"server web { port 8080  protocol http  route api { path prefix \"/api\" } }\nallow a { to web.api  from any }\n";
        let bytes = compile(text).unwrap();
        let aligned = sluice_runtime::AlignedBytes::new(&bytes);
        assert!(sluice_runtime::Bundle::from_bytes(aligned.as_bytes()).is_ok());
        let e = compile(b"allow a { to nowhere  from any }\n").unwrap_err();
        assert_eq!(
            e,
            "the policy has 1 error: policy.sluice:1:14: no server `nowhere`"
        );
        let e = compile(&[0xff, 0xfe]).unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");
    }
}
