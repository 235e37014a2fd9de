//! HTTP/2 frames on the wire (RFC 9113 §4 and §6): the 9-byte frame header, the payloads the
//! server reads (with their length and padding rules checked), and the frames it writes.
//!
//! Parsing borrows from the read buffer and never allocates; a payload that breaks a rule comes
//! back as the [`Error`] the RFC names for it, so the connection answers with the right
//! `GOAWAY` or `RST_STREAM` code.

use bytes::BufMut as _;

/// The bytes every HTTP/2 client sends first.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
pub const HEAD_LEN: usize = 9;
/// The largest frame payload either side may send before SETTINGS say otherwise; the server
/// never raises what it accepts.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest flow-control window the protocol allows.
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The window every stream and the connection start with.
pub const DEFAULT_WINDOW: u32 = 65_535;

/// Frame types. (the RFC's names).
#[allow(missing_docs)]
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags. (the RFC's names).
#[allow(missing_docs)]
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers. (the RFC's names).
#[allow(missing_docs)]
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// Error codes (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason(pub u32);

#[allow(missing_docs)] // The RFC's names.
impl Reason {
    pub const NO_ERROR: Self = Self(0x0);
    pub const PROTOCOL_ERROR: Self = Self(0x1);
    pub const INTERNAL_ERROR: Self = Self(0x2);
    pub const FLOW_CONTROL_ERROR: Self = Self(0x3);
    pub const STREAM_CLOSED: Self = Self(0x5);
    pub const FRAME_SIZE_ERROR: Self = Self(0x6);
    pub const REFUSED_STREAM: Self = Self(0x7);
    pub const CANCEL: Self = Self(0x8);
    pub const COMPRESSION_ERROR: Self = Self(0x9);
    pub const ENHANCE_YOUR_CALM: Self = Self(0xb);

    /// The code's name, for logs and errors.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => "unknown",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule the peer broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The whole connection is unusable: answered with `GOAWAY` and closed.
    #[error("connection error {reason}: {why}")]
    Connection {
        /// The code sent in GOAWAY.
        reason: Reason,
        /// What was wrong, for logs and the GOAWAY's debug data.
        why: &'static str,
    },
    /// Only this stream is: answered with `RST_STREAM`.
    #[error("stream {stream} error {reason}: {why}")]
    Stream {
        /// The stream.
        stream: u32,
        /// The code sent in RST_STREAM.
        reason: Reason,
        /// What was wrong, for logs.
        why: &'static str,
    },
}

impl Error {
    /// A connection error.
    pub fn connection(reason: Reason, why: &'static str) -> Self {
        Self::Connection { reason, why }
    }

    /// An error of one stream.
    pub fn stream(stream: u32, reason: Reason, why: &'static str) -> Self {
        Self::Stream {
            stream,
            reason,
            why,
        }
    }
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Payload length.
    pub len: u32,
    /// Frame type ([`kind`]).
    pub kind: u8,
    /// Flags ([`flag`]).
    pub flags: u8,
    /// Stream id (0 for the connection).
    pub stream: u32,
}

impl Head {
    /// Reads a header from its 9 bytes (the reserved bit of the stream id is ignored).
    pub fn parse(bytes: &[u8; HEAD_LEN]) -> Self {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *bytes;
        Self {
            len: u32::from_be_bytes([0, l0, l1, l2]),
            kind,
            flags,
            stream: u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]),
        }
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Writes a frame header for a payload of `len` bytes.
pub fn put_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    // Payloads the server writes are bounded by the peer's frame size (at most 2^24 - 1).
    let len = u32::try_from(len).unwrap_or(u32::MAX).min(0x00ff_ffff);
    let len = len.to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
    out.put_u32(stream & 0x7fff_ffff);
}

/// The payload of a padded frame without its pad-length byte and padding.
fn unpad<'a>(head: &Head, payload: &'a [u8]) -> Result<&'a [u8], Error> {
    if !head.has(flag::PADDED) {
        return Ok(payload);
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(Error::connection(
            Reason::FRAME_SIZE_ERROR,
            "padded frame without a pad length",
        ));
    };
    let keep = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(Error::connection(
            Reason::PROTOCOL_ERROR,
            "padding longer than the frame",
        ))?;
    Ok(&rest[..keep])
}

/// A DATA frame's data, without padding.
pub fn data<'a>(head: &Head, payload: &'a [u8]) -> Result<&'a [u8], Error> {
    if head.stream == 0 {
        return Err(Error::connection(
            Reason::PROTOCOL_ERROR,
            "DATA on stream 0",
        ));
    }
    unpad(head, payload)
}

