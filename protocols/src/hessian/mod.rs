//! Hessian 2.0 serialization as Dubbo uses it (hessian-lite): value model, decoder and
//! Java-compatible encoder.
//!
//! This module owns the bytes of a Hessian stream and nothing about Dubbo:
//! - [`Value`] and friends model every value kind of PROTOCOLS.md §2.1 losslessly.
//! - [`Decoder`] reads a stream held in memory: full values ([`Decoder::read_value`]), a fast
//!   [`skip`](Decoder::skip_value) that builds nothing, and strings borrowed from the input
//!   ([`Decoder::read_str`]). Depth and allocation are capped by [`Limits`]; malformed input is an
//!   error with a byte offset ([`DecodeError`]), never a panic.
//! - [`Encoder`] writes the bytes hessian-lite writes for the same value (§2.6, §2.8).
//!
//! A stream's state (class definitions, type names, references) lives in one decoder or encoder;
//! Dubbo uses one stream per message body.

mod decode;
mod encode;
mod error;
mod string;
mod value;

pub use decode::{Decoder, Limits, from_slice, skip};
pub use encode::{Encoder, to_vec};
pub use error::{DecodeError, EncodeError};
pub use value::{ClassDef, List, Map, Object, Value};
