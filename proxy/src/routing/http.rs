//! HTTP and gRPC route tables: for a service port (`<host>:<port>`) the domains it answers to and an
//! ordered list of routes, each matching the path (prefix, exact or regex) and headers
//! (VirtualService semantics: `:authority`, `:method` and `:path` are pseudo-headers) and sending to
//! weighted clusters. The first matching route wins; no match means no route.
//!
//! The shape mirrors Envoy's `RouteConfiguration` with one virtual host, which is what the bridge
//! serves over RDS. Route timeouts are enforced by the data plane; retries, faults, mirrors and the
//! hash policy are kept here so the config dump shows them and later features can use them.

use std::sync::Arc;

use causeway_protocols::rules::common::{Pattern, StringMatch};
use serde::Serialize;

use super::WeightedClusters;

/// How a route matches the request path (the query string is not part of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// The path starts with this (`/` matches everything).
    Prefix(String),
    /// The path equals this.
    Exact(String),
    /// The whole path matches this regular expression.
    Regex(Pattern),
}

// === impl PathMatch ===

impl PathMatch {
    /// Whether `path` satisfies the match.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Self::Exact(exact) => path == exact,
            Self::Regex(pattern) => pattern.is_match(path),
        }
    }
}

/// A retry policy (enforced in a later release; kept so the config dump shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetrySpec {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Timeout of each attempt, in milliseconds.
    pub per_try_timeout_ms: Option<u64>,
    /// Envoy's `retry_on` conditions, comma-separated.
    pub retry_on: String,
}

/// What an injected abort answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortWith {
    /// An HTTP status.
    Http(u16),
    /// A gRPC status code.
    Grpc(u32),
}

/// Fault injection for a route (enforced in a later release).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultSpec {
    /// A fixed delay (milliseconds) and the fraction of requests delayed.
    pub delay: Option<(u64, f64)>,
    /// An abort and the fraction of requests aborted.
    pub abort: Option<(AbortWith, f64)>,
}

/// A request copy sent to another cluster (enforced in a later release).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MirrorSpec {
    /// The cluster the copy goes to.
    pub cluster: Arc<str>,
    /// The fraction of requests copied.
    pub fraction: f64,
}

/// What a consistent-hash destination hashes for an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashPolicy {
    /// A request header's value.
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// The caller's IP address.
    SourceIp,
    /// A query parameter's value.
    QueryParameter(String),
}

/// One route: every condition must hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpRoute {
    /// Name for logs and the config dump.
    pub name: String,
    /// The path condition.
    pub path: PathMatch,
    /// Header conditions; names are lower case (`:authority`, `:method`, `:path` included).
    pub headers: Vec<(String, StringMatch)>,
    /// Where matching requests go.
    pub destinations: WeightedClusters,
    /// Time allowed for the whole exchange, in milliseconds (`None`: no limit, so long-lived
    /// streams are not cut).
    pub timeout_ms: Option<u64>,
    /// Retries.
    pub retries: Option<RetrySpec>,
    /// Fault injection.
    pub fault: Option<FaultSpec>,
    /// Mirrors.
    pub mirrors: Vec<MirrorSpec>,
    /// Consistent-hash input.
    pub hash_policy: Option<HashPolicy>,
}

/// What routing needs to know about an HTTP request.
pub trait HttpAttributes {
    /// The path, without the query string.
    fn path(&self) -> &str;
    /// A header's value (several values joined by `,`); pseudo-headers `:authority`, `:method`
    /// and `:path` included. Names are lower case.
    fn header(&self, name: &str) -> Option<String>;
}

// === impl HttpRoute ===

impl HttpRoute {
    /// Whether the request satisfies every condition.
    pub fn matches(&self, request: &impl HttpAttributes) -> bool {
        self.path.matches(request.path())
            && self
                .headers
                .iter()
                .all(|(name, m)| request.header(name).is_some_and(|value| m.matches(&value)))
    }
}

/// The routes of one service port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpRouteTable {
    /// Name: `<host>:<port>`, as the bridge names listeners and route configurations.
    pub name: String,
    /// The service host (a metric label: `destination_service`).
    pub host: String,
    /// Authorities this table answers (lower case, with or without port); `<host>` matches a
    /// request for the host on any port.
    pub domains: Vec<String>,
    /// Ordered routes; first match wins.
    pub routes: Vec<HttpRoute>,
    /// gRPC methods the provider advertises: the only `request_method` values for gRPC calls
    /// (others are counted as `other`).
    pub methods: Vec<String>,
}

// === impl HttpRouteTable ===

impl HttpRouteTable {
    /// The first route the request matches.
    pub fn route(&self, request: &impl HttpAttributes) -> Option<&HttpRoute> {
        self.routes.iter().find(|route| route.matches(request))
    }

    /// The bounded metric value for a gRPC `method`.
    pub fn method_label(&self, method: &str) -> &str {
        self.methods
            .iter()
            .find(|m| m.as_str() == method)
            .map_or("other", String::as_str)
    }
}

/// Strips the port of an authority (`host:port` → `host`; IPv6 literals keep their brackets).
pub fn authority_host(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .and_then(|end| authority.get(..=end))
            .unwrap_or(authority);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}
