//! The Thrift golden vectors (`shared/vectors/thrift-frames.json`, produced by Apache Thrift's
//! Python library) through the codec: whole and byte by byte, seqid rewrites, exception replies
//! (checked against the vectors and re-read with the `thrift` crate as an oracle) and THeader
//! padding.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use bytes::BytesMut;
use causeway_protocols::thrift::{
    ApplicationException, ExceptionKind, MessageHeader, MessageType, Protocol, SeqidRewrite,
    THeader, ThriftCodec, ThriftError, ThriftMessage, Transport, encode_message, rewrite_seqid,
    rewrite_theader_headers,
};
use serde_json::Value;
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol,
    TFieldIdentifier, TInputProtocol, TMessageIdentifier, TMessageType, TOutputProtocol,
    TStructIdentifier, TType,
};
use tokio_util::codec::Decoder;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/thrift-frames.json"
);

struct Vector {
    name: String,
    bytes: Vec<u8>,
    protocol: Protocol,
    transport: Transport,
    method: String,
    message_type: MessageType,
    seqid: i32,
    headers: Option<Vec<(String, String)>>,
    exception: Option<(String, i32)>,
}

fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(VECTORS).expect("read thrift-frames.json");
    let json: Value = serde_json::from_str(&text).unwrap();
    let vectors: Vec<Vector> = json["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Vector {
            name: v["name"].as_str().unwrap().to_string(),
            bytes: hex::decode(v["hex"].as_str().unwrap()).unwrap(),
            protocol: match v["protocol"].as_str().unwrap() {
                "binary" => Protocol::Binary,
                "compact" => Protocol::Compact,
                other => panic!("protocol {other}"),
            },
            transport: match v["transport"].as_str().unwrap() {
                "buffered" => Transport::Buffered,
                "framed" => Transport::Framed,
                "header" => Transport::Header,
                other => panic!("transport {other}"),
            },
            method: v["method"].as_str().unwrap().to_string(),
            message_type: MessageType::from_u8(v["message_type"].as_u64().unwrap() as u8).unwrap(),
            seqid: v["seqid"].as_i64().unwrap() as i32,
            headers: v.get("headers").map(|h| {
                h.as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect()
            }),
            exception: v.get("exception").map(|e| {
                (
                    e["message"].as_str().unwrap().to_string(),
                    e["type"].as_i64().unwrap() as i32,
                )
            }),
        })
        .collect();
    assert_eq!(vectors.len(), 12, "the README promises 12 Thrift vectors");
    vectors
}

fn check_message(vector: &Vector, message: &ThriftMessage) {
    let name = &vector.name;
    assert_eq!(message.header.name, vector.method, "{name}");
    assert_eq!(message.header.message_type, vector.message_type, "{name}");
    assert_eq!(message.header.seqid, vector.seqid, "{name}");
    assert_eq!(message.header.protocol, vector.protocol, "{name}");
    assert_eq!(message.transport, vector.transport, "{name}");
    assert_eq!(&message.frame[..], &vector.bytes[..], "{name}");
    match (&vector.headers, &message.theader) {
        (Some(expected), Some(theader)) => {
            assert_eq!(&theader.headers, expected, "{name}");
            assert_eq!(theader.seqid, vector.seqid, "{name}");
            assert_eq!(theader.protocol, vector.protocol, "{name}");
        }
        (None, None) => {}
        other => panic!("{name}: headers {other:?}"),
    }
    match (&vector.exception, message.exception()) {
        (Some((text, kind)), Some(decoded)) => {
            let decoded = decoded.unwrap();
            assert_eq!(&decoded.message, text, "{name}");
            assert_eq!(decoded.kind.code(), *kind, "{name}");
        }
        (None, None) => {}
        other => panic!("{name}: exception {other:?}"),
    }
}

fn decode_all(codec: &mut ThriftCodec, bytes: &[u8]) -> ThriftMessage {
    let mut src = BytesMut::from(bytes);
    let message = codec.decode(&mut src).unwrap().expect("a whole message");
    assert!(
        src.is_empty(),
        "the decoder must consume exactly the message"
    );
    message
}

