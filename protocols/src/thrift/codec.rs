//! A `tokio_util` codec that cuts a Thrift byte stream into whole messages.
//!
//! Framed and THeader messages are delimited by their length prefix (capped by the maximum frame
//! size). Unframed messages are delimited by walking the argument struct. Decoded messages keep
//! their raw bytes so the proxy can forward them unchanged (or with a rewritten seqid).

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::header::{COMPACT_PROTOCOL_ID, read_header};
use super::rewrite::{SeqidRewrite, rewrite_seqid};
use super::skip::{Limits, walk_message};
use super::theader::{THEADER_MAGIC, VARIABLE_HEADER_OFFSET};
use super::wire::{self, Cursor, Stop};
use super::{
    ApplicationException, MessageHeader, MessageType, Protocol, THeader, ThriftError, Transport,
};

/// Default maximum frame (or unframed message) size: 8 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 8 * 1024 * 1024;
/// Default maximum nesting of structs and containers when walking unframed messages.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Decodes Thrift messages from a byte stream (and writes them back out unchanged).
///
/// The transport is either fixed or, by default, detected from the first message and then kept
/// for the connection (Envoy's auto-detection, extended to non-strict binary): `80 01`/`82`
/// first bytes mean unframed; otherwise a positive length followed by `0f ff` means THeader and
/// one followed by `80 01`, `82 x1` or `00 00` (non-strict binary) means framed.
#[derive(Debug, Clone)]
pub struct ThriftCodec {
    transport: Option<Transport>,
    max_frame_size: usize,
    max_depth: usize,
    /// Input length below which the last attempt showed no progress is possible: a pending
    /// frame's full size, or the end of a string an unframed walk is waiting for. Spares
    /// re-walking an unframed message on every read.
    need: usize,
}

impl Default for ThriftCodec {
    fn default() -> Self {
        ThriftCodec::new()
    }
}

impl ThriftCodec {
    /// A codec that detects the transport from the first message, with default limits.
    pub fn new() -> ThriftCodec {
        ThriftCodec {
            transport: None,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_depth: DEFAULT_MAX_DEPTH,
            need: 0,
        }
    }

    /// A codec for a known transport. With [`Transport::Framed`] or [`Transport::Header`],
    /// each frame may be either kind (told apart by the THeader magic).
    pub fn with_transport(transport: Transport) -> ThriftCodec {
        ThriftCodec {
            transport: Some(transport),
            ..ThriftCodec::new()
        }
    }

    /// Sets the largest accepted frame (bytes after the length prefix) or unframed message.
    pub fn max_frame_size(mut self, max: usize) -> ThriftCodec {
        self.max_frame_size = max;
        self
    }

    /// Sets the deepest nesting accepted when walking unframed messages.
    pub fn max_depth(mut self, max_depth: usize) -> ThriftCodec {
        self.max_depth = max_depth;
        self
    }

    /// The transport in use: fixed, detected, or `None` before the first message is seen.
    pub fn transport(&self) -> Option<Transport> {
        self.transport
    }

    fn decode_framed(&mut self, src: &mut BytesMut) -> Result<Option<ThriftMessage>, ThriftError> {
        let Some(prefix) = src.get(..4) else {
            self.need = 4;
            return Ok(None);
        };
        let mut length = [0u8; 4];
        length.copy_from_slice(prefix);
        let length = i32::from_be_bytes(length);
        let size = match usize::try_from(length) {
            Ok(0) => {
                return Err(ThriftError::Malformed {
                    offset: 0,
                    reason: "empty frame",
                });
            }
            Ok(size) if size <= self.max_frame_size => size,
            Ok(size) => {
                return Err(ThriftError::FrameTooLarge {
                    offset: 0,
                    size: size as u64,
                    max: self.max_frame_size,
                });
            }
            Err(_) => {
                return Err(ThriftError::NegativeLength {
                    offset: 0,
                    value: i64::from(length),
                });
            }
        };
        let total = size + 4;
        if src.len() < total {
            reserve_ahead(src, total);
            self.need = total;
            return Ok(None);
        }
        let frame = src.split_to(total);
        self.need = 0;
        framed_message(frame).map(Some)
    }

