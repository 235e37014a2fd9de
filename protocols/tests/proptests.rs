//! Property tests: arbitrary and mutated bytes never panic the Hessian decoder, the skipper, the
//! Dubbo codec or the views; generated Hessian values survive `decode(encode(v)) == v`.

use std::sync::Arc;

use bytes::BytesMut;
use causeway_protocols::dubbo::{self, DubboCodec, Frame, Header, Serialization, Status};
use causeway_protocols::hessian::{self, ClassDef, Decoder, Limits, List, Map, Object, Value};
use proptest::prelude::*;
use tokio_util::codec::Decoder as _;

/// Golden bytes to mutate: real frames reach much deeper than random bytes.
const SEEDS: &[&str] = &[
    "dabbc20000000000000000060000007c05322e302e321064656d6f2e557365725365727669636505312e302e300473617665164c64656d6f2f557365723b4c64656d6f2f557365723b430964656d6f2e557365729302696403616765046e616d6560e291016160e49301624804706174681064656d6f2e55736572536572766963650567726f75700267315a",
    "dabb021400000000000000010000001b940b48656c6c6f20776f726c644805647562626f05322e302e325a",
    "dabb02460000000000000003000000121153657276696365206e6f7420666f756e64",
    "dabbe2000000000000000004000000014e",
];

fn seed(i: usize) -> Vec<u8> {
    hex::decode(SEEDS[i % SEEDS.len()]).unwrap_or_default()
}

/// Exercises every reading entry point on `bytes`; only panics matter.
fn read_everything(bytes: &[u8]) {
    let _ = hessian::from_slice(bytes);
    let _ = hessian::skip(bytes);
    let tight = Limits {
        max_depth: 8,
        max_alloc: 512,
    };
    let mut d = Decoder::with_limits(bytes, tight);
    while !d.is_at_end() && d.read_value().is_ok() {}
    let mut d = Decoder::new(bytes);
    while !d.is_at_end() && d.skip_value().is_ok() {}
    let mut d = Decoder::new(bytes);
    let _ = d.read_str();
    let _ = d.read_binary();
    let _ = d.read_i64();
    let _ = dubbo::argument_count(&String::from_utf8_lossy(bytes));
}

/// Everything a proxy may do with a frame; only panics matter.
fn use_frame(frame: &Frame) {
    let _ = frame.is_heartbeat();
    let _ = frame.event_kind();
    let _ = frame.event_data();
    if let Ok(view) = frame.request() {
        let _ = view.argument_count();
        let _ = view.generic_method();
        let _ = view.arguments();
        if let Ok(attachments) = view.attachments() {
            let _ = attachments.get_str("traceparent");
        }
    }
    if let Ok(view) = frame.response() {
        let _ = view.value();
        let _ = view.exception();
        let _ = view.attachments();
    }
    let mut copy = frame.clone();
    let readable = frame.request().and_then(|v| v.attachments()).is_ok();
    if copy
        .add_attachments(&[("traceparent", "00-abc-01")])
        .is_ok()
        && readable
    {
        // An insertion that succeeded must leave a readable request with the new entry last.
        let attachments = copy.request().and_then(|v| v.attachments());
        assert_eq!(
            attachments
                .ok()
                .and_then(|a| a.get_str("traceparent").map(str::to_owned)),
            Some("00-abc-01".to_owned())
        );
    }
    copy.set_request_id(42);
    let _ = dubbo::heartbeat_reply(frame.header());
    let _ = dubbo::error_response(frame.header(), Status::BAD_REQUEST, "x");
}

