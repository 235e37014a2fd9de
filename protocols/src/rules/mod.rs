//! Traffic rules (DESIGN.md §4): the schemas of the Kubernetes-style YAML resources both binaries
//! read — the bridge from its watched rules file, the proxy from its local config — so YAML
//! written for Istio and Aeraki keeps working.
//!
//! - [`destination_rule`]: Istio `DestinationRule` (subsets, load balancing, connection pool,
//!   outlier detection).
//! - [`virtual_service`]: Istio `VirtualService` for HTTP and gRPC.
//! - [`meta_router`]: Aeraki `MetaRouter` for Dubbo and Thrift; [`meta_resilience`]: Causeway's
//!   `timeout`, `retries` and `fault` on its routes.
//! - [`isolation`]: Causeway's `TrafficIsolation` (batch vs user traffic classes, their routing
//!   priority and the HIGH priority's connection pool).
//! - [`common`]: string matches, durations, percentages, destinations.
//!
//! Text is parsed all-or-nothing into a [`RuleSet`] (sorted, content-hashed, queried by host),
//! with warnings (`advice`) for valid settings that are probably not what was meant.
//! Pure data and validation: watching files and reporting rejections belong to the binaries.
//! `docs/rules.md` is the user-facing reference.

mod advice;
pub mod common;
pub mod destination_rule;
mod error;
pub mod isolation;
mod load;
pub mod meta_resilience;
pub mod meta_router;
mod resource;
mod set;
pub mod virtual_service;

#[cfg(test)]
mod tests;

pub use error::{ResourceRef, RuleError, RulesError};
pub use resource::{ObjectMeta, Resource, RuleKind};
pub use set::{DestinationRule, MetaRouter, RuleSet, TrafficIsolation, VirtualService};
