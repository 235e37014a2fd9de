//! The error type of the Thrift codec: every variant says where (byte offset) and why.

/// A Thrift frame or message that cannot be decoded or encoded.
///
/// Offsets count from the first byte of the buffer being decoded (for [`super::ThriftCodec`], the
/// first byte of the current frame or unframed message). After a decoding error the connection's
/// byte stream cannot be resynchronised: answer with a `TApplicationException` if the header was
/// readable, then close.
#[derive(Debug, thiserror::Error)]
pub enum ThriftError {
    /// The bytes do not follow the protocol; `reason` says which rule was broken.
    #[error("malformed thrift data at byte {offset}: {reason}")]
    Malformed {
        /// Offset of the offending byte.
        offset: usize,
        /// The rule that was broken.
        reason: &'static str,
    },
    /// A binary message header whose version word is not `0x8001xxxx`.
    #[error("bad thrift binary version 0x{version:08x} at byte {offset}")]
    BadVersion {
        /// Offset of the version word.
        offset: usize,
        /// The version word as read.
        version: u32,
    },
    /// A message type outside 1–4 (call, reply, exception, oneway).
    #[error("invalid thrift message type {value} at byte {offset}")]
    InvalidMessageType {
        /// Offset of the type byte.
        offset: usize,
        /// The type as read.
        value: u8,
    },
    /// A field or element type id the protocol does not define.
    #[error("invalid thrift field type {value} at byte {offset}")]
    InvalidFieldType {
        /// Offset of the type byte.
        offset: usize,
        /// The type id as read.
        value: u8,
    },
    /// A string, container or frame length below zero (or above `i32::MAX` as a varint).
    #[error("negative thrift length {value} at byte {offset}")]
    NegativeLength {
        /// Offset of the length.
        offset: usize,
        /// The length as read.
        value: i64,
    },
    /// A frame whose length prefix exceeds the configured maximum.
    #[error("thrift frame of {size} bytes at byte {offset} exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Offset of the length prefix.
        offset: usize,
        /// The announced frame size (bytes after the length prefix).
        size: u64,
        /// The configured maximum.
        max: usize,
    },
    /// An unframed message that would end past the configured maximum size.
    #[error(
        "unframed thrift message needs at least {needed} bytes (value at byte {offset}), more than the maximum of {max}"
    )]
    MessageTooLarge {
        /// Offset of the value that pushed the message past the maximum.
        offset: usize,
        /// The minimum message size implied so far.
        needed: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A value that runs past the end of a complete frame (or header block).
    #[error(
        "thrift value at byte {offset} needs {needed} bytes but the frame has only {available}"
    )]
    Truncated {
        /// Offset of the value.
        offset: usize,
        /// Bytes the value needs, counted from the start of the buffer.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Structs, lists, sets or maps nested deeper than the configured maximum.
    #[error("thrift value at byte {offset} nests deeper than the maximum depth of {max_depth}")]
    TooDeep {
        /// Offset of the container that went too deep.
        offset: usize,
        /// The configured maximum depth.
        max_depth: usize,
    },
    /// A THeader transform (zlib, hmac, snappy or unknown) this codec cannot undo.
    #[error("unsupported THeader transform {id} at byte {offset}")]
    UnsupportedTransform {
        /// Offset of the transform id.
        offset: usize,
        /// The transform id.
        id: u64,
    },
    /// A THeader protocol id other than binary (0) or compact (2), e.g. JSON (1).
    #[error("unsupported THeader protocol id {id} at byte {offset}")]
    UnsupportedProtocol {
        /// Offset of the protocol id.
        offset: usize,
        /// The protocol id.
        id: u64,
    },
    /// A value too large to encode (a length that does not fit the wire field).
    #[error("cannot encode thrift value: {reason}")]
    TooLargeToEncode {
        /// Which length overflowed.
        reason: &'static str,
    },
    /// An I/O error from the underlying stream (needed by `tokio_util::codec`).
    #[error("thrift I/O error: {0}")]
    Io(#[from] std::io::Error),
}
