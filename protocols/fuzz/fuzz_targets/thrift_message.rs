//! Fuzzes the Thrift codec: transport detection, header parsing, the unframed skip-walk, THeader
//! parsing, seqid rewriting and exception replies. Beyond "never panic", every decoded message
//! must survive a seqid rewrite and yield a reply that decodes back.
#![no_main]

use bytes::BytesMut;
use causeway_protocols::thrift::{
    ApplicationException, ExceptionKind, MessageHeader, Protocol, SeqidRewrite, THeader,
    ThriftCodec, ThriftMessage, Transport, message_len, rewrite_seqid, skip_struct,
};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let _ = MessageHeader::parse(data);
    let _ = ThriftMessage::parse(data);
    let _ = MessageHeader::parse_prefix(data, 4096);
    let _ = message_len(data, 4096, 32);
    let _ = skip_struct(data, Protocol::Binary, 4096, 32);
    let _ = skip_struct(data, Protocol::Compact, 4096, 32);
    let _ = THeader::parse(data);

    for codec in [
        ThriftCodec::new(),
        ThriftCodec::with_transport(Transport::Buffered),
        ThriftCodec::with_transport(Transport::Framed),
    ] {
        let mut codec = codec.max_frame_size(4096).max_depth(32);
        let mut src = BytesMut::from(data);
        while let Ok(Some(message)) = codec.decode(&mut src) {
            check_message(message);
        }
    }
});

fn check_message(message: ThriftMessage) {
    let _ = message.exception();
    let seqid = message.header.seqid;
    let new_seqid = seqid.wrapping_mul(31).wrapping_add(1_000_003);
    let mut frame = message.frame.to_vec();
    let rewritten = match rewrite_seqid(&mut frame, message.transport, new_seqid) {
        Ok(SeqidRewrite::InPlace { old_seqid }) => {
            assert_eq!(old_seqid, seqid);
            frame
        }
        Ok(SeqidRewrite::Resized { old_seqid, frame }) => {
            assert_eq!(old_seqid, seqid);
            frame.to_vec()
        }
        Err(error) => panic!("a decoded message must be rewritable: {error}"),
    };
    let mut src = BytesMut::from(&rewritten[..]);
    let again = ThriftCodec::with_transport(message.transport)
        .max_frame_size(usize::MAX)
        .decode(&mut src);
    match again {
        Ok(Some(again)) => {
            assert_eq!(again.header.seqid, new_seqid);
            assert_eq!(again.header.name, message.header.name);
            assert_eq!(again.body(), message.body());
        }
        other => panic!("a rewritten message must decode: {other:?}"),
    }

    let exception = ApplicationException::new(ExceptionKind::InternalError, "fuzz");
    let reply = exception.reply_to(&message).expect("a reply can be built");
    let mut src = BytesMut::from(&reply[..]);
    let decoded = ThriftCodec::new()
        .max_frame_size(usize::MAX)
        .decode(&mut src)
        .expect("the reply decodes")
        .expect("the reply is complete");
    assert_eq!(decoded.header.seqid, seqid);
    assert_eq!(decoded.header.name, message.header.method());
    assert_eq!(
        decoded.exception().expect("exception").expect("body"),
        exception
    );
}
