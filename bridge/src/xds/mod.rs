//! The xDS side of the bridge: versioned resource sets ([`resources`]), sans-IO per-connection
//! protocol state machines for state-of-the-world ([`sotw`]) and incremental ([`delta`]) ADS, and
//! the tonic server that drives them ([`server`]).
//!
//! Istio ServiceEntries ride the same ADS streams as MCP-over-xDS resources ([`mcp`]).
//!
//! The state machines take a request (or a new resource set) and return the responses to send;
//! they own every ACK/NACK/nonce/subscription rule and are unit-tested without gRPC.

pub mod delta;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod resources;
pub mod server;
pub mod sotw;
pub mod translate;
