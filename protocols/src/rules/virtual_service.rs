//! Istio's `VirtualService` (`networking.istio.io/v1`, also `v1beta1` and `v1alpha3`) for HTTP and
//! gRPC: ordered routes matched on URI, authority, headers, caller labels and port, each sending
//! weighted traffic to subsets, with timeout, retries, fault injection and mirroring.
//!
//! gRPC is HTTP/2 here: match a service or method with a `uri` prefix such as
//! `/helloworld.Greeter/`. Fields Causeway does not enforce (`tcp`, `tls`, `gateways`, `rewrite`,
//! `exportTo`, …) are rejected rather than silently ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{
    Destination, Percent, RouteDestination, RuleDuration, StringMatch, check_destination,
    check_host, check_port, check_route_destinations,
};
use super::error::{Issues, field, index};
use super::resource::RuleKind;

/// The body of a VirtualService.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Hosts the routes apply to (exact, `*.suffix`, or `*`).
    pub hosts: Vec<String>,
    /// Ordered HTTP/gRPC routes; the first match wins.
    #[serde(default)]
    pub http: Vec<HttpRoute>,
}

impl RuleKind for VirtualServiceSpec {
    const KIND: &'static str = "VirtualService";
    const API_VERSIONS: &'static [&'static str] = &[
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ];
}

/// One HTTP/gRPC route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRoute {
    /// Name for logs and stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Alternatives (OR); the fields inside one alternative must all match (AND). Empty matches
    /// every request.
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
    /// Overall timeout of the request, retries included (`0s` disables it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<RuleDuration>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Fault injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFault>,
    /// Where requests are copied to (responses are discarded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Share of requests mirrored; all of them when absent, as in Istio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
}

/// Match conditions of one alternative; all present fields must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Name for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The request path (for gRPC `/package.Service/Method`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// The `Host`/`:authority` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Header name → match (`{}` checks presence).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Labels the calling workload must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// The port the request was addressed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

/// Istio's `HTTPRetry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRetry {
    /// Retries allowed (on top of the first try).
    #[serde(default)]
    pub attempts: u32,
    /// Timeout of each try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<RuleDuration>,
    /// Comma-separated conditions (`5xx`, `gateway-error`, `connect-failure`, `unavailable`, a
    /// status code, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
}

/// Retry conditions Envoy and Istio know (HTTP and gRPC), besides numeric status codes.
const RETRY_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

impl HttpRetry {
    /// The retry conditions, trimmed, without empty entries.
    pub fn conditions(&self) -> Vec<&str> {
        self.retry_on
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }
}

/// Istio's `HTTPFaultInjection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpFault {
    /// Delay before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Answer with an error instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
}

/// A fixed delay for a share of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Delay {
    /// Share of requests delayed; none when absent, as in Istio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// The delay.
    pub fixed_delay: RuleDuration,
}

/// An injected error for a share of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawAbort", rename_all = "camelCase")]
pub struct Abort {
    /// Share of requests aborted; none when absent, as in Istio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// The error answered.
    #[serde(flatten)]
    pub status: AbortStatus,
}

/// The error an abort answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AbortStatus {
    /// An HTTP status, 200..=599.
    HttpStatus(u16),
    /// A gRPC status.
    GrpcStatus(GrpcCode),
}

/// gRPC status codes by their canonical names, as Istio's `grpcStatus` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(
    missing_docs,
    reason = "the canonical gRPC code names document themselves"
)]
pub enum GrpcCode {
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl GrpcCode {
    /// The numeric code.
    pub fn code(self) -> u32 {
        self as u32
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAbort {
    #[serde(default)]
    percentage: Option<Percent>,
    #[serde(default)]
    http_status: Option<u32>,
    #[serde(default)]
    grpc_status: Option<GrpcCode>,
}

impl TryFrom<RawAbort> for Abort {
    type Error = String;

    fn try_from(raw: RawAbort) -> Result<Self, String> {
        let status = match (raw.http_status, raw.grpc_status) {
            (Some(status), None) => match u16::try_from(status) {
                Ok(status) if (200..=599).contains(&status) => AbortStatus::HttpStatus(status),
                _ => return Err(format!("httpStatus {status} is outside 200..599")),
            },
            (None, Some(code)) => AbortStatus::GrpcStatus(code),
            _ => return Err("give exactly one of `httpStatus` and `grpcStatus`".to_owned()),
        };
        Ok(Self {
            percentage: raw.percentage,
            status,
        })
    }
}

impl VirtualServiceSpec {
    pub(crate) fn validate(&self, issues: &mut Issues) {
        if self.hosts.is_empty() {
            issues.add("hosts", "at least one host is required");
        }
        for (i, host) in self.hosts.iter().enumerate() {
            issues.check(index("hosts", i), check_host(host, true));
        }
        if self.http.is_empty() {
            issues.add("http", "at least one route is required");
        }
        for (i, route) in self.http.iter().enumerate() {
            route.validate(issues, &index("http", i));
        }
    }
}

impl HttpRoute {
    fn validate(&self, issues: &mut Issues, path: &str) {
        for (i, alternative) in self.matches.iter().enumerate() {
            let at = index(&field(path, "match"), i);
            if alternative.headers.keys().any(String::is_empty) {
                issues.add(field(&at, "headers"), "header names must not be empty");
            }
            if let Some(port) = alternative.port {
                issues.check(field(&at, "port"), check_port(port));
            }
        }
        check_route_destinations(issues, &field(path, "route"), &self.route);
        if let Some(retries) = &self.retries {
            let at = field(path, "retries");
            for condition in retries.conditions() {
                let known = RETRY_CONDITIONS.contains(&condition)
                    || condition
                        .parse::<u16>()
                        .is_ok_and(|code| (100..=599).contains(&code));
                if !known {
                    issues.add(
                        field(&at, "retryOn"),
                        format!("unknown retry condition `{condition}`"),
                    );
                }
            }
        }
        if let Some(fault) = &self.fault
            && fault.delay.is_none()
            && fault.abort.is_none()
        {
            issues.add(field(path, "fault"), "give `delay`, `abort` or both");
        }
        if let Some(mirror) = &self.mirror {
            check_destination(issues, &field(path, "mirror"), mirror);
        } else if self.mirror_percentage.is_some() {
            issues.add(
                field(path, "mirrorPercentage"),
                "`mirrorPercentage` needs a `mirror`",
            );
        }
    }
}
