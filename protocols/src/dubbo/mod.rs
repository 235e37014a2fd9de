//! Dubbo 2 framing ("dubbo://"): the 16-byte header, a `tokio_util` codec, zero-copy request and
//! response views, and the frames a proxy writes itself.
//!
//! This module owns the Dubbo layer only; Hessian bytes are read and written through
//! [`crate::hessian`]. What it offers, cheapest first (PROTOCOLS.md §1.9):
//! - [`DubboCodec`] cuts a byte stream into [`Frame`]s using the header alone, enforcing a body
//!   limit before buffering the body. Any serialization id is framed and can be forwarded.
//! - [`Frame::request`] reads the leading strings of a Hessian 2 request (routing by interface,
//!   version and method) and, on demand, the attachments after skipping the arguments;
//!   [`Frame::response`] reads a response's status, message, result flag and attachments.
//!   Bodies in other serializations (fastjson2 is common between Dubbo 3.2 peers) are rejected
//!   with [`DubboError::UnsupportedSerialization`]: route on the header or pass them through.
//! - Builders and rewrites: [`heartbeat_reply`], [`error_response`], [`Frame::add_attachments`]
//!   (no re-encoding of arguments), [`Frame::set_request_id`], and full [`encode_request`] /
//!   [`encode_response`] for clients and tests.

mod builder;
mod error;
mod frame;
mod header;
mod request;
mod response;

pub use builder::{Call, Reply, encode_request, encode_response, error_response};
pub use error::{DubboError, FrameError};
pub use frame::{
    DubboCodec, EventKind, Frame, heartbeat_reply, heartbeat_request, rewrite_request_id,
};
pub use header::{
    DEFAULT_MAX_BODY_LEN, FLAG_EVENT, FLAG_REQUEST, FLAG_TWO_WAY, HEADER_LEN, Header, MAGIC,
    SERIALIZATION_MASK, Serialization, Status,
};
pub use request::{AttachmentValue, Attachments, RequestView, argument_count};
pub use response::{ResponseView, ResultFlag, ResultKind};
