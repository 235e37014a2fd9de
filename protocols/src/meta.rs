//! One protocol-neutral view of a request ([`RequestMeta`]) for routing and metrics.
//!
//! This module owns the mapping from each protocol's own request shape to the fields routing
//! rules and Istio-style metrics key on (DESIGN.md §6–7): protocol, service, method, version,
//! group, string attributes, request id, one-way and sizes. It decodes nothing itself; it reads
//! what the codecs in this crate already decoded:
//!
//! | Field | Dubbo | Thrift | gRPC | HTTP |
//! |---|---|---|---|---|
//! | `service` | service path (interface) | `Service` of a multiplexed `Service:method` | `package.Service` | authority (no port, lower case) |
//! | `method` | method (real method of a generic `$invoke`) | method | method | HTTP method |
//! | `path` | – | – | – | URI path |
//! | `version` | body service version | – | `tri-service-version` | – |
//! | `group` | `group` attachment | – | `tri-service-group` | – |
//! | `attributes` | string attachments | THeader info headers | headers except `-bin` | headers |
//! | `request_id` | request id | seqid | – | – |
//! | `one_way` | not two-way | message type oneway | never | never |
//!
//! # Borrowing
//!
//! Every string is a `Cow<'a, str>` borrowed from the decoded message: Dubbo strings come out
//! of the Hessian decoder borrowed from the frame whenever the bytes are already valid UTF-8,
//! THeader headers are borrowed from the parsed [`THeader`](crate::thrift::THeader), and header
//! names and values from the `http::HeaderMap`. Routing therefore matches on `&str` without
//! copying. `Cow` rather than `Bytes` because routing compares text and the Hessian decoder
//! already hands out `Cow<str>`; the few values that must be built (an HTTP authority without
//! its port, a Hessian string that needed repair) are owned. Call [`RequestMeta::into_owned`]
//! when the view must outlive the buffer (e.g. for metrics recorded when the response arrives).

use std::borrow::Cow;
use std::fmt;

use http::{HeaderMap, Method, Uri};

use crate::dubbo::{DubboError, Frame, HEADER_LEN, Header, RequestView};
use crate::grpc::{GrpcError, GrpcPath};
use crate::hessian::Decoder;
use crate::thrift::{MessageType, ThriftMessage};

/// Dubbo 3 Triple header naming the service version (Triple rides on the gRPC wire).
pub const TRI_SERVICE_VERSION: &str = "tri-service-version";
/// Dubbo 3 Triple header naming the service group.
pub const TRI_SERVICE_GROUP: &str = "tri-service-group";
/// The Dubbo attachment naming the service group.
pub const DUBBO_GROUP: &str = "group";

/// The protocol a request arrived in; [`as_str`](Self::as_str) is the `request_protocol` metric
/// label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestProtocol {
    /// Dubbo 2 (`dubbo://`).
    Dubbo,
    /// Thrift, any transport and protocol.
    Thrift,
    /// gRPC (and Dubbo 3 Triple).
    Grpc,
    /// HTTP/1.x or HTTP/2 without gRPC.
    Http,
}

impl RequestProtocol {
    /// `dubbo`, `thrift`, `grpc` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestProtocol::Dubbo => "dubbo",
            RequestProtocol::Thrift => "thrift",
            RequestProtocol::Grpc => "grpc",
            RequestProtocol::Http => "http",
        }
    }
}

