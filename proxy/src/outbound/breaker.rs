//! The per-endpoint circuit breaker (language spec, section 5): after
//! `consecutive-failures` failures in a row the endpoint is ejected for a
//! backoff that starts at the first duration and doubles up to the second,
//! plus jitter; when the backoff ends one probe request is let through:
//! success closes the breaker, failure ejects it again.
//!
//! A pure state machine: time comes in as [`Instant`], randomness as a
//! [`fastrand::Rng`]. [`Breaker`] is not thread-safe; the caller wraps it in
//! a `Mutex` (see `balance::EndpointState`).

use std::time::{Duration, Instant};

use sluice_runtime::CircuitBreaker;

/// Circuit breaker settings of a service, with durations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BreakerConfig {
    /// Failures in a row that open the breaker (0 behaves as 1).
    pub consecutive_failures: u32,
    /// The first ejection time.
    pub backoff_min: Duration,
    /// The longest ejection time (before jitter).
    pub backoff_max: Duration,
    /// Extra ejection time: up to this share of the backoff, at random.
    pub jitter_percent: u8,
}

impl Default for BreakerConfig {
    /// The unwritten defaults: 7 failures, backoff `1s 60s`, jitter 50%.
    fn default() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 7,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            jitter_percent: 50,
        }
    }
}

impl BreakerConfig {
    /// The settings of a bundle's service; the defaults without a
    /// `circuit-breaker` block.
    pub(crate) fn from_bundle(b: Option<&CircuitBreaker>) -> BreakerConfig {
        match b {
            None => BreakerConfig::default(),
            Some(b) => BreakerConfig {
                consecutive_failures: b.consecutive_failures,
                backoff_min: Duration::from_millis(b.backoff_min_ms),
                backoff_max: Duration::from_millis(b.backoff_max_ms),
                jitter_percent: b.jitter_percent,
            },
        }
    }

    /// The ejection time after `backoff`: `backoff` plus a random extra in
    /// `[0, backoff * jitter_percent / 100]`.
    fn jittered(&self, backoff: Duration, rng: &mut fastrand::Rng) -> Duration {
        let max_extra = backoff.as_nanos() * u128::from(self.jitter_percent) / 100;
        let max_extra = u64::try_from(max_extra).unwrap_or(u64::MAX);
        if max_extra == 0 {
            return backoff;
        }
        backoff.saturating_add(Duration::from_nanos(rng.u64(0..=max_extra)))
    }
}

/// A change of a breaker's state, reported for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    /// The endpoint was ejected.
    Opened,
    /// The backoff ended and a probe was let through.
    HalfOpen,
    /// The probe succeeded: the endpoint is back.
    Closed,
}

impl Transition {
    /// The name of the state entered: `"open"`, `"half-open"` or `"closed"`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Transition::Opened => "open",
            Transition::HalfOpen => "half-open",
            Transition::Closed => "closed",
        }
    }
}

/// How a request was admitted by [`Breaker::try_acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The breaker is closed.
    Normal,
    /// The one probe after a backoff: its verdict decides the breaker.
    Probe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Serving; `failures` in a row so far.
    Closed { failures: u32 },
    /// Ejected until `until` (`None`: the time has ended), after `backoff`.
    Open {
        until: Option<Instant>,
        backoff: Duration,
    },
    /// The one probe is in flight; `backoff` is the last ejection's.
    Probing { backoff: Duration },
}

/// The circuit breaker of one endpoint: closed, open until a time, or
/// probing (one request in flight decides).
#[derive(Clone, Debug)]
pub(crate) struct Breaker {
    state: State,
}

impl Default for Breaker {
    /// A closed breaker.
    fn default() -> Breaker {
        Breaker::new()
    }
}

impl Breaker {
    /// A closed breaker with no failures.
    pub(crate) fn new() -> Breaker {
        Breaker {
            state: State::Closed { failures: 0 },
        }
    }

