//! One caller connection: messages in, replies out. The transport (framed, unframed, THeader) and
//! protocol (binary strict or not, compact) are detected from the first message and kept; calls
//! are routed on the snapshot in force when they arrive and forwarded concurrently (replies go
//! back as they come, matched by the caller's seqid). Every failure of a two-way call becomes a
//! `TApplicationException` in the caller's transport and protocol with its method and seqid:
//!
//! | failure | exception type | `response_flags` |
//! |---|---|---|
//! | no route table, route or cluster for the call | 1 UNKNOWN_METHOD | `NR` |
//! | no usable endpoint | 6 INTERNAL_ERROR | `UH` |
//! | endpoints refuse connections (after trying others) | 6 INTERNAL_ERROR | `UF` |
//! | connection closed, or a reply that does not belong to the call | 6 INTERNAL_ERROR | `UC` |
//! | no reply before the deadline (the route's `timeout`, else the listener's) | 6 INTERNAL_ERROR | `UT` |
//! | circuit breaker full (requests, pending calls, connections) | 6 INTERNAL_ERROR | `UO` |
//! | the route's fault injection aborted it | the configured type | `FI` |
//! | traffic class shed (its budget, or the host full) | 6 INTERNAL_ERROR "overloaded" | `UO` |
//! | local rate limit | 6 INTERNAL_ERROR "rate limited" | `RL` |
//!
//! Input that is not Thrift (or a frame over the limit, or a THeader transform the proxy cannot
//! undo) cannot be answered — its seqid is unknown or the stream is out of sync — so only this
//! connection is closed, and `causeway_proxy_protocol_errors_total{protocol="thrift"}` counts it.
//!
//! A routed call may be delayed or aborted by the route's fault injection and copied to its
//! mirrors; a two-way call whose route retries is sent again, on another endpoint, after a
//! per-try timeout, a closed connection or a `TApplicationException` its policy names.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway_protocols::thrift::{
    ExceptionKind, MessageType, ThriftCodec, ThriftError, ThriftMessage,
};
use futures::StreamExt as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

use super::ThriftContext;
use super::call::{CallInfo, Outcome, PendingCall};
use super::upstream::{CheckoutError, Exchange, PoolKey};
use crate::dubbo::write_loop;
use crate::isolation::{MatchKind, Permit, RequestAttributes};
use crate::lb::InFlight;
use crate::lb::RequestKey;
use crate::metrics::{
    Direction, Protocol, ProtocolErrorKind, Reporter, RequestLabels, ResponseFlags,
};
use crate::resilience::breaker::{self, Limit};
use crate::resilience::{fault, mirror, outlier, retry};
use crate::routing::meta_policy::MetaPolicy;
use crate::routing::{
    Cluster, Endpoint, HashOn, LbPolicy, Priority, ThriftAttributes, cluster_name,
};
use crate::spans::SpanStart;
use crate::trace_context::Hop;

/// Endpoints tried for one call when connections cannot be opened or written.
const MAX_ATTEMPTS: usize = 3;

/// Serves one caller until it disconnects or sends something that is not Thrift. `host` binds
/// the connection to one host's route table.
pub async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    context: Arc<ThriftContext>,
    host: Option<Arc<str>>,
) {
    let _active = context
        .metrics
        .connection(Protocol::Thrift, Direction::Downstream);
    let (read, write) = stream.into_split();
    // Unbounded: every queued message answers a call this connection sent, and calls in flight
    // are bounded by the circuit breakers.
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(write_loop(write, rx));
    let codec = ThriftCodec::new().max_frame_size(context.settings.max_frame_size);
    let mut messages = FramedRead::new(read, codec);
    let mut rng = fastrand::Rng::new();
    while let Some(next) = messages.next().await {
        match next {
            Ok(message) => on_message(message, &tx, &context, host.as_ref(), &mut rng),
            Err(ThriftError::Io(_)) => break,
            Err(error) => {
                let kind = match error {
                    ThriftError::FrameTooLarge { .. } | ThriftError::MessageTooLarge { .. } => {
                        ProtocolErrorKind::FrameTooLarge
                    }
                    _ => ProtocolErrorKind::BadFrame,
                };
                tracing::debug!(%peer, %error, "closing a caller connection that does not speak thrift");
                context
                    .metrics
                    .protocol_error(Protocol::Thrift, Direction::Downstream, kind);
                break;
            }
        }
    }
    drop(messages);
    drop(tx);
    // Answers still in flight keep the writer alive until they are written.
    let _ = writer.await;
}

