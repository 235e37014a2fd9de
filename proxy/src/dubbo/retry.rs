//! Retries of Dubbo requests that were sent, for routes whose policy asks for them (MetaRouter
//! `retries`, `docs/rules.md`).
//!
//! Provider connections are multiplexed: a request's answer (or its per-try timeout, or its
//! connection closing) arrives on the connection's reader, which completes the request. A request
//! with a retry policy therefore carries a [`RetryState`] — a pristine copy of its frame, where
//! it may go, which endpoints it tried — and its completion asks [`wanted`] first: when the
//! outcome is one the policy retries, attempts remain, the call's own deadline has not passed
//! and the retry budget admits it, the request goes back to [`super::inbound::resend`] for
//! another endpoint instead of being answered. Only routes with retries pay for the copy.
//! One-way requests have no completion and are never retried once sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use causeway_protocols::dubbo::Frame;

use super::DubboContext;
use super::request::Outcome;
use crate::metrics::ResponseFlags;
use crate::resilience::retry::RetryToken;
use crate::routing::Cluster;
use crate::routing::meta_policy::MetaRetrySpec;

/// What a request with a retry policy keeps for another try.
#[derive(Debug)]
pub struct RetryState {
    /// The request as routed (mutations applied); each try sends a copy.
    pub frame: Frame,
    /// The routed cluster.
    pub cluster: Arc<Cluster>,
    /// The request's routing priority: every try counts at it.
    pub priority: crate::routing::Priority,
    /// For the balancer.
    pub method: Arc<str>,
    /// For the balancer.
    pub interface: Arc<str>,
    /// For a consistent-hash balancer.
    pub hash_attachment: Option<(String, String)>,
    /// The policy.
    pub spec: MetaRetrySpec,
    /// Retries still allowed.
    pub retries_left: u32,
    /// The whole call's deadline (each try has its own, no later).
    pub deadline: Instant,
    /// Endpoints tried, avoided by the next try.
    pub tried: Vec<SocketAddr>,
    /// The retry in flight's place in the budget.
    pub token: Option<RetryToken>,
    /// Where the request is re-sent from.
    pub context: Arc<DubboContext>,
}

/// The flags a retry is counted under when `outcome` is one `state`'s policy retries and a
/// retry may still go; `None` when the outcome is the caller's answer.
pub fn wanted(state: &RetryState, outcome: &Outcome) -> Option<ResponseFlags> {
    if state.retries_left == 0 || Instant::now() >= state.deadline {
        return None;
    }
    let on = &state.spec.on;
    match outcome {
        Outcome::Response(frame) => on
            .dubbo_statuses
            .contains(&frame.header().status.0)
            .then_some(ResponseFlags::None),
        Outcome::Local { flags, .. } => match flags {
            ResponseFlags::UpstreamTimeout if on.timeout => Some(*flags),
            ResponseFlags::UpstreamConnectionTermination if on.reset => Some(*flags),
            _ => None,
        },
    }
}
