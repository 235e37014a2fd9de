//! One gRPC or HTTP request: route it on the snapshot in force, pick an endpoint, forward it and
//! hand back the provider's response head (the body streams on in [`super::body`]). Every
//! failure is answered in the caller's protocol:
//!
//! | failure | gRPC status (Trailers-Only, HTTP 200) | HTTP status | `response_flags` |
//! |---|---|---|---|
//! | no table, route or cluster for the request | 12 UNIMPLEMENTED | 404 | `NR` |
//! | no usable endpoint | 14 UNAVAILABLE | 503 | `UH` |
//! | endpoints refuse connections (after trying others) | 14 UNAVAILABLE | 503 | `UF` |
//! | provider connection closed before the response | 14 UNAVAILABLE | 503 | `UC` |
//! | no response within the route timeout (or the last attempt's per-try timeout) | 4 DEADLINE_EXCEEDED | 504 | `UT` |
//! | cluster at its request limit | 14 UNAVAILABLE | 503 | `UO` |
//! | traffic class shed (admission) | 8 RESOURCE_EXHAUSTED | 503 | `UO` |
//! | local rate limit (admission) | 8 RESOURCE_EXHAUSTED | 429 | `RL` |
//! | retries exhausted on a retriable answer | the provider's answer | the provider's | `URX` |
//!
//! A route with a retry policy sends failed attempts again ([`super::retry`]), replaying the
//! body from its [`Tape`]; a route with mirrors starts its copies ([`super::mirror`]) before the
//! primary is forwarded.
//!
//! Table lookup: the authority (`:authority`, else `Host`) against the tables' domains, with or
//! without port; a gRPC call whose authority names no table (a client dialling the proxy's own
//! address) is looked up by its service instead, lower-cased (`/demo.Greeter/SayHello` →
//! `demo.greeter`), which is how the bridge names hosts of gRPC providers.

use std::future::{Future, Ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway_protocols::grpc::{self, Code, GrpcPath, Status};
use futures::FutureExt as _;
use futures::future::Either;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};

use http_body::Body as _;

use super::admission::{self, Denied, HeaderView};
use super::body::{CallerBody, InFlight, ProxyBody, Record, RequestBody, Reusable};
use super::retry::{self, Next, Outcome};
use super::tape::{REPLAY_LIMIT, Tape, TapeEnd};
use super::upstream::{Sender, UpstreamError};
use super::{HttpContext, ListenerKind, mirror};
use crate::isolation::{Permit, Refusal};
use crate::lb::{RequestKey, Verdict};
use crate::metrics::{Protocol, RequestLabels, ResponseFlags};
use crate::resilience::retry::{self as budget, RetryToken};
use crate::resilience::{fault, outlier};
use crate::routing::http::{AbortWith, RetrySpec};
use crate::routing::{Cluster, HashOn, HttpAttributes, HttpRouteTable, LbPolicy, Priority};
use crate::spans::SpanStart;
use crate::trace_context::Hop;

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

/// Why the proxy answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    NoRoute,
    NoHealthyUpstream,
    ConnectRefused,
    ConnectionTermination,
    Timeout,
    Overflow,
}

impl Failure {
    fn flags(self) -> ResponseFlags {
        match self {
            Self::NoRoute => ResponseFlags::NoRoute,
            Self::NoHealthyUpstream => ResponseFlags::NoHealthyUpstream,
            Self::ConnectRefused => ResponseFlags::UpstreamConnectFailure,
            Self::ConnectionTermination => ResponseFlags::UpstreamConnectionTermination,
            Self::Timeout => ResponseFlags::UpstreamTimeout,
            Self::Overflow => ResponseFlags::UpstreamOverflow,
        }
    }

    fn http_status(self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn grpc_code(self) -> Code {
        match self {
            Self::NoRoute => Code::Unimplemented,
            Self::Timeout => Code::DeadlineExceeded,
            _ => Code::Unavailable,
        }
    }
}

/// What routing reads of a request.
struct View<'a> {
    path: &'a str,
    path_and_query: &'a str,
    authority: &'a str,
    method: &'a Method,
    headers: &'a HeaderMap,
}

