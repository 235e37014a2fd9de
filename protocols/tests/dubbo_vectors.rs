//! Golden Dubbo frames (shared/vectors/dubbo-frames.json, produced by hessian-lite with the
//! header ExchangeCodec writes): framing byte by byte, header fields, request and response views,
//! byte-exact re-encoding, and the proxy's builders and rewrites.

// Helpers outside `#[test]` functions panic on broken fixtures on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fmt;
use std::sync::Arc;

use bytes::BytesMut;
use causeway_protocols::dubbo::{
    self, AttachmentValue, Call, DubboCodec, DubboError, EventKind, Frame, FrameError, Header,
    Reply, ResultFlag, Serialization, Status,
};
use causeway_protocols::hessian::{ClassDef, Object, Value};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use tokio_util::codec::{Decoder as _, Encoder as _};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/dubbo-frames.json"
);

#[derive(Deserialize)]
struct File {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    hex: String,
    request: bool,
    two_way: bool,
    event: bool,
    serialization_id: u8,
    status: u8,
    request_id: i64,
    body_len: u32,
    dubbo_version: Option<String>,
    service: Option<String>,
    service_version: Option<String>,
    method: Option<String>,
    param_types: Option<String>,
    attachments: Option<Ordered>,
    result_flag: Option<u8>,
    result: Option<String>,
    response_attachments: Option<Ordered>,
    error_message: Option<String>,
    #[serde(default, deserialize_with = "present")]
    event_data: Option<Option<String>>,
}

/// A JSON object's string entries in document order (the Java `HashMap` order on the wire).
#[derive(Debug)]
struct Ordered(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// Distinguishes a present `null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn load() -> Vec<Vector> {
    let text = std::fs::read_to_string(VECTORS).expect("read dubbo-frames.json");
    let file: File = serde_json::from_str(&text).expect("parse dubbo-frames.json");
    assert_eq!(file.vectors.len(), 8, "vector count changed");
    file.vectors
}

fn bytes_of(v: &Vector) -> Vec<u8> {
    hex::decode(&v.hex).unwrap()
}

fn frame_of(v: &Vector) -> Frame {
    let mut buf = BytesMut::from(&bytes_of(v)[..]);
    let frame = DubboCodec::new().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty(), "{}: bytes left after the frame", v.name);
    frame
}

fn strings(attachments: &dubbo::Attachments<'_>) -> Vec<(String, String)> {
    attachments
        .iter()
        .map(|(k, v)| (k.to_owned(), v.as_str().expect("string value").to_owned()))
        .collect()
}

/// The arguments each request vector carries (from its description).
fn arguments(name: &str) -> Vec<Value> {
    match name {
        "request_sayhello_world" => vec![Value::string("world")],
        "request_save_two_users_shared_classdef" => {
            let class = Arc::new(ClassDef::new("demo.User", ["id", "age", "name"]));
            let user = |id: i64, age: i32, name: &str| {
                Value::Object(Object::new(
                    Arc::clone(&class),
                    vec![Value::Long(id), Value::Int(age), Value::string(name)],
                ))
            };
            vec![user(2, 1, "a"), user(4, 3, "b")]
        }
        other => panic!("no arguments known for {other}"),
    }
}

#[test]
fn every_frame_decodes_byte_by_byte() {
    for v in load() {
        let bytes = bytes_of(&v);
        let mut codec = DubboCodec::new();
        let mut buf = BytesMut::new();
        for (i, b) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let got = codec.decode(&mut buf).unwrap();
            if i + 1 < bytes.len() {
                assert!(got.is_none(), "{}: frame after {} bytes", v.name, i + 1);
            } else {
                let frame = got.expect("frame after the last byte");
                assert_eq!(frame.as_bytes(), &bytes[..], "{}", v.name);
                assert_eq!(frame, frame_of(&v));
            }
        }
        assert!(buf.is_empty());
    }
}