    /// Whether a request may go now: closed, or open with its time ended
    /// (the probe may go). Not while a probe is in flight.
    pub(crate) fn is_available(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until, .. } => until.is_none_or(|u| now >= u),
            State::Probing { .. } => false,
        }
    }

    /// Admits a request: closed gives `(Normal, None)`; open with its time
    /// ended moves to probing and gives `(Probe, Some(HalfOpen))`; otherwise
    /// `None`.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Option<(Admission, Option<Transition>)> {
        match self.state {
            State::Closed { .. } => Some((Admission::Normal, None)),
            State::Open { until, backoff } if until.is_none_or(|u| now >= u) => {
                self.state = State::Probing { backoff };
                Some((Admission::Probe, Some(Transition::HalfOpen)))
            }
            State::Open { .. } | State::Probing { .. } => None,
        }
    }

    /// Records a success: a probe closes the breaker (`Some(Closed)`, the
    /// backoff starts over); closed resets the failure count. A late success
    /// while open changes nothing.
    pub(crate) fn on_success(&mut self) -> Option<Transition> {
        match self.state {
            State::Closed { .. } => {
                self.state = State::Closed { failures: 0 };
                None
            }
            State::Probing { .. } => {
                self.state = State::Closed { failures: 0 };
                Some(Transition::Closed)
            }
            State::Open { .. } => None,
        }
    }

    /// Records a failure. Closed: the `consecutive_failures`-th in a row
    /// opens the breaker for `backoff_min` plus jitter (`Some(Opened)`).
    /// Probing: opens again for twice the last backoff, at most
    /// `backoff_max`, plus jitter (`Some(Opened)`). Open (a request admitted
    /// before it opened, finishing late): stays as it is.
    pub(crate) fn on_failure(
        &mut self,
        now: Instant,
        cfg: &BreakerConfig,
        rng: &mut fastrand::Rng,
    ) -> Option<Transition> {
        match self.state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= cfg.consecutive_failures.max(1) {
                    self.open(now, cfg.backoff_min, cfg, rng);
                    Some(Transition::Opened)
                } else {
                    self.state = State::Closed { failures };
                    None
                }
            }
            State::Probing { backoff } => {
                let cap = cfg.backoff_max.max(cfg.backoff_min);
                let next = backoff.saturating_mul(2).min(cap).max(cfg.backoff_min);
                self.open(now, next, cfg, rng);
                Some(Transition::Opened)
            }
            State::Open { .. } => None,
        }
    }

    /// A probe ended without a verdict (cancelled): back to open with the
    /// time already ended, so another probe may go. Otherwise nothing.
    pub(crate) fn on_cancel(&mut self) {
        if let State::Probing { backoff } = self.state {
            self.state = State::Open {
                until: None,
                backoff,
            };
        }
    }

    /// The state's name: `"closed"`, `"open"` or `"half-open"` (probing).
    #[cfg(test)]
    pub(crate) fn state_name(&self) -> &'static str {
        match self.state {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::Probing { .. } => "half-open",
        }
    }

    /// When the current ejection ends; `None` unless open with time left
    /// to run (as of the last transition).
    #[cfg(test)]
    pub(crate) fn open_until(&self) -> Option<Instant> {
        match self.state {
            State::Open { until, .. } => until,
            _ => None,
        }
    }

    fn open(
        &mut self,
        now: Instant,
        backoff: Duration,
        cfg: &BreakerConfig,
        rng: &mut fastrand::Rng,
    ) {
        let until = now.checked_add(cfg.jittered(backoff, rng));
        self.state = State::Open { until, backoff };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: u32, min_ms: u64, max_ms: u64, jitter: u8) -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: n,
            backoff_min: Duration::from_millis(min_ms),
            backoff_max: Duration::from_millis(max_ms),
            jitter_percent: jitter,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn defaults_and_from_bundle() {
        let d = BreakerConfig::from_bundle(None);
        assert_eq!(d, cfg(7, 1000, 60_000, 50));
        let b = CircuitBreaker {
            consecutive_failures: 3,
            backoff_min_ms: 200,
            backoff_max_ms: 800,
            jitter_percent: 0,
        };
        assert_eq!(BreakerConfig::from_bundle(Some(&b)), cfg(3, 200, 800, 0));
        assert_eq!(Transition::Opened.as_str(), "open");
        assert_eq!(Transition::HalfOpen.as_str(), "half-open");
        assert_eq!(Transition::Closed.as_str(), "closed");
    }

    #[test]
    fn opens_after_exactly_n_failures() {
        let c = cfg(3, 1000, 60_000, 0);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Breaker::new();
        let t0 = Instant::now();
        assert_eq!(b.on_failure(t0, &c, &mut rng), None);
        assert_eq!(b.on_failure(t0, &c, &mut rng), None);
        assert!(b.is_available(t0));
        assert_eq!(b.on_failure(t0, &c, &mut rng), Some(Transition::Opened));
        assert_eq!(b.state_name(), "open");
        assert!(!b.is_available(t0));
        assert_eq!(b.try_acquire(t0), None);
        // A late failure while open changes nothing.
        assert_eq!(b.on_failure(t0, &c, &mut rng), None);
        assert_eq!(b.open_until(), Some(t0 + ms(1000)));
    }

    #[test]
    fn success_in_between_resets() {
        let c = cfg(3, 1000, 60_000, 0);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Breaker::new();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(b.on_failure(t0, &c, &mut rng), None);
            assert_eq!(b.on_failure(t0, &c, &mut rng), None);
            assert_eq!(b.on_success(), None);
        }
        assert_eq!(b.state_name(), "closed");
        assert_eq!(b.try_acquire(t0), Some((Admission::Normal, None)));
    }

    #[test]
    fn zero_failures_behaves_as_one() {
        let c = cfg(0, 10, 10, 0);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Breaker::new();
        let t0 = Instant::now();
        assert_eq!(b.on_failure(t0, &c, &mut rng), Some(Transition::Opened));
    }

    #[test]
    fn unavailable_until_backoff_ends_then_one_probe() {
        let c = cfg(1, 1000, 60_000, 0);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Breaker::new();
        let t0 = Instant::now();
        b.on_failure(t0, &c, &mut rng);
        assert!(!b.is_available(t0 + ms(999)));
        assert_eq!(b.try_acquire(t0 + ms(999)), None);
        assert!(b.is_available(t0 + ms(1000)));
        let t1 = t0 + ms(1000);
        assert_eq!(
            b.try_acquire(t1),
            Some((Admission::Probe, Some(Transition::HalfOpen)))
        );
        assert_eq!(b.state_name(), "half-open");
        // Exactly one probe.
        assert!(!b.is_available(t1));
        assert_eq!(b.try_acquire(t1), None);
        assert_eq!(b.try_acquire(t1 + ms(100_000)), None);
    }

    #[test]
    fn probe_success_closes() {
        let c = cfg(2, 1000, 60_000, 0);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Breaker::new();
        let t0 = Instant::now();
        b.on_failure(t0, &c, &mut rng);
        b.on_failure(t0, &c, &mut rng);
        let t1 = t0 + ms(1000);
        b.try_acquire(t1).unwrap();
        assert_eq!(b.on_success(), Some(Transition::Closed));
        assert_eq!(b.state_name(), "closed");
        assert!(b.is_available(t1));
        // The failure count and the backoff start over.
        assert_eq!(b.on_failure(t1, &c, &mut rng), None);
        assert_eq!(b.on_failure(t1, &c, &mut rng), Some(Transition::Opened));
        assert_eq!(b.open_until(), Some(t1 + ms(1000)));
    }

    #[test]
    fn probe_failure_doubles_backoff_up_to_max() {
        let c = cfg(1, 1000, 5000, 0);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Breaker::new();
        let mut t = Instant::now();
        b.on_failure(t, &c, &mut rng);
        let mut seen = vec![];
        for _ in 0..5 {
            let until = b.open_until().unwrap();
            seen.push(until - t);
            t = until;
            assert_eq!(b.try_acquire(t).unwrap().0, Admission::Probe);
            assert_eq!(b.on_failure(t, &c, &mut rng), Some(Transition::Opened));
        }
        assert_eq!(seen, vec![ms(1000), ms(2000), ms(4000), ms(5000), ms(5000)]);
    }

    #[test]
    fn cancelled_probe_lets_another_go() {
        let c = cfg(1, 1000, 60_000, 0);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Breaker::new();
        let t0 = Instant::now();
        b.on_failure(t0, &c, &mut rng);
        let t1 = t0 + ms(1000);
        b.try_acquire(t1).unwrap();
        b.on_cancel();
        assert_eq!(b.state_name(), "open");
        assert!(b.is_available(t1));
        assert_eq!(b.try_acquire(t1).unwrap().0, Admission::Probe);
        // The backoff carries over: a failure doubles it.
        b.on_failure(t1, &c, &mut rng);
        assert_eq!(b.open_until(), Some(t1 + ms(2000)));
        // Cancelling outside a probe changes nothing.
        b.on_cancel();
        assert!(!b.is_available(t1));
    }

    #[test]
    fn jitter_bounds() {
        let c = cfg(1, 1000, 60_000, 50);
        let mut rng = fastrand::Rng::with_seed(7);
        let t0 = Instant::now();
        let (mut lo, mut hi) = (ms(u64::MAX / 2), Duration::ZERO);
        for _ in 0..2000 {
            let mut b = Breaker::new();
            b.on_failure(t0, &c, &mut rng);
            let d = b.open_until().unwrap() - t0;
            assert!(d >= ms(1000) && d <= ms(1500), "{d:?}");
            lo = lo.min(d);
            hi = hi.max(d);
        }
        // The samples spread over the range.
        assert!(lo < ms(1050), "{lo:?}");
        assert!(hi > ms(1450), "{hi:?}");
        // Doubling applies to the backoff, not to the jittered time.
        let mut b = Breaker::new();
        b.on_failure(t0, &c, &mut rng);
        let t1 = b.open_until().unwrap();
        b.try_acquire(t1).unwrap();
        b.on_failure(t1, &c, &mut rng);
        let d = b.open_until().unwrap() - t1;
        assert!(d >= ms(2000) && d <= ms(3000), "{d:?}");
    }
}