fn base_labels(context: &ThriftContext) -> RequestLabels {
    let unknown: Arc<str> = Arc::from("unknown");
    RequestLabels {
        reporter: Reporter::Source,
        source_workload: context.workload.clone(),
        destination_service: unknown.clone(),
        destination_workload: unknown.clone(),
        destination_version: unknown.clone(),
        request_protocol: Protocol::Thrift,
        response_code: Arc::from(super::call::CODE_REPLY),
        grpc_response_status: Arc::from(""),
        response_flags: ResponseFlags::None,
        request_method: Arc::from("other"),
        destination_interface: unknown,
    }
}

fn on_message(
    message: ThriftMessage,
    tx: &mpsc::UnboundedSender<Bytes>,
    context: &Arc<ThriftContext>,
    host: Option<&Arc<str>>,
    rng: &mut fastrand::Rng,
) {
    let oneway = match message.header.message_type {
        MessageType::Call => false,
        MessageType::Oneway => true,
        MessageType::Reply | MessageType::Exception => {
            // Callers do not answer the proxy; a reply from one is dropped and counted.
            context.metrics.protocol_error(
                Protocol::Thrift,
                Direction::Downstream,
                ProtocolErrorKind::UnknownResponse,
            );
            return;
        }
    };
    let started = Instant::now();
    let mut labels = base_labels(context);
    let routed = route(message, context, host, rng, &mut labels);
    match routed {
        Ok((mut plan, mirrors)) => {
            if !mirrors.is_empty() {
                super::mirror::send_copies(
                    &plan.message,
                    mirrors,
                    &labels.destination_service,
                    context,
                    rng,
                );
            }
            let pending = (!oneway).then(|| {
                let mut pending = PendingCall::new(
                    tx.clone(),
                    plan.info.clone(),
                    started,
                    plan.message.frame.len(),
                    labels,
                    context.metrics.clone(),
                );
                pending.set_span(plan.span.take());
                pending
            });
            tokio::spawn(forward(plan, pending, context.clone()));
        }
        Err(Rejected {
            info,
            size,
            text: rejection,
            kind,
            flags,
        }) => {
            if !oneway {
                let pending = PendingCall::new(
                    tx.clone(),
                    info,
                    started,
                    size,
                    labels,
                    context.metrics.clone(),
                );
                pending.complete(Outcome::Local {
                    kind,
                    flags,
                    message: rejection,
                });
            }
        }
    }
}

/// A routed call: where it goes and what the balancer may hash on.
struct Plan {
    message: ThriftMessage,
    info: CallInfo,
    cluster: Arc<Cluster>,
    service: String,
    hash_header: Option<(String, String)>,
    permit: Option<Permit>,
    /// The routing priority (its traffic class's): which breaker thresholds and counts hold it.
    priority: Priority,
    /// The proxy's span, for a sampled trace when spans are exported; taken by the call.
    span: Option<SpanStart>,
    policy: MetaPolicy,
}

/// A call answered without being forwarded: what the exception reply needs.
struct Rejected {
    info: CallInfo,
    size: usize,
    text: String,
    kind: ExceptionKind,
    flags: ResponseFlags,
}

/// What traffic classes and rate-limit conditions see of a Thrift call: `method`, `service` (or
/// `interface`, the multiplexed service name) and THeader headers.
struct AdmissionView<'a> {
    inner: &'a Attributes<'a>,
}

impl RequestAttributes for AdmissionView<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "method" => Some(self.inner.method()),
            "service" | "interface" => self.inner.service(),
            _ => self.inner.header(name),
        }
    }
}

struct Attributes<'a> {
    message: &'a ThriftMessage,
}

impl ThriftAttributes for Attributes<'_> {
    fn method(&self) -> &str {
        self.message.header.method()
    }
    fn service(&self) -> Option<&str> {
        self.message.header.service()
    }
    fn header(&self, key: &str) -> Option<&str> {
        self.message.theader.as_ref().and_then(|t| t.get(key))
    }
}

