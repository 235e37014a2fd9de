//! causeway-proxy: the data plane. It accepts Dubbo calls (Thrift, gRPC and HTTP later), routes
//! each request by interface and method, balances over localities and exports request metrics.
//!
//! The binary is a thin wrapper over [`cli::main`]; the modules below own one job each:
//! [`config`] (the file), [`local`] (config → routing snapshot, file watching), [`routing`] (the
//! pure snapshot), [`state`] (the snapshot in force), [`lb`] (endpoint choice), [`dubbo`] (the
//! Dubbo data plane), [`metrics`] and [`admin`], and [`app`] wiring them together.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod dubbo;
pub mod fasthash;
pub mod inspect;
pub mod lb;
pub mod local;
pub mod logging;
pub mod metrics;
pub mod routing;
pub mod state;
