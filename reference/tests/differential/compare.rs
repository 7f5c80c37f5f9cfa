//! Running both sides: the reference interpreter and the compiled runtime
//! (decisions, errors and service settings).

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::{json, Map, Value};
use sluice_compiler::Config;
use sluice_reference::{evaluate_request, Decision, Direction, ErrorKind, Request};
use sluice_runtime::{
    AlignedBytes, Bundle, Http, Inbound, Outbound, Peer, PeerClass, RequestError, Scratch,
};

use crate::model::Model;
use crate::render::{load_folder, render, render_files};

/// A decision with owned fields, comparable across the two sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Flat {
    pub(crate) allow: bool,
    pub(crate) reason: String,
    pub(crate) server: Option<String>,
    pub(crate) route: Option<String>,
    pub(crate) rule: Option<String>,
    pub(crate) audit: bool,
    pub(crate) http_status: Option<u16>,
    pub(crate) grpc_status: Option<u8>,
    pub(crate) service: Option<String>,
    pub(crate) backends: Vec<(String, u32)>,
    pub(crate) timeout_ms: Option<u64>,
}

/// A decision, an error (its kind compared, not its message), or a panic.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Decision(Flat),
    /// The kind (`connection-to-http-server`, `incomplete`,
    /// `bad-authority`) and the message.
    Error(&'static str, String),
    Panic(String),
}

impl Outcome {
    pub(crate) fn agrees(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Decision(a), Outcome::Decision(b)) => a == b,
            (Outcome::Error(a, _), Outcome::Error(b, _)) => a == b,
            _ => false,
        }
    }
}

pub(crate) fn flat_reference(d: &Decision) -> Flat {
    Flat {
        allow: d.allow,
        reason: d.reason.to_string(),
        server: d.server.clone(),
        route: d.route.clone(),
        rule: d.rule.clone(),
        audit: d.audit,
        http_status: d.http_status,
        grpc_status: d.grpc_status,
        service: d.service.clone(),
        backends: d.backends.clone(),
        timeout_ms: d.timeout_ms,
    }
}

pub(crate) fn flat_runtime(d: &sluice_runtime::Decision<'_>) -> Flat {
    Flat {
        allow: d.allow,
        reason: d.reason.as_str().to_string(),
        server: d.server.map(str::to_string),
        route: d.route.map(str::to_string),
        rule: d.rule.map(str::to_string),
        audit: d.audit,
        http_status: d.http_status,
        grpc_status: d.grpc_status,
        service: d.service.map(str::to_string),
        backends: d
            .backends
            .iter()
            .map(|b| (b.name.to_string(), b.weight))
            .collect(),
        timeout_ms: d.timeout_ms,
    }
}

pub(crate) fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".to_string())
}

pub(crate) fn run_reference(policy: &sluice_lang::Policy, r: &Request) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| evaluate_request(policy, r))) {
        Ok(Ok(d)) => Outcome::Decision(flat_reference(&d)),
        Ok(Err(e)) => Outcome::Error(
            match e.kind {
                ErrorKind::ConnectionToHttpServer => "connection-to-http-server",
                ErrorKind::Incomplete => "incomplete",
                ErrorKind::BadAuthority => "bad-authority",
            },
            e.message,
        ),
        Err(e) => Outcome::Panic(panic_message(&*e)),
    }
}

/// A loaded bundle with its scratch space.
pub(crate) struct Runtime<'a> {
    pub(crate) bundle: Bundle<'a>,
    pub(crate) scratch: Scratch,
    pub(crate) class: PeerClass,
}

impl<'a> Runtime<'a> {
    pub(crate) fn new(bytes: &'a AlignedBytes) -> Result<Self, String> {
        let bundle = Bundle::from_bytes(bytes.as_bytes())
            .map_err(|e| format!("the bundle does not load: {e:?}"))?;
        let scratch = bundle.create_scratch();
        let class = bundle.create_peer_class();
        Ok(Runtime {
            bundle,
            scratch,
            class,
        })
    }

    pub(crate) fn run(&mut self, r: &Request) -> Outcome {
        let Runtime {
            bundle,
            scratch,
            class,
        } = self;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let http = match (&r.method, &r.path) {
                (None, None) => None,
                (m, p) => Some(Http {
                    method: m.as_deref().unwrap_or(""),
                    path: p.as_deref().unwrap_or("").as_bytes(),
                    headers: &r.headers,
                }),
            };
            match r.direction {
                Direction::Inbound => {
                    bundle.classify(
                        &Peer {
                            ip: r.peer_ip,
                            identity: r.peer_identity.as_deref(),
                        },
                        class,
                    );
                    bundle
                        .decide_inbound(
                            &Inbound {
                                port: r.port.unwrap_or(0),
                                http,
                            },
                            class,
                            scratch,
                        )
                        .map(|d| flat_runtime(&d))
                }
                Direction::Outbound => bundle
                    .decide_outbound(
                        &Outbound {
                            authority: r.authority.as_deref(),
                            ip: r.ip,
                            port: r.port,
                            http,
                        },
                        scratch,
                    )
                    .map(|d| flat_runtime(&d)),
            }
        }));
        match result {
            Ok(Ok(d)) => Outcome::Decision(d),
            Ok(Err(e)) => Outcome::Error(
                match e {
                    RequestError::ConnectionToHttpServer { .. } => "connection-to-http-server",
                    RequestError::Incomplete { .. } => "incomplete",
                    RequestError::BadAuthority => "bad-authority",
                },
                e.to_string(),
            ),
            Err(e) => Outcome::Panic(panic_message(&*e)),
        }
    }
}

