//! The proxy's own spans: one CLIENT span per forwarded request that carries a sampled trace
//! context, exported over OTLP/HTTP when an endpoint is configured (`otlp.endpoint`,
//! `--otlp-endpoint`).
//!
//! The span is the hop [`crate::trace_context`] already puts on the forwarded request: same trace,
//! the proxy's span id (the provider's parent), the caller's span as its parent. The request path
//! only fills a [`SpanStart`] when it routes and hands the finished span to a bounded queue with
//! `try_send` when it completes (next to the request metrics), so tracing never blocks or slows a
//! call: a full queue drops the span and counts it. [`export`] batches the queue on a background
//! task and posts it ([`otlp`] has the wire format). Unsampled traces and requests without trace
//! context record nothing; without an endpoint nothing is recorded at all.

pub mod export;
pub mod otlp;

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use causeway_protocols::http::{SpanId, TraceId};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::metrics::{Protocol, RequestLabels, ResponseFlags};
use crate::trace_context::Hop;

/// Why spans were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The queue to the exporter was full (the collector is slower than the traffic).
    QueueFull,
    /// The collector refused the batch or could not be reached.
    ExportFailed,
}

impl EncodeLabelValue for DropReason {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Self::QueueFull => "queue_full",
            Self::ExportFailed => "export_failed",
        })
    }
}

/// Labels of `causeway_proxy_spans_dropped_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DropLabels {
    /// Why.
    pub reason: DropReason,
}

/// The span recorder every protocol path holds (through [`crate::metrics::Metrics`]) and its
/// counters. Disabled until [`Spans::enable`] gives it the exporter's queue.
#[derive(Debug, Default)]
pub struct Spans {
    queue: OnceLock<mpsc::Sender<FinishedSpan>>,
    exported: Counter,
    dropped: Family<DropLabels, Counter>,
}

/// What the request path keeps of its span while the request is in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanStart {
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    flags: u8,
    started: SystemTime,
    cluster: Arc<str>,
}

/// A span ready for export.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    start: SpanStart,
    ended: SystemTime,
    labels: RequestLabels,
}

// === impl Spans ===

impl Spans {
    /// Registers the span counters under `registry` (the `causeway_proxy` prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "spans_exported",
            "Spans the OTLP collector accepted",
            self.exported.clone(),
        );
        registry.register(
            "spans_dropped",
            "Spans not exported: the exporter queue was full, or the collector failed the batch",
            self.dropped.clone(),
        );
    }

    /// Starts recording into `queue`; false if recording was already enabled.
    pub fn enable(&self, queue: mpsc::Sender<FinishedSpan>) -> bool {
        self.queue.set(queue).is_ok()
    }

    /// Whether an exporter is configured.
    pub fn enabled(&self) -> bool {
        self.queue.get().is_some()
    }

    /// The span for a request forwarded to `cluster` with `hop`, if it is to be recorded: an
    /// exporter is configured and the trace is sampled.
    pub fn start(&self, hop: Option<&Hop>, cluster: &str) -> Option<SpanStart> {
        let hop = hop?;
        if !self.enabled() || !hop.traceparent.sampled() {
            return None;
        }
        Some(SpanStart {
            trace_id: hop.traceparent.trace_id,
            span_id: hop.span_id(),
            parent: hop.caller_span,
            flags: hop.traceparent.flags,
            started: SystemTime::now(),
            cluster: Arc::from(cluster),
        })
    }

    /// The request ended with `labels` (response code and flags filled in): queue its span
    /// without waiting, or drop and count it when the queue is full.
    pub fn finish(&self, start: SpanStart, labels: &RequestLabels) {
        let Some(queue) = self.queue.get() else {
            return;
        };
        let span = FinishedSpan {
            start,
            ended: SystemTime::now(),
            labels: labels.clone(),
        };
        if queue.try_send(span).is_err() {
            self.dropped(DropReason::QueueFull, 1);
        }
    }

    /// Counts spans the collector accepted.
    pub fn exported(&self, count: usize) {
        self.exported.inc_by(count as u64);
    }

    /// Counts dropped spans.
    pub fn dropped(&self, reason: DropReason, count: usize) {
        self.dropped
            .get_or_create(&DropLabels { reason })
            .inc_by(count as u64);
    }
}

