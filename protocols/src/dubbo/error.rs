//! Errors of Dubbo framing ([`FrameError`]) and of reading or building bodies ([`DubboError`]).

use crate::hessian::{DecodeError, EncodeError};

use super::header::{Header, Serialization};

/// Why a byte stream could not be split into Dubbo frames. After any of these the connection is
/// out of sync (except [`FrameError::FrameTooLarge`] if the caller discards the body itself).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Reading or writing the connection failed.
    #[error("dubbo: i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The frame does not start with `DA BB` (Java hands such bytes to its telnet console).
    #[error("dubbo: bad magic {:02x} {:02x}, expected da bb", found[0], found[1])]
    BadMagic {
        /// The two bytes found instead.
        found: [u8; 2],
    },
    /// The header's body length is negative.
    #[error("dubbo: negative body length {value}")]
    NegativeBodyLength {
        /// The length as read.
        value: i32,
    },
    /// The body is longer than the configured limit; detected from the header alone, before any
    /// of the body is buffered. The header is included so the caller can answer the request
    /// (Java answers status 40 BAD_REQUEST for requests).
    #[error("dubbo: body of {body_len} bytes exceeds the {limit}-byte limit (request id {})", header.request_id)]
    FrameTooLarge {
        /// The offending frame's header.
        header: Header,
        /// Its body length.
        body_len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Fewer bytes than a header or the header's body length.
    #[error("dubbo: truncated frame: {available} bytes of {needed}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// More bytes than the header's body length accounts for.
    #[error("dubbo: {extra} bytes after the end of the frame")]
    TrailingBytes {
        /// Extra bytes.
        extra: usize,
    },
}

/// Why a frame's body could not be read, or a frame could not be built or rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DubboError {
    /// The body uses a serialization this crate cannot read; only the header is usable (route on
    /// it or pass the frame through).
    #[error("dubbo: cannot read a {serialization} body; only hessian2 (2) bodies are supported")]
    UnsupportedSerialization {
        /// The frame's serialization.
        serialization: Serialization,
    },
    /// The operation needs a request but the frame is a response, or the reverse, or needs a
    /// normal message but the frame is an event.
    #[error("dubbo: expected {expected}, found {found}")]
    WrongKind {
        /// What the operation needs.
        expected: &'static str,
        /// What the frame is.
        found: &'static str,
    },
    /// The body is not valid Hessian where a value was expected.
    #[error("dubbo: malformed {part} in body: {source}")]
    Body {
        /// Which part of the body (service path, arguments, attachments, ...).
        part: &'static str,
        /// The Hessian error; its offset is relative to the start of the body.
        #[source]
        source: DecodeError,
    },
    /// A body field is `null` or of the wrong kind.
    #[error("dubbo: {part} at body byte {offset} is {found}")]
    UnexpectedValue {
        /// Which field.
        part: &'static str,
        /// Its offset in the body.
        offset: usize,
        /// What was found instead.
        found: &'static str,
    },
    /// A parameter-types descriptor that does not follow the JVM grammar.
    #[error("dubbo: invalid parameter descriptor {descriptor:?} at character {position}")]
    InvalidDescriptor {
        /// The descriptor.
        descriptor: String,
        /// Where it went wrong.
        position: usize,
    },
    /// A response result flag outside 0..=5.
    #[error("dubbo: unknown response result flag {flag}")]
    UnknownResultFlag {
        /// The flag as read.
        flag: i32,
    },
    /// An error response must carry a non-OK status.
    #[error("dubbo: an error response needs a status other than 20 OK")]
    OkStatusForError,
    /// Bytes after the attachment map, where the map must end the body for a safe insertion.
    #[error("dubbo: {extra} bytes after the attachment map; refusing to rewrite the body")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The body would be too long for the header's signed 32-bit length.
    #[error("dubbo: body of {len} bytes is too long for a frame")]
    BodyTooLong {
        /// The length.
        len: usize,
    },
    /// Encoding a Hessian value failed.
    #[error("dubbo: {0}")]
    Encode(#[from] EncodeError),
}

impl DubboError {
    pub(crate) fn body(part: &'static str) -> impl FnOnce(DecodeError) -> DubboError {
        move |source| DubboError::Body { part, source }
    }
}
