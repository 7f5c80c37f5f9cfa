//! Load on an `envoy.service.auth.v3.Authorization` server (`sluice authz`,
//! issue 15), and the bare baseline server it is compared with.
//!
//! ```text
//! authz_load load ADDR [-c CONCURRENCY] [-n CONNECTIONS] [-d SECONDS] [-w WARMUP] [-t THREADS]
//! authz_load check ADDR
//! authz_load baseline LISTEN [-t THREADS]
//! authz_load policy ROUTES
//! ```
//!
//! - `load`: a tonic client sends `Check` RPCs over `-n` HTTP/2
//!   connections (1) with `-c` requests in flight (16), for `-w` seconds
//!   of warm-up (1) and then `-d` seconds (5), on a tokio runtime of `-t`
//!   threads (1). Every request is the decision benchmarks' allowed
//!   inbound request as Envoy sends it
//!   ([`sluice_benches::check::realistic_check_request`]); every answer
//!   must be OK with an `ok_response`, else it counts as wrong. Prints one
//!   line, `checks=… seconds=… checks_per_s=… p50_us=… p99_us=…
//!   p999_us=… errors=… wrong=…`, and fails when a request failed or was
//!   answered wrongly, or none was answered. Latencies: a sorted `Vec` of
//!   every measured request's time from the call to the decoded answer.
//! - `check`: sends an allowed check, three denials (anonymous peer,
//!   anonymous gRPC call, no route) and one unmappable check, and fails
//!   unless each gets the answer of `docs/ext-authz.md` (code, HTTP status,
//!   `x-sluice-error`, gRPC status) on the 1,000-route benchmark policy.
//! - `baseline`: a tonic `Authorization` server that answers every check
//!   OK without reading it (tonic still decodes the request and encodes
//!   the answer), on a multi-threaded runtime of `-t` threads (2), with
//!   the settings of `sluice authz` (TCP_NODELAY, 1 MiB HTTP/2 frames, the
//!   default decoding limit, 256 KiB).
//! - `policy`: prints the decision benchmarks' generated policy of
//!   `ROUTES` routes ([`sluice_benches::generate`]), which `check` expects.
//!
//! The client shares the machine with the server: on the project's 2-core
//! machine its thread competes with the server's.

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::rpc::Status;
use sluice_benches::check::{check_request, realistic_check_request, Check};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint, Server};

/// The decoding limit of the baseline server: `sluice authz`'s default
/// `max-request-bytes`.
const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// Options of the subcommands.
struct Options {
    concurrency: usize,
    connections: usize,
    seconds: f64,
    warmup: f64,
    threads: Option<usize>,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: authz_load load ADDR [-c CONCURRENCY] [-n CONNECTIONS] [-d SECONDS] [-w WARMUP] [-t THREADS]\n       authz_load check ADDR\n       authz_load baseline LISTEN [-t THREADS]\n       authz_load policy ROUTES"
    );
    ExitCode::from(2)
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        concurrency: 16,
        connections: 1,
        seconds: 5.0,
        warmup: 1.0,
        threads: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("`{flag}` needs a value"))?;
        let bad = || format!("`{flag}`: bad value `{value}`");
        match flag.as_str() {
            "-c" => o.concurrency = value.parse().map_err(|_| bad())?,
            "-n" => o.connections = value.parse().map_err(|_| bad())?,
            "-d" => o.seconds = value.parse().map_err(|_| bad())?,
            "-w" => o.warmup = value.parse().map_err(|_| bad())?,
            "-t" => o.threads = Some(value.parse().map_err(|_| bad())?),
            _ => return Err(format!("unknown option `{flag}`")),
        }
    }
    if o.concurrency == 0 || o.connections == 0 || o.seconds <= 0.0 || o.threads == Some(0) {
        return Err("`-c`, `-n`, `-d` and `-t` must be positive".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(cmd), Some(addr)) = (args.first(), args.get(1)) else {
        return usage();
    };
    if cmd == "policy" {
        return match addr.parse::<usize>() {
            Ok(n) if n > 0 => {
                print!("{}", sluice_benches::generate(n));
                ExitCode::SUCCESS
            }
            _ => usage(),
        };
    }
    let options = match parse(&args[2..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return usage();
        }
    };
    let threads = options
        .threads
        .unwrap_or(if cmd == "baseline" { 2 } else { 1 });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cmd.as_str() {
        "load" => runtime.block_on(load(addr, &options)),
        "check" => runtime.block_on(check(addr)),
        "baseline" => runtime.block_on(baseline(addr)),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One HTTP/2 connection to `addr`.
async fn connect(addr: &str) -> Result<Channel, String> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address `{addr}`: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to `{addr}`: {e}"))
}

/// What one task of the load saw.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    errors: u64,
    wrong: u64,
    first_problem: Option<String>,
}

/// Whether `answer` is an allow: code OK and an `ok_response`.
fn is_allow(answer: &CheckResponse) -> bool {
    answer.status.as_ref().map_or(0, |s| s.code) == 0
        && matches!(answer.http_response, Some(HttpResponse::OkResponse(_)))
}

