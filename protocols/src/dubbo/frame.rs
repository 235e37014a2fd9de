//! Whole frames ([`Frame`]) and the `tokio_util` codec ([`DubboCodec`]) that cuts a byte stream
//! into them.
//!
//! A frame keeps its bytes exactly as received, header included, so a proxy forwards it without
//! re-encoding; views ([`Frame::request`], [`Frame::response`]) read the body in place and the
//! rewrites (request id, attachments) touch only the bytes they must.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec;

use crate::hessian::{self, Value};

use super::error::{DubboError, FrameError};
use super::header::{
    DEFAULT_MAX_BODY_LEN, FLAG_EVENT, HEADER_LEN, Header, MAGIC, Serialization, Status,
};
use super::request::RequestView;
use super::response::ResponseView;

/// One complete Dubbo frame: header and body, as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    header: Header,
    /// Header and body; `bytes.len() == HEADER_LEN + header.body_len`.
    bytes: BytesMut,
}

/// What an event frame says (PROTOCOLS.md §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A heartbeat: the body is the serialization's `null`.
    Heartbeat,
    /// READONLY (`"R"`): the provider is shutting down; stop sending it new calls.
    ReadOnly,
    /// WRITEABLE (`"W"`): undoes READONLY.
    Writeable,
    /// Any other event body.
    Other,
}

// === impl Frame ===

impl Frame {
    /// A frame from its complete bytes (header and body).
    pub fn from_bytes(bytes: BytesMut) -> Result<Self, FrameError> {
        let header = Header::decode(&bytes)?;
        let needed = header.frame_len();
        match bytes.len().cmp(&needed) {
            std::cmp::Ordering::Less => Err(FrameError::Truncated {
                needed,
                available: bytes.len(),
            }),
            std::cmp::Ordering::Greater => Err(FrameError::TrailingBytes {
                extra: bytes.len() - needed,
            }),
            std::cmp::Ordering::Equal => Ok(Self { header, bytes }),
        }
    }

    /// A frame from a header (whose `body_len` is replaced) and a body.
    pub fn from_parts(mut header: Header, body: &[u8]) -> Result<Self, DubboError> {
        header.body_len = body_len_u32(body.len())?;
        let mut bytes = BytesMut::with_capacity(HEADER_LEN + body.len());
        bytes.put_slice(&header.encode());
        bytes.put_slice(body);
        Ok(Self { header, bytes })
    }

    /// Wraps bytes whose header was already validated and whose length matches it.
    pub(crate) fn from_validated(header: Header, bytes: BytesMut) -> Self {
        Self { header, bytes }
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The request id.
    pub fn request_id(&self) -> i64 {
        self.header.request_id
    }

    /// The body (everything after the 16-byte header).
    pub fn body(&self) -> &[u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or_default()
    }

    /// The whole frame.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The whole frame, ready to write.
    pub fn into_bytes(self) -> Bytes {
        self.bytes.freeze()
    }

    /// Rewrites the request id in place (header bytes 4..11); the body is untouched. This is how
    /// a proxy multiplexing several clients onto one upstream connection keeps ids unique.
    pub fn set_request_id(&mut self, request_id: i64) {
        self.header.request_id = request_id;
        if let Some(id) = self.bytes.get_mut(4..12) {
            id.copy_from_slice(&request_id.to_be_bytes());
        }
    }

    /// Reads the body of a (non-event) Hessian 2 request in place.
    pub fn request(&self) -> Result<RequestView<'_>, DubboError> {
        if !self.header.is_request() || self.header.is_event() {
            return Err(DubboError::WrongKind {
                expected: "a request",
                found: self.kind_name(),
            });
        }
        self.require_hessian2()?;
        RequestView::parse(self.body())
    }

