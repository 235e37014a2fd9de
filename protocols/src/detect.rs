//! Protocol detection from the first bytes of a connection.
//!
//! This module owns one decision: given the bytes a client sent first, is the connection Dubbo,
//! Thrift (and which transport), HTTP/2 with prior knowledge, or HTTP/1? [`detect`] answers as
//! soon as exactly one protocol remains *and* its signature is complete; before that it says
//! [`Detection::NeedMore`], and once nothing matches it says [`Detection::Unknown`].
//!
//! Bytes needed for a verdict (the signatures never overlap, so there is no ambiguity):
//!
//! | Protocol | Signature | Bytes |
//! |---|---|---|
//! | Dubbo | magic `da bb` | 2 |
//! | Thrift unframed, strict binary | `80 01` (version 1) | 2 |
//! | Thrift unframed, compact | `82` then `21`/`41`/`61`/`81` (version 1, type 1–4) | 2 |
//! | Thrift framed or THeader | length 1..=`0x3fffffff`, then `80 01`, `82 x1`, `0f ff` (THeader) or `00 00` (non-strict binary) | 6 |
//! | Thrift unframed, non-strict binary | name length 1..=65535, then printable name bytes (or, for a one-byte name, the type 1–4) | 6 |
//! | HTTP/1 | method and space: `GET `, `PUT ` (4), `POST `, `HEAD ` (5), `TRACE `, `PATCH ` (6), `DELETE ` (7), `OPTIONS `, `CONNECT ` (8) | 4–8 |
//! | HTTP/2 prior knowledge | `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` | 24 |
//!
//! One byte often rules out all but one protocol (`da` can only be Dubbo, `G` only `GET `), but
//! the verdict waits for the whole signature so that garbage is not handed to a codec as if it
//! were that protocol. After [`MAX_DETECT_LEN`] bytes the answer is never `NeedMore`, so a
//! listener needs to buffer at most that much.

use crate::thrift::{MAX_THEADER_FRAME_SIZE, Protocol as ThriftProtocol, Transport};

/// The most bytes [`detect`] ever needs (the HTTP/2 connection preface).
pub const MAX_DETECT_LEN: usize = HTTP2_PREFACE.len();

/// The HTTP/2 client connection preface.
pub const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The Dubbo magic.
const DUBBO_MAGIC: &[u8] = &[0xda, 0xbb];

/// HTTP/1 request methods the proxy accepts, each followed by a space on the wire.
const HTTP1_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// A protocol recognised by [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detected {
    /// Dubbo 2 (`da bb` magic).
    Dubbo,
    /// Thrift over `transport`; `protocol` is `None` for THeader, whose payload protocol is
    /// named inside the header.
    Thrift {
        /// How messages are delimited.
        transport: Transport,
        /// Binary or compact, when the first bytes tell.
        protocol: Option<ThriftProtocol>,
    },
    /// HTTP/2 with prior knowledge (cleartext, connection preface).
    Http2,
    /// HTTP/1.x.
    Http1,
}

impl Detected {
    /// A short name for logs and metrics: `dubbo`, `thrift`, `http2` or `http1`.
    pub fn name(self) -> &'static str {
        match self {
            Detected::Dubbo => "dubbo",
            Detected::Thrift { .. } => "thrift",
            Detected::Http2 => "http2",
            Detected::Http1 => "http1",
        }
    }
}

/// The answer of [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detection {
    /// Some protocol still matches but its signature is incomplete: read more bytes.
    NeedMore,
    /// Exactly this protocol matches, with its whole signature.
    Detected(Detected),
    /// No supported protocol starts with these bytes.
    Unknown,
}

/// How one candidate relates to a prefix.
enum Match {
    No,
    Maybe,
    Yes(Detected),
}

/// Decides the protocol of a connection from the bytes received so far.
pub fn detect(prefix: &[u8]) -> Detection {
    let candidates = [
        literal(prefix, DUBBO_MAGIC, Detected::Dubbo),
        thrift_unframed(prefix),
        thrift_framed(prefix),
        thrift_unframed_non_strict(prefix),
        literal(prefix, HTTP2_PREFACE, Detected::Http2),
    ];
    let methods = HTTP1_METHODS
        .iter()
        .map(|method| literal(prefix, method, Detected::Http1));
    let mut maybe = false;
    for candidate in candidates.into_iter().chain(methods) {
        match candidate {
            Match::Yes(detected) => return Detection::Detected(detected),
            Match::Maybe => maybe = true,
            Match::No => {}
        }
    }
    if maybe {
        Detection::NeedMore
    } else {
        Detection::Unknown
    }
}

