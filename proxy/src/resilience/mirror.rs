//! Request mirroring, protocol-neutral: which of a route's mirrors a request is copied to, and the
//! bound on copies in flight per mirror cluster. The protocols send the copies themselves (Dubbo:
//! `dubbo/mirror.rs`, Thrift: `thrift/mirror.rs`).
//!
//! A copy is fire-and-forget: its answer is read and discarded, its failures are not the caller's
//! business, and when a mirror is slow or down the copies for it pile up to the bound and further
//! ones are dropped (counted in `causeway_proxy_mirror_dropped_total`) rather than queued, so a
//! broken mirror costs the primary path nothing but a counter increment.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::fasthash::FastMap;
use crate::routing::http::MirrorSpec;

/// Copies in flight to one mirror cluster, per proxy and protocol, before new ones are dropped.
/// Enough for a mirror answering in 100 ms to take a copy of 600 requests per second.
pub const MAX_IN_FLIGHT: u32 = 64;

/// The mirrors a request is copied to: each independently with its own share.
pub fn chosen<'a>(
    mirrors: &'a [MirrorSpec],
    rng: &'a mut fastrand::Rng,
) -> impl Iterator<Item = &'a MirrorSpec> + 'a {
    mirrors
        .iter()
        .filter(move |mirror| mirror.fraction >= 1.0 || rng.f64() < mirror.fraction)
}

/// Copies in flight per mirror cluster.
#[derive(Debug, Default)]
pub struct MirrorSlots {
    in_flight: Mutex<FastMap<Arc<str>, Arc<AtomicU32>>>,
}

// === impl MirrorSlots ===

impl MirrorSlots {
    /// A slot for one more copy to `cluster`, or `None` when [`MAX_IN_FLIGHT`] are out.
    pub fn try_acquire(&self, cluster: &Arc<str>) -> Option<MirrorSlot> {
        let count = {
            let mut map = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match map.get(cluster) {
                Some(count) => count.clone(),
                None => map.entry(cluster.clone()).or_default().clone(),
            }
        };
        // Reserve first, give back on overshoot: no lock held across the check.
        if count.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(MirrorSlot { count })
    }
}

/// One copy in flight; dropping it (answer read, timeout, connection gone) frees the slot.
#[derive(Debug)]
pub struct MirrorSlot {
    count: Arc<AtomicU32>,
}

impl Drop for MirrorSlot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fraction: f64) -> MirrorSpec {
        MirrorSpec {
            cluster: Arc::from("outbound|1||m"),
            fraction,
        }
    }

    #[test]
    fn shares_are_honoured_per_mirror() {
        let mirrors = [spec(1.0), spec(0.25), spec(0.0)];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0usize; 3];
        for _ in 0..10_000 {
            for mirror in chosen(&mirrors, &mut rng) {
                let at = mirrors
                    .iter()
                    .position(|m| std::ptr::eq(m, mirror))
                    .unwrap();
                counts[at] += 1;
            }
        }
        assert_eq!(counts[0], 10_000);
        assert!((2_250..=2_750).contains(&counts[1]), "{counts:?}");
        assert_eq!(counts[2], 0);
    }

    #[test]
    fn slots_are_bounded_and_given_back() {
        let slots = MirrorSlots::default();
        let cluster: Arc<str> = Arc::from("outbound|1||m");
        let held: Vec<MirrorSlot> = (0..MAX_IN_FLIGHT)
            .map(|_| slots.try_acquire(&cluster).unwrap())
            .collect();
        assert!(slots.try_acquire(&cluster).is_none());
        // Another cluster has its own bound.
        assert!(slots.try_acquire(&Arc::from("outbound|1||other")).is_some());
        drop(held);
        assert!(slots.try_acquire(&cluster).is_some());
    }
}
