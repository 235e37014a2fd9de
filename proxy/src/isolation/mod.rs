//! Admission: what happens to a request between routing and forwarding when its host has a
//! TrafficIsolation or a MetaRouter local rate limit (DESIGN.md §4, `docs/rules.md`).
//!
//! - [`policy`]: a host's classes and buckets as the routing snapshot holds them (from xDS
//!   `ServiceExtras` or local-mode rules), and classification of a request;
//! - [`bucket`]: the token bucket, pure (time is an argument);
//! - [`decide`]: the per-class concurrency decision, pure: a class never exceeds its
//!   `maxConcurrency`, and never takes capacity the host keeps for classes shed after it (among
//!   the classes of its routing priority, each priority having its own capacity);
//! - [`state`]: the proxy's runtime accounting (in-flight per class, buckets), the permits that
//!   release it, and the contract metrics (`causeway_proxy_class_*`, `causeway_proxy_shed_total`).
//!
//! Each protocol's request path calls [`Admissions::admit`] once the destination host is known
//! and answers a refusal at once in the caller's protocol; an admitted request carries its
//! class's routing priority on to the circuit breakers.

pub mod bucket;
pub mod decide;
pub mod policy;
pub mod state;

pub use decide::ShedReason;
pub use policy::{AdmissionPolicy, MatchKind, RequestAttributes};
pub use state::{Admissions, Admitted, Permit, Refusal};
