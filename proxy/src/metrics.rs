//! The proxy's metrics (DESIGN.md §7): Istio's standard request metrics, so Istio dashboards and
//! Kiali work on Dubbo traffic, and `causeway_proxy_*` internals.
//!
//! Every label value is bounded: services, versions and workloads come from configuration,
//! methods only from the provider's advertised list (else `other`), and flags, protocols and
//! error kinds are enums. No endpoint address is ever a label.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Istio's request duration buckets, in milliseconds.
const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Istio's request/response size buckets, in bytes (1 to 10^8).
const SIZE_BUCKETS: [f64; 9] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8];

/// Who reports (this proxy sits on the caller's side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reporter {
    /// The caller's sidecar or egress proxy.
    Source,
}

impl EncodeLabelValue for Reporter {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Self::Source => "source",
        })
    }
}

/// The protocol of a request or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Dubbo 2.
    Dubbo,
    /// Thrift (any transport and protocol).
    Thrift,
    /// Not detected (`auto` listener connections no protocol matched; never a request label).
    Unknown,
    /// gRPC (HTTP/2 with `application/grpc`).
    Grpc,
    /// HTTP/1.1 or HTTP/2 that is not gRPC.
    Http,
}

impl EncodeLabelValue for Protocol {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Self::Dubbo => "dubbo",
            Self::Thrift => "thrift",
            Self::Unknown => "unknown",
            Self::Grpc => "grpc",
            Self::Http => "http",
        })
    }
}

/// Envoy's response flags, as Istio reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseFlags {
    /// `-`: none; the upstream answered.
    None,
    /// `NR`: no route for the request.
    NoRoute,
    /// `UH`: no healthy upstream.
    NoHealthyUpstream,
    /// `UF`: the upstream connection could not be opened.
    UpstreamConnectFailure,
    /// `UC`: the upstream connection closed with the request in flight.
    UpstreamConnectionTermination,
    /// `UT`: the upstream did not answer in time.
    UpstreamTimeout,
    /// `UO`: circuit breaker overflow.
    UpstreamOverflow,
    /// `DPE`: the caller's request could not be decoded.
    DownstreamProtocolError,
    /// `DC`: the caller went away before the response was complete.
    DownstreamConnectionTermination,
    /// `RL`: refused by the local rate limit.
    RateLimited,
    /// `FI`: fault injection aborted the request.
    FaultInjected,
    /// `URX`: the answer is the last attempt's; retries were wanted but exhausted (attempt
    /// limit or retry budget).
    UpstreamRetryLimitExceeded,
}

impl ResponseFlags {
    /// Envoy's short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "-",
            Self::NoRoute => "NR",
            Self::NoHealthyUpstream => "UH",
            Self::UpstreamConnectFailure => "UF",
            Self::UpstreamConnectionTermination => "UC",
            Self::UpstreamTimeout => "UT",
            Self::UpstreamOverflow => "UO",
            Self::DownstreamProtocolError => "DPE",
            Self::DownstreamConnectionTermination => "DC",
            Self::RateLimited => "RL",
            Self::FaultInjected => "FI",
            Self::UpstreamRetryLimitExceeded => "URX",
        }
    }
}

impl EncodeLabelValue for ResponseFlags {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// Labels of the `istio_*` request metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// Always `source` here.
    pub reporter: Reporter,
    /// The configured workload of this proxy.
    pub source_workload: Arc<str>,
    /// The mesh host.
    pub destination_service: Arc<str>,
    /// The endpoint's `app` label, else `unknown`.
    pub destination_workload: Arc<str>,
    /// The endpoint's `version` label, else `unknown`.
    pub destination_version: Arc<str>,
    /// `dubbo`.
    pub request_protocol: Protocol,
    /// The Dubbo status number (`20` OK, `60`, `70`, ...).
    pub response_code: Arc<str>,
    /// Empty for Dubbo.
    pub grpc_response_status: Arc<str>,
    /// Why the proxy answered itself, `-` if it did not.
    pub response_flags: ResponseFlags,
    /// An advertised method, or `other`.
    pub request_method: Arc<str>,
    /// The Dubbo interface (only configured ones), or `unknown`.
    pub destination_interface: Arc<str>,
}

