//! Whether a gRPC or HTTP attempt that went wrong is sent again, pure: the route's retry policy
//! ([`RetrySpec`]), what the attempt ended with, and how many retries were made. The retry
//! budget (`resilience::retry`) has the last word and is asked by the caller.
//!
//! - A request that never left (the connection could not be opened, or was found closed before
//!   the request was written) is always safe to send elsewhere: up to [`UNSENT_RETRIES`]
//!   retries (or the route's `attempts`, if more), whatever the route says.
//! - A request that was sent is retried only under the route's policy: at most `attempts`
//!   retries, only for the outcomes `retry_on` names, and only when its body was recorded in
//!   full (`tape`: bodies up to 64 KiB that the caller finished sending).

use causeway_protocols::grpc::Status;
use http::{HeaderMap, StatusCode};

use crate::resilience::metrics::RetryReason;
use crate::routing::http::{RetryOn, RetrySpec};

/// Retries of never-sent requests allowed without a retry policy (three endpoints in all).
pub const UNSENT_RETRIES: u32 = 2;

/// How an attempt went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The connection could not be opened (never sent).
    ConnectFailure,
    /// The connection was found closed before the request was written (never sent).
    Unsent,
    /// The connection or stream closed after the request was sent, before a response.
    Reset,
    /// The attempt's per-try timeout expired before the response headers.
    Timeout,
    /// The provider answered with a status `retry_on` names.
    Status,
}

// === impl Outcome ===

impl Outcome {
    /// Whether the provider never saw the request.
    pub fn unsent(self) -> bool {
        matches!(self, Self::ConnectFailure | Self::Unsent)
    }

    /// The `reason` label of `causeway_proxy_retries_total`.
    pub fn reason(self) -> RetryReason {
        match self {
            Self::ConnectFailure => RetryReason::ConnectFailure,
            Self::Unsent | Self::Reset => RetryReason::Reset,
            Self::Timeout => RetryReason::Timeout,
            Self::Status => RetryReason::RetriableStatus,
        }
    }
}

/// Whether the route's conditions name this outcome (never-sent ones are always worth it).
fn named(on: &RetryOn, outcome: Outcome) -> bool {
    match outcome {
        Outcome::ConnectFailure | Outcome::Unsent => true,
        Outcome::Reset => on.reset(),
        Outcome::Timeout => on.timeout(),
        // Checked on the response itself (`retriable_response`).
        Outcome::Status => true,
    }
}

/// What follows an attempt that went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Another attempt (if the retry budget agrees).
    Retry,
    /// The policy wants another attempt but its attempt limit is reached: the caller gets this
    /// attempt's outcome (`URX` when it is an answer), and the refusal is counted.
    Exhausted,
    /// Nothing to retry: no policy for this outcome, or the body cannot be sent again.
    Stop,
}

/// What follows an attempt that ended with `outcome`, after `retries` retries; `replayable`
/// says whether the whole body was recorded.
pub fn next(spec: Option<&RetrySpec>, outcome: Outcome, retries: u32, replayable: bool) -> Next {
    let attempts = spec.map_or(0, |s| s.attempts);
    if outcome.unsent() {
        // As on the Dubbo and Thrift paths: the end of the endpoints to try, not a refusal.
        return if retries < attempts.max(UNSENT_RETRIES) {
            Next::Retry
        } else {
            Next::Stop
        };
    }
    let Some(spec) = spec else {
        return Next::Stop;
    };
    if !replayable || !named(&spec.conditions, outcome) {
        return Next::Stop;
    }
    if retries < attempts {
        Next::Retry
    } else {
        Next::Exhausted
    }
}

