//! The admin listener: `/metrics`, `/ready`, `/live`, `/policy` and
//! `POST /reload`.

use crate::remote::{unix_ms, PolicyControl};
use crate::server::{self, Admission};
use crate::state::Shared;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the admin listener serves.
pub(crate) struct Admin {
    /// Shared proxy state.
    pub shared: Arc<Shared>,
    /// The policy's reload and provenance, from a file or a remote source.
    pub policy: Arc<PolicyControl>,
    /// The candidate bundle's, when one is configured and its source usable.
    pub candidate: Option<Arc<PolicyControl>>,
}

impl Admin {
    /// Serves the admin endpoints on `listener` until shutdown.
    pub(crate) async fn run(self: Arc<Self>, listener: TcpListener) {
        let shared = self.shared.clone();
        server::accept_loop(&listener, &shared, Admission::Admin, |accepted| {
            let admin = self.clone();
            async move {
                let service = hyper::service::service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, std::convert::Infallible>(admin.handle(req).await) }
                });
                let _ = server::admin_builder()
                    .serve_connection(TokioIo::new(accepted.stream), service)
                    .await;
            }
        })
        .await;
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/metrics") => {
                let mut r = text(StatusCode::OK, self.shared.metrics.render());
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            }
            (&Method::GET, "/live") => text(StatusCode::OK, "live\n".into()),
            (&Method::GET, "/ready") => {
                if self.shared.is_ready() {
                    text(StatusCode::OK, "ready\n".into())
                } else {
                    let mut missing = Vec::new();
                    if self.shared.store.current().is_none() {
                        missing.push("a valid policy bundle");
                    }
                    if let Some(id) = &self.shared.identity {
                        if !id.has_credentials() {
                            missing.push("an SVID");
                        }
                        if !id.has_trust_bundles() {
                            missing.push("trust bundles");
                        }
                    }
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: waiting for {}\n", missing.join(", ")),
                    )
                }
            }
            (&Method::GET, "/policy") => match self.shared.store.current() {
                Some(b) => {
                    let from = self.policy.provenance();
                    json(
                        StatusCode::OK,
                        serde_json::json!({
                            "hash": b.hash(),
                            "bytes": b.len(),
                            "generation": b.generation(),
                            "loaded_at_unix_ms": unix_ms(b.loaded_at()),
                            "source": from.source,
                            "digest": from.digest,
                            "signer": from.signer,
                            "fetched_at_unix_ms": from.fetched_at.map(unix_ms),
                            "format": from.format,
                            "candidate": self.candidate_json(),
                        }),
                    )
                }
                None => json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({
                        "error": "no valid bundle loaded yet",
                        "candidate": self.candidate_json(),
                    }),
                ),
            },
            (&Method::POST, "/reload") => {
                let live = self.policy.reload("POST /reload").await;
                let candidate = match &self.candidate {
                    Some(c) => match c.reload("POST /reload").await {
                        Ok(b) => {
                            serde_json::json!({"hash": b.hash(), "generation": b.generation()})
                        }
                        Err(e) => serde_json::json!({"error": e}),
                    },
                    None => serde_json::Value::Null,
                };
                match live {
                    Ok(b) => json(
                        StatusCode::OK,
                        serde_json::json!({
                            "hash": b.hash(),
                            "generation": b.generation(),
                            "candidate": candidate,
                        }),
                    ),
                    Err(e) => json(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        serde_json::json!({
                            "error": e,
                            "serving": self.shared.store.current().map(|b| b.hash().to_owned()),
                            "candidate": candidate,
                        }),
                    ),
                }
            }
            (_, "/metrics" | "/live" | "/ready" | "/policy" | "/reload") => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n".into(),
            ),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; try /metrics, /ready, /live, /policy or POST /reload\n".into(),
            ),
        }
    }
}

impl Admin {
    /// The candidate bundle as `/policy` shows it: its source, the bundle
    /// loaded (hash, size, generation, load time, and for a remote source
    /// digest and signer) and the last load's error; `null` without one.
    fn candidate_json(&self) -> serde_json::Value {
        let Some(candidate) = &self.shared.candidate else {
            return serde_json::Value::Null;
        };
        let loaded = candidate.store.current();
        let from = self.candidate.as_ref().map(|c| c.provenance());
        serde_json::json!({
            "source": candidate.source,
            "hash": loaded.as_ref().map(|b| b.hash().to_owned()),
            "bytes": loaded.as_ref().map(|b| b.len()),
            "generation": loaded.as_ref().map(|b| b.generation()),
            "loaded_at_unix_ms": loaded.as_ref().map(|b| unix_ms(b.loaded_at())),
            "digest": from.as_ref().and_then(|f| f.digest.clone()),
            "signer": from.as_ref().and_then(|f| f.signer.clone()),
            "error": candidate.error(),
        })
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{value}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
