//! What each protocol counts as an error or a gateway error for the outlier detector (the
//! detector itself, shared by every protocol, is [`crate::lb::outlier`]), and the detector's
//! policy from the bridge's CDS or the local rules.
//!
//! | protocol | gateway error | error | not counted |
//! |---|---|---|---|
//! | every one | connect failure, connection closed or reset before the answer, no answer in time | | the caller went away |
//! | Dubbo | provider status 100 THREADPOOL_EXHAUSTED, 35 CHANNEL_INACTIVE | 31 SERVER_TIMEOUT, 50 BAD_RESPONSE, 70 SERVICE_ERROR, 80 SERVER_ERROR | 40 BAD_REQUEST, 60 SERVICE_NOT_FOUND, 90 CLIENT_ERROR (the caller's), 20 OK with a business exception (a result) |
//! | Thrift | | a `TApplicationException` from the server | a reply (declared exceptions are results) |
//! | gRPC | UNAVAILABLE | INTERNAL, UNKNOWN, DATA_LOSS, DEADLINE_EXCEEDED from the provider | every other status |
//! | HTTP | 502, 503, 504 | other 5xx | below 500 |

use causeway_protocols::dubbo::Status;
use causeway_protocols::grpc::Code;
use causeway_protocols::rules::destination_rule::OutlierDetection as RuleOutlier;
use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection as EnvoyOutlier;
use envoy_types::pb::google::protobuf::Duration as PbDuration;

use std::net::SocketAddr;
use std::time::Instant;

use crate::lb::{Balancer, EndpointState, Verdict};
use crate::metrics::{Metrics, ResponseFlags};
use crate::routing::{Cluster, OutlierPolicy};

/// A connection to `endpoint` (an endpoint of `cluster` at `address`) could not be opened,
/// for any protocol: the endpoint is ejected (connect failures eject with or without outlier
/// detection) and the failure counted in `causeway_proxy_upstream_connect_failures_total`.
pub fn connect_failed(
    balancer: &Balancer,
    metrics: &Metrics,
    (cluster, endpoint, address): (&Cluster, &EndpointState, SocketAddr),
    error: &dyn std::fmt::Display,
) {
    let ejected = balancer.connect_failed(cluster, endpoint, Instant::now());
    tracing::debug!(cluster = %cluster.name, %address, %error, ?ejected, "connect failed; endpoint ejected");
    metrics.connect_failure(&cluster.name);
}

/// A failure the proxy saw itself (its `response_flags`), as a verdict on the endpoint.
pub fn local_verdict(flags: ResponseFlags) -> Verdict {
    match flags {
        ResponseFlags::UpstreamConnectFailure
        | ResponseFlags::UpstreamConnectionTermination
        | ResponseFlags::UpstreamTimeout => Verdict::GatewayError,
        ResponseFlags::None => Verdict::Success,
        // The request never reached an endpoint, or the caller left: says nothing about it.
        _ => Verdict::Ignored,
    }
}

/// A Dubbo provider's response status.
pub fn dubbo_verdict(status: Status) -> Verdict {
    match status {
        Status::OK => Verdict::Success,
        Status::SERVER_THREADPOOL_EXHAUSTED | Status::CHANNEL_INACTIVE => Verdict::GatewayError,
        Status::SERVER_TIMEOUT
        | Status::BAD_RESPONSE
        | Status::SERVICE_ERROR
        | Status::SERVER_ERROR
        | Status::SERIALIZATION_ERROR => Verdict::Error,
        _ => Verdict::Ignored,
    }
}

/// A Thrift server's reply: `exception` when it is a `TApplicationException`.
pub fn thrift_verdict(exception: bool) -> Verdict {
    if exception {
        Verdict::Error
    } else {
        Verdict::Success
    }
}

/// A gRPC provider's status.
pub fn grpc_verdict(code: u32) -> Verdict {
    match Code::from_u32(code) {
        Some(Code::Ok) => Verdict::Success,
        Some(Code::Unavailable) => Verdict::GatewayError,
        Some(Code::Internal | Code::Unknown | Code::DataLoss | Code::DeadlineExceeded) => {
            Verdict::Error
        }
        _ => Verdict::Success,
    }
}

/// An HTTP provider's status.
pub fn http_verdict(status: u16) -> Verdict {
    match status {
        502..=504 => Verdict::GatewayError,
        500..=599 => Verdict::Error,
        _ => Verdict::Success,
    }
}

fn millis(duration: Option<&PbDuration>, default: u64) -> u64 {
    duration
        .filter(|d| d.seconds >= 0 && d.nanos >= 0)
        .map_or(default, |d| {
            (d.seconds as u64)
                .saturating_mul(1000)
                .saturating_add(u64::from(d.nanos.unsigned_abs()) / 1_000_000)
        })
}