#[test]
fn a_stream_of_all_frames_splits_into_them() {
    let vectors = load();
    let stream: Vec<u8> = vectors.iter().flat_map(bytes_of).collect();
    let mut codec = DubboCodec::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    // Three bytes at a time, so chunk boundaries fall everywhere.
    for chunk in stream.chunks(3) {
        buf.extend_from_slice(chunk);
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), vectors.len());
    for (frame, v) in frames.iter().zip(&vectors) {
        assert_eq!(hex::encode(frame.as_bytes()), v.hex);
    }
    // And the encoder writes them back unchanged.
    let mut out = BytesMut::new();
    for frame in frames {
        codec.encode(frame, &mut out).unwrap();
    }
    assert_eq!(&out[..], &stream[..]);
}

#[test]
fn headers_match() {
    for v in load() {
        let frame = frame_of(&v);
        let h = frame.header();
        assert_eq!(h.is_request(), v.request, "{}", v.name);
        assert_eq!(h.is_two_way(), v.two_way, "{}", v.name);
        assert_eq!(h.is_event(), v.event, "{}", v.name);
        assert_eq!(
            h.serialization(),
            Serialization(v.serialization_id),
            "{}",
            v.name
        );
        assert_eq!(h.status, Status(v.status), "{}", v.name);
        assert_eq!(h.request_id, v.request_id, "{}", v.name);
        assert_eq!(h.body_len, v.body_len, "{}", v.name);
        assert_eq!(frame.body().len(), v.body_len as usize);
        assert_eq!(Header::decode(frame.as_bytes()).unwrap(), *h);
        assert_eq!(h.encode()[..], frame.as_bytes()[..16], "{}", v.name);
    }
}

#[test]
fn requests_read_and_reencode() {
    for v in load().iter().filter(|v| v.request && !v.event) {
        let frame = frame_of(v);
        let view = frame.request().unwrap();
        assert_eq!(Some(view.dubbo_version()), v.dubbo_version.as_deref());
        assert_eq!(Some(view.service()), v.service.as_deref());
        assert_eq!(view.service_version(), v.service_version.as_deref());
        assert_eq!(Some(view.method()), v.method.as_deref());
        assert_eq!(Some(view.param_types()), v.param_types.as_deref());
        let args = arguments(&v.name);
        assert_eq!(view.argument_count().unwrap(), args.len());
        assert_eq!(view.arguments().unwrap(), args, "{}", v.name);
        let attachments = view.attachments().unwrap();
        let want = &v.attachments.as_ref().unwrap().0;
        assert_eq!(&strings(&attachments), want, "{}", v.name);
        let span = attachments.span().unwrap();
        assert_eq!(span.end, frame.body().len(), "map ends the body");
        assert!(!view.is_generic());
        // Re-encode: byte-identical to Java.
        let pairs: Vec<(&str, &str)> = want.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let call = Call {
            dubbo_version: view.dubbo_version(),
            service: view.service(),
            service_version: view.service_version(),
            method: view.method(),
            param_types: view.param_types(),
            arguments: &args,
            attachments: &pairs,
        };
        let built = dubbo::encode_request(v.request_id, v.two_way, &call).unwrap();
        assert_eq!(hex::encode(built.as_bytes()), v.hex, "{}", v.name);
    }
}