#[test]
fn every_vector_decodes() {
    for vector in vectors() {
        let auto = decode_all(&mut ThriftCodec::new(), &vector.bytes);
        check_message(&vector, &auto);
        let fixed = decode_all(
            &mut ThriftCodec::with_transport(vector.transport),
            &vector.bytes,
        );
        check_message(&vector, &fixed);
        let header = MessageHeader::parse(auto.message()).unwrap();
        assert_eq!(header, auto.header);
        if vector.method.contains(':') {
            assert_eq!(auto.header.service(), Some("Calc"));
            assert_eq!(auto.header.method(), "ping");
        } else {
            assert_eq!(auto.header.service(), None);
            assert_eq!(auto.header.method(), vector.method);
        }
    }
}

#[test]
fn every_vector_byte_by_byte() {
    for vector in vectors() {
        for mut codec in [
            ThriftCodec::new(),
            ThriftCodec::with_transport(vector.transport),
        ] {
            let mut src = BytesMut::new();
            let (last, init) = vector.bytes.split_last().unwrap();
            for byte in init {
                src.extend_from_slice(&[*byte]);
                assert!(
                    codec.decode(&mut src).unwrap().is_none(),
                    "{}: complete after {} bytes",
                    vector.name,
                    src.len()
                );
            }
            src.extend_from_slice(&[*last]);
            let message = codec.decode(&mut src).unwrap().expect("complete");
            check_message(&vector, &message);
            assert!(src.is_empty());
        }
    }
}

#[test]
fn back_to_back_vectors_on_one_stream() {
    for transport in [Transport::Buffered, Transport::Framed, Transport::Header] {
        let same: Vec<Vector> = vectors()
            .into_iter()
            .filter(|v| v.transport == transport)
            .collect();
        let mut src = BytesMut::new();
        for vector in &same {
            src.extend_from_slice(&vector.bytes);
        }
        let mut codec = ThriftCodec::new();
        for vector in &same {
            let message = codec.decode(&mut src).unwrap().expect("message");
            check_message(vector, &message);
        }
        assert!(src.is_empty());
        assert_eq!(codec.transport(), Some(transport));
    }
}

const SEQIDS: [i32; 12] = [
    0,
    1,
    127,
    128,
    300,
    16_383,
    16_384,
    2_097_152,
    i32::MAX,
    -1,
    -300,
    i32::MIN,
];

#[test]
fn seqid_rewrites() {
    for vector in vectors() {
        let original = decode_all(&mut ThriftCodec::new(), &vector.bytes);
        for seqid in SEQIDS {
            let mut frame = vector.bytes.clone();
            let rewrite = rewrite_seqid(&mut frame, vector.transport, seqid).unwrap();
            assert_eq!(rewrite.old_seqid(), vector.seqid);
            let rewritten = match rewrite {
                SeqidRewrite::InPlace { .. } => frame,
                SeqidRewrite::Resized { frame: resized, .. } => {
                    assert_eq!(vector.protocol, Protocol::Compact, "only compact resizes");
                    assert_eq!(frame, vector.bytes, "a resize leaves the input alone");
                    resized.to_vec()
                }
            };
            let message = decode_all(&mut ThriftCodec::new(), &rewritten);
            assert_eq!(message.header.seqid, seqid, "{}", vector.name);
            assert_eq!(message.header.name, original.header.name);
            assert_eq!(message.header.message_type, original.header.message_type);
            assert_eq!(message.transport, original.transport);
            assert_eq!(message.body(), original.body(), "{}", vector.name);
            if let Some(theader) = &message.theader {
                assert_eq!(theader.seqid, seqid);
                assert_eq!(theader.headers, original.theader.as_ref().unwrap().headers);
            }
            // Rewriting back restores the original bytes exactly.
            let mut back = rewritten.clone();
            let restored = match rewrite_seqid(&mut back, vector.transport, vector.seqid).unwrap() {
                SeqidRewrite::InPlace { old_seqid } => {
                    assert_eq!(old_seqid, seqid);
                    back
                }
                SeqidRewrite::Resized { old_seqid, frame } => {
                    assert_eq!(old_seqid, seqid);
                    frame.to_vec()
                }
            };
            assert_eq!(restored, vector.bytes, "{} via {seqid}", vector.name);

            // The message-level helper agrees.
            let mut message = original.clone();
            assert_eq!(message.set_seqid(seqid).unwrap(), vector.seqid);
            assert_eq!(&message.frame[..], &rewritten[..]);
            assert_eq!(message.header.seqid, seqid);
        }
    }
}

