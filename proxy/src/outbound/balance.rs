//! Endpoint sets of backends and the choice of an endpoint: power of two
//! choices over a peak-EWMA latency estimate weighted by the requests in
//! flight (as Linkerd and tower's `PeakEwma` do), each endpoint's circuit
//! breaker, a backend's `max-in-flight`, and the `failover` walk (language
//! spec, section 5).
//!
//! No I/O: time comes in as [`Instant`], randomness as a [`fastrand::Rng`].
//! Sets are shared as `Arc<EndpointSet>` and safe to use from many tasks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use super::breaker::{Admission, Breaker, BreakerConfig, Transition};

/// The latency estimate of an endpoint nobody has measured yet, in
/// milliseconds. Low on purpose: a new endpoint gets tried soon, and the
/// first slower response replaces it at once (peak sensitivity).
pub(crate) const DEFAULT_LATENCY_MS: f64 = 1.0;

/// The EWMA time constant: an observation `Δt` after the previous one keeps
/// `exp(-Δt / 10 s)` of the old estimate (Linkerd's default decay).
pub(crate) const EWMA_DECAY: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A peak-EWMA latency estimate in milliseconds.
#[derive(Clone, Copy, Debug)]
struct Ewma {
    ms: f64,
    stamp: Option<Instant>,
}

impl Ewma {
    /// The estimate at `now`: without news it decays toward zero with the
    /// time constant, so an endpoint left alone because it was slow gets
    /// tried again eventually.
    fn at(&self, now: Instant) -> f64 {
        match self.stamp {
            None => self.ms,
            Some(t) => self.ms * decay(now.saturating_duration_since(t)),
        }
    }

    /// Takes in a latency: a higher one replaces the estimate (peak), a
    /// lower one moves it by the EWMA weight of the time since the last.
    fn observe(&mut self, now: Instant, latency_ms: f64) {
        let w = self
            .stamp
            .map_or(0.0, |t| decay(now.saturating_duration_since(t)));
        self.ms = if latency_ms > self.ms {
            latency_ms
        } else {
            self.ms * w + latency_ms * (1.0 - w)
        };
        self.stamp = Some(self.stamp.map_or(now, |t| t.max(now)));
    }
}

fn decay(elapsed: Duration) -> f64 {
    (-elapsed.as_secs_f64() / EWMA_DECAY.as_secs_f64()).exp()
}

/// One endpoint of a backend: its address, requests in flight, latency
/// estimate and circuit breaker. Thread-safe.
#[derive(Debug)]
pub(crate) struct EndpointState {
    addr: SocketAddr,
    in_flight: AtomicU32,
    ewma: Mutex<Ewma>,
    breaker: Mutex<Breaker>,
}

impl EndpointState {
    /// A fresh endpoint: closed breaker, [`DEFAULT_LATENCY_MS`], nothing in
    /// flight.
    pub(crate) fn new(addr: SocketAddr) -> EndpointState {
        EndpointState {
            addr,
            in_flight: AtomicU32::new(0),
            ewma: Mutex::new(Ewma {
                ms: DEFAULT_LATENCY_MS,
                stamp: None,
            }),
            breaker: Mutex::new(Breaker::new()),
        }
    }

    /// The endpoint's address.
    #[cfg(test)]
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether its breaker lets a request go at `now`.
    pub(crate) fn is_available(&self, now: Instant) -> bool {
        lock(&self.breaker).is_available(now)
    }

    /// Requests in flight to this endpoint.
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The latency estimate in milliseconds as of the last observation.
    #[cfg(test)]
    pub(crate) fn latency_ms(&self) -> f64 {
        lock(&self.ewma).ms
    }

    /// The load P2C compares: latency estimate (ms, as of the last
    /// observation) × (in flight + 1).
    #[cfg(test)]
    pub(crate) fn load(&self) -> f64 {
        self.latency_ms() * f64::from(self.in_flight() + 1)
    }

    /// [`load`](Self::load) with the estimate decayed to `now`.
    pub(crate) fn load_at(&self, now: Instant) -> f64 {
        lock(&self.ewma).at(now) * f64::from(self.in_flight() + 1)
    }