/// Labels of `causeway_proxy_upstream_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// The mesh host.
    pub destination_service: Arc<str>,
    /// The endpoint's locality, `region/zone/subzone`.
    pub destination_locality: Arc<str>,
    /// The endpoint's failover priority for this proxy, `0` its own tier.
    pub priority: Arc<str>,
}

/// Direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Callers connecting to a listener.
    Downstream,
    /// The proxy connecting to providers.
    Upstream,
}

impl EncodeLabelValue for Direction {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Self::Downstream => "downstream",
            Self::Upstream => "upstream",
        })
    }
}

/// Labels of connection metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// The protocol.
    pub protocol: Protocol,
    /// Callers or providers.
    pub direction: Direction,
}

/// Kinds of bad input from callers or providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolErrorKind {
    /// Not a Dubbo frame (wrong magic, negative length): the connection is closed.
    BadFrame,
    /// A body over the limit: answered with BAD_REQUEST, then the connection is closed.
    FrameTooLarge,
    /// A request whose body cannot be read: answered with BAD_REQUEST.
    BadRequest,
    /// A body in a serialization the proxy cannot route: answered with BAD_REQUEST.
    UnsupportedSerialization,
    /// A provider response for an unknown request id: dropped.
    UnknownResponse,
    /// A connection whose first bytes match no protocol the listener speaks: closed.
    UnknownProtocol,
}

impl EncodeLabelValue for ProtocolErrorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Self::BadFrame => "bad_frame",
            Self::FrameTooLarge => "frame_too_large",
            Self::BadRequest => "bad_request",
            Self::UnsupportedSerialization => "unsupported_serialization",
            Self::UnknownResponse => "unknown_response",
            Self::UnknownProtocol => "unknown_protocol",
        })
    }
}

/// Labels of protocol error counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProtocolErrorLabels {
    /// The protocol.
    pub protocol: Protocol,
    /// Callers or providers.
    pub direction: Direction,
    /// What was wrong.
    pub kind: ProtocolErrorKind,
}

/// Labels of per-cluster internals (cluster names come from configuration).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClusterLabels {
    /// `outbound|<port>|<subset>|<host>`.
    pub cluster: Arc<str>,
}

/// Outcome of a configuration reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReloadResult {
    /// Valid and in force.
    Accepted,
    /// Invalid; the previous configuration stays.
    Rejected,
}

impl EncodeLabelValue for ReloadResult {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        })
    }
}

/// Labels of reload counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReloadLabels {
    /// The outcome.
    pub result: ReloadResult,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the proxy, registered in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily<RequestLabels>,
    request_bytes: HistogramFamily<RequestLabels>,
    response_bytes: HistogramFamily<RequestLabels>,
    connections: Family<ConnectionLabels, Counter>,
    active_connections: Family<ConnectionLabels, Gauge>,
    protocol_errors: Family<ProtocolErrorLabels, Counter>,
    connect_failures: Family<ClusterLabels, Counter>,
    breaker_overflow: Family<crate::resilience::breaker::OverflowLabels, Counter>,
    readonly_events: Counter,
    upstream_in_flight: Gauge,
    upstream_requests: Family<UpstreamLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    xds_connected: Gauge,
    admissions: crate::isolation::Admissions,
    spans: crate::spans::Spans,
    /// Retries, outlier ejections, faults and mirrors.
    pub resilience: crate::resilience::ResilienceMetrics,
    /// The four request series of every label set seen, found with one cheap hash per request
    /// instead of four SipHash lookups (one per family); bounded like the labels themselves.
    request_series: Mutex<crate::series_cache::SeriesCache<RequestSeries>>,
}

/// A series remembered by the thing it counts (an endpoint of a routing snapshot), so the
/// request path increments it without hashing its labels into the family's map on every
/// request. It remembers the series of one service: an endpoint belongs to one host's cluster, so
/// another service only shows up for a mismatch, which falls back to the family.
#[derive(Debug, Clone, Default)]
pub struct SeriesHandle(Arc<OnceLock<(Arc<str>, Counter)>>);

