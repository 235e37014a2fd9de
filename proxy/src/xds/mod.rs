//! Configuration from the bridge over delta xDS: [`client`] keeps one ADS stream open and turns
//! every accepted update into a new routing snapshot; [`convert`] is the pure translation of
//! Envoy resources into that snapshot.

pub mod client;
pub mod convert;

pub use client::{XdsSettings, run};