#[test]
fn compact_seq300_uses_a_two_byte_varint() {
    let vector = vectors()
        .into_iter()
        .find(|v| v.name == "compact_call_ping_seq300")
        .unwrap();
    let message = decode_all(&mut ThriftCodec::new(), &vector.bytes);
    assert_eq!(message.header.seqid, 300);
    assert_eq!(message.header.seqid_offset, 2);
    assert_eq!(message.header.seqid_len, 2);
    // 300 → 1 shrinks the message by one byte; 300 → 301 stays in place.
    let mut frame = vector.bytes.clone();
    match rewrite_seqid(&mut frame, Transport::Buffered, 1).unwrap() {
        SeqidRewrite::Resized { old_seqid, frame } => {
            assert_eq!(old_seqid, 300);
            assert_eq!(hex::encode(&frame), "8221010470696e671802686900");
        }
        other => panic!("{other:?}"),
    }
    let mut frame = vector.bytes.clone();
    assert_eq!(
        rewrite_seqid(&mut frame, Transport::Buffered, 301).unwrap(),
        SeqidRewrite::InPlace { old_seqid: 300 }
    );
    assert_eq!(hex::encode(&frame), "8221ad020470696e671802686900");
}

#[test]
fn framed_length_is_fixed_up_on_resize() {
    let mut framed = BytesMut::new();
    framed.extend_from_slice(&[0, 0, 0, 13]);
    framed.extend_from_slice(&hex::decode("8221010470696e671802686900").unwrap());
    match rewrite_seqid(&mut framed, Transport::Framed, 300).unwrap() {
        SeqidRewrite::Resized { frame, .. } => {
            assert_eq!(hex::encode(&frame), "0000000e8221ac020470696e671802686900")
        }
        other => panic!("{other:?}"),
    }
    let theader = hex::decode("000000170fff0000000000050001020000008221050470696e6700").unwrap();
    let mut frame = theader.clone();
    match rewrite_seqid(&mut frame, Transport::Header, -2).unwrap() {
        SeqidRewrite::Resized { frame, .. } => {
            let message = decode_all(&mut ThriftCodec::new(), &frame);
            assert_eq!(message.header.seqid, -2);
            assert_eq!(message.theader.unwrap().seqid, -2);
            assert_eq!(&frame[..4], &[0, 0, 0, 0x17 + 4]);
        }
        other => panic!("{other:?}"),
    }
}

fn exception_vector(name: &str) -> Vector {
    vectors().into_iter().find(|v| v.name == name).unwrap()
}

#[test]
fn exception_builder_matches_the_golden_bytes() {
    let binary = exception_vector("binary_exception_internal_error");
    let built = ApplicationException::new(ExceptionKind::InternalError, "no upstream")
        .encode_reply(Protocol::Binary, Transport::Buffered, "ping", 1)
        .unwrap();
    assert_eq!(&built[..], &binary.bytes[..]);

    let compact = exception_vector("compact_exception_unknown_method");
    let built = ApplicationException::new(ExceptionKind::UnknownMethod, "x")
        .encode_reply(Protocol::Compact, Transport::Buffered, "ping", 1)
        .unwrap();
    assert_eq!(&built[..], &compact.bytes[..]);
}

/// Reads a message with the `thrift` crate: header, then the exception struct.
fn oracle_read_exception(
    protocol: Protocol,
    message: &[u8],
) -> (TMessageIdentifier, thrift::ApplicationError) {
    let mut reader = message;
    let mut input: Box<dyn TInputProtocol + '_> = match protocol {
        Protocol::Binary => Box::new(TBinaryInputProtocol::new(&mut reader, true)),
        Protocol::Compact => Box::new(TCompactInputProtocol::new(&mut reader)),
    };
    let ident = input.read_message_begin().unwrap();
    let error = thrift::Error::read_application_error_from_in_protocol(input.as_mut()).unwrap();
    input.read_message_end().unwrap();
    drop(input);
    assert!(
        reader.is_empty(),
        "the oracle must consume the whole message"
    );
    (ident, error)
}

