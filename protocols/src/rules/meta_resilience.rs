//! Causeway's resilience extension of MetaRouter routes (Aeraki's schema has none): `timeout`,
//! `retries` and `fault`, shaped like Istio's VirtualService fields, with Dubbo and Thrift error
//! classes where Istio has HTTP ones. `docs/rules.md` documents them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::common::{Percent, RuleDuration};
use super::error::{Issues, field};
use super::virtual_service::Delay;

/// Retry conditions for Dubbo and Thrift routes.
pub const META_RETRY_CONDITIONS: &[&str] = &[
    // Every protocol: the connection could not be opened, closed before the answer, no answer
    // within the per-try timeout.
    "connect-failure",
    "reset",
    "timeout",
    // Dubbo response statuses.
    "server-timeout",
    "channel-inactive",
    "bad-response",
    "service-error",
    "server-error",
    "threadpool-exhausted",
    // Thrift: the server answered with a `TApplicationException`.
    "exception",
];

/// A route's retry policy (Istio's `HTTPRetry` shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetaRetry {
    /// Retries allowed on top of the first try; 0 turns retries off.
    #[serde(default)]
    pub attempts: u32,
    /// Time allowed for each try (absent: the route's timeout bounds them all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<RuleDuration>,
    /// Comma-separated conditions from [`META_RETRY_CONDITIONS`]; absent:
    /// `connect-failure,reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
}

impl MetaRetry {
    /// The conditions, trimmed, without empty entries; the default when none are given.
    pub fn conditions(&self) -> Vec<&str> {
        let given: Vec<&str> = self
            .retry_on
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if given.is_empty() {
            vec!["connect-failure", "reset"]
        } else {
            given
        }
    }
}

/// Fault injection on a route (Istio's `HTTPFaultInjection` shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetaFault {
    /// Delay before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Answer with an error instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<MetaAbort>,
}

/// An injected error for a share of requests, in the caller's protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetaAbort {
    /// Share of requests aborted; none when absent, as in Istio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// The Dubbo status answered (name or number); SERVICE_ERROR (70) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dubbo_status: Option<DubboStatusCode>,
    /// The `TApplicationException` type answered (name or number); INTERNAL_ERROR (6) when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thrift_exception: Option<ThriftExceptionType>,
}

/// Dubbo response statuses by the names Apache Dubbo's `Response` constants give them.
const DUBBO_STATUSES: &[(&str, u8)] = &[
    ("CLIENT_TIMEOUT", 30),
    ("SERVER_TIMEOUT", 31),
    ("CHANNEL_INACTIVE", 35),
    ("BAD_REQUEST", 40),
    ("BAD_RESPONSE", 50),
    ("SERVICE_NOT_FOUND", 60),
    ("SERVICE_ERROR", 70),
    ("SERVER_ERROR", 80),
    ("CLIENT_ERROR", 90),
    ("SERVER_THREADPOOL_EXHAUSTED_ERROR", 100),
];

/// `TApplicationException` types by Apache Thrift's names.
const THRIFT_EXCEPTIONS: &[(&str, i32)] = &[
    ("UNKNOWN", 0),
    ("UNKNOWN_METHOD", 1),
    ("INVALID_MESSAGE_TYPE", 2),
    ("WRONG_METHOD_NAME", 3),
    ("BAD_SEQUENCE_ID", 4),
    ("MISSING_RESULT", 5),
    ("INTERNAL_ERROR", 6),
    ("PROTOCOL_ERROR", 7),
    ("INVALID_TRANSFORM", 8),
    ("INVALID_PROTOCOL", 9),
    ("UNSUPPORTED_CLIENT_TYPE", 10),
];

/// A number or a name, as the YAML gives it.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrName {
    Number(i64),
    Name(String),
}

/// A Dubbo error status (not 20 OK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DubboStatusCode(pub u8);

impl<'de> Deserialize<'de> for DubboStatusCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = match NumberOrName::deserialize(deserializer)? {
            NumberOrName::Number(n) => DUBBO_STATUSES
                .iter()
                .find(|(_, code)| i64::from(*code) == n)
                .map(|(_, code)| *code),
            NumberOrName::Name(name) => DUBBO_STATUSES
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(&name))
                .map(|(_, code)| *code),
        };
        code.map(Self).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "not a Dubbo error status; expected one of {}",
                DUBBO_STATUSES
                    .iter()
                    .map(|(name, code)| format!("{name} ({code})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

impl Serialize for DubboStatusCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.0)
    }
}

/// A `TApplicationException` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThriftExceptionType(pub i32);

impl<'de> Deserialize<'de> for ThriftExceptionType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = match NumberOrName::deserialize(deserializer)? {
            NumberOrName::Number(n) => THRIFT_EXCEPTIONS
                .iter()
                .find(|(_, code)| i64::from(*code) == n)
                .map(|(_, code)| *code),
            NumberOrName::Name(name) => THRIFT_EXCEPTIONS
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(&name))
                .map(|(_, code)| *code),
        };
        code.map(Self).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "not a TApplicationException type; expected one of {}",
                THRIFT_EXCEPTIONS
                    .iter()
                    .map(|(name, code)| format!("{name} ({code})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

impl Serialize for ThriftExceptionType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(self.0)
    }
}

/// Checks a route's resilience fields (the field-local ones were checked while parsing).
pub(crate) fn validate(
    issues: &mut Issues,
    path: &str,
    timeout: Option<RuleDuration>,
    retries: Option<&MetaRetry>,
    fault: Option<&MetaFault>,
) {
    if let Some(timeout) = timeout
        && timeout.get() < std::time::Duration::from_millis(1)
    {
        issues.add(
            field(path, "timeout"),
            format!("must be at least 1ms, got {timeout}"),
        );
    }
    if let Some(retries) = retries {
        let at = field(path, "retries");
        if let Some(per_try) = retries.per_try_timeout
            && per_try.get() < std::time::Duration::from_millis(1)
        {
            issues.add(
                field(&at, "perTryTimeout"),
                format!("must be at least 1ms, got {per_try}"),
            );
        }
        for condition in retries.conditions() {
            if !META_RETRY_CONDITIONS.contains(&condition) {
                issues.add(
                    field(&at, "retryOn"),
                    format!(
                        "unknown retry condition `{condition}`; expected {}",
                        META_RETRY_CONDITIONS.join(", ")
                    ),
                );
            }
        }
    }
    if let Some(fault) = fault
        && fault.delay.is_none()
        && fault.abort.is_none()
    {
        issues.add(field(path, "fault"), "give `delay`, `abort` or both");
    }
}
