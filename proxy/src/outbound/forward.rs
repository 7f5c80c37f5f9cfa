//! Requests to declared services: the route's weighted split, an endpoint
//! by power of two choices, failover, retries within a budget, per-try and
//! whole-request timeouts, and the proxy's answers when all of that fails.

use super::balance::{self, PickError};
use super::body::{ReplayBody, REPLAY_LIMIT};
use super::egress::upstream_request;
use super::pool::SendError;
use super::retry::{self, Outcome, RetryPolicy};
use super::services::ServiceState;
use super::{failure, own, Context, OutBody, Routed};
use crate::enforce;
use crate::store::LoadedBundle;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Either;
use hyper::body::Incoming;
use sluice_runtime::{BackendId, WeightedBackend};
use std::time::Instant;

/// Forwards a request that `routed` sent to a declared service.
pub(crate) async fn forward(
    ctx: &Context,
    loaded: &LoadedBundle,
    routed: Routed,
    authority: String,
    target: Bytes,
    req: Request<Incoming>,
) -> Response<OutBody> {
    let grpc = enforce::is_grpc(req.headers());
    // The whole-request timeout also covers resolving endpoint names.
    let deadline = routed.timeout.map(|t| tokio::time::Instant::now() + t);
    let timed_out = || {
        ctx.shared.metrics.outbound_errors.inc(["timeout"]);
        failure(
            grpc,
            StatusCode::GATEWAY_TIMEOUT,
            4,
            "the request timed out\n",
            "timeout",
        )
    };
    let table = match deadline {
        Some(d) => match tokio::time::timeout_at(d, ctx.services.table(loaded)).await {
            Ok(t) => t,
            Err(_) => return timed_out(),
        },
        None => ctx.services.table(loaded).await,
    };
    let bundle = loaded.bundle();
    let found = table.get(routed.service).cloned().zip(
        bundle
            .service_by_id(routed.service)
            .zip(bundle.service_route(routed.service, routed.route)),
    );
    let Some((service, (settings, route))) = found else {
        return failure(
            grpc,
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "unknown service\n",
            "no-endpoint",
        );
    };
    let policy = RetryPolicy::from_bundle(route.retry);
    let attempt = Attempts {
        ctx,
        service: &service,
        service_name: settings.name,
        backends: route.backends,
        policy: &policy,
        authority: &authority,
        grpc,
    };
    let work = attempt.run(target, req);
    let (backend, response) = match deadline {
        Some(d) => match tokio::time::timeout_at(d, work).await {
            Ok(r) => r,
            Err(_) => (None, timed_out()),
        },
        None => work.await,
    };
    let class = status_class(response.status().as_u16());
    ctx.shared.metrics.outbound_requests.inc([
        settings.name,
        route.name.unwrap_or(""),
        backend.as_deref().unwrap_or(""),
        class,
    ]);
    response
}

fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

struct Attempts<'a> {
    ctx: &'a Context,
    service: &'a ServiceState,
    service_name: &'a str,
    /// The route's backends with their weights.
    backends: &'a [WeightedBackend<'a>],
    policy: &'a RetryPolicy,
    authority: &'a str,
    grpc: bool,
}

