//! Thrift message headers: strict and non-strict binary, and compact.
//!
//! The header is all a proxy needs to route (name), to multiplex (seqid) and to know whether a
//! reply will come (type); the argument struct after it is passed through untouched.

use super::wire::{self, Cursor, Parse, Stop};
use super::{MessageType, Protocol, ThriftError};

/// First byte of a strict binary header (`0x80 01` = version 1 with the sign bit set).
const BINARY_VERSION_1: u32 = 0x8001_0000;
const BINARY_VERSION_MASK: u32 = 0xffff_0000;
/// Compact protocol id (first byte) and version (low 5 bits of the second byte).
pub(crate) const COMPACT_PROTOCOL_ID: u8 = 0x82;
const COMPACT_VERSION: u8 = 1;
const COMPACT_VERSION_MASK: u8 = 0x1f;

/// A decoded Thrift message header plus where its parts sit in the message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    /// The message name as on the wire (`Service:method` when multiplexed).
    pub name: String,
    /// Call, reply, exception or oneway.
    pub message_type: MessageType,
    /// The sequence id (compact writes it as an unsigned varint; this is its signed value).
    pub seqid: i32,
    /// Binary or compact.
    pub protocol: Protocol,
    /// Binary only: `true` for the `80 01` versioned header, `false` for the old header that
    /// starts with the name length. Always `true` for compact.
    pub strict: bool,
    /// Offset of the sequence id from the start of the message.
    pub seqid_offset: usize,
    /// Encoded length of the sequence id: 4 for binary, 1–5 for compact.
    pub seqid_len: usize,
    /// Length of the header; the argument/result struct starts at this offset.
    pub len: usize,
}

impl MessageHeader {
    /// Parses the header at the start of a complete message (e.g. a frame's payload).
    ///
    /// The protocol is chosen by the first byte: `0x80` strict binary, `0x82` compact,
    /// `0x00..=0x7f` non-strict binary.
    pub fn parse(message: &[u8]) -> Result<MessageHeader, ThriftError> {
        wire::complete(read_header(&mut Cursor::complete(message)), message.len())
    }

    /// Parses the header at the start of a stream prefix: `Ok(None)` means more bytes are needed.
    ///
    /// A name so long that the header would end past `max_len` bytes is an error rather than a
    /// wait, so garbage cannot make a caller buffer forever.
    pub fn parse_prefix(buf: &[u8], max_len: usize) -> Result<Option<MessageHeader>, ThriftError> {
        wire::finish(read_header(&mut Cursor::stream(buf, max_len)))
    }

    /// The service of a multiplexed name (`Calc` in `Calc:ping`), if any.
    pub fn service(&self) -> Option<&str> {
        split_service_method(&self.name).0
    }

    /// The bare method name (`ping` in `Calc:ping` and in `ping`).
    pub fn method(&self) -> &str {
        split_service_method(&self.name).1
    }
}

/// Splits a `TMultiplexedProtocol` name at the first `:` into `(Some(service), method)`;
/// a name without `:` is `(None, name)`.
///
/// The first colon is the one Apache Thrift's `TMultiplexedProcessor` splits at.
pub fn split_service_method(name: &str) -> (Option<&str>, &str) {
    match name.split_once(':') {
        Some((service, method)) => (Some(service), method),
        None => (None, name),
    }
}

/// Reads a message header of either protocol at the cursor.
pub(crate) fn read_header(cur: &mut Cursor<'_>) -> Parse<MessageHeader> {
    let start = cur.pos();
    match cur.peek_u8()? {
        COMPACT_PROTOCOL_ID => read_compact(cur, start),
        0x80 => read_binary_strict(cur, start),
        0x00..=0x7f => read_binary_old(cur, start),
        _ => Err(Stop::Invalid(ThriftError::Malformed {
            offset: cur.offset(),
            reason: "not a thrift message: first byte is neither 0x80 (binary), 0x82 (compact) nor a name length",
        })),
    }
}

