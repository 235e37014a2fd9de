//! Admission for gRPC and HTTP requests: the protocol-neutral [`crate::isolation`] decision
//! (TrafficIsolation classes selected by request headers, the host's local rate limit) asked
//! once the route and cluster are known, as the Dubbo and Thrift paths do. A refused request is
//! answered by `forward` (gRPC `RESOURCE_EXHAUSTED` Trailers-Only; HTTP 503, or 429 for the
//! rate limit; flags `UO` / `RL`); an admitted one may be moved to its class's dedicated subset
//! and holds its class slot until the response ends.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method};

use super::HttpContext;
use crate::isolation::{MatchKind, Permit, Refusal, RequestAttributes};
use crate::routing::{Cluster, Priority, Snapshot, cluster_name};

/// A request's headers as admission reads them: lower-case names, and the pseudo-headers
/// `:authority`, `:method` and `:path`.
pub struct HeaderView<'a> {
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The authority (lower case).
    pub authority: &'a str,
    /// The method.
    pub method: &'a Method,
    /// Path and query.
    pub path_and_query: &'a str,
}

impl RequestAttributes for HeaderView<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            ":authority" => Some(self.authority),
            ":method" => Some(self.method.as_str()),
            ":path" => Some(self.path_and_query),
            _ => self.headers.get(name).and_then(|v| v.to_str().ok()),
        }
    }
}

/// Why a request may not go.
#[derive(Debug)]
pub enum Denied {
    /// Shed or rate limited.
    Refused(Refusal),
    /// The class's dedicated subset has no cluster in the snapshot.
    UnknownSubset(String),
}

/// An admitted request: the cluster that serves it, its class slot and its class's priority.
#[derive(Debug)]
pub struct Admitted {
    /// The routed cluster, or the class's dedicated subset.
    pub cluster: Arc<Cluster>,
    /// Held until the response ends.
    pub permit: Option<Permit>,
    /// The routing priority of the request's class (DEFAULT without one).
    pub priority: Priority,
}

/// Admits a request for `host` routed to `cluster`; hosts without a policy always pass.
pub fn admit(
    context: &HttpContext,
    snapshot: &Snapshot,
    host: &str,
    cluster: Arc<Cluster>,
    view: &HeaderView<'_>,
) -> Result<Admitted, Denied> {
    let Some(policy) = snapshot.admission(host) else {
        return Ok(Admitted {
            cluster,
            permit: None,
            priority: Priority::Default,
        });
    };
    let capacity = snapshot.host_capacity(host, cluster.port, &cluster);
    let admitted = context
        .metrics
        .admissions()
        .admit(
            host,
            policy,
            MatchKind::Headers,
            view,
            capacity,
            Instant::now(),
        )
        .map_err(Denied::Refused)?;
    let cluster = match &admitted.subset {
        // The class's dedicated subset serves it, whatever the route said.
        Some(subset) => {
            let name = cluster_name(cluster.port, subset, host);
            snapshot
                .cluster(&name)
                .cloned()
                .ok_or(Denied::UnknownSubset(name))?
        }
        None => cluster,
    };
    Ok(Admitted {
        cluster,
        priority: admitted
            .permit
            .as_ref()
            .map_or(Priority::Default, Permit::priority),
        permit: admitted.permit,
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn headers_and_pseudo_headers_are_attributes() {
        let mut headers = HeaderMap::new();
        headers.insert("x-caller-app", HeaderValue::from_static("report-nightly"));
        let view = HeaderView {
            headers: &headers,
            authority: "orders:8080",
            method: &Method::POST,
            path_and_query: "/orders?page=2",
        };
        assert_eq!(view.get("x-caller-app"), Some("report-nightly"));
        assert_eq!(view.get(":authority"), Some("orders:8080"));
        assert_eq!(view.get(":method"), Some("POST"));
        assert_eq!(view.get(":path"), Some("/orders?page=2"));
        assert_eq!(view.get("x-missing"), None);
    }
}