/// Whether a response (its head) is one the policy retries: an HTTP status it names, or for
/// gRPC a Trailers-Only answer whose `grpc-status` it names.
pub fn retriable_response(
    on: &RetryOn,
    grpc: bool,
    status: StatusCode,
    headers: &HeaderMap,
) -> bool {
    if on.http_status(status.as_u16()) {
        return true;
    }
    grpc && Status::from_headers(headers).is_some_and(|s| on.grpc_status(s.code.as_u32()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(attempts: u32, retry_on: &str) -> RetrySpec {
        RetrySpec::new(attempts, None, retry_on.to_owned(), &[])
    }

    #[test]
    fn never_sent_requests_go_elsewhere_without_a_policy_but_sent_ones_do_not() {
        assert_eq!(next(None, Outcome::ConnectFailure, 0, false), Next::Retry);
        assert_eq!(next(None, Outcome::Unsent, 1, false), Next::Retry);
        assert_eq!(next(None, Outcome::ConnectFailure, 2, false), Next::Stop);
        assert_eq!(next(None, Outcome::Reset, 0, true), Next::Stop);
        assert_eq!(next(None, Outcome::Status, 0, true), Next::Stop);
    }

    #[test]
    fn sent_requests_follow_the_policy_and_need_their_body() {
        let policy = spec(2, "5xx");
        assert_eq!(next(Some(&policy), Outcome::Status, 0, true), Next::Retry);
        assert_eq!(next(Some(&policy), Outcome::Timeout, 1, true), Next::Retry);
        assert_eq!(
            next(Some(&policy), Outcome::Status, 2, true),
            Next::Exhausted
        );
        assert_eq!(
            next(Some(&policy), Outcome::Status, 0, false),
            Next::Stop,
            "no body"
        );
        let grpc_only = spec(3, "unavailable");
        assert_eq!(next(Some(&grpc_only), Outcome::Reset, 0, true), Next::Stop);
        assert_eq!(
            next(Some(&grpc_only), Outcome::Timeout, 3, true),
            Next::Stop
        );
        let deadline = spec(3, "deadline-exceeded");
        assert_eq!(
            next(Some(&deadline), Outcome::Timeout, 0, true),
            Next::Retry
        );
        let reset = spec(1, "reset");
        assert_eq!(next(Some(&reset), Outcome::Reset, 0, true), Next::Retry);
        assert_eq!(next(Some(&reset), Outcome::Reset, 1, true), Next::Exhausted);
    }

    #[test]
    fn responses_are_matched_by_http_status_and_trailers_only_grpc_status() {
        let on = RetryOn::parse("gateway-error,retriable-4xx,418,unavailable,resource-exhausted");
        let none = HeaderMap::new();
        assert!(retriable_response(
            &on,
            false,
            StatusCode::BAD_GATEWAY,
            &none
        ));
        assert!(retriable_response(&on, false, StatusCode::CONFLICT, &none));
        assert!(retriable_response(
            &on,
            false,
            StatusCode::IM_A_TEAPOT,
            &none
        ));
        assert!(!retriable_response(
            &on,
            false,
            StatusCode::INTERNAL_SERVER_ERROR,
            &none
        ));
        let mut unavailable = HeaderMap::new();
        unavailable.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert!(retriable_response(&on, true, StatusCode::OK, &unavailable));
        let mut exhausted = HeaderMap::new();
        exhausted.insert("grpc-status", http::HeaderValue::from_static("8"));
        assert!(retriable_response(&on, true, StatusCode::OK, &exhausted));
        let mut internal = HeaderMap::new();
        internal.insert("grpc-status", http::HeaderValue::from_static("13"));
        assert!(!retriable_response(&on, true, StatusCode::OK, &internal));
        assert!(!retriable_response(&on, true, StatusCode::OK, &none));
    }

    #[test]
    fn retry_on_reads_envoy_and_istio_names() {
        let on = RetryOn::parse("5xx, connect-failure,retriable-status-codes,cancelled,bogus");
        assert!(on.any_5xx && on.connect_failure);
        assert!(on.http_status(500) && on.http_status(599) && !on.http_status(429));
        assert_eq!(on.grpc_codes, [1]);
        let with_codes = RetrySpec::new(1, None, "retriable-status-codes".into(), &[429]);
        assert!(with_codes.conditions.http_status(429));
        assert!(on.reset() && on.timeout());
    }
}
