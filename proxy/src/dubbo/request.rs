//! One request between the moment it is routed and the moment its caller has an answer: where the
//! answer goes, the caller's request id, the metric labels, and the load it puts on an endpoint
//! and a cluster. Completing it (with the provider's response or a local error) writes the answer,
//! records the request metrics and releases the load, exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway_protocols::dubbo::{Frame, Header, Serialization, Status, error_response};

use super::labels::Labels;
use super::outbox::OutboxSender;
use super::retry::{self, RetryState};
use crate::lb::InFlight;
use crate::metrics::{Metrics, RequestLabels, ResponseFlags};
use crate::resilience::outlier;
use crate::resilience::retry as resilience_retry;
use crate::spans::SpanStart;

/// How a request ended.
#[derive(Debug)]
pub enum Outcome {
    /// The provider answered (its frame, with the upstream id still in it).
    Response(Frame),
    /// The proxy answers itself.
    Local {
        /// The Dubbo status.
        status: Status,
        /// Why, for `response_flags`.
        flags: ResponseFlags,
        /// The message the caller sees.
        message: String,
    },
}

/// The error frame for a request: the caller's id, a non-OK status and a Hessian string message,
/// which every Java consumer decodes (PROTOCOLS.md §1.3, §1.9). Always Hessian 2: the Java
/// consumer decodes a response by the serialization id in the response's own header.
pub fn error_frame(request: &Header, status: Status, message: &str) -> Option<Bytes> {
    let header = Header::request(request.request_id, Serialization::HESSIAN2, true);
    error_response(&header, status, message)
        .ok()
        .map(Frame::into_bytes)
}

/// Where a caller connection's requests are answered and counted; each request in flight holds
/// it (one reference count, where an answer channel and the metrics were two).
#[derive(Debug)]
pub struct Caller {
    /// The caller connection's outbox; its writer stops once every holder is gone.
    pub outbox: OutboxSender,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The listener's label values, for what routing did not learn.
    pub base_labels: RequestLabels,
}

/// A two-way request waiting for its answer.
#[derive(Debug)]
pub struct Pending {
    caller: Arc<Caller>,
    request: Header,
    started: Instant,
    deadline: Instant,
    request_bytes: u64,
    labels: Labels,
    in_flight: Option<InFlight>,
    /// The request's traffic-class slot, released with the request.
    admission: Option<crate::isolation::Permit>,
    /// The proxy's span, recorded with the metrics; boxed, as most requests have none and the
    /// request is moved a few times on its way.
    span: Option<Box<SpanStart>>,
    /// What another try needs, when the route retries sent requests.
    retry: Option<Box<RetryState>>,
}

// === impl Pending ===

impl Pending {
    /// Sends the request again when `outcome` is one its route retries and the retry budget
    /// admits it (`None`), else gives the request and outcome back for the caller's answer.
    fn retry_instead(mut self: Box<Self>, outcome: Outcome) -> Option<(Box<Self>, Outcome)> {
        let Some(state) = self.retry.as_deref_mut() else {
            return Some((self, outcome));
        };
        let Some(flags) = retry::wanted(state, &outcome) else {
            return Some((self, outcome));
        };
        let active = state
            .context
            .breakers
            .of(&state.cluster, state.priority)
            .requests()
            .load(std::sync::atomic::Ordering::Relaxed);
        let admitted = resilience_retry::admit_next(
            flags,
            &state.context.balancer,
            &state.context.metrics,
            (&state.cluster, state.priority),
            active,
            crate::metrics::Protocol::Dubbo,
        );
        let Some(token) = admitted else {
            // Refused by the budget: the caller gets this try's outcome.
            return Some((self, outcome));
        };
        state.token = Some(token);
        state.retries_left -= 1;
        // This try ends here; its verdict counts against its endpoint.
        if let Some(in_flight) = self.in_flight.as_mut() {
            if flags == crate::metrics::ResponseFlags::UpstreamTimeout {
                in_flight.timed_out();
            }
            in_flight.report(match &outcome {
                Outcome::Response(frame) => outlier::dubbo_verdict(frame.header().status),
                Outcome::Local { flags, .. } => outlier::local_verdict(*flags),
            });
        }
        self.in_flight = None;
        super::inbound::spawn_resend(self);
        None
    }