    /// Reads the body of a (non-event) response in place. The status is always available; the
    /// body only for Hessian 2.
    pub fn response(&self) -> Result<ResponseView<'_>, DubboError> {
        if self.header.is_request() || self.header.is_event() {
            return Err(DubboError::WrongKind {
                expected: "a response",
                found: self.kind_name(),
            });
        }
        self.require_hessian2()?;
        ResponseView::parse(self.header.status, self.body())
    }

    /// `true` for an event whose body is the serialization's `null`: a heartbeat (request or
    /// response). Compares bytes, as Java does, so it works for fastjson2 too.
    pub fn is_heartbeat(&self) -> bool {
        self.header.is_event()
            && self
                .header
                .serialization()
                .null_bytes()
                .is_some_and(|null| self.body() == null)
    }

    /// What an event frame says; `None` if the frame is not an event.
    pub fn event_kind(&self) -> Option<EventKind> {
        if !self.header.is_event() {
            return None;
        }
        if self.is_heartbeat() {
            return Some(EventKind::Heartbeat);
        }
        if self.header.serialization() != Serialization::HESSIAN2 {
            return Some(EventKind::Other);
        }
        Some(match self.body() {
            [0x01, b'R'] => EventKind::ReadOnly,
            [0x01, b'W'] => EventKind::Writeable,
            _ => EventKind::Other,
        })
    }

    /// Decodes the body of an event (`null` for a heartbeat, `"R"` for READONLY, ...).
    pub fn event_data(&self) -> Result<Value, DubboError> {
        if !self.header.is_event() {
            return Err(DubboError::WrongKind {
                expected: "an event",
                found: self.kind_name(),
            });
        }
        self.require_hessian2()?;
        hessian::from_slice(self.body()).map_err(DubboError::body("event data"))
    }

    pub(crate) fn require_hessian2(&self) -> Result<(), DubboError> {
        let serialization = self.header.serialization();
        if serialization == Serialization::HESSIAN2 {
            Ok(())
        } else {
            Err(DubboError::UnsupportedSerialization { serialization })
        }
    }

    pub(crate) fn kind_name(&self) -> &'static str {
        match (self.header.is_request(), self.header.is_event()) {
            (true, false) => "a request",
            (true, true) => "an event request",
            (false, false) => "a response",
            (false, true) => "an event response",
        }
    }

    /// Replaces the body bytes `at..at` (relative to the body) with `insert`, fixing the body
    /// length in the header.
    pub(crate) fn insert_into_body(&mut self, at: usize, insert: &[u8]) -> Result<(), DubboError> {
        let new_len = self.body().len() + insert.len();
        let body_len = body_len_u32(new_len)?;
        let split = HEADER_LEN + at.min(self.body().len());
        let mut bytes = BytesMut::with_capacity(HEADER_LEN + new_len);
        bytes.put_slice(self.bytes.get(..split).unwrap_or_default());
        bytes.put_slice(insert);
        bytes.put_slice(self.bytes.get(split..).unwrap_or_default());
        self.header.body_len = body_len;
        if let Some(len) = bytes.get_mut(12..16) {
            len.copy_from_slice(&body_len.to_be_bytes());
        }
        self.bytes = bytes;
        Ok(())
    }
}

/// A body length as the header stores it (a non-negative `i32`).
pub(crate) fn body_len_u32(len: usize) -> Result<u32, DubboError> {
    i32::try_from(len)
        .ok()
        .and_then(|l| u32::try_from(l).ok())
        .ok_or(DubboError::BodyTooLong { len })
}

/// Rewrites the request id of a raw frame (header bytes 4..11) in place.
pub fn rewrite_request_id(frame: &mut [u8], request_id: i64) -> Result<(), FrameError> {
    Header::decode(frame)?;
    if let Some(id) = frame.get_mut(4..12) {
        id.copy_from_slice(&request_id.to_be_bytes());
    }
    Ok(())
}

/// Splits a byte stream into [`Frame`]s and writes them back.
///
/// The body-length limit is checked as soon as the header is in, before any of the body is
/// buffered, as Java's `payload` check does. Input that does not start with the magic is an
/// error rather than a resynchronisation (Java's telnet fallback has no place in a proxy).
#[derive(Debug, Clone, Copy)]
pub struct DubboCodec {
    max_body_len: usize,
}