    fn decode_unframed(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<ThriftMessage>, ThriftError> {
        let limits = Limits {
            max_len: self.max_frame_size,
            max_depth: self.max_depth,
        };
        match walk_message(src, limits) {
            Ok((header, len)) => {
                self.need = 0;
                Ok(Some(ThriftMessage {
                    transport: Transport::Buffered,
                    header,
                    theader: None,
                    frame: src.split_to(len),
                    message_offset: 0,
                }))
            }
            Err(Stop::Incomplete { needed }) => {
                reserve_ahead(src, needed);
                self.need = needed;
                Ok(None)
            }
            Err(Stop::Invalid(error)) => Err(error),
        }
    }
}

/// The most buffer space reserved ahead of the bytes received: lengths come from the peer, so
/// reserving all of an announced frame at once would let a few bytes pin megabytes per
/// connection. The buffer still grows as the bytes actually arrive.
const MAX_RESERVE_AHEAD: usize = 64 * 1024;

fn reserve_ahead(src: &mut BytesMut, needed: usize) {
    src.reserve(needed.saturating_sub(src.len()).min(MAX_RESERVE_AHEAD));
}

/// Picks the transport from the first bytes of a connection; `None` means more bytes are needed.
fn detect_transport(buf: &[u8]) -> Option<Transport> {
    match buf {
        [] => None,
        [0x80 | COMPACT_PROTOCOL_ID, ..] => Some(Transport::Buffered),
        [l0, l1, l2, l3, p0, p1, ..] => {
            let length = i32::from_be_bytes([*l0, *l1, *l2, *l3]);
            let magic = u16::from_be_bytes([*p0, *p1]);
            let framed = length > 0
                && (magic == 0x8001
                    || (*p0 == COMPACT_PROTOCOL_ID && *p1 & 0x1f == 1)
                    // A non-strict binary message starts with its name length; names are short.
                    || magic == 0x0000);
            if length > 0 && magic == THEADER_MAGIC {
                Some(Transport::Header)
            } else if framed {
                Some(Transport::Framed)
            } else {
                // Non-strict unframed binary (name length, then the name) or garbage that the
                // header parser will reject with a precise error.
                Some(Transport::Buffered)
            }
        }
        _ => None,
    }
}

/// Parses one complete frame (length prefix included) of the framed or THeader transport.
fn framed_message(frame: BytesMut) -> Result<ThriftMessage, ThriftError> {
    let (transport, theader, message_offset) =
        if frame.get(4..6) == Some(&THEADER_MAGIC.to_be_bytes()[..]) {
            let (theader, offset) = THeader::parse(&frame)?;
            if let Some(id) = theader.transforms.first() {
                // The transform ids follow the protocol id at the start of the variable header.
                return Err(ThriftError::UnsupportedTransform {
                    offset: VARIABLE_HEADER_OFFSET,
                    id: *id,
                });
            }
            (Transport::Header, Some(theader), offset)
        } else {
            (Transport::Framed, None, 4)
        };
    let message = frame.get(message_offset..).unwrap_or_default();
    let mut cur = Cursor::complete(message).with_base(message_offset);
    let header = wire::complete(read_header(&mut cur), frame.len())?;
    if let Some(theader) = &theader
        && theader.protocol != header.protocol
    {
        return Err(ThriftError::Malformed {
            offset: message_offset,
            reason: "message protocol differs from the THeader protocol id",
        });
    }
    Ok(ThriftMessage {
        transport,
        header,
        theader,
        frame,
        message_offset,
    })
}

impl Decoder for ThriftCodec {
    type Item = ThriftMessage;
    type Error = ThriftError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ThriftMessage>, ThriftError> {
        if src.is_empty() || src.len() < self.need {
            return Ok(None);
        }
        let transport = match self.transport {
            Some(transport) => transport,
            None => match detect_transport(src) {
                Some(transport) => {
                    self.transport = Some(transport);
                    transport
                }
                None => return Ok(None),
            },
        };
        match transport {
            Transport::Buffered => self.decode_unframed(src),
            Transport::Framed | Transport::Header => self.decode_framed(src),
        }
    }
}

impl Encoder<ThriftMessage> for ThriftCodec {
    type Error = ThriftError;

    fn encode(&mut self, item: ThriftMessage, dst: &mut BytesMut) -> Result<(), ThriftError> {
        dst.extend_from_slice(&item.frame);
        Ok(())
    }
}

impl Encoder<BytesMut> for ThriftCodec {
    type Error = ThriftError;

    /// Writes an already-framed message (e.g. from [`ApplicationException::encode_reply`]).
    fn encode(&mut self, item: BytesMut, dst: &mut BytesMut) -> Result<(), ThriftError> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

/// One whole Thrift message as received, with its decoded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThriftMessage {
    /// How this message was delimited.
    pub transport: Transport,
    /// The message header.
    pub header: MessageHeader,
    /// The THeader, for the header transport.
    pub theader: Option<THeader>,
    /// The raw bytes: length prefix and THeader (if any), then the message.
    pub frame: BytesMut,
    /// Where the message (its header) starts in `frame`: 0 unframed, 4 framed, after the
    /// THeader for the header transport.
    pub message_offset: usize,
}

impl ThriftMessage {
    /// Decodes a buffer holding exactly one complete message, detecting the transport as
    /// [`ThriftCodec::new`] does (no size limit: the bytes are already in memory).
    ///
    /// For byte streams use [`ThriftCodec`]; this is for frames that arrive whole (tests,
    /// messages relayed from elsewhere). A partial message is [`ThriftError::Truncated`] and
    /// trailing bytes are [`ThriftError::Malformed`].
    pub fn parse(bytes: &[u8]) -> Result<ThriftMessage, ThriftError> {
        let mut src = BytesMut::from(bytes);
        let mut codec = ThriftCodec::new().max_frame_size(usize::MAX);
        match codec.decode(&mut src)? {
            Some(_) if !src.is_empty() => Err(ThriftError::Malformed {
                offset: bytes.len() - src.len(),
                reason: "trailing bytes after the message",
            }),
            Some(message) => Ok(message),
            None => Err(ThriftError::Truncated {
                offset: 0,
                needed: codec.need.max(bytes.len() + 1),
                available: bytes.len(),
            }),
        }
    }

