//! `causeway-demo`: the one-command local mesh and its applications.
//!
//! - [`greeter`]: the Dubbo `GreetingService` provider and a pipelining consumer client;
//! - [`inventory`] (Thrift), [`quotes`] (gRPC) and [`catalog`] (HTTP): the rest of the mixed
//!   estate, each a provider and a caller; [`served`]: who answered a call, in any protocol;
//! - [`estate`]: what each service's providers publish in a registry;
//! - [`java`]: the Apache Dubbo Java sample's providers and consumer in the mesh (`--java`);
//! - [`registry`]: how providers publish themselves (ZooKeeper, or the bridge's file registry);
//! - [`mesh`]: registry + bridge + the consumer's proxy + Dubbo providers v1/v2 in two zones and
//!   the mixed estate's providers v1/v2;
//! - [`live`]: the live view (`--stay`), a round of calls a second on every protocol;
//! - [`scenario`]: canary, method routing and locality failover, each checked against what it
//!   expects.

pub mod catalog;
pub mod estate;
pub mod greeter;
pub mod inventory;
pub mod java;
pub mod live;
pub mod mesh;
pub mod quotes;
pub mod registry;
pub mod scenario;
pub mod served;
