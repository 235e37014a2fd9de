//! The single end-to-end test binary: one module per area, linked once.

mod bridge_zookeeper;
mod smoke;
mod smoke_nacos;