impl SeriesHandle {
    /// The series remembered for `service`.
    pub fn get(&self, service: &Arc<str>) -> Option<&Counter> {
        self.0
            .get()
            .filter(|(known, _)| Arc::ptr_eq(known, service) || known == service)
            .map(|(_, counter)| counter)
    }

    /// Remembers `counter` as `service`'s series (the first one set stays).
    pub fn set(&self, service: &Arc<str>, counter: Counter) {
        let _ = self.0.set((service.clone(), counter));
    }
}

/// Equal whatever they remember: a cache is not part of the labels' value.
impl PartialEq for SeriesHandle {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SeriesHandle {}

/// The series one finished request updates.
#[derive(Debug)]
struct RequestSeries {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

// === impl Metrics ===

impl Metrics {
    /// All metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: HistogramFamily<RequestLabels> =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS_MS));
        let request_bytes: HistogramFamily<RequestLabels> =
            Family::new_with_constructor(|| Histogram::new(SIZE_BUCKETS));
        let response_bytes: HistogramFamily<RequestLabels> =
            Family::new_with_constructor(|| Histogram::new(SIZE_BUCKETS));
        registry.register(
            "istio_requests",
            "Requests, by Istio's standard labels",
            requests.clone(),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds",
            duration.clone(),
        );
        registry.register(
            "istio_request_bytes",
            "Request sizes in bytes",
            request_bytes.clone(),
        );
        registry.register(
            "istio_response_bytes",
            "Response sizes in bytes",
            response_bytes.clone(),
        );
        let connections = Family::default();
        let active_connections = Family::default();
        let protocol_errors = Family::default();
        let connect_failures = Family::default();
        let breaker_overflow = Family::default();
        let readonly_events = Counter::default();
        let upstream_in_flight = Gauge::default();
        let reloads = Family::default();
        let internal = registry.sub_registry_with_prefix("causeway_proxy");
        internal.register("connections", "Connections opened", connections.clone());
        internal.register(
            "active_connections",
            "Connections open now",
            active_connections.clone(),
        );
        internal.register(
            "protocol_errors",
            "Malformed or unroutable frames from callers or providers",
            protocol_errors.clone(),
        );
        internal.register(
            "upstream_connect_failures",
            "Upstream connections that could not be opened",
            connect_failures.clone(),
        );
        internal.register(
            "upstream_overflow",
            "Requests refused by a cluster's circuit breaker at a routing priority (max requests, pending requests or connections)",
            breaker_overflow.clone(),
        );
        internal.register(
            "upstream_readonly_events",
            "READONLY events from providers (the endpoint is drained)",
            readonly_events.clone(),
        );
        internal.register(
            "upstream_requests_in_flight",
            "Requests sent to providers and not answered yet",
            upstream_in_flight.clone(),
        );
        let upstream_requests = Family::default();
        internal.register(
            "upstream_requests",
            "Requests sent to providers (each attempt), by the provider's locality and failover priority",
            upstream_requests.clone(),
        );
        internal.register("config_reloads", "Configuration reloads", reloads.clone());
        let xds_connected = Gauge::default();
        internal.register(
            "xds_connected",
            "1 while the xDS stream to the bridge is open",
            xds_connected.clone(),
        );
        // Admission accounting lives with the metrics: its in-flight counts are the class gauges,
        // and every protocol's request path already holds the metrics.
        let admissions = crate::isolation::Admissions::default();
        admissions.register(internal);
        let resilience = crate::resilience::ResilienceMetrics::register(internal);
        // The span recorder too: every protocol path completes its requests here.
        let spans = crate::spans::Spans::default();
        spans.register(internal);
        Self {
            registry,
            requests,
            duration,
            request_bytes,
            response_bytes,
            connections,
            active_connections,
            protocol_errors,
            connect_failures,
            breaker_overflow,
            readonly_events,
            upstream_in_flight,
            upstream_requests,
            reloads,
            xds_connected,
            admissions,
            spans,
            resilience,
            request_series: Mutex::default(),
        }
    }

    /// Admission state (traffic classes, local rate limits) and its metrics.
    pub fn admissions(&self) -> &crate::isolation::Admissions {
        &self.admissions
    }

    /// The span recorder (OTLP export) and its counters.
    pub fn spans(&self) -> &crate::spans::Spans {
        &self.spans
    }