/// A fixed signature.
fn literal(prefix: &[u8], signature: &[u8], detected: Detected) -> Match {
    let n = prefix.len().min(signature.len());
    if prefix.get(..n) != signature.get(..n) {
        Match::No
    } else if n < signature.len() {
        Match::Maybe
    } else {
        Match::Yes(detected)
    }
}

/// The second byte of a compact message: version 1 in the low 5 bits, type 1–4 above.
fn is_compact_version_type(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x41 | 0x61 | 0x81)
}

/// Unframed strict binary (`80 01`) or compact (`82 t1`).
fn thrift_unframed(prefix: &[u8]) -> Match {
    let (protocol, second_ok): (_, fn(u8) -> bool) = match prefix.first() {
        Some(0x80) => (ThriftProtocol::Binary, |b| b == 0x01),
        Some(0x82) => (ThriftProtocol::Compact, is_compact_version_type),
        Some(_) => return Match::No,
        None => return Match::Maybe,
    };
    match prefix.get(1) {
        None => Match::Maybe,
        Some(&b) if second_ok(b) => Match::Yes(Detected::Thrift {
            transport: Transport::Buffered,
            protocol: Some(protocol),
        }),
        Some(_) => Match::No,
    }
}

/// Framed or THeader: a plausible length, then a message or THeader start.
fn thrift_framed(prefix: &[u8]) -> Match {
    // The largest frame any Thrift transport allows is 0x3fffffff, so the first byte is ≤ 0x3f.
    let max_first = (MAX_THEADER_FRAME_SIZE >> 24) as u8;
    match prefix.first() {
        None => return Match::Maybe,
        Some(&b) if b > max_first => return Match::No,
        Some(_) => {}
    }
    let Some(&[l0, l1, l2, l3]) = prefix.get(..4) else {
        return Match::Maybe;
    };
    if u32::from_be_bytes([l0, l1, l2, l3]) == 0 {
        return Match::No;
    }
    let kind = |transport, protocol| {
        Match::Yes(Detected::Thrift {
            transport,
            protocol,
        })
    };
    match (prefix.get(4), prefix.get(5)) {
        (None, _) => Match::Maybe,
        (Some(0x80 | 0x82 | 0x0f | 0x00), None) => Match::Maybe,
        (Some(0x80), Some(0x01)) => kind(Transport::Framed, Some(ThriftProtocol::Binary)),
        (Some(0x82), Some(&b)) if is_compact_version_type(b) => {
            kind(Transport::Framed, Some(ThriftProtocol::Compact))
        }
        (Some(0x0f), Some(0xff)) => kind(Transport::Header, None),
        // Non-strict binary: the message starts with a name length below 65536.
        (Some(0x00), Some(0x00)) => kind(Transport::Framed, Some(ThriftProtocol::Binary)),
        _ => Match::No,
    }
}