#[test]
fn responses_read_and_reencode() {
    for v in load().iter().filter(|v| !v.request && !v.event) {
        let frame = frame_of(v);
        let view = frame.response().unwrap();
        assert_eq!(view.status(), Status(v.status));
        if let Some(message) = &v.error_message {
            assert_eq!(view.error_message(), Some(message.as_str()), "{}", v.name);
            assert_eq!(view.result_flag(), None);
            let request = Header::request(v.request_id, Serialization::HESSIAN2, true);
            let built = dubbo::error_response(&request, Status(v.status), message).unwrap();
            assert_eq!(hex::encode(built.as_bytes()), v.hex, "{}", v.name);
            continue;
        }
        let flag = view.result_flag().unwrap();
        assert_eq!(Some(flag.code()), v.result_flag, "{}", v.name);
        let result = v.result.as_deref().map(Value::string);
        assert_eq!(view.value().unwrap(), result, "{}", v.name);
        assert_eq!(view.exception().unwrap(), None);
        let attachments = view.attachments().unwrap();
        let want = &v.response_attachments.as_ref().unwrap().0;
        assert_eq!(&strings(&attachments), want, "{}", v.name);
        let pairs: Vec<(&str, &str)> = want.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let reply = match &result {
            Some(value) => Reply::Value(value),
            None => Reply::Null,
        };
        let built = dubbo::encode_response(v.request_id, reply, Some(&pairs)).unwrap();
        assert_eq!(hex::encode(built.as_bytes()), v.hex, "{}", v.name);
    }
}

#[test]
fn events_read() {
    for v in load().iter().filter(|v| v.event) {
        let frame = frame_of(v);
        let data = v.event_data.clone().expect("event_data present");
        let value = frame.event_data().unwrap();
        match &data {
            None => {
                assert_eq!(value, Value::Null);
                assert!(frame.is_heartbeat());
                assert_eq!(frame.event_kind(), Some(EventKind::Heartbeat));
            }
            Some(s) => {
                assert_eq!(value, Value::string(s.as_str()));
                // Re-encode: the header as received, the body as our encoder writes "R".
                let body = causeway_protocols::hessian::to_vec(&value).unwrap();
                let built = Frame::from_parts(*frame.header(), &body).unwrap();
                assert_eq!(hex::encode(built.as_bytes()), v.hex, "{}", v.name);
                assert!(!frame.is_heartbeat());
                assert_eq!(frame.event_kind(), Some(EventKind::ReadOnly), "{}", v.name);
            }
        }
        assert!(matches!(frame.request(), Err(DubboError::WrongKind { .. })));
        assert!(matches!(
            frame.response(),
            Err(DubboError::WrongKind { .. })
        ));
    }
}

#[test]
fn heartbeat_reply_matches_java() {
    let vectors = load();
    let find = |name: &str| vectors.iter().find(|v| v.name == name).unwrap();
    let request = frame_of(find("heartbeat_request"));
    let reply = dubbo::heartbeat_reply(request.header()).unwrap();
    assert_eq!(
        hex::encode(reply.as_bytes()),
        find("heartbeat_response").hex
    );
    assert_eq!(reply.request_id(), request.request_id());
    assert!(reply.is_heartbeat() && reply.header().is_response());
    let built = dubbo::heartbeat_request(4, Serialization::HESSIAN2).unwrap();
    assert_eq!(hex::encode(built.as_bytes()), find("heartbeat_request").hex);
    // Only event requests get a heartbeat reply.
    let call = frame_of(find("request_sayhello_world"));
    assert!(dubbo::heartbeat_reply(call.header()).is_err());
}

#[test]
fn error_responses_decode_back() {
    let request = Header::request(77, Serialization::HESSIAN2, true);
    let long = "x".repeat(40_000);
    for (status, message) in [
        (Status::CLIENT_TIMEOUT, "client timeout"),
        (Status::SERVER_TIMEOUT, "upstream timed out after 3000 ms"),
        (Status::CHANNEL_INACTIVE, "channel inactive"),
        (Status::BAD_REQUEST, "malformed request: bad magic"),
        (Status::BAD_RESPONSE, "bad response"),
        (
            Status::SERVICE_NOT_FOUND,
            "no route for org.apache.dubbo.demo.DemoService",
        ),
        (Status::SERVICE_ERROR, "服务错误 😀"),
        (Status::SERVER_ERROR, "no healthy upstream"),
        (Status::CLIENT_ERROR, "client error"),
        (Status::SERVER_THREADPOOL_EXHAUSTED, long.as_str()),
    ] {
        let frame = dubbo::error_response(&request, status, message).unwrap();
        let mut buf = BytesMut::from(frame.as_bytes());
        let decoded = DubboCodec::new().decode(&mut buf).unwrap().unwrap();
        assert_eq!(decoded.header().flags, 0x02, "plain response flag");
        assert_eq!(decoded.request_id(), 77);
        let view = decoded.response().unwrap();
        assert_eq!(view.status(), status);
        assert_eq!(view.error_message(), Some(message));
        assert!(status.name().is_some());
    }
    assert_eq!(
        dubbo::error_response(&request, Status::OK, "no").unwrap_err(),
        DubboError::OkStatusForError
    );
    let fastjson = Header::request(1, Serialization::FASTJSON2, true);
    assert!(matches!(
        dubbo::error_response(&fastjson, Status::BAD_REQUEST, "x").unwrap_err(),
        DubboError::UnsupportedSerialization { .. }
    ));
}