fn read_binary_strict(cur: &mut Cursor<'_>, start: usize) -> Parse<MessageHeader> {
    let version_offset = cur.offset();
    let version = cur.i32()? as u32;
    if version & BINARY_VERSION_MASK != BINARY_VERSION_1 {
        return Err(Stop::Invalid(ThriftError::BadVersion {
            offset: version_offset,
            version,
        }));
    }
    let message_type = message_type(version as u8, version_offset.saturating_add(3))?;
    let name = read_name(cur, NameLength::Binary)?;
    let seqid_offset = cur.pos() - start;
    let seqid = cur.i32()?;
    Ok(MessageHeader {
        name,
        message_type,
        seqid,
        protocol: Protocol::Binary,
        strict: true,
        seqid_offset,
        seqid_len: 4,
        len: cur.pos() - start,
    })
}

fn read_binary_old(cur: &mut Cursor<'_>, start: usize) -> Parse<MessageHeader> {
    let name = read_name(cur, NameLength::Binary)?;
    let type_offset = cur.offset();
    let message_type = message_type(cur.u8()?, type_offset)?;
    let seqid_offset = cur.pos() - start;
    let seqid = cur.i32()?;
    Ok(MessageHeader {
        name,
        message_type,
        seqid,
        protocol: Protocol::Binary,
        strict: false,
        seqid_offset,
        seqid_len: 4,
        len: cur.pos() - start,
    })
}

fn read_compact(cur: &mut Cursor<'_>, start: usize) -> Parse<MessageHeader> {
    cur.u8()?; // protocol id, checked by the caller
    let type_offset = cur.offset();
    let version_and_type = cur.u8()?;
    if version_and_type & COMPACT_VERSION_MASK != COMPACT_VERSION {
        return Err(Stop::Invalid(ThriftError::Malformed {
            offset: type_offset,
            reason: "compact protocol version is not 1",
        }));
    }
    let message_type = message_type(version_and_type >> 5, type_offset)?;
    let seqid_offset = cur.pos() - start;
    // Written as an unsigned 32-bit varint; negative seqids take 5 bytes.
    let seqid = cur.varint32()? as i32;
    let seqid_len = cur.pos() - start - seqid_offset;
    let name = read_name(cur, NameLength::Compact)?;
    Ok(MessageHeader {
        name,
        message_type,
        seqid,
        protocol: Protocol::Compact,
        strict: true,
        seqid_offset,
        seqid_len,
        len: cur.pos() - start,
    })
}

enum NameLength {
    Binary,
    Compact,
}

fn read_name(cur: &mut Cursor<'_>, length: NameLength) -> Parse<String> {
    let len = match length {
        NameLength::Binary => cur.i32_len()?,
        NameLength::Compact => cur.varint_len()?,
    };
    let offset = cur.offset();
    let bytes = cur.take(len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        Stop::Invalid(ThriftError::Malformed {
            offset,
            reason: "message name is not valid UTF-8",
        })
    })
}

fn message_type(value: u8, offset: usize) -> Parse<MessageType> {
    MessageType::from_u8(value).ok_or(Stop::Invalid(ThriftError::InvalidMessageType {
        offset,
        value,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names() {
        assert_eq!(split_service_method("Calc:ping"), (Some("Calc"), "ping"));
        assert_eq!(split_service_method("ping"), (None, "ping"));
        assert_eq!(split_service_method("a:b:c"), (Some("a"), "b:c"));
    }

    #[test]
    fn compact_negative_seqid_takes_five_bytes() {
        let bytes = [0x82, 0x21, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, b'p'];
        let header = MessageHeader::parse(&bytes).unwrap();
        assert_eq!(header.seqid, -1);
        assert_eq!(header.seqid_len, 5);
        assert_eq!(header.name, "p");
    }

    #[test]
    fn prefix_needs_more_then_errors_past_max() {
        assert!(
            MessageHeader::parse_prefix(&[0x80, 0x01, 0x00], 64)
                .unwrap()
                .is_none()
        );
        let huge_name = [0x80, 0x01, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00];
        assert!(matches!(
            MessageHeader::parse_prefix(&huge_name, 64),
            Err(ThriftError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn bad_version_and_type() {
        assert!(matches!(
            MessageHeader::parse(&[0x80, 0x02, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ThriftError::BadVersion { offset: 0, .. })
        ));
        assert!(matches!(
            MessageHeader::parse(&[0x80, 0x01, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ThriftError::InvalidMessageType {
                offset: 3,
                value: 9
            })
        ));
        assert!(matches!(
            MessageHeader::parse(&[0x82, 0x22]),
            Err(ThriftError::Malformed { offset: 1, .. })
        ));
    }
}