/// A HEADERS frame's header block fragment, without padding and priority.
pub fn headers<'a>(head: &Head, payload: &'a [u8]) -> Result<&'a [u8], Error> {
    if head.stream == 0 {
        return Err(Error::connection(
            Reason::PROTOCOL_ERROR,
            "HEADERS on stream 0",
        ));
    }
    let fragment = unpad(head, payload)?;
    if !head.has(flag::PRIORITY) {
        return Ok(fragment);
    }
    let Some((priority, fragment)) = fragment.split_first_chunk::<5>() else {
        return Err(Error::connection(
            Reason::FRAME_SIZE_ERROR,
            "HEADERS too short for its priority",
        ));
    };
    check_dependency(head.stream, priority)?;
    Ok(fragment)
}

/// A stream may not depend on itself (RFC 9113 §5.3.1).
fn check_dependency(stream: u32, priority: &[u8; 5]) -> Result<(), Error> {
    let [d0, d1, d2, d3, _weight] = *priority;
    if u32::from_be_bytes([d0 & 0x7f, d1, d2, d3]) == stream {
        return Err(Error::stream(
            stream,
            Reason::PROTOCOL_ERROR,
            "stream depends on itself",
        ));
    }
    Ok(())
}

/// Checks a PRIORITY frame (which the server otherwise ignores).
pub fn priority(head: &Head, payload: &[u8]) -> Result<(), Error> {
    if head.stream == 0 {
        return Err(Error::connection(
            Reason::PROTOCOL_ERROR,
            "PRIORITY on stream 0",
        ));
    }
    let Ok(priority) = <&[u8; 5]>::try_from(payload) else {
        return Err(Error::stream(
            head.stream,
            Reason::FRAME_SIZE_ERROR,
            "PRIORITY is not 5 bytes",
        ));
    };
    check_dependency(head.stream, priority)
}

/// A RST_STREAM frame's error code.
pub fn rst_stream(head: &Head, payload: &[u8]) -> Result<Reason, Error> {
    if head.stream == 0 {
        return Err(Error::connection(
            Reason::PROTOCOL_ERROR,
            "RST_STREAM on stream 0",
        ));
    }
    four_bytes(payload, "RST_STREAM is not 4 bytes").map(Reason)
}

/// A WINDOW_UPDATE frame's increment.
pub fn window_update(head: &Head, payload: &[u8]) -> Result<u32, Error> {
    let increment = four_bytes(payload, "WINDOW_UPDATE is not 4 bytes")? & 0x7fff_ffff;
    if increment == 0 {
        let why = "WINDOW_UPDATE of 0";
        return Err(if head.stream == 0 {
            Error::connection(Reason::PROTOCOL_ERROR, why)
        } else {
            Error::stream(head.stream, Reason::PROTOCOL_ERROR, why)
        });
    }
    Ok(increment)
}

fn four_bytes(payload: &[u8], why: &'static str) -> Result<u32, Error> {
    <[u8; 4]>::try_from(payload)
        .map(u32::from_be_bytes)
        .map_err(|_| Error::connection(Reason::FRAME_SIZE_ERROR, why))
}

/// A PING frame's opaque data.
pub fn ping(head: &Head, payload: &[u8]) -> Result<[u8; 8], Error> {
    if head.stream != 0 {
        return Err(Error::connection(
            Reason::PROTOCOL_ERROR,
            "PING on a stream",
        ));
    }
    <[u8; 8]>::try_from(payload)
        .map_err(|_| Error::connection(Reason::FRAME_SIZE_ERROR, "PING is not 8 bytes"))
}

/// A GOAWAY frame's last stream id and error code.
pub fn goaway(head: &Head, payload: &[u8]) -> Result<(u32, Reason), Error> {
    if head.stream != 0 {
        return Err(Error::connection(
            Reason::PROTOCOL_ERROR,
            "GOAWAY on a stream",
        ));
    }
    let Some((fixed, _debug)) = payload.split_first_chunk::<8>() else {
        return Err(Error::connection(
            Reason::FRAME_SIZE_ERROR,
            "GOAWAY shorter than 8 bytes",
        ));
    };
    let [a, b, c, d, e, f, g, h] = *fixed;
    Ok((
        u32::from_be_bytes([a & 0x7f, b, c, d]),
        Reason(u32::from_be_bytes([e, f, g, h])),
    ))
}

/// Settings a client sent that the server acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerSettings {
    /// `SETTINGS_INITIAL_WINDOW_SIZE`: the send window of every stream.
    pub initial_window_size: Option<u32>,
    /// `SETTINGS_MAX_FRAME_SIZE`: the largest frame the client accepts.
    pub max_frame_size: Option<u32>,
}

