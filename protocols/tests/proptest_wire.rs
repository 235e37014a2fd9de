//! Property tests for the Thrift, gRPC, HTTP and detection code: arbitrary bytes never panic,
//! and everything that has an encoder round-trips. Random Thrift structs are written by the
//! `thrift` crate (an independent implementation), so the skip-walk is checked against it.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use causeway_protocols::detect::{Detection, detect};
use causeway_protocols::grpc::{
    Code, GrpcCodec, GrpcFrame, GrpcPath, decode_grpc_message, encode_grpc_message,
    parse_grpc_timeout,
};
use causeway_protocols::http::{B3, SpanId, TraceId, TraceParent, normalize_authority};
use causeway_protocols::thrift::{
    ApplicationException, ExceptionKind, MessageHeader, MessageType, Protocol, SeqidRewrite,
    THeader, ThriftCodec, ThriftMessage, Transport, encode_message, message_len, rewrite_seqid,
    skip_struct,
};
use proptest::prelude::*;
use thrift::protocol::{
    TBinaryOutputProtocol, TCompactOutputProtocol, TFieldIdentifier, TListIdentifier,
    TMapIdentifier, TMessageIdentifier, TMessageType, TOutputProtocol, TSetIdentifier,
    TStructIdentifier, TType,
};
use tokio_util::codec::{Decoder, Encoder};

fn any_transport() -> impl Strategy<Value = Transport> {
    prop_oneof![
        Just(Transport::Buffered),
        Just(Transport::Framed),
        Just(Transport::Header)
    ]
}

fn any_protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::Binary), Just(Protocol::Compact)]
}

fn any_message_type() -> impl Strategy<Value = MessageType> {
    (1u8..=4).prop_map(|t| MessageType::from_u8(t).unwrap())
}

