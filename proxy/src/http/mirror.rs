//! Request mirroring for gRPC and HTTP routes (VirtualService `mirror` + `mirrorPercentage`,
//! RDS `request_mirror_policies`): a share of a route's requests is copied to another cluster,
//! fire-and-forget. The copy never delays or fails the primary call:
//!
//! - it runs in its own task, started before the primary is forwarded, and waits for the
//!   primary's body to be recorded ([`Tape`]); a body over 64 KiB or never completed is not
//!   copied (`causeway_proxy_mirror_skipped_total`);
//! - at most [`MAX_IN_FLIGHT`] copies are under way per proxy; beyond that a copy is dropped at
//!   once (`causeway_proxy_mirror_dropped_total`);
//! - its authority is suffixed `-shadow` (before the port), as Envoy does, so the mirror can tell
//!   copies from real calls; its response is read and discarded, its failures only logged;
//! - it counts in `causeway_proxy_mirrored_requests_total` when it is sent, not in the Istio
//!   request metrics (the caller made one request).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Uri, Version};
use http_body_util::BodyExt as _;
use tokio::sync::Semaphore;

use super::HttpContext;
use super::body::{InFlight, RequestBody};
use super::tape::Tape;
use super::upstream::Sender;
use crate::lb::RequestKey;
use crate::metrics::Protocol;
use crate::routing::http::authority_host;
use crate::routing::{Cluster, Priority};

/// Copies under way at once, per proxy.
pub const MAX_IN_FLIGHT: usize = 64;
/// How long a copy waits for the primary's body, and for its own response.
const COPY_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound on copies in flight.
#[derive(Debug)]
pub struct MirrorSlots(Arc<Semaphore>);

impl Default for MirrorSlots {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(MAX_IN_FLIGHT)))
    }
}

/// What a copy is made of: the primary's head (hop-by-hop headers already removed).
#[derive(Debug, Clone)]
pub struct Head {
    /// The method.
    pub method: Method,
    /// Path and query.
    pub path_and_query: String,
    /// The authority as the caller sent it (may be empty).
    pub authority: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Whether the copy goes out as HTTP/2 (gRPC).
    pub h2: bool,
}

/// Envoy's shadow authority: `host-shadow`, the port kept after it.
pub fn shadow_authority(authority: &str) -> String {
    let host = authority_host(authority);
    let port = authority.get(host.len()..).unwrap_or_default();
    format!("{host}-shadow{port}")
}

/// Starts one copy of a request to `cluster`; returns at once.
pub fn spawn(
    context: &Arc<HttpContext>,
    cluster: Arc<Cluster>,
    service: Arc<str>,
    protocol: Protocol,
    head: Head,
    tape: Arc<Tape>,
) {
    let resilience = &context.metrics.resilience;
    let Ok(slot) = context.mirror_slots.0.clone().try_acquire_owned() else {
        resilience.mirror_dropped(&service, protocol);
        return;
    };
    let context = context.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let Some(recording) = tape.settled(COPY_TIMEOUT).await else {
            context
                .metrics
                .resilience
                .mirror_skipped(&service, protocol);
            return;
        };
        let body = RequestBody::replay(recording);
        if let Err(error) = send(&context, &cluster, &service, protocol, head, body).await {
            tracing::debug!(cluster = %cluster.name, %error, "mirrored request failed");
        }
    });
}

async fn send(
    context: &HttpContext,
    cluster: &Arc<Cluster>,
    service: &Arc<str>,
    protocol: Protocol,
    head: Head,
    body: RequestBody,
) -> Result<(), String> {
    let key = RequestKey {
        method: "",
        interface: "",
        attachment: None,
    };
    let mut rng = fastrand::Rng::new();
    let (index, state) = context
        .balancer
        .choose(cluster, &key, &[], &mut rng, Instant::now())
        .ok_or("no healthy endpoint")?;
    let address: SocketAddr = cluster.endpoints.get(index).ok_or("endpoint gone")?.address;
    let connect_timeout = Duration::from_millis(cluster.breaker.connect_timeout_ms);
    let sender = context
        .upstreams
        .sender(
            address,
            head.h2,
            connect_timeout,
            protocol,
            // Copies are DEFAULT priority, as Envoy's shadow requests are.
            (
                context.breakers.of(cluster, Priority::Default),
                cluster.breaker.at(Priority::Default),
            ),
        )
        .await
        .map_err(|e| format!("connect to {address}: {e}"))?;
    let authority = if head.authority.is_empty() {
        address.to_string()
    } else {
        head.authority.clone()
    };
    let shadow = shadow_authority(&authority);
    let mut request = Request::new(body);
    *request.method_mut() = head.method;
    *request.headers_mut() = head.headers;
    if head.h2 {
        *request.version_mut() = Version::HTTP_2;
        request.headers_mut().remove(header::HOST);
        *request.uri_mut() = format!("http://{shadow}{}", head.path_and_query)
            .parse::<Uri>()
            .map_err(|e| e.to_string())?;
    } else {
        *request.version_mut() = Version::HTTP_11;
        *request.uri_mut() = head
            .path_and_query
            .parse::<Uri>()
            .map_err(|e| e.to_string())?;
        let host = HeaderValue::from_str(&shadow).map_err(|e| e.to_string())?;
        request.headers_mut().insert(header::HOST, host);
    }
    // The copy loads the mirror's endpoint like any request, so balancing there stays true.
    let load = context
        .breakers
        .of(cluster, Priority::Default)
        .requests()
        .clone();
    load.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight::new(state, load, context.metrics.upstream_in_flight().clone());
    context.metrics.resilience.mirrored(service, protocol);
    let exchange = async {
        let response = match sender {
            Sender::Http2(mut sender) => sender.send_request(request).await,
            Sender::Http1(mut sender) => sender.send_request(request).await,
        }
        .map_err(|e| e.to_string())?;
        // Read to the end so the provider is not reset mid-answer; the content is discarded.
        response
            .into_body()
            .collect()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(COPY_TIMEOUT, exchange)
        .await
        .map_err(|_| "no complete response in time".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_suffix_goes_before_the_port() {
        assert_eq!(shadow_authority("greeter:8080"), "greeter-shadow:8080");
        assert_eq!(shadow_authority("greeter"), "greeter-shadow");
        assert_eq!(shadow_authority("[::1]:80"), "[::1]-shadow:80");
    }
}
