//! Retries (language spec, section 5): which outcomes of a try are retried,
//! which count as failures for the circuit breaker, the retry policy with
//! its unwritten defaults, and the per-service retry budget.
//!
//! No I/O: time comes in as [`Instant`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sluice_runtime::{Retry, RetryCond};

/// What one try produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A response: its HTTP status and, for gRPC, its `grpc-status` (from
    /// the headers or trailers; `None` when absent or not gRPC).
    Response {
        /// The HTTP status.
        status: u16,
        /// The gRPC status code, if known.
        grpc: Option<u8>,
    },
    /// The connection was refused, or reset before a response. Matches
    /// `reset`.
    Reset,
    /// The endpoint could not be reached (DNS or connect failure); the
    /// request was not sent. Matches `reset` too.
    ConnectError,
    /// The per-try timeout ended the try before a response. Matches `5xx`
    /// and `gateway-error`, as a 504 would (as Envoy does); not `reset`
    /// nor an explicit status.
    Timeout,
}

/// Whether `outcome` matches one of `conds`: `5xx` any 500-599,
/// `gateway-error` 502, 503 or 504, `reset` a [`Outcome::Reset`] or
/// [`Outcome::ConnectError`], `Status(n)` that HTTP status, `Grpc(c)` that
/// gRPC status. A [`Outcome::Timeout`] matches `5xx` and `gateway-error`.
pub(crate) fn is_retryable(conds: &[RetryCond], outcome: &Outcome) -> bool {
    conds.iter().any(|c| match (*c, *outcome) {
        (RetryCond::ServerError, Outcome::Response { status, .. }) => (500..=599).contains(&status),
        (RetryCond::GatewayError, Outcome::Response { status, .. }) => {
            matches!(status, 502..=504)
        }
        (RetryCond::ServerError | RetryCond::GatewayError, Outcome::Timeout) => true,
        (RetryCond::Reset, Outcome::Reset | Outcome::ConnectError) => true,
        (RetryCond::Status(s), Outcome::Response { status, .. }) => s == status,
        (
            RetryCond::Grpc(g),
            Outcome::Response {
                grpc: Some(code), ..
            },
        ) => g == code,
        _ => false,
    })
}

/// gRPC UNAVAILABLE.
const GRPC_UNAVAILABLE: u8 = 14;
/// gRPC INTERNAL.
const GRPC_INTERNAL: u8 = 13;
/// gRPC DEADLINE_EXCEEDED.
const GRPC_DEADLINE_EXCEEDED: u8 = 4;

/// Whether `outcome` counts as a failure for the circuit breaker: a 5xx
/// response, a reset or connect error, a timeout, or gRPC UNAVAILABLE (14),
/// INTERNAL (13) or DEADLINE_EXCEEDED (4).
pub(crate) fn is_failure(outcome: &Outcome) -> bool {
    match *outcome {
        Outcome::Response { status, grpc } => {
            (500..=599).contains(&status)
                || matches!(
                    grpc,
                    Some(GRPC_UNAVAILABLE | GRPC_INTERNAL | GRPC_DEADLINE_EXCEEDED)
                )
        }
        Outcome::Reset | Outcome::ConnectError | Outcome::Timeout => true,
    }
}

/// A service's retry policy, with durations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Extra tries at most (0: never retry).
    pub attempts: u32,
    /// The conditions retried.
    pub on: Vec<RetryCond>,
    /// The bound of each try.
    pub per_try_timeout: Option<Duration>,
    /// The retry budget in percent of requests.
    pub budget_percent: u8,
}

impl Default for RetryPolicy {
    /// The unwritten defaults: `attempts 1`, `on gateway-error, reset`, no
    /// per-try timeout, `budget 20%`.
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            on: vec![RetryCond::GatewayError, RetryCond::Reset],
            per_try_timeout: None,
            budget_percent: 20,
        }
    }
}

impl RetryPolicy {
    /// The policy of a bundle's service; the defaults without a `retry`
    /// block.
    pub(crate) fn from_bundle(r: Option<&Retry>) -> RetryPolicy {
        match r {
            None => RetryPolicy::default(),
            Some(r) => RetryPolicy {
                attempts: r.attempts,
                on: r.on.clone(),
                per_try_timeout: r.per_try_timeout_ms.map(Duration::from_millis),
                budget_percent: r.budget_percent,
            },
        }
    }

    /// Whether a condition needs the gRPC status (so the caller must read
    /// trailers before deciding).
    pub(crate) fn wants_grpc_status(&self) -> bool {
        self.on.iter().any(|c| matches!(c, RetryCond::Grpc(_)))
    }

    /// Whether `outcome` is retried under this policy (ignoring attempts and
    /// budget).
    #[cfg(test)]
    pub(crate) fn is_retryable(&self, outcome: &Outcome) -> bool {
        is_retryable(&self.on, outcome)
    }