/// Unframed non-strict binary: i32 name length (1..=65535), then the name.
fn thrift_unframed_non_strict(prefix: &[u8]) -> Match {
    let printable = |b: &u8| (0x21..=0x7e).contains(b);
    if prefix.iter().take(2).any(|b| *b != 0) {
        return Match::No;
    }
    let Some(&[high, low]) = prefix.get(2..4) else {
        return Match::Maybe;
    };
    let name_len = u16::from_be_bytes([high, low]);
    // A one-byte name is followed by the message type.
    let second_ok = |b: &u8| {
        if name_len >= 2 {
            printable(b)
        } else {
            (1..=4).contains(b)
        }
    };
    match (prefix.get(4), prefix.get(5)) {
        _ if name_len == 0 => Match::No,
        (Some(first), _) if !printable(first) => Match::No,
        (None, _) | (Some(_), None) => Match::Maybe,
        (Some(_), Some(second)) if second_ok(second) => Match::Yes(Detected::Thrift {
            transport: Transport::Buffered,
            protocol: Some(ThriftProtocol::Binary),
        }),
        _ => Match::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks every prefix: `NeedMore` below `min_len`, the verdict from `min_len` on.
    fn check(bytes: &[u8], min_len: usize, expected: Detection) {
        for len in 0..=bytes.len() {
            let got = detect(&bytes[..len]);
            if len < min_len {
                assert_eq!(got, Detection::NeedMore, "{bytes:02x?} at {len}");
            } else {
                assert_eq!(got, expected, "{bytes:02x?} at {len}");
            }
        }
    }

    fn thrift(transport: Transport, protocol: Option<ThriftProtocol>) -> Detection {
        Detection::Detected(Detected::Thrift {
            transport,
            protocol,
        })
    }

    #[test]
    fn empty_needs_more() {
        assert_eq!(detect(&[]), Detection::NeedMore);
    }

    #[test]
    fn dubbo() {
        let header = [0xda, 0xbb, 0xc2, 0x00, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        check(&header, 2, Detection::Detected(Detected::Dubbo));
        assert_eq!(detect(&[0xda, 0xbc]), Detection::Unknown);
    }

    #[test]
    fn http2_preface() {
        let mut bytes = HTTP2_PREFACE.to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 4, 0]);
        check(&bytes, 24, Detection::Detected(Detected::Http2));
        assert_eq!(detect(b"PRI * HTTP/1.1\r\n"), Detection::Unknown);
    }

    #[test]
    fn http1_methods() {
        for method in HTTP1_METHODS {
            let mut request = method.to_vec();
            request.extend_from_slice(b"/ HTTP/1.1\r\nHost: a\r\n\r\n");
            check(&request, method.len(), Detection::Detected(Detected::Http1));
        }
        assert_eq!(detect(b"GET/"), Detection::Unknown);
        assert_eq!(detect(b"get "), Detection::Unknown);
        assert_eq!(detect(b"PO"), Detection::NeedMore);
        assert_eq!(detect(b"PX"), Detection::Unknown);
        assert_eq!(detect(b"G"), Detection::NeedMore);
    }

    #[test]
    fn thrift_unframed_strict_and_compact() {
        let binary = hex("800100010000000470696e67000000010b000100000002686900");
        check(
            &binary,
            2,
            thrift(Transport::Buffered, Some(ThriftProtocol::Binary)),
        );
        let compact = hex("8221010470696e671802686900");
        check(
            &compact,
            2,
            thrift(Transport::Buffered, Some(ThriftProtocol::Compact)),
        );
        assert_eq!(detect(&[0x80, 0x02]), Detection::Unknown);
        assert_eq!(detect(&[0x82, 0x22]), Detection::Unknown);
        assert_eq!(detect(&[0x82, 0xa1]), Detection::Unknown);
    }

    #[test]
    fn thrift_framed_and_theader() {
        let framed = hex("0000001a800100010000000470696e67000000010b000100000002686900");
        check(
            &framed,
            6,
            thrift(Transport::Framed, Some(ThriftProtocol::Binary)),
        );
        let compact = hex("0000000d8221010470696e671802686900");
        check(
            &compact,
            6,
            thrift(Transport::Framed, Some(ThriftProtocol::Compact)),
        );
        let header = hex("0000001f0fff000000000005000100000000800100010000000470696e670000000500");
        check(&header, 6, thrift(Transport::Header, None));
        let non_strict = hex("000000170000000470696e6701000000010b000100000002686900");
        check(
            &non_strict,
            6,
            thrift(Transport::Framed, Some(ThriftProtocol::Binary)),
        );
        assert_eq!(detect(&[0, 0, 0, 0]), Detection::Unknown);
        assert_eq!(detect(&[0x40]), Detection::Unknown);
        assert_eq!(detect(&[0, 0, 0, 0x1a, 0x81]), Detection::Unknown);
        assert_eq!(detect(&[0, 0, 0, 0x1a, 0x0f, 0xfe]), Detection::Unknown);
    }

    #[test]
    fn thrift_unframed_non_strict() {
        let call = hex("0000000470696e6701000000010b000100000002686900");
        check(
            &call,
            6,
            thrift(Transport::Buffered, Some(ThriftProtocol::Binary)),
        );
        // A one-character name: the type byte follows the name.
        let short = hex("000000017001000000010b000100000002686900");
        check(
            &short,
            6,
            thrift(Transport::Buffered, Some(ThriftProtocol::Binary)),
        );
        assert_eq!(detect(&[0, 0, 0, 4, b' ']), Detection::Unknown);
        assert_eq!(detect(&[0, 1, 0, 4, b'p']), Detection::Unknown);
    }

    #[test]
    fn garbage_is_unknown_at_once() {
        for first in [0x16u8, 0x40, 0xff, b'X', b'{', 0xdb] {
            let verdict = detect(&[first]);
            if first <= 0x3f {
                assert_eq!(verdict, Detection::NeedMore, "{first:#x}");
            } else {
                assert_eq!(verdict, Detection::Unknown, "{first:#x}");
            }
        }
        assert_eq!(
            detect(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]),
            Detection::Unknown
        );
    }

    #[test]
    fn max_detect_len_always_decides() {
        for seed in 0u32..2000 {
            let bytes: Vec<u8> = (0..MAX_DETECT_LEN as u32)
                .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 40_503) >> 7) as u8)
                .collect();
            assert_ne!(detect(&bytes), Detection::NeedMore, "{bytes:02x?}");
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
