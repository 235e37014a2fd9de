//! Frames the proxy writes itself: requests and responses (for clients, tests and benchmarks),
//! error responses a Java consumer decodes cleanly, and the in-place attachment insertion used to
//! add trace context without re-encoding the arguments.

use bytes::{BufMut, BytesMut};

use crate::hessian::{Encoder, Value};

use super::error::DubboError;
use super::frame::{Frame, body_len_u32};
use super::header::{HEADER_LEN, Header, Serialization, Status};
use super::response::{ResultFlag, ResultKind};

/// A call to encode as a request body (PROTOCOLS.md §1.6).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Dubbo protocol version, normally `"2.0.2"`.
    pub dubbo_version: &'a str,
    /// Service path (the interface name).
    pub service: &'a str,
    /// Service version; `None` writes `null`.
    pub service_version: Option<&'a str>,
    /// Method name.
    pub method: &'a str,
    /// JVM parameter descriptor; must describe `arguments`.
    pub param_types: &'a str,
    /// The arguments.
    pub arguments: &'a [Value],
    /// String attachments, written as a `HashMap` (`H ... Z`) in this order.
    pub attachments: &'a [(&'a str, &'a str)],
}

/// What a response carries.
#[derive(Debug, Clone, Copy)]
pub enum Reply<'a> {
    /// A return value.
    Value(&'a Value),
    /// No value (void or `null`).
    Null,
    /// A business exception (a Throwable object).
    Exception(&'a Value),
}

/// Writes `header` followed by a Hessian body produced by `body`, fixing the body length.
fn build(
    mut header: Header,
    body: impl FnOnce(&mut Encoder) -> Result<(), DubboError>,
) -> Result<Frame, DubboError> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_slice(&header.encode());
    let mut encoder = Encoder::with_buffer(buf);
    body(&mut encoder)?;
    let mut bytes = encoder.finish();
    header.body_len = body_len_u32(bytes.len() - HEADER_LEN)?;
    if let Some(len) = bytes.get_mut(12..16) {
        len.copy_from_slice(&header.body_len.to_be_bytes());
    }
    Ok(Frame::from_validated(header, bytes))
}

fn write_string_map(encoder: &mut Encoder, pairs: &[(&str, &str)]) {
    encoder.write_map_begin(None);
    for (key, value) in pairs {
        encoder.write_str(key);
        encoder.write_str(value);
    }
    encoder.write_map_end();
}

/// Encodes a Hessian 2 request exactly as Java's `DubboCodec` does.
pub fn encode_request(
    request_id: i64,
    two_way: bool,
    call: &Call<'_>,
) -> Result<Frame, DubboError> {
    let header = Header::request(request_id, Serialization::HESSIAN2, two_way);
    build(header, |e| {
        e.write_str(call.dubbo_version);
        e.write_str(call.service);
        e.write_opt_str(call.service_version);
        e.write_str(call.method);
        e.write_str(call.param_types);
        for argument in call.arguments {
            e.write_value(argument)?;
        }
        write_string_map(e, call.attachments);
        Ok(())
    })
}

/// Encodes an OK (status 20) Hessian 2 response. With `attachments` the `*_WITH_ATTACHMENTS`
/// flags are used, which Java does iff the request's dubbo version is 2.0.2 or later (it then adds
/// `dubbo` = `"2.0.2"` to them).
pub fn encode_response(
    request_id: i64,
    reply: Reply<'_>,
    attachments: Option<&[(&str, &str)]>,
) -> Result<Frame, DubboError> {
    let header = Header::response(request_id, Serialization::HESSIAN2, Status::OK);
    let (kind, value) = match reply {
        Reply::Value(v) => (ResultKind::Value, Some(v)),
        Reply::Null => (ResultKind::Null, None),
        Reply::Exception(v) => (ResultKind::Exception, Some(v)),
    };
    let flag = ResultFlag::new(kind, attachments.is_some());
    build(header, |e| {
        // Java writes the flag with `writeByte`, which Hessian turns into an int.
        e.write_int(i32::from(flag.code()));
        if let Some(value) = value {
            e.write_value(value)?;
        }
        if let Some(pairs) = attachments {
            write_string_map(e, pairs);
        }
        Ok(())
    })
}

/// Builds an error response to `request`: same id and serialization, the given non-OK status,
/// and the message as the single string a Java consumer reads with `readUTF()` (PROTOCOLS.md
/// §1.3, §1.9). Java turns 30/31 into a `TimeoutException` and the rest into a
/// `RemotingException` carrying the message.
pub fn error_response(
    request: &Header,
    status: Status,
    message: &str,
) -> Result<Frame, DubboError> {
    if status.is_ok() {
        return Err(DubboError::OkStatusForError);
    }
    let serialization = request.serialization();
    if serialization != Serialization::HESSIAN2 {
        return Err(DubboError::UnsupportedSerialization { serialization });
    }
    let header = Header::response(request.request_id, serialization, status);
    build(header, |e| {
        e.write_str(message);
        Ok(())
    })
}

// === impl Frame ===

impl Frame {
    /// Adds string attachments to a Hessian 2 request without re-encoding anything else: the
    /// pairs are inserted just before the `Z` that closes the attachments map (found by walking
    /// the body, not by trusting its last byte) and the body length is fixed.
    ///
    /// Strings create no class definitions, types or references, so the rest of the stream stays
    /// valid. A key that already exists is overridden on the receiving side, where later entries
    /// win. A body without an attachments map gets one appended.
    pub fn add_attachments(&mut self, pairs: &[(&str, &str)]) -> Result<(), DubboError> {
        let view = self.request()?;
        let mut d = view.after_arguments()?;
        let body_len = self.body().len();
        let mut encoder = Encoder::new();
        let insert_at = if d.is_at_end() {
            encoder.write_map_begin(None);
            for (key, value) in pairs {
                encoder.write_str(key);
                encoder.write_str(value);
            }
            encoder.write_map_end();
            body_len
        } else {
            let start = d.position();
            match d.peek() {
                Some(b'H' | b'M') => {}
                _ => {
                    return Err(DubboError::UnexpectedValue {
                        part: "attachments",
                        offset: start,
                        found: "not a map",
                    });
                }
            }
            d.skip_value().map_err(DubboError::body("attachments"))?;
            let end = d.position();
            if end != body_len {
                return Err(DubboError::TrailingBytes {
                    extra: body_len - end,
                });
            }
            for (key, value) in pairs {
                encoder.write_str(key);
                encoder.write_str(value);
            }
            // The map's last byte is its `Z`.
            end - 1
        };
        let insert = encoder.finish();
        self.insert_into_body(insert_at, &insert)
    }
}
