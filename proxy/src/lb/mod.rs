//! Load balancing: which endpoint of a cluster takes a request.
//!
//! 1. Locality priorities with failover: only the lowest priority tier that has a usable endpoint
//!    (healthy, not ejected after connect failures, not draining after a READONLY event) is
//!    considered.
//! 2. Within the tier, the cluster's policy: weighted power of two choices on in-flight requests ×
//!    latency EWMA (the default), weighted round robin, weighted random, or a consistent
//!    (rendezvous) hash of a request property.
//!
//! Endpoint load lives in [`EndpointState`], shared by address across snapshots, so a snapshot
//! swap keeps the load picture; the choice itself is a pure function of the cluster, the states,
//! a random source and the clock.

mod atomic_instant;
mod in_flight;
pub mod outlier;
mod state;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use smallvec::SmallVec;

pub use in_flight::InFlight;
pub use outlier::{EjectionReason, Verdict};
pub use state::EndpointState;

use crate::fasthash::FastMap;
use crate::metrics::Metrics;
use crate::routing::{Cluster, HashOn, LbPolicy};

/// The hash of a request property for consistent-hash clusters (FNV-1a, stable across processes
/// so every proxy maps a key to the same endpoint).
pub fn hash_key(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A 64-bit finaliser (splitmix64) so nearby inputs give unrelated outputs.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn address_hash(address: &SocketAddr) -> u64 {
    hash_key(&address.to_string())
}

/// Looks up a request attachment's value by key.
pub type AttachmentLookup<'a> = dyn Fn(&str) -> Option<String> + Sync + 'a;

/// What a request offers the balancer besides the cluster.
#[derive(Clone, Copy, Default)]
pub struct RequestKey<'a> {
    /// The method name.
    pub method: &'a str,
    /// The interface name.
    pub interface: &'a str,
    /// Looks up an attachment (for `HashOn::Attachment`).
    pub attachment: Option<&'a AttachmentLookup<'a>>,
}

impl RequestKey<'_> {
    fn hash(&self, on: &HashOn) -> Option<u64> {
        match on {
            HashOn::Method => Some(hash_key(self.method)),
            HashOn::Interface => Some(hash_key(self.interface)),
            HashOn::Attachment(key) => self
                .attachment
                .and_then(|lookup| lookup(key))
                .map(|v| hash_key(&v)),
        }
    }
}

/// Picks endpoints; owns the per-endpoint load and the round-robin cursors.
#[derive(Debug, Default)]
pub struct Balancer {
    states: Mutex<FastMap<SocketAddr, Arc<EndpointState>>>,
    cursors: Mutex<FastMap<Arc<str>, Arc<AtomicU64>>>,
    /// Where ejections are counted (none in unit tests).
    metrics: Option<Arc<Metrics>>,
    /// Retries in flight per cluster, shared by every protocol like the endpoint state.
    retries: crate::resilience::retry::RetryBudgets,
}

// === impl Balancer ===

impl Balancer {
    /// A balancer with no endpoints known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A balancer that counts ejections in `metrics`.
    pub fn with_metrics(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..Self::default()
        }
    }

    /// Feeds one request's result on `state` (an endpoint of `cluster`) to the cluster's outlier
    /// detector; ejects the endpoint when a threshold is reached and the cluster's maximum
    /// ejected share allows it. Returns the reason of an ejection.
    pub fn report(
        &self,
        cluster: &Cluster,
        state: &EndpointState,
        verdict: Verdict,
        now: Instant,
    ) -> Option<EjectionReason> {
        let policy = cluster.outlier.as_ref()?;
        let reason = state.outlier.observe(verdict, policy)?;
        if state.is_ejected(now) {
            return None;
        }
        // Envoy's rule: at most this share of the cluster, but one endpoint always may go.
        let total = cluster.endpoints.len();
        let allowed = (total * policy.max_ejection_percent.min(100) as usize / 100).max(1);
        if self.ejected_count(cluster, now) >= allowed {
            tracing::debug!(cluster = %cluster.name, reason = reason.as_str(), "outlier not ejected: the cluster's maximum ejected share is reached");
            return None;
        }
        let length = state.outlier.eject(now, policy);
        tracing::info!(cluster = %cluster.name, reason = reason.as_str(), ?length, "outlier endpoint ejected");
        if let Some(metrics) = &self.metrics {
            metrics
                .resilience
                .ejection(&cluster.host, &cluster.name, reason);
        }
        Some(reason)
    }

    /// A connection to `state` (an endpoint of `cluster`) could not be opened at `now`: ejects
    /// it (doubling per consecutive failure; failures during an ejection do not count again)
    /// and counts a new ejection. Returns the ejection's remaining time.
    pub fn connect_failed(
        &self,
        cluster: &Cluster,
        state: &EndpointState,
        now: Instant,
    ) -> std::time::Duration {
        let already = state.is_connect_ejected(now);
        let length = state.connect_failed(now);
        if !already && let Some(metrics) = &self.metrics {
            metrics.resilience.ejection(
                &cluster.host,
                &cluster.name,
                EjectionReason::ConnectFailure,
            );
        }
        length
    }

    /// The retry budgets of every cluster.
    pub fn retry_budgets(&self) -> &crate::resilience::retry::RetryBudgets {
        &self.retries
    }

    /// How many endpoints of `cluster` are ejected at `now` (either way).
    pub fn ejected_count(&self, cluster: &Cluster, now: Instant) -> usize {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        cluster
            .endpoints
            .iter()
            .filter(|e| states.get(&e.address).is_some_and(|s| s.is_ejected(now)))
            .count()
    }

    /// The shared state of the endpoint at `address` (created on first use).
    pub fn state(&self, address: SocketAddr) -> Arc<EndpointState> {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = states.get(&address) {
            return state.clone();
        }
        states.entry(address).or_default().clone()
    }

    fn cursor(&self, cluster: &Arc<str>) -> Arc<AtomicU64> {
        self.cursors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(cluster.clone())
            .or_default()
            .clone()
    }

    /// Chooses an endpoint of `cluster` for a request, skipping `exclude` (endpoints that already
    /// failed this request). Returns the endpoint's index and state; `None` when no endpoint is
    /// usable.
    pub fn choose(
        &self,
        cluster: &Cluster,
        key: &RequestKey<'_>,
        exclude: &[SocketAddr],
        rng: &mut fastrand::Rng,
        now: Instant,
    ) -> Option<(usize, Arc<EndpointState>)> {
        let cursor = match cluster.lb {
            LbPolicy::RoundRobin => Some(self.cursor(&cluster.name)),
            _ => None,
        };
        // One lock for the whole choice, and only the chosen state's count touched: cloning
        // every endpoint's `Arc` would bounce each count's cache line between the cores on
        // every request.
        let mut map = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if cluster
            .endpoints
            .iter()
            .any(|e| !map.contains_key(&e.address))
        {
            // First choice with a new endpoint: its state starts fresh.
            for endpoint in &cluster.endpoints {
                map.entry(endpoint.address).or_default();
            }
        }
        let mut states: Candidates<&EndpointState> = SmallVec::new();
        for endpoint in &cluster.endpoints {
            states.push(map.get(&endpoint.address)?);
        }
        let index = choose(cluster, &states, key, exclude, rng, now, cursor.as_deref())?;
        let state = map.get(&cluster.endpoints.get(index)?.address)?.clone();
        Some((index, state))
    }
}

