//! HTTP and gRPC route tables: for a service port (`<host>:<port>`) the domains it answers to and an
//! ordered list of routes, each matching the path (prefix, exact or regex) and headers
//! (VirtualService semantics: `:authority`, `:method` and `:path` are pseudo-headers) and sending to
//! weighted clusters. The first matching route wins; no match means no route.
//!
//! The shape mirrors Envoy's `RouteConfiguration` with one virtual host, which is what the bridge
//! serves over RDS. The data plane enforces route timeouts, retries ([`RetryOn`] is the parsed
//! `retry_on`), faults and mirrors; the hash policy is kept so the config dump shows it.

use std::sync::{Arc, OnceLock};

use causeway_protocols::rules::common::{Pattern, StringMatch};
use serde::Serialize;

use super::{Priority, WeightedClusters};

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

/// A retry policy: how many times a request may be sent again, the time each attempt gets and
/// which outcomes are worth another attempt (enforced by `http::retry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetrySpec {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Timeout of each attempt, in milliseconds.
    pub per_try_timeout_ms: Option<u64>,
    /// Envoy's `retry_on` conditions, comma-separated, as configured.
    pub retry_on: String,
    /// The same conditions, parsed.
    pub conditions: RetryOn,
}

// === impl RetrySpec ===

impl RetrySpec {
    /// A policy from its configured parts; `status_codes` are the `retriable-status-codes`
    /// given outside `retry_on` (xDS `retriable_status_codes`).
    pub fn new(
        attempts: u32,
        per_try_timeout_ms: Option<u64>,
        retry_on: String,
        status_codes: &[u32],
    ) -> Self {
        let mut conditions = RetryOn::parse(&retry_on);
        conditions.status_codes.extend(
            status_codes
                .iter()
                .filter_map(|code| u16::try_from(*code).ok()),
        );
        conditions.status_codes.sort_unstable();
        conditions.status_codes.dedup();
        Self {
            attempts,
            per_try_timeout_ms,
            retry_on,
            conditions,
        }
    }
}

/// Envoy's and Istio's `retry_on` conditions (the gRPC ones match a `grpc-status` in the response
/// headers, i.e. a Trailers-Only answer: a status that follows a body cannot be retried).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[allow(clippy::struct_excessive_bools)]
pub struct RetryOn {
    /// `5xx`: any 5xx status, a reset, a connect failure or an attempt that timed out.
    pub any_5xx: bool,
    /// `gateway-error`: 502, 503, 504, a reset or an attempt that timed out.
    pub gateway_error: bool,
    /// `reset`: the connection or stream closed (or the attempt timed out) before a response.
    pub reset: bool,
    /// `connect-failure`: the connection could not be opened.
    pub connect_failure: bool,
    /// `refused-stream`: the provider refused the HTTP/2 stream.
    pub refused_stream: bool,
    /// `retriable-4xx`: 409.
    pub retriable_4xx: bool,
    /// `retriable-status-codes` (and bare numbers in `retry_on`): these HTTP statuses.
    pub status_codes: Vec<u16>,
    /// gRPC codes from `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`,
    /// `unavailable`.
    pub grpc_codes: Vec<u32>,
}

// === impl RetryOn ===

impl RetryOn {
    /// Parses a comma-separated list. Unknown names are ignored (local mode validates them
    /// before they get here; a control plane may know conditions this proxy does not).
    pub fn parse(retry_on: &str) -> Self {
        let mut on = Self::default();
        let mut codes_enabled = false;
        let mut codes = Vec::new();
        for condition in retry_on.split(',').map(str::trim) {
            match condition {
                "5xx" => on.any_5xx = true,
                "gateway-error" => on.gateway_error = true,
                "reset" | "reset-before-request" => on.reset = true,
                "connect-failure" => on.connect_failure = true,
                "refused-stream" => on.refused_stream = true,
                "retriable-4xx" => on.retriable_4xx = true,
                "retriable-status-codes" => codes_enabled = true,
                "cancelled" => on.grpc_codes.push(1),
                "deadline-exceeded" => on.grpc_codes.push(4),
                "resource-exhausted" => on.grpc_codes.push(8),
                "internal" => on.grpc_codes.push(13),
                "unavailable" => on.grpc_codes.push(14),
                other => match other.parse::<u16>() {
                    // Istio writes retriable status codes into `retryOn` as numbers.
                    Ok(code) if (100..600).contains(&code) => codes.push(code),
                    _ => tracing::debug!(condition = other, "retry condition ignored"),
                },
            }
        }
        // A bare number implies `retriable-status-codes`, as Istio translates it.
        if codes_enabled || !codes.is_empty() {
            on.status_codes = codes;
        }
        on.grpc_codes.sort_unstable();
        on.grpc_codes.dedup();
        on
    }

