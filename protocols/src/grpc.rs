//! gRPC over HTTP/2: message framing, paths and trailers-only errors.
//!
//! This module owns the gRPC-specific bytes and headers the proxy touches (PROTOCOLS.md §4):
//!
//! - the 5-byte length-prefixed message framing inside DATA frames ([`GrpcCodec`],
//!   [`encode_frame`]) with a maximum message size;
//! - the `:path` routing key `/package.Service/Method` ([`GrpcPath`]);
//! - status codes ([`Code`]) with their names, the HTTP → gRPC mapping for responses without
//!   `grpc-status`, and `grpc-message` percent-encoding;
//! - proxy-generated "Trailers-Only" error responses ([`Status::trailers_only`]);
//! - `grpc-timeout` and content-type helpers.
//!
//! HTTP/2 itself (frames, HPACK, streams) belongs to the HTTP stack, not here. Dubbo 3 Triple
//! uses the same wire, so everything here applies to it unchanged.

use std::fmt;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use tokio_util::codec::{Decoder, Encoder};

/// Default maximum message size: 4 MiB, gRPC's usual default for received messages.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// The base gRPC content type.
pub const CONTENT_TYPE: &str = "application/grpc";
/// Length of the message prefix: compressed flag and big-endian u32 length.
pub const FRAME_HEADER_LEN: usize = 5;