impl Default for DubboCodec {
    fn default() -> Self {
        Self {
            max_body_len: DEFAULT_MAX_BODY_LEN,
        }
    }
}

// === impl DubboCodec ===

impl DubboCodec {
    /// A codec with the default 8 MiB body limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec that rejects bodies longer than `max_body_len` bytes.
    pub fn with_max_body_len(max_body_len: usize) -> Self {
        Self { max_body_len }
    }

    /// The body limit.
    pub fn max_body_len(&self) -> usize {
        self.max_body_len
    }

    /// Splits the whole frame at the front of `src` off, or `None` while it is incomplete.
    /// Unlike the [`codec::Decoder`] implementation it never grows `src`, for readers that
    /// manage their own buffers (see [`DubboCodec::missing`]).
    pub fn split_frame(&self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        // Reject a wrong magic as soon as its two bytes are in, not after 16.
        if let Some(magic) = src.first_chunk::<2>()
            && *magic != MAGIC
        {
            return Err(FrameError::BadMagic { found: *magic });
        }
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = Header::decode(src)?;
        self.check_len(&header)?;
        let frame_len = header.frame_len();
        if src.len() < frame_len {
            return Ok(None);
        }
        let bytes = src.split_to(frame_len);
        Ok(Some(Frame::from_validated(header, bytes)))
    }

    /// Bytes still to come for the incomplete frame at the front of `src` whose header is in;
    /// 0 when there is no such frame (nothing or less than a header buffered, or a bad header,
    /// which [`DubboCodec::split_frame`] reports).
    pub fn missing(&self, src: &[u8]) -> usize {
        match Header::decode(src) {
            Ok(header) if self.check_len(&header).is_ok() => {
                header.frame_len().saturating_sub(src.len())
            }
            _ => 0,
        }
    }

    fn check_len(&self, header: &Header) -> Result<(), FrameError> {
        let body_len = header.body_len as usize;
        if body_len > self.max_body_len {
            return Err(FrameError::FrameTooLarge {
                header: *header,
                body_len,
                limit: self.max_body_len,
            });
        }
        Ok(())
    }
}

impl codec::Decoder for DubboCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let frame = self.split_frame(src)?;
        if frame.is_none() {
            // Room for the rest of a frame whose header is in, so it is read in one go.
            src.reserve(self.missing(src));
        }
        Ok(frame)
    }
}

impl codec::Encoder<Frame> for DubboCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        // Java refuses to send what the peer would refuse to read.
        self.check_len(frame.header())?;
        dst.put_slice(frame.as_bytes());
        Ok(())
    }
}

/// Builds the reply to a heartbeat request: same id and serialization, event flag, status 20,
/// body = the serialization's `null` (PROTOCOLS.md §1.5).
pub fn heartbeat_reply(request: &Header) -> Result<Frame, DubboError> {
    if !request.is_request() || !request.is_event() {
        return Err(DubboError::WrongKind {
            expected: "an event request",
            found: if request.is_request() {
                "a request"
            } else {
                "a response"
            },
        });
    }
    let serialization = request.serialization();
    let null = serialization
        .null_bytes()
        .ok_or(DubboError::UnsupportedSerialization { serialization })?;
    let mut header = Header::response(request.request_id, serialization, Status::OK);
    header.flags |= FLAG_EVENT;
    Frame::from_parts(header, null)
}

/// Builds a heartbeat request (two-way event, body `null`) as Java sends to idle peers.
pub fn heartbeat_request(
    request_id: i64,
    serialization: Serialization,
) -> Result<Frame, DubboError> {
    let null = serialization
        .null_bytes()
        .ok_or(DubboError::UnsupportedSerialization { serialization })?;
    let mut header = Header::request(request_id, serialization, true);
    header.flags |= FLAG_EVENT;
    Frame::from_parts(header, null)
}