impl HttpAttributes for View<'_> {
    fn path(&self) -> &str {
        self.path
    }

    fn header(&self, name: &str) -> Option<String> {
        match name {
            ":authority" | "host" => Some(self.authority.to_owned()),
            ":method" => Some(self.method.as_str().to_owned()),
            ":path" => Some(self.path_and_query.to_owned()),
            ":scheme" => Some("http".to_owned()),
            _ => {
                let mut values = self.headers.get_all(name).iter();
                let first = values.next()?.to_str().ok()?.to_owned();
                Some(values.fold(first, |mut joined, v| {
                    joined.push(',');
                    joined.push_str(v.to_str().unwrap_or_default());
                    joined
                }))
            }
        }
    }
}

/// A request under way: its labels and what the error replies need.
struct Call {
    context: Arc<HttpContext>,
    grpc: bool,
    started: Instant,
    labels: RequestLabels,
    content_type: Option<HeaderValue>,
    request_bytes: Arc<AtomicU64>,
    /// `URX` once retries were wanted but exhausted.
    success_flags: ResponseFlags,
    /// The traffic-class slot, handed to the response's record.
    permit: Option<Permit>,
    /// The proxy's span once the request is forwarded (sampled traces, spans exported).
    span: Option<SpanStart>,
}

impl Call {
    fn record(&mut self) -> Record {
        Record {
            metrics: self.context.metrics.clone(),
            labels: self.labels.clone(),
            started: self.started,
            request_bytes: self.request_bytes.clone(),
            grpc: self.grpc,
            success_flags: self.success_flags,
            permit: self.permit.take(),
            // A call gets one response, so one record (and one span).
            span: self.span.clone(),
        }
    }