/// Per-choice lists, on the stack for clusters of up to 16 endpoints (nearly all of them).
type Candidates<T> = SmallVec<[T; 16]>;

/// The choice itself, over endpoint states parallel to `cluster.endpoints`.
fn choose(
    cluster: &Cluster,
    states: &[&EndpointState],
    key: &RequestKey<'_>,
    exclude: &[SocketAddr],
    rng: &mut fastrand::Rng,
    now: Instant,
    cursor: Option<&AtomicU64>,
) -> Option<usize> {
    // The usable endpoints of the best (lowest) priority tier, built in place.
    let usable = |i: usize, e: &crate::routing::Endpoint| {
        e.healthy
            && e.weight > 0
            && states.get(i).is_some_and(|s| s.is_usable(now))
            && !exclude.contains(&e.address)
    };
    let best = cluster
        .endpoints
        .iter()
        .enumerate()
        .filter(|&(i, e)| usable(i, e))
        .map(|(_, e)| e.priority)
        .min()?;
    let mut tier: Candidates<usize> = SmallVec::new();
    for (i, e) in cluster.endpoints.iter().enumerate() {
        if e.priority == best && usable(i, e) {
            tier.push(i);
        }
    }
    let weight = |i: usize| cluster.endpoints.get(i).map_or(1, |e| e.weight.max(1));
    match &cluster.lb {
        LbPolicy::LeastRequest => {
            let first = weighted_random(&tier, weight, rng)?;
            if tier.len() == 1 {
                return Some(first);
            }
            let mut others: Candidates<usize> = SmallVec::new();
            others.extend(tier.iter().copied().filter(|&i| i != first));
            let second = weighted_random(&others, weight, rng)?;
            let score = |i: usize| {
                states
                    .get(i)
                    .map_or(f64::MAX, |s| s.load_score(now) / f64::from(weight(i)))
            };
            Some(if score(second) < score(first) {
                second
            } else {
                first
            })
        }
        LbPolicy::Random => weighted_random(&tier, weight, rng),
        LbPolicy::RoundRobin => {
            let total: u64 = tier.iter().map(|&i| u64::from(weight(i))).sum();
            let turn = cursor.map_or_else(|| rng.u64(..), |c| c.fetch_add(1, Ordering::Relaxed));
            pick_by_point(&tier, weight, turn % total.max(1))
        }
        LbPolicy::ConsistentHash(on) => match key.hash(on) {
            // Weighted rendezvous hashing: each endpoint draws a pseudo-random value from
            // (key, address); the smallest -ln(u)/weight wins. Removing an endpoint only moves
            // the keys it owned.
            Some(hash) => tier.iter().copied().min_by(|&a, &b| {
                let score = |i: usize| {
                    let address = cluster
                        .endpoints
                        .get(i)
                        .map_or(0, |e| address_hash(&e.address));
                    // Top 53 bits as a fraction in (0, 1].
                    let bits = mix(hash ^ mix(address)) >> 11;
                    let unit = (bits as f64 + 1.0) / (1u64 << 53) as f64;
                    -unit.ln() / f64::from(weight(i))
                };
                score(a).total_cmp(&score(b))
            }),
            None => weighted_random(&tier, weight, rng),
        },
    }
}

fn weighted_random(
    candidates: &[usize],
    weight: impl Fn(usize) -> u32,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let total: u64 = candidates.iter().map(|&i| u64::from(weight(i))).sum();
    if total == 0 {
        return None;
    }
    pick_by_point(candidates, weight, rng.u64(..total))
}

fn pick_by_point(
    candidates: &[usize],
    weight: impl Fn(usize) -> u32,
    mut point: u64,
) -> Option<usize> {
    for &i in candidates {
        let w = u64::from(weight(i));
        if point < w {
            return Some(i);
        }
        point -= w;
    }
    candidates.last().copied()
}
