//! The OTLP/HTTP exporter: a background task that drains the span queue into batches and posts
//! each as `application/x-protobuf` to `{endpoint}/v1/traces`.
//!
//! A batch goes when it reaches [`ExportSettings::max_batch`] spans or when
//! [`ExportSettings::flush_interval`] passes with spans waiting. A batch the collector refuses or
//! cannot take (down, slow, non-2xx) is dropped and counted (`reason="export_failed"`); the next
//! batch tries again on a fresh connection, so a collector that comes back is used at once and a
//! dead one costs one failed connect per interval, never the request path.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use super::{DropReason, FinishedSpan, otlp};
use crate::metrics::Metrics;

/// Spans waiting for the exporter, at most; more are dropped and counted.
pub const DEFAULT_QUEUE: usize = 4096;
/// Spans per request to the collector, at most.
pub const DEFAULT_MAX_BATCH: usize = 512;
/// How long a span waits for its batch to fill, at most.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long one export may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSettings {
    /// The collector: `http://host[:port][/base]`; spans go to `{base}/v1/traces`.
    pub endpoint: Endpoint,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Queue capacity.
    pub queue: usize,
    /// Spans per batch.
    pub max_batch: usize,
    /// Longest wait for a batch to fill.
    pub flush_interval: Duration,
}

/// A parsed OTLP/HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` to connect to and send as `Host`.
    pub authority: String,
    /// The request path, `/v1/traces` under the endpoint's own path.
    pub path: String,
}

/// Why an endpoint is not usable, or why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The endpoint is not an `http://` URL.
    #[error("`{0}` is not an http:// URL (OTLP/HTTP without TLS), e.g. http://127.0.0.1:4318")]
    BadEndpoint(String),
    /// Connecting or talking to the collector failed.
    #[error("cannot reach the OTLP collector at {authority}: {message}")]
    Unreachable {
        /// Where.
        authority: String,
        /// What went wrong.
        message: String,
    },
    /// The collector answered with an error status.
    #[error("the OTLP collector answered {status}")]
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// No answer in time.
    #[error("the OTLP collector did not answer within {0:?}")]
    Timeout(Duration),
}

// === impl Endpoint ===

impl Endpoint {
    /// Parses `http://host[:port][/base]` (port 4318, OTLP/HTTP's, when absent).
    pub fn parse(url: &str) -> Result<Endpoint, ExportError> {
        let bad = || ExportError::BadEndpoint(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        let authority = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:4318", authority.host()),
        };
        let base = uri.path().trim_end_matches('/');
        Ok(Endpoint {
            authority,
            path: format!("{base}/v1/traces"),
        })
    }
}

/// Spans collected for the next request.
#[derive(Debug)]
pub struct Batcher {
    spans: Vec<FinishedSpan>,
    max: usize,
}

// === impl Batcher ===

impl Batcher {
    /// An empty batcher sending `max` spans at most per batch.
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            spans: Vec::with_capacity(max),
            max,
        }
    }

    /// Adds a span; returns the batch when it is full.
    pub fn push(&mut self, span: FinishedSpan) -> Option<Vec<FinishedSpan>> {
        self.spans.push(span);
        (self.spans.len() >= self.max).then(|| self.take())
    }

    /// Whatever is waiting (possibly nothing).
    pub fn take(&mut self) -> Vec<FinishedSpan> {
        std::mem::replace(&mut self.spans, Vec::with_capacity(self.max))
    }

    /// Spans waiting.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// Enables span recording on `metrics` and runs the exporter until the proxy stops.
pub fn start(settings: ExportSettings, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    let (queue, spans) = mpsc::channel(settings.queue.max(1));
    metrics.spans().enable(queue);
    tokio::spawn(run(settings, spans, metrics))
}