#[test]
fn attachments_are_inserted_without_touching_arguments() {
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for v in load().iter().filter(|v| v.request && !v.event) {
        let original = frame_of(v);
        let before = original.request().unwrap();
        let args_start = before.arguments_offset();
        let map_start = before.attachments().unwrap().span().unwrap().start;
        let arg_bytes = original.body()[..map_start].to_vec();
        let old_entries = strings(&before.attachments().unwrap());

        let mut frame = original.clone();
        frame
            .add_attachments(&[("traceparent", traceparent), ("tracestate", "cw=1")])
            .unwrap();
        let added = frame.body().len() - original.body().len();
        // "traceparent" (1+11), its 55-char value (0x30 form: 2+55), "tracestate" (1+10), "cw=1" (1+4).
        assert_eq!(added, 1 + 11 + 2 + traceparent.len() + 1 + 10 + 1 + 4);
        assert_eq!(frame.header().body_len as usize, frame.body().len());
        // Everything before the map (strings and arguments) is byte-identical.
        assert_eq!(&frame.body()[..map_start], &arg_bytes[..], "{}", v.name);
        // The frame still frames, and re-parses with the new entries last.
        let mut buf = BytesMut::from(frame.as_bytes());
        let reparsed = DubboCodec::new().decode(&mut buf).unwrap().unwrap();
        let view = reparsed.request().unwrap();
        assert_eq!(view.arguments_offset(), args_start);
        assert_eq!(view.arguments().unwrap(), arguments(&v.name));
        let attachments = view.attachments().unwrap();
        let mut want = old_entries.clone();
        want.push(("traceparent".into(), traceparent.into()));
        want.push(("tracestate".into(), "cw=1".into()));
        assert_eq!(strings(&attachments), want, "{}", v.name);
        assert_eq!(attachments.get_str("traceparent"), Some(traceparent));
        // Overriding an existing key: the later entry wins on the receiving side.
        frame.add_attachments(&[("tracestate", "cw=2")]).unwrap();
        let attachments = frame.request().unwrap().attachments().unwrap();
        assert_eq!(attachments.get_str("tracestate"), Some("cw=2"));
    }
}

#[test]
fn attachments_are_appended_when_the_body_has_no_map() {
    let vectors = load();
    let v = vectors
        .iter()
        .find(|v| v.name == "request_sayhello_world")
        .unwrap();
    let frame = frame_of(v);
    let span = frame
        .request()
        .unwrap()
        .attachments()
        .unwrap()
        .span()
        .unwrap();
    let mut bare = Frame::from_parts(*frame.header(), &frame.body()[..span.start]).unwrap();
    assert!(bare.request().unwrap().attachments().unwrap().is_empty());
    bare.add_attachments(&[("k", "v")]).unwrap();
    let attachments = bare.request().unwrap().attachments().unwrap();
    assert_eq!(strings(&attachments), vec![("k".into(), "v".into())]);
    // Trailing garbage after the map is refused rather than guessed around.
    let mut body = frame.body().to_vec();
    body.push(0x90);
    let mut bad = Frame::from_parts(*frame.header(), &body).unwrap();
    assert_eq!(
        bad.add_attachments(&[("k", "v")]).unwrap_err(),
        DubboError::TrailingBytes { extra: 1 }
    );
}