impl Attempts<'_> {
    /// Sends the request, retrying as the policy allows; returns the
    /// backend that answered last and the response.
    async fn run(
        &self,
        target: Bytes,
        req: Request<Incoming>,
    ) -> (Option<String>, Response<OutBody>) {
        let metrics = &self.ctx.shared.metrics;
        let service_name = self.service_name;
        let mut rng = fastrand::Rng::new();
        self.service.budget.record_request(Instant::now());
        let h2 = req.version() == http::Version::HTTP_2;
        let (parts, body) = req.into_parts();
        let mut body = if self.policy.attempts > 0 {
            match ReplayBody::buffer_ready(body, REPLAY_LIMIT).await {
                Ok(b) => b,
                Err(e) => {
                    // The client's body was malformed: as when it fails while streaming.
                    tracing::debug!(error = %e, "malformed request body");
                    metrics.outbound_errors.inc(["bad-request"]);
                    return (None, own(enforce::bad_body_response()));
                }
            }
        } else {
            ReplayBody::client(body)
        };
        let Some(primary) = pick_weighted(self.backends, &mut rng)
            .filter(|&id| self.service.backend(id).is_some())
            .map(BackendId::index)
        else {
            return (
                None,
                failure(
                    self.grpc,
                    StatusCode::SERVICE_UNAVAILABLE,
                    14,
                    "no backend\n",
                    "no-endpoint",
                ),
            );
        };
        let entries = self.service.entries();
        let mut tries = 0u32;
        loop {
            let (used, lease) =
                match balance::pick_with_failover(&entries, primary, Instant::now(), &mut rng) {
                    Ok(picked) => picked,
                    Err(e) => {
                        let (message, why) = match e {
                            PickError::NoEndpoint => ("no endpoint is available\n", "no-endpoint"),
                            PickError::MaxInFlight => {
                                ("too many requests in flight\n", "max-in-flight")
                            }
                        };
                        metrics.outbound_errors.inc([why]);
                        let name = self.service.backends[primary].name.to_string();
                        return (
                            Some(name),
                            failure(self.grpc, StatusCode::SERVICE_UNAVAILABLE, 14, message, why),
                        );
                    }
                };
            let backend = &self.service.backends[used];
            if used != primary {
                metrics.failovers.inc([
                    service_name,
                    &self.service.backends[primary].name,
                    &backend.name,
                ]);
            }
            let endpoint = lease.addr();
            let endpoint_label = endpoint.to_string();
            if let Some(t) = lease.transition() {
                metrics.breaker_transitions.inc([
                    service_name,
                    &backend.name,
                    &endpoint_label,
                    t.as_str(),
                ]);
            }
            let can_retry = tries < self.policy.attempts && body.is_complete();
            let this_body = match body.try_clone() {
                Some(copy) if can_retry => copy,
                _ => std::mem::take(&mut body),
            };
            let tls = backend.identity.is_some();
            let Some(upstream) = upstream_request(
                clone_parts(&parts),
                self.authority,
                target.clone(),
                this_body,
                h2,
                tls,
            ) else {
                return (
                    None,
                    own(enforce::text_response(
                        StatusCode::BAD_REQUEST,
                        "bad request target\n",
                        "bad-request",
                    )),
                );
            };
            let send = self
                .ctx
                .pool
                .send(endpoint, backend.identity.as_ref(), h2, upstream);
            let result = match self.policy.per_try_timeout {
                Some(t) => tokio::time::timeout(t, send).await.map_err(|_| ()),
                None => Ok(send.await),
            };
            if let Ok(Err(e)) = &result {
                if crate::request_body::caused_by_client_body(e) {
                    // The client's body was malformed: not the backend's fault.
                    tracing::debug!(%endpoint, error = %e, "malformed request body");
                    metrics.outbound_errors.inc(["bad-request"]);
                    return (
                        Some(backend.name.to_string()),
                        own(enforce::bad_body_response()),
                    );
                }
            }
            let (outcome, response) = match result {
                Err(()) => (Outcome::Timeout, None),
                Ok(Err(SendError::Connect(e))) => {
                    tracing::debug!(%endpoint, error = %e, "connect failed");
                    (Outcome::ConnectError, None)
                }
                Ok(Err(SendError::Reset(e))) => {
                    tracing::debug!(%endpoint, error = %e, "connection failed before a response");
                    (Outcome::Reset, None)
                }
                Ok(Ok(response)) => {
                    let (outcome, response) = self.inspect(response, can_retry).await;
                    (outcome, Some(response))
                }
            };
            let now = Instant::now();
            let transition = if retry::is_failure(&outcome) {
                lease.failure(now, &self.service.breaker, &mut rng)
            } else {
                lease.success(now)
            };
            if let Some(t) = transition {
                metrics.breaker_transitions.inc([
                    service_name,
                    &backend.name,
                    &endpoint_label,
                    t.as_str(),
                ]);
                tracing::info!(service = service_name, backend = %backend.name, %endpoint, state = t.as_str(), "circuit breaker");
            }
            if can_retry && retry::is_retryable(&self.policy.on, &outcome) {
                if self.service.budget.try_retry(now) {
                    metrics.outbound_retries.inc([service_name]);
                    tries += 1;
                    continue;
                }
                metrics.outbound_budget_exhausted.inc([service_name]);
            }
            let answered_by = Some(backend.name.to_string());
            return match (outcome, response) {
                (_, Some(r)) => (answered_by, r),
                (Outcome::Timeout, None) => {
                    metrics.outbound_errors.inc(["timeout"]);
                    (
                        answered_by,
                        failure(
                            self.grpc,
                            StatusCode::GATEWAY_TIMEOUT,
                            4,
                            "the request timed out\n",
                            "timeout",
                        ),
                    )
                }
                (Outcome::Reset, None) => {
                    metrics.outbound_errors.inc(["reset"]);
                    (
                        answered_by,
                        failure(
                            self.grpc,
                            StatusCode::BAD_GATEWAY,
                            14,
                            "the connection failed before a response\n",
                            "reset",
                        ),
                    )
                }
                (_, None) => {
                    metrics.outbound_errors.inc(["connect"]);
                    (
                        answered_by,
                        failure(
                            self.grpc,
                            StatusCode::BAD_GATEWAY,
                            14,
                            "the backend could not be reached\n",
                            "connect",
                        ),
                    )
                }
            };
        }
    }

    /// The outcome of a response, reading a gRPC status from the headers
    /// (trailers-only) or, when retries need it, from the trailers of a
    /// response that fits in the replay buffer.
    async fn inspect(
        &self,
        response: Response<Incoming>,
        can_retry: bool,
    ) -> (Outcome, Response<OutBody>) {
        let status = response.status().as_u16();
        let grpc_header = grpc_status(response.headers());
        let is_grpc = enforce::is_grpc(response.headers());
        let (mut parts, body) = response.into_parts();
        enforce::prepare_response_headers(&mut parts.headers);
        if grpc_header.is_some() || !is_grpc || !can_retry || !self.policy.wants_grpc_status() {
            let outcome = Outcome::Response {
                status,
                grpc: grpc_header,
            };
            return (
                outcome,
                Response::from_parts(parts, Either::Left(ReplayBody::streaming(body))),
            );
        }
        match ReplayBody::buffer(body, REPLAY_LIMIT).await {
            Ok(buffered) => {
                let grpc = buffered
                    .is_complete()
                    .then(|| buffered.trailers().and_then(grpc_status))
                    .flatten();
                (
                    Outcome::Response { status, grpc },
                    Response::from_parts(parts, Either::Left(buffered)),
                )
            }
            Err(_) => (
                Outcome::Reset,
                failure(
                    true,
                    StatusCode::BAD_GATEWAY,
                    14,
                    "the backend's response failed\n",
                    "reset",
                ),
            ),
        }
    }
}

