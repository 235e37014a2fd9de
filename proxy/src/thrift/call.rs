//! One two-way Thrift call between the moment it is routed and the moment its caller has an
//! answer: where the answer goes, what the caller's message looked like (transport, protocol,
//! method, seqid, THeader flags: an error reply must match them), the metric labels, and the load
//! it puts on an endpoint and a cluster. Completing it writes the answer, records the request
//! metrics and releases the load, exactly once.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use causeway_protocols::thrift::{
    ApplicationException, ExceptionKind, MessageType, Protocol, THeader, ThriftMessage, Transport,
    write_message_header,
};
use tokio::sync::mpsc;

use crate::lb::InFlight;
use crate::metrics::{Metrics, RequestLabels, ResponseFlags};
use crate::resilience::outlier;
use crate::spans::SpanStart;

/// `response_code` of a normal reply (docs/observability.md).
pub const CODE_REPLY: &str = "0";
/// `response_code` of a `TApplicationException` (or any exception message).
pub const CODE_EXCEPTION: &str = "1";

/// What an error reply must repeat from the caller's message.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// How the caller frames messages.
    pub transport: Transport,
    /// Binary or compact.
    pub protocol: Protocol,
    /// The bare method name (servers reply without the multiplexed prefix).
    pub method: String,
    /// The caller's seqid.
    pub seqid: i32,
    /// THeader flags when the caller speaks THeader.
    pub theader_flags: Option<u16>,
}

// === impl CallInfo ===

impl CallInfo {
    /// The facts of `message`, read before its seqid is rewritten.
    pub fn of(message: &ThriftMessage) -> Self {
        Self {
            transport: message.transport,
            protocol: message.header.protocol,
            method: message.header.method().to_owned(),
            seqid: message.header.seqid,
            theader_flags: message.theader.as_ref().map(|t| t.flags),
        }
    }

    /// A `TApplicationException` reply in the caller's transport and protocol, with its method
    /// and seqid; `None` only if the message cannot be encoded (a name over 2 GiB).
    pub fn exception(&self, kind: ExceptionKind, message: &str) -> Option<Bytes> {
        let exception = ApplicationException::new(kind, message);
        let encoded = match self.theader_flags {
            Some(flags) => {
                let mut body = BytesMut::with_capacity(32 + message.len());
                write_message_header(
                    &mut body,
                    self.protocol,
                    &self.method,
                    MessageType::Exception,
                    self.seqid,
                )
                .ok()?;
                exception.write_body(self.protocol, &mut body);
                let mut header = THeader::new(self.protocol, self.seqid);
                header.flags = flags;
                header.encode(&body).ok()?
            }
            None => exception
                .encode_reply(self.protocol, self.transport, &self.method, self.seqid)
                .ok()?,
        };
        Some(encoded.freeze())
    }
}

/// How a call ended.
#[derive(Debug)]
pub enum Outcome {
    /// The server answered: its message, seqid already restored to the caller's.
    Reply(ThriftMessage),
    /// The proxy answers with a `TApplicationException`.
    Local {
        /// The exception type.
        kind: ExceptionKind,
        /// Why, for `response_flags`.
        flags: ResponseFlags,
        /// The message the caller sees.
        message: String,
    },
}

/// A two-way call waiting for its answer.
#[derive(Debug)]
pub struct PendingCall {
    downstream: mpsc::UnboundedSender<Bytes>,
    info: CallInfo,
    started: Instant,
    request_bytes: u64,
    labels: RequestLabels,
    in_flight: Option<InFlight>,
    /// The call's traffic-class slot, released with the call.
    admission: Option<crate::isolation::Permit>,
    /// The proxy's span, recorded with the metrics.
    span: Option<SpanStart>,
    metrics: Arc<Metrics>,
}

// === impl PendingCall ===

impl PendingCall {
    /// A call from the caller behind `downstream`.
    pub fn new(
        downstream: mpsc::UnboundedSender<Bytes>,
        info: CallInfo,
        started: Instant,
        request_bytes: usize,
        labels: RequestLabels,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            downstream,
            info,
            started,
            request_bytes: request_bytes as u64,
            labels,
            in_flight: None,
            admission: None,
            span: None,
            metrics,
        }
    }

    /// Records `span` (the proxy's hop in the caller's trace) when the call completes.
    pub fn set_span(&mut self, span: Option<SpanStart>) {
        self.span = span;
    }

    /// Holds the call's traffic-class slot until it completes.
    pub fn set_admission(&mut self, permit: Option<crate::isolation::Permit>) {
        self.admission = permit;
    }

    /// What the caller sent.
    pub fn info(&self) -> &CallInfo {
        &self.info
    }

    /// The labels (the router fills in the destination once it is known).
    pub fn labels_mut(&mut self) -> &mut RequestLabels {
        &mut self.labels
    }

    /// Attaches the endpoint and cluster load (replacing that of an earlier attempt).
    pub fn set_in_flight(&mut self, in_flight: Option<InFlight>) {
        self.in_flight = in_flight;
    }

    /// The load, to mark when the call is written.
    pub fn in_flight_mut(&mut self) -> Option<&mut InFlight> {
        self.in_flight.as_mut()
    }

    /// Answers the caller, records the metrics and releases the load.
    pub fn complete(mut self, outcome: Outcome) {
        let elapsed = self.started.elapsed();
        let (bytes, code, flags) = match outcome {
            Outcome::Reply(message) => {
                if let Some(in_flight) = self.in_flight.as_mut() {
                    in_flight.answered();
                    in_flight.report(outlier::thrift_verdict(
                        message.header.message_type == MessageType::Exception,
                    ));
                }
                let code = match message.header.message_type {
                    MessageType::Reply => CODE_REPLY,
                    _ => CODE_EXCEPTION,
                };
                (
                    Some(message.into_frame().freeze()),
                    code,
                    ResponseFlags::None,
                )
            }
            Outcome::Local {
                kind,
                flags,
                message,
            } => {
                // Only failures after the call reached an endpoint carry its load.
                if let Some(in_flight) = self.in_flight.as_mut() {
                    in_flight.report(outlier::local_verdict(flags));
                }
                (self.info.exception(kind, &message), CODE_EXCEPTION, flags)
            }
        };
        self.in_flight = None;
        // Released before the caller can see the answer and send its next call.
        self.admission = None;
        self.labels.response_code = Arc::from(code);
        self.labels.response_flags = flags;
        let response_bytes = bytes.as_ref().map_or(0, |b| b.len() as u64);
        self.metrics.request(
            &self.labels,
            elapsed.as_secs_f64() * 1000.0,
            self.request_bytes,
            response_bytes,
        );
        if let Some(span) = self.span.take() {
            self.metrics.spans().finish(span, &self.labels);
        }
        if let Some(bytes) = bytes {
            // The caller may be gone; its answer then has nowhere to go.
            let _ = self.downstream.send(bytes);
        }
    }
}
