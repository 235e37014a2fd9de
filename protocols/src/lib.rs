//! Wire codecs for every protocol Causeway carries: Dubbo 2 with Hessian 2 bodies, Thrift, gRPC and
//! HTTP, plus protocol detection from the first bytes of a connection, and the traffic-rule schemas
//! (`rules`) both binaries read.
//!
//! This crate owns byte-level correctness only. It has no runtime and no I/O policy: the proxy and
//! the bridge decide what to do with what is decoded here.

pub mod detect;
pub mod dubbo;
pub mod grpc;
pub mod hessian;
pub mod http;
pub mod meta;
pub mod rules;
pub mod thrift;
pub mod xds_ext;