    /// OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// One finished request (answered by a provider or by the proxy).
    pub fn request(
        &self,
        labels: &RequestLabels,
        duration_ms: f64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let mut cache = self
            .request_series
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let series = cache.get_or_insert_with(labels, || RequestSeries {
            requests: self.requests.get_or_create(labels).clone(),
            duration: self.duration.get_or_create(labels).clone(),
            request_bytes: self.request_bytes.get_or_create(labels).clone(),
            response_bytes: self.response_bytes.get_or_create(labels).clone(),
        });
        series.requests.inc();
        series.duration.observe(duration_ms);
        // Sizes are far below 2^53, so the conversion is exact.
        series.request_bytes.observe(request_bytes as f64);
        series.response_bytes.observe(response_bytes as f64);
    }

    /// A request sent to (or about to be sent to) an endpoint of `service` with `endpoint` labels.
    pub fn upstream_request(&self, service: &Arc<str>, endpoint: &crate::routing::EndpointLabels) {
        if let Some(counter) = endpoint.upstream_series.get(service) {
            counter.inc();
            return;
        }
        let counter = self
            .upstream_requests
            .get_or_create(&UpstreamLabels {
                destination_service: service.clone(),
                destination_locality: endpoint.locality.clone(),
                priority: endpoint.priority.clone(),
            })
            .clone();
        counter.inc();
        endpoint.upstream_series.set(service, counter);
    }

    /// A connection opened; the returned guard counts it as active until dropped.
    pub fn connection(&self, protocol: Protocol, direction: Direction) -> ConnectionGuard {
        let labels = ConnectionLabels {
            protocol,
            direction,
        };
        self.connections.get_or_create(&labels).inc();
        let gauge = self.active_connections.get_or_create(&labels).clone();
        gauge.inc();
        ConnectionGuard { gauge }
    }

    /// Bad input.
    pub fn protocol_error(
        &self,
        protocol: Protocol,
        direction: Direction,
        kind: ProtocolErrorKind,
    ) {
        self.protocol_errors
            .get_or_create(&ProtocolErrorLabels {
                protocol,
                direction,
                kind,
            })
            .inc();
    }

    /// An upstream connection attempt failed.
    pub fn connect_failure(&self, cluster: &Arc<str>) {
        self.connect_failures
            .get_or_create(&ClusterLabels {
                cluster: cluster.clone(),
            })
            .inc();
    }

    /// The circuit breaker of `cluster` at `priority` refused a request.
    pub fn overflow(&self, cluster: &Arc<str>, priority: crate::routing::Priority) {
        self.breaker_overflow
            .get_or_create(&crate::resilience::breaker::OverflowLabels {
                cluster: cluster.clone(),
                priority,
            })
            .inc();
    }

    /// A provider sent READONLY.
    pub fn readonly_event(&self) {
        self.readonly_events.inc();
    }

    /// The upstream in-flight gauge.
    pub fn upstream_in_flight(&self) -> &Gauge {
        &self.upstream_in_flight
    }

    /// Records whether the xDS stream is open.
    pub fn xds_connected(&self, connected: bool) {
        self.xds_connected.set(i64::from(connected));
    }

    /// A configuration reload finished.
    pub fn config_reload(&self, accepted: bool) {
        let result = if accepted {
            ReloadResult::Accepted
        } else {
            ReloadResult::Rejected
        };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }
}

/// Keeps a connection counted as active.
#[derive(Debug)]
pub struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// An HTTP status or gRPC code as a label value.
pub fn number_label(number: u32) -> Arc<str> {
    Arc::from(number.to_string())
}

/// A Dubbo status as the `response_code` label value.
pub fn status_label(status: u8) -> Arc<str> {
    // Made once: every request needs one, and an allocation each was measurable.
    static LABELS: OnceLock<Vec<Arc<str>>> = OnceLock::new();
    let labels = LABELS.get_or_init(|| {
        (0..=u8::MAX)
            .map(|status| {
                let mut text = String::with_capacity(3);
                let _ = write!(text, "{status}");
                Arc::from(text)
            })
            .collect()
    });
    labels
        .get(usize::from(status))
        .cloned()
        .unwrap_or_else(|| Arc::from(""))
}