#[test]
fn exception_replies_to_every_vector_reparse() {
    let kinds = [
        ExceptionKind::UnknownMethod,
        ExceptionKind::InternalError,
        ExceptionKind::ProtocolError,
        ExceptionKind::Unknown,
    ];
    for vector in vectors() {
        let request = decode_all(&mut ThriftCodec::new(), &vector.bytes);
        for kind in kinds {
            let exception = ApplicationException::new(kind, format!("proxy: {} ✗", vector.name));
            let reply = exception.reply_to(&request).unwrap();
            let decoded = decode_all(&mut ThriftCodec::new(), &reply);
            assert_eq!(decoded.transport, vector.transport);
            assert_eq!(decoded.header.protocol, vector.protocol);
            assert_eq!(decoded.header.message_type, MessageType::Exception);
            assert_eq!(decoded.header.name, "ping", "bare method name");
            assert_eq!(decoded.header.seqid, vector.seqid);
            assert_eq!(decoded.exception().unwrap().unwrap(), exception);
            if let Some(theader) = &decoded.theader {
                assert_eq!(theader.seqid, vector.seqid);
            }

            let (ident, error) = oracle_read_exception(vector.protocol, decoded.message());
            assert_eq!(ident.name, "ping");
            assert_eq!(ident.message_type, TMessageType::Exception);
            assert_eq!(ident.sequence_number, vector.seqid);
            assert_eq!(error.message, exception.message);
            assert_eq!(error.kind as i32, kind.code());
        }
    }
}

#[test]
fn exception_replies_in_every_protocol_and_transport() {
    for protocol in [Protocol::Binary, Protocol::Compact] {
        for transport in [Transport::Buffered, Transport::Framed, Transport::Header] {
            for seqid in SEQIDS {
                let exception = ApplicationException::new(ExceptionKind::InternalError, "timeout");
                let reply = exception
                    .encode_reply(protocol, transport, "getUser", seqid)
                    .unwrap();
                let decoded = decode_all(&mut ThriftCodec::with_transport(transport), &reply);
                assert_eq!(decoded.header.seqid, seqid);
                assert_eq!(decoded.transport, transport);
                let (ident, error) = oracle_read_exception(protocol, decoded.message());
                assert_eq!(ident.name, "getUser");
                assert_eq!(ident.sequence_number, seqid);
                assert_eq!(error.message, "timeout");
                assert_eq!(error.kind as i32, 6);
            }
        }
    }
}

#[test]
fn theader_padding_follows_python() {
    // Python pads the variable header only up to the next multiple of 4, so frames built with
    // the same rule are byte-identical to the vectors.
    for vector in vectors()
        .into_iter()
        .filter(|v| v.transport == Transport::Header)
    {
        let decoded = decode_all(&mut ThriftCodec::new(), &vector.bytes);
        let mut theader = THeader::new(vector.protocol, vector.seqid);
        for (key, value) in vector.headers.as_ref().unwrap() {
            theader.set(key.clone(), value.clone());
        }
        assert_eq!(
            &theader.encode(decoded.message()).unwrap()[..],
            &vector.bytes[..]
        );
        assert_eq!(
            &rewrite_theader_headers(&vector.bytes, &theader.headers).unwrap()[..],
            &vector.bytes[..]
        );
        if vector.headers.as_ref().unwrap().is_empty() {
            let built = encode_message(
                vector.protocol,
                Transport::Header,
                "ping",
                MessageType::Call,
                5,
                &[0x00],
            )
            .unwrap();
            assert_eq!(&built[..], &vector.bytes[..], "{}", vector.name);
        }
    }
}

#[test]
fn theader_with_envoy_padding_decodes() {
    // Envoy always pads 1–4 bytes: the k=v header (exactly 8 bytes) gets 4 more, HEADER SIZE 3.
    let message = hex::decode("800100010000000470696e670000000500").unwrap();
    let mut frame = vec![];
    let variable = [0x00, 0x00, 0x01, 0x01, 0x01, b'k', 0x01, b'v', 0, 0, 0, 0];
    let length = 10 + variable.len() + message.len();
    frame.extend_from_slice(&(length as u32).to_be_bytes());
    frame.extend_from_slice(&[0x0f, 0xff, 0x00, 0x00, 0, 0, 0, 5, 0, 3]);
    frame.extend_from_slice(&variable);
    frame.extend_from_slice(&message);
    let decoded = decode_all(&mut ThriftCodec::new(), &frame);
    assert_eq!(decoded.theader.as_ref().unwrap().get("k"), Some("v"));
    assert_eq!(decoded.message(), &message[..]);
    assert_eq!(decoded.header.seqid, 5);
}