    /// Admission's refusal, in the caller's protocol, recorded at once: gRPC
    /// `RESOURCE_EXHAUSTED`; HTTP 429 for the rate limit, 503 for shedding.
    fn shed(&mut self, refusal: &Refusal, host: &str) -> Response<ProxyBody> {
        let message = refusal.message(host);
        let flags = if refusal.is_rate_limit() {
            ResponseFlags::RateLimited
        } else {
            ResponseFlags::UpstreamOverflow
        };
        tracing::debug!(%message, "request shed");
        let record = self.record();
        if self.grpc {
            let status = Status::new(Code::ResourceExhausted, message);
            let (parts, ()) = status
                .trailers_only(self.content_type.as_ref())
                .into_parts();
            record.finish(parts.status.as_u16(), Some(status.code.as_u32()), flags, 0);
            return Response::from_parts(parts, ProxyBody::local(Bytes::new()));
        }
        let status = if refusal.is_rate_limit() {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        text_response(record, status, flags, &message)
    }

    /// Fault injection's abort, in the caller's protocol, recorded at once.
    /// A fault's abort: counted, then answered as the route's fault says.
    fn fault_abort(&mut self, with: AbortWith) -> Response<ProxyBody> {
        self.context.metrics.resilience.fault_aborted(
            &self.labels.destination_service,
            self.labels.request_protocol,
        );
        self.abort(with)
    }

    fn abort(&mut self, with: AbortWith) -> Response<ProxyBody> {
        let record = self.record();
        let message = "causeway-proxy: fault injected";
        if self.grpc {
            let status = Status::new(fault::grpc_code(with), message);
            let (parts, ()) = status
                .trailers_only(self.content_type.as_ref())
                .into_parts();
            record.finish(
                parts.status.as_u16(),
                Some(status.code.as_u32()),
                ResponseFlags::FaultInjected,
                0,
            );
            return Response::from_parts(parts, ProxyBody::local(Bytes::new()));
        }
        let status = StatusCode::from_u16(fault::http_status(with))
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        text_response(record, status, ResponseFlags::FaultInjected, message)
    }

    /// The proxy's own answer, recorded at once.
    fn fail(&mut self, failure: Failure, message: String) -> Response<ProxyBody> {
        tracing::debug!(?failure, %message, "answering locally");
        let record = self.record();
        if self.grpc {
            let status = Status::new(failure.grpc_code(), message);
            let (parts, ()) = status
                .trailers_only(self.content_type.as_ref())
                .into_parts();
            record.finish(
                parts.status.as_u16(),
                Some(status.code.as_u32()),
                failure.flags(),
                0,
            );
            return Response::from_parts(parts, ProxyBody::local(Bytes::new()));
        }
        text_response(record, failure.http_status(), failure.flags(), &message)
    }
}

/// A short text reply of the proxy's own, recorded at once.
fn text_response(
    record: Record,
    status: StatusCode,
    flags: ResponseFlags,
    message: &str,
) -> Response<ProxyBody> {
    let body = Bytes::from(format!("{message}\n"));
    record.finish(status.as_u16(), None, flags, body.len() as u64);
    let mut response = Response::new(ProxyBody::local(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(grpc::is_grpc_content_type)
}

/// The request's authority as sent (lower case): the URI's (HTTP/2 `:authority`, absolute-form
/// HTTP/1) or the `Host` header.
fn authority_of(uri: &Uri, headers: &HeaderMap) -> String {
    uri.authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Removes hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Routes and forwards one request; never fails (every failure is a response).
///
/// Routing is synchronous and happens here, before the returned future is first polled; the
/// future holds only what the forwarding attempts need (see [`forward`]). A request the proxy
/// answers itself is a ready future, and only a route's fault delay (rare) is boxed, so every
/// request in flight costs its task little more than the attempt state.
pub fn handle(
    request: Request<CallerBody>,
    context: Arc<HttpContext>,
    kind: ListenerKind,
) -> impl Future<Output = Response<ProxyBody>> + Send {
    let started = Instant::now();
    let grpc = kind == ListenerKind::Grpc || is_grpc(request.headers());
    let protocol = if grpc { Protocol::Grpc } else { Protocol::Http };
    let mut call = Call {
        labels: context.labels.base(protocol),
        context,
        grpc,
        started,
        content_type: request.headers().get(header::CONTENT_TYPE).cloned(),
        request_bytes: Arc::new(AtomicU64::new(0)),
        success_flags: ResponseFlags::None,
        permit: None,
        span: None,
    };
    if !grpc {
        call.labels.request_method = call.context.labels.method(request.method());
    }
    let snapshot = call.context.store.load();
    let authority = authority_of(request.uri(), request.headers());
    let path = request.uri().path().to_owned();
    let grpc_path = if grpc {
        GrpcPath::parse(&path).ok()
    } else {
        None
    };
    let table: Option<&Arc<HttpRouteTable>> = snapshot.http_table(&authority).or_else(|| {
        grpc_path
            .as_ref()
            .and_then(|p| snapshot.http_table(&p.service.to_ascii_lowercase()))
    });
    let Some(table) = table else {
        return answered(call.fail(
            Failure::NoRoute,
            format!("causeway-proxy: no route for authority `{authority}` (path {path})"),
        ));
    };
    call.labels.destination_service = table.host_label();
    if let Some(p) = &grpc_path {
        call.labels.request_method = table.method_label_value(p.method);
        // Only a service that names the table's host is a label value, so callers cannot
        // invent interfaces.
        if p.service.eq_ignore_ascii_case(&table.host) {
            call.labels.destination_interface = table.interface_label(p.service);
        }
    }
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let view = View {
        path: &path,
        path_and_query: &path_and_query,
        authority: &authority,
        method: request.method(),
        headers: request.headers(),
    };
    let Some(route) = table.route(&view) else {
        return answered(call.fail(
            Failure::NoRoute,
            format!(
                "causeway-proxy: no route of {} matches {} {path}",
                table.name,
                request.method()
            ),
        ));
    };
    let mut rng = fastrand::Rng::new();
    let cluster = route
        .destinations
        .pick(rng.u64(..))
        .and_then(|name| snapshot.cluster(name));
    let Some(cluster) = cluster.cloned() else {
        return answered(call.fail(
            Failure::NoRoute,
            format!(
                "causeway-proxy: route {} of {} has no known cluster",
                route.name, table.name
            ),
        ));
    };
    let admission_view = HeaderView {
        headers: request.headers(),
        authority: &authority,
        method: request.method(),
        path_and_query: &path_and_query,
    };
    let (cluster, priority) = match admission::admit(
        &call.context,
        &snapshot,
        &table.host,
        cluster,
        &admission_view,
    ) {
        Ok(admitted) => {
            call.permit = admitted.permit;
            (
                admitted.cluster,
                Priority::of_request(admitted.priority, route.priority),
            )
        }
        Err(Denied::Refused(refusal)) => return answered(call.shed(&refusal, &table.host)),
        Err(Denied::UnknownSubset(name)) => {
            return answered(call.fail(
                Failure::NoRoute,
                format!("causeway-proxy: traffic class subset cluster {name} is unknown"),
            ));
        }
    };
    let deadline = route
        .timeout_ms
        .map(|ms| tokio::time::Instant::from_std(started) + Duration::from_millis(ms));
    let decision = route
        .fault
        .as_ref()
        .map(|fault| fault::decide(fault, &mut rng));
    let (delay, abort) = decision.map_or((None, None), |d| (d.delay, d.abort));
    if delay.is_some() {
        call.context.metrics.resilience.fault_delayed(
            &call.labels.destination_service,
            call.labels.request_protocol,
        );
    }
    // Mirrors and retries replay the body: it is recorded (up to a bound) as it streams.
    let mirrors: Vec<Arc<Cluster>> = route
        .mirrors
        .iter()
        .filter(|mirror| rng.f64() < mirror.fraction)
        .filter_map(|mirror| snapshot.cluster(&mirror.cluster).cloned())
        .collect();
    let tape = (route.retries.is_some() || !mirrors.is_empty()).then(|| {
        let body = request.body();
        let too_big = body
            .size_hint()
            .upper()
            .or(Some(body.size_hint().lower()))
            .is_some_and(|n| n > REPLAY_LIMIT as u64);
        let limit = if too_big { 0 } else { REPLAY_LIMIT };
        Arc::new(Tape::new(limit, body.is_end_stream()))
    });
    let plan = Plan {
        cluster,
        priority,
        authority,
        deadline,
        retries: route.retries.clone(),
        tape,
        mirrors,
    };
    match delay {
        None => match abort {
            Some(with) => answered(call.fault_abort(with)),
            None => Either::Right(Either::Left(forward(call, request, plan, rng))),
        },
        // The delay's timer, and the state it holds, only for the requests that have one.
        Some(delay) => Either::Right(Either::Right(Box::pin(async move {
            tokio::time::sleep(delay).await;
            match abort {
                Some(with) => call.fault_abort(with),
                None => forward(call, request, plan, rng).await,
            }
        }))),
    }
}

/// A response the proxy made up, as the future [`handle`] returns.
fn answered<A>(response: Response<ProxyBody>) -> Either<Ready<Response<ProxyBody>>, A> {
    Either::Left(std::future::ready(response))
}

/// Where and how a routed request goes.
struct Plan {
    cluster: Arc<Cluster>,
    /// The routing priority: which breaker thresholds and counts hold the request.
    priority: Priority,
    authority: String,
    deadline: Option<tokio::time::Instant>,
    retries: Option<RetrySpec>,
    tape: Option<Arc<Tape>>,
    mirrors: Vec<Arc<Cluster>>,
}

/// The request head every attempt is built from.
struct Template {
    method: Method,
    headers: HeaderMap,
}

/// What the caller is told when no attempt produced a response to pass on.
fn exhausted(cluster: &Cluster, last: Option<Outcome>, tried: usize) -> (Failure, String) {
    match last {
        None => (
            Failure::NoHealthyUpstream,
            format!("causeway-proxy: no healthy endpoint in {}", cluster.name),
        ),
        Some(Outcome::ConnectFailure) => (
            Failure::ConnectRefused,
            format!(
                "causeway-proxy: no endpoint of {} could be reached ({tried} tried)",
                cluster.name
            ),
        ),
        Some(Outcome::Timeout) => (
            Failure::Timeout,
            format!(
                "causeway-proxy: no response from {} within the per-try timeout ({tried} tried)",
                cluster.name
            ),
        ),
        Some(Outcome::Unsent | Outcome::Reset | Outcome::Status) => (
            Failure::ConnectionTermination,
            format!(
                "causeway-proxy: the connection to {} closed before the response ({tried} tried)",
                cluster.name
            ),
        ),
    }
}

/// Picks an endpoint, connects, sends and passes the response on; failed attempts are sent
/// again as [`retry::next`] and the retry budget allow, to another endpoint when there is
/// one.
///
/// The request head is prepared synchronously and the returned future holds only what the
/// attempts use, in place: its state is what every request in flight costs (a thousand callers
/// sending at once hold a thousand), and an `async fn` would keep its arguments, the locals
/// moved out of them and a moved-from request next to each other for as long as the provider
/// takes to answer.
#[allow(clippy::too_many_lines)]
fn forward(
    mut call: Call,
    request: Request<CallerBody>,
    plan: Plan,
    mut rng: fastrand::Rng,
) -> impl Future<Output = Response<ProxyBody>> + Send {
    let Plan {
        cluster,
        priority,
        authority,
        deadline,
        retries,
        tape,
        mirrors,
    } = plan;
    let context = call.context.clone();
    let thresholds = cluster.breaker.at(priority);
    let load = context.breakers.of(&cluster, priority).requests().clone();
    if load.load(Ordering::Relaxed) >= thresholds.max_requests {
        context.metrics.overflow(&cluster.name, priority);
        return answered(call.fail(
            Failure::Overflow,
            format!("causeway-proxy: {} is at its request limit", cluster.name),
        ));
    }
    // gRPC needs HTTP/2 to the provider. Plain HTTP goes out as HTTP/1.1 even when the caller
    // spoke h2c: every HTTP server understands it, and nothing says this provider speaks h2c.
    let h2 = call.grpc;
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The proxy's hop in the caller's trace. An untraced call stays untraced: a root the proxy
    // invented would impose its sampling decision on the provider.
    let hop = Hop::from_incoming(|name| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    });
    call.span = context.metrics.spans().start(hop.as_ref(), &cluster.name);
    if let Some(hop) = hop {
        for (name, value) in hop.pairs() {
            if let Ok(value) = HeaderValue::from_str(&value) {
                parts.headers.insert(name, value);
            }
        }
    }
    if h2 {
        // gRPC needs `te: trailers` (it was stripped with the other hop-by-hop headers).
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let service = call.labels.destination_service.clone();
    let protocol = call.labels.request_protocol;
    if let Some(tape) = &tape {
        for mirror in mirrors {
            let head = mirror::Head {
                method: parts.method.clone(),
                path_and_query: path_and_query.clone(),
                authority: authority.clone(),
                headers: parts.headers.clone(),
                h2,
            };
            mirror::spawn(
                &context,
                mirror,
                service.clone(),
                protocol,
                head,
                tape.clone(),
            );
        }
    }
    // Later attempts are rebuilt from this head and the recorded body.
    let template = (retries.is_some() && tape.is_some()).then(|| Template {
        method: parts.method.clone(),
        headers: parts.headers.clone(),
    });
    let mut pending = Some(Request::from_parts(
        parts,
        RequestBody::new(body, call.request_bytes.clone(), tape.clone()),
    ));
    let method = call.labels.request_method.clone();
    let interface = call.labels.destination_interface.clone();
    // A consistent-hash cluster hashes a header (an "attachment" in the balancer's terms).
    let hashed = match &cluster.lb {
        LbPolicy::ConsistentHash(HashOn::Attachment(name)) => pending
            .as_ref()
            .and_then(|r| r.headers().get(name.as_str()))
            .and_then(|v| v.to_str().ok())
            .map(|v| (name.clone(), v.to_owned())),
        _ => None,
    };
    let connect_timeout = Duration::from_millis(cluster.breaker.connect_timeout_ms);
    let per_try = retries
        .as_ref()
        .and_then(|r| r.per_try_timeout_ms)
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis);
    Either::Right(async move {
        let thresholds = cluster.breaker.at(priority);
        let rng = &mut rng;
        let lookup = |name: &str| {
            hashed
                .as_ref()
                .filter(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        // Endpoints that could not take the request, and endpoints that got it: a retry goes
        // elsewhere when it can, but may go back to one that answered when none other is left.
        let mut unreachable: Vec<SocketAddr> = Vec::new();
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut last: Option<Outcome> = None;
        // Retries sent so far.
        let mut retried = 0u32;
        // Admitted retries count against the cluster's budget until the request is answered.
        let mut tokens: Vec<RetryToken> = Vec::new();
        // What follows a failed attempt (remembered as the last outcome): `Retry` (counted as
        // sent) only once the budget admitted it; `Exhausted` when the attempt limit or the budget
        // refused a wanted retry (counted as refused).
        let mut retry_allowed = |outcome: Outcome| -> Next {
            last = Some(outcome);
            let replayable = tape.as_ref().is_some_and(|t| t.end() == TapeEnd::Complete);
            match retry::next(retries.as_ref(), outcome, retried, replayable) {
                Next::Retry => {}
                Next::Exhausted => {
                    context.metrics.resilience.retry_refused(&service, protocol);
                    return Next::Exhausted;
                }
                Next::Stop => return Next::Stop,
            }
            match budget::admit(
                context.balancer.retry_budgets(),
                &context.metrics,
                (&cluster.name, priority),
                &Arc::<str>::from(cluster.host.as_str()),
                load.load(Ordering::Relaxed),
                protocol,
                outcome.reason(),
            ) {
                Some(token) => {
                    tokens.push(token);
                    retried += 1;
                    Next::Retry
                }
                None => Next::Exhausted,
            }
        };
        loop {
            let chosen = {
                let key = RequestKey {
                    method: &method,
                    interface: &interface,
                    attachment: Some(&lookup),
                };
                let mut exclude = unreachable.clone();
                exclude.extend_from_slice(&tried);
                let now = Instant::now();
                context
                    .balancer
                    .choose(&cluster, &key, &exclude, rng, now)
                    .or_else(|| {
                        (!tried.is_empty())
                            .then(|| {
                                context
                                    .balancer
                                    .choose(&cluster, &key, &unreachable, rng, now)
                            })
                            .flatten()
                    })
            };
            let Some((index, state)) = chosen else {
                break;
            };
            let Some(endpoint) = cluster.endpoints.get(index) else {
                break;
            };
            if pending.is_none() {
                // A retry of a sent request: its head again, with the recorded body.
                pending = template
                    .as_ref()
                    .zip(tape.as_ref().and_then(|t| t.replay()))
                    .map(|(template, recording)| {
                        let mut request = Request::new(RequestBody::replay(recording));
                        *request.method_mut() = template.method.clone();
                        *request.headers_mut() = template.headers.clone();
                        request
                    });
            }
            if pending.is_none() {
                break;
            }
            // This attempt's time, connecting included (an HTTP/2 handshake has no limit of its
            // own): the per-try timeout, within what the route has left.
            let attempt_deadline = match (deadline, per_try) {
                (Some(route), Some(try_for)) => {
                    Some(route.min(tokio::time::Instant::now() + try_for))
                }
                (None, Some(try_for)) => Some(tokio::time::Instant::now() + try_for),
                (route, None) => route,
            };
            // Waiting for a connection is what the breaker's `max_pending` bounds.
            let counts = context.breakers.of(&cluster, priority);
            let Some(waiting) = counts.try_pending(thresholds) else {
                context.metrics.overflow(&cluster.name, priority);
                let limit = crate::resilience::breaker::Limit::Pending;
                let message = crate::resilience::breaker::overflow_message(&cluster.name, limit);
                return call.fail(Failure::Overflow, message);
            };
            let sender = with_deadline(
                attempt_deadline,
                context.upstreams.sender(
                    endpoint.address,
                    h2,
                    connect_timeout,
                    protocol,
                    (counts, thresholds),
                ),
            )
            .await;
            drop(waiting);
            let sender = match sender {
                Some(Ok(sender)) => sender,
                Some(Err(UpstreamError::ConnectionLimit)) => {
                    context.metrics.overflow(&cluster.name, priority);
                    let limit = crate::resilience::breaker::Limit::Connections;
                    let message =
                        crate::resilience::breaker::overflow_message(&cluster.name, limit);
                    return call.fail(Failure::Overflow, message);
                }
                None => {
                    // Out of time before the request left: nothing reached the endpoint.
                    let route_expired =
                        deadline.is_some_and(|at| tokio::time::Instant::now() >= at);
                    unreachable.push(endpoint.address);
                    if !route_expired && retry_allowed(Outcome::ConnectFailure) == Next::Retry {
                        continue;
                    }
                    return call.fail(
                        Failure::Timeout,
                        format!(
                            "causeway-proxy: no connection to {} within the attempt's time",
                            cluster.name
                        ),
                    );
                }
                Some(Err(error)) => {
                    outlier::connect_failed(
                        &context.balancer,
                        &context.metrics,
                        (&cluster, &state, endpoint.address),
                        &error,
                    );
                    unreachable.push(endpoint.address);
                    if retry_allowed(Outcome::ConnectFailure) == Next::Retry {
                        continue;
                    }
                    break;
                }
            };
            state.connected();
            call.labels.destination_version = endpoint.metric_labels.version.clone();
            call.labels.destination_workload = endpoint.metric_labels.app.clone();
            context
                .metrics
                .upstream_request(&call.labels.destination_service, &endpoint.metric_labels);
            load.fetch_add(1, Ordering::Relaxed);
            let mut in_flight = InFlight::new(
                state.clone(),
                load.clone(),
                context.metrics.upstream_in_flight().clone(),
            )
            .with_outliers(context.balancer.clone(), cluster.clone());
            let sent_at = Instant::now();
            // The request leaves the attempt state in this block: while the response is
            // awaited, only the send holds it.
            let (sent, h1) = {
                let Some(mut outgoing) = pending.take() else {
                    break;
                };
                address(
                    &mut outgoing,
                    h2,
                    &authority,
                    &path_and_query,
                    endpoint.address,
                );
                match sender {
                    Sender::Http2(mut sender) => {
                        (Either::Left(sender.try_send_request(outgoing)), None)
                    }
                    Sender::Http1(mut sender) => (
                        Either::Right(sender.try_send_request(outgoing)),
                        Some(sender),
                    ),
                }
            };
            let result = with_deadline(attempt_deadline, sent).await;
            let response = match result {
                None => {
                    in_flight.report(Verdict::GatewayError);
                    drop(in_flight);
                    let route_expired =
                        deadline.is_some_and(|at| tokio::time::Instant::now() >= at);
                    tried.push(endpoint.address);
                    if !route_expired && retry_allowed(Outcome::Timeout) == Next::Retry {
                        continue;
                    }
                    let which = if route_expired { "route" } else { "per-try" };
                    return call.fail(
                        Failure::Timeout,
                        format!(
                            "causeway-proxy: no response from {} within the {which} timeout",
                            cluster.name
                        ),
                    );
                }
                Some(Ok(response)) => response,
                Some(Err(mut error)) => {
                    if h2 {
                        // Rare: boxed so its lock's state is not part of every request's.
                        Box::pin(context.upstreams.discard_h2(endpoint.address)).await;
                    }
                    if let Some(unsent) = error.take_message() {
                        // The connection died before the request left: it can go elsewhere.
                        tracing::debug!(address = %endpoint.address, error = %error.into_error(), "upstream connection unusable; retrying");
                        pending = Some(unsent);
                        unreachable.push(endpoint.address);
                        if retry_allowed(Outcome::Unsent) == Next::Retry {
                            continue;
                        }
                        break;
                    }
                    in_flight.report(Verdict::GatewayError);
                    drop(in_flight);
                    tried.push(endpoint.address);
                    if retry_allowed(Outcome::Reset) == Next::Retry {
                        continue;
                    }
                    return call.fail(
                        Failure::ConnectionTermination,
                        format!(
                            "causeway-proxy: the connection to {} closed before the response: {}",
                            cluster.name,
                            error.into_error()
                        ),
                    );
                }
            };
            let retriable = retries.as_ref().is_some_and(|r| {
                retry::retriable_response(
                    &r.conditions,
                    call.grpc,
                    response.status(),
                    response.headers(),
                )
            });
            if retriable {
                let verdict = if call.grpc {
                    Status::from_headers(response.headers()).map_or(Verdict::GatewayError, |s| {
                        outlier::grpc_verdict(s.code.as_u32())
                    })
                } else {
                    outlier::http_verdict(response.status().as_u16())
                };
                match retry_allowed(Outcome::Status) {
                    Next::Retry => {
                        in_flight.report(verdict);
                        drop(in_flight);
                        drop(response);
                        tried.push(endpoint.address);
                        continue;
                    }
                    // The last attempt's answer is the caller's.
                    Next::Exhausted => {
                        call.success_flags = ResponseFlags::UpstreamRetryLimitExceeded;
                    }
                    Next::Stop => {}
                }
            }
            in_flight.answered(sent_at.elapsed());
            let (mut parts, incoming) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let reusable = h1.map(|sender| Reusable {
                pool: context.upstreams.clone(),
                address: endpoint.address,
                sender,
            });
            let body = ProxyBody::upstream(
                incoming,
                call.record(),
                parts.status.as_u16(),
                &parts.headers,
                Some(in_flight),
                reusable,
                deadline,
            );
            return Response::from_parts(parts, body);
        }
        let (failure, message) = exhausted(&cluster, last, unreachable.len() + tried.len());
        call.fail(failure, message)
    })
}

/// Addresses an attempt's request to the endpoint: HTTP/2 with the caller's authority (the
/// endpoint's address when there is none) in the URI, or HTTP/1.1 with an origin-form URI and
/// a `Host` header.
fn address(
    outgoing: &mut Request<RequestBody>,
    h2: bool,
    authority: &str,
    path_and_query: &str,
    endpoint: SocketAddr,
) {
    let endpoint_authority;
    let authority = if authority.is_empty() {
        endpoint_authority = endpoint.to_string();
        &endpoint_authority
    } else {
        authority
    };
    if h2 {
        *outgoing.version_mut() = Version::HTTP_2;
        outgoing.headers_mut().remove(header::HOST);
        if let Ok(uri) = format!("http://{authority}{path_and_query}").parse::<Uri>() {
            *outgoing.uri_mut() = uri;
        }
    } else {
        *outgoing.version_mut() = Version::HTTP_11;
        if let Ok(uri) = path_and_query.parse::<Uri>() {
            *outgoing.uri_mut() = uri;
        }
        if !outgoing.headers().contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(authority)
        {
            outgoing.headers_mut().insert(header::HOST, host);
        }
    }
}

/// Awaits `future` until `deadline` (`None`: no limit); `None` when the deadline passed first.
///
/// A combinator rather than an `async fn`: an `async fn` keeps its argument and the future it
/// builds from it side by side in its state, and this wraps the send of every request, whose
/// state is held for as long as the provider takes to answer.
fn with_deadline<F: std::future::Future>(
    deadline: Option<tokio::time::Instant>,
    future: F,
) -> impl std::future::Future<Output = Option<F::Output>> {
    match deadline {
        Some(at) => Either::Left(tokio::time::timeout_at(at, future).map(Result::ok)),
        None => Either::Right(future.map(Some)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a three-argument function returns, without calling it.
    fn future_size<A, B, C, F: Future>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_request_in_flight_holds_a_small_future() {
        // Every request in flight holds this future (in its HTTP/2 stream's task, or boxed on
        // HTTP/1.1), so a burst of a thousand callers holds a thousand. It was 5.4 KB while
        // routing, the `async fn` arguments and moved-from requests were part of its state.
        let size = future_size(handle);
        assert!(size <= 3 * 1024, "the request future is {size} bytes");
    }
}