/// The exporter loop: batch, post, count.
async fn run(
    settings: ExportSettings,
    mut queue: mpsc::Receiver<FinishedSpan>,
    metrics: Arc<Metrics>,
) {
    let mut batcher = Batcher::new(settings.max_batch);
    let mut tick = tokio::time::interval(settings.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    while open {
        let batch = tokio::select! {
            received = queue.recv() => match received {
                Some(span) => batcher.push(span),
                // Every sender is gone (the metrics were dropped): send what is left and stop.
                None => {
                    open = false;
                    Some(batcher.take())
                }
            },
            _ = tick.tick() => Some(batcher.take()),
        };
        let Some(batch) = batch.filter(|batch| !batch.is_empty()) else {
            continue;
        };
        let count = batch.len();
        match send(&settings, &batch).await {
            Ok(()) => metrics.spans().exported(count),
            Err(error) => {
                tracing::warn!(%error, spans = count, "span batch dropped");
                metrics.spans().dropped(DropReason::ExportFailed, count);
            }
        }
    }
}

/// Posts one batch on a new HTTP/1.1 connection (one a second at most: not worth pooling).
async fn send(settings: &ExportSettings, batch: &[FinishedSpan]) -> Result<(), ExportError> {
    let body = Bytes::from(otlp::encode(&settings.service_name, batch));
    let endpoint = &settings.endpoint;
    let attempt = async {
        let unreachable = |message: String| ExportError::Unreachable {
            authority: endpoint.authority.clone(),
            message,
        };
        let stream = tokio::net::TcpStream::connect(&endpoint.authority)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        // The connection task ends with the exchange (or with the timeout dropping it).
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = Request::post(endpoint.path.as_str())
            .header(header::HOST, endpoint.authority.as_str())
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body))
            .map_err(|e| unreachable(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        // Read the (small) answer so the collector sees a clean exchange.
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(ExportError::Refused {
                status: status.as_u16(),
            })
        }
    };
    tokio::time::timeout(EXPORT_TIMEOUT, attempt)
        .await
        .map_err(|_| ExportError::Timeout(EXPORT_TIMEOUT))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(spans: &super::super::Spans) -> FinishedSpan {
        let hop = crate::trace_context::Hop::new_root(true);
        let (tx, mut rx) = mpsc::channel(1);
        let _ = spans.enable(tx);
        let start = spans.start(Some(&hop), "c").unwrap();
        let labels = super::super::test_labels(crate::metrics::Protocol::Dubbo, "20", "");
        spans.finish(start, &labels);
        rx.try_recv().unwrap()
    }

    #[test]
    fn endpoints_need_http_and_get_the_traces_path() {
        let plain = Endpoint::parse("http://127.0.0.1:4318").unwrap();
        assert_eq!(plain.authority, "127.0.0.1:4318");
        assert_eq!(plain.path, "/v1/traces");
        let based = Endpoint::parse("http://collector/otlp/").unwrap();
        assert_eq!(based.authority, "collector:4318");
        assert_eq!(based.path, "/otlp/v1/traces");
        for bad in ["https://collector:4318", "collector:4318", "", "http://"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn batches_fill_to_the_maximum_and_the_rest_waits_for_the_tick() {
        let spans = super::super::Spans::default();
        let one = span(&spans);
        let mut batcher = Batcher::new(3);
        assert!(batcher.push(one.clone()).is_none());
        assert!(batcher.push(one.clone()).is_none());
        let full = batcher.push(one.clone()).unwrap();
        assert_eq!(full.len(), 3);
        assert!(batcher.is_empty());
        assert!(batcher.push(one).is_none());
        assert_eq!(batcher.len(), 1);
        assert_eq!(batcher.take().len(), 1);
        assert!(batcher.take().is_empty());
    }

    #[tokio::test]
    async fn a_dead_collector_drops_and_counts_the_batch() {
        // A port nothing listens on: bind one, note it, close it.
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let metrics = Arc::new(Metrics::new());
        let settings = ExportSettings {
            endpoint: Endpoint::parse(&format!("http://{address}")).unwrap(),
            service_name: "causeway-proxy".into(),
            queue: 8,
            max_batch: 2,
            flush_interval: Duration::from_millis(20),
        };
        let task = start(settings, metrics.clone());
        let hop = crate::trace_context::Hop::new_root(true);
        for _ in 0..3 {
            let start = metrics.spans().start(Some(&hop), "c").unwrap();
            metrics.spans().finish(
                start,
                &super::super::test_labels(crate::metrics::Protocol::Dubbo, "20", ""),
            );
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = metrics.encode().unwrap();
            if text.contains("causeway_proxy_spans_dropped_total{reason=\"export_failed\"} 3") {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
    }
}