/// Routes a call on the snapshot in force, filling in the labels as it learns the destination,
/// and says which mirror clusters get a copy. A rejection carries what the exception reply needs and the message's size.
fn route(
    message: ThriftMessage,
    context: &ThriftContext,
    host: Option<&Arc<str>>,
    rng: &mut fastrand::Rng,
    labels: &mut RequestLabels,
) -> Result<(Plan, Vec<Arc<Cluster>>), Rejected> {
    let info = CallInfo::of(&message);
    let size = message.frame.len();
    let reject = |text: String| Rejected {
        info: info.clone(),
        size,
        text,
        kind: ExceptionKind::UnknownMethod,
        flags: ResponseFlags::NoRoute,
    };
    let snapshot = context.store.load();
    let service = message.header.service().map(str::to_owned);
    let method = message.header.method();
    let table = match (host, service.as_deref()) {
        (Some(host), _) => snapshot.thrift.for_host(host).ok_or_else(|| {
            reject(format!(
                "causeway-proxy: no thrift routes for host {host} (method {method})"
            ))
        })?,
        (None, Some(service)) => snapshot.thrift.for_service(service).ok_or_else(|| {
            reject(format!(
                "causeway-proxy: no route for thrift service {service} (method {method})"
            ))
        })?,
        (None, None) => {
            return Err(reject(format!(
                "causeway-proxy: cannot route non-multiplexed call {method}: call Service:{method} or bind the listener to a host"
            )));
        }
    };
    labels.destination_service = Arc::from(table.host.as_str());
    labels.request_method = Arc::from(table.method_label(method));
    labels.destination_interface = Arc::from(table.interface_label(service.as_deref()));
    let attributes = Attributes { message: &message };
    let Some(route) = table.route(&attributes) else {
        return Err(reject(format!(
            "causeway-proxy: no route matches method {method} of {}",
            table.host
        )));
    };
    let Some(mut cluster) = route
        .destinations
        .pick(rng.u64(..))
        .and_then(|name| snapshot.cluster(name))
    else {
        return Err(reject(format!(
            "causeway-proxy: route {} of {} has no cluster",
            route.name, table.host
        )));
    };
    let mut permit = None;
    if let Some(policy) = snapshot.admission(&table.host) {
        let view = AdmissionView { inner: &attributes };
        let capacity = snapshot.host_capacity(&table.host, cluster.port, cluster);
        let admitted = context
            .metrics
            .admissions()
            .admit(
                &table.host,
                policy,
                MatchKind::Attributes,
                &view,
                capacity,
                Instant::now(),
            )
            .map_err(|refusal| Rejected {
                info: info.clone(),
                size,
                text: refusal.message(&table.host),
                kind: ExceptionKind::InternalError,
                flags: if refusal.is_rate_limit() {
                    ResponseFlags::RateLimited
                } else {
                    ResponseFlags::UpstreamOverflow
                },
            })?;
        if let Some(subset) = &admitted.subset {
            // The class's dedicated subset serves it, whatever the route said.
            let name = cluster_name(cluster.port, subset, &table.host);
            cluster = snapshot.cluster(&name).ok_or_else(|| {
                reject(format!(
                    "causeway-proxy: traffic class subset cluster {name} is unknown"
                ))
            })?;
        }
        permit = admitted.permit;
    }
    // The class's priority; a call without a class is DEFAULT.
    let priority = permit.as_ref().map_or(Priority::Default, Permit::priority);
    let hash_header = match &cluster.lb {
        LbPolicy::ConsistentHash(HashOn::Attachment(key)) => attributes
            .header(key)
            .map(|value| (key.clone(), value.to_owned())),
        _ => None,
    };
    let cluster = cluster.clone();
    // Mirrors chosen now, on this snapshot; a mirror cluster the snapshot lacks is skipped.
    let mirrors: Vec<Arc<Cluster>> = mirror::chosen(&route.mirrors, rng)
        .filter_map(|m| snapshot.cluster(&m.cluster).cloned())
        .collect();
    let policy = route.policy.clone();
    let mut mutation = route.request_mutation.clone();
    // Trace context rides THeader info headers; only THeader messages can carry it, so the other
    // transports pass through untouched. It goes after the route's mutation so it wins.
    let hop = message
        .theader
        .as_ref()
        .and_then(|theader| Hop::from_incoming(|key| theader.get(key)));
    let span = context.metrics.spans().start(hop.as_ref(), &cluster.name);
    if let Some(hop) = hop {
        mutation.extend(
            hop.pairs()
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value)),
        );
    }
    let message = match (&message.theader, mutation.is_empty()) {
        (Some(theader), false) => {
            let mut headers = theader.headers.clone();
            for (key, value) in mutation {
                match headers.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => headers.push((key, value)),
                }
            }
            causeway_protocols::thrift::rewrite_theader_headers(&message.frame, &headers)
                .and_then(|frame| ThriftMessage::parse(&frame))
                .map_err(|e| reject(format!("causeway-proxy: cannot add headers: {e}")))?
        }
        _ => message,
    };
    Ok((
        Plan {
            message,
            info,
            cluster,
            service: service.unwrap_or_default(),
            hash_header,
            permit,
            priority,
            span,
            policy,
        },
        mirrors,
    ))
}