/// The policy of a CDS cluster's `outlier_detection`, with Envoy's defaults for what it leaves
/// out: consecutive 5xx at 5 and enforced, consecutive gateway failures only when enforced,
/// 10 s interval, 30 s base ejection, 10 % maximum.
pub fn policy_from_envoy(outlier: &EnvoyOutlier) -> OutlierPolicy {
    let defaults = OutlierPolicy::default();
    let enforced = |enforcing: Option<u32>, default: u32| enforcing.unwrap_or(default) > 0;
    let consecutive_errors = enforced(outlier.enforcing_consecutive_5xx.map(|v| v.value), 100)
        .then(|| outlier.consecutive_5xx.map_or(5, |v| v.value))
        .filter(|&n| n > 0);
    let consecutive_gateway_errors = enforced(
        outlier
            .enforcing_consecutive_gateway_failure
            .map(|v| v.value),
        0,
    )
    .then(|| outlier.consecutive_gateway_failure.map_or(5, |v| v.value))
    .filter(|&n| n > 0);
    OutlierPolicy {
        consecutive_errors,
        consecutive_gateway_errors,
        interval_ms: millis(outlier.interval.as_ref(), defaults.interval_ms).max(1),
        base_ejection_ms: millis(
            outlier.base_ejection_time.as_ref(),
            defaults.base_ejection_ms,
        )
        .max(1),
        max_ejection_percent: outlier
            .max_ejection_percent
            .map_or(defaults.max_ejection_percent, |v| v.value.min(100)),
    }
}

/// The policy of a DestinationRule's `outlierDetection` (local mode), as the bridge would serve
/// it: `consecutive5xxErrors` defaults to 5 (0 turns it off), `consecutiveGatewayErrors` counts
/// only when set.
pub fn policy_from_rule(rule: &RuleOutlier) -> OutlierPolicy {
    let defaults = OutlierPolicy::default();
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    OutlierPolicy {
        consecutive_errors: Some(rule.consecutive_5xx_errors.unwrap_or(5)).filter(|&n| n > 0),
        consecutive_gateway_errors: rule.consecutive_gateway_errors.filter(|&n| n > 0),
        interval_ms: rule.interval.map_or(defaults.interval_ms, |d| ms(d.get())),
        base_ejection_ms: rule
            .base_ejection_time
            .map_or(defaults.base_ejection_ms, |d| ms(d.get())),
        max_ejection_percent: rule
            .max_ejection_percent
            .map_or(defaults.max_ejection_percent, |p| p.min(100)),
    }
}

/// How often the ejected-endpoints gauge is refreshed: ejections and returns show within this.
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Keeps `causeway_proxy_outlier_ejected_endpoints` true: every [`PUBLISH_EVERY`], the number of
/// ejected endpoints of every cluster of the snapshot in force (an ejection ends by itself when
/// its time is up; this only makes the return visible). Runs until dropped.
pub async fn publish_ejections(
    balancer: std::sync::Arc<crate::lb::Balancer>,
    store: std::sync::Arc<crate::state::SnapshotStore>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snapshot = store.load();
        let now = std::time::Instant::now();
        for cluster in snapshot.clusters.values() {
            let ejected = balancer.ejected_count(cluster, now);
            metrics
                .resilience
                .set_ejected(&cluster.host, &cluster.name, ejected);
        }
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::UInt32Value;

    use super::*;

    #[test]
    fn envoy_defaults_and_enforcement() {
        let policy = policy_from_envoy(&EnvoyOutlier::default());
        assert_eq!(policy, OutlierPolicy::default());
        let policy = policy_from_envoy(&EnvoyOutlier {
            consecutive_5xx: Some(UInt32Value { value: 3 }),
            consecutive_gateway_failure: Some(UInt32Value { value: 2 }),
            enforcing_consecutive_gateway_failure: Some(UInt32Value { value: 100 }),
            interval: Some(PbDuration {
                seconds: 1,
                nanos: 0,
            }),
            base_ejection_time: Some(PbDuration {
                seconds: 0,
                nanos: 500_000_000,
            }),
            max_ejection_percent: Some(UInt32Value { value: 50 }),
            ..EnvoyOutlier::default()
        });
        assert_eq!(
            policy,
            OutlierPolicy {
                consecutive_errors: Some(3),
                consecutive_gateway_errors: Some(2),
                interval_ms: 1000,
                base_ejection_ms: 500,
                max_ejection_percent: 50,
            }
        );
        let off = policy_from_envoy(&EnvoyOutlier {
            enforcing_consecutive_5xx: Some(UInt32Value { value: 0 }),
            ..EnvoyOutlier::default()
        });
        assert_eq!(off.consecutive_errors, None);
    }

    #[test]
    fn protocol_classes() {
        assert_eq!(dubbo_verdict(Status::OK), Verdict::Success);
        assert_eq!(dubbo_verdict(Status::SERVER_ERROR), Verdict::Error);
        assert_eq!(
            dubbo_verdict(Status::SERVER_THREADPOOL_EXHAUSTED),
            Verdict::GatewayError
        );
        assert_eq!(dubbo_verdict(Status::BAD_REQUEST), Verdict::Ignored);
        assert_eq!(grpc_verdict(14), Verdict::GatewayError);
        assert_eq!(grpc_verdict(13), Verdict::Error);
        assert_eq!(grpc_verdict(5), Verdict::Success);
        assert_eq!(http_verdict(503), Verdict::GatewayError);
        assert_eq!(http_verdict(500), Verdict::Error);
        assert_eq!(http_verdict(404), Verdict::Success);
        assert_eq!(thrift_verdict(true), Verdict::Error);
        assert_eq!(
            local_verdict(ResponseFlags::UpstreamTimeout),
            Verdict::GatewayError
        );
        assert_eq!(local_verdict(ResponseFlags::NoRoute), Verdict::Ignored);
    }
}
