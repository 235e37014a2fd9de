//! Bodies the proxy streams: [`RequestBody`] forwards the caller's body upstream and counts its
//! bytes; [`ProxyBody`] is every response the caller gets — a provider's body streamed through
//! (its end, or the caller going away, completes the request exactly once: metrics, endpoint
//! load, the HTTP/1.1 connection back to the pool) or a reply of the proxy's own.
//!
//! A route timeout that expires while a provider's body is still streaming ends a gRPC call with
//! `DEADLINE_EXCEEDED` trailers; an HTTP response cannot change its status any more, so it is cut.

use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway_protocols::grpc::{Code, Status};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use prometheus_client::metrics::gauge::Gauge;

use super::labels;
use super::tape::{Recording, Tape};
use super::upstream::UpstreamPool;
use crate::isolation::Permit;
use crate::lb::{Balancer, EndpointState, Verdict};
use crate::metrics::{Metrics, RequestLabels, ResponseFlags};
use crate::resilience::outlier;
use crate::routing::Cluster;

/// The error type of the bodies: whatever the peer's connection reported.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A caller's request body, as the server that read the request hands it over: hyper's
/// HTTP/1.1 server or the proxy's own HTTP/2 server.
#[derive(Debug)]
pub enum CallerBody {
    /// From an HTTP/1.1 caller.
    Http1(Incoming),
    /// From an HTTP/2 caller.
    Http2(super::h2::RecvBody),
}

impl Body for CallerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Http1(inner) => Pin::new(inner).poll_frame(cx).map_err(Into::into),
            Self::Http2(inner) => Pin::new(inner).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Http1(inner) => inner.is_end_stream(),
            Self::Http2(inner) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Http1(inner) => inner.size_hint(),
            Self::Http2(inner) => inner.size_hint(),
        }
    }
}

/// A request body on its way to a provider: the caller's, streamed through, counted and
/// recorded on a [`Tape`] when the request may be retried or mirrored; or a recording replayed.
#[derive(Debug)]
pub struct RequestBody {
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// The caller's body.
    Caller {
        inner: CallerBody,
        bytes: Arc<AtomicU64>,
        tape: Option<Arc<Tape>>,
    },
    /// A recorded body, sent again.
    Replay(Recording),
}

// === impl RequestBody ===

impl RequestBody {
    /// Wraps `inner`, adding what passes to `bytes` and recording it on `tape`.
    pub fn new(inner: CallerBody, bytes: Arc<AtomicU64>, tape: Option<Arc<Tape>>) -> Self {
        Self {
            source: Source::Caller { inner, bytes, tape },
        }
    }