#[test]
fn theader_transforms_and_json_are_refused() {
    let mut theader = THeader::new(Protocol::Binary, 1);
    theader
        .transforms
        .push(causeway_protocols::thrift::TRANSFORM_ZLIB);
    let frame = theader.encode(b"compressed").unwrap();
    let error = ThriftCodec::new()
        .decode(&mut BytesMut::from(&frame[..]))
        .unwrap_err();
    assert!(
        matches!(error, ThriftError::UnsupportedTransform { id: 1, .. }),
        "{error}"
    );
}

/// Writes `ping(1: "hi")` with the `thrift` crate and returns the bytes.
fn oracle_write(protocol: Protocol, strict: bool, name: &str, seqid: i32) -> Vec<u8> {
    let mut out: Vec<u8> = vec![];
    {
        let mut output: Box<dyn TOutputProtocol + '_> = match protocol {
            Protocol::Binary => Box::new(TBinaryOutputProtocol::new(&mut out, strict)),
            Protocol::Compact => Box::new(TCompactOutputProtocol::new(&mut out)),
        };
        output
            .write_message_begin(&TMessageIdentifier::new(name, TMessageType::Call, seqid))
            .unwrap();
        output
            .write_struct_begin(&TStructIdentifier::new("args"))
            .unwrap();
        output
            .write_field_begin(&TFieldIdentifier::new("s", TType::String, 1))
            .unwrap();
        output.write_string("hi").unwrap();
        output.write_field_end().unwrap();
        output
            .write_field_begin(&TFieldIdentifier::new("l", TType::List, 2))
            .unwrap();
        output
            .write_list_begin(&thrift::protocol::TListIdentifier::new(TType::Double, 2))
            .unwrap();
        output.write_double(1.5).unwrap();
        output.write_double(-2.0).unwrap();
        output.write_list_end().unwrap();
        output.write_field_end().unwrap();
        output
            .write_field_begin(&TFieldIdentifier::new("b", TType::Bool, 3))
            .unwrap();
        output.write_bool(true).unwrap();
        output.write_field_end().unwrap();
        output.write_field_stop().unwrap();
        output.write_struct_end().unwrap();
        output.write_message_end().unwrap();
        output.flush().unwrap();
    }
    out
}

#[test]
fn messages_written_by_the_thrift_crate_decode() {
    for (protocol, strict) in [
        (Protocol::Binary, true),
        (Protocol::Binary, false),
        (Protocol::Compact, true),
    ] {
        for name in ["ping", "Calc:add", ""] {
            for seqid in SEQIDS {
                let bytes = oracle_write(protocol, strict, name, seqid);
                let message = decode_all(
                    &mut ThriftCodec::with_transport(Transport::Buffered),
                    &bytes,
                );
                assert_eq!(message.header.name, name);
                assert_eq!(message.header.seqid, seqid);
                assert_eq!(message.header.protocol, protocol);
                assert_eq!(message.header.strict, strict);
                let mut framed = (bytes.len() as u32).to_be_bytes().to_vec();
                framed.extend_from_slice(&bytes);
                let message = decode_all(&mut ThriftCodec::new(), &framed);
                assert_eq!(message.transport, Transport::Framed);
                assert_eq!(message.header.seqid, seqid);
            }
        }
    }
}

#[test]
fn oversized_frames_are_rejected_clearly() {
    let vector = exception_vector("binary_strict_call_ping_framed");
    let mut codec = ThriftCodec::new().max_frame_size(25);
    let error = codec
        .decode(&mut BytesMut::from(&vector.bytes[..]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "thrift frame of 26 bytes at byte 0 exceeds the maximum of 25 bytes"
    );
    let unframed = exception_vector("binary_strict_call_ping");
    let mut codec = ThriftCodec::new().max_frame_size(20);
    let error = codec
        .decode(&mut BytesMut::from(&unframed.bytes[..]))
        .unwrap_err();
    assert!(
        matches!(error, ThriftError::MessageTooLarge { max: 20, .. }),
        "{error}"
    );
}
