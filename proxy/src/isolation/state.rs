//! The proxy's admission accounting: per host, what each traffic class has in flight and the
//! content of each rate-limit bucket. One small lock per host keeps the decision consistent (a
//! class's check and its increment happen together); a [`Permit`] held by the request releases
//! its class's slot exactly once, whichever way the request ends, even on a newer snapshot.
//!
//! Metrics (docs/observability.md): `causeway_proxy_class_requests_total` counts every request
//! assigned to a class (refused ones included), `causeway_proxy_class_in_flight` is what a class
//! has in flight now, and `causeway_proxy_shed_total` counts refusals by reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::bucket::TokenBucket;
use super::decide::{ClassLoad, ShedReason, decide};
use super::policy::{AdmissionPolicy, BucketKey, MatchKind, RequestAttributes};
use crate::routing::{PerPriority, Priority};

/// The `traffic_class` of requests no class matches (and of rate-limited requests on hosts
/// without classes).
const DEFAULT_CLASS: &str = "default";

impl EncodeLabelValue for ShedReason {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Labels of the class metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClassLabels {
    /// The mesh host.
    pub destination_service: Arc<str>,
    /// The class name, or `default`.
    pub traffic_class: Arc<str>,
}

/// Labels of `causeway_proxy_shed_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ShedLabels {
    /// The mesh host.
    pub destination_service: Arc<str>,
    /// The class name, or `default`.
    pub traffic_class: Arc<str>,
    /// Why.
    pub reason: ShedReason,
}

#[derive(Debug, Default)]
struct HostState {
    in_flight: HashMap<Arc<str>, u32>,
    buckets: HashMap<BucketKey, TokenBucket>,
}

type SharedHost = Arc<Mutex<HostState>>;

fn lock(host: &SharedHost) -> std::sync::MutexGuard<'_, HostState> {
    // The state is counters only, always consistent between statements: a panic elsewhere
    // cannot leave it half-written, so a poisoned lock is still good.
    host.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Admission state and metrics for every host of this proxy.
#[derive(Debug, Default)]
pub struct Admissions {
    hosts: Mutex<HashMap<Arc<str>, SharedHost>>,
    class_requests: Family<ClassLabels, Counter>,
    class_in_flight: Family<ClassLabels, Gauge>,
    shed: Family<ShedLabels, Counter>,
}

/// A request that may go.
#[derive(Debug, Default)]
pub struct Admitted {
    /// Its class, if its host has classes.
    pub class: Option<Arc<str>>,
    /// The subset that must serve it (the class's dedicated subset).
    pub subset: Option<String>,
    /// Its class slot, released when dropped; keep it until the request ends.
    pub permit: Option<Permit>,
}

/// A request refused without being forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The class (or `default`).
    pub class: Arc<str>,
    /// Why.
    pub reason: ShedReason,
}

impl Refusal {
    /// `true` for the rate limit (Envoy's `RL` flag), `false` for shedding (`UO`).
    pub fn is_rate_limit(&self) -> bool {
        self.reason == ShedReason::RateLimit
    }

    /// What the caller is told.
    pub fn message(&self, host: &str) -> String {
        match self.reason {
            ShedReason::RateLimit => format!(
                "causeway-proxy: rate limited: {host} (class {}) is over its local rate limit",
                self.class
            ),
            ShedReason::ConcurrencyLimit => format!(
                "causeway-proxy: overloaded: traffic class {} of {host} is at its concurrency limit",
                self.class
            ),
            ShedReason::Overload => format!(
                "causeway-proxy: overloaded: {host} is at capacity and traffic class {} is shed first",
                self.class
            ),
        }
    }
}

/// One in-flight request of a class.
#[derive(Debug)]
pub struct Permit {
    host: SharedHost,
    class: Arc<str>,
    priority: Priority,
    gauge: Gauge,
}

impl Permit {
    /// The routing priority of the request's class: which circuit-breaker thresholds and
    /// counts hold it. (A request without a permit has no class, so it is DEFAULT.)
    pub fn priority(&self) -> Priority {
        self.priority
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = lock(&self.host);
        if let Some(count) = state.in_flight.get_mut(&self.class) {
            *count = count.saturating_sub(1);
        }
        drop(state);
        self.gauge.dec();
    }
}

// === impl Admissions ===