    /// The breaker's state name: `"closed"`, `"open"` or `"half-open"`.
    #[cfg(test)]
    pub(crate) fn breaker_state(&self) -> &'static str {
        lock(&self.breaker).state_name()
    }

    fn observe(&self, now: Instant, latency: Duration, failed: bool) {
        let mut e = lock(&self.ewma);
        let ms = latency.as_secs_f64() * 1000.0;
        // A failure never makes an endpoint look faster (a quickly refused
        // connection must not attract traffic): one faster than the
        // estimate is not taken in.
        if failed && ms <= e.at(now) {
            return;
        }
        e.observe(now, ms);
    }
}

/// Why no endpoint was picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PickError {
    /// No endpoint is available (none, or every breaker open or probing).
    NoEndpoint,
    /// The backend's `max-in-flight` is reached: fail at once with 503.
    MaxInFlight,
}

/// The endpoints of one backend, their state kept across address updates,
/// and the backend's in-flight count. Thread-safe; share as
/// `Arc<EndpointSet>`.
#[derive(Debug)]
pub(crate) struct EndpointSet {
    max_in_flight: Option<u32>,
    in_flight: AtomicU32,
    endpoints: RwLock<Arc<Vec<Arc<EndpointState>>>>,
}

impl EndpointSet {
    /// An empty set allowing at most `max_in_flight` concurrent requests
    /// (`None`: no limit).
    pub(crate) fn new(max_in_flight: Option<u32>) -> EndpointSet {
        EndpointSet {
            max_in_flight,
            in_flight: AtomicU32::new(0),
            endpoints: RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// Replaces the addresses: those already present keep their state
    /// (breaker, latency), new ones start fresh, missing ones go (a request
    /// leasing one finishes normally). Duplicates count once.
    pub(crate) fn set_addrs(&self, addrs: &[SocketAddr]) {
        let mut guard = self.endpoints.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<Arc<EndpointState>> = Vec::with_capacity(addrs.len());
        for &a in addrs {
            if next.iter().any(|e| e.addr == a) {
                continue;
            }
            let kept = guard.iter().find(|e| e.addr == a).cloned();
            next.push(kept.unwrap_or_else(|| Arc::new(EndpointState::new(a))));
        }
        *guard = Arc::new(next);
    }

    /// A snapshot of the endpoints.
    pub(crate) fn endpoints(&self) -> Arc<Vec<Arc<EndpointState>>> {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current addresses, in the order last set.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.endpoints().iter().map(|e| e.addr).collect()
    }

    /// Whether some endpoint's breaker lets a request go at `now`.
    pub(crate) fn has_available(&self, now: Instant) -> bool {
        self.endpoints().iter().any(|e| e.is_available(now))
    }

    /// Requests in flight to the backend.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Picks an endpoint and leases it. `MaxInFlight` when the backend's
    /// limit is reached; otherwise two distinct random endpoints among the
    /// available ones (one if only one), the lower [`load_at`] first; if
    /// its breaker refuses (raced), the other, then the rest from a random
    /// start. `NoEndpoint` when none admits.
    ///
    /// [`load_at`]: EndpointState::load_at
    pub(crate) fn pick(
        self: &Arc<Self>,
        now: Instant,
        rng: &mut fastrand::Rng,
    ) -> Result<Lease, PickError> {
        let reserved = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                match self.max_in_flight {
                    Some(max) if n >= max => None,
                    _ => Some(n.saturating_add(1)),
                }
            });
        if reserved.is_err() {
            return Err(PickError::MaxInFlight);
        }
        match self.choose(now, rng) {
            Some((endpoint, admission, transition)) => {
                endpoint.in_flight.fetch_add(1, Ordering::AcqRel);
                Ok(Lease {
                    endpoint,
                    set: self.clone(),
                    start: now,
                    admission,
                    transition,
                    done: false,
                })
            }
            None => {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                Err(PickError::NoEndpoint)
            }
        }
    }