    /// Tries at most: the first plus `attempts`.
    #[cfg(test)]
    pub(crate) fn max_tries(&self) -> u32 {
        self.attempts.saturating_add(1)
    }
}

/// Seconds in the budget's sliding window.
pub(crate) const BUDGET_WINDOW_SECS: u64 = 10;
/// Retries a second always allowed, whatever the share.
pub(crate) const MIN_RETRIES_PER_SEC: u64 = 10;

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    sec: u64,
    requests: u64,
    retries: u64,
}

#[derive(Debug, Default)]
struct Window {
    origin: Option<Instant>,
    latest: u64,
    buckets: [Bucket; BUDGET_WINDOW_SECS as usize],
}

impl Window {
    /// The bucket of `now` (never older than the newest seen), reset if it
    /// held an older second.
    fn bucket(&mut self, now: Instant) -> &mut Bucket {
        let origin = *self.origin.get_or_insert(now);
        let sec = now
            .saturating_duration_since(origin)
            .as_secs()
            .max(self.latest);
        self.latest = sec;
        let b = &mut self.buckets[(sec % BUDGET_WINDOW_SECS) as usize];
        if b.sec != sec {
            *b = Bucket {
                sec,
                ..Bucket::default()
            };
        }
        b
    }

    /// Requests and retries in the window ending at the current second.
    fn totals(&self) -> (u64, u64) {
        self.buckets
            .iter()
            .filter(|b| self.latest - b.sec < BUDGET_WINDOW_SECS)
            .fold((0, 0), |(q, r), b| (q + b.requests, r + b.retries))
    }
}

/// A service's retry budget over a sliding 10 s window of 1 s buckets.
/// Thread-safe; one per service.
///
/// A retry is allowed while `retries < requests × percent / 100 + 100`
/// over the window (integer division; the `+ 100` is 10 retries a second
/// for 10 seconds, always allowed), counting the current second and the 9
/// before it. Count original requests with
/// [`record_request`](Self::record_request), not retries.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    percent: u8,
    window: Mutex<Window>,
}

impl RetryBudget {
    /// A budget of `percent` of requests, with nothing counted.
    pub(crate) fn new(percent: u8) -> RetryBudget {
        RetryBudget {
            percent,
            window: Mutex::new(Window::default()),
        }
    }