/// Errors of the gRPC helpers. Offsets count from the start of the frame or string inspected.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// A message whose length prefix exceeds the configured maximum.
    #[error("grpc message of {len} bytes (length at byte {offset}) exceeds the maximum of {max}")]
    MessageTooLarge {
        /// Offset of the length field.
        offset: usize,
        /// The announced length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A compressed-flag byte other than 0 or 1.
    #[error("invalid grpc compressed flag {value} at byte {offset}")]
    InvalidCompressedFlag {
        /// Offset of the flag.
        offset: usize,
        /// The flag as read.
        value: u8,
    },
    /// A `:path` that is not `/Service/Method`.
    #[error("invalid grpc path at byte {offset}: {reason}")]
    InvalidPath {
        /// Offset of the offending character.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An I/O error from the underlying stream (needed by `tokio_util::codec`).
    #[error("grpc I/O error: {0}")]
    Io(#[from] std::io::Error),
}

// === Framing ===

/// One length-prefixed gRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcFrame {
    /// Whether the message is compressed with the stream's `grpc-encoding`.
    pub compressed: bool,
    /// The message bytes (protobuf or other, possibly compressed).
    pub message: Bytes,
}

/// Decodes and encodes length-prefixed gRPC messages over a DATA byte stream.
///
/// DATA frame boundaries are unrelated to message boundaries, so feed the concatenated DATA
/// payloads of one stream.
#[derive(Debug, Clone)]
pub struct GrpcCodec {
    max_message_size: usize,
}

impl Default for GrpcCodec {
    fn default() -> Self {
        GrpcCodec::new()
    }
}

impl GrpcCodec {
    /// A codec with [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub fn new() -> GrpcCodec {
        GrpcCodec {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// Sets the largest accepted (and written) message.
    pub fn max_message_size(mut self, max: usize) -> GrpcCodec {
        self.max_message_size = max;
        self
    }
}

impl Decoder for GrpcCodec {
    type Item = GrpcFrame;
    type Error = GrpcError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<GrpcFrame>, GrpcError> {
        let Some(&[flag, l0, l1, l2, l3]) = src.get(..FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        let compressed = match flag {
            0 => false,
            1 => true,
            value => return Err(GrpcError::InvalidCompressedFlag { offset: 0, value }),
        };
        let len = u32::from_be_bytes([l0, l1, l2, l3]);
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.max_message_size)
            .ok_or(GrpcError::MessageTooLarge {
                offset: 1,
                len: u64::from(len),
                max: self.max_message_size,
            })?;
        let total = FRAME_HEADER_LEN + len;
        if src.len() < total {
            // Lengths come from the peer: reserve a bounded step, not the whole announced size.
            src.reserve((total - src.len()).min(64 * 1024));
            return Ok(None);
        }
        src.advance(FRAME_HEADER_LEN);
        let message = src.split_to(len).freeze();
        Ok(Some(GrpcFrame {
            compressed,
            message,
        }))
    }
}

impl Encoder<GrpcFrame> for GrpcCodec {
    type Error = GrpcError;

    fn encode(&mut self, item: GrpcFrame, dst: &mut BytesMut) -> Result<(), GrpcError> {
        if item.message.len() > self.max_message_size {
            return Err(GrpcError::MessageTooLarge {
                offset: 1,
                len: item.message.len() as u64,
                max: self.max_message_size,
            });
        }
        encode_frame(item.compressed, &item.message, dst)
    }
}

/// Appends one length-prefixed message to `dst`.
pub fn encode_frame(compressed: bool, message: &[u8], dst: &mut BytesMut) -> Result<(), GrpcError> {
    let len = u32::try_from(message.len()).map_err(|_| GrpcError::MessageTooLarge {
        offset: 1,
        len: message.len() as u64,
        max: u32::MAX as usize,
    })?;
    dst.reserve(FRAME_HEADER_LEN + message.len());
    dst.put_u8(u8::from(compressed));
    dst.put_u32(len);
    dst.put_slice(message);
    Ok(())
}

// === Paths ===

/// A parsed `:path` of a gRPC (or Triple) call: `/package.Service/Method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrpcPath<'a> {
    /// The fully-qualified service, e.g. `helloworld.Greeter` or a Dubbo interface name.
    pub service: &'a str,
    /// The method, e.g. `SayHello`.
    pub method: &'a str,
}

impl<'a> GrpcPath<'a> {
    /// Parses and validates a `:path`.
    ///
    /// The service may contain ASCII letters, digits, `_`, `$`, `-` and `.` (not at either end,
    /// not doubled); the method ASCII letters, digits, `_`, `$` and `-`. Query strings, extra
    /// segments and empty parts are rejected: the path is the routing key and must be exact.
    pub fn parse(path: &'a str) -> Result<GrpcPath<'a>, GrpcError> {
        let Some(rest) = path.strip_prefix('/') else {
            return Err(GrpcError::InvalidPath {
                offset: 0,
                reason: "does not start with '/'",
            });
        };
        let Some((service, method)) = rest.split_once('/') else {
            return Err(GrpcError::InvalidPath {
                offset: path.len(),
                reason: "missing '/' between service and method",
            });
        };
        let method_start = 2 + service.len();
        if service.is_empty() {
            return Err(GrpcError::InvalidPath {
                offset: 1,
                reason: "empty service name",
            });
        }
        if method.is_empty() {
            return Err(GrpcError::InvalidPath {
                offset: method_start,
                reason: "empty method name",
            });
        }
        check_chars(service, 1, |c| {
            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'-' | b'.')
        })?;
        if service.starts_with('.') || service.ends_with('.') || service.contains("..") {
            return Err(GrpcError::InvalidPath {
                offset: 1,
                reason: "service name has an empty package segment",
            });
        }
        check_chars(method, method_start, |c| {
            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'-')
        })?;
        Ok(GrpcPath { service, method })
    }

    /// The proto package (`helloworld` in `helloworld.Greeter`), if any.
    pub fn package(&self) -> Option<&'a str> {
        self.service.rsplit_once('.').map(|(package, _)| package)
    }

    /// The service name without its package (`Greeter`).
    pub fn service_name(&self) -> &'a str {
        self.service
            .rsplit_once('.')
            .map_or(self.service, |(_, name)| name)
    }
}

impl fmt::Display for GrpcPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/{}", self.service, self.method)
    }
}

fn check_chars(part: &str, base: usize, allowed: impl Fn(u8) -> bool) -> Result<(), GrpcError> {
    match part.bytes().position(|c| !allowed(c)) {
        Some(index) => Err(GrpcError::InvalidPath {
            offset: base + index,
            reason: "character not allowed in a gRPC path",
        }),
        None => Ok(()),
    }
}

// === Status codes ===

