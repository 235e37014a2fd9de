//! What a Dubbo or Thrift route says about time and failure: the call's timeout, its retries and
//! fault injection (MetaRouter's Causeway extension, `docs/rules.md`). Built from the route's
//! `MetaRouteExtras` (xDS) or, through the same wire shapes, from the MetaRouter rule (local
//! mode), so both modes read one conversion.

use causeway_protocols::rules::meta_router::MetaRoute;
use causeway_protocols::xds_ext::{FaultPolicy, MetaRouteExtras, RetryPolicy};
use serde::Serialize;

/// A route's resilience policy; the default is none (listener timeout, no retries or faults).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetaPolicy {
    /// Time allowed for the whole call, retries included, in milliseconds (`None`: the
    /// listener's `request_timeout_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<MetaRetrySpec>,
    /// Fault injection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<MetaFaultSpec>,
}

/// A route's retries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaRetrySpec {
    /// Retries on top of the first try.
    pub attempts: u32,
    /// Time allowed for each try, in milliseconds (`None`: the call's timeout).
    pub per_try_timeout_ms: Option<u64>,
    /// When to retry.
    pub on: RetryOn,
}

/// The retry conditions of a route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetryOn {
    /// The connection could not be opened.
    pub connect_failure: bool,
    /// The connection closed before the answer.
    pub reset: bool,
    /// No answer within the per-try timeout.
    pub timeout: bool,
    /// Dubbo response statuses that are retried.
    pub dubbo_statuses: Vec<u8>,
    /// A Thrift `TApplicationException` reply is retried.
    pub thrift_exception: bool,
}

/// A route's fault injection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaFaultSpec {
    /// A fixed delay (milliseconds) and the fraction of calls delayed.
    pub delay: Option<(u64, f64)>,
    /// What an abort answers and the fraction of calls aborted.
    pub abort: Option<(AbortCodes, f64)>,
}

/// What an injected abort answers, per protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AbortCodes {
    /// The Dubbo status.
    pub dubbo_status: u8,
    /// The `TApplicationException` type.
    pub thrift_exception: i32,
}

// === impl MetaPolicy ===

impl MetaPolicy {
    /// The policy a route's extras carry.
    pub fn from_extras(extras: &MetaRouteExtras) -> Self {
        Self {
            timeout_ms: (extras.timeout_ms > 0).then_some(extras.timeout_ms),
            retry: extras
                .retry
                .as_ref()
                .filter(|r| r.attempts > 0)
                .map(retry_spec),
            fault: extras.fault.as_ref().map(fault_spec),
        }
    }

    /// The policy of a MetaRouter route (local mode), through the wire shapes the bridge sends.
    pub fn from_rule(route: &MetaRoute) -> Self {
        Self::from_extras(&MetaRouteExtras {
            timeout_ms: route.timeout.map_or(0, |t| {
                u64::try_from(t.get().as_millis()).unwrap_or(u64::MAX)
            }),
            retry: route.retries.as_ref().map(RetryPolicy::from),
            fault: route.fault.as_ref().map(FaultPolicy::from),
            ..MetaRouteExtras::default()
        })
    }

    /// The whole call's time in milliseconds: the route's, else `listener_ms`.
    pub fn call_timeout_ms(&self, listener_ms: u64) -> u64 {
        self.timeout_ms.unwrap_or(listener_ms)
    }
}

fn retry_spec(policy: &RetryPolicy) -> MetaRetrySpec {
    let mut on = RetryOn::default();
    for condition in &policy.retry_on {
        match condition.as_str() {
            "connect-failure" => on.connect_failure = true,
            "reset" => on.reset = true,
            "timeout" => on.timeout = true,
            "server-timeout" => on.dubbo_statuses.push(31),
            "channel-inactive" => on.dubbo_statuses.push(35),
            "bad-response" => on.dubbo_statuses.push(50),
            "service-error" => on.dubbo_statuses.push(70),
            "server-error" => on.dubbo_statuses.push(80),
            "threadpool-exhausted" => on.dubbo_statuses.push(100),
            "exception" => on.thrift_exception = true,
            // A condition this proxy does not know (a newer bridge) retries nothing more.
            _ => {}
        }
    }
    MetaRetrySpec {
        attempts: policy.attempts,
        per_try_timeout_ms: (policy.per_try_timeout_ms > 0).then_some(policy.per_try_timeout_ms),
        on,
    }
}

fn fault_spec(policy: &FaultPolicy) -> MetaFaultSpec {
    let fraction = |per_million: u32| (f64::from(per_million) / 1_000_000.0).min(1.0);
    MetaFaultSpec {
        delay: policy
            .delay
            .as_ref()
            .map(|d| (d.fixed_delay_ms, fraction(d.per_million))),
        abort: policy.abort.as_ref().map(|a| {
            (
                AbortCodes {
                    // An out-of-range or OK status from the wire: SERVICE_ERROR.
                    dubbo_status: u8::try_from(a.dubbo_status)
                        .ok()
                        .filter(|s| *s != 20 && *s != 0)
                        .unwrap_or(70),
                    thrift_exception: a.thrift_exception,
                },
                fraction(a.per_million),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use causeway_protocols::xds_ext::{FaultAbort, FaultDelay};

    use super::*;

    #[test]
    fn extras_become_a_policy() {
        let extras = MetaRouteExtras {
            timeout_ms: 1500,
            retry: Some(RetryPolicy {
                attempts: 2,
                per_try_timeout_ms: 300,
                retry_on: vec![
                    "timeout".into(),
                    "threadpool-exhausted".into(),
                    "exception".into(),
                ],
            }),
            fault: Some(FaultPolicy {
                delay: Some(FaultDelay {
                    fixed_delay_ms: 40,
                    per_million: 500_000,
                }),
                abort: Some(FaultAbort {
                    per_million: 1_000_000,
                    dubbo_status: 20,
                    thrift_exception: 1,
                }),
            }),
            ..MetaRouteExtras::default()
        };
        let policy = MetaPolicy::from_extras(&extras);
        assert_eq!(policy.call_timeout_ms(30_000), 1500);
        let retry = policy.retry.unwrap();
        assert_eq!((retry.attempts, retry.per_try_timeout_ms), (2, Some(300)));
        assert!(retry.on.timeout && retry.on.thrift_exception && !retry.on.reset);
        assert_eq!(retry.on.dubbo_statuses, [100]);
        let fault = policy.fault.unwrap();
        assert_eq!(fault.delay, Some((40, 0.5)));
        // OK is no abort status: SERVICE_ERROR instead.
        assert_eq!(fault.abort.map(|(codes, _)| codes.dubbo_status), Some(70));
        assert_eq!(
            MetaPolicy::from_extras(&MetaRouteExtras::default()),
            MetaPolicy::default()
        );
    }
}