fn feed_codec(bytes: &[u8], chunk: usize) {
    let mut codec = DubboCodec::with_max_body_len(64 * 1024);
    let mut buf = BytesMut::new();
    let mut split = BytesMut::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            use_frame(&frame);
        }
        // The non-growing entry points see the same bytes.
        split.extend_from_slice(piece);
        let _ = codec.missing(&split);
        while let Ok(Some(frame)) = codec.split_frame(&mut split) {
            use_frame(&frame);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_hessian(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        read_everything(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        which in 0usize..SEEDS.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        chunk in 1usize..40,
    ) {
        let mut bytes = seed(which);
        for (at, b) in edits {
            let len = bytes.len();
            bytes[at % len] = b;
        }
        // The body alone goes to the Hessian reader; the frame with a sane header to the views.
        read_everything(&bytes[16..]);
        feed_codec(&bytes, chunk);
        let mut fixed = bytes.clone();
        fixed[..2].copy_from_slice(&dubbo::MAGIC);
        let body = fixed[16..].to_vec();
        if let Ok(mut header) = Header::decode(&fixed) {
            header.flags = (header.flags & 0xE0) | 2;
            if let Ok(frame) = Frame::from_parts(header, &body) {
                use_frame(&frame);
            }
        }
    }

    #[test]
    fn arbitrary_frames_never_panic(
        flags in any::<u8>(),
        status in any::<u8>(),
        id in any::<i64>(),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        chunk in 1usize..20,
    ) {
        let header = Header { flags, status: Status(status), request_id: id, body_len: 0 };
        let frame = Frame::from_parts(header, &body).unwrap();
        use_frame(&frame);
        feed_codec(frame.as_bytes(), chunk);
        let hessian_header = Header { flags: (flags & 0xE0) | 2, ..header };
        use_frame(&Frame::from_parts(hessian_header, &body).unwrap());
    }

    #[test]
    fn arbitrary_stream_never_panics_codec(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut stream = dubbo::MAGIC.to_vec();
        stream.extend_from_slice(&bytes);
        feed_codec(&stream, 7);
        feed_codec(&bytes, 1);
    }
}

// --- round trip ---------------------------------------------------------------------------------

fn class_defs() -> Vec<Arc<ClassDef>> {
    vec![
        Arc::new(ClassDef::new("demo.User", ["id", "age", "name"])),
        Arc::new(ClassDef::new("demo.Empty", Vec::<String>::new())),
        Arc::new(ClassDef::new("demo.Node", ["value", "next"])),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => any::<String>(),
        1 => "[a😀é]{0,40}",
        1 => (0usize..3, any::<char>()).prop_map(|(k, c)| {
            // Around the 32768-unit chunk boundary, sometimes with a surrogate pair straddling it.
            let mut s = "a".repeat(32_766 + k);
            s.push(c);
            s.push_str("tail😀");
            s
        }),
    ]
}

fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        (-100_000i32..100_000).prop_map(|m| 0.001 * f64::from(m)),
        any::<i16>().prop_map(f64::from),
        Just(f64::NAN),
        Just(f64::INFINITY),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::Int),
        (-300_000i32..300_000).prop_map(Value::Int),
        any::<i64>().prop_map(Value::Long),
        (-300_000i64..300_000).prop_map(Value::Long),
        double().prop_map(Value::Double),
        any::<i64>().prop_map(Value::Date),
        any::<i32>().prop_map(|m| Value::Date(i64::from(m) * 60_000)),
        text().prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Binary),
        (0usize..20_000).prop_map(|n| Value::Binary(vec![0xA5; n])),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let type_names = prop_oneof![
        Just(None),
        Just(Some("[object".to_owned())),
        Just(Some("java.util.LinkedList".to_owned())),
        "[a-z.]{1,12}".prop_map(Some),
    ];
    leaf().prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            (
                type_names.clone(),
                proptest::collection::vec(inner.clone(), 0..10),
                any::<bool>()
            )
                .prop_map(|(type_name, items, variable_length)| Value::List(List {
                    type_name,
                    items,
                    variable_length,
                })),
            (
                prop_oneof![Just(None), Just(Some("java.util.TreeMap".to_owned()))],
                proptest::collection::vec((inner.clone(), inner.clone()), 0..6),
            )
                .prop_map(|(type_name, entries)| Value::Map(Map { type_name, entries })),
            (0usize..3, proptest::collection::vec(inner, 3)).prop_map(|(i, fields)| {
                let class = class_defs().swap_remove(i);
                let fields = fields.into_iter().take(class.fields.len()).collect();
                Value::Object(Object::new(class, fields))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_encode_round_trip(values in proptest::collection::vec(value(), 1..4)) {
        // Several values in one stream share class definitions and type names.
        let mut encoder = hessian::Encoder::new();
        for v in &values {
            encoder.write_value(v).unwrap();
        }
        let bytes = encoder.finish();
        let mut d = Decoder::new(&bytes);
        for v in &values {
            prop_assert_eq!(d.read_value().unwrap(), v.wire_normalized());
        }
        prop_assert!(d.is_at_end());
        let mut skipper = Decoder::new(&bytes);
        for _ in &values {
            skipper.skip_value().unwrap();
        }
        prop_assert_eq!(skipper.position(), bytes.len());
        // Decoded values re-encode to the same bytes.
        let mut again = hessian::Encoder::new();
        let mut d = Decoder::new(&bytes);
        for _ in &values {
            again.write_value(&d.read_value().unwrap()).unwrap();
        }
        prop_assert_eq!(&again.finish()[..], &bytes[..]);
    }

    #[test]
    fn strings_round_trip_zero_copy(s in text()) {
        let mut encoder = hessian::Encoder::new();
        encoder.write_str(&s);
        let bytes = encoder.finish();
        let got = Decoder::new(&bytes).read_str().unwrap().unwrap();
        prop_assert_eq!(got.as_ref(), s.as_str());
    }

    #[test]
    fn requests_round_trip(
        service in "[a-z.]{1,40}",
        method in "[a-zA-Z$]{1,20}",
        args in proptest::collection::vec(value(), 0..3),
        attachments in proptest::collection::vec(("[a-z.]{1,12}", text()), 0..5),
        id in any::<i64>(),
    ) {
        let desc = "Ljava/lang/Object;".repeat(args.len());
        let pairs: Vec<(&str, &str)> =
            attachments.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let call = dubbo::Call {
            dubbo_version: "2.0.2",
            service: &service,
            service_version: Some("1.0.0"),
            method: &method,
            param_types: &desc,
            arguments: &args,
            attachments: &pairs,
        };
        let mut frame = dubbo::encode_request(id, true, &call).unwrap();
        let view = frame.request().unwrap();
        prop_assert_eq!(view.service(), service.as_str());
        prop_assert_eq!(view.method(), method.as_str());
        let normalized_args: Vec<Value> = args.iter().map(Value::wire_normalized).collect();
        prop_assert_eq!(view.arguments().unwrap(), normalized_args.clone());
        let got = view.attachments().unwrap();
        prop_assert_eq!(got.len(), pairs.len());
        for ((k, v), (gk, gv)) in pairs.iter().zip(got.iter()) {
            prop_assert_eq!(*k, gk);
            prop_assert_eq!(Some(*v), gv.as_str());
        }
        frame.add_attachments(&[("traceparent", "00-1-2-01")]).unwrap();
        let view = frame.request().unwrap();
        prop_assert_eq!(view.arguments().unwrap(), normalized_args);
        let after = view.attachments().unwrap();
        prop_assert_eq!(after.get_str("traceparent"), Some("00-1-2-01"));
        prop_assert_eq!(frame.header().serialization(), Serialization::HESSIAN2);
    }

    #[test]
    fn split_frame_and_missing_agree_with_the_decoder(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
        chunk in 1usize..64,
    ) {
        let mut wire = Vec::new();
        for (id, body) in bodies.iter().enumerate() {
            let header = Header::request(id as i64, Serialization::HESSIAN2, true);
            wire.extend_from_slice(Frame::from_parts(header, body).unwrap().as_bytes());
        }
        let codec = DubboCodec::new();
        let mut buf = BytesMut::new();
        let mut seen = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            let capacity = buf.capacity();
            while let Some(frame) = codec.split_frame(&mut buf).unwrap() {
                seen.push(frame.as_bytes().to_vec());
            }
            // An incomplete frame: `missing` says how much of it is still to come, and
            // `split_frame` left the buffer's room alone.
            if buf.len() >= 16 {
                let header = Header::decode(&buf).unwrap();
                prop_assert_eq!(codec.missing(&buf), header.frame_len() - buf.len());
            } else {
                prop_assert_eq!(codec.missing(&buf), 0);
            }
            prop_assert!(buf.capacity() <= capacity);
        }
        let expected: Vec<Vec<u8>> = bodies
            .iter()
            .enumerate()
            .map(|(id, body)| {
                let header = Header::request(id as i64, Serialization::HESSIAN2, true);
                Frame::from_parts(header, body).unwrap().as_bytes().to_vec()
            })
            .collect();
        prop_assert_eq!(seen, expected);
        prop_assert!(buf.is_empty());
    }
}
