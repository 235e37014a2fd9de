//! One caller connection: frames in, answers out. Heartbeats are answered here; requests are
//! routed on the snapshot in force when they arrive and forwarded; every failure becomes a Dubbo
//! response with the caller's request id (PROTOCOLS.md §1.9):
//!
//! | failure | status | `response_flags` |
//! |---|---|---|
//! | no route table / route / cluster | 60 SERVICE_NOT_FOUND | `NR` |
//! | no usable endpoint | 70 SERVICE_ERROR | `UH` |
//! | provider connection cannot be opened (after trying others) | 70 SERVICE_ERROR | `UF` |
//! | provider connection closed with the request in flight | 70 SERVICE_ERROR | `UC` |
//! | no answer before the deadline (the route's `timeout`, else the listener's) | 31 SERVER_TIMEOUT | `UT` |
//! | circuit breaker full (requests, pending requests, connections) | 100 SERVER_THREADPOOL_EXHAUSTED | `UO` |
//! | the route's fault injection aborted it | the configured status | `FI` |
//! | traffic class shed (its budget, or the host full) | 100 SERVER_THREADPOOL_EXHAUSTED | `UO` |
//! | local rate limit | 100 SERVER_THREADPOOL_EXHAUSTED | `RL` |
//! | undecodable request, unsupported serialization, oversized body | 40 BAD_REQUEST | `DPE` |
//!
//! Input that is not Dubbo at all (wrong magic, negative length) cannot be answered: only this
//! connection is closed, and `causeway_proxy_protocol_errors_total` counts it.
//!
//! A routed request may first be delayed or aborted by the route's fault injection, copied to
//! its mirrors (`mirror`), and, when its route retries sent requests, keep a copy of itself for
//! the retries (`retry`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use causeway_protocols::dubbo::{
    Attachments, DubboCodec, DubboError, Frame, FrameError, Header, RequestView, Status,
    heartbeat_reply,
};
use tokio::net::TcpStream;

use super::DubboContext;
use super::labels::{Destination, LabelSets, Labels, endpoint_labels};
use super::outbox::outbox;
use super::reader::FrameReader;
use super::request::{Caller, Outcome, Pending};
use super::retry::RetryState;
use super::upstream::{ConnectError, KnownConnections, SendError};
use super::writer::write_loop;
use crate::isolation::{MatchKind, Permit, Refusal, RequestAttributes};
use crate::lb::{EndpointState, InFlight, RequestKey};
use crate::metrics::{Direction, Protocol, ProtocolErrorKind, ResponseFlags};
use crate::resilience::breaker::{self, Limit};
use crate::resilience::{fault, mirror, outlier, retry};
use crate::routing::meta_policy::MetaPolicy;
use crate::routing::{
    Cluster, DubboAttributes, Endpoint, HashOn, LbPolicy, Priority, cluster_name, normalize_version,
};
use crate::spans::SpanStart;
use crate::trace_context::{Hop, may_carry_context};

/// Room per read of a caller connection: a pipelining caller's burst (a window of 8 calls of
/// 1 KiB and their headers) in one system call. Pages of it that are never written are never
/// resident, so thousands of mostly idle connections do not pay for it.
const INBOUND_READ_SIZE: usize = 16 * 1024;
/// Earlier read buffers a caller connection keeps for reuse (see `reader`).
const INBOUND_RETIRED_BUFFERS: usize = 2;

/// Endpoints tried for one request when connections cannot be opened.
const MAX_ATTEMPTS: usize = 3;