/// A SETTINGS frame: `None` for an acknowledgement, the values the server uses otherwise.
pub fn settings(head: &Head, payload: &[u8]) -> Result<Option<PeerSettings>, Error> {
    if head.stream != 0 {
        return Err(Error::connection(
            Reason::PROTOCOL_ERROR,
            "SETTINGS on a stream",
        ));
    }
    if head.has(flag::ACK) {
        if !payload.is_empty() {
            return Err(Error::connection(
                Reason::FRAME_SIZE_ERROR,
                "SETTINGS acknowledgement with a payload",
            ));
        }
        return Ok(None);
    }
    if !payload.len().is_multiple_of(6) {
        return Err(Error::connection(
            Reason::FRAME_SIZE_ERROR,
            "SETTINGS length is not a multiple of 6",
        ));
    }
    let mut settings = PeerSettings::default();
    for entry in payload.chunks_exact(6) {
        let [i0, i1, v0, v1, v2, v3] = <[u8; 6]>::try_from(entry).unwrap_or_default();
        let value = u32::from_be_bytes([v0, v1, v2, v3]);
        match u16::from_be_bytes([i0, i1]) {
            setting::ENABLE_PUSH if value > 1 => {
                return Err(Error::connection(
                    Reason::PROTOCOL_ERROR,
                    "ENABLE_PUSH is neither 0 nor 1",
                ));
            }
            setting::INITIAL_WINDOW_SIZE => {
                if i64::from(value) > MAX_WINDOW {
                    return Err(Error::connection(
                        Reason::FLOW_CONTROL_ERROR,
                        "INITIAL_WINDOW_SIZE above 2^31-1",
                    ));
                }
                settings.initial_window_size = Some(value);
            }
            setting::MAX_FRAME_SIZE => {
                if !(DEFAULT_MAX_FRAME_SIZE..=0x00ff_ffff).contains(&value) {
                    return Err(Error::connection(
                        Reason::PROTOCOL_ERROR,
                        "MAX_FRAME_SIZE out of range",
                    ));
                }
                settings.max_frame_size = Some(value);
            }
            // The header table size only bounds an encoder that indexes (the server's never
            // does); the rest is advisory or unknown, and unknown settings are ignored.
            _ => {}
        }
    }
    Ok(Some(settings))
}

/// Writes the server's SETTINGS frame.
pub fn put_settings(out: &mut Vec<u8>, values: &[(u16, u32)]) {
    put_head(out, values.len() * 6, kind::SETTINGS, 0, 0);
    for &(id, value) in values {
        out.put_u16(id);
        out.put_u32(value);
    }
}

/// Writes a SETTINGS acknowledgement.
pub fn put_settings_ack(out: &mut Vec<u8>) {
    put_head(out, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Writes a PING acknowledgement.
pub fn put_ping_ack(out: &mut Vec<u8>, data: [u8; 8]) {
    put_head(out, 8, kind::PING, flag::ACK, 0);
    out.extend_from_slice(&data);
}

/// Writes a WINDOW_UPDATE.
pub fn put_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    put_head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.put_u32(increment & 0x7fff_ffff);
}

/// Writes a RST_STREAM.
pub fn put_rst_stream(out: &mut Vec<u8>, stream: u32, reason: Reason) {
    put_head(out, 4, kind::RST_STREAM, 0, stream);
    out.put_u32(reason.0);
}

/// Writes a GOAWAY with a short reason as its debug data.
pub fn put_goaway(out: &mut Vec<u8>, last_stream: u32, reason: Reason, debug: &str) {
    put_head(out, 8 + debug.len(), kind::GOAWAY, 0, 0);
    out.put_u32(last_stream & 0x7fff_ffff);
    out.put_u32(reason.0);
    out.extend_from_slice(debug.as_bytes());
}

/// Writes a DATA frame.
pub fn put_data(out: &mut Vec<u8>, stream: u32, data: &[u8], end_stream: bool) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    put_head(out, data.len(), kind::DATA, flags, stream);
    out.extend_from_slice(data);
}

