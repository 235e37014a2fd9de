//! An `Option<Instant>` that readers load without a lock: nanoseconds since a process-wide
//! epoch in an `AtomicU64`, 0 meaning none. The balancer reads an endpoint's ejection deadlines
//! and last latency sample on every choice, for every endpoint of the cluster, while they change
//! rarely; a mutex per read was most of a choice's cost.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The epoch every stored instant counts from: the first use in the process. Instants from
/// before it are stored as the epoch itself (they are in the past for every reader).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `at` as stored: never 0, which means "none".
fn to_nanos(at: Instant) -> u64 {
    let since = at.saturating_duration_since(epoch()).as_nanos();
    u64::try_from(since).unwrap_or(u64::MAX).max(1)
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct AtomicInstant(AtomicU64);

impl AtomicInstant {
    /// The stored instant, if any.
    pub fn load(&self) -> Option<Instant> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(epoch() + Duration::from_nanos(nanos)),
        }
    }

    /// Stores `at` (or clears it).
    pub fn store(&self, at: Option<Instant>) {
        self.0.store(at.map_or(0, to_nanos), Ordering::Relaxed);
    }

    /// Whether an instant is stored and it is later than `now`.
    pub fn is_after(&self, now: Instant) -> bool {
        let stored = self.0.load(Ordering::Relaxed);
        stored != 0 && stored > to_nanos(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_loads_and_compares() {
        let cell = AtomicInstant::default();
        let now = Instant::now();
        assert_eq!(cell.load(), None);
        assert!(!cell.is_after(now));
        let later = now + Duration::from_millis(500);
        cell.store(Some(later));
        let loaded = cell.load().unwrap();
        // Nanosecond resolution: the round trip is exact to within a nanosecond.
        assert!(loaded.max(later) - loaded.min(later) < Duration::from_micros(1));
        assert!(cell.is_after(now));
        assert!(!cell.is_after(later + Duration::from_millis(1)));
        cell.store(None);
        assert!(!cell.is_after(now));
    }

    #[test]
    fn instants_before_the_epoch_are_in_the_past() {
        let early = Instant::now();
        let _ = epoch();
        let cell = AtomicInstant::default();
        cell.store(Some(early));
        assert!(cell.load().is_some());
        assert!(!cell.is_after(Instant::now()));
    }
}