/// Serves one caller until it disconnects or sends something that is not Dubbo.
pub async fn connection(stream: TcpStream, peer: SocketAddr, context: Arc<DubboContext>) {
    let _active = context
        .metrics
        .connection(Protocol::Dubbo, Direction::Downstream);
    let (read, write) = stream.into_split();
    // Unbounded: every queued frame answers a request this connection sent, and requests in
    // flight are bounded by the circuit breakers.
    let (outbox, rx) = outbox();
    let caller = Arc::new(Caller {
        outbox,
        metrics: context.metrics.clone(),
        base_labels: context.base_labels.clone(),
    });
    let writer = tokio::spawn(write_loop(write, rx));
    let mut frames = FrameReader::new(
        read,
        DubboCodec::with_max_body_len(context.settings.max_body_len),
        INBOUND_READ_SIZE,
        INBOUND_RETIRED_BUFFERS,
    );
    let mut local = CallerLocal {
        rng: fastrand::Rng::new(),
        connections: KnownConnections::default(),
        label_sets: LabelSets::default(),
    };
    'connection: while let Ok(true) = frames.read().await {
        // One clock reading for every request of the read: they arrived together.
        let now = Instant::now();
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => on_frame(frame, &caller, &context, &mut local, now),
                Ok(None) => break,
                Err(FrameError::FrameTooLarge {
                    header,
                    body_len,
                    limit,
                }) => {
                    context.metrics.protocol_error(
                        Protocol::Dubbo,
                        Direction::Downstream,
                        ProtocolErrorKind::FrameTooLarge,
                    );
                    if header.is_two_way() && !header.is_event() {
                        let message = format!(
                            "causeway-proxy: request body of {body_len} bytes exceeds the {limit}-byte limit"
                        );
                        reply_locally(
                            &caller,
                            header,
                            Status::BAD_REQUEST,
                            ResponseFlags::DownstreamProtocolError,
                            message,
                        );
                    }
                    // The body was not read, so the stream is out of sync: close.
                    break 'connection;
                }
                Err(FrameError::Io(_)) => break 'connection,
                Err(error) => {
                    tracing::debug!(%peer, %error, "closing a caller connection that does not speak dubbo");
                    context.metrics.protocol_error(
                        Protocol::Dubbo,
                        Direction::Downstream,
                        ProtocolErrorKind::BadFrame,
                    );
                    break 'connection;
                }
            }
        }
    }
    drop(frames);
    drop(caller);
    // Answers still in flight keep the writer alive until they are written.
    let _ = writer.await;
}

/// What one caller connection's task keeps for its own requests: unshared, so no locks.
struct CallerLocal {
    rng: fastrand::Rng,
    /// The provider connections its requests went to.
    connections: KnownConnections,
    /// The label sets of the routes and endpoints its requests went to.
    label_sets: LabelSets,
}

fn reply_locally(
    caller: &Arc<Caller>,
    header: Header,
    status: Status,
    flags: ResponseFlags,
    message: String,
) {
    let pending = Pending::new(
        caller.clone(),
        header,
        Instant::now(),
        Duration::ZERO,
        Labels::Routing(Destination::default()),
    );
    pending.complete(Outcome::Local {
        status,
        flags,
        message,
    });
}