    /// A recorded body, for a retry or a mirror (its bytes were counted when they arrived).
    pub fn replay(recording: Recording) -> Self {
        Self {
            source: Source::Replay(recording),
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Source::Caller {
            tape: Some(tape), ..
        } = &self.source
        {
            // Settled recordings stay as they are; one still recording is cut short.
            tape.abandon();
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let (inner, bytes, tape) = match &mut self.source {
            Source::Replay(recording) => {
                if let Some(chunk) = recording.data.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                return Poll::Ready(recording.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            Source::Caller { inner, bytes, tape } => (inner, bytes, tape),
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if let Some(tape) = tape {
                        tape.data(data);
                    }
                } else if let (Some(trailers), Some(tape)) = (frame.trailers_ref(), tape.as_ref()) {
                    tape.trailers(trailers);
                }
                if inner.is_end_stream()
                    && let Some(tape) = tape
                {
                    tape.complete();
                }
            }
            Poll::Ready(None) => {
                if let Some(tape) = tape {
                    tape.complete();
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(tape) = tape {
                    tape.abandon();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Caller { inner, .. } => inner.is_end_stream(),
            Source::Replay(recording) => recording.data.is_empty() && recording.trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Caller { inner, .. } => inner.size_hint(),
            Source::Replay(recording) => {
                SizeHint::with_exact(recording.data.iter().map(|d| d.len() as u64).sum())
            }
        }
    }
}

/// Load a forwarded request puts on its endpoint and cluster, released once.
#[derive(Debug)]
pub struct InFlight {
    endpoint: Arc<EndpointState>,
    cluster: Arc<AtomicU32>,
    gauge: Gauge,
    /// Time to the response headers: the latency sample for load balancing (a stream's total
    /// length says nothing about the endpoint's speed).
    latency: Option<Duration>,
    /// Where the request's result goes for outlier detection (taken by the first report).
    outlier: Option<(Arc<Balancer>, Arc<Cluster>)>,
}

// === impl InFlight ===

impl InFlight {
    /// Counts a request against `endpoint` and `cluster` (already incremented by the caller's
    /// circuit-breaker check).
    pub fn new(endpoint: Arc<EndpointState>, cluster: Arc<AtomicU32>, gauge: Gauge) -> Self {
        endpoint.start();
        gauge.inc();
        Self {
            endpoint,
            cluster,
            gauge,
            latency: None,
            outlier: None,
        }
    }

    /// Reports this request's result to `cluster`'s outlier detector in `balancer`.
    #[must_use]
    pub fn with_outliers(mut self, balancer: Arc<Balancer>, cluster: Arc<Cluster>) -> Self {
        self.outlier = Some((balancer, cluster));
        self
    }

    /// Tells the outlier detector how the request went (once; later reports are ignored).
    pub fn report(&mut self, verdict: Verdict) {
        if let Some((balancer, cluster)) = self.outlier.take() {
            balancer.report(&cluster, &self.endpoint, verdict, Instant::now());
        }
    }

    /// The provider answered after `latency`.
    pub fn answered(&mut self, latency: Duration) {
        self.latency = Some(latency);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.finish(self.latency);
        self.cluster.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

/// One request's metrics, recorded once when the response ends.
#[derive(Debug)]
pub struct Record {
    /// Where to record.
    pub metrics: Arc<Metrics>,
    /// The labels (response code and flags filled in at the end).
    pub labels: RequestLabels,
    /// When the request arrived.
    pub started: Instant,
    /// Request body bytes seen so far.
    pub request_bytes: Arc<AtomicU64>,
    /// Whether the call is gRPC (its status comes from trailers).
    pub grpc: bool,
    /// The flags of an orderly end: `-`, or `URX` when the response is a last attempt's.
    pub success_flags: ResponseFlags,
    /// The request's traffic-class slot, released with the record (when the response ends).
    pub permit: Option<Permit>,
    /// The proxy's span, recorded with the metrics.
    pub span: Option<crate::spans::SpanStart>,
}

// === impl Record ===

impl Record {
    /// Records the request: `status` the HTTP status, `grpc_status` the gRPC code (gRPC only).
    pub fn finish(
        mut self,
        status: u16,
        grpc_status: Option<u32>,
        flags: ResponseFlags,
        response_bytes: u64,
    ) {
        self.labels.response_code = labels::status(status);
        self.labels.response_flags = if flags == ResponseFlags::None {
            self.success_flags
        } else {
            flags
        };
        if self.grpc {
            // No grpc-status at all: the HTTP status says what happened (gRPC's own mapping).
            let code = grpc_status.unwrap_or_else(|| Code::from_http_status(status).as_u32());
            self.labels.grpc_response_status = labels::grpc_code(code);
        }
        self.metrics.request(
            &self.labels,
            self.started.elapsed().as_secs_f64() * 1000.0,
            self.request_bytes.load(Ordering::Relaxed),
            response_bytes,
        );
        if let Some(span) = self.span.take() {
            self.metrics.spans().finish(span, &self.labels);
        }
    }
}

/// The HTTP/1.1 connection a response arrived on, returned to the pool when it ends.
#[derive(Debug)]
pub struct Reusable {
    /// The pool.
    pub pool: Arc<UpstreamPool>,
    /// The endpoint.
    pub address: SocketAddr,
    /// The connection.
    pub sender: http1::SendRequest<RequestBody>,
}

/// A provider's response body on its way to the caller.
#[derive(Debug)]
struct Streaming {
    inner: Incoming,
    record: Record,
    status: u16,
    grpc_status: Option<u32>,
    response_bytes: u64,
    in_flight: Option<InFlight>,
    reusable: Option<Reusable>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Streaming {
    fn finish(self, flags: ResponseFlags) {
        let Self {
            record,
            status,
            grpc_status,
            response_bytes,
            in_flight,
            reusable,
            ..
        } = self;
        if let Some(mut in_flight) = in_flight {
            let verdict = match (flags, record.grpc) {
                (ResponseFlags::None, true) => outlier::grpc_verdict(
                    grpc_status.unwrap_or_else(|| Code::from_http_status(status).as_u32()),
                ),
                (ResponseFlags::None, false) => outlier::http_verdict(status),
                _ => outlier::local_verdict(flags),
            };
            in_flight.report(verdict);
        }
        if flags == ResponseFlags::None
            && let Some(reusable) = reusable
        {
            reusable.pool.release(reusable.address, reusable.sender);
        }
        record.finish(status, grpc_status, flags, response_bytes);
    }
}

#[derive(Debug)]
enum Kind {
    /// Streaming from the provider.
    Upstream(Box<Streaming>),
    /// The proxy's own reply (already recorded).
    Local(Option<Bytes>),
    /// Complete.
    Done,
}

/// The body of every response the proxy sends.
#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
}

// === impl ProxyBody ===

impl ProxyBody {
    /// A reply of the proxy's own.
    pub fn local(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Local((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// A provider's body; `status` and `headers` are the response's, `deadline` the route's.
    #[allow(clippy::too_many_arguments)]
    pub fn upstream(
        inner: Incoming,
        record: Record,
        status: u16,
        headers: &HeaderMap,
        in_flight: Option<InFlight>,
        reusable: Option<Reusable>,
        deadline: Option<tokio::time::Instant>,
    ) -> Self {
        // Trailers-Only: the status is in the headers.
        let grpc_status = Status::from_headers(headers).map(|s| s.code.as_u32());
        let streaming = Streaming {
            record,
            status,
            grpc_status,
            response_bytes: 0,
            in_flight,
            reusable,
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            inner,
        };
        if streaming.inner.is_end_stream() {
            // Nothing will follow the headers: complete now, so the headers carry END_STREAM.
            streaming.finish(ResponseFlags::None);
            return Self { kind: Kind::Done };
        }
        Self {
            kind: Kind::Upstream(Box::new(streaming)),
        }
    }

    fn complete(&mut self, flags: ResponseFlags) {
        if let Kind::Upstream(streaming) = std::mem::replace(&mut self.kind, Kind::Done) {
            streaming.finish(flags);
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // Dropped before the end: the caller went away (or reset the stream).
        self.complete(ResponseFlags::DownstreamConnectionTermination);
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let streaming = match &mut this.kind {
            Kind::Done => return Poll::Ready(None),
            Kind::Local(bytes) => {
                let next = bytes.take().map(|b| Ok(Frame::data(b)));
                if next.is_none() {
                    this.kind = Kind::Done;
                }
                return Poll::Ready(next);
            }
            Kind::Upstream(streaming) => streaming,
        };
        match Pin::new(&mut streaming.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    streaming.response_bytes += data.len() as u64;
                }
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(status) = Status::from_headers(trailers)
                {
                    streaming.grpc_status = Some(status.code.as_u32());
                }
                if streaming.inner.is_end_stream() {
                    this.complete(ResponseFlags::None);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(None) => {
                this.complete(ResponseFlags::None);
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(error))) => {
                tracing::debug!(%error, "provider response body failed");
                if streaming.record.grpc {
                    // Tell the caller in its protocol instead of resetting the stream.
                    streaming.grpc_status = Some(Code::Unavailable.as_u32());
                    this.complete(ResponseFlags::UpstreamConnectionTermination);
                    let status = Status::new(
                        Code::Unavailable,
                        format!("causeway-proxy: the provider stream failed: {error}"),
                    );
                    return Poll::Ready(Some(Ok(Frame::trailers(status.to_headers()))));
                }
                this.complete(ResponseFlags::UpstreamConnectionTermination);
                return Poll::Ready(Some(Err(Box::new(error))));
            }
            Poll::Pending => {}
        }
        let expired = streaming
            .deadline
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
        if !expired {
            return Poll::Pending;
        }
        if streaming.record.grpc {
            streaming.grpc_status = Some(Code::DeadlineExceeded.as_u32());
            this.complete(ResponseFlags::UpstreamTimeout);
            let status = Status::new(
                Code::DeadlineExceeded,
                "causeway-proxy: the route timeout expired during the response",
            );
            return Poll::Ready(Some(Ok(Frame::trailers(status.to_headers()))));
        }
        this.complete(ResponseFlags::UpstreamTimeout);
        Poll::Ready(Some(Err(
            "causeway-proxy: route timeout during the response".into(),
        )))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Done => true,
            Kind::Local(bytes) => bytes.is_none(),
            // Reported only once the end has been seen (and recorded) in `poll_frame`.
            Kind::Upstream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Done => SizeHint::with_exact(0),
            Kind::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Upstream(streaming) => streaming.inner.size_hint(),
        }
    }
}