    fn choose(
        &self,
        now: Instant,
        rng: &mut fastrand::Rng,
    ) -> Option<(Arc<EndpointState>, Admission, Option<Transition>)> {
        let snapshot = self.endpoints();
        let available: Vec<&Arc<EndpointState>> =
            snapshot.iter().filter(|e| e.is_available(now)).collect();
        let n = available.len();
        if n == 0 {
            return None;
        }
        let acquire = |e: &Arc<EndpointState>| {
            lock(&e.breaker)
                .try_acquire(now)
                .map(|(a, t)| (e.clone(), a, t))
        };
        let a = rng.usize(0..n);
        let mut order = vec![a];
        if n > 1 {
            let mut b = rng.usize(0..n - 1);
            if b >= a {
                b += 1;
            }
            if available[b].load_at(now) < available[a].load_at(now) {
                order.insert(0, b);
            } else {
                order.push(b);
            }
        }
        for &i in &order {
            if let Some(got) = acquire(available[i]) {
                return Some(got);
            }
        }
        let start = rng.usize(0..n);
        (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| !order.contains(i))
            .find_map(|i| acquire(available[i]))
    }
}

/// One request's hold on an endpoint: counts it in flight (endpoint and
/// backend) until dropped, and reports its verdict to the latency estimate
/// and the breaker. Dropped without a verdict, a probe lets another go.
#[derive(Debug)]
pub(crate) struct Lease {
    endpoint: Arc<EndpointState>,
    set: Arc<EndpointSet>,
    start: Instant,
    admission: Admission,
    transition: Option<Transition>,
    done: bool,
}