    /// A request from `caller`, with its original header; boxed from the
    /// start, as it is handed from the caller's task to a provider connection's map and back,
    /// and a move of the box is a pointer, not a few hundred bytes.
    pub(crate) fn new(
        caller: Arc<Caller>,
        request: Header,
        started: Instant,
        timeout: Duration,
        labels: Labels,
    ) -> Box<Self> {
        Box::new(Self {
            caller,
            request,
            started,
            deadline: started + timeout,
            request_bytes: request.frame_len() as u64,
            labels,
            in_flight: None,
            admission: None,
            span: None,
            retry: None,
        })
    }

    /// Records `span` (the proxy's hop in the caller's trace) when the request completes.
    pub fn set_span(&mut self, span: Option<Box<SpanStart>>) {
        self.span = span;
    }

    /// When the proxy stops waiting for the provider.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (each try of a retried request has its own).
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Keeps what another try needs.
    pub fn set_retry(&mut self, state: Option<Box<RetryState>>) {
        self.retry = state;
    }

    /// What another try needs, if the route retries.
    pub fn retry_mut(&mut self) -> Option<&mut RetryState> {
        self.retry.as_deref_mut()
    }

    /// The labels: what routing learned, then the endpoint's label set.
    pub(crate) fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The label set of the endpoint the request is sent to (replacing an earlier try's).
    pub(crate) fn set_endpoint_labels(&mut self, set: Arc<RequestLabels>) {
        self.labels = Labels::Endpoint(set);
    }

    /// The caller the request came from.
    pub(crate) fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Attaches the endpoint and cluster load (replacing that of an earlier attempt).
    pub fn set_in_flight(&mut self, in_flight: Option<InFlight>) {
        self.in_flight = in_flight;
    }

    /// Holds the request's traffic-class slot until it completes.
    pub fn set_admission(&mut self, permit: Option<crate::isolation::Permit>) {
        self.admission = permit;
    }

    /// Answers the caller, records the metrics and releases the load — unless the outcome is
    /// one the route retries and the retry budget admits another try, which then goes out.
    pub fn complete(self: Box<Self>, outcome: Outcome) {
        self.complete_at(outcome, Instant::now());
    }

    /// [`Pending::complete`] for an outcome known at `now` (a provider connection reads the
    /// clock once for all the answers of a read).
    pub fn complete_at(self: Box<Self>, outcome: Outcome, now: Instant) {
        let Some((this, outcome)) = self.retry_instead(outcome) else {
            return;
        };
        this.answer(outcome, now);
    }

    /// The one clock reading `now` serves the duration, the latency sample and the outlier
    /// report.
    fn answer(mut self: Box<Self>, outcome: Outcome, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        let (bytes, status, flags) = match outcome {
            Outcome::Response(mut frame) => {
                frame.set_request_id(self.request.request_id);
                let status = frame.header().status;
                if let Some(in_flight) = self.in_flight.as_mut() {
                    in_flight.answered_at(now);
                    in_flight.report_at(outlier::dubbo_verdict(status), now);
                }
                (Some(frame.into_bytes()), status, ResponseFlags::None)
            }
            Outcome::Local {
                status,
                flags,
                message,
            } => {
                // Only failures after the request reached an endpoint carry its load.
                if let Some(in_flight) = self.in_flight.as_mut() {
                    if flags == ResponseFlags::UpstreamTimeout {
                        in_flight.timed_out();
                    }
                    in_flight.report_at(outlier::local_verdict(flags), now);
                }
                (error_frame(&self.request, status, &message), status, flags)
            }
        };
        self.in_flight = None;
        // Released before the caller can see the answer and send its next request.
        self.admission = None;
        let response_bytes = bytes.as_ref().map_or(0, |b| b.len() as u64);
        let caller = &*self.caller;
        let labels = self.labels.finished(&caller.base_labels, status.0, flags);
        caller.metrics.request(
            &labels,
            elapsed.as_secs_f64() * 1000.0,
            self.request_bytes,
            response_bytes,
        );
        if let Some(span) = self.span.take() {
            caller.metrics.spans().finish(*span, &labels);
        }
        if let Some(bytes) = bytes {
            // The caller may be gone; its answer then has nowhere to go.
            let _ = self.caller.outbox.send(bytes);
        }
    }
}