impl Admissions {
    /// Registers the metrics in `registry` (the `causeway_proxy` sub-registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "class_requests",
            "Requests assigned to a TrafficIsolation class, refused ones included",
            self.class_requests.clone(),
        );
        registry.register(
            "class_in_flight",
            "Requests of a TrafficIsolation class in flight to the host",
            self.class_in_flight.clone(),
        );
        registry.register(
            "shed",
            "Requests refused without being forwarded: class concurrency limit, host overload, local rate limit",
            self.shed.clone(),
        );
    }

    fn host(&self, host: &str) -> SharedHost {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = hosts.get(host) {
            return state.clone();
        }
        let state = SharedHost::default();
        hosts.insert(Arc::from(host), state.clone());
        state
    }

    /// Classifies a request for `host`, applies the rate limit and the class budgets, and
    /// either lets it go (holding a class slot) or says why not. `capacity` is what the host
    /// takes at once per routing priority (each priority's connection-pool limit, scaled by
    /// healthy endpoints); a class shares its priority's capacity with the classes of the same
    /// priority only, since the other priority's requests are held by other breakers.
    pub fn admit(
        &self,
        host: &str,
        policy: &AdmissionPolicy,
        kind: MatchKind,
        request: &dyn RequestAttributes,
        capacity: PerPriority<u32>,
        now: Instant,
    ) -> Result<Admitted, Refusal> {
        let class = policy.classify(kind, request);
        let class_name: Arc<str> =
            class.map_or_else(|| Arc::from(DEFAULT_CLASS), |c| c.name.clone());
        let service: Arc<str> = Arc::from(host);
        let labels = ClassLabels {
            destination_service: service.clone(),
            traffic_class: class_name.clone(),
        };
        if class.is_some() {
            self.class_requests.get_or_create(&labels).inc();
        }
        let bucket = policy.bucket(kind, request);
        if bucket.is_none() && class.is_none() {
            return Ok(Admitted::default());
        }
        let shared = self.host(host);
        let mut state = lock(&shared);
        let refuse = |reason: ShedReason| {
            self.shed
                .get_or_create(&ShedLabels {
                    destination_service: service.clone(),
                    traffic_class: class_name.clone(),
                    reason,
                })
                .inc();
            Err(Refusal {
                class: class_name.clone(),
                reason,
            })
        };
        if let Some((key, spec)) = bucket {
            let entry = state
                .buckets
                .entry(key)
                .or_insert_with(|| TokenBucket::new(spec, now));
            if entry.spec() != spec {
                // The rule changed: start the new bucket full, as a new rule would.
                *entry = TokenBucket::new(spec, now);
            }
            if !entry.try_take(now) {
                return refuse(ShedReason::RateLimit);
            }
        }
        let (Some(class), Some(isolation)) = (class, policy.isolation.as_ref()) else {
            return Ok(Admitted::default());
        };
        // Only the classes of the request's priority share its capacity.
        let peers = || {
            isolation
                .classes
                .iter()
                .filter(|c| c.priority == class.priority)
        };
        let loads: Vec<ClassLoad> = peers()
            .map(|c| ClassLoad {
                in_flight: state.in_flight.get(&c.name).copied().unwrap_or(0),
                max_concurrency: c.max_concurrency,
                shed_order: c.shed_order,
            })
            .collect();
        let index = peers()
            .position(|c| c.name == class.name)
            .unwrap_or(usize::MAX);
        if let Some(reason) = decide(&loads, index, *capacity.at(class.priority)) {
            return refuse(reason);
        }
        *state.in_flight.entry(class.name.clone()).or_insert(0) += 1;
        drop(state);
        let gauge = self.class_in_flight.get_or_create(&labels).clone();
        gauge.inc();
        Ok(Admitted {
            class: Some(class.name.clone()),
            subset: class.subset.clone(),
            permit: Some(Permit {
                host: shared,
                class: class.name.clone(),
                priority: class.priority,
                gauge,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use causeway_protocols::rules::RuleSet;
    use causeway_protocols::xds_ext::ServiceExtras;

    use super::*;

    struct Headers(HashMap<&'static str, &'static str>);

    impl RequestAttributes for Headers {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).copied()
        }
    }

    fn policy() -> AdmissionPolicy {
        let rules = RuleSet::parse(
            "rules.yaml",
            "apiVersion: causeway.io/v1alpha1
kind: TrafficIsolation
metadata: {name: t}
spec:
  host: demo.greeter
  classes:
  - {name: user, match: {headers: {app: {exact: shop}}}, maxConcurrency: 10, priority: HIGH, shedOrder: 10}
  - {name: batch, match: {headers: {app: {exact: report}}}, maxConcurrency: 10}
",
        )
        .unwrap();
        let extras = ServiceExtras {
            isolation: rules
                .isolation_for("demo.greeter")
                .map(|r| (&r.spec).into()),
            ..ServiceExtras::default()
        };
        AdmissionPolicy::from_extras(&extras).unwrap().unwrap()
    }

    #[test]
    fn each_priority_sheds_against_its_own_capacity() {
        let admissions = Admissions::default();
        let policy = policy();
        let admit = |app: &'static str, capacity: PerPriority<u32>| {
            admissions.admit(
                "demo.greeter",
                &policy,
                MatchKind::Headers,
                &Headers(HashMap::from([("app", app)])),
                capacity,
                Instant::now(),
            )
        };
        let capacity = PerPriority {
            default: 2,
            high: 3,
        };
        // DEFAULT fills its capacity of 2: the user class (HIGH, shed later) reserves nothing
        // there, since it is held by other breakers.
        let priority = |a: &Admitted| a.permit.as_ref().map(Permit::priority);
        let batch: Vec<Admitted> = (0..2).map(|_| admit("report", capacity).unwrap()).collect();
        assert!(batch.iter().all(|a| priority(a) == Some(Priority::Default)));
        let refused = admit("report", capacity).unwrap_err();
        assert_eq!(refused.reason, ShedReason::Overload);
        // HIGH has its own 3, untouched by the DEFAULT requests in flight.
        let users: Vec<Admitted> = (0..3).map(|_| admit("shop", capacity).unwrap()).collect();
        assert!(users.iter().all(|a| priority(a) == Some(Priority::High)));
        assert_eq!(
            admit("shop", capacity).unwrap_err().reason,
            ShedReason::Overload
        );
        // A request no class takes is not isolated: no permit, so DEFAULT.
        assert!(admit("other", capacity).unwrap().permit.is_none());
    }
}