/// Writes a header block as a HEADERS frame and as many CONTINUATION frames as `max_frame`
/// needs.
pub fn put_header_block(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let max_frame = max_frame.max(1);
    let mut chunks = block.chunks(max_frame).peekable();
    let first = chunks.next().unwrap_or_default();
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    let mut kind = kind::HEADERS;
    let mut chunk = first;
    loop {
        let last = chunks.peek().is_none();
        if last {
            flags |= flag::END_HEADERS;
        }
        put_head(out, chunk.len(), kind, flags, stream);
        out.extend_from_slice(chunk);
        match chunks.next() {
            Some(next) => {
                chunk = next;
                kind = kind::CONTINUATION;
                flags = 0;
            }
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: u8, flags: u8, stream: u32, len: u32) -> Head {
        Head {
            len,
            kind,
            flags,
            stream,
        }
    }

    #[test]
    fn a_written_head_reads_back() {
        let mut out = Vec::new();
        put_head(&mut out, 0x01_0203, kind::HEADERS, 0x25, 0x8000_0007);
        let bytes: [u8; 9] = out.as_slice().try_into().unwrap();
        assert_eq!(
            Head::parse(&bytes),
            head(kind::HEADERS, 0x25, 7, 0x01_0203),
            "the reserved bit is dropped"
        );
    }

    #[test]
    fn padding_is_removed_and_checked() {
        let padded = head(kind::DATA, flag::PADDED, 1, 6);
        assert_eq!(data(&padded, &[2, b'h', b'i', b'!', 0, 0]).unwrap(), b"hi!");
        assert_eq!(
            data(&padded, &[6, 1, 2]),
            Err(Error::connection(
                Reason::PROTOCOL_ERROR,
                "padding longer than the frame"
            ))
        );
        assert!(data(&head(kind::DATA, 0, 0, 1), b"x").is_err());
    }

    #[test]
    fn headers_skip_priority_and_refuse_self_dependency() {
        let h = head(kind::HEADERS, flag::PRIORITY | flag::END_HEADERS, 3, 7);
        assert_eq!(
            headers(&h, &[0, 0, 0, 1, 16, 0x82, 0x84]).unwrap(),
            &[0x82, 0x84]
        );
        assert!(matches!(
            headers(&h, &[0, 0, 0, 3, 16, 0x82]),
            Err(Error::Stream { stream: 3, .. })
        ));
        assert!(headers(&h, &[0, 0, 0]).is_err());
    }

    #[test]
    fn settings_are_checked() {
        let s = head(kind::SETTINGS, 0, 0, 12);
        let mut payload = Vec::new();
        payload.extend_from_slice(&[0, 4, 0, 1, 0, 0]);
        payload.extend_from_slice(&[0, 5, 0, 0, 0x40, 0]);
        assert_eq!(
            settings(&s, &payload).unwrap(),
            Some(PeerSettings {
                initial_window_size: Some(65_536),
                max_frame_size: Some(16_384),
            })
        );
        assert!(
            settings(&s, &[0, 4, 0x80, 0, 0, 0]).is_err(),
            "window too large"
        );
        assert!(
            settings(&s, &[0, 5, 0, 0, 0, 1]).is_err(),
            "frame size too small"
        );
        assert!(
            settings(&s, &[0, 2, 0, 0, 0, 2]).is_err(),
            "push not a bool"
        );
        assert!(settings(&s, &[0, 4, 0]).is_err(), "not a multiple of 6");
        assert_eq!(
            settings(&s, &[0, 0x99, 0, 0, 0, 2]).unwrap(),
            Some(PeerSettings::default())
        );
        let ack = head(kind::SETTINGS, flag::ACK, 0, 0);
        assert_eq!(settings(&ack, &[]).unwrap(), None);
        assert!(settings(&ack, &[0; 6]).is_err());
        assert!(settings(&head(kind::SETTINGS, 0, 1, 0), &[]).is_err());
    }

    #[test]
    fn window_updates_of_zero_are_errors_of_their_scope() {
        assert!(matches!(
            window_update(&head(kind::WINDOW_UPDATE, 0, 0, 4), &[0; 4]),
            Err(Error::Connection { .. })
        ));
        assert!(matches!(
            window_update(&head(kind::WINDOW_UPDATE, 0, 5, 4), &[0; 4]),
            Err(Error::Stream { stream: 5, .. })
        ));
        assert_eq!(
            window_update(&head(kind::WINDOW_UPDATE, 0, 5, 4), &[0x80, 0, 1, 0]).unwrap(),
            256
        );
    }

    #[test]
    fn a_large_header_block_continues() {
        let mut out = Vec::new();
        put_header_block(&mut out, 1, &[7; 10], true, 4);
        let frames: Vec<Head> = {
            let mut at = 0;
            let mut frames = Vec::new();
            while at < out.len() {
                let h = Head::parse(out[at..at + 9].try_into().unwrap());
                at += 9 + h.len as usize;
                frames.push(h);
            }
            frames
        };
        assert_eq!(
            frames,
            vec![
                head(kind::HEADERS, flag::END_STREAM, 1, 4),
                head(kind::CONTINUATION, 0, 1, 4),
                head(kind::CONTINUATION, flag::END_HEADERS, 1, 2),
            ]
        );
        let mut empty = Vec::new();
        put_header_block(&mut empty, 3, &[], false, 16);
        assert_eq!(empty, [0, 0, 0, 1, flag::END_HEADERS, 0, 0, 0, 3]);
    }
}
