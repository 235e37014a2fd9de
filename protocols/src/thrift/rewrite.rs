//! Sequence-id rewriting, so one upstream connection can carry calls from many clients.
//!
//! Binary seqids are a fixed i32 and are overwritten in place. Compact seqids are varints: when
//! the new id encodes to a different number of bytes the message changes length, so a new buffer
//! is built and the framed/THeader length prefix is fixed up. THeader frames also carry the seqid
//! in their SEQUENCE NUMBER field, which is rewritten too.

use bytes::{BufMut, BytesMut};

use super::header::read_header;
use super::theader::THEADER_MAGIC;
use super::wire::{self, Cursor, put_varint};
use super::{Protocol, THeader, ThriftError, Transport};

/// The outcome of [`rewrite_seqid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqidRewrite {
    /// The frame was rewritten in place.
    InPlace {
        /// The seqid the message had before.
        old_seqid: i32,
    },
    /// The new seqid has another encoded length (compact only): `frame` is the rewritten copy,
    /// with its length prefix fixed up; the input buffer was not modified.
    Resized {
        /// The seqid the message had before.
        old_seqid: i32,
        /// The rewritten frame.
        frame: BytesMut,
    },
}

impl SeqidRewrite {
    /// The seqid the message had before the rewrite.
    pub fn old_seqid(&self) -> i32 {
        match self {
            SeqidRewrite::InPlace { old_seqid } | SeqidRewrite::Resized { old_seqid, .. } => {
                *old_seqid
            }
        }
    }
}

/// Replaces the seqid of the one complete message in `frame` (length prefix and THeader included
/// for the framed and header transports; for framed transport a THeader frame is recognised by
/// its magic).
pub fn rewrite_seqid(
    frame: &mut [u8],
    transport: Transport,
    seqid: i32,
) -> Result<SeqidRewrite, ThriftError> {
    let (message_offset, has_theader) = locate_message(frame, transport)?;
    let message = frame.get(message_offset..).unwrap_or_default();
    let mut cur = Cursor::complete(message).with_base(message_offset);
    let header = wire::complete(read_header(&mut cur), frame.len())?;
    let old_seqid = header.seqid;
    let pos = message_offset + header.seqid_offset;
    let mut encoded = BytesMut::with_capacity(5);
    match header.protocol {
        Protocol::Binary => encoded.put_i32(seqid),
        // The compact seqid is an unsigned varint of the i32's bits.
        Protocol::Compact => put_varint(&mut encoded, u64::from(seqid as u32)),
    }
    if encoded.len() == header.seqid_len {
        write_at(frame, pos, &encoded)?;
        if has_theader {
            write_at(frame, 8, &seqid.to_be_bytes())?;
        }
        return Ok(SeqidRewrite::InPlace { old_seqid });
    }
    let before = frame.get(..pos).unwrap_or_default();
    let after = frame.get(pos + header.seqid_len..).unwrap_or_default();
    let mut resized = BytesMut::with_capacity(before.len() + encoded.len() + after.len());
    resized.put_slice(before);
    resized.put_slice(&encoded);
    resized.put_slice(after);
    if transport != Transport::Buffered {
        let length =
            i32::try_from(resized.len() - 4).map_err(|_| ThriftError::TooLargeToEncode {
                reason: "rewritten frame longer than i32::MAX",
            })?;
        write_at(&mut resized, 0, &length.to_be_bytes())?;
    }
    if has_theader {
        write_at(&mut resized, 8, &seqid.to_be_bytes())?;
    }
    Ok(SeqidRewrite::Resized {
        old_seqid,
        frame: resized,
    })
}

/// Offset of the message in `frame`, and whether a THeader precedes it.
fn locate_message(frame: &[u8], transport: Transport) -> Result<(usize, bool), ThriftError> {
    if transport == Transport::Buffered {
        return Ok((0, false));
    }
    if frame.get(4..6) == Some(&THEADER_MAGIC.to_be_bytes()[..]) {
        let (_, offset) = THeader::parse(frame)?;
        return Ok((offset, true));
    }
    if transport == Transport::Header {
        return Err(ThriftError::Malformed {
            offset: 4,
            reason: "missing THeader magic 0x0FFF",
        });
    }
    let prefix = frame.get(..4).unwrap_or_default();
    let length = <[u8; 4]>::try_from(prefix)
        .map(i32::from_be_bytes)
        .map_err(|_| ThriftError::Truncated {
            offset: 0,
            needed: 4,
            available: frame.len(),
        })?;
    if usize::try_from(length).ok() != Some(frame.len() - 4) {
        return Err(ThriftError::Malformed {
            offset: 0,
            reason: "frame length prefix does not match the frame",
        });
    }
    Ok((4, false))
}

fn write_at(buf: &mut [u8], pos: usize, bytes: &[u8]) -> Result<(), ThriftError> {
    let available = buf.len();
    let target = buf
        .get_mut(pos..pos + bytes.len())
        .ok_or(ThriftError::Truncated {
            offset: pos,
            needed: pos + bytes.len(),
            available,
        })?;
    target.copy_from_slice(bytes);
    Ok(())
}