/// A service's settings as the runtime's accessors give them, in the
/// reference's types (a failover index becomes its backend's name), with
/// the retry policy of each of `routes`.
pub(crate) fn settings_of_runtime(
    bundle: &Bundle<'_>,
    name: &str,
    routes: &[&str],
) -> Option<sluice_reference::ServiceSettings> {
    use sluice_reference::{
        Backend, Breaker, Endpoint, Retry, RetryOn, RouteSettings, ServiceSettings,
    };
    use sluice_runtime::{Endpoint as RtEndpoint, RetryCond};
    let s = bundle.service(name)?;
    let retry = |r: &sluice_runtime::Retry| Retry {
        attempts: r.attempts,
        on: r
            .on
            .iter()
            .map(|c| match *c {
                RetryCond::ServerError => RetryOn::ServerError,
                RetryCond::GatewayError => RetryOn::GatewayError,
                RetryCond::Reset => RetryOn::Reset,
                RetryCond::Status(s) => RetryOn::Status(s),
                RetryCond::Grpc(c) => RetryOn::Grpc(c),
            })
            .collect(),
        per_try_timeout_ms: r.per_try_timeout_ms,
        budget_percent: r.budget_percent,
    };
    let backends = s
        .backends
        .iter()
        .map(|b| Backend {
            name: b.name.to_string(),
            endpoints: b
                .endpoints
                .iter()
                .map(|e| match *e {
                    RtEndpoint::Addr(a) => Endpoint::Addr(a),
                    RtEndpoint::Name(n) => Endpoint::Name(n.to_string()),
                })
                .collect(),
            identity: b.identity.map(str::to_string),
            cluster: b.cluster.map(str::to_string),
            failover: b.failover.map(|i| {
                s.backends
                    .get(i as usize)
                    .map_or_else(|| format!("#{i} (out of range)"), |f| f.name.to_string())
            }),
            max_in_flight: b.max_in_flight,
        })
        .collect();
    let routes = routes
        .iter()
        .map(|r| RouteSettings {
            name: r.to_string(),
            retry: bundle.route_retry(name, r).map(retry),
        })
        .collect();
    Some(ServiceSettings {
        name: s.name.to_string(),
        timeout_ms: s.timeout_ms,
        retry: s.retry.map(retry),
        breaker: s.breaker.map(|b| Breaker {
            consecutive_failures: b.consecutive_failures,
            backoff_min_ms: b.backoff_min_ms,
            backoff_max_ms: b.backoff_max_ms,
            jitter_percent: b.jitter_percent,
        }),
        backends,
        routes,
    })
}

/// Compares every service's settings (retry, budget, per-try timeout,
/// breaker, failover, endpoints, cluster, max-in-flight, backend identity)
/// between the bundle and the reference. Returns `(field, report)` for
/// each difference.
pub(crate) fn compare_settings(
    m: &Model,
    policy: &sluice_lang::Policy,
    bundle: &Bundle<'_>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let names: Vec<&str> = bundle.service_names().collect();
    let expected: Vec<&str> = policy
        .items
        .iter()
        .filter_map(|i| match i {
            sluice_lang::ast::Item::Service(s) => Some(s.name.node.as_str()),
            _ => None,
        })
        .collect();
    if names != expected {
        out.push((
            "service names".to_string(),
            format!("runtime {names:?}, declaration order {expected:?}"),
        ));
    }
    for svc in &m.services {
        let reference = sluice_reference::service_settings(policy, &svc.name);
        let routes: Vec<&str> = svc.routes.iter().map(|r| r.name.as_str()).collect();
        let runtime = settings_of_runtime(bundle, &svc.name, &routes);
        // DNS names compare case-insensitively: the bundle keeps endpoint
        // names lowercased, the reference as written.
        let lower_names = |s: Option<sluice_reference::ServiceSettings>| {
            s.map(|mut s| {
                for b in &mut s.backends {
                    for e in &mut b.endpoints {
                        if let sluice_reference::Endpoint::Name(n) = e {
                            n.make_ascii_lowercase();
                        }
                    }
                }
                s
            })
        };
        let (reference, runtime) = (lower_names(reference), lower_names(runtime));
        let (Some(e), Some(a)) = (&reference, &runtime) else {
            if reference.is_some() != runtime.is_some() {
                out.push((
                    "service missing".to_string(),
                    format!(
                        "service `{}`: reference {reference:?}, runtime {runtime:?}",
                        svc.name
                    ),
                ));
            }
            continue;
        };
        let mut fields = Vec::new();
        macro_rules! cmp {
            ($($field:ident),*) => { $( if e.$field != a.$field { fields.push(stringify!($field).to_string()); } )* };
        }
        cmp!(timeout_ms, retry, breaker, routes);
        if e.backends.len() != a.backends.len() {
            fields.push("backends".to_string());
        }
        for (x, y) in e.backends.iter().zip(&a.backends) {
            macro_rules! cmp_backend {
                ($($field:ident),*) => {
                    $( if x.$field != y.$field { fields.push(format!("backend.{}", stringify!($field))); } )*
                };
            }
            cmp_backend!(name, endpoints, identity, cluster, failover, max_in_flight);
        }
        fields.dedup();
        for f in fields {
            out.push((
                format!("settings [{f}]"),
                format!(
                    "service `{}`\n  reference: {e:?}\n  runtime:   {a:?}",
                    svc.name
                ),
            ));
        }
    }
    out
}