/// Picks an endpoint, takes a pooled or new connection and makes the call; a call that could not
/// be written (connect failure, broken idle connection) tries another endpoint.
async fn forward(plan: Plan, mut pending: Option<PendingCall>, context: Arc<ThriftContext>) {
    let Plan {
        mut message,
        info,
        cluster,
        service,
        hash_header,
        permit,
        priority,
        policy,
        ..
    } = plan;
    // A two-way call keeps its class slot until answered; a one-way one until it is sent.
    let _one_way_permit = match pending.as_mut() {
        Some(pending) => {
            pending.set_admission(permit);
            None
        }
        None => permit,
    };
    let fail = |pending: Option<PendingCall>, flags: ResponseFlags, text: String| {
        if let Some(pending) = pending {
            pending.complete(Outcome::Local {
                kind: ExceptionKind::InternalError,
                flags,
                message: text,
            });
        }
    };
    let counts = context.breakers.of(&cluster, priority);
    let thresholds = cluster.breaker.at(priority);
    let load = counts.requests().clone();
    let overflow = |pending: Option<PendingCall>, limit: Limit| {
        context.metrics.overflow(&cluster.name, priority);
        fail(
            pending,
            ResponseFlags::UpstreamOverflow,
            breaker::overflow_message(&cluster.name, limit),
        );
    };
    if counts.requests_full(thresholds) {
        return overflow(pending, Limit::Requests);
    }
    let oneway = pending.is_none();
    let call_timeout_ms = policy.call_timeout_ms(context.settings.request_timeout_ms);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(call_timeout_ms);
    if let Some(fault) = &policy.fault {
        let service_label: Arc<str> = Arc::from(cluster.host.as_str());
        let (delay, abort) = fault::draw(fault.delay, fault.abort, &mut fastrand::Rng::new());
        if let Some(delay) = delay {
            context
                .metrics
                .resilience
                .fault_delayed(&service_label, Protocol::Thrift);
            tokio::time::sleep(delay).await;
        }
        if let Some(codes) = abort {
            context
                .metrics
                .resilience
                .fault_aborted(&service_label, Protocol::Thrift);
            if let Some(pending) = pending {
                pending.complete(Outcome::Local {
                    kind: ExceptionKind::from_i32(codes.thrift_exception),
                    flags: ResponseFlags::FaultInjected,
                    message: "causeway-proxy: fault injected by the route".to_owned(),
                });
            }
            return;
        }
    }
    // The call is kept for a retry only when the route retries what was sent; one-way calls
    // are never retried once sent (nothing says whether they ran).
    let retry = policy.retry.as_ref().filter(|_| !oneway);
    let original = retry.map(|_| message.clone());
    let mut retries_left = retry.map_or(0, |r| r.attempts);
    let max_attempts = MAX_ATTEMPTS.max(1 + retries_left as usize);
    let mut admitted = false;
    let lookup = |key: &str| {
        hash_header
            .as_ref()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let key = RequestKey {
        method: &info.method,
        interface: &service,
        attachment: Some(&lookup),
    };
    let connect_timeout = std::time::Duration::from_millis(cluster.breaker.connect_timeout_ms);
    let mut rng = fastrand::Rng::new();
    let mut exclude = Vec::new();
    let mut flags = ResponseFlags::NoHealthyUpstream;
    let mut _retry = None;
    for attempt in 0..max_attempts {
        let Some((index, state)) =
            context
                .balancer
                .choose(&cluster, &key, &exclude, &mut rng, Instant::now())
        else {
            break;
        };
        // The try's own deadline: the per-try timeout, within the call's.
        let try_deadline = retry
            .and_then(|r| r.per_try_timeout_ms)
            .map_or(deadline, |ms| {
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(ms))
            });
        let Some(endpoint) = cluster.endpoints.get(index) else {
            break;
        };
        // Every pass after the first is a retry: the budget decides whether it may go (a retry
        // after a sent try was admitted already, where its outcome was known).
        if attempt > 0 && !std::mem::take(&mut admitted) {
            let active = load.load(Ordering::Relaxed);
            let token = retry::admit_next(
                flags,
                &context.balancer,
                &context.metrics,
                (&cluster, priority),
                active,
                Protocol::Thrift,
            );
            match token {
                Some(token) => _retry = Some(token),
                None => break,
            }
        }
        let pool_key = PoolKey {
            address: endpoint.address,
            transport: info.transport,
            protocol: info.protocol,
        };
        // Waiting for a connection (an idle one is taken at once; a new one is opened) is what
        // `max_pending` bounds.
        let Some(waiting) = counts.try_pending(thresholds) else {
            return overflow(pending, Limit::Pending);
        };
        let checkout = context
            .upstreams
            .checkout(pool_key, &state, connect_timeout, (counts, thresholds))
            .await;
        drop(waiting);
        let mut conn = match checkout {
            Ok(conn) => conn,
            Err(CheckoutError::Overflow) => return overflow(pending, Limit::Connections),
            Err(CheckoutError::Io(error)) => {
                outlier::connect_failed(
                    &context.balancer,
                    &context.metrics,
                    (&cluster, &state, endpoint.address),
                    &error,
                );
                exclude.push(endpoint.address);
                flags = ResponseFlags::UpstreamConnectFailure;
                continue;
            }
        };
        if let Some(pending) = pending.as_mut() {
            set_destination(pending, endpoint);
            context.metrics.upstream_request(
                &pending.labels_mut().destination_service,
                &endpoint.metric_labels,
            );
            load.fetch_add(1, Ordering::Relaxed);
            pending.set_in_flight(Some(
                InFlight::new(
                    state.clone(),
                    load.clone(),
                    context.metrics.upstream_in_flight().clone(),
                )
                .with_outliers(context.balancer.clone(), cluster.clone()),
            ));
            if let Some(in_flight) = pending.in_flight_mut() {
                in_flight.sent_now();
            }
        }
        let exchange = conn.call(message, info.seqid, oneway, try_deadline).await;
        // A sent call the route's policy retries: on another endpoint, with a copy of the
        // original message, within the retry budget.
        let retriable = match (&exchange, retry) {
            (Exchange::Reply(reply), Some(r)) => {
                r.on.thrift_exception && reply.header.message_type == MessageType::Exception
            }
            (Exchange::Closed, Some(r)) => r.on.reset,
            (Exchange::TimedOut, Some(r)) => r.on.timeout && tokio::time::Instant::now() < deadline,
            _ => false,
        };
        if retriable
            && retries_left > 0
            && let Some(copy) = original.as_ref()
        {
            if matches!(exchange, Exchange::Reply(_)) {
                context.upstreams.checkin(conn);
            }
            // The failed try's load and verdict end here; the retry counts its own.
            let try_flags = match &exchange {
                Exchange::Reply(_) => ResponseFlags::None,
                Exchange::TimedOut => ResponseFlags::UpstreamTimeout,
                _ => ResponseFlags::UpstreamConnectionTermination,
            };
            if let Some(pending) = pending.as_mut()
                && let Some(in_flight) = pending.in_flight_mut()
            {
                if matches!(exchange, Exchange::TimedOut) {
                    in_flight.timed_out();
                }
                in_flight.report(match &exchange {
                    // The server's exception counts against it as an error.
                    Exchange::Reply(_) => crate::resilience::outlier::thrift_verdict(true),
                    _ => crate::resilience::outlier::local_verdict(try_flags),
                });
            }
            if let Some(pending) = pending.as_mut() {
                pending.set_in_flight(None);
            }
            let active = load.load(Ordering::Relaxed);
            match retry::admit_next(
                try_flags,
                &context.balancer,
                &context.metrics,
                (&cluster, priority),
                active,
                Protocol::Thrift,
            ) {
                Some(token) => {
                    _retry = Some(token);
                    admitted = true;
                    retries_left -= 1;
                    message = copy.clone();
                    exclude.push(endpoint.address);
                    flags = try_flags;
                    continue;
                }
                None => {
                    // Refused by the budget: the caller gets this try's outcome.
                    return finish(exchange, pending, &cluster, call_timeout_ms);
                }
            }
        }
        match exchange {
            Exchange::Reply(reply) => {
                context.upstreams.checkin(conn);
                if let Some(pending) = pending {
                    pending.complete(Outcome::Reply(reply));
                }
                return;
            }
            Exchange::Sent => {
                context.upstreams.checkin(conn);
                return;
            }
            Exchange::NotSent(unsent) => {
                message = unsent;
                exclude.push(endpoint.address);
                flags = ResponseFlags::UpstreamConnectionTermination;
            }
            Exchange::Closed => {
                fail(
                    pending,
                    ResponseFlags::UpstreamConnectionTermination,
                    format!(
                        "causeway-proxy: the connection to a server of {} closed before the reply",
                        cluster.name
                    ),
                );
                return;
            }
            Exchange::TimedOut => {
                fail(
                    pending,
                    ResponseFlags::UpstreamTimeout,
                    format!(
                        "causeway-proxy: no reply from a server of {} within {} ms",
                        cluster.name, call_timeout_ms
                    ),
                );
                return;
            }
            Exchange::BadReply(reason) => {
                context.metrics.protocol_error(
                    Protocol::Thrift,
                    Direction::Upstream,
                    ProtocolErrorKind::UnknownResponse,
                );
                fail(
                    pending,
                    ResponseFlags::UpstreamConnectionTermination,
                    format!(
                        "causeway-proxy: a server of {} sent an invalid reply: {reason}",
                        cluster.name
                    ),
                );
                return;
            }
        }
    }
    let text = match flags {
        ResponseFlags::NoHealthyUpstream if exclude.is_empty() => {
            format!("causeway-proxy: no healthy server in {}", cluster.name)
        }
        _ => format!(
            "causeway-proxy: no server of {} could be reached ({} tried)",
            cluster.name,
            exclude.len()
        ),
    };
    if oneway {
        tracing::debug!(cluster = %cluster.name, "one-way call dropped: {text}");
    }
    fail(pending, flags, text);
}

/// Answers the caller with a try's outcome when its retry was refused by the budget (a reply
/// was already returned to the pool by then).
fn finish(
    exchange: Exchange,
    pending: Option<PendingCall>,
    cluster: &Cluster,
    call_timeout_ms: u64,
) {
    let Some(pending) = pending else { return };
    let (flags, text) = match exchange {
        Exchange::Reply(reply) => return pending.complete(Outcome::Reply(reply)),
        Exchange::TimedOut => (
            ResponseFlags::UpstreamTimeout,
            format!(
                "causeway-proxy: no reply from a server of {} within {call_timeout_ms} ms",
                cluster.name
            ),
        ),
        _ => (
            ResponseFlags::UpstreamConnectionTermination,
            format!(
                "causeway-proxy: the connection to a server of {} closed before the reply",
                cluster.name
            ),
        ),
    };
    pending.complete(Outcome::Local {
        kind: ExceptionKind::InternalError,
        flags,
        message: text,
    });
}

fn set_destination(pending: &mut PendingCall, endpoint: &Endpoint) {
    let labels = pending.labels_mut();
    let label = |key: &str| Arc::from(endpoint.labels.get(key).map_or("unknown", String::as_str));
    labels.destination_version = label("version");
    labels.destination_workload = label("app");
}
