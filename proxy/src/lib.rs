//! causeway-proxy: the data plane. It accepts Dubbo, Thrift, gRPC and HTTP calls, routes each
//! request by interface and method, balances over localities and exports request metrics.
//!
//! The binary is a thin wrapper over [`cli::main`]; the modules below own one job each.

pub mod cli;
pub mod config;
pub mod inspect;
pub mod lb;
pub mod logging;
pub mod routing;
