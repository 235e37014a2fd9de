//! Resilience (issue 7): what the proxy does about failing or slow providers besides choosing
//! another endpoint.
//!
//! - [`outlier`]: what each protocol counts as an error or a gateway error for the outlier
//!   detector (whose per-endpoint state lives in [`crate::lb::outlier`], shared by every
//!   protocol), and the policy from xDS or the rules.
//! - [`retry`]: retry conditions, the retry budget, and which requests may be retried at all.
//! - [`breaker`]: circuit breakers (requests, pending requests, connections per cluster and
//!   routing priority), shared by every protocol.
//! - [`fault`]: fault injection (delay, abort) for gRPC and HTTP routes.
//! - [`mirror`]: which mirrors a request is copied to, and the bound on copies in flight.
//! - [`metrics`]: `causeway_proxy_retries_total`, `causeway_proxy_outlier_ejections_total`,
//!   `causeway_proxy_outlier_ejected_endpoints`, the mirror and fault counters.

pub mod breaker;
pub mod fault;
pub mod metrics;
pub mod mirror;
pub mod outlier;
pub mod retry;

pub use metrics::ResilienceMetrics;
