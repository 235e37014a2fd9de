//! The single end-to-end test binary: one module per area, linked once.

mod smoke;
mod smoke_nacos;