/// Runs a decoder over `bytes` until it stops producing items; returns whether it errored.
fn drain<D: Decoder>(mut decoder: D, bytes: &[u8]) -> bool {
    let mut src = BytesMut::from(bytes);
    for _ in 0..=bytes.len() {
        match decoder.decode(&mut src) {
            Ok(Some(_)) => continue,
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
    false
}

// === Arbitrary bytes never panic ===

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn thrift_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        drain(ThriftCodec::new().max_frame_size(1024), &bytes);
        for transport in [Transport::Buffered, Transport::Framed, Transport::Header] {
            drain(ThriftCodec::with_transport(transport).max_frame_size(1024).max_depth(8), &bytes);
        }
        let _ = MessageHeader::parse(&bytes);
        let _ = ThriftMessage::parse(&bytes);
        let _ = MessageHeader::parse_prefix(&bytes, 1024);
        let _ = message_len(&bytes, 1024, 16);
        for protocol in [Protocol::Binary, Protocol::Compact] {
            let _ = skip_struct(&bytes, protocol, 1024, 16);
            let _ = ApplicationException::decode_body(&bytes, protocol);
        }
        let _ = THeader::parse(&bytes);
        for transport in [Transport::Buffered, Transport::Framed, Transport::Header] {
            let _ = rewrite_seqid(&mut bytes.clone(), transport, 300);
        }
    }

    #[test]
    fn thrift_walk_of_framed_looking_garbage_never_panics(
        header in proptest::collection::vec(any::<u8>(), 0..24),
        body in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        // Valid-looking starts reach deeper into the walk than uniform bytes do.
        for start in [&[0x80u8, 0x01, 0x00, 0x01, 0, 0, 0, 1, b'p', 0, 0, 0, 1][..], &[0x82, 0x21, 0x01, 0x01, b'p']] {
            let mut bytes = start.to_vec();
            bytes.extend_from_slice(&body);
            drain(ThriftCodec::new().max_frame_size(512).max_depth(4), &bytes);
            let mut framed = ((bytes.len()) as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            drain(ThriftCodec::new(), &framed);
        }
        let mut theader = vec![0, 0, 0, 0, 0x0f, 0xff];
        theader.extend_from_slice(&header);
        theader.extend_from_slice(&body);
        let len = (theader.len() - 4) as u32;
        theader[..4].copy_from_slice(&len.to_be_bytes());
        drain(ThriftCodec::new(), &theader);
        let _ = THeader::parse(&theader);
    }

    #[test]
    fn grpc_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        drain(GrpcCodec::new().max_message_size(32), &bytes);
        let _ = decode_grpc_message(&bytes);
        let _ = Code::from_header_value(&bytes);
    }

    #[test]
    fn string_parsers_never_panic(text in ".{0,80}") {
        let _ = GrpcPath::parse(&text);
        let _ = parse_grpc_timeout(&text);
        let _ = TraceParent::parse(&text);
        let _ = B3::parse_single(&text);
        let _ = normalize_authority(&text);
    }

    #[test]
    fn traceparent_like_strings_never_panic(
        version in "[0-9a-fA-F]{2}",
        trace in "[0-9a-fA-F]{30,34}",
        parent in "[0-9a-f]{15,17}",
        flags in "[0-9a-fx]{1,3}",
        tail in "(-[a-z0-9]{0,4})?",
    ) {
        let text = format!("{version}-{trace}-{parent}-{flags}{tail}");
        if let Ok(parsed) = TraceParent::parse(&text) {
            prop_assert_eq!(TraceParent::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }

    #[test]
    fn detector_never_panics_and_is_monotone(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        // Once a verdict is given (a protocol or Unknown), more bytes never change it.
        let mut verdict = None;
        for len in 0..=bytes.len() {
            let now = detect(&bytes[..len]);
            if let Some(earlier) = verdict {
                prop_assert_eq!(now, earlier, "at {}", len);
            } else if now != Detection::NeedMore {
                verdict = Some(now);
            }
        }
        if bytes.len() >= causeway_protocols::detect::MAX_DETECT_LEN {
            prop_assert!(verdict.is_some());
        }
    }

    #[test]
    fn detector_monotone_on_protocol_like_prefixes(
        start in prop_oneof![
            Just(vec![0xda, 0xbb]),
            Just(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
            Just(b"POST ".to_vec()),
            Just(vec![0, 0, 0, 0x1a]),
            Just(vec![0, 0, 0, 4]),
            Just(vec![0x82]),
        ],
        cut in 0usize..24,
        tail in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut bytes = start[..cut.min(start.len())].to_vec();
        bytes.extend_from_slice(&tail);
        let mut verdict = None;
        for len in 0..=bytes.len() {
            let now = detect(&bytes[..len]);
            if let Some(earlier) = verdict {
                prop_assert_eq!(now, earlier);
            } else if now != Detection::NeedMore {
                verdict = Some(now);
            }
        }
    }
}

// === Round trips ===

proptest! {
    #[test]
    fn grpc_frames_round_trip(
        messages in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..5),
        split in any::<usize>(),
    ) {
        let mut codec = GrpcCodec::new();
        let mut wire = BytesMut::new();
        for (compressed, message) in &messages {
            codec.encode(GrpcFrame { compressed: *compressed, message: Bytes::from(message.clone()) }, &mut wire).unwrap();
        }
        // Split the stream at an arbitrary point, as DATA frames would.
        let split = if wire.is_empty() { 0 } else { split % wire.len() };
        let mut src = BytesMut::from(&wire[..split]);
        let mut decoded = vec![];
        while let Some(frame) = codec.decode(&mut src).unwrap() {
            decoded.push(frame);
        }
        src.extend_from_slice(&wire[split..]);
        while let Some(frame) = codec.decode(&mut src).unwrap() {
            decoded.push(frame);
        }
        prop_assert!(src.is_empty());
        prop_assert_eq!(decoded.len(), messages.len());
        for (frame, (compressed, message)) in decoded.iter().zip(&messages) {
            prop_assert_eq!(frame.compressed, *compressed);
            prop_assert_eq!(&frame.message[..], &message[..]);
        }
    }

    #[test]
    fn grpc_message_round_trips(text in "\\PC{0,40}") {
        let encoded = encode_grpc_message(&text);
        prop_assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        prop_assert_eq!(decode_grpc_message(encoded.as_bytes()), text);
    }

    #[test]
    fn grpc_paths_round_trip(service in "[a-z][a-z0-9_]{0,8}(\\.[A-Za-z][A-Za-z0-9_$]{0,8}){0,3}", method in "[A-Za-z_][A-Za-z0-9_]{0,12}") {
        let path = format!("/{service}/{method}");
        let parsed = GrpcPath::parse(&path).unwrap();
        prop_assert_eq!(parsed.service, service.as_str());
        prop_assert_eq!(parsed.method, method.as_str());
        prop_assert_eq!(parsed.to_string(), path);
    }

    #[test]
    fn traceparent_round_trips(trace in any::<u128>(), span in any::<u64>(), flags in any::<u8>()) {
        prop_assume!(trace != 0 && span != 0);
        let parent = TraceParent { trace_id: TraceId(trace.to_be_bytes()), parent_id: SpanId(span.to_be_bytes()), flags };
        let text = parent.to_string();
        prop_assert_eq!(text.len(), 55);
        prop_assert_eq!(TraceParent::parse(&text).unwrap(), parent);
        let child = parent.child_random();
        prop_assert_eq!(child.trace_id, parent.trace_id);
        prop_assert_eq!(child.flags, parent.flags);
    }

    #[test]
    fn b3_single_round_trips(trace in any::<u128>(), wide in any::<bool>(), span in any::<u64>(), parent in proptest::option::of(any::<u64>()), sampling in 0u8..4) {
        let trace = if wide { trace } else { trace & u128::from(u64::MAX) };
        prop_assume!(trace != 0 && span != 0 && parent != Some(0));
        let text = {
            let trace = if wide { format!("{trace:032x}") } else { format!("{trace:016x}") };
            let mut text = format!("{trace}-{span:016x}");
            if sampling < 3 {
                text.push('-');
                text.push_str(["0", "1", "d"][sampling as usize]);
                if let Some(parent) = parent {
                    text.push_str(&format!("-{parent:016x}"));
                }
            }
            text
        };
        let parsed = B3::parse_single(&text).unwrap();
        prop_assert_eq!(parsed.to_single(), text);
    }

    #[test]
    fn theader_round_trips(
        protocol in any_protocol(),
        seqid in any::<i32>(),
        flags in any::<u16>(),
        headers in proptest::collection::vec(("[a-z-]{1,12}", "\\PC{0,20}"), 0..4),
        payload in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut theader = THeader::new(protocol, seqid);
        theader.flags = flags;
        for (key, value) in headers {
            theader.set(key, value);
        }
        let frame = theader.encode(&payload).unwrap();
        prop_assert_eq!((frame.len() - 14 - payload.len()) % 4, 0);
        let (parsed, offset) = THeader::parse(&frame).unwrap();
        prop_assert_eq!(parsed, theader);
        prop_assert_eq!(&frame[offset..], &payload[..]);
    }

    #[test]
    fn exception_replies_round_trip(
        protocol in any_protocol(),
        transport in any_transport(),
        seqid in any::<i32>(),
        code in any::<i32>(),
        message in "\\PC{0,40}",
        method in "[A-Za-z_]{0,16}",
    ) {
        let exception = ApplicationException::new(ExceptionKind::from_i32(code), message);
        let reply = exception.encode_reply(protocol, transport, &method, seqid).unwrap();
        let mut src = BytesMut::from(&reply[..]);
        let decoded = ThriftCodec::new().decode(&mut src).unwrap().unwrap();
        prop_assert!(src.is_empty());
        prop_assert_eq!(&decoded.header.name, &method);
        prop_assert_eq!(decoded.header.seqid, seqid);
        prop_assert_eq!(decoded.header.message_type, MessageType::Exception);
        prop_assert_eq!(decoded.exception().unwrap().unwrap(), exception);
    }
}

// === Random structs written by the `thrift` crate ===

/// splitmix64: a tiny deterministic generator driven by a proptest seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SCALARS: [TType; 7] = [
    TType::Bool,
    TType::I08,
    TType::I16,
    TType::I32,
    TType::I64,
    TType::Double,
    TType::String,
];

fn random_type(rng: &mut Rng, depth: u32) -> TType {
    if depth >= 4 || rng.below(3) > 0 {
        SCALARS[rng.below(SCALARS.len() as u64) as usize]
    } else {
        [TType::Struct, TType::List, TType::Set, TType::Map][rng.below(4) as usize]
    }
}

fn write_value(out: &mut dyn TOutputProtocol, rng: &mut Rng, ty: TType, depth: u32) {
    match ty {
        TType::Bool => out.write_bool(rng.below(2) == 0).unwrap(),
        TType::I08 => out.write_i8(rng.next() as i8).unwrap(),
        TType::I16 => out.write_i16(rng.next() as i16).unwrap(),
        TType::I32 => out.write_i32(rng.next() as i32 >> rng.below(32)).unwrap(),
        TType::I64 => out.write_i64(rng.next() as i64 >> rng.below(64)).unwrap(),
        TType::Double => out.write_double(f64::from_bits(rng.next())).unwrap(),
        TType::String => {
            let len = rng.below(20) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            out.write_bytes(&bytes).unwrap()
        }
        TType::Struct => write_struct(out, rng, depth + 1),
        TType::List | TType::Set => {
            let elem = random_type(rng, depth + 1);
            // Sizes above 14 use the compact long form.
            let size = if rng.below(5) == 0 {
                15 + rng.below(5)
            } else {
                rng.below(4)
            } as i32;
            if ty == TType::List {
                out.write_list_begin(&TListIdentifier::new(elem, size))
                    .unwrap();
            } else {
                out.write_set_begin(&TSetIdentifier::new(elem, size))
                    .unwrap();
            }
            for _ in 0..size {
                write_value(out, rng, elem, depth + 1);
            }
            if ty == TType::List {
                out.write_list_end().unwrap();
            } else {
                out.write_set_end().unwrap();
            }
        }
        TType::Map => {
            let key = random_type(rng, depth + 1);
            let value = random_type(rng, depth + 1);
            let size = rng.below(4) as i32;
            out.write_map_begin(&TMapIdentifier::new(key, value, size))
                .unwrap();
            for _ in 0..size {
                write_value(out, rng, key, depth + 1);
                write_value(out, rng, value, depth + 1);
            }
            out.write_map_end().unwrap();
        }
        other => unreachable!("{other:?}"),
    }
}

fn write_struct(out: &mut dyn TOutputProtocol, rng: &mut Rng, depth: u32) {
    out.write_struct_begin(&TStructIdentifier::new("s"))
        .unwrap();
    let mut id: i16 = 0;
    for _ in 0..rng.below(5) {
        // Mostly small deltas, sometimes a jump that needs the compact long form.
        id = id.wrapping_add(if rng.below(4) == 0 {
            100 + rng.below(1000) as i16
        } else {
            1 + rng.below(3) as i16
        });
        let ty = random_type(rng, depth);
        out.write_field_begin(&TFieldIdentifier::new("f", ty, id))
            .unwrap();
        write_value(out, rng, ty, depth);
        out.write_field_end().unwrap();
    }
    out.write_field_stop().unwrap();
    out.write_struct_end().unwrap();
}

fn oracle_message(
    protocol: Protocol,
    strict: bool,
    name: &str,
    kind: MessageType,
    seqid: i32,
    seed: u64,
) -> Vec<u8> {
    let mut bytes = vec![];
    {
        let mut out: Box<dyn TOutputProtocol + '_> = match protocol {
            Protocol::Binary => Box::new(TBinaryOutputProtocol::new(&mut bytes, strict)),
            Protocol::Compact => Box::new(TCompactOutputProtocol::new(&mut bytes)),
        };
        let message_type = match kind {
            MessageType::Call => TMessageType::Call,
            MessageType::Reply => TMessageType::Reply,
            MessageType::Exception => TMessageType::Exception,
            MessageType::Oneway => TMessageType::OneWay,
        };
        out.write_message_begin(&TMessageIdentifier::new(name, message_type, seqid))
            .unwrap();
        write_struct(out.as_mut(), &mut Rng(seed), 1);
        out.write_message_end().unwrap();
        out.flush().unwrap();
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn unframed_messages_from_the_thrift_crate_are_delimited(
        protocol in any_protocol(),
        strict in any::<bool>(),
        name in "([A-Za-z]{1,8}:)?[a-z_]{0,12}",
        kind in any_message_type(),
        seqid in any::<i32>(),
        seed in any::<u64>(),
        cut in any::<usize>(),
    ) {
        let bytes = oracle_message(protocol, strict, &name, kind, seqid, seed);
        prop_assert_eq!(message_len(&bytes, usize::MAX, 64).unwrap(), Some(bytes.len()));
        prop_assert_eq!(message_len(&bytes[..cut % bytes.len()], usize::MAX, 64).unwrap(), None);

        // Two messages back to back, fed in two arbitrary pieces.
        let mut stream = bytes.clone();
        stream.extend_from_slice(&bytes);
        let split = cut % stream.len();
        let mut codec = ThriftCodec::with_transport(Transport::Buffered);
        let mut src = BytesMut::from(&stream[..split]);
        let mut messages = vec![];
        while let Some(message) = codec.decode(&mut src).unwrap() {
            messages.push(message);
        }
        src.extend_from_slice(&stream[split..]);
        while let Some(message) = codec.decode(&mut src).unwrap() {
            messages.push(message);
        }
        prop_assert!(src.is_empty());
        prop_assert_eq!(messages.len(), 2);
        for message in &messages {
            prop_assert_eq!(&message.header.name, &name);
            prop_assert_eq!(message.header.seqid, seqid);
            prop_assert_eq!(message.header.message_type, kind);
            prop_assert_eq!(&message.frame[..], &bytes[..]);
        }
    }

    #[test]
    fn seqid_rewrites_round_trip(
        protocol in any_protocol(),
        transport in any_transport(),
        kind in any_message_type(),
        seqid in any::<i32>(),
        new_seqid in any::<i32>(),
        seed in any::<u64>(),
    ) {
        let message = oracle_message(protocol, true, "Svc:call", kind, seqid, seed);
        // Wrap the message body in the transport with our encoder, as a client would send it.
        let header = MessageHeader::parse(&message).unwrap();
        let frame = encode_message(protocol, transport, "Svc:call", kind, seqid, &message[header.len..]).unwrap();
        if transport == Transport::Buffered {
            prop_assert_eq!(&frame[..], &message[..], "our header encoder matches the thrift crate");
        }
        let mut bytes = frame.to_vec();
        let rewritten = match rewrite_seqid(&mut bytes, transport, new_seqid).unwrap() {
            SeqidRewrite::InPlace { old_seqid } => { prop_assert_eq!(old_seqid, seqid); bytes }
            SeqidRewrite::Resized { old_seqid, frame } => { prop_assert_eq!(old_seqid, seqid); frame.to_vec() }
        };
        let mut src = BytesMut::from(&rewritten[..]);
        let decoded = ThriftCodec::with_transport(transport).decode(&mut src).unwrap().unwrap();
        prop_assert!(src.is_empty());
        prop_assert_eq!(decoded.header.seqid, new_seqid);
        prop_assert_eq!(decoded.body(), &message[header.len..]);
        let mut back = rewritten.clone();
        let restored = match rewrite_seqid(&mut back, transport, seqid).unwrap() {
            SeqidRewrite::InPlace { .. } => back,
            SeqidRewrite::Resized { frame, .. } => frame.to_vec(),
        };
        prop_assert_eq!(&restored[..], &frame[..]);
    }
}
