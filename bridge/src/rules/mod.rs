//! Traffic rules in the bridge: the schemas and validation live in
//! [`causeway_protocols::rules`] (shared with the proxy's local mode); this module re-exports them
//! and adds what only the bridge does with them.
//!
//! - [`watch()`]: follows the rules file and keeps the last good set in force when an edit is
//!   invalid, with its status for `/debug/rules`.
//! - [`RulesMetrics`]: the rules' version, resources and rejections on `/metrics`.

mod metrics;
mod watch;

#[cfg(test)]
mod tests;

pub use causeway_protocols::rules::*;
pub use metrics::{KindLabel, KindLabels, RulesMetrics, RulesVersionLabels};
pub use watch::{POLL_INTERVAL, RulesDebug, RulesStatus, RulesStatusView, watch};
