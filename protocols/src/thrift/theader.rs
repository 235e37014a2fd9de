//! The THeader transport: reading, building and rewriting its header block.
//!
//! Layout (`HeaderFormat.md`, PROTOCOLS.md §3.4): i32 LENGTH, u16 magic `0x0FFF`, u16 flags, i32
//! sequence number, u16 header size in 4-byte words, then the variable header (varint protocol id,
//! varint transform count and ids, info blocks, zero padding) and finally the message. The info
//! key/value headers are where callers put trace context, so the proxy reads them and may rewrite
//! them; everything else is carried over unchanged.

use bytes::{BufMut, BytesMut};

use super::wire::{self, Cursor, Parse, Stop, put_varint};
use super::{Protocol, ThriftError};

/// The THeader magic: the u16 right after the length prefix.
pub const THEADER_MAGIC: u16 = 0x0fff;
/// The largest THeader frame (bytes after the length prefix) the format allows.
pub const MAX_THEADER_FRAME_SIZE: usize = 0x3fff_ffff;
/// Transform id: zlib-compressed payload.
pub const TRANSFORM_ZLIB: u64 = 1;
/// Transform id: HMAC-signed payload.
pub const TRANSFORM_HMAC: u64 = 2;
/// Transform id: snappy-compressed payload.
pub const TRANSFORM_SNAPPY: u64 = 3;

/// Info block id of string key/value headers.
const INFO_KEYVALUE: u64 = 1;
/// Info block id of "persistent" key/value headers (fbthrift); same layout as `INFO_KEYVALUE`.
const INFO_PKEYVALUE: u64 = 2;
/// Fixed part after the length prefix: magic, flags, sequence number, header size.
const FIXED_LEN: usize = 2 + 2 + 4 + 2;
/// Offset of the variable header in the frame (after the length prefix and the fixed part).
pub(crate) const VARIABLE_HEADER_OFFSET: usize = 4 + FIXED_LEN;

/// A decoded THeader (the part between the length prefix and the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct THeader {
    /// The FLAGS field, carried over verbatim.
    pub flags: u16,
    /// The SEQUENCE NUMBER field; writers set it to the message seqid.
    pub seqid: i32,
    /// The protocol of the payload.
    pub protocol: Protocol,
    /// Transform ids applied to the payload, in wire order (`TRANSFORM_*`).
    pub transforms: Vec<u64>,
    /// Info key/value headers in wire order. Keys and values are bytes on the wire; invalid
    /// UTF-8 is replaced (these carry ASCII trace and routing context in practice).
    pub headers: Vec<(String, String)>,
}