    /// Whether an HTTP response status is worth another attempt.
    pub fn http_status(&self, status: u16) -> bool {
        (self.any_5xx && (500..600).contains(&status))
            || (self.gateway_error && matches!(status, 502..=504))
            || (self.retriable_4xx && status == 409)
            || self.status_codes.contains(&status)
    }

    /// Whether a gRPC status (from Trailers-Only response headers) is worth another attempt.
    pub fn grpc_status(&self, code: u32) -> bool {
        self.grpc_codes.contains(&code)
    }

    /// Whether a reset after the request was sent (no response) is worth another attempt.
    pub fn reset(&self) -> bool {
        self.any_5xx || self.gateway_error || self.reset
    }

    /// Whether an attempt whose per-try timeout expired is worth another attempt.
    pub fn timeout(&self) -> bool {
        self.any_5xx || self.gateway_error || self.reset || self.grpc_codes.contains(&4)
    }
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

/// Fault injection for a route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultSpec {
    /// A fixed delay (milliseconds) and the fraction of requests delayed.
    pub delay: Option<(u64, f64)>,
    /// An abort and the fraction of requests aborted.
    pub abort: Option<(AbortWith, f64)>,
}

/// A request copy sent to another cluster, fire-and-forget.
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
    /// The routing priority of the route's requests (RDS `RouteAction.priority`): which of the
    /// cluster's circuit-breaker thresholds hold them, unless their traffic class says HIGH.
    pub priority: Priority,
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
    /// The metric label values above, shared by every request.
    #[serde(skip)]
    pub metric_labels: HttpTableLabels,
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

    /// `destination_service`: the host.
    pub fn host_label(&self) -> Arc<str> {
        self.label_values().host.clone()
    }

    /// `request_method` of a gRPC `method`: an advertised one, else `other`.
    pub fn method_label_value(&self, method: &str) -> Arc<str> {
        let values = self.label_values();
        self.methods
            .iter()
            .position(|m| m.as_str() == method)
            .and_then(|i| values.methods.get(i))
            .unwrap_or(&values.other)
            .clone()
    }

    /// `destination_interface` of a gRPC `service` that names this table's host, spelt as the
    /// caller spelt it: the first spelling seen is kept and shared, others are made per request.
    pub fn interface_label(&self, service: &str) -> Arc<str> {
        let kept = self
            .label_values()
            .interface
            .get_or_init(|| Arc::from(service));
        if kept.as_ref() == service {
            kept.clone()
        } else {
            Arc::from(service)
        }
    }

    fn label_values(&self) -> &TableLabelValues {
        self.metric_labels.values.get_or_init(|| TableLabelValues {
            host: Arc::from(self.host.as_str()),
            methods: self.methods.iter().map(|m| Arc::from(m.as_str())).collect(),
            other: Arc::from("other"),
            interface: OnceLock::new(),
        })
    }
}

/// A table's metric label values, made on its first request rather than with the table: xDS
/// sets a table's `methods` after building it, and requests only ever see finished tables.
/// A copy starts empty (its fields may still change); equality ignores it (it follows them).
#[derive(Debug, Default)]
pub struct HttpTableLabels {
    values: OnceLock<TableLabelValues>,
}

#[derive(Debug)]
struct TableLabelValues {
    host: Arc<str>,
    methods: Vec<Arc<str>>,
    other: Arc<str>,
    interface: OnceLock<Arc<str>>,
}

impl Clone for HttpTableLabels {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for HttpTableLabels {
    fn eq(&self, _: &Self) -> bool {
        true
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