impl fmt::Display for RequestProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a [`RequestMeta`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The Dubbo frame is not a readable request (a response, an event, another serialization,
    /// or a malformed body).
    #[error(transparent)]
    Dubbo(#[from] DubboError),
    /// The Thrift message is a reply or an exception, not a call.
    #[error("thrift: expected a call or oneway message, found {found}")]
    NotARequest {
        /// The message type found (`reply` or `exception`).
        found: &'static str,
    },
    /// The gRPC `:path` is not `/package.Service/Method`.
    #[error(transparent)]
    Grpc(#[from] GrpcError),
}

/// Byte counts of a request, for the `istio_request_bytes` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sizes {
    /// Framing and headers. Dubbo: the 16-byte header. Thrift: length prefix, THeader and
    /// message header. gRPC and HTTP: the header names and values (uncompressed; the HTTP stack
    /// does not expose wire sizes).
    pub header: usize,
    /// The body. Dubbo: the body length; Thrift: the argument struct; gRPC and HTTP: the
    /// `content-length`, if announced (0 otherwise: streamed bodies are counted by the caller).
    pub body: u64,
}

impl Sizes {
    /// Header plus body.
    pub fn total(&self) -> u64 {
        (self.header as u64).saturating_add(self.body)
    }
}

/// String attributes of a request (Dubbo attachments, THeader info headers, HTTP headers), in
/// wire order, duplicates kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes<'a> {
    entries: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Attributes<'a> {
    /// Attributes from entries in wire order.
    pub fn new(entries: Vec<(Cow<'a, str>, Cow<'a, str>)>) -> Self {
        Attributes { entries }
    }

    /// The value of `key`; when it repeats, the last one wins, as in the Java `HashMap` a Dubbo
    /// provider builds and in Apache Thrift's THeader map. Keys are case-sensitive (HTTP and
    /// gRPC names are already lower case).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Every value of `key`, in wire order.
    pub fn get_all<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The entries in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` without entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an entry.
    pub fn push(&mut self, key: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) {
        self.entries.push((key.into(), value.into()));
    }

    /// Copies every borrowed string so the attributes outlive the message.
    pub fn into_owned(self) -> Attributes<'static> {
        Attributes {
            entries: self
                .entries
                .into_iter()
                .map(|(k, v)| (owned(k), owned(v)))
                .collect(),
        }
    }
}

/// The protocol-neutral view of one request.
///
/// Build it with [`from_dubbo`](Self::from_dubbo), [`from_thrift`](Self::from_thrift),
/// [`from_grpc`](Self::from_grpc) or [`from_http`](Self::from_http); the module documentation
/// has the field mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestMeta<'a> {
    /// The protocol the request arrived in.
    pub protocol: RequestProtocol,
    /// The service (Dubbo interface, multiplexed Thrift service, gRPC `package.Service`, HTTP
    /// authority); `None` when the request does not name one (plain Thrift names only the method;
    /// an HTTP request may lack an authority).
    pub service: Option<Cow<'a, str>>,
    /// The method (for HTTP, the HTTP method).
    pub method: Cow<'a, str>,
    /// HTTP only: the URI path (no query).
    pub path: Option<Cow<'a, str>>,
    /// The service version, as sent (Dubbo writes `0.0.0` when the reference has none).
    pub version: Option<Cow<'a, str>>,
    /// The service group.
    pub group: Option<Cow<'a, str>>,
    /// String attributes: attachments or headers.
    pub attributes: Attributes<'a>,
    /// The Dubbo request id or Thrift seqid.
    pub request_id: Option<i64>,
    /// `true` when no response will come.
    pub one_way: bool,
    /// Byte counts.
    pub sizes: Sizes,
}

impl<'a> RequestMeta<'a> {
    /// The meta of a Dubbo request frame (Hessian 2 body). Reads the leading strings and the
    /// attachments; arguments are skipped, not built, except the first string of a generic call.
    pub fn from_dubbo(frame: &'a Frame) -> Result<Self, MetaError> {
        let view = frame.request()?;
        Self::from_dubbo_request(frame.header(), &view)
    }

    /// The meta of a Dubbo request already read as a [`RequestView`] with its header.
    ///
    /// For a generic call (`$invoke` / `$invokeAsync`) the method is the real method name, the
    /// first argument; it stays `$invoke` if that argument is `null`. Only string attachments
    /// become attributes (Dubbo allows any object, e.g. an int `_TO`); the arguments are skipped,
    /// not built.
    pub fn from_dubbo_request(header: &Header, view: &RequestView<'a>) -> Result<Self, MetaError> {
        // The view's accessors borrow the view, not the frame; re-reading the four short leading
        // strings from the body (zero-copy) gives strings that live as long as the frame.
        let mut d = Decoder::new(view.body());
        let mut leading = |part| {
            d.read_str()
                .map(|s| s.filter(|s| !s.is_empty()))
                .map_err(DubboError::body(part))
        };
        leading("dubbo version")?;
        let service = leading("service path")?;
        let version = leading("service version")?;
        let method = leading("method name")?;
        let method = match view.generic_method()? {
            Some(real) => real,
            None => method.unwrap_or_default(),
        };
        let mut attributes = Attributes::default();
        read_string_attachments(&mut view.after_arguments()?, &mut attributes)?;
        let group = attributes
            .entries
            .iter()
            .rev()
            .find(|(k, _)| k == DUBBO_GROUP)
            .map(|(_, v)| v.clone());
        Ok(RequestMeta {
            protocol: RequestProtocol::Dubbo,
            service,
            method,
            path: None,
            version,
            group,
            attributes,
            request_id: Some(header.request_id),
            one_way: !header.is_two_way(),
            sizes: Sizes {
                header: HEADER_LEN,
                body: u64::from(header.body_len),
            },
        })
    }

    /// The meta of a Thrift call or oneway message. The service is the `Service` of a
    /// multiplexed `Service:method` name; THeader info headers become attributes.
    pub fn from_thrift(message: &'a ThriftMessage) -> Result<Self, MetaError> {
        let header = &message.header;
        let one_way = match header.message_type {
            MessageType::Call => false,
            MessageType::Oneway => true,
            MessageType::Reply => return Err(MetaError::NotARequest { found: "reply" }),
            MessageType::Exception => return Err(MetaError::NotARequest { found: "exception" }),
        };
        let attributes = message
            .theader
            .as_ref()
            .map(|theader| {
                Attributes::new(
                    theader
                        .headers
                        .iter()
                        .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())))
                        .collect(),
                )
            })
            .unwrap_or_default();
        let header_len = message.message_offset + header.len;
        Ok(RequestMeta {
            protocol: RequestProtocol::Thrift,
            service: header.service().map(Cow::Borrowed),
            method: Cow::Borrowed(header.method()),
            path: None,
            version: None,
            group: None,
            attributes,
            request_id: Some(i64::from(header.seqid)),
            one_way,
            sizes: Sizes {
                header: header_len,
                body: message.frame.len().saturating_sub(header_len) as u64,
            },
        })
    }

    /// The meta of a gRPC (or Dubbo 3 Triple) request from its `:path` and headers. Headers
    /// become attributes except binary ones (`-bin`, base64 on the wire); pseudo-headers never
    /// reach a `HeaderMap`. Triple's `tri-service-version` / `tri-service-group` give version
    /// and group.
    pub fn from_grpc(path: &'a str, headers: &'a HeaderMap) -> Result<Self, MetaError> {
        let path = GrpcPath::parse(path)?;
        Ok(RequestMeta {
            protocol: RequestProtocol::Grpc,
            service: Some(Cow::Borrowed(path.service)),
            method: Cow::Borrowed(path.method),
            path: None,
            version: header_str(headers, TRI_SERVICE_VERSION),
            group: header_str(headers, TRI_SERVICE_GROUP),
            attributes: header_attributes(headers, |name| !name.ends_with("-bin")),
            request_id: None,
            one_way: false,
            sizes: header_sizes(headers, path.service.len() + path.method.len() + 2),
        })
    }

    /// The meta of an HTTP request: the authority (`:authority` or `Host`, without port, lower
    /// case) as service, the HTTP method, the URI path, and every header as an attribute.
    pub fn from_http(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        let service = crate::http::request_authority(uri, headers).map(Cow::Owned);
        RequestMeta {
            protocol: RequestProtocol::Http,
            service,
            method: Cow::Borrowed(method.as_str()),
            path: Some(Cow::Borrowed(uri.path())),
            version: None,
            group: None,
            attributes: header_attributes(headers, |_| true),
            request_id: None,
            one_way: false,
            sizes: header_sizes(headers, uri.path().len() + method.as_str().len()),
        }
    }

    /// [`from_http`](Self::from_http) for an `http::Request` (the body is not looked at).
    pub fn from_http_request<B>(request: &'a http::Request<B>) -> Self {
        Self::from_http(request.method(), request.uri(), request.headers())
    }

    /// Copies every borrowed string so the meta outlives the message it was read from.
    pub fn into_owned(self) -> RequestMeta<'static> {
        RequestMeta {
            protocol: self.protocol,
            service: self.service.map(owned),
            method: owned(self.method),
            path: self.path.map(owned),
            version: self.version.map(owned),
            group: self.group.map(owned),
            attributes: self.attributes.into_owned(),
            request_id: self.request_id,
            one_way: self.one_way,
            sizes: self.sizes,
        }
    }
}

/// Reads the attachments map after the arguments (the last value of a request body), keeping
/// string entries. Follows [`RequestView::attachments`] exactly, so a request is routable
/// precisely when its attachments are readable: no map or `null` is no attachments, a `null` key
/// is an error, and other values are decoded (not merely skipped: a skip checks only UTF-8 lead
/// bytes, so it accepts strings the view rejects) with the decoder that walked the arguments,
/// since they may use class definitions written there.
fn read_string_attachments<'a>(
    d: &mut Decoder<'a>,
    attributes: &mut Attributes<'a>,
) -> Result<(), DubboError> {
    let err = DubboError::body;
    match d.peek() {
        None | Some(b'N') => return Ok(()),
        Some(b'H' | b'M') => {}
        Some(_) => {
            return Err(DubboError::UnexpectedValue {
                part: "attachments",
                offset: d.position(),
                found: "not a map",
            });
        }
    }
    d.read_map_start().map_err(err("attachments"))?;
    while !d.try_read_end().map_err(err("attachments"))? {
        let key_at = d.position();
        let key =
            d.read_str()
                .map_err(err("attachment key"))?
                .ok_or(DubboError::UnexpectedValue {
                    part: "attachment key",
                    offset: key_at,
                    found: "null",
                })?;
        if d.peek().is_some_and(is_string_tag) {
            if let Some(value) = d.read_str().map_err(err("attachment value"))? {
                attributes.entries.push((key, value));
            }
        } else {
            // Found by fuzzing (request_meta): `skip_value` here let through a list holding a
            // string with bad continuation bytes that the view rejects.
            d.read_value().map_err(err("attachment value"))?;
        }
    }
    Ok(())
}

/// `true` if `byte` starts a Hessian string (any length form).
fn is_string_tag(byte: u8) -> bool {
    matches!(byte, 0x00..=0x1F | 0x30..=0x33 | b'R' | b'S')
}

fn owned(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

/// The value of `name` as a borrowed string, if it is valid UTF-8.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    headers
        .get(name)
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
        .map(Cow::Borrowed)
}

/// Header entries whose name passes `keep`, borrowed; values that are not UTF-8 (obs-text) are
/// repaired into owned strings rather than dropped, so a rule can still see the header exists.
fn header_attributes<'a>(headers: &'a HeaderMap, keep: impl Fn(&str) -> bool) -> Attributes<'a> {
    Attributes::new(
        headers
            .iter()
            .filter(|(name, _)| keep(name.as_str()))
            .map(|(name, value)| {
                (
                    Cow::Borrowed(name.as_str()),
                    String::from_utf8_lossy(value.as_bytes()),
                )
            })
            .collect(),
    )
}

/// Header bytes (names, values and `extra` for the request line or path) and the announced
/// `content-length`.
fn header_sizes(headers: &HeaderMap, extra: usize) -> Sizes {
    let header = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .fold(extra, usize::saturating_add);
    let body = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    Sizes { header, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::BytesMut;
    use serde_json::Value as Json;

    use crate::dubbo::{Call, DubboError, Serialization, encode_request};
    use crate::hessian::{Encoder, Value};

    const DUBBO: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/vectors/dubbo-frames.json"
    );
    const THRIFT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/vectors/thrift-frames.json"
    );

    fn vectors(path: &str) -> Vec<Json> {
        let text = std::fs::read_to_string(path).unwrap();
        let file: Json = serde_json::from_str(&text).unwrap();
        file["vectors"].as_array().unwrap().clone()
    }

    fn vector(path: &str, name: &str) -> Json {
        vectors(path)
            .into_iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no vector {name}"))
    }

    fn bytes(v: &Json) -> Vec<u8> {
        hex::decode(v["hex"].as_str().unwrap()).unwrap()
    }

    fn dubbo_frame(v: &Json) -> Frame {
        Frame::from_bytes(BytesMut::from(&bytes(v)[..])).unwrap()
    }

    fn ordered_strings(v: &Json) -> Vec<(String, String)> {
        // serde_json sorts object keys, so compare as sorted lists; the wire order is checked
        // separately against the frame's own attachments.
        let mut out: Vec<_> = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn dubbo_request_vectors() {
        for name in [
            "request_sayhello_world",
            "request_save_two_users_shared_classdef",
        ] {
            let v = vector(DUBBO, name);
            let frame = dubbo_frame(&v);
            let meta = RequestMeta::from_dubbo(&frame).unwrap();
            assert_eq!(meta.protocol, RequestProtocol::Dubbo);
            assert_eq!(meta.service.as_deref(), v["service"].as_str(), "{name}");
            assert_eq!(meta.method, v["method"].as_str().unwrap(), "{name}");
            assert_eq!(meta.version.as_deref(), v["service_version"].as_str());
            assert_eq!(meta.group.as_deref(), v["attachments"]["group"].as_str());
            assert_eq!(meta.request_id, v["request_id"].as_i64());
            assert!(!meta.one_way);
            assert_eq!(meta.path, None);
            assert_eq!(meta.sizes.header, 16);
            assert_eq!(meta.sizes.body, v["body_len"].as_u64().unwrap());
            assert_eq!(meta.sizes.total(), frame.as_bytes().len() as u64);
            let mut attributes: Vec<_> = meta
                .attributes
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let wire: Vec<_> = frame
                .request()
                .unwrap()
                .attachments()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.as_str().unwrap().to_owned()))
                .collect();
            assert_eq!(attributes, wire, "wire order");
            attributes.sort();
            assert_eq!(attributes, ordered_strings(&v["attachments"]));
            // Zero-copy: ASCII strings are borrowed from the frame.
            assert!(matches!(meta.service, Some(Cow::Borrowed(_))));
            assert!(matches!(meta.method, Cow::Borrowed(_)));
            assert!(
                meta.attributes
                    .entries
                    .iter()
                    .all(|(k, v)| matches!((k, v), (Cow::Borrowed(_), Cow::Borrowed(_))))
            );
            let owned = meta.clone().into_owned();
            assert_eq!(owned, meta);
        }
        let v = vector(DUBBO, "request_save_two_users_shared_classdef");
        let meta_frame = dubbo_frame(&v);
        let meta = RequestMeta::from_dubbo(&meta_frame).unwrap();
        assert_eq!(meta.group.as_deref(), Some("g1"));
        assert_eq!(meta.version.as_deref(), Some("1.0.0"));
        assert_eq!(meta.attributes.get("path"), Some("demo.UserService"));
    }

    #[test]
    fn dubbo_one_way_from_the_header() {
        let v = vector(DUBBO, "request_sayhello_world");
        let mut raw = bytes(&v);
        raw[2] &= !crate::dubbo::FLAG_TWO_WAY;
        let frame = Frame::from_bytes(BytesMut::from(&raw[..])).unwrap();
        let meta = RequestMeta::from_dubbo(&frame).unwrap();
        assert!(meta.one_way);
        assert_eq!(meta.request_id, Some(1));
    }

    #[test]
    fn dubbo_non_requests_are_errors() {
        for name in [
            "heartbeat_request",
            "readonly_event",
            "response_value_with_attachments",
            "response_status_70_service_not_found",
        ] {
            let frame = dubbo_frame(&vector(DUBBO, name));
            assert!(
                matches!(
                    RequestMeta::from_dubbo(&frame),
                    Err(MetaError::Dubbo(DubboError::WrongKind { .. }))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn dubbo_truncated_body_is_an_error() {
        let v = vector(DUBBO, "request_sayhello_world");
        let raw = bytes(&v);
        // Cut inside the attachments map and fix the body length.
        let cut = &raw[16..raw.len() - 10];
        let header = Header::request(1, Serialization::HESSIAN2, true);
        let frame = Frame::from_parts(header, cut).unwrap();
        assert!(matches!(
            RequestMeta::from_dubbo(&frame),
            Err(MetaError::Dubbo(DubboError::Body { .. }))
        ));
    }

    #[test]
    fn dubbo_generic_call_uses_the_real_method() {
        let args = [
            Value::string("sayHello"),
            Value::List(crate::hessian::List::typed(
                "[string",
                vec![Value::string("java.lang.String")],
            )),
            Value::List(crate::hessian::List::typed(
                "[object",
                vec![Value::string("world")],
            )),
        ];
        let call = Call {
            dubbo_version: "2.0.2",
            service: "org.apache.dubbo.demo.DemoService",
            service_version: None,
            method: "$invoke",
            param_types: "Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;",
            arguments: &args,
            attachments: &[("generic", "true"), ("group", "blue")],
        };
        let frame = encode_request(9, false, &call).unwrap();
        let meta = RequestMeta::from_dubbo(&frame).unwrap();
        assert_eq!(meta.method, "sayHello");
        assert_eq!(meta.version, None);
        assert_eq!(meta.group.as_deref(), Some("blue"));
        assert!(meta.one_way);
        assert_eq!(meta.attributes.get("generic"), Some("true"));
    }

    #[test]
    fn dubbo_non_string_attachments_are_skipped() {
        let mut e = Encoder::new();
        for s in ["2.0.2", "demo.Svc", "1.0", "m", ""] {
            e.write_str(s);
        }
        e.write_map_begin(None);
        e.write_str("_TO");
        e.write_int(3000);
        e.write_str("group");
        e.write_str("a");
        e.write_str("group");
        e.write_str("b");
        e.write_str("nothing");
        e.write_null();
        e.write_map_end();
        let body = e.finish();
        let header = Header::request(3, Serialization::HESSIAN2, true);
        let frame = Frame::from_parts(header, &body).unwrap();
        let meta = RequestMeta::from_dubbo(&frame).unwrap();
        assert_eq!(
            meta.attributes.iter().collect::<Vec<_>>(),
            [("group", "a"), ("group", "b")]
        );
        assert_eq!(meta.group.as_deref(), Some("b"), "last one wins");
        assert_eq!(
            meta.attributes.get_all("group").collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    /// Regression (fuzzing, request_meta): a non-string attachment value that a skip accepts but
    /// a decode rejects (a list holding a string whose 4-byte lead `f7` has no continuation
    /// bytes) must fail the meta as it fails the view.
    #[test]
    fn dubbo_attachment_values_are_validated_like_the_view() {
        let mut e = Encoder::new();
        for s in ["2.0.2", "demo.Svc", "1.0", "m", ""] {
            e.write_str(s);
        }
        let mut body = e.finish().to_vec();
        // {"k": [<2-unit string f7 00 00 00>], ...}: the map is cut after the bad value.
        body.extend_from_slice(&[0x48, 0x01, b'k', 0x79, 0x02, 0xf7, 0x00, 0x00, 0x00, 0x5a]);
        let frame =
            Frame::from_parts(Header::request(1, Serialization::HESSIAN2, true), &body).unwrap();
        assert!(frame.request().unwrap().attachments().is_err());
        assert!(matches!(
            RequestMeta::from_dubbo(&frame),
            Err(MetaError::Dubbo(DubboError::Body {
                part: "attachment value",
                ..
            }))
        ));
    }

    #[test]
    fn thrift_vectors() {
        for v in vectors(THRIFT) {
            let name = v["name"].as_str().unwrap();
            let raw = bytes(&v);
            let message = ThriftMessage::parse(&raw).unwrap();
            let meta = RequestMeta::from_thrift(&message);
            let message_type = v["message_type"].as_u64().unwrap();
            if message_type == 3 {
                assert!(
                    matches!(meta, Err(MetaError::NotARequest { found: "exception" })),
                    "{name}"
                );
                continue;
            }
            let meta = meta.unwrap();
            let wire_name = v["method"].as_str().unwrap();
            let (service, method) = match wire_name.split_once(':') {
                Some((s, m)) => (Some(s), m),
                None => (None, wire_name),
            };
            assert_eq!(meta.protocol, RequestProtocol::Thrift);
            assert_eq!(meta.service.as_deref(), service, "{name}");
            assert_eq!(meta.method, method, "{name}");
            assert_eq!(meta.request_id, v["seqid"].as_i64(), "{name}");
            assert_eq!(meta.one_way, message_type == 4, "{name}");
            assert_eq!(meta.sizes.total(), raw.len() as u64, "{name}");
            assert_eq!(meta.sizes.body, message.body().len() as u64, "{name}");
            let expected = v.get("headers").map(ordered_strings).unwrap_or_default();
            let mut got: Vec<_> = meta
                .attributes
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            got.sort();
            assert_eq!(got, expected, "{name}");
        }
        let message =
            ThriftMessage::parse(&bytes(&vector(THRIFT, "theader_binary_header_k_v"))).unwrap();
        let meta = RequestMeta::from_thrift(&message).unwrap();
        assert_eq!(meta.attributes.get("k"), Some("v"));
        assert_eq!(meta.request_id, Some(5));
    }

    #[test]
    fn grpc_request() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/grpc".parse().unwrap());
        headers.insert("te", "trailers".parse().unwrap());
        headers.insert(TRI_SERVICE_VERSION, "1.0.0".parse().unwrap());
        headers.insert(TRI_SERVICE_GROUP, "canary".parse().unwrap());
        headers.insert("grpc-trace-bin", "AAEC".parse().unwrap());
        headers.append("x-tag", "a".parse().unwrap());
        headers.append("x-tag", "b".parse().unwrap());
        headers.insert("content-length", "12".parse().unwrap());
        let meta = RequestMeta::from_grpc("/helloworld.Greeter/SayHello", &headers).unwrap();
        assert_eq!(meta.protocol, RequestProtocol::Grpc);
        assert_eq!(meta.service.as_deref(), Some("helloworld.Greeter"));
        assert_eq!(meta.method, "SayHello");
        assert_eq!(meta.version.as_deref(), Some("1.0.0"));
        assert_eq!(meta.group.as_deref(), Some("canary"));
        assert_eq!(meta.request_id, None);
        assert!(!meta.one_way);
        assert_eq!(
            meta.attributes.get("grpc-trace-bin"),
            None,
            "binary headers skipped"
        );
        assert_eq!(meta.attributes.get("te"), Some("trailers"));
        assert_eq!(
            meta.attributes.get_all("x-tag").collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(meta.attributes.len(), headers.len() - 1);
        assert_eq!(meta.sizes.body, 12);
        assert!(meta.sizes.header > "helloworld.Greeter/SayHello".len());

        assert!(matches!(
            RequestMeta::from_grpc("/no-method", &headers),
            Err(MetaError::Grpc(GrpcError::InvalidPath { .. }))
        ));
    }

    #[test]
    fn http_request() {
        let request = http::Request::builder()
            .method("POST")
            .uri("/api/users?limit=5")
            .header("Host", "API.Example.com:8080")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("content-length", "42")
            .header(
                "x-latin",
                http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
            )
            .body(())
            .unwrap();
        let meta = RequestMeta::from_http_request(&request);
        assert_eq!(meta.protocol, RequestProtocol::Http);
        assert_eq!(meta.service.as_deref(), Some("api.example.com"));
        assert_eq!(meta.method, "POST");
        assert_eq!(meta.path.as_deref(), Some("/api/users"));
        assert_eq!(meta.attributes.get("host"), Some("API.Example.com:8080"));
        assert!(meta.attributes.get("traceparent").is_some());
        assert_eq!(meta.attributes.get("x-latin"), Some("caf\u{fffd}"));
        assert_eq!(meta.sizes.body, 42);
        assert_eq!(meta.request_id, None);

        let absolute = http::Request::get("http://Other.org/x").body(()).unwrap();
        let meta = RequestMeta::from_http_request(&absolute);
        assert_eq!(meta.service.as_deref(), Some("other.org"));
        let no_host = http::Request::get("/x").body(()).unwrap();
        assert_eq!(RequestMeta::from_http_request(&no_host).service, None);
        assert_eq!(RequestProtocol::Http.to_string(), "http");
    }
}
