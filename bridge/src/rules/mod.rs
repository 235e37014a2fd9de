//! Traffic rules (DESIGN.md §4): Kubernetes-style YAML resources in one watched multi-document
//! file, with the schemas users already know, so YAML written for Istio and Aeraki keeps working.
//!
//! - [`destination_rule`]: Istio `DestinationRule` (subsets, load balancing, connection pool,
//!   outlier detection).
//! - [`virtual_service`]: Istio `VirtualService` for HTTP and gRPC.
//! - [`meta_router`]: Aeraki `MetaRouter` for Dubbo and Thrift.
//! - [`isolation`]: Causeway's `TrafficIsolation` (batch vs user traffic classes).
//! - [`common`]: string matches, durations, percentages, destinations.
//!
//! A file is parsed all-or-nothing into a [`RuleSet`] (sorted, content-hashed, queried by host);
//! [`watch()`] follows the file and keeps the last good set in force when an edit is invalid.
//! `docs/rules.md` is the user-facing reference.

pub mod common;
pub mod destination_rule;
mod error;
pub mod isolation;
mod load;
pub mod meta_router;
mod metrics;
mod resource;
mod set;
pub mod virtual_service;
mod watch;

#[cfg(test)]
mod tests;

pub use error::{ResourceRef, RuleError, RulesError};
pub use metrics::{KindLabel, KindLabels, RulesMetrics, RulesVersionLabels};
pub use resource::{ObjectMeta, Resource, RuleKind};
pub use set::{DestinationRule, MetaRouter, RuleSet, TrafficIsolation, VirtualService};
pub use watch::{POLL_INTERVAL, RulesDebug, RulesStatus, RulesStatusView, watch};