fn on_frame(
    frame: Frame,
    caller: &Arc<Caller>,
    context: &Arc<DubboContext>,
    local: &mut CallerLocal,
    started: Instant,
) {
    let header = *frame.header();
    if header.is_response() {
        // Callers only answer heartbeats, and the proxy sends none to them.
        return;
    }
    if header.is_event() {
        if header.is_two_way()
            && frame.is_heartbeat()
            && let Ok(reply) = heartbeat_reply(&header)
        {
            let _ = caller.outbox.send(reply.into_bytes());
        }
        return;
    }
    let mut destination = Destination::default();
    let routed = route(frame, context, &mut local.rng, &mut destination);
    // The host's name for the fault and mirror metrics, kept only when the route has either.
    let service = match &routed {
        Ok((_, mirrors, policy)) if policy.fault.is_some() || !mirrors.is_empty() => {
            destination.service.clone()
        }
        _ => None,
    };
    let labels = Labels::Routing(destination);
    let service = service
        .as_ref()
        .unwrap_or(&context.base_labels.destination_service);
    let listener_ms = context.settings.request_timeout_ms;
    let timeout = Duration::from_millis(match &routed {
        Ok((_, _, policy)) => policy.call_timeout_ms(listener_ms),
        Err(_) => listener_ms,
    });
    let mut pending = header
        .is_two_way()
        .then(|| Pending::new(caller.clone(), header, started, timeout, labels));
    match routed {
        Ok((mut plan, mirrors, policy)) => {
            if let Some(pending) = pending.as_mut() {
                pending.set_span(plan.span.take());
            }
            let mut delay = None;
            if let Some(fault) = &policy.fault {
                let (delayed, aborted) = fault::draw(fault.delay, fault.abort, &mut local.rng);
                if let Some(codes) = aborted {
                    context
                        .metrics
                        .resilience
                        .fault_aborted(service, Protocol::Dubbo);
                    if let Some(pending) = pending {
                        pending.complete(Outcome::Local {
                            status: Status(codes.dubbo_status),
                            flags: ResponseFlags::FaultInjected,
                            message: "causeway-proxy: fault injected by the route".to_owned(),
                        });
                    }
                    return;
                }
                if delayed.is_some() {
                    context
                        .metrics
                        .resilience
                        .fault_delayed(service, Protocol::Dubbo);
                }
                delay = delayed;
            }
            if let (Some(pending), Some(spec)) = (pending.as_mut(), &policy.retry) {
                // A copy of the routed frame for the retries (only routes with retries pay).
                if let Ok(copy) = Frame::from_bytes(BytesMut::from(plan.frame.as_bytes())) {
                    pending.set_retry(Some(Box::new(RetryState {
                        frame: copy,
                        cluster: plan.cluster.clone(),
                        priority: plan.priority,
                        method: plan.method.clone(),
                        interface: plan.interface.clone(),
                        hash_attachment: plan.hash_attachment.clone(),
                        spec: spec.clone(),
                        retries_left: spec.attempts,
                        deadline: started + timeout,
                        tried: Vec::new(),
                        token: None,
                        context: context.clone(),
                    })));
                }
            }
            if !mirrors.is_empty() {
                // Copied before the caller's frame is handed on (its id is rewritten there).
                super::mirror::send_copies(
                    &plan.frame,
                    mirrors,
                    service,
                    &plan.method,
                    &plan.interface,
                    context,
                    &mut local.rng,
                );
            }
            if delay.is_some() {
                return spawn_forward(plan, pending, context.clone(), delay);
            }
            if let Some((plan, pending)) = forward_now(plan, pending, context, local, started) {
                spawn_forward(plan, pending, context.clone(), None);
            }
        }
        Err(rejection) => {
            if let Some(kind) = rejection.protocol_error {
                context
                    .metrics
                    .protocol_error(Protocol::Dubbo, Direction::Downstream, kind);
            }
            if let Some(pending) = pending {
                pending.complete(Outcome::Local {
                    status: rejection.status,
                    flags: rejection.flags,
                    message: rejection.message,
                });
            }
        }
    }
}

/// Why a request is answered without being forwarded.
struct Rejection {
    status: Status,
    flags: ResponseFlags,
    message: String,
    protocol_error: Option<ProtocolErrorKind>,
}

impl Rejection {
    fn no_route(message: String) -> Self {
        Self {
            status: Status::SERVICE_NOT_FOUND,
            flags: ResponseFlags::NoRoute,
            message,
            protocol_error: None,
        }
    }

    /// Shed by admission: "overloaded" or "rate limited", in the status Java consumers treat as
    /// a provider that is out of capacity.
    fn refused(refusal: &Refusal, host: &str) -> Self {
        Self {
            status: Status::SERVER_THREADPOOL_EXHAUSTED,
            flags: if refusal.is_rate_limit() {
                ResponseFlags::RateLimited
            } else {
                ResponseFlags::UpstreamOverflow
            },
            message: refusal.message(host),
            protocol_error: None,
        }
    }

    fn bad_request(error: &DubboError) -> Self {
        let kind = match error {
            DubboError::UnsupportedSerialization { .. } => {
                ProtocolErrorKind::UnsupportedSerialization
            }
            _ => ProtocolErrorKind::BadRequest,
        };
        Self {
            status: Status::BAD_REQUEST,
            flags: ResponseFlags::DownstreamProtocolError,
            message: format!("causeway-proxy: cannot route the request: {error}"),
            protocol_error: Some(kind),
        }
    }
}

/// A routed request: where it goes and what the balancer may hash on.
struct Plan {
    frame: Frame,
    cluster: Arc<Cluster>,
    /// Shared with the route table when it names them (no allocation per request).
    method: Arc<str>,
    interface: Arc<str>,
    hash_attachment: Option<(String, String)>,
    permit: Option<Permit>,
    /// The routing priority (its traffic class's): which breaker thresholds and counts hold it.
    priority: Priority,
    /// The proxy's span, for a sampled trace when spans are exported; taken by the request.
    span: Option<Box<SpanStart>>,
}

