//! Retries: the retry budget that keeps them from becoming a storm, and the retry policy of gRPC
//! and HTTP routes (Envoy's `retry_on` conditions).
//!
//! **The budget.** Retries in flight to a cluster may not exceed 20 % of its active requests,
//! with a floor of 3 so a quiet cluster can still retry (Envoy's `retry_budget` defaults). A
//! retry the budget refuses is not sent: the caller gets the failure, and
//! `causeway_proxy_retries_refused_total` counts it. So when every endpoint fails, load grows by
//! at most a fifth (plus the floor), never doubling or tripling. As in Envoy, where the budget is
//! part of each priority's thresholds, each routing priority has its own budget, sized by its
//! own active requests: DEFAULT retries never spend the HIGH requests' budget.
//!
//! **What is retried, per protocol** (docs/proxy.md, "Retries"):
//! - Every protocol: a request that was never written — the connection could not be opened, or
//!   was found closed before the request left — goes to another endpoint (up to 3 endpoints).
//!   It never reached a provider, so this is safe for any request; it is counted as a retry
//!   (`connect_failure`, `reset`) and needs the budget.
//! - Dubbo and Thrift: nothing that was written is retried — the provider may have executed
//!   it, Dubbo and Thrift calls are not known to be idempotent, and Java Dubbo consumers already
//!   retry themselves (the failover cluster's `retries=2`), so a proxy retry would multiply
//!   theirs. One-way calls are never retried once sent (nobody would learn of a duplicate).
//! - gRPC and HTTP: the route's retry policy (`num_retries`, `per_try_timeout`, `retry_on`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::metrics::{Metrics, Protocol};
use crate::resilience::metrics::RetryReason;
use crate::routing::{PerPriority, Priority};

/// Share of a cluster's active requests that may be retries.
const BUDGET_PERCENT: u32 = 20;
/// Retries always allowed in flight per cluster, whatever its load.
const MIN_RETRY_CONCURRENCY: u32 = 3;

/// Retries in flight per cluster and routing priority.
#[derive(Debug, Default)]
pub struct RetryBudgets {
    in_flight: Mutex<HashMap<Arc<str>, PerPriority<Arc<AtomicU32>>>>,
}

/// A retry admitted by the budget; it counts as in flight until dropped.
#[derive(Debug)]
pub struct RetryToken {
    counter: Arc<AtomicU32>,
}

impl Drop for RetryToken {
    fn drop(&mut self) {
        let _ = self
            .counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

// === impl RetryBudgets ===

impl RetryBudgets {
    /// Admits one retry to `cluster` at `priority`, which has `active` requests of that
    /// priority in flight; `None` when the budget is spent.
    pub fn try_acquire(
        &self,
        cluster: &Arc<str>,
        priority: Priority,
        active: u32,
    ) -> Option<RetryToken> {
        let counter = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(cluster.clone())
            .or_default()
            .at(priority)
            .clone();
        let limit = (active.saturating_mul(BUDGET_PERCENT) / 100).max(MIN_RETRY_CONCURRENCY);
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(RetryToken { counter })
    }
}

/// Asks the budget of `cluster` at `priority` (the budget's key) for a retry of a request to
/// host `service` and counts the decision: `causeway_proxy_retries_total{reason}` when
/// admitted, `causeway_proxy_retries_refused_total` when not.
pub fn admit(
    budgets: &RetryBudgets,
    metrics: &Metrics,
    (cluster, priority): (&Arc<str>, Priority),
    service: &Arc<str>,
    active: u32,
    protocol: Protocol,
    reason: RetryReason,
) -> Option<RetryToken> {
    let token = budgets.try_acquire(cluster, priority, active);
    match token {
        Some(_) => metrics.resilience.retry(service, protocol, reason),
        None => metrics.resilience.retry_refused(service, protocol),
    }
    token
}

/// [`admit`] for the next attempt of a request at `priority` whose last attempt ended with
/// `flags` (never sent: a refused connect, or a connection found closed before the request was
/// written).
pub fn admit_next(
    flags: crate::metrics::ResponseFlags,
    balancer: &crate::lb::Balancer,
    metrics: &Metrics,
    (cluster, priority): (&crate::routing::Cluster, Priority),
    active: u32,
    protocol: Protocol,
) -> Option<RetryToken> {
    use crate::metrics::ResponseFlags;
    let reason = match flags {
        ResponseFlags::UpstreamConnectFailure => RetryReason::ConnectFailure,
        ResponseFlags::UpstreamTimeout => RetryReason::Timeout,
        // The provider answered, with a status the route's retry policy names.
        ResponseFlags::None => RetryReason::RetriableStatus,
        _ => RetryReason::Reset,
    };
    admit(
        balancer.retry_budgets(),
        metrics,
        (&cluster.name, priority),
        &Arc::from(cluster.host.as_str()),
        active,
        protocol,
        reason,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_a_fifth_of_active_requests_with_a_floor() {
        let budgets = RetryBudgets::default();
        let cluster: Arc<str> = Arc::from("c");
        let acquire = |active| budgets.try_acquire(&cluster, Priority::Default, active);
        let quiet: Vec<RetryToken> = (0..5).filter_map(|_| acquire(1)).collect();
        assert_eq!(quiet.len(), 3, "the floor");
        drop(quiet);
        let busy: Vec<RetryToken> = (0..100).filter_map(|_| acquire(100)).collect();
        assert_eq!(busy.len(), 20, "20 % of 100 active");
        drop(busy);
        assert!(acquire(0).is_some(), "tokens are returned");
    }

    #[test]
    fn each_priority_has_a_budget_of_its_own() {
        let budgets = RetryBudgets::default();
        let cluster: Arc<str> = Arc::from("c");
        let spent: Vec<RetryToken> = (0..100)
            .filter_map(|_| budgets.try_acquire(&cluster, Priority::Default, 100))
            .collect();
        assert_eq!(spent.len(), 20);
        // HIGH's floor is still there with DEFAULT's budget spent.
        let high: Vec<RetryToken> = (0..5)
            .filter_map(|_| budgets.try_acquire(&cluster, Priority::High, 1))
            .collect();
        assert_eq!(high.len(), 3);
    }
}
