//! The bridge's own Prometheus metrics (`causeway_bridge_*`): registry reachability and events,
//! model size, snapshot versions and the registry-change-to-snapshot latency.
//!
//! Label values are bounded: registry names come from the configuration and event kinds are an
//! enum, so no registry content can grow the label space.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::model::snapshot::Snapshot;
use crate::registry::RegistryEvent;

/// Kinds of adapter events, as a bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum EventKind {
    /// A full re-list.
    resync,
    /// One entry added or changed.
    upsert,
    /// One entry removed.
    remove,
    /// The registry became reachable.
    up,
    /// The registry became unreachable.
    down,
    /// A malformed entry was skipped.
    malformed,
}

impl EventKind {
    /// The kind of an event.
    pub fn of(event: &RegistryEvent) -> Self {
        match event {
            RegistryEvent::Resync(_) | RegistryEvent::ResyncBegin => Self::resync,
            // The end of a streamed resync was already counted at its start.
            RegistryEvent::ResyncEnd => Self::resync,
            RegistryEvent::Upsert(..) => Self::upsert,
            RegistryEvent::Remove(_) => Self::remove,
            RegistryEvent::Up => Self::up,
            RegistryEvent::Down => Self::down,
            RegistryEvent::Malformed { .. } => Self::malformed,
        }
    }
}

/// Labels naming a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RegistryLabels {
    /// Registry name from the configuration.
    pub registry: String,
}

/// Labels of the event counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EventLabels {
    /// Registry name from the configuration.
    pub registry: String,
    /// Event kind.
    pub kind: EventKind,
}

/// Labels of the snapshot info gauge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct VersionLabels {
    /// The current snapshot version.
    pub version: String,
}

/// Every bridge metric.
#[derive(Debug)]
pub struct BridgeMetrics {
    registry_up: Family<RegistryLabels, Gauge>,
    registry_stale: Family<RegistryLabels, Gauge>,
    registry_providers: Family<RegistryLabels, Gauge>,
    registry_events: Family<EventLabels, Counter>,
    services: Gauge,
    endpoints: Gauge,
    snapshots: Counter,
    snapshot_info: Family<VersionLabels, Gauge>,
    change_to_snapshot: Histogram,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~16 s: covers the default 100 ms debounce and a slow cold sync.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 15,
    ))
}

impl BridgeMetrics {
    /// Creates the metrics and registers them under `causeway_bridge_` in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            registry_up: Family::default(),
            registry_stale: Family::default(),
            registry_providers: Family::default(),
            registry_events: Family::default(),
            services: Gauge::default(),
            endpoints: Gauge::default(),
            snapshots: Counter::default(),
            snapshot_info: Family::default(),
            change_to_snapshot: latency_histogram(),
        };
        let reg = registry.sub_registry_with_prefix("causeway_bridge");
        reg.register(
            "registry_up",
            "Whether the registry is reachable and listed (1) or not (0)",
            metrics.registry_up.clone(),
        );
        reg.register(
            "registry_stale",
            "1 while an unreachable registry's last known providers are kept in the model",
            metrics.registry_stale.clone(),
        );
        reg.register(
            "registry_providers",
            "Providers currently known from the registry",
            metrics.registry_providers.clone(),
        );
        reg.register(
            "registry_events",
            "Events reported by registry adapters, by kind",
            metrics.registry_events.clone(),
        );
        reg.register(
            "services",
            "Services in the current snapshot",
            metrics.services.clone(),
        );
        reg.register(
            "endpoints",
            "Endpoints in the current snapshot",
            metrics.endpoints.clone(),
        );
        reg.register(
            "snapshots",
            "Snapshots published",
            metrics.snapshots.clone(),
        );
        reg.register(
            "snapshot_info",
            "The current snapshot version (value always 1)",
            metrics.snapshot_info.clone(),
        );
        reg.register(
            "change_to_snapshot_seconds",
            "Time from a registry change reaching the bridge to the snapshot that contains it",
            metrics.change_to_snapshot.clone(),
        );
        metrics
    }

    /// Counts one adapter event.
    pub fn event(&self, registry: &str, event: &RegistryEvent) {
        self.registry_events
            .get_or_create(&EventLabels {
                registry: registry.to_owned(),
                kind: EventKind::of(event),
            })
            .inc();
    }

    /// Records a published snapshot and how long its oldest change waited.
    pub fn snapshot(&self, snapshot: &Snapshot, latency: Option<std::time::Duration>) {
        self.snapshots.inc();
        self.services.set(to_i64(snapshot.services.len()));
        self.endpoints.set(to_i64(snapshot.endpoint_count()));
        self.snapshot_info.clear();
        self.snapshot_info
            .get_or_create(&VersionLabels {
                version: snapshot.version.clone(),
            })
            .set(1);
        for (name, status) in &snapshot.registries {
            let labels = RegistryLabels {
                registry: name.clone(),
            };
            self.registry_up
                .get_or_create(&labels)
                .set(i64::from(status.up));
            self.registry_stale
                .get_or_create(&labels)
                .set(i64::from(!status.up && status.providers > 0));
            self.registry_providers
                .get_or_create(&labels)
                .set(to_i64(status.providers));
        }
        if let Some(latency) = latency {
            self.change_to_snapshot.observe(latency.as_secs_f64());
        }
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