struct Attributes<'a> {
    method: &'a str,
    attachments: Option<&'a Attachments<'a>>,
}

impl DubboAttributes for Attributes<'_> {
    fn method(&self) -> &str {
        self.method
    }
    fn attachment(&self, key: &str) -> Option<&str> {
        self.attachments.and_then(|a| a.get_str(key))
    }
}

/// What traffic classes and rate-limit conditions see of a Dubbo request.
struct AdmissionView<'a> {
    interface: &'a str,
    inner: &'a Attributes<'a>,
}

impl RequestAttributes for AdmissionView<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "interface" => Some(self.interface),
            "method" => Some(self.inner.method),
            _ => self.inner.attachment(name),
        }
    }
}

/// Routes a request on the snapshot in force, noting the destination as it learns it; also
/// says which mirror clusters get a copy and the route's resilience policy.
fn route(
    mut frame: Frame,
    context: &DubboContext,
    rng: &mut fastrand::Rng,
    destination: &mut Destination,
) -> Result<(Plan, Vec<Arc<Cluster>>, MetaPolicy), Rejection> {
    let snapshot = context.store.load();
    let (cluster, mutation, method, interface, hash_attachment, permit, hop, mirrors, policy) = {
        let view: RequestView<'_> = frame.request().map_err(|e| Rejection::bad_request(&e))?;
        let interface = view.service();
        let version = normalize_version(view.service_version());
        let generic = view
            .generic_method()
            .map_err(|e| Rejection::bad_request(&e))?;
        let method = generic.as_deref().unwrap_or(view.method());
        let attachments = if snapshot.needs_attachments(interface) {
            Some(view.attachments().map_err(|e| Rejection::bad_request(&e))?)
        } else {
            None
        };
        // Trace context: only a request whose bytes may hold some pays for decoding its
        // attachments (when routing did not already), and an undecodable map just goes
        // untraced, since tracing must never fail a call.
        let hop = if may_carry_context(view.body()) {
            match &attachments {
                Some(a) => Hop::from_incoming(|key| a.get_str(key)),
                None => view
                    .attachments()
                    .ok()
                    .and_then(|a| Hop::from_incoming(|key| a.get_str(key))),
            }
        } else {
            None
        };
        let group = attachments
            .as_ref()
            .and_then(|a| a.get_str("group"))
            .unwrap_or("");
        let Some(table) = snapshot.dubbo_table(interface, group, version) else {
            return Err(Rejection::no_route(format!(
                "causeway-proxy: no route for interface {interface} (group {group:?}, version {version:?})"
            )));
        };
        destination.service = Some(table.metric_labels.host.clone());
        destination.interface = Some(table.metric_labels.interface.clone());
        let method_label = table.method_label_value(method);
        // The table's values when they are the request's: an allocation each otherwise.
        let shared_method = if *method_label == *method {
            method_label.clone()
        } else {
            Arc::from(method)
        };
        let shared_interface = if *table.metric_labels.interface == *interface {
            table.metric_labels.interface.clone()
        } else {
            Arc::from(interface)
        };
        destination.method = Some(method_label);
        let attributes = Attributes {
            method,
            attachments: attachments.as_ref(),
        };
        let Some(route) = table.route(&attributes) else {
            return Err(Rejection::no_route(format!(
                "causeway-proxy: no route matches method {method} of {interface}"
            )));
        };
        let Some(mut cluster) = route
            .destinations
            .pick(rng.u64(..))
            .and_then(|name| snapshot.cluster(name))
        else {
            return Err(Rejection::no_route(format!(
                "causeway-proxy: route {} of {interface} has no cluster",
                route.name
            )));
        };
        let mut permit = None;
        if let Some(policy) = snapshot.admission(&table.host) {
            let view = AdmissionView {
                interface,
                inner: &attributes,
            };
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
                .map_err(|refusal| Rejection::refused(&refusal, &table.host))?;
            if let Some(subset) = &admitted.subset {
                // The class's dedicated subset serves it, whatever the route said.
                let name = cluster_name(cluster.port, subset, &table.host);
                cluster = snapshot.cluster(&name).ok_or_else(|| {
                    Rejection::no_route(format!(
                        "causeway-proxy: traffic class subset cluster {name} is unknown"
                    ))
                })?;
            }
            permit = admitted.permit;
        }
        let hash_attachment = match &cluster.lb {
            LbPolicy::ConsistentHash(HashOn::Attachment(key)) => attributes
                .attachment(key)
                .map(|value| (key.clone(), value.to_owned())),
            _ => None,
        };
        // Mirrors chosen now, on this snapshot; a mirror cluster the snapshot lacks is skipped.
        let mirrors: Vec<Arc<Cluster>> = mirror::chosen(&route.mirrors, rng)
            .filter_map(|m| snapshot.cluster(&m.cluster).cloned())
            .collect();
        (
            cluster.clone(),
            route.request_mutation.clone(),
            shared_method,
            shared_interface,
            hash_attachment,
            permit,
            hop,
            mirrors,
            route.policy.clone(),
        )
    };
    let span = context
        .metrics
        .spans()
        .start(hop.as_ref(), &cluster.name)
        .map(Box::new);
    // The trace pairs go after the route's mutation so they win on the provider, where later
    // entries override earlier ones.
    let trace_pairs = hop.map(|hop| hop.pairs()).unwrap_or_default();
    if !mutation.is_empty() || !trace_pairs.is_empty() {
        let pairs: Vec<(&str, &str)> = mutation
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(trace_pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .collect();
        frame
            .add_attachments(&pairs)
            .map_err(|e| Rejection::bad_request(&e))?;
    }
    // The class's priority; a request without a class is DEFAULT.
    let priority = permit.as_ref().map_or(Priority::Default, Permit::priority);
    Ok((
        Plan {
            frame,
            cluster,
            method,
            interface,
            hash_attachment,
            permit,
            priority,
            span,
        },
        mirrors,
        policy,
    ))
}

/// The common case, without a task of its own: the cluster has room, the chosen provider's
/// connection is open and its queue has space, so the request is queued right here (a task per
/// request cost a tenth of the proxy's CPU at saturation). Anything else (a connect to wait for,
/// a full queue, a closed connection, no usable endpoint, the circuit breaker) hands the
/// request back for [`forward`], which decides again from scratch.
fn forward_now(
    plan: Plan,
    mut pending: Option<Box<Pending>>,
    context: &DubboContext,
    local: &mut CallerLocal,
    now: Instant,
) -> Option<(Plan, Option<Box<Pending>>)> {
    let load = context.breakers.of(&plan.cluster, plan.priority).requests();
    let max_requests = plan.cluster.breaker.at(plan.priority).max_requests;
    if load.load(std::sync::atomic::Ordering::Relaxed) >= max_requests {
        return Some((plan, pending));
    }
    let chosen = {
        let lookup = |key: &str| {
            plan.hash_attachment
                .as_ref()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let key = RequestKey {
            method: &plan.method,
            interface: &plan.interface,
            attachment: Some(&lookup),
        };
        context
            .balancer
            .choose(&plan.cluster, &key, &[], &mut local.rng, now)
    };
    let Some((index, state)) = chosen else {
        return Some((plan, pending));
    };
    let Some(endpoint) = plan.cluster.endpoints.get(index) else {
        return Some((plan, pending));
    };
    let Some(conn) = local.connections.open(&context.upstreams, endpoint.address) else {
        return Some((plan, pending));
    };
    if let Some(pending) = pending.as_mut() {
        attach(
            pending,
            context,
            (endpoint, &state),
            load,
            &plan.cluster,
            Some(&mut local.label_sets),
            now,
        );
    }
    let Plan {
        frame,
        cluster,
        method,
        interface,
        hash_attachment,
        mut permit,
        priority,
        ..
    } = plan;
    // A two-way request keeps its class slot until answered (the pending request holds it); a
    // one-way one until it is sent (dropped here after the send).
    if let Some(pending) = pending.as_mut()
        && permit.is_some()
    {
        pending.set_admission(permit.take());
    }
    match conn.try_send(frame, pending) {
        Ok(()) => None,
        Err(SendError::Closed(unsent)) => {
            let (frame, pending) = *unsent;
            Some((
                Plan {
                    frame,
                    cluster,
                    method,
                    interface,
                    hash_attachment,
                    permit,
                    priority,
                    span: None,
                },
                pending,
            ))
        }
    }
}

/// Forwards a request from a task of its own (after `delay`, for an injected fault). Out of line
/// and cold on purpose: the `forward` future is several kilobytes, and building it inside
/// `on_frame` gave every request a frame that size, stack probes included (~10 % of
/// `on_frame`'s time at saturation), although most requests never take this path.
#[cold]
#[inline(never)]
fn spawn_forward(
    plan: Plan,
    pending: Option<Box<Pending>>,
    context: Arc<DubboContext>,
    delay: Option<Duration>,
) {
    tokio::spawn(async move {
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        forward(plan, pending, context, Vec::new()).await;
    });
}

/// Sends a retried request again from a task of its own; out of line for the reason given at
/// [`spawn_forward`] (it is called from the response path).
#[cold]
#[inline(never)]
pub(super) fn spawn_resend(pending: Box<Pending>) {
    tokio::spawn(resend(pending));
}

/// Labels the request with its endpoint and counts it against the endpoint and the cluster
/// (replacing what an earlier attempt counted).
fn attach(
    pending: &mut Pending,
    context: &DubboContext,
    (endpoint, state): (&Endpoint, &Arc<EndpointState>),
    load: &Arc<AtomicU32>,
    cluster: &Arc<Cluster>,
    label_sets: Option<&mut LabelSets>,
    now: Instant,
) {
    let base = &pending.caller().base_labels;
    let set = match label_sets {
        Some(sets) => sets.at_endpoint(pending.labels(), &endpoint.metric_labels, base),
        // Off the fast path (a connect, a retry): a set of its own.
        None => Arc::new(endpoint_labels(
            pending.labels(),
            &endpoint.metric_labels,
            base,
        )),
    };
    context
        .metrics
        .upstream_request(&set.destination_service, &endpoint.metric_labels);
    pending.set_endpoint_labels(set);
    // A retried request: this try's own deadline, and the endpoint the next try avoids.
    if let Some(state) = pending.retry_mut() {
        state.tried.push(endpoint.address);
        let (per_try, deadline) = (state.spec.per_try_timeout_ms, state.deadline);
        if let Some(ms) = per_try {
            pending.set_deadline(deadline.min(now + Duration::from_millis(ms)));
        }
    }
    load.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let in_flight = InFlight::sent_at(
        state.clone(),
        load.clone(),
        context.metrics.upstream_in_flight().clone(),
        now,
    );
    // Only a cluster with outlier detection has anything to learn from the result.
    pending.set_in_flight(Some(if cluster.outlier.is_some() {
        in_flight.with_outliers(context.balancer.clone(), cluster.clone())
    } else {
        in_flight
    }));
}

/// Sends a request again after a try its route retries (called from its completion): a copy of
/// the routed frame, to an endpoint it has not tried yet when there is one.
async fn resend(mut pending: Box<Pending>) {
    let Some(state) = pending.retry_mut() else {
        return;
    };
    let copy = Frame::from_bytes(BytesMut::from(state.frame.as_bytes()));
    let plan = copy.map(|frame| Plan {
        frame,
        cluster: state.cluster.clone(),
        method: state.method.clone(),
        interface: state.interface.clone(),
        hash_attachment: state.hash_attachment.clone(),
        permit: None,
        priority: state.priority,
        // The request's span is on `pending` already: every try is part of the same hop.
        span: None,
    });
    let context = state.context.clone();
    let tried = state.tried.clone();
    match plan {
        Ok(plan) => forward(plan, Some(pending), context, tried).await,
        // The frame parsed once already; this cannot fail, but never leave a caller waiting.
        Err(_) => pending.complete(Outcome::Local {
            status: Status::SERVICE_ERROR,
            flags: ResponseFlags::UpstreamConnectionTermination,
            message: "causeway-proxy: the request could not be retried".to_owned(),
        }),
    }
}

/// Refuses a request at a circuit-breaker limit: SERVER_THREADPOOL_EXHAUSTED (what Java
/// consumers take for a provider out of capacity), `UO`, and the overflow counter.
fn overflow(
    context: &DubboContext,
    (cluster, priority): (&Cluster, Priority),
    pending: Option<Box<Pending>>,
    limit: Limit,
) {
    context.metrics.overflow(&cluster.name, priority);
    if let Some(pending) = pending {
        pending.complete(Outcome::Local {
            status: Status::SERVER_THREADPOOL_EXHAUSTED,
            flags: ResponseFlags::UpstreamOverflow,
            message: breaker::overflow_message(&cluster.name, limit),
        });
    }
}

/// Picks an endpoint, opens or reuses its connection and sends; on a connect failure another
/// endpoint is tried (the request was never sent, so this is always safe).
async fn forward(
    plan: Plan,
    mut pending: Option<Box<Pending>>,
    context: Arc<DubboContext>,
    mut exclude: Vec<SocketAddr>,
) {
    let Plan {
        mut frame,
        cluster,
        method,
        interface,
        hash_attachment,
        permit,
        priority,
        ..
    } = plan;
    // A two-way request keeps its class slot until answered; a one-way one until it is sent.
    let _one_way_permit = match pending.as_mut() {
        Some(pending) => {
            // The fast path may have handed the permit to the request already.
            if permit.is_some() {
                pending.set_admission(permit);
            }
            None
        }
        None => permit,
    };
    let counts = context.breakers.of(&cluster, priority);
    let thresholds = cluster.breaker.at(priority);
    let load = counts.requests().clone();
    if counts.requests_full(thresholds) {
        return overflow(&context, (&cluster, priority), pending, Limit::Requests);
    }
    // Past the fast path, a request waits (for a connection, or room in a provider's queue):
    // that is what `max_pending` bounds.
    let Some(_waiting) = counts.try_pending(thresholds) else {
        return overflow(&context, (&cluster, priority), pending, Limit::Pending);
    };
    let lookup = |key: &str| {
        hash_attachment
            .as_ref()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let key = RequestKey {
        method: &method,
        interface: &interface,
        attachment: Some(&lookup),
    };
    let connect_timeout = Duration::from_millis(cluster.breaker.connect_timeout_ms);
    let mut rng = fastrand::Rng::new();
    // A retry avoids the endpoints already tried, unless they are all there is.
    let retried = !exclude.is_empty();
    let mut flags = ResponseFlags::NoHealthyUpstream;
    let mut _retry = None;
    for attempt in 0..MAX_ATTEMPTS {
        let mut chosen =
            context
                .balancer
                .choose(&cluster, &key, &exclude, &mut rng, Instant::now());
        if chosen.is_none() && retried && attempt == 0 {
            exclude.clear();
            chosen = context
                .balancer
                .choose(&cluster, &key, &[], &mut rng, Instant::now());
        }
        let Some((index, state)) = chosen else {
            break;
        };
        let Some(endpoint) = cluster.endpoints.get(index) else {
            break;
        };
        // Every pass after the first is a retry: the budget decides whether it may go.
        if attempt > 0 {
            let active = load.load(std::sync::atomic::Ordering::Relaxed);
            let token = retry::admit_next(
                flags,
                &context.balancer,
                &context.metrics,
                (&cluster, priority),
                active,
                Protocol::Dubbo,
            );
            match token {
                Some(token) => _retry = Some(token),
                None => break,
            }
        }
        let conn = match context
            .upstreams
            .connection(
                endpoint.address,
                &state,
                connect_timeout,
                (counts, thresholds),
            )
            .await
        {
            Ok(conn) => conn,
            Err(ConnectError::Overflow) => {
                return overflow(&context, (&cluster, priority), pending, Limit::Connections);
            }
            Err(ConnectError::Io(error)) => {
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
            attach(
                pending,
                &context,
                (endpoint, &state),
                &load,
                &cluster,
                None,
                Instant::now(),
            );
        }
        match conn.send(frame, pending).await {
            Ok(()) => return,
            Err(SendError::Closed(unsent)) => {
                (frame, pending) = *unsent;
                exclude.push(endpoint.address);
                flags = ResponseFlags::UpstreamConnectionTermination;
            }
        }
    }
    if let Some(pending) = pending {
        let message = match flags {
            ResponseFlags::NoHealthyUpstream if exclude.is_empty() => {
                format!("causeway-proxy: no healthy provider in {}", cluster.name)
            }
            _ => format!(
                "causeway-proxy: no provider of {} could be reached ({} tried)",
                cluster.name,
                exclude.len()
            ),
        };
        pending.complete(Outcome::Local {
            status: Status::SERVICE_ERROR,
            flags,
            message,
        });
    }
}