    /// Counts an original request at `now`.
    pub(crate) fn record_request(&self, now: Instant) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.bucket(now).requests += 1;
    }

    /// Whether a retry may go at `now` under the rule above; counts it when
    /// it may.
    pub(crate) fn try_retry(&self, now: Instant) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.bucket(now);
        let (requests, retries) = w.totals();
        let allowed =
            requests * u64::from(self.percent) / 100 + MIN_RETRIES_PER_SEC * BUDGET_WINDOW_SECS;
        if retries < allowed {
            w.bucket(now).retries += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16) -> Outcome {
        Outcome::Response { status, grpc: None }
    }

    fn grpc(code: u8) -> Outcome {
        Outcome::Response {
            status: 200,
            grpc: Some(code),
        }
    }

    #[test]
    fn server_error() {
        let on = [RetryCond::ServerError];
        for s in [500, 501, 502, 503, 504, 599] {
            assert!(is_retryable(&on, &resp(s)), "{s}");
        }
        for s in [200, 404, 499, 600] {
            assert!(!is_retryable(&on, &resp(s)), "{s}");
        }
        assert!(is_retryable(&on, &Outcome::Timeout));
        assert!(!is_retryable(&on, &Outcome::Reset));
        assert!(!is_retryable(&on, &Outcome::ConnectError));
    }

    #[test]
    fn gateway_error() {
        let on = [RetryCond::GatewayError];
        for s in [502, 503, 504] {
            assert!(is_retryable(&on, &resp(s)), "{s}");
        }
        for s in [200, 500, 501, 505] {
            assert!(!is_retryable(&on, &resp(s)), "{s}");
        }
        assert!(is_retryable(&on, &Outcome::Timeout));
        assert!(!is_retryable(&on, &Outcome::Reset));
    }

    #[test]
    fn reset() {
        let on = [RetryCond::Reset];
        assert!(is_retryable(&on, &Outcome::Reset));
        assert!(is_retryable(&on, &Outcome::ConnectError));
        assert!(!is_retryable(&on, &Outcome::Timeout));
        assert!(!is_retryable(&on, &resp(503)));
    }

    #[test]
    fn status_and_grpc() {
        let on = [RetryCond::Status(429), RetryCond::Grpc(14)];
        assert!(is_retryable(&on, &resp(429)));
        assert!(!is_retryable(&on, &resp(503)));
        assert!(is_retryable(&on, &grpc(14)));
        assert!(!is_retryable(&on, &grpc(13)));
        assert!(!is_retryable(&on, &Outcome::Timeout));
        assert!(!is_retryable(&on, &Outcome::Reset));
        // A gRPC error can come with any HTTP status.
        let g = Outcome::Response {
            status: 429,
            grpc: Some(2),
        };
        assert!(is_retryable(&[RetryCond::Status(429)], &g));
        assert!(!is_retryable(&[RetryCond::Grpc(14)], &g));
        assert!(!is_retryable(&[], &resp(503)));
    }

    #[test]
    fn failures() {
        for s in [500, 502, 503, 599] {
            assert!(is_failure(&resp(s)), "{s}");
        }
        for s in [200, 301, 404, 429, 499] {
            assert!(!is_failure(&resp(s)), "{s}");
        }
        assert!(is_failure(&Outcome::Reset));
        assert!(is_failure(&Outcome::ConnectError));
        assert!(is_failure(&Outcome::Timeout));
        for c in [4, 13, 14] {
            assert!(is_failure(&grpc(c)), "{c}");
        }
        for c in [0, 1, 2, 5, 7, 8, 16] {
            assert!(!is_failure(&grpc(c)), "{c}");
        }
    }

    #[test]
    fn policy_from_bundle() {
        let d = RetryPolicy::from_bundle(None);
        assert_eq!(d.attempts, 1);
        assert_eq!(d.on, vec![RetryCond::GatewayError, RetryCond::Reset]);
        assert_eq!(d.per_try_timeout, None);
        assert_eq!(d.budget_percent, 20);
        assert_eq!(d.max_tries(), 2);
        assert!(!d.wants_grpc_status());
        assert!(d.is_retryable(&resp(503)));
        let r = Retry {
            attempts: 3,
            on: vec![RetryCond::ServerError, RetryCond::Grpc(14)],
            per_try_timeout_ms: Some(250),
            budget_percent: 5,
        };
        let p = RetryPolicy::from_bundle(Some(&r));
        assert_eq!(p.attempts, 3);
        assert_eq!(p.on, r.on);
        assert_eq!(p.per_try_timeout, Some(Duration::from_millis(250)));
        assert_eq!(p.budget_percent, 5);
        assert!(p.wants_grpc_status());
    }

    #[test]
    fn budget_share_plus_minimum() {
        let b = RetryBudget::new(20);
        let t0 = Instant::now();
        for _ in 0..1000 {
            b.record_request(t0);
        }
        let allowed = (0..1000).filter(|_| b.try_retry(t0)).count();
        assert_eq!(allowed, 200 + 100);
        assert!(!b.try_retry(t0 + Duration::from_millis(500)));
        // More requests make room again.
        for _ in 0..10 {
            b.record_request(t0);
        }
        assert!(b.try_retry(t0));
        assert!(b.try_retry(t0));
        assert!(!b.try_retry(t0));
    }

    #[test]
    fn budget_minimum_without_requests() {
        let b = RetryBudget::new(0);
        let t0 = Instant::now();
        let allowed = (0..500).filter(|_| b.try_retry(t0)).count();
        assert_eq!(allowed, 100);
    }

    #[test]
    fn budget_buckets_expire() {
        let b = RetryBudget::new(20);
        let t0 = Instant::now();
        for _ in 0..1000 {
            b.record_request(t0);
        }
        let first = (0..1000).filter(|_| b.try_retry(t0)).count();
        assert_eq!(first, 300);
        // Still inside the window 9 s later.
        let t9 = t0 + Duration::from_secs(9);
        assert!(!b.try_retry(t9));
        // 11 s later the first second's requests and retries are gone.
        let t11 = t0 + Duration::from_secs(11);
        let later = (0..1000).filter(|_| b.try_retry(t11)).count();
        assert_eq!(later, 100);
        // An instant older than the newest counts in the newest second.
        b.record_request(t0);
        for _ in 0..3 {
            b.record_request(t11);
        }
        assert!(!b.try_retry(t11));
        // The fifth request: 5 × 20% = 1 more retry.
        b.record_request(t0 + Duration::from_secs(1));
        assert!(b.try_retry(t11));
        assert!(!b.try_retry(t11));
    }

    #[test]
    fn budget_spread_over_seconds() {
        let b = RetryBudget::new(10);
        let t0 = Instant::now();
        // 100 requests a second for 10 s: 100 + 100 retries over the window.
        for s in 0..10 {
            for _ in 0..100 {
                b.record_request(t0 + Duration::from_secs(s));
            }
        }
        let t = t0 + Duration::from_secs(9);
        let allowed = (0..1000).filter(|_| b.try_retry(t)).count();
        assert_eq!(allowed, 200);
    }
}
