//! `TApplicationException`: the error reply the proxy sends in the caller's own protocol.
//!
//! A proxy-generated error is a message of type Exception (3) with the request's (bare) method
//! name and seqid, whose body is `{1: string message, 2: i32 type}` then STOP (PROTOCOLS.md
//! §3.7). Apache Thrift clients turn it into a `TApplicationException`. The decoder exists so
//! the proxy can classify upstream exception replies and so tests can re-parse what was built.

use bytes::{BufMut, BytesMut};

use super::codec::ThriftMessage;
use super::skip::skip_value;
use super::wire::{self, Cursor, Parse};
use super::{MessageType, Protocol, THeader, ThriftError, Transport, encode_message};

/// The `type` field of a `TApplicationException`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExceptionKind {
    /// 0: unknown error.
    Unknown,
    /// 1: no route for the method or service.
    UnknownMethod,
    /// 2: the message type was not expected.
    InvalidMessageType,
    /// 3: the reply named another method.
    WrongMethodName,
    /// 4: the reply had another seqid.
    BadSequenceId,
    /// 5: the reply had no result.
    MissingResult,
    /// 6: no healthy upstream, upstream reset, timeout.
    InternalError,
    /// 7: undecodable request.
    ProtocolError,
    /// 8: unknown THeader transform.
    InvalidTransform,
    /// 9: unsupported protocol.
    InvalidProtocol,
    /// 10: unsupported client type.
    UnsupportedClientType,
    /// Any other value, kept as read.
    Other(i32),
}

impl ExceptionKind {
    /// The kind for a wire value.
    pub fn from_i32(code: i32) -> ExceptionKind {
        match code {
            0 => ExceptionKind::Unknown,
            1 => ExceptionKind::UnknownMethod,
            2 => ExceptionKind::InvalidMessageType,
            3 => ExceptionKind::WrongMethodName,
            4 => ExceptionKind::BadSequenceId,
            5 => ExceptionKind::MissingResult,
            6 => ExceptionKind::InternalError,
            7 => ExceptionKind::ProtocolError,
            8 => ExceptionKind::InvalidTransform,
            9 => ExceptionKind::InvalidProtocol,
            10 => ExceptionKind::UnsupportedClientType,
            other => ExceptionKind::Other(other),
        }
    }

    /// The wire value.
    pub fn code(self) -> i32 {
        match self {
            ExceptionKind::Unknown => 0,
            ExceptionKind::UnknownMethod => 1,
            ExceptionKind::InvalidMessageType => 2,
            ExceptionKind::WrongMethodName => 3,
            ExceptionKind::BadSequenceId => 4,
            ExceptionKind::MissingResult => 5,
            ExceptionKind::InternalError => 6,
            ExceptionKind::ProtocolError => 7,
            ExceptionKind::InvalidTransform => 8,
            ExceptionKind::InvalidProtocol => 9,
            ExceptionKind::UnsupportedClientType => 10,
            ExceptionKind::Other(code) => code,
        }
    }

    /// The upper-case name Apache Thrift uses (`INTERNAL_ERROR`), `OTHER` for unknown codes.
    pub fn name(self) -> &'static str {
        match self {
            ExceptionKind::Unknown => "UNKNOWN",
            ExceptionKind::UnknownMethod => "UNKNOWN_METHOD",
            ExceptionKind::InvalidMessageType => "INVALID_MESSAGE_TYPE",
            ExceptionKind::WrongMethodName => "WRONG_METHOD_NAME",
            ExceptionKind::BadSequenceId => "BAD_SEQUENCE_ID",
            ExceptionKind::MissingResult => "MISSING_RESULT",
            ExceptionKind::InternalError => "INTERNAL_ERROR",
            ExceptionKind::ProtocolError => "PROTOCOL_ERROR",
            ExceptionKind::InvalidTransform => "INVALID_TRANSFORM",
            ExceptionKind::InvalidProtocol => "INVALID_PROTOCOL",
            ExceptionKind::UnsupportedClientType => "UNSUPPORTED_CLIENT_TYPE",
            ExceptionKind::Other(_) => "OTHER",
        }
    }
}

/// A `TApplicationException`: a message and a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationException {
    /// Field 1: the human-readable message.
    pub message: String,
    /// Field 2: the type code.
    pub kind: ExceptionKind,
}

/// Nesting allowed when skipping unknown fields of an exception body.
const EXCEPTION_MAX_DEPTH: usize = 64;

impl ApplicationException {
    /// An exception of `kind` with `message`.
    pub fn new(kind: ExceptionKind, message: impl Into<String>) -> ApplicationException {
        ApplicationException {
            message: message.into(),
            kind,
        }
    }

    /// Appends the exception struct (`{1: message, 2: type}` then STOP) in `protocol`.
    pub fn write_body(&self, protocol: Protocol, dst: &mut BytesMut) {
        let message = self.message.as_bytes();
        match protocol {
            Protocol::Binary => {
                dst.reserve(16 + message.len());
                dst.put_slice(&[0x0b, 0x00, 0x01]);
                // A message longer than i32::MAX cannot be framed anyway; clamp instead of failing.
                let len = message.len().min(i32::MAX as usize);
                dst.put_i32(len as i32);
                dst.put_slice(message.get(..len).unwrap_or_default());
                dst.put_slice(&[0x08, 0x00, 0x02]);
                dst.put_i32(self.kind.code());
                dst.put_u8(0x00);
            }
            Protocol::Compact => {
                dst.reserve(16 + message.len());
                dst.put_u8(0x18); // field delta 1, binary
                wire::put_varint(dst, message.len() as u64);
                dst.put_slice(message);
                dst.put_u8(0x15); // field delta 1, i32
                let code = self.kind.code();
                wire::put_varint(dst, u64::from(((code << 1) ^ (code >> 31)) as u32));
                dst.put_u8(0x00);
            }
        }
    }

