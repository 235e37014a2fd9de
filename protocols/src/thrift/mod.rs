//! Thrift message headers over binary and compact protocols and every transport.
//!
//! This module owns everything the proxy reads or writes on a Thrift connection:
//!
//! - **Message headers** ([`MessageHeader`]): strict (`80 01`) and old non-strict binary headers and
//!   compact (`82`) headers — method name (with the `Service:method` split of
//!   `TMultiplexedProtocol`), [`MessageType`] and sequence id.
//! - **Transports** ([`Transport`]): unframed ("buffered"), framed (4-byte length) and THeader
//!   (`0x0FFF` magic, [`THeader`] with info key/value headers).
//! - **Framing** ([`ThriftCodec`]): a `tokio_util` decoder that yields whole messages
//!   ([`ThriftMessage`]) with a frame-size cap. Unframed messages carry no length, so their end
//!   is found by walking the argument struct ([`skip_struct`], [`message_len`]).
//! - **Rewrites**: sequence-id rewriting for connection multiplexing ([`rewrite_seqid`]) and
//!   THeader info-header rewriting ([`rewrite_theader_headers`]).
//! - **Local replies**: `TApplicationException` replies ([`ApplicationException`]) that Apache
//!   Thrift clients decode.
//!
//! Everything after the message header is passed through opaquely; the argument struct is only
//! walked (never materialised) when an unframed message must be delimited.
//!
//! Byte offsets in [`ThriftError`] count from the first byte of the buffer handed to the function
//! (for the codec: from the first byte of the frame or message being decoded).

mod codec;
mod encode;
mod error;
mod exception;
mod header;
mod rewrite;
mod skip;
mod theader;
mod wire;

pub use codec::{DEFAULT_MAX_DEPTH, DEFAULT_MAX_FRAME_SIZE, ThriftCodec, ThriftMessage};
pub use encode::{encode_message, write_message_header};
pub use error::ThriftError;
pub use exception::{ApplicationException, ExceptionKind};
pub use header::{MessageHeader, split_service_method};
pub use rewrite::{SeqidRewrite, rewrite_seqid};
pub use skip::{message_len, skip_struct};
pub use theader::{
    MAX_THEADER_FRAME_SIZE, THEADER_MAGIC, THeader, TRANSFORM_HMAC, TRANSFORM_SNAPPY,
    TRANSFORM_ZLIB, rewrite_theader_headers,
};

/// The encoding of a Thrift message (the "protocol" in Thrift's terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `TBinaryProtocol`: fixed-width big-endian integers, i32 string lengths.
    Binary,
    /// `TCompactProtocol`: varints, zigzag integers, delta-encoded field ids.
    Compact,
}

impl Protocol {
    /// The name used in test vectors and logs: `binary` or `compact`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Binary => "binary",
            Protocol::Compact => "compact",
        }
    }

    /// The THeader protocol id (`0` binary, `2` compact).
    pub fn theader_id(self) -> u32 {
        match self {
            Protocol::Binary => 0,
            Protocol::Compact => 2,
        }
    }

    /// The protocol for a THeader protocol id; JSON (`1`) and unknown ids give `None`.
    pub fn from_theader_id(id: u64) -> Option<Protocol> {
        match id {
            0 => Some(Protocol::Binary),
            2 => Some(Protocol::Compact),
            _ => None,
        }
    }
}

/// How messages are delimited on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unframed: the message is written directly on the stream (`TBufferedTransport`).
    Buffered,
    /// A 4-byte big-endian length, then the message (`TFramedTransport`).
    Framed,
    /// A 4-byte length, then the THeader (`0x0FFF` magic, info headers), then the message.
    Header,
}

impl Transport {
    /// The name used in test vectors and logs: `buffered`, `framed` or `header`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Buffered => "buffered",
            Transport::Framed => "framed",
            Transport::Header => "header",
        }
    }
}

/// The message type byte of a Thrift message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A request that expects a reply (1).
    Call,
    /// A normal reply (2).
    Reply,
    /// A `TApplicationException` reply (3).
    Exception,
    /// A request that gets no reply (4).
    Oneway,
}

impl MessageType {
    /// The message type for its wire value (1–4).
    pub fn from_u8(value: u8) -> Option<MessageType> {
        match value {
            1 => Some(MessageType::Call),
            2 => Some(MessageType::Reply),
            3 => Some(MessageType::Exception),
            4 => Some(MessageType::Oneway),
            _ => None,
        }
    }

    /// The wire value (1–4).
    pub fn as_u8(self) -> u8 {
        match self {
            MessageType::Call => 1,
            MessageType::Reply => 2,
            MessageType::Exception => 3,
            MessageType::Oneway => 4,
        }
    }

    /// Whether the peer sends a message back (true only for [`MessageType::Call`]).
    pub fn expects_reply(self) -> bool {
        self == MessageType::Call
    }
}