/// A gRPC status code (`grpc/grpc:doc/statuscodes.md`); the discriminant is the wire number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// 0: success.
    Ok = 0,
    /// 1: cancelled by the caller.
    Cancelled = 1,
    /// 2: unknown error.
    Unknown = 2,
    /// 3: the caller sent an invalid argument.
    InvalidArgument = 3,
    /// 4: the deadline expired.
    DeadlineExceeded = 4,
    /// 5: an entity was not found.
    NotFound = 5,
    /// 6: the entity already exists.
    AlreadyExists = 6,
    /// 7: the caller may not do this.
    PermissionDenied = 7,
    /// 8: a quota or resource ran out (load shedding).
    ResourceExhausted = 8,
    /// 9: the system is not in the required state.
    FailedPrecondition = 9,
    /// 10: aborted, e.g. a concurrency conflict.
    Aborted = 10,
    /// 11: out of the valid range.
    OutOfRange = 11,
    /// 12: not implemented (no route, unknown method).
    Unimplemented = 12,
    /// 13: internal error (framing errors).
    Internal = 13,
    /// 14: unavailable (no healthy upstream, connect failure); safe to retry.
    Unavailable = 14,
    /// 15: unrecoverable data loss.
    DataLoss = 15,
    /// 16: missing or bad credentials.
    Unauthenticated = 16,
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code for a number; `None` outside 0–16 (clients treat those as [`Code::Unknown`]).
    pub fn from_u32(value: u32) -> Option<Code> {
        usize::try_from(value)
            .ok()
            .and_then(|index| Code::ALL.get(index))
            .copied()
    }

    /// The number sent in `grpc-status`.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The canonical upper-case name, e.g. `UNAVAILABLE`.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// Parses a `grpc-status` value: decimal digits (leading zeros tolerated on input);
    /// `None` if it is not a number in 0–16.
    pub fn from_header_value(value: &[u8]) -> Option<Code> {
        if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let number = value
            .iter()
            .fold(0u64, |acc, digit| acc * 10 + u64::from(digit - b'0'));
        u32::try_from(number).ok().and_then(Code::from_u32)
    }

    /// The code a client infers from an HTTP status when the response has no `grpc-status`
    /// (`grpc/grpc:doc/http-grpc-status-mapping.md`): 400 INTERNAL, 401 UNAUTHENTICATED,
    /// 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, else UNKNOWN.
    pub fn from_http_status(status: u16) -> Code {
        match status {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// === Status and Trailers-Only replies ===

/// A gRPC status: code and message, as carried by `grpc-status` / `grpc-message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The status code.
    pub code: Code,
    /// The human-readable message (plain text; percent-encoded only on the wire).
    pub message: String,
}

impl Status {
    /// A status with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// `grpc-status` and (if the message is not empty) the percent-encoded `grpc-message`.
    pub fn to_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert("grpc-status", HeaderValue::from(self.code.as_u32()));
        if !self.message.is_empty() {
            // Percent-encoding leaves only visible ASCII, which is always a valid header value.
            if let Ok(value) = HeaderValue::from_str(&encode_grpc_message(&self.message)) {
                headers.insert("grpc-message", value);
            }
        }
        headers
    }

    /// Reads the status from trailers (or Trailers-Only headers); `None` without a valid
    /// `grpc-status`. A bad `grpc-message` encoding never fails (it is decoded leniently).
    pub fn from_headers(headers: &HeaderMap) -> Option<Status> {
        let code = Code::from_header_value(headers.get("grpc-status")?.as_bytes())?;
        let message = headers
            .get("grpc-message")
            .map(|value| decode_grpc_message(value.as_bytes()))
            .unwrap_or_default();
        Some(Status { code, message })
    }

    /// The Trailers-Only response a proxy sends when it answers a call itself: HTTP 200,
    /// `content-type` (the request's if it was a gRPC one, else `application/grpc`),
    /// `grpc-status` and `grpc-message`. Send it as one HEADERS frame with END_STREAM.
    pub fn trailers_only(&self, request_content_type: Option<&HeaderValue>) -> Response<()> {
        let content_type = request_content_type
            .filter(|value| value.to_str().is_ok_and(is_grpc_content_type))
            .cloned()
            .unwrap_or(HeaderValue::from_static(CONTENT_TYPE));
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, content_type);
        headers.extend(self.to_headers());
        response
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

/// Percent-encodes a `grpc-message`: bytes 0x20–0x7E except `%` stay, everything else
/// (UTF-8 bytes included) becomes `%XX` with upper-case hex.
pub fn encode_grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(upper_hex_digit(byte >> 4));
            out.push(upper_hex_digit(byte & 0x0f));
        }
    }
    out
}

