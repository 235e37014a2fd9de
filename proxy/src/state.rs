//! The routing snapshot in force: one atomically swapped pointer. Readers take the current
//! snapshot without locking and keep it for the whole request; writers replace it whole.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::routing::Snapshot;

/// Holds the current [`Snapshot`].
#[derive(Debug)]
pub struct SnapshotStore {
    current: ArcSwap<Snapshot>,
    loaded: std::sync::atomic::AtomicBool,
}

impl Default for SnapshotStore {
    fn default() -> Self {
        Self::new()
    }
}

// === impl SnapshotStore ===

impl SnapshotStore {
    /// A store holding an empty snapshot (every request gets "no route").
    pub fn new() -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot::default()),
            loaded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The snapshot in force.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Puts `snapshot` in force; requests already routed keep the one they hold.
    pub fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
        self.loaded
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether a snapshot has ever been stored (readiness).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }
}