async fn load(addr: &str, o: &Options) -> Result<(), String> {
    let mut channels = Vec::with_capacity(o.connections);
    for _ in 0..o.connections {
        channels.push(connect(addr).await?);
    }
    let request = realistic_check_request();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(o.warmup);
    let until = measure_from + Duration::from_secs_f64(o.seconds);
    let mut tasks = Vec::with_capacity(o.concurrency);
    for i in 0..o.concurrency {
        let mut client = AuthorizationClient::new(channels[i % channels.len()].clone())
            .max_decoding_message_size(MAX_REQUEST_BYTES);
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally {
                latencies_ns: Vec::with_capacity(1 << 16),
                ..Tally::default()
            };
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let answer = client.check(request.clone()).await;
                let took = sent.elapsed();
                let problem = match answer {
                    Ok(a) if is_allow(a.get_ref()) => None,
                    Ok(a) => {
                        tally.wrong += 1;
                        Some(format!("not an allow: {:?}", a.get_ref()))
                    }
                    Err(e) => {
                        tally.errors += 1;
                        Some(format!("gRPC error: {e}"))
                    }
                };
                if problem.is_some() && tally.first_problem.is_none() {
                    tally.first_problem = problem;
                }
                if sent >= measure_from {
                    tally.latencies_ns.push(took.as_nanos() as u64);
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.map_err(|e| format!("a load task failed: {e}"))?;
        all.latencies_ns.extend(t.latencies_ns);
        all.errors += t.errors;
        all.wrong += t.wrong;
        if all.first_problem.is_none() {
            all.first_problem = t.first_problem;
        }
    }
    let mut lat = all.latencies_ns;
    lat.sort_unstable();
    let q = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        // Nearest rank.
        let rank = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len());
        lat[rank - 1] as f64 / 1_000.0
    };
    println!(
        "checks={} seconds={} checks_per_s={:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1} errors={} wrong={} concurrency={} connections={}",
        lat.len(),
        o.seconds,
        lat.len() as f64 / o.seconds,
        q(0.5),
        q(0.99),
        q(0.999),
        all.errors,
        all.wrong,
        o.concurrency,
        o.connections
    );
    if let Some(p) = all.first_problem {
        return Err(format!(
            "{} errors and {} wrong answers; first: {p}",
            all.errors, all.wrong
        ));
    }
    if lat.is_empty() {
        return Err("no check was answered".into());
    }
    Ok(())
}

/// The answer a check must get.
struct Expect {
    name: &'static str,
    code: i32,
    /// `None`: an `ok_response`; else the denied HTTP status.
    http_status: Option<i32>,
    /// `x-sluice-error` of a denial.
    error: Option<&'static str>,
    /// `grpc-status` of a gRPC denial.
    grpc_status: Option<&'static str>,
}

fn header<'a>(headers: &'a [HeaderValueOption], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key.eq_ignore_ascii_case(name))
        .map(|h| {
            if h.raw_value.is_empty() {
                h.value.as_str()
            } else {
                std::str::from_utf8(&h.raw_value).unwrap_or("<not UTF-8>")
            }
        })
}

fn verify(answer: &CheckResponse, want: &Expect) -> Result<(), String> {
    let code = answer.status.as_ref().map_or(0, |s| s.code);
    if code != want.code {
        return Err(format!("code {code}, expected {}", want.code));
    }
    match (&answer.http_response, want.http_status) {
        (Some(HttpResponse::OkResponse(_)), None) => Ok(()),
        (Some(HttpResponse::DeniedResponse(d)), Some(status)) => {
            let got = d.status.as_ref().map_or(0, |s| s.code);
            if got != status {
                return Err(format!("HTTP status {got}, expected {status}"));
            }
            for (name, value) in [
                ("x-sluice-error", want.error),
                ("grpc-status", want.grpc_status),
            ] {
                let got = header(&d.headers, name);
                if got != value {
                    return Err(format!("`{name}` is {got:?}, expected {value:?}"));
                }
            }
            Ok(())
        }
        (other, _) => Err(format!("unexpected http_response {other:?}")),
    }
}

async fn check(addr: &str) -> Result<(), String> {
    let mut client = AuthorizationClient::new(connect(addr).await?);
    let denied = |name, code, status, error, grpc| Expect {
        name,
        code,
        http_status: Some(status),
        error: Some(error),
        grpc_status: grpc,
    };
    let cases: Vec<(CheckRequest, Expect)> = vec![
        (
            realistic_check_request(),
            Expect {
                name: "allowed",
                code: 0,
                http_status: None,
                error: None,
                grpc_status: None,
            },
        ),
        (
            check_request(&Check::denied()),
            denied("denied", 7, 403, "forbidden", None),
        ),
        (
            check_request(&Check::grpc_denied()),
            denied("grpc_denied", 7, 403, "forbidden", Some("7")),
        ),
        (
            check_request(&Check::no_route()),
            denied("no_route", 7, 404, "no-route", None),
        ),
        (
            CheckRequest::default(),
            denied("bad_check", 3, 403, "bad-check", None),
        ),
    ];
    let mut failed = Vec::new();
    for (request, want) in cases {
        let result = match client.check(request).await {
            Ok(answer) => verify(answer.get_ref(), &want),
            Err(e) => Err(format!("gRPC error: {e}")),
        };
        match result {
            Ok(()) => println!("{}: ok", want.name),
            Err(e) => {
                println!("{}: WRONG: {e}", want.name);
                failed.push(want.name);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("wrong answers: {}", failed.join(", ")))
    }
}

/// Answers every check OK, without looking at it.
struct Baseline;

#[tonic::async_trait]
impl Authorization for Baseline {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(Status {
                code: 0,
                ..Status::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            ..CheckResponse::default()
        }))
    }
}

async fn baseline(listen: &str) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on `{listen}`: {e}"))?;
    eprintln!("baseline Authorization server on {listen}");
    // The settings of `sluice authz` (proxy/src/authz.rs): TCP_NODELAY,
    // 1 MiB HTTP/2 frames, the decoding limit.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .max_frame_size(Some(1 << 20))
        .add_service(
            AuthorizationServer::new(Baseline).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| format!("the server failed: {e}"))
}
