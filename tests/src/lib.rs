//! causeway-tests: a harness that starts real peers for end-to-end tests, and those tests.
//!
//! Every peer (ZooKeeper, etcd, Nacos, Prometheus) runs as a child process on free loopback ports
//! with its own temporary directory, wrapped in a guard that kills the process and removes the
//! directory when dropped, so tests run in parallel without clashing. Java (Maven), Python (pip)
//! and Go programs written against others' libraries run through [`java`], [`python`] and [`go`]
//! as real clients and servers. [`grafana`], [`promtool`] and [`promql`] check the dashboards
//! and Prometheus rules in `dashboards/` against Grafana's published schema and promtool.
//! [`bench`], [`dubbo_bench`] and [`web_bench`] hold the benchmarks' shared pieces (the bridge
//! benchmarks' estate and measurements; the Dubbo data-plane benchmark's provider and load
//! generators; the gRPC and HTTP rows' providers and h2load/wrk output parsers).
//! Tests wait with [`assert_eventually!`], never with sleeps.

pub mod bench;
pub mod dubbo_bench;
pub mod etcd;
pub mod eventually;
pub mod go;
pub mod grafana;
pub mod java;
pub mod logs;
pub mod nacos;
pub mod paths;
pub mod ports;
pub mod process;
pub mod prometheus;
pub mod promql;
pub mod promtool;
pub mod python;
pub mod web_bench;
pub mod zookeeper;