impl THeader {
    /// A header with no flags, transforms or info headers.
    pub fn new(protocol: Protocol, seqid: i32) -> THeader {
        THeader {
            flags: 0,
            seqid,
            protocol,
            transforms: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// The value of an info header; when a key repeats, the last one wins (as in Apache
    /// Thrift, which reads them into a map).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets an info header, replacing every earlier value of `key`.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.headers.retain(|(k, _)| *k != key);
        self.headers.push((key, value.into()));
    }

    /// Parses the THeader of one complete frame (length prefix included) and returns it with
    /// the offset of the payload (the message) in `frame`.
    ///
    /// Transforms are reported, not applied: a payload with transforms cannot be read as a
    /// message.
    pub fn parse(frame: &[u8]) -> Result<(THeader, usize), ThriftError> {
        wire::complete(read(frame), frame.len())
    }

    /// Writes a complete frame (length prefix, this header, `payload`) to `dst`.
    ///
    /// The variable header is padded to the next multiple of 4 only, as Apache Thrift's Python
    /// library does, so frames compare byte for byte with its output.
    pub fn write(&self, payload: &[u8], dst: &mut BytesMut) -> Result<(), ThriftError> {
        let mut variable = BytesMut::with_capacity(16);
        put_varint(&mut variable, u64::from(self.protocol.theader_id()));
        put_varint(&mut variable, self.transforms.len() as u64);
        for id in &self.transforms {
            put_varint(&mut variable, *id);
        }
        if !self.headers.is_empty() {
            put_varint(&mut variable, INFO_KEYVALUE);
            put_varint(&mut variable, self.headers.len() as u64);
            for (key, value) in &self.headers {
                put_varint(&mut variable, key.len() as u64);
                variable.put_slice(key.as_bytes());
                put_varint(&mut variable, value.len() as u64);
                variable.put_slice(value.as_bytes());
            }
        }
        let padding = (4 - variable.len() % 4) % 4;
        variable.put_bytes(0, padding);
        let words =
            u16::try_from(variable.len() / 4).map_err(|_| ThriftError::TooLargeToEncode {
                reason: "THeader variable header exceeds 65535 words",
            })?;
        let length = FIXED_LEN + variable.len() + payload.len();
        if length > MAX_THEADER_FRAME_SIZE {
            return Err(ThriftError::TooLargeToEncode {
                reason: "THeader frame exceeds 0x3FFFFFFF bytes",
            });
        }
        dst.reserve(4 + length);
        dst.put_u32(length as u32);
        dst.put_u16(THEADER_MAGIC);
        dst.put_u16(self.flags);
        dst.put_i32(self.seqid);
        dst.put_u16(words);
        dst.put_slice(&variable);
        dst.put_slice(payload);
        Ok(())
    }

    /// A complete frame with this header and `payload`; see [`THeader::write`].
    pub fn encode(&self, payload: &[u8]) -> Result<BytesMut, ThriftError> {
        let mut dst = BytesMut::new();
        self.write(payload, &mut dst)?;
        Ok(dst)
    }
}

/// Returns a copy of a THeader frame with its info headers replaced by `headers`; flags,
/// sequence number, protocol, transforms and payload are kept.
pub fn rewrite_theader_headers(
    frame: &[u8],
    headers: &[(String, String)],
) -> Result<BytesMut, ThriftError> {
    let (mut header, payload_offset) = THeader::parse(frame)?;
    header.headers = headers.to_vec();
    header.encode(frame.get(payload_offset..).unwrap_or_default())
}

fn read(frame: &[u8]) -> Parse<(THeader, usize)> {
    let mut cur = Cursor::complete(frame);
    let length = cur.i32_len()?;
    if length != frame.len().saturating_sub(4) {
        return Err(Stop::Invalid(ThriftError::Malformed {
            offset: 0,
            reason: "THeader length prefix does not match the frame",
        }));
    }
    let magic_offset = cur.offset();
    if cur.u16()? != THEADER_MAGIC {
        return Err(Stop::Invalid(ThriftError::Malformed {
            offset: magic_offset,
            reason: "missing THeader magic 0x0FFF",
        }));
    }
    let flags = cur.u16()?;
    let seqid = cur.i32()?;
    let size_offset = cur.offset();
    let words = usize::from(cur.u16()?);
    let end = VARIABLE_HEADER_OFFSET + words * 4;
    let Some(variable) = frame.get(..end) else {
        return Err(Stop::Invalid(ThriftError::Malformed {
            offset: size_offset,
            reason: "THeader header size is larger than the frame",
        }));
    };
    // Reads inside the variable header must not run into the payload.
    let mut cur = Cursor::complete(variable);
    cur.skip(VARIABLE_HEADER_OFFSET)?;

    let protocol_offset = cur.offset();
    let protocol_id = cur.varint(5)?;
    let protocol = Protocol::from_theader_id(protocol_id).ok_or(Stop::Invalid(
        ThriftError::UnsupportedProtocol {
            offset: protocol_offset,
            id: protocol_id,
        },
    ))?;
    let count = cur.varint(5)?;
    let mut transforms = Vec::new();
    for _ in 0..count {
        transforms.push(cur.varint(5)?);
    }
    let mut headers = Vec::new();
    while cur.remaining() > 0 {
        match cur.varint(5)? {
            INFO_KEYVALUE | INFO_PKEYVALUE => {
                let count = cur.varint(5)?;
                for _ in 0..count {
                    let key = read_string(&mut cur)?;
                    let value = read_string(&mut cur)?;
                    headers.push((key, value));
                }
            }
            // 0 is padding; an unknown info id cannot be skipped (no length), so stop as Apache
            // Thrift does and continue at the payload.
            _ => break,
        }
    }
    let header = THeader {
        flags,
        seqid,
        protocol,
        transforms,
        headers,
    };
    Ok((header, end))
}

fn read_string(cur: &mut Cursor<'_>) -> Parse<String> {
    let len = cur.varint_len()?;
    Ok(String::from_utf8_lossy(cur.take(len)?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_pads_like_python() {
        let mut header = THeader::new(Protocol::Binary, 5);
        header.set("k", "v");
        let frame = header.encode(&[0xaa]).unwrap();
        assert_eq!(
            &frame[..],
            &[
                0, 0, 0, 0x13, 0x0f, 0xff, 0, 0, 0, 0, 0, 5, 0, 2, 0, 0, 1, 1, 1, b'k', 1, b'v',
                0xaa
            ]
        );
        let (parsed, offset) = THeader::parse(&frame).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(offset, frame.len() - 1);
    }

    #[test]
    fn rejects_bad_header_size_and_protocol() {
        let frame = [0, 0, 0, 10, 0x0f, 0xff, 0, 0, 0, 0, 0, 5, 0, 9];
        assert!(matches!(
            THeader::parse(&frame),
            Err(ThriftError::Malformed { offset: 12, .. })
        ));
        let frame = [0, 0, 0, 14, 0x0f, 0xff, 0, 0, 0, 0, 0, 5, 0, 1, 1, 0, 0, 0];
        assert!(matches!(
            THeader::parse(&frame),
            Err(ThriftError::UnsupportedProtocol { offset: 14, id: 1 })
        ));
    }

    #[test]
    fn rewrite_keeps_payload() {
        let mut header = THeader::new(Protocol::Compact, -7);
        header.transforms.push(TRANSFORM_ZLIB);
        header.flags = 1;
        let frame = header.encode(b"payload").unwrap();
        let rewritten =
            rewrite_theader_headers(&frame, &[("traceparent".into(), "00-x".into())]).unwrap();
        let (parsed, offset) = THeader::parse(&rewritten).unwrap();
        assert_eq!(parsed.get("traceparent"), Some("00-x"));
        assert_eq!(parsed.seqid, -7);
        assert_eq!(parsed.flags, 1);
        assert_eq!(parsed.transforms, vec![TRANSFORM_ZLIB]);
        assert_eq!(&rewritten[offset..], b"payload");
    }
}