/// A copy of a request head (extensions are not copied).
fn clone_parts(parts: &http::request::Parts) -> http::request::Parts {
    let (mut copy, ()) = Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

fn grpc_status(headers: &http::HeaderMap) -> Option<u8> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A backend chosen by weight (weight 0 is never chosen).
fn pick_weighted(backends: &[WeightedBackend<'_>], rng: &mut fastrand::Rng) -> Option<BackendId> {
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut n = rng.u64(0..total);
    for b in backends {
        let w = u64::from(b.weight);
        if n < w {
            return Some(b.id);
        }
        n -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weighted(name: &'static str, id: u32, weight: u32) -> WeightedBackend<'static> {
        WeightedBackend {
            name,
            id: BackendId::new(id),
            weight,
        }
    }

    #[test]
    fn weights_split_traffic() {
        let (a_id, b_id) = (BackendId::new(0), BackendId::new(1));
        let backends = [
            weighted("a", 0, 90),
            weighted("b", 1, 10),
            weighted("z", 2, 0),
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut a = 0;
        for _ in 0..10_000 {
            match pick_weighted(&backends, &mut rng) {
                Some(id) if id == a_id => a += 1,
                Some(id) if id == b_id => {}
                other => panic!("picked {other:?}"),
            }
        }
        assert!((8_800..=9_200).contains(&a), "{a}");
        assert_eq!(pick_weighted(&[weighted("z", 2, 0)], &mut rng), None);
    }
}
