//! Fuzzes gRPC message framing (decoded in arbitrary pieces, re-encoded to the same bytes) and
//! the string helpers (paths, grpc-message, grpc-timeout, grpc-status).
#![no_main]

use bytes::BytesMut;
use causeway_protocols::grpc::{
    Code, GrpcCodec, GrpcFrame, GrpcPath, decode_grpc_message, encode_grpc_message,
    parse_grpc_timeout,
};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let mut codec = GrpcCodec::new().max_message_size(1024);
    // Two pieces, as DATA frames split messages arbitrarily.
    let split = usize::from(split).min(data.len());
    let mut src = BytesMut::from(&data[..split]);
    let mut frames = vec![];
    let mut failed = !drain(&mut codec, &mut src, &mut frames);
    if !failed {
        src.extend_from_slice(&data[split..]);
        failed = !drain(&mut codec, &mut src, &mut frames);
    }
    if !failed {
        // Re-encoding what was decoded gives back the consumed bytes.
        let mut wire = BytesMut::new();
        for frame in frames {
            codec
                .encode(frame, &mut wire)
                .expect("decoded frames re-encode");
        }
        let consumed = data.len() - src.len();
        assert_eq!(&wire[..], &data[..consumed]);
    }

    let text = String::from_utf8_lossy(data);
    if let Ok(path) = GrpcPath::parse(&text) {
        assert_eq!(path.to_string(), text);
    }
    let _ = parse_grpc_timeout(&text);
    let _ = Code::from_header_value(data);
    let decoded = decode_grpc_message(data);
    assert_eq!(
        decode_grpc_message(encode_grpc_message(&decoded).as_bytes()),
        decoded
    );
});

/// Decodes until more bytes are needed (`true`) or an error (`false`).
fn drain(codec: &mut GrpcCodec, src: &mut BytesMut, frames: &mut Vec<GrpcFrame>) -> bool {
    loop {
        match codec.decode(src) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}
