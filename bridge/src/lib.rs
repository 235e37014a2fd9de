//! causeway-bridge: watches the legacy registries (ZooKeeper, Nacos, etcd, static files), keeps one
//! normalized service model, and publishes it as xDS and Istio ServiceEntries.
//!
//! The binary is a thin wrapper over [`cli::main`]; the modules below own one job each.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod registry;
pub mod rules;
pub mod serviceentry;
pub mod xds;
