//! Shared pieces of the benchmark binaries (`src/bin/bridge-bench.rs`, `src/bin/xds-bench.rs`):
//! the Dubbo estate and its registries ([`estate`]), the bridge process ([`bridge`]),
//! measurements ([`measure`]) and the Markdown report ([`report`]).

pub mod bridge;
pub mod estate;
pub mod measure;
pub mod report;
