//! The rules layer's Prometheus metrics: rejected reloads, the version in force, and resources by
//! kind. Labels are bounded: one version at a time and a fixed set of kinds.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::RuleSet;

/// The rule kinds, as a bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(missing_docs, reason = "the variants are the Kubernetes kinds")]
pub enum KindLabel {
    DestinationRule,
    VirtualService,
    MetaRouter,
    TrafficIsolation,
}

/// Labels of the resources gauge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    /// The kind.
    pub kind: KindLabel,
}

/// Labels of the version info gauge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RulesVersionLabels {
    /// The rule set version in force.
    pub version: String,
}

/// The rules metrics. Cloning shares the underlying series.
#[derive(Debug, Clone, Default)]
pub struct RulesMetrics {
    rejected: Counter,
    version_info: Family<RulesVersionLabels, Gauge>,
    resources: Family<KindLabels, Gauge>,
}

impl RulesMetrics {
    /// Creates the metrics and registers them under `causeway_bridge_` in `registry`:
    /// `causeway_bridge_rules_rejected_total`, `causeway_bridge_rules_version_info` and
    /// `causeway_bridge_rules_resources`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let reg = registry.sub_registry_with_prefix("causeway_bridge");
        reg.register(
            "rules_rejected",
            "Rules file loads rejected (invalid or unreadable); the last good rules stay in force",
            metrics.rejected.clone(),
        );
        reg.register(
            "rules_version_info",
            "The version of the rules in force (value always 1)",
            metrics.version_info.clone(),
        );
        reg.register(
            "rules_resources",
            "Rule resources in force, by kind",
            metrics.resources.clone(),
        );
        metrics
    }

    /// Records a rule set that is now in force.
    pub fn accepted(&self, rules: &RuleSet) {
        self.version_info.clear();
        self.version_info
            .get_or_create(&RulesVersionLabels {
                version: rules.version.clone(),
            })
            .set(1);
        for (kind, count) in [
            (KindLabel::DestinationRule, rules.destination_rules.len()),
            (KindLabel::VirtualService, rules.virtual_services.len()),
            (KindLabel::MetaRouter, rules.meta_routers.len()),
            (KindLabel::TrafficIsolation, rules.traffic_isolations.len()),
        ] {
            self.resources
                .get_or_create(&KindLabels { kind })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Counts one rejected load.
    pub fn rejected(&self) {
        self.rejected.inc();
    }

    /// Rejected loads so far.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.get()
    }
}