/// Parses and compiles policy text; `Err` holds a report (a generator bug).
pub(crate) fn build(
    text: &str,
    config: &Config,
) -> Result<(sluice_lang::Policy, AlignedBytes), String> {
    let policy = parse_text(text)?;
    let bytes = compile_policy(&policy, config)?;
    Ok((policy, bytes))
}

/// Parses policy text as one file; `Err` holds a report.
pub(crate) fn parse_text(text: &str) -> Result<sluice_lang::Policy, String> {
    let (policy, diagnostics) = sluice_lang::parse::parse_str("diff.sluice", text);
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        return Err(format!("the generated policy does not parse: {errors:#?}"));
    }
    Ok(policy)
}

/// The policy the reference decides (the model rendered as one file) and,
/// for a folder layout, the policy the compiler gets (the model rendered
/// as a folder and read back from disk); they have the same declaration
/// order.
pub(crate) fn sources(
    m: &Model,
) -> Result<(sluice_lang::Policy, Option<sluice_lang::Policy>), String> {
    let reference = parse_text(&render(m))?;
    let Some(seed) = m.files else {
        return Ok((reference, None));
    };
    let (folder, diagnostics) = sluice_lang::parse::parse_files(load_folder(m, seed)?);
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        return Err(format!(
            "the generated policy folder does not parse: {errors:#?}"
        ));
    }
    Ok((reference, Some(folder)))
}

/// The text of a model for a report: one file, or each file of its folder.
pub(crate) fn model_text(m: &Model) -> String {
    match m.files {
        None => render(m),
        Some(seed) => {
            let (files, junk) = render_files(m, seed);
            let mut out = String::new();
            for (path, text) in files {
                let _ = write!(out, "--- file {path}\n{text}");
            }
            for (path, _) in junk {
                let _ = writeln!(out, "--- (not a policy file: {path})");
            }
            out
        }
    }
}

/// Compiles a parsed policy; `Err` holds a report (a generator bug).
pub(crate) fn compile_policy(
    policy: &sluice_lang::Policy,
    config: &Config,
) -> Result<AlignedBytes, String> {
    match sluice_compiler::compile(policy, config) {
        Ok(compiled) => Ok(AlignedBytes::new(&compiled.bundle)),
        Err(diagnostics) => {
            let list: String = diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| {
                    format!(
                        "  {} at line {} column {}: {}\n",
                        d.code.as_str(),
                        d.span.line,
                        d.span.column,
                        d.message
                    )
                })
                .collect();
            Err(format!("the generated policy does not compile:\n{list}"))
        }
    }
}

/// The request as the JSON of spec section 10.
pub(crate) fn request_json(r: &Request) -> Value {
    let mut o = Map::new();
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    match r.direction {
        Direction::Inbound => {
            put("direction", json!("inbound"));
            if let Some(p) = r.port {
                put("port", json!(p));
            }
        }
        Direction::Outbound => {
            put("direction", json!("outbound"));
            if let Some(a) = &r.authority {
                put("authority", json!(a));
            }
            if let Some(ip) = r.ip {
                put("ip", json!(ip.to_string()));
            }
            if let Some(p) = r.port {
                put("port", json!(p));
            }
        }
    }
    if let Some(m) = &r.method {
        put("method", json!(m));
    }
    if let Some(p) = &r.path {
        put("path", json!(p));
    }
    if !r.headers.is_empty() {
        put(
            "headers",
            Value::Array(r.headers.iter().map(|(n, v)| json!([n, v])).collect()),
        );
    }
    if r.direction == Direction::Inbound {
        let mut peer = Map::new();
        if let Some(ip) = r.peer_ip {
            peer.insert("ip".to_string(), json!(ip.to_string()));
        }
        if let Some(id) = &r.peer_identity {
            peer.insert("identity".to_string(), json!(id));
        }
        put("peer", Value::Object(peer));
    }
    Value::Object(o)
}

pub(crate) fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Decision(d) => format!("{d:?}"),
        Outcome::Error(kind, e) => format!("error ({kind}): {e}"),
        Outcome::Panic(e) => format!("PANIC: {e}"),
    }
}