#[test]
fn request_id_is_rewritten_in_place() {
    for v in load() {
        let original = frame_of(&v);
        let mut frame = original.clone();
        frame.set_request_id(0x0102_0304_0506_0708);
        assert_eq!(frame.request_id(), 0x0102_0304_0506_0708);
        assert_eq!(&frame.as_bytes()[4..12], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&frame.as_bytes()[..4], &original.as_bytes()[..4]);
        assert_eq!(&frame.as_bytes()[12..], &original.as_bytes()[12..]);
        let mut raw = original.as_bytes().to_vec();
        dubbo::rewrite_request_id(&mut raw, -1).unwrap();
        assert_eq!(&raw[4..12], &[0xff; 8]);
        assert_eq!(Header::decode(&raw).unwrap().request_id, -1);
        // Back to the original id: identical frame.
        frame.set_request_id(v.request_id);
        assert_eq!(frame, original);
    }
    assert!(matches!(
        dubbo::rewrite_request_id(&mut [0u8; 16], 1),
        Err(FrameError::BadMagic { .. })
    ));
}

#[test]
fn oversized_frames_are_rejected_from_the_header() {
    let mut header = Header::request(9, Serialization::HESSIAN2, true);
    header.body_len = 8 * 1024 * 1024 + 1;
    let mut buf = BytesMut::from(&header.encode()[..]);
    match DubboCodec::new().decode(&mut buf) {
        Err(FrameError::FrameTooLarge {
            header: h,
            body_len,
            limit,
        }) => {
            assert_eq!(h.request_id, 9);
            assert_eq!(body_len, 8 * 1024 * 1024 + 1);
            assert_eq!(limit, dubbo::DEFAULT_MAX_BODY_LEN);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    // A custom limit; exactly at the limit is fine.
    header.body_len = 100;
    let mut buf = BytesMut::from(&header.encode()[..]);
    assert!(matches!(
        DubboCodec::with_max_body_len(99).decode(&mut buf),
        Err(FrameError::FrameTooLarge { limit: 99, .. })
    ));
    let mut buf = BytesMut::from(&header.encode()[..]);
    assert!(
        DubboCodec::with_max_body_len(100)
            .decode(&mut buf)
            .unwrap()
            .is_none()
    );
    // The encoder refuses too.
    let frame = Frame::from_parts(header, &[0x4E; 100]).unwrap();
    assert!(
        DubboCodec::with_max_body_len(10)
            .encode(frame, &mut BytesMut::new())
            .is_err()
    );
    // Bad magic is reported as soon as two bytes are in; a negative length from the header.
    let mut buf = BytesMut::from(&b"GE"[..]);
    assert!(matches!(
        DubboCodec::new().decode(&mut buf),
        Err(FrameError::BadMagic {
            found: [b'G', b'E']
        })
    ));
    let mut neg = header.encode();
    neg[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(matches!(
        DubboCodec::new().decode(&mut BytesMut::from(&neg[..])),
        Err(FrameError::NegativeBodyLength { value: -1 })
    ));
}

#[test]
fn other_serializations_are_framed_but_not_read() {
    // A fastjson2 heartbeat: framed, recognised by its null bytes, answered in kind.
    let hb = dubbo::heartbeat_request(11, Serialization::FASTJSON2).unwrap();
    assert_eq!(hb.header().flags, 0xE0 | 23);
    assert_eq!(hb.body(), &[0, 0, 0, 1, 0xAF]);
    assert!(hb.is_heartbeat());
    let reply = dubbo::heartbeat_reply(hb.header()).unwrap();
    assert_eq!(reply.header().flags, 0x20 | 23);
    assert_eq!(reply.header().status, Status::OK);
    assert_eq!(reply.body(), hb.body());
    // A fastjson2 request: the header routes, the body is refused with a clear error.
    let header = Header::request(12, Serialization::FASTJSON2, true);
    let frame =
        Frame::from_parts(header, &[0, 0, 0, 6, 0x4E, b'2', b'.', b'0', b'.', b'2']).unwrap();
    let mut buf = BytesMut::from(frame.as_bytes());
    let frame = DubboCodec::new().decode(&mut buf).unwrap().unwrap();
    let err = frame.request().unwrap_err();
    assert_eq!(
        err,
        DubboError::UnsupportedSerialization {
            serialization: Serialization::FASTJSON2
        }
    );
    assert!(err.to_string().contains("fastjson2 (23)"), "{err}");
    let mut frame = frame;
    assert!(frame.add_attachments(&[("a", "b")]).is_err());
    assert!(frame.event_kind().is_none());
    // Unknown serializations have no heartbeat bytes.
    let odd = Header::request(1, Serialization(30), true);
    assert!(dubbo::heartbeat_reply(&odd).is_err());
}

#[test]
fn one_way_requests_and_generic_calls() {
    let args = [
        Value::string("sayHello"),
        Value::List(causeway_protocols::hessian::List::typed(
            "[string",
            vec![Value::string("java.lang.String")],
        )),
        Value::List(causeway_protocols::hessian::List::typed(
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
        attachments: &[("generic", "true"), ("group", "g1")],
    };
    let frame = dubbo::encode_request(5, false, &call).unwrap();
    assert_eq!(frame.header().flags, 0x82);
    assert!(!frame.header().is_two_way());
    let view = frame.request().unwrap();
    assert_eq!(view.service_version(), None);
    assert!(view.is_generic());
    assert_eq!(view.generic_method().unwrap().as_deref(), Some("sayHello"));
    assert_eq!(view.argument_count().unwrap(), 3);
    let attachments = view.attachments().unwrap();
    assert_eq!(attachments.get_str("group"), Some("g1"));
    assert_eq!(attachments.len(), 2);
    // Non-string attachment values are decoded as values (`_TO` is an Integer in Java).
    let int_attachment = dubbo::encode_request(
        6,
        true,
        &Call {
            arguments: &[],
            param_types: "",
            method: "ping",
            attachments: &[],
            ..call
        },
    )
    .unwrap();
    let mut body = int_attachment.body().to_vec();
    let z = body.len() - 1;
    body.splice(z..z, [0x03, b'_', b'T', b'O', 0xD4, 0x0B, 0xB8]);
    let frame = Frame::from_parts(*int_attachment.header(), &body).unwrap();
    let attachments = frame.request().unwrap().attachments().unwrap();
    assert_eq!(
        attachments.get("_TO"),
        Some(&AttachmentValue::Other(Value::Int(3000)))
    );
}

#[test]
fn result_flags_round_trip() {
    for code in 0..=5 {
        let flag = ResultFlag::from_code(code).unwrap();
        assert_eq!(i32::from(flag.code()), code);
        assert_eq!(flag.has_attachments(), code >= 3);
        assert_eq!(ResultFlag::new(flag.kind(), flag.has_attachments()), flag);
    }
    let ex = Value::Object(Object::new(
        Arc::new(ClassDef::new(
            "java.lang.IllegalStateException",
            ["detailMessage"],
        )),
        vec![Value::string("boom")],
    ));
    for attachments in [None, Some(&[("dubbo", "2.0.2")][..])] {
        let frame = dubbo::encode_response(3, Reply::Exception(&ex), attachments).unwrap();
        let view = frame.response().unwrap();
        assert_eq!(view.exception().unwrap(), Some(ex.clone()));
        assert_eq!(view.value().unwrap(), None);
        assert_eq!(
            view.attachments().unwrap().len(),
            usize::from(attachments.is_some())
        );
    }
}
