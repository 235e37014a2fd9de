//! The single end-to-end test binary: one module per area, linked once.

// Test helpers panic on failure by design: a panic is how a test reports what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bridge_dubbo_java;
mod bridge_etcd;
mod bridge_mcp;
mod bridge_nacos;
mod bridge_zookeeper;
mod dashboards;
mod dashboards_live;
mod hessian_crosscheck;
mod mesh;
mod otlp_spans;
mod proxy_dubbo_java;
mod proxy_grpc;
mod proxy_h2spec;
mod proxy_priority;
mod proxy_resilience;
mod proxy_resilience_dubbo;
mod proxy_resilience_thrift;
mod proxy_thrift;
mod proxy_xds_java;
mod smoke;
mod smoke_nacos;
mod thrift_crosscheck;
mod xds_grpc;
