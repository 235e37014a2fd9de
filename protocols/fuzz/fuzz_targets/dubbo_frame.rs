//! Fuzzes Dubbo framing and body views: the codec, fed in pieces, never panics and yields the
//! same frames whatever the chunking; every view and rewrite on any frame (and on the input as a
//! Hessian 2 request or response body) returns a result instead of panicking, and a successful
//! attachment insertion leaves a request whose attachments end with the new entry.
#![no_main]

use bytes::BytesMut;
use causeway_protocols::dubbo::{self, DubboCodec, Frame, Header, Serialization, Status};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder as _;

fn use_frame(frame: &Frame) {
    let _ = frame.is_heartbeat();
    let _ = frame.event_kind();
    let _ = frame.event_data();
    if let Ok(view) = frame.request() {
        let _ = view.argument_count();
        let _ = view.generic_method();
        let _ = view.arguments();
        let _ = view.attachments();
    }
    if let Ok(view) = frame.response() {
        let _ = view.value();
        let _ = view.exception();
        let _ = view.attachments();
    }
    let readable = frame.request().and_then(|v| v.attachments()).is_ok();
    let mut copy = frame.clone();
    if copy
        .add_attachments(&[("traceparent", "00-fuzz-01")])
        .is_ok()
        && readable
    {
        let view = copy.request().expect("still a request");
        let attachments = view
            .attachments()
            .expect("attachments readable after insertion");
        assert_eq!(attachments.get_str("traceparent"), Some("00-fuzz-01"));
        assert_eq!(copy.header().body_len as usize, copy.body().len());
    }
    copy.set_request_id(7);
    assert_eq!(copy.request_id(), 7);
    let _ = dubbo::heartbeat_reply(frame.header());
    let _ = dubbo::error_response(frame.header(), Status::BAD_REQUEST, "fuzz");
}

fn frames(data: &[u8], chunk: usize) -> Vec<Frame> {
    let mut codec = DubboCodec::with_max_body_len(1 << 16);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => out.push(frame),
                Ok(None) => break,
                Err(_) => return out,
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let whole = frames(rest, rest.len().max(1));
    let pieces = frames(rest, usize::from(chunk % 17) + 1);
    assert_eq!(whole, pieces, "chunking changed the frames");
    for frame in &whole {
        use_frame(frame);
    }
    // The input as the body of a Hessian 2 request and of a response.
    for header in [
        Header::request(1, Serialization::HESSIAN2, true),
        Header::response(1, Serialization::HESSIAN2, Status::OK),
        Header::response(1, Serialization::HESSIAN2, Status::SERVICE_NOT_FOUND),
    ] {
        if let Ok(frame) = Frame::from_parts(header, rest) {
            use_frame(&frame);
        }
    }
});
