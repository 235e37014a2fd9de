//! causeway-proxy: the data plane. It accepts Dubbo, Thrift, gRPC and HTTP calls, on their own
//! listeners or (Dubbo, Thrift) one `auto` listener that detects the protocol, routes each request
//! by interface/service and method (Dubbo, Thrift) or authority, path and headers (gRPC, HTTP),
//! balances over localities and exports request metrics.
//!
//! The binary is a thin wrapper over [`cli::main`]; the modules below own one job each:
//! [`config`] (the file), [`local`] (config → routing snapshot, file watching), [`routing`] (the
//! pure snapshot), [`state`] (the snapshot in force), [`lb`] (endpoint choice), [`dubbo`],
//! [`thrift`] and [`http`] (the data planes), [`auto`] (protocol detection), [`metrics`] (with
//! [`process_metrics`]) and [`admin`], [`resilience`] (outlier classes, retries, faults, mirrors), [`trace_context`] (the
//! proxy's hop in a trace), [`spans`] (its spans, exported over OTLP), and [`app`] wiring them
//! together.

pub mod admin;
pub mod app;
pub mod auto;
pub mod cli;
pub mod config;
pub mod dubbo;
pub mod fasthash;
pub mod http;
pub mod inspect;
pub mod isolation;
pub mod lb;
pub mod local;
pub mod logging;
pub mod metrics;
pub mod peek;
pub mod process_metrics;
pub mod resilience;
pub mod routing;
pub mod series_cache;
pub mod spans;
pub mod state;
pub mod thrift;
pub mod trace_context;
pub mod xds;
