//! The resilience metrics, with the names and labels of docs/observability.md's contract:
//! `causeway_proxy_retries_total{destination_service,request_protocol,reason}`,
//! `causeway_proxy_outlier_ejections_total{destination_service,cluster,reason}` and
//! `causeway_proxy_outlier_ejected_endpoints{destination_service,cluster}`.

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::lb::EjectionReason;
use crate::metrics::Protocol;

impl EncodeLabelValue for EjectionReason {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// Why a request was sent again (the `reason` label of `causeway_proxy_retries_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryReason {
    /// The connection could not be opened.
    ConnectFailure,
    /// The connection closed or the stream was reset before a response.
    Reset,
    /// The attempt's time (per-try timeout) ran out.
    Timeout,
    /// The provider answered with a status the retry policy names.
    RetriableStatus,
}

impl EncodeLabelValue for RetryReason {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Self::ConnectFailure => "connect_failure",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::RetriableStatus => "retriable_status",
        })
    }
}

/// Labels of `causeway_proxy_retries_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RetryLabels {
    /// The mesh host.
    pub destination_service: Arc<str>,
    /// The request's protocol.
    pub request_protocol: Protocol,
    /// Why.
    pub reason: RetryReason,
}

/// Labels of `causeway_proxy_outlier_ejections_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EjectionLabels {
    /// The mesh host.
    pub destination_service: Arc<str>,
    /// `outbound|<port>|<subset>|<host>`.
    pub cluster: Arc<str>,
    /// Why.
    pub reason: EjectionReason,
}

/// Labels of `causeway_proxy_outlier_ejected_endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EjectedLabels {
    /// The mesh host.
    pub destination_service: Arc<str>,
    /// `outbound|<port>|<subset>|<host>`.
    pub cluster: Arc<str>,
}

/// Labels of the mirror and fault counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The mesh host.
    pub destination_service: Arc<str>,
    /// The request's protocol.
    pub request_protocol: Protocol,
}

/// The resilience metric families.
#[derive(Debug, Default)]
pub struct ResilienceMetrics {
    retries: Family<RetryLabels, Counter>,
    retries_refused: Family<ServiceLabels, Counter>,
    ejections: Family<EjectionLabels, Counter>,
    ejected: Family<EjectedLabels, Gauge>,
    faults_delayed: Family<ServiceLabels, Counter>,
    faults_aborted: Family<ServiceLabels, Counter>,
    mirrored: Family<ServiceLabels, Counter>,
    mirrors_dropped: Family<ServiceLabels, Counter>,
    mirrors_skipped: Family<ServiceLabels, Counter>,
}

// === impl ResilienceMetrics ===

impl ResilienceMetrics {
    /// The families, registered in `registry` (the `causeway_proxy` sub-registry).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "retries",
            "Requests sent again, by reason (retries the budget refused are not counted here)",
            metrics.retries.clone(),
        );
        registry.register(
            "retries_refused",
            "Retries the retry budget or the attempt limit refused",
            metrics.retries_refused.clone(),
        );
        registry.register(
            "outlier_ejections",
            "Endpoint ejections, by reason (one ejection of one endpoint counts once)",
            metrics.ejections.clone(),
        );
        registry.register(
            "outlier_ejected_endpoints",
            "Endpoints ejected now",
            metrics.ejected.clone(),
        );
        registry.register(
            "faults_delayed",
            "Requests delayed by fault injection",
            metrics.faults_delayed.clone(),
        );
        registry.register(
            "faults_aborted",
            "Requests aborted by fault injection",
            metrics.faults_aborted.clone(),
        );
        registry.register(
            "mirrored_requests",
            "Request copies sent to a mirror",
            metrics.mirrored.clone(),
        );
        registry.register(
            "mirror_dropped",
            "Request copies not sent because too many were in flight",
            metrics.mirrors_dropped.clone(),
        );
        registry.register(
            "mirror_skipped",
            "Request copies not sent because the request body could not be copied (over the 64 KiB limit, or never completed)",
            metrics.mirrors_skipped.clone(),
        );
        metrics
    }

    /// A retry was sent.
    pub fn retry(&self, service: &Arc<str>, protocol: Protocol, reason: RetryReason) {
        self.retries
            .get_or_create(&RetryLabels {
                destination_service: service.clone(),
                request_protocol: protocol,
                reason,
            })
            .inc();
    }

    /// A retry was wanted but refused by the budget.
    pub fn retry_refused(&self, service: &Arc<str>, protocol: Protocol) {
        self.retries_refused
            .get_or_create(&service_labels(service, protocol))
            .inc();
    }

    /// An endpoint of `cluster` was ejected.
    pub fn ejection(&self, service: &str, cluster: &Arc<str>, reason: EjectionReason) {
        self.ejections
            .get_or_create(&EjectionLabels {
                destination_service: Arc::from(service),
                cluster: cluster.clone(),
                reason,
            })
            .inc();
    }

    /// How many endpoints of `cluster` are ejected now.
    pub fn set_ejected(&self, service: &str, cluster: &Arc<str>, ejected: usize) {
        let labels = EjectedLabels {
            destination_service: Arc::from(service),
            cluster: cluster.clone(),
        };
        // A cluster that never had an ejection gets no series (every cluster would otherwise
        // export a zero).
        if ejected == 0 && self.ejected.get(&labels).is_none() {
            return;
        }
        self.ejected
            .get_or_create(&labels)
            .set(i64::try_from(ejected).unwrap_or(i64::MAX));
    }

    /// A request was delayed by fault injection.
    pub fn fault_delayed(&self, service: &Arc<str>, protocol: Protocol) {
        self.faults_delayed
            .get_or_create(&service_labels(service, protocol))
            .inc();
    }

    /// A request was aborted by fault injection.
    pub fn fault_aborted(&self, service: &Arc<str>, protocol: Protocol) {
        self.faults_aborted
            .get_or_create(&service_labels(service, protocol))
            .inc();
    }

    /// A copy went to a mirror.
    pub fn mirrored(&self, service: &Arc<str>, protocol: Protocol) {
        self.mirrored
            .get_or_create(&service_labels(service, protocol))
            .inc();
    }

    /// A copy was dropped (too many in flight).
    pub fn mirror_dropped(&self, service: &Arc<str>, protocol: Protocol) {
        self.mirrors_dropped
            .get_or_create(&service_labels(service, protocol))
            .inc();
    }
}

// === impl ResilienceMetrics (gRPC/HTTP mirrors) ===

impl ResilienceMetrics {
    /// A copy was not sent: the request body could not be copied.
    pub fn mirror_skipped(&self, service: &Arc<str>, protocol: Protocol) {
        self.mirrors_skipped
            .get_or_create(&service_labels(service, protocol))
            .inc();
    }
}

fn service_labels(service: &Arc<str>, protocol: Protocol) -> ServiceLabels {
    ServiceLabels {
        destination_service: service.clone(),
        request_protocol: protocol,
    }
}