/// Decodes a `grpc-message`. Never fails: a `%` not followed by two hex digits is kept as is
/// and invalid UTF-8 is replaced, as the gRPC spec asks of decoders.
pub fn decode_grpc_message(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut index = 0;
    while let Some(&byte) = value.get(index) {
        if byte == b'%'
            && let (Some(high), Some(low)) = (
                value.get(index + 1).and_then(|c| hex_value(*c)),
                value.get(index + 2).and_then(|c| hex_value(*c)),
            )
        {
            out.push(high << 4 | low);
            index += 3;
            continue;
        }
        out.push(byte);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn upper_hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).map_or('0', |c| c.to_ascii_uppercase())
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

// === Request headers ===

/// Whether a `content-type` is gRPC: `application/grpc`, optionally `+proto`, `+json`, … or
/// parameters (ASCII case-insensitive).
pub fn is_grpc_content_type(value: &str) -> bool {
    let value = value.trim();
    let Some(prefix) = value.get(..CONTENT_TYPE.len()) else {
        return false;
    };
    prefix.eq_ignore_ascii_case(CONTENT_TYPE)
        && matches!(
            value.as_bytes().get(CONTENT_TYPE.len()),
            None | Some(b'+' | b';')
        )
}

/// Parses `grpc-timeout`: 1–8 digits and a unit `H`, `M`, `S`, `m` (ms), `u` (µs), `n` (ns).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    match unit {
        "H" => Some(Duration::from_secs(amount * 3600)),
        "M" => Some(Duration::from_secs(amount * 60)),
        "S" => Some(Duration::from_secs(amount)),
        "m" => Some(Duration::from_millis(amount)),
        "u" => Some(Duration::from_micros(amount)),
        "n" => Some(Duration::from_nanos(amount)),
        _ => None,
    }
}

