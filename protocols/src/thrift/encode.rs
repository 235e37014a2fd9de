//! Writing Thrift message headers and whole messages in any protocol and transport.
//!
//! The proxy builds few messages itself (exception replies, test frames); binary headers are
//! always written strict (`80 01`) because every Apache Thrift reader accepts them.

use bytes::{BufMut, BytesMut};

use super::header::COMPACT_PROTOCOL_ID;
use super::wire::put_varint;
use super::{MessageType, Protocol, THeader, ThriftError, Transport};

/// Appends a message header (name, type, seqid) in `protocol` to `dst`.
pub fn write_message_header(
    dst: &mut BytesMut,
    protocol: Protocol,
    name: &str,
    message_type: MessageType,
    seqid: i32,
) -> Result<(), ThriftError> {
    match protocol {
        Protocol::Binary => {
            let len = i32::try_from(name.len()).map_err(|_| ThriftError::TooLargeToEncode {
                reason: "message name longer than i32::MAX",
            })?;
            dst.reserve(12 + name.len());
            dst.put_u32(0x8001_0000 | u32::from(message_type.as_u8()));
            dst.put_i32(len);
            dst.put_slice(name.as_bytes());
            dst.put_i32(seqid);
        }
        Protocol::Compact => {
            dst.reserve(12 + name.len());
            dst.put_u8(COMPACT_PROTOCOL_ID);
            dst.put_u8((message_type.as_u8() << 5) | 1);
            // The seqid is an unsigned varint of the i32's bits (negative ids take 5 bytes).
            put_varint(dst, u64::from(seqid as u32));
            put_varint(dst, name.len() as u64);
            dst.put_slice(name.as_bytes());
        }
    }
    Ok(())
}

/// Builds a complete message: header, the already-encoded `body` struct, and the framing of
/// `transport` (a THeader frame gets no info headers; use [`THeader::encode`] for those).
pub fn encode_message(
    protocol: Protocol,
    transport: Transport,
    name: &str,
    message_type: MessageType,
    seqid: i32,
    body: &[u8],
) -> Result<BytesMut, ThriftError> {
    let mut message = BytesMut::with_capacity(16 + name.len() + body.len());
    write_message_header(&mut message, protocol, name, message_type, seqid)?;
    message.put_slice(body);
    match transport {
        Transport::Buffered => Ok(message),
        Transport::Framed => {
            let len = i32::try_from(message.len()).map_err(|_| ThriftError::TooLargeToEncode {
                reason: "framed message longer than i32::MAX",
            })?;
            let mut frame = BytesMut::with_capacity(4 + message.len());
            frame.put_i32(len);
            frame.put_slice(&message);
            Ok(frame)
        }
        Transport::Header => THeader::new(protocol, seqid).encode(&message),
    }
}