    /// Builds the complete reply message (with `transport` framing) for a request named
    /// `method` with `seqid`.
    ///
    /// Pass the bare method name for multiplexed calls: servers reply without the service
    /// prefix, and C++ clients compare names.
    pub fn encode_reply(
        &self,
        protocol: Protocol,
        transport: Transport,
        method: &str,
        seqid: i32,
    ) -> Result<BytesMut, ThriftError> {
        let mut body = BytesMut::with_capacity(16 + self.message.len());
        self.write_body(protocol, &mut body);
        encode_message(
            protocol,
            transport,
            method,
            MessageType::Exception,
            seqid,
            &body,
        )
    }

    /// Builds the reply to `request` in its own protocol and transport, with its bare method
    /// name and seqid. A THeader request gets a THeader reply with the same flags and no info
    /// headers.
    pub fn reply_to(&self, request: &ThriftMessage) -> Result<BytesMut, ThriftError> {
        let protocol = request.header.protocol;
        let method = request.header.method();
        let seqid = request.header.seqid;
        match &request.theader {
            Some(theader) => {
                let mut message = BytesMut::with_capacity(32 + self.message.len());
                super::write_message_header(
                    &mut message,
                    protocol,
                    method,
                    MessageType::Exception,
                    seqid,
                )?;
                self.write_body(protocol, &mut message);
                let mut reply = THeader::new(protocol, seqid);
                reply.flags = theader.flags;
                reply.encode(&message)
            }
            None => self.encode_reply(protocol, request.transport, method, seqid),
        }
    }

    /// Reads an exception struct (a message body) in `protocol`; unknown fields are skipped,
    /// missing ones default to an empty message and [`ExceptionKind::Unknown`].
    pub fn decode_body(
        body: &[u8],
        protocol: Protocol,
    ) -> Result<ApplicationException, ThriftError> {
        wire::complete(read_body(&mut Cursor::complete(body), protocol), body.len())
    }
}

fn read_body(cur: &mut Cursor<'_>, protocol: Protocol) -> Parse<ApplicationException> {
    let mut exception = ApplicationException::new(ExceptionKind::Unknown, "");
    let mut last_id: i16 = 0;
    loop {
        let type_offset = cur.offset();
        let byte = cur.u8()?;
        if byte == 0 {
            return Ok(exception);
        }
        let (ty, id) = match protocol {
            Protocol::Binary => (byte, i16::from_be_bytes([cur.u8()?, cur.u8()?])),
            Protocol::Compact => {
                let delta = byte >> 4;
                let id = if delta == 0 {
                    let raw = cur.varint(3)? as u16;
                    ((raw >> 1) as i16) ^ -((raw & 1) as i16)
                } else {
                    last_id.wrapping_add(i16::from(delta))
                };
                last_id = id;
                (byte & 0x0f, id)
            }
        };
        match (protocol, id, ty) {
            (Protocol::Binary, 1, 0x0b) | (Protocol::Compact, 1, 0x08) => {
                let len = match protocol {
                    Protocol::Binary => cur.i32_len()?,
                    Protocol::Compact => cur.varint_len()?,
                };
                exception.message = String::from_utf8_lossy(cur.take(len)?).into_owned();
            }
            (Protocol::Binary, 2, 0x08) => exception.kind = ExceptionKind::from_i32(cur.i32()?),
            (Protocol::Compact, 2, 0x05) => {
                let raw = cur.varint32()?;
                exception.kind = ExceptionKind::from_i32(((raw >> 1) as i32) ^ -((raw & 1) as i32));
            }
            // Compact booleans live in the field header and have no payload.
            (Protocol::Compact, _, 0x01 | 0x02) => {}
            _ => skip_value(cur, protocol, ty, type_offset, EXCEPTION_MAX_DEPTH)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for code in -1..12 {
            assert_eq!(ExceptionKind::from_i32(code).code(), code);
        }
        assert_eq!(ExceptionKind::InternalError.name(), "INTERNAL_ERROR");
    }

    #[test]
    fn bodies_round_trip() {
        for protocol in [Protocol::Binary, Protocol::Compact] {
            for code in [0, 6, 10, -5, i32::MAX, i32::MIN] {
                let exception = ApplicationException::new(ExceptionKind::from_i32(code), "boom ✓");
                let mut body = BytesMut::new();
                exception.write_body(protocol, &mut body);
                assert_eq!(
                    ApplicationException::decode_body(&body, protocol).unwrap(),
                    exception
                );
            }
        }
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // {3: list<string> ["a"], 1: "m", 2: 7}
        let body = [
            0x0f, 0x00, 0x03, 0x0b, 0, 0, 0, 1, 0, 0, 0, 1, b'a', 0x0b, 0x00, 0x01, 0, 0, 0, 1,
            b'm', 0x08, 0x00, 0x02, 0, 0, 0, 7, 0x00,
        ];
        let exception = ApplicationException::decode_body(&body, Protocol::Binary).unwrap();
        assert_eq!(exception.message, "m");
        assert_eq!(exception.kind, ExceptionKind::ProtocolError);
    }
}
