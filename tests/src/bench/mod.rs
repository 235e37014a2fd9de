//! Shared pieces of the benchmark binaries (`src/bin/bridge-bench.rs`, `xds-bench.rs`,
//! `proxy-bench.rs`): the entry point ([`entry`]), the Dubbo estate and its registries
//! ([`estate`]), the bridge process ([`bridge`]), measurements ([`measure`]) and the Markdown
//! report ([`report`]).

pub mod bridge;
pub mod entry;
pub mod estate;
pub mod measure;
pub mod report;