/// Formats a `grpc-timeout` with the finest unit whose value fits in 8 digits (rounding up, so
/// the peer never sees a shorter deadline).
pub fn format_grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per_unit, unit) in units {
        let amount = nanos.div_ceil(per_unit);
        if amount <= MAX {
            return format!("{amount}{unit}");
        }
    }
    format!("{MAX}H")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_need_more() {
        let mut codec = GrpcCodec::new();
        let mut buf = BytesMut::new();
        codec
            .encode(
                GrpcFrame {
                    compressed: true,
                    message: Bytes::from_static(b"hello"),
                },
                &mut buf,
            )
            .unwrap();
        assert_eq!(&buf[..], b"\x01\x00\x00\x00\x05hello");
        for cut in 0..buf.len() {
            let mut partial = BytesMut::from(&buf[..cut]);
            assert_eq!(codec.decode(&mut partial).unwrap(), None);
        }
        let frame = codec.decode(&mut buf).unwrap().unwrap();
        assert!(frame.compressed);
        assert_eq!(&frame.message[..], b"hello");
        assert!(buf.is_empty());
    }

    #[test]
    fn frame_errors() {
        let mut codec = GrpcCodec::new().max_message_size(4);
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x00\x05hello"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(GrpcError::MessageTooLarge { len: 5, max: 4, .. })
        ));
        let mut buf = BytesMut::from(&b"\x02\x00\x00\x00\x00"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(GrpcError::InvalidCompressedFlag {
                offset: 0,
                value: 2
            })
        ));
        let mut empty = BytesMut::from(&b"\x00\x00\x00\x00\x00"[..]);
        let frame = GrpcCodec::new().decode(&mut empty).unwrap().unwrap();
        assert!(frame.message.is_empty() && !frame.compressed);
    }

    #[test]
    fn paths() {
        let path = GrpcPath::parse("/helloworld.Greeter/SayHello").unwrap();
        assert_eq!(path.service, "helloworld.Greeter");
        assert_eq!(path.method, "SayHello");
        assert_eq!(path.package(), Some("helloworld"));
        assert_eq!(path.service_name(), "Greeter");
        assert_eq!(path.to_string(), "/helloworld.Greeter/SayHello");
        let dubbo = GrpcPath::parse("/org.apache.dubbo.demo.DemoService/sayHello").unwrap();
        assert_eq!(dubbo.service, "org.apache.dubbo.demo.DemoService");
        assert_eq!(GrpcPath::parse("/Svc/m").unwrap().package(), None);
        for (bad, offset) in [
            ("", 0),
            ("Svc/m", 0),
            ("/Svc", 4),
            ("//m", 1),
            ("/Svc/", 5),
            ("/Svc/m/x", 6),
            ("/Svc/m?x=1", 6),
            ("/a b/m", 2),
            ("/.a/m", 1),
            ("/a..b/m", 1),
        ] {
            match GrpcPath::parse(bad) {
                Err(GrpcError::InvalidPath { offset: got, .. }) => {
                    assert_eq!(got, offset, "{bad:?}")
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn codes() {
        for (number, code) in Code::ALL.iter().enumerate() {
            assert_eq!(code.as_u32(), number as u32);
            assert_eq!(Code::from_u32(number as u32), Some(*code));
            assert_eq!(
                Code::from_header_value(number.to_string().as_bytes()),
                Some(*code)
            );
        }
        assert_eq!(Code::from_u32(17), None);
        assert_eq!(Code::Unavailable.name(), "UNAVAILABLE");
        assert_eq!(Code::DeadlineExceeded.to_string(), "DEADLINE_EXCEEDED");
        assert_eq!(Code::from_header_value(b""), None);
        assert_eq!(Code::from_header_value(b"-1"), None);
        assert_eq!(Code::from_header_value(b"99999999999"), None);
        let mapping = [
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (500, Code::Unknown),
            (200, Code::Unknown),
        ];
        for (status, code) in mapping {
            assert_eq!(Code::from_http_status(status), code, "{status}");
        }
    }

    #[test]
    fn grpc_message_encoding() {
        assert_eq!(
            encode_grpc_message("no healthy upstream"),
            "no healthy upstream"
        );
        assert_eq!(encode_grpc_message("100% ✓\n"), "100%25 %E2%9C%93%0A");
        assert_eq!(decode_grpc_message(b"100%25 %E2%9C%93%0A"), "100% ✓\n");
        assert_eq!(decode_grpc_message(b"bad %zz %4"), "bad %zz %4");
        assert_eq!(decode_grpc_message(b"%FF"), "\u{fffd}");
    }

    #[test]
    fn trailers_only_unavailable() {
        let status = Status::new(Code::Unavailable, "no healthy upstream ✗");
        let response = status.trailers_only(None);
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["grpc-status"], "14");
        assert_eq!(headers["grpc-message"], "no healthy upstream %E2%9C%97");
        assert_eq!(Status::from_headers(headers), Some(status.clone()));

        let proto = HeaderValue::from_static("application/grpc+proto");
        let response = status.trailers_only(Some(&proto));
        assert_eq!(response.headers()["content-type"], "application/grpc+proto");
        let json = HeaderValue::from_static("application/json");
        let response = status.trailers_only(Some(&json));
        assert_eq!(response.headers()["content-type"], "application/grpc");

        let ok = Status::new(Code::Ok, "");
        assert!(!ok.to_headers().contains_key("grpc-message"));
        assert_eq!(ok.to_string(), "OK");
    }

    #[test]
    fn content_types() {
        assert!(is_grpc_content_type("application/grpc"));
        assert!(is_grpc_content_type("application/grpc+proto"));
        assert!(is_grpc_content_type("Application/GRPC; charset=utf-8"));
        assert!(!is_grpc_content_type("application/grpc-web"));
        assert!(!is_grpc_content_type("application/json"));
        assert!(!is_grpc_content_type("app"));
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("1é"), None);
        assert_eq!(format_grpc_timeout(Duration::from_millis(250)), "250000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(1)), "1000000u");
        assert_eq!(
            format_grpc_timeout(Duration::from_secs(3600 * 1000)),
            "3600000S"
        );
        for timeout in [1u64, 999, 123_456_789, 86_400_000_000_000] {
            let timeout = Duration::from_nanos(timeout);
            let parsed = parse_grpc_timeout(&format_grpc_timeout(timeout)).unwrap();
            assert!(parsed >= timeout);
        }
    }
}