// === impl FinishedSpan ===

impl FinishedSpan {
    /// Whether the request failed, by the same rule as the dashboards and SLO recording rules:
    /// Dubbo status other than 20, Thrift reply code other than 0, gRPC status other than 0,
    /// HTTP 5xx or no response.
    pub fn failed(&self) -> bool {
        let labels = &self.labels;
        let code = &*labels.response_code;
        match labels.request_protocol {
            Protocol::Dubbo => code != "20",
            Protocol::Thrift => code != "0",
            Protocol::Grpc => &*labels.grpc_response_status != "0",
            Protocol::Http | Protocol::Unknown => code == "0" || code.starts_with('5'),
        }
    }

    /// The OTLP message for this span.
    pub fn to_otlp(&self) -> otlp::Span {
        let labels = &self.labels;
        let protocol = match labels.request_protocol {
            Protocol::Dubbo => Some("dubbo"),
            Protocol::Thrift => Some("thrift"),
            Protocol::Grpc => Some("grpc"),
            Protocol::Http | Protocol::Unknown => None,
        };
        let mut attributes = Vec::with_capacity(10);
        let name = match protocol {
            Some(system) => {
                attributes.push(otlp::string("rpc.system", system));
                attributes.push(otlp::string("rpc.service", &*labels.destination_interface));
                attributes.push(otlp::string("rpc.method", &*labels.request_method));
                format!("{}/{}", labels.destination_interface, labels.request_method)
            }
            None => {
                attributes.push(otlp::string("http.request.method", &*labels.request_method));
                format!("{} {}", labels.request_method, labels.destination_service)
            }
        };
        match labels.request_protocol {
            Protocol::Grpc => {
                if let Ok(code) = labels.grpc_response_status.parse::<i64>() {
                    attributes.push(otlp::int("rpc.grpc.status_code", code));
                }
            }
            Protocol::Http | Protocol::Unknown => {
                if let Ok(code) = labels.response_code.parse::<i64>() {
                    attributes.push(otlp::int("http.response.status_code", code));
                }
            }
            Protocol::Dubbo | Protocol::Thrift => {}
        }
        attributes.extend([
            otlp::string("causeway.response_code", &*labels.response_code),
            otlp::string("causeway.response_flags", labels.response_flags.as_str()),
            otlp::string("causeway.destination.cluster", &*self.start.cluster),
            otlp::string("causeway.destination.service", &*labels.destination_service),
            otlp::string("causeway.destination.version", &*labels.destination_version),
        ]);
        let status = if self.failed() {
            let why = if labels.response_flags == ResponseFlags::None {
                format!("response code {}", labels.response_code)
            } else {
                format!("answered by the proxy ({})", labels.response_flags.as_str())
            };
            otlp::Status {
                message: why,
                code: otlp::STATUS_CODE_ERROR,
            }
        } else {
            otlp::Status {
                message: String::new(),
                code: otlp::STATUS_CODE_UNSET,
            }
        };
        otlp::Span {
            trace_id: self.start.trace_id.0.to_vec(),
            span_id: self.start.span_id.0.to_vec(),
            parent_span_id: self
                .start
                .parent
                .map(|parent| parent.0.to_vec())
                .unwrap_or_default(),
            name,
            kind: otlp::SPAN_KIND_CLIENT,
            start_time_unix_nano: unix_nanos(self.start.started),
            end_time_unix_nano: unix_nanos(self.ended.max(self.start.started)),
            attributes,
            status: Some(status),
            flags: u32::from(self.start.flags),
        }
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Request labels for tests of span recording.
#[cfg(test)]
pub(crate) fn test_labels(protocol: Protocol, code: &str, grpc: &str) -> RequestLabels {
    RequestLabels {
        reporter: crate::metrics::Reporter::Source,
        source_workload: Arc::from("caller"),
        destination_service: Arc::from("demo.greeter"),
        destination_workload: Arc::from("greeter"),
        destination_version: Arc::from("v1"),
        request_protocol: protocol,
        response_code: Arc::from(code),
        grpc_response_status: Arc::from(grpc),
        response_flags: ResponseFlags::None,
        request_method: Arc::from("greet"),
        destination_interface: Arc::from("demo.Greeter"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn hop(traceparent: &str) -> Hop {
        let map = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        Hop::from_incoming(|name| map.get(name).map(String::as_str)).unwrap()
    }

    #[test]
    fn nothing_is_recorded_without_an_exporter_or_a_sampled_trace() {
        let spans = Spans::default();
        assert_eq!(spans.start(Some(&hop(CALLER)), "c"), None, "no exporter");
        let (tx, _rx) = mpsc::channel(4);
        assert!(spans.enable(tx));
        assert_eq!(spans.start(None, "c"), None, "no trace context");
        let unsampled = CALLER.replace("-01", "-00");
        assert_eq!(spans.start(Some(&hop(&unsampled)), "c"), None);
        let start = spans.start(Some(&hop(CALLER)), "c").unwrap();
        assert_eq!(
            start.parent.map(|p| p.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let spans = Spans::default();
        let (tx, mut rx) = mpsc::channel(2);
        spans.enable(tx);
        let hop = hop(CALLER);
        for _ in 0..5 {
            let start = spans.start(Some(&hop), "c").unwrap();
            spans.finish(start, &test_labels(Protocol::Dubbo, "20", ""));
        }
        let dropped = spans
            .dropped
            .get_or_create(&DropLabels {
                reason: DropReason::QueueFull,
            })
            .get();
        assert_eq!(dropped, 3);
        assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn the_otlp_span_carries_ids_kind_status_and_attributes() {
        let spans = Spans::default();
        let (tx, mut rx) = mpsc::channel(4);
        spans.enable(tx);
        let hop = hop(CALLER);
        let start = spans
            .start(Some(&hop), "outbound|50051|v1|demo.greeter")
            .unwrap();
        spans.finish(start, &test_labels(Protocol::Grpc, "200", "14"));
        let span = rx.try_recv().unwrap();
        assert!(span.failed());
        let otlp = span.to_otlp();
        assert_eq!(otlp.trace_id, hop.traceparent.trace_id.0);
        assert_eq!(otlp.span_id, hop.span_id().0);
        assert_eq!(otlp.parent_span_id, hop.caller_span.unwrap().0);
        assert_eq!(otlp.kind, otlp::SPAN_KIND_CLIENT);
        assert_eq!(otlp.name, "demo.Greeter/greet");
        assert!(otlp.end_time_unix_nano >= otlp.start_time_unix_nano);
        assert_eq!(otlp.status.unwrap().code, otlp::STATUS_CODE_ERROR);
        let attribute = |key: &str| {
            otlp.attributes
                .iter()
                .find(|a| a.key == key)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(
            attribute("rpc.system"),
            Some(otlp::Value::StringValue("grpc".into()))
        );
        assert_eq!(
            attribute("rpc.grpc.status_code"),
            Some(otlp::Value::IntValue(14))
        );
        assert_eq!(
            attribute("causeway.destination.cluster"),
            Some(otlp::Value::StringValue(
                "outbound|50051|v1|demo.greeter".into()
            ))
        );
        let ok = FinishedSpan {
            labels: test_labels(Protocol::Dubbo, "20", ""),
            ..span
        };
        assert!(!ok.failed());
        assert_eq!(ok.to_otlp().status.unwrap().code, otlp::STATUS_CODE_UNSET);
    }
}
