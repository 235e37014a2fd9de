//! The request-series cache: finds the series a finished request updates from its label set
//! with one small hash per request.
//!
//! A request's label values are shared `Arc<str>`s made once (with the routing snapshot, the
//! listener, the status tables), so the same label set almost always arrives as the same
//! pointers. The first level is keyed by those pointers (and the enum labels): hashing and
//! comparing eleven words instead of ~150 bytes of text, which was ~3 % of the Dubbo data
//! plane's CPU at saturation. A label set made of fresh allocations misses it and falls back to
//! the second level, keyed by the label values themselves; the first level is emptied when it
//! reaches [`MAX_IDENTITIES`], so allocating callers and snapshot swaps cannot grow it without
//! bound.

use std::sync::Arc;

use crate::fasthash::FastMap;
use crate::metrics::RequestLabels;

/// Entries of the pointer-keyed level before it is emptied and refilled.
pub const MAX_IDENTITIES: usize = 4096;

/// The series of every label set seen, by identity first, then by value.
#[derive(Debug)]
pub struct SeriesCache<V> {
    by_identity: FastMap<Identity, ByIdentity<V>>,
    by_labels: FastMap<RequestLabels, Arc<V>>,
}

impl<V> Default for SeriesCache<V> {
    fn default() -> Self {
        Self {
            by_identity: FastMap::default(),
            by_labels: FastMap::default(),
        }
    }
}

/// The addresses of a label set's shared values, and its enum values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Identity([usize; 11]);

impl Identity {
    fn of(labels: &RequestLabels) -> Self {
        let at = |value: &Arc<str>| Arc::as_ptr(value).cast::<u8>() as usize;
        Self([
            labels.reporter as usize,
            at(&labels.source_workload),
            at(&labels.destination_service),
            at(&labels.destination_workload),
            at(&labels.destination_version),
            labels.request_protocol as usize,
            at(&labels.response_code),
            at(&labels.grpc_response_status),
            labels.response_flags as usize,
            at(&labels.request_method),
            at(&labels.destination_interface),
        ])
    }
}

#[derive(Debug)]
struct ByIdentity<V> {
    /// Holds the values the key points at, so their addresses cannot be reused by other values
    /// while the entry exists.
    _labels: RequestLabels,
    series: Arc<V>,
}

// === impl SeriesCache ===

impl<V> SeriesCache<V> {
    /// The series of `labels`, made by `make` the first time their values are seen.
    pub fn get_or_insert_with(&mut self, labels: &RequestLabels, make: impl FnOnce() -> V) -> &V {
        if self.by_identity.len() >= MAX_IDENTITIES {
            self.by_identity.clear();
        }
        let by_labels = &mut self.by_labels;
        let entry = self
            .by_identity
            .entry(Identity::of(labels))
            .or_insert_with(|| {
                let series = match by_labels.get(labels) {
                    Some(series) => series.clone(),
                    None => {
                        let series = Arc::new(make());
                        by_labels.insert(labels.clone(), series.clone());
                        series
                    }
                };
                ByIdentity {
                    _labels: labels.clone(),
                    series,
                }
            });
        &entry.series
    }

    /// Label sets known by identity (for tests).
    #[cfg(test)]
    fn identities(&self) -> usize {
        self.by_identity.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Protocol, Reporter, ResponseFlags};

    fn labels(service: &str) -> RequestLabels {
        RequestLabels {
            reporter: Reporter::Source,
            source_workload: Arc::from("caller"),
            destination_service: Arc::from(service),
            destination_workload: Arc::from("app"),
            destination_version: Arc::from("v1"),
            request_protocol: Protocol::Dubbo,
            response_code: Arc::from("20"),
            grpc_response_status: Arc::from(""),
            response_flags: ResponseFlags::None,
            request_method: Arc::from("greet"),
            destination_interface: Arc::from("com.acme.Greeter"),
        }
    }

    #[test]
    fn the_same_shared_values_find_the_same_series_without_making_another() {
        let mut cache = SeriesCache::default();
        let shared = labels("greeter");
        let mut made = 0;
        let first: *const u32 = cache.get_or_insert_with(&shared, || {
            made += 1;
            7
        });
        let again: *const u32 = cache.get_or_insert_with(&shared.clone(), || {
            made += 1;
            8
        });
        assert_eq!(first, again);
        assert_eq!(made, 1);
        assert_eq!(cache.identities(), 1);
    }

    #[test]
    fn equal_values_in_fresh_allocations_share_the_series_of_their_value() {
        let mut cache = SeriesCache::default();
        let mut made = 0;
        let first = *cache.get_or_insert_with(&labels("greeter"), || {
            made += 1;
            made
        });
        let fresh = *cache.get_or_insert_with(&labels("greeter"), || {
            made += 1;
            made
        });
        assert_eq!((first, fresh), (1, 1));
        assert_eq!(
            made, 1,
            "a fresh allocation of the same values is the same series"
        );
        let other = *cache.get_or_insert_with(&labels("orders"), || {
            made += 1;
            made
        });
        assert_eq!(other, 2);
        // A different enum value is a different series too.
        let mut failed = labels("greeter");
        failed.response_flags = ResponseFlags::UpstreamOverflow;
        assert_eq!(*cache.get_or_insert_with(&failed, || 3), 3);
    }

    #[test]
    fn the_identity_level_is_bounded() {
        let mut cache = SeriesCache::default();
        for _ in 0..MAX_IDENTITIES + 10 {
            // Fresh allocations every time: the worst caller.
            cache.get_or_insert_with(&labels("greeter"), || 1);
        }
        assert!(cache.identities() <= MAX_IDENTITIES);
        assert_eq!(*cache.get_or_insert_with(&labels("greeter"), || 2), 1);
    }
}
