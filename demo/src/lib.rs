//! `causeway-demo`: the one-command local mesh and its applications.
//!
//! - [`greeter`]: the Dubbo `GreetingService` provider and a pipelining consumer client;
//! - [`registry`]: how providers publish themselves (ZooKeeper, or the bridge's file registry);
//! - [`mesh`]: registry + bridge + the consumer's proxy + providers v1/v2 in two zones;
//! - [`scenario`]: canary, method routing and locality failover, each checked against what it
//!   expects.

pub mod greeter;
pub mod mesh;
pub mod registry;
pub mod scenario;
