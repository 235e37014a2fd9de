//! The normalized service model: providers from every registry become services with DNS-safe
//! hosts and endpoints with labels, locality and weight, published as immutable, content-hashed
//! snapshots (DESIGN.md §3).

pub mod derive;
pub mod filter;
pub mod provider;
pub mod snapshot;
pub mod store;