impl Lease {
    /// The endpoint's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.endpoint.addr
    }

    /// Whether the request goes normally or as the breaker's probe.
    #[cfg(test)]
    pub(crate) fn admission(&self) -> Admission {
        self.admission
    }

    /// The breaker transition admitting it caused (`HalfOpen` for a probe).
    pub(crate) fn transition(&self) -> Option<Transition> {
        self.transition
    }

    /// The request succeeded at `now`: records the latency since the start
    /// and tells the breaker (`Some(Closed)` when a probe closes it).
    pub(crate) fn success(mut self, now: Instant) -> Option<Transition> {
        self.done = true;
        self.endpoint
            .observe(now, now.saturating_duration_since(self.start), false);
        lock(&self.endpoint.breaker).on_success()
    }

    /// The request failed at `now`: records the latency (only if it raises
    /// the estimate: a failure never makes an endpoint look faster) and tells the breaker (`Some(Opened)` when it
    /// ejects the endpoint).
    pub(crate) fn failure(
        mut self,
        now: Instant,
        cfg: &BreakerConfig,
        rng: &mut fastrand::Rng,
    ) -> Option<Transition> {
        self.done = true;
        self.endpoint
            .observe(now, now.saturating_duration_since(self.start), true);
        lock(&self.endpoint.breaker).on_failure(now, cfg, rng)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.done && self.admission == Admission::Probe {
            lock(&self.endpoint.breaker).on_cancel();
        }
        self.endpoint.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.set.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A backend for the failover walk: its endpoints and the index of its
/// `failover` backend in the same slice.
#[derive(Clone, Debug)]
pub(crate) struct BackendEntry {
    /// The backend's endpoints.
    pub endpoints: Arc<EndpointSet>,
    /// Index of the failover backend in the same slice.
    pub failover: Option<usize>,
}

/// Picks an endpoint starting at backend `start`, following `failover`
/// while a backend has no available endpoint; returns the index of the
/// backend used (not `start`: a failover happened). The primary is tried
/// first every time, so traffic returns as soon as it has an available
/// endpoint. `MaxInFlight` of a backend that has endpoints is returned at
/// once; after `backends.len()` backends (a cycle) or an index out of
/// range, `NoEndpoint`.
pub(crate) fn pick_with_failover(
    backends: &[BackendEntry],
    start: usize,
    now: Instant,
    rng: &mut fastrand::Rng,
) -> Result<(usize, Lease), PickError> {
    let mut i = start;
    for _ in 0..backends.len() {
        let Some(b) = backends.get(i) else {
            break;
        };
        if b.endpoints.has_available(now) {
            match b.endpoints.pick(now, rng) {
                Ok(lease) => return Ok((i, lease)),
                Err(PickError::MaxInFlight) => return Err(PickError::MaxInFlight),
                Err(PickError::NoEndpoint) => {}
            }
        }
        match b.failover {
            Some(next) => i = next,
            None => break,
        }
    }
    Err(PickError::NoEndpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 8080))
    }

    fn set(n: u8, max: Option<u32>) -> Arc<EndpointSet> {
        let s = Arc::new(EndpointSet::new(max));
        s.set_addrs(&(1..=n).map(addr).collect::<Vec<_>>());
        s
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn cfg1() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 1,
            backoff_min: ms(1000),
            backoff_max: ms(60_000),
            jitter_percent: 0,
        }
    }

    /// Ejects the endpoint at `a` by failing requests to it.
    fn eject(s: &Arc<EndpointSet>, a: SocketAddr, now: Instant, rng: &mut fastrand::Rng) {
        for _ in 0..1000 {
            let l = s.pick(now, rng).unwrap();
            if l.addr() == a {
                assert_eq!(l.failure(now, &cfg1(), rng), Some(Transition::Opened));
                return;
            }
        }
        panic!("{a} never picked");
    }

    #[test]
    fn p2c_prefers_lower_latency() {
        let s = set(2, None);
        let mut rng = fastrand::Rng::with_seed(3);
        let t0 = Instant::now();
        for e in s.endpoints().iter() {
            let lat = if e.addr() == addr(1) { 2 } else { 50 };
            e.observe(t0 + ms(lat), ms(lat), false);
        }
        let now = t0 + ms(100);
        let fast = (0..1000)
            .filter(|_| s.pick(now, &mut rng).unwrap().addr() == addr(1))
            .count();
        assert_eq!(fast, 1000);
        // With many endpoints, the fast one wins every pair it is in.
        let s = set(4, None);
        for e in s.endpoints().iter() {
            let lat = if e.addr() == addr(1) { 2 } else { 50 };
            e.observe(t0 + ms(lat), ms(lat), false);
        }
        let fast = (0..1000)
            .filter(|_| s.pick(now, &mut rng).unwrap().addr() == addr(1))
            .count();
        // Expected share: 1/2 (pairs containing it) = 500.
        assert!((400..=600).contains(&fast), "{fast}");
        // A lease's verdict feeds the estimate, failures included.
        let s = set(1, None);
        let l = s.pick(t0, &mut rng).unwrap();
        assert_eq!(l.success(t0 + ms(30)), None);
        assert_eq!(s.endpoints()[0].latency_ms(), 30.0);
        let l = s.pick(t0 + ms(30), &mut rng).unwrap();
        assert_eq!(
            l.failure(t0 + ms(130), &cfg1(), &mut rng),
            Some(Transition::Opened)
        );
        assert_eq!(s.endpoints()[0].latency_ms(), 100.0);
    }

    #[test]
    fn in_flight_spreads_load() {
        let s = set(2, None);
        let mut rng = fastrand::Rng::with_seed(5);
        let now = Instant::now();
        // Leases held: the in-flight weighting alternates endpoints.
        let leases: Vec<Lease> = (0..100).map(|_| s.pick(now, &mut rng).unwrap()).collect();
        let ones = leases.iter().filter(|l| l.addr() == addr(1)).count();
        assert_eq!(ones, 50);
        assert_eq!(s.in_flight(), 100);
        drop(leases);
        assert_eq!(s.in_flight(), 0);
        assert!(s.endpoints().iter().all(|e| e.in_flight() == 0));
    }

    #[test]
    fn spreads_evenly_among_equal_endpoints() {
        let s = set(4, None);
        let mut rng = fastrand::Rng::with_seed(11);
        let now = Instant::now();
        let mut counts = [0u32; 4];
        for _ in 0..4000 {
            let l = s.pick(now, &mut rng).unwrap();
            counts[s.addrs().iter().position(|a| *a == l.addr()).unwrap()] += 1;
        }
        for c in counts {
            assert!((800..=1200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn skips_open_breakers() {
        let s = set(3, None);
        let mut rng = fastrand::Rng::with_seed(1);
        let now = Instant::now();
        eject(&s, addr(2), now, &mut rng);
        for _ in 0..500 {
            assert_ne!(s.pick(now, &mut rng).unwrap().addr(), addr(2));
        }
        eject(&s, addr(1), now, &mut rng);
        eject(&s, addr(3), now, &mut rng);
        assert!(!s.has_available(now));
        assert_eq!(s.pick(now, &mut rng).unwrap_err(), PickError::NoEndpoint);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn exactly_one_probe_after_backoff() {
        let s = set(1, None);
        let mut rng = fastrand::Rng::with_seed(1);
        let t0 = Instant::now();
        eject(&s, addr(1), t0, &mut rng);
        assert_eq!(
            s.pick(t0 + ms(999), &mut rng).unwrap_err(),
            PickError::NoEndpoint
        );
        let t1 = t0 + ms(1000);
        let probe = s.pick(t1, &mut rng).unwrap();
        assert_eq!(probe.admission(), Admission::Probe);
        assert_eq!(probe.transition(), Some(Transition::HalfOpen));
        assert_eq!(s.pick(t1, &mut rng).unwrap_err(), PickError::NoEndpoint);
        // Cancelled: another probe may go.
        drop(probe);
        let probe = s.pick(t1, &mut rng).unwrap();
        assert_eq!(probe.admission(), Admission::Probe);
        assert_eq!(probe.success(t1 + ms(5)), Some(Transition::Closed));
        let l = s.pick(t1, &mut rng).unwrap();
        assert_eq!(l.admission(), Admission::Normal);
        assert_eq!(l.transition(), None);
        // A probe that fails ejects again, for twice as long.
        drop(l);
        eject(&s, addr(1), t1, &mut rng);
        let t2 = t1 + ms(1000);
        let probe = s.pick(t2, &mut rng).unwrap();
        assert_eq!(
            probe.failure(t2, &cfg1(), &mut rng),
            Some(Transition::Opened)
        );
        assert!(!s.has_available(t2 + ms(1999)));
        assert!(s.has_available(t2 + ms(2000)));
    }

    #[test]
    fn max_in_flight_enforced_and_released() {
        let s = set(3, Some(2));
        let mut rng = fastrand::Rng::with_seed(1);
        let now = Instant::now();
        let a = s.pick(now, &mut rng).unwrap();
        let b = s.pick(now, &mut rng).unwrap();
        assert_eq!(s.in_flight(), 2);
        assert_eq!(s.pick(now, &mut rng).unwrap_err(), PickError::MaxInFlight);
        drop(a);
        assert_eq!(s.in_flight(), 1);
        let c = s.pick(now, &mut rng).unwrap();
        assert_eq!(c.success(now), None);
        drop(b);
        assert_eq!(s.in_flight(), 0);
        // A failed pick releases its reservation.
        let empty = Arc::new(EndpointSet::new(Some(1)));
        assert_eq!(
            empty.pick(now, &mut rng).unwrap_err(),
            PickError::NoEndpoint
        );
        assert_eq!(empty.in_flight(), 0);
    }

    #[test]
    fn set_addrs_keeps_state_of_kept_addresses() {
        let s = set(3, None);
        let mut rng = fastrand::Rng::with_seed(1);
        let now = Instant::now();
        eject(&s, addr(2), now, &mut rng);
        let held = loop {
            let l = s.pick(now, &mut rng).unwrap();
            if l.addr() == addr(3) {
                break l;
            }
        };
        s.set_addrs(&[addr(2), addr(4), addr(2)]);
        assert_eq!(s.addrs(), vec![addr(2), addr(4)]);
        let eps = s.endpoints();
        assert_eq!(eps[0].breaker_state(), "open");
        assert_eq!(eps[1].breaker_state(), "closed");
        for _ in 0..100 {
            assert_eq!(s.pick(now, &mut rng).unwrap().addr(), addr(4));
        }
        // The lease on the removed endpoint finishes normally.
        assert_eq!(s.in_flight(), 1);
        assert_eq!(held.success(now), None);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn ewma_peak_and_decay() {
        let e = EndpointState::new(addr(1));
        let t0 = Instant::now();
        assert_eq!(e.load(), DEFAULT_LATENCY_MS);
        e.observe(t0, ms(100), false);
        assert_eq!(e.latency_ms(), 100.0);
        // A lower latency 10 s later keeps 1/e of the old estimate.
        e.observe(t0 + ms(10_000), ms(0), false);
        let want = 100.0 * (-1.0f64).exp();
        assert!((e.latency_ms() - want).abs() < 1e-9);
        // Idle decay on read.
        let at = e.load_at(t0 + ms(20_000));
        assert!((at - want * (-1.0f64).exp()).abs() < 1e-9);
        // A fast failure does not lower the estimate; a slow one raises it.
        e.observe(t0 + ms(20_000), ms(1), true);
        assert!((e.latency_ms() - want).abs() < 1e-9);
        assert!((e.load_at(t0 + ms(20_000)) - at).abs() < 1e-9);
        e.observe(t0 + ms(20_000), ms(500), true);
        assert_eq!(e.latency_ms(), 500.0);
    }

    fn entries(sets: &[Arc<EndpointSet>], failover: &[Option<usize>]) -> Vec<BackendEntry> {
        sets.iter()
            .zip(failover)
            .map(|(s, f)| BackendEntry {
                endpoints: s.clone(),
                failover: *f,
            })
            .collect()
    }

    #[test]
    fn failover_walks_the_chain_and_returns() {
        let sets = [set(1, None), set(1, None), set(1, None)];
        let bs = entries(&sets, &[Some(1), Some(2), None]);
        let mut rng = fastrand::Rng::with_seed(1);
        let t0 = Instant::now();
        assert_eq!(pick_with_failover(&bs, 0, t0, &mut rng).unwrap().0, 0);
        eject(&sets[0], addr(1), t0, &mut rng);
        assert_eq!(pick_with_failover(&bs, 0, t0, &mut rng).unwrap().0, 1);
        eject(&sets[1], addr(1), t0, &mut rng);
        assert_eq!(pick_with_failover(&bs, 0, t0, &mut rng).unwrap().0, 2);
        eject(&sets[2], addr(1), t0, &mut rng);
        assert_eq!(
            pick_with_failover(&bs, 0, t0, &mut rng).unwrap_err(),
            PickError::NoEndpoint
        );
        // The primary's backoff ends: its probe goes there, the rest fail
        // over while the probe is in flight.
        let t1 = t0 + ms(1000);
        let (i, probe) = pick_with_failover(&bs, 0, t1, &mut rng).unwrap();
        assert_eq!((i, probe.admission()), (0, Admission::Probe));
        let (i, other) = pick_with_failover(&bs, 0, t1, &mut rng).unwrap();
        assert_eq!((i, other.admission()), (1, Admission::Probe));
        assert_eq!(probe.success(t1), Some(Transition::Closed));
        assert_eq!(pick_with_failover(&bs, 0, t1, &mut rng).unwrap().0, 0);
        drop(other);
    }

    #[test]
    fn failover_max_in_flight_fails_at_once() {
        let sets = [set(1, Some(1)), set(1, None)];
        let bs = entries(&sets, &[Some(1), None]);
        let mut rng = fastrand::Rng::with_seed(1);
        let now = Instant::now();
        let (_, held) = pick_with_failover(&bs, 0, now, &mut rng).unwrap();
        assert_eq!(
            pick_with_failover(&bs, 0, now, &mut rng).unwrap_err(),
            PickError::MaxInFlight
        );
        drop(held);
        assert_eq!(pick_with_failover(&bs, 0, now, &mut rng).unwrap().0, 0);
    }

    #[test]
    fn failover_cycle_guard() {
        let sets = [set(1, None), set(1, None), Arc::new(EndpointSet::new(None))];
        let bs = entries(&sets, &[Some(1), Some(0), Some(7)]);
        let mut rng = fastrand::Rng::with_seed(1);
        let now = Instant::now();
        eject(&sets[0], addr(1), now, &mut rng);
        eject(&sets[1], addr(1), now, &mut rng);
        assert_eq!(
            pick_with_failover(&bs, 0, now, &mut rng).unwrap_err(),
            PickError::NoEndpoint
        );
        // An empty backend fails over; an index out of range ends the walk.
        assert_eq!(
            pick_with_failover(&bs, 2, now, &mut rng).unwrap_err(),
            PickError::NoEndpoint
        );
        assert_eq!(
            pick_with_failover(&bs, 9, now, &mut rng).unwrap_err(),
            PickError::NoEndpoint
        );
        let bs = entries(&sets, &[Some(1), Some(0), Some(0)]);
        sets[1].set_addrs(&[addr(9)]);
        assert_eq!(pick_with_failover(&bs, 2, now, &mut rng).unwrap().0, 1);
    }
}
