//! [`EndpointState`]: what the proxy has learnt about one endpoint by talking to it — requests in
//! flight, a latency EWMA, whether it asked to be drained (READONLY) and whether it is ejected
//! after connect failures or by the outlier detector ([`super::outlier`]). Lock-free on the
//! request path except for the ejection checks' uncontended mutexes.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::atomic_instant::AtomicInstant;
use super::outlier::OutlierState;

/// Latency assumed before the first response, in microseconds: low enough that a new endpoint is
/// tried soon, high enough that it does not attract everything.
const INITIAL_EWMA_MICROS: f64 = 1_000.0;
/// Latencies below this count as equal: on loopback or in one rack the differences are noise, and
/// chasing them would send a lightly loaded cluster's every request to one endpoint. Below it,
/// P2C decides on in-flight requests and weights alone.
const LATENCY_FLOOR_MICROS: f64 = 1_000.0;
/// How fast an EWMA nobody refreshes relaxes toward the floor: an endpoint that once answered
/// slowly is not avoided for ever just because it is never chosen again to prove otherwise.
const DECAY: Duration = Duration::from_secs(1);
/// Weight of a new sample that is below the average (peaks are taken at once).
const EWMA_ALPHA: f64 = 0.2;
/// First ejection after a connect failure; doubles per consecutive failure.
const BASE_EJECTION: Duration = Duration::from_millis(500);
/// Longest ejection.
const MAX_EJECTION: Duration = Duration::from_secs(30);

/// Runtime state of one endpoint, shared by every cluster that contains it.
#[derive(Debug)]
pub struct EndpointState {
    in_flight: AtomicU32,
    /// `f64` bits of the latency EWMA in microseconds.
    ewma_micros: AtomicU64,
    /// When the EWMA last took a sample (for the decay).
    sampled_at: AtomicInstant,
    draining: AtomicBool,
    consecutive_failures: AtomicU32,
    /// Connect-failure ejection deadline: read lock-free on every choice, written under
    /// `ejection_writer` so concurrent failures take one decision.
    ejected_until: AtomicInstant,
    ejection_writer: Mutex<()>,
    /// The outlier detector's counts and ejection (separate from the connect-failure ejection,
    /// which a successful connect ends; an outlier ejection only time ends).
    pub(super) outlier: OutlierState,
}

impl Default for EndpointState {
    fn default() -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            ewma_micros: AtomicU64::new(INITIAL_EWMA_MICROS.to_bits()),
            sampled_at: AtomicInstant::default(),
            draining: AtomicBool::new(false),
            consecutive_failures: AtomicU32::new(0),
            ejected_until: AtomicInstant::default(),
            ejection_writer: Mutex::new(()),
            outlier: OutlierState::default(),
        }
    }
}

// === impl EndpointState ===

impl EndpointState {
    /// Whether new requests may go here at `now`.
    pub fn is_usable(&self, now: Instant) -> bool {
        !self.draining.load(Ordering::Relaxed) && !self.is_ejected(now)
    }

    /// Whether the endpoint is ejected at `now`, after connect failures or by the outlier
    /// detector.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.is_connect_ejected(now) || self.outlier.is_ejected(now)
    }

    /// P2C's cost at `now`: (in flight + 1) × latency EWMA, the EWMA at least the latency floor
    /// and decaying toward it while no sample refreshes it.
    pub fn load_score(&self, now: Instant) -> f64 {
        let in_flight = f64::from(self.in_flight.load(Ordering::Relaxed));
        let latency = f64::from_bits(self.ewma_micros.load(Ordering::Relaxed));
        let idle = self
            .sampled_at
            .load()
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        let excess = (latency - LATENCY_FLOOR_MICROS).max(0.0);
        let decayed = excess * (-idle.as_secs_f64() / DECAY.as_secs_f64()).exp();
        (in_flight + 1.0) * (LATENCY_FLOOR_MICROS + decayed)
    }

    /// Requests currently in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A request was sent.
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request finished (answered or failed) after `latency`; `None` when no latency should
    /// be recorded (a local failure).
    pub fn finish(&self, latency: Option<Duration>) {
        self.finish_at(latency.map(|latency| (latency, Instant::now())));
    }

    /// [`EndpointState::finish`] with the latency sampled at a time the caller read already
    /// (each clock read shows at saturation).
    pub fn finish_at(&self, sample: Option<(Duration, Instant)>) {
        // Saturating: a finish without a start must not wrap around.
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if let Some((latency, now)) = sample {
            self.sampled_at.store(Some(now));
            let sample = latency.as_secs_f64() * 1e6;
            let _ = self
                .ewma_micros
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                    let old = f64::from_bits(bits);
                    // Peak-sensitive: a slow response counts at once, recovery is gradual.
                    let new = if sample > old {
                        sample
                    } else {
                        old + EWMA_ALPHA * (sample - old)
                    };
                    Some(new.to_bits())
                });
        }
    }

    /// The latency EWMA.
    pub fn ewma(&self) -> Duration {
        Duration::from_secs_f64(f64::from_bits(self.ewma_micros.load(Ordering::Relaxed)) / 1e6)
    }

    /// The endpoint sent READONLY (`true`) or WRITEABLE (`false`).
    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    /// Whether the endpoint asked to be drained.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// A connection could not be opened at `now`: eject for a time that doubles per
    /// consecutive failure. Returns the ejection time. Prefer [`super::Balancer::connect_failed`],
    /// which also counts the ejection.
    pub fn connect_failed(&self, now: Instant) -> Duration {
        let _writer = self
            .ejection_writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Requests that were already connecting when the endpoint was ejected fail too; they
        // are the same failure, so they must not double the ejection again and again (a
        // provider killed under load would otherwise be kept out for the maximum at once).
        if let Some(at) = self.ejected_until.load()
            && at > now
        {
            return at - now;
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        let ejection = BASE_EJECTION
            .saturating_mul(1u32 << failures.min(10))
            .min(MAX_EJECTION);
        self.ejected_until.store(Some(now + ejection));
        ejection
    }

    /// Whether a connect-failure ejection is in force at `now`.
    pub fn is_connect_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_after(now)
    }

    /// A connection was opened: the endpoint is back, and a new connection is a fresh start
    /// (a restarted provider is writeable again).
    pub fn connected(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let _writer = self
            .ejection_writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.ejected_until.store(None);
        self.draining.store(false, Ordering::Relaxed);
    }
}
