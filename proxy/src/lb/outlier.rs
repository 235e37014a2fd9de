//! The outlier detector's per-endpoint state: consecutive errors and gateway errors, how often the
//! endpoint was ejected, and until when it is ejected now. Every protocol reports its results here
//! as a [`Verdict`] (what counts as an error is the protocol's business, see
//! `crate::resilience::outlier`), so one endpoint serving Dubbo and gRPC is judged once.
//!
//! Semantics follow Envoy's consecutive-error detectors: a gateway error (connect failure, reset,
//! timeout, 502/503/504, gRPC UNAVAILABLE) also counts as an error; any success resets both
//! counts; a result the caller caused (a 4xx, a bad request) changes nothing. Reaching a
//! threshold ejects the endpoint at once (not at the next interval: a dead endpoint should stop
//! taking traffic within milliseconds) for `base × n` where n counts its ejections, unless the
//! cluster already has its maximum share ejected.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::atomic_instant::AtomicInstant;
use crate::routing::OutlierPolicy;

/// Longest outlier ejection (Envoy's `max_ejection_time` default), unless the base is longer.
const MAX_EJECTION: Duration = Duration::from_secs(300);

/// How one request went, as the outlier detector sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The endpoint answered normally (application errors the protocol carries as results
    /// included).
    Success,
    /// The endpoint failed the request itself (HTTP 500, gRPC INTERNAL, Dubbo SERVER_ERROR,
    /// a Thrift `TApplicationException`).
    Error,
    /// The endpoint could not be reached or did not answer (connect failure, reset, timeout,
    /// 502/503/504, gRPC UNAVAILABLE, Dubbo threadpool exhausted).
    GatewayError,
    /// Says nothing about the endpoint (the caller's mistake, or the caller went away).
    Ignored,
}

/// Why an endpoint was ejected (the `reason` label of
/// `causeway_proxy_outlier_ejections_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EjectionReason {
    /// `consecutive_errors`.
    ConsecutiveErrors,
    /// `consecutive_gateway_errors`.
    ConsecutiveGatewayErrors,
    /// `connect_failure`: a connection could not be opened.
    ConnectFailure,
}

impl EjectionReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConsecutiveErrors => "consecutive_errors",
            Self::ConsecutiveGatewayErrors => "consecutive_gateway_errors",
            Self::ConnectFailure => "connect_failure",
        }
    }
}

#[derive(Debug, Default)]
struct Ejection {
    /// Ejected until then (`None`: never ejected or returned).
    until: Option<Instant>,
    /// Ejections so far, the multiplier of the next one.
    count: u32,
    /// How long the last ejection lasted.
    last_length: Duration,
}

/// The outlier detector's view of one endpoint.
#[derive(Debug, Default)]
pub struct OutlierState {
    consecutive_errors: AtomicU32,
    consecutive_gateway_errors: AtomicU32,
    ejection: Mutex<Ejection>,
    /// `ejection.until`, for the lock-free read every choice makes.
    ejected_until: AtomicInstant,
}

// === impl OutlierState ===

impl OutlierState {
    /// Counts a result; returns the reason when it reaches one of `policy`'s thresholds (the
    /// counts then start again, whether or not the endpoint ends up ejected).
    pub fn observe(&self, verdict: Verdict, policy: &OutlierPolicy) -> Option<EjectionReason> {
        let reset = |counter: &AtomicU32| {
            // Load first: a success on a healthy endpoint should not write a shared cache line.
            if counter.load(Ordering::Relaxed) != 0 {
                counter.store(0, Ordering::Relaxed);
            }
        };
        match verdict {
            Verdict::Ignored => None,
            Verdict::Success => {
                reset(&self.consecutive_errors);
                reset(&self.consecutive_gateway_errors);
                None
            }
            Verdict::Error => {
                reset(&self.consecutive_gateway_errors);
                let errors = self.consecutive_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if policy
                    .consecutive_errors
                    .is_some_and(|n| errors >= n.max(1))
                {
                    self.consecutive_errors.store(0, Ordering::Relaxed);
                    return Some(EjectionReason::ConsecutiveErrors);
                }
                None
            }
            Verdict::GatewayError => {
                let errors = self.consecutive_errors.fetch_add(1, Ordering::Relaxed) + 1;
                let gateway = self
                    .consecutive_gateway_errors
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                let reason = if policy
                    .consecutive_gateway_errors
                    .is_some_and(|n| gateway >= n.max(1))
                {
                    Some(EjectionReason::ConsecutiveGatewayErrors)
                } else if policy
                    .consecutive_errors
                    .is_some_and(|n| errors >= n.max(1))
                {
                    Some(EjectionReason::ConsecutiveErrors)
                } else {
                    None
                };
                if reason.is_some() {
                    self.consecutive_errors.store(0, Ordering::Relaxed);
                    self.consecutive_gateway_errors.store(0, Ordering::Relaxed);
                }
                reason
            }
        }
    }

    /// Whether the endpoint is ejected at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_after(now)
    }

    /// Ejects the endpoint from `now` for `base × n` (n: this ejection's number, reset to 1 once
    /// the endpoint stayed in rotation as long as its last ejection lasted). Returns the length.
    pub fn eject(&self, now: Instant, policy: &OutlierPolicy) -> Duration {
        let base = Duration::from_millis(policy.base_ejection_ms.max(1));
        let mut ejection = self.lock();
        if let Some(ended) = ejection.until
            && now.saturating_duration_since(ended) >= ejection.last_length
        {
            ejection.count = 0;
        }
        ejection.count = ejection.count.saturating_add(1);
        let length = base
            .saturating_mul(ejection.count)
            .min(MAX_EJECTION.max(base));
        ejection.until = Some(now + length);
        self.ejected_until.store(ejection.until);
        ejection.last_length = length;
        length
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ejection> {
        self.ejection.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