    /// The message bytes (header and body, no framing).
    pub fn message(&self) -> &[u8] {
        self.frame.get(self.message_offset..).unwrap_or_default()
    }

    /// The body struct bytes (arguments, result or exception).
    pub fn body(&self) -> &[u8] {
        self.frame
            .get(self.message_offset + self.header.len..)
            .unwrap_or_default()
    }

    /// The protocol of the message.
    pub fn protocol(&self) -> Protocol {
        self.header.protocol
    }

    /// The decoded `TApplicationException` of an exception reply; `None` for other types.
    pub fn exception(&self) -> Option<Result<ApplicationException, ThriftError>> {
        (self.header.message_type == MessageType::Exception)
            .then(|| ApplicationException::decode_body(self.body(), self.header.protocol))
    }

    /// Rewrites the seqid (and the THeader sequence number) and returns the old one; the frame
    /// is replaced when a compact seqid changes length. See [`rewrite_seqid`].
    pub fn set_seqid(&mut self, seqid: i32) -> Result<i32, ThriftError> {
        let old_seqid = match rewrite_seqid(&mut self.frame, self.transport, seqid)? {
            SeqidRewrite::InPlace { old_seqid } => old_seqid,
            SeqidRewrite::Resized { old_seqid, frame } => {
                self.frame = frame;
                old_seqid
            }
        };
        let message = self.frame.get(self.message_offset..).unwrap_or_default();
        self.header = MessageHeader::parse(message)?;
        if let Some(theader) = &mut self.theader {
            theader.seqid = seqid;
        }
        Ok(old_seqid)
    }

    /// Takes the raw bytes, e.g. to write them to another connection.
    pub fn into_frame(self) -> BytesMut {
        self.frame
    }

    /// Consumes the frame prefix up to the message, leaving only the message bytes.
    pub fn into_message(self) -> BytesMut {
        let mut frame = self.frame;
        frame.advance(self.message_offset.min(frame.len()));
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_transports() {
        assert_eq!(detect_transport(&[]), None);
        assert_eq!(detect_transport(&[0x80]), Some(Transport::Buffered));
        assert_eq!(detect_transport(&[0x82]), Some(Transport::Buffered));
        assert_eq!(detect_transport(&[0, 0, 0, 0x1a, 0x80]), None);
        assert_eq!(
            detect_transport(&[0, 0, 0, 0x1a, 0x80, 0x01]),
            Some(Transport::Framed)
        );
        assert_eq!(
            detect_transport(&[0, 0, 0, 0x1a, 0x82, 0x21]),
            Some(Transport::Framed)
        );
        assert_eq!(
            detect_transport(&[0, 0, 0, 0x1a, 0x0f, 0xff]),
            Some(Transport::Header)
        );
        assert_eq!(
            detect_transport(&[0, 0, 0, 4, b'p', b'i']),
            Some(Transport::Buffered)
        );
    }

    #[test]
    fn rejects_oversized_and_empty_frames() {
        let mut codec = ThriftCodec::with_transport(Transport::Framed).max_frame_size(16);
        let mut src = BytesMut::from(&[0, 0, 0, 17][..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(ThriftError::FrameTooLarge {
                size: 17,
                max: 16,
                ..
            })
        ));
        let mut src = BytesMut::from(&[0, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(ThriftError::Malformed { offset: 0, .. })
        ));
        let mut src = BytesMut::from(&[0xff, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(ThriftError::NegativeLength { offset: 0, .. })
        ));
    }

    #[test]
    fn announced_lengths_do_not_reserve_megabytes() {
        // Found by fuzzing: a 6-byte non-strict header announcing a 1.7 GB name.
        let mut src = BytesMut::from(&[0x67, 0x04, 0x02, 0x70, 0x69, 0x00][..]);
        let mut codec = ThriftCodec::new().max_frame_size(usize::MAX);
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert!(src.capacity() <= 2 * MAX_RESERVE_AHEAD);
        let mut src = BytesMut::from(&[0x00, 0x7f, 0xff, 0xff, 0x80, 0x01][..]);
        let mut codec = ThriftCodec::new();
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert!(src.capacity() <= 2 * MAX_RESERVE_AHEAD);
    }

    #[test]
    fn unframed_message_over_max_is_rejected() {
        let mut codec = ThriftCodec::with_transport(Transport::Buffered).max_frame_size(32);
        // A strict header followed by a string field announcing 100 bytes.
        let mut src = BytesMut::from(
            &[
                0x80, 0x01, 0x00, 0x01, 0, 0, 0, 1, b'p', 0, 0, 0, 1, 0x0b, 0, 1, 0, 0, 0, 100,
            ][..],
        );
        assert!(matches!(
            codec.decode(&mut src),
            Err(ThriftError::MessageTooLarge { max: 32, .. })
        ));
    }
}
