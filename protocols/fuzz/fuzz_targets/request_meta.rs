//! Fuzzes the protocol-neutral request view: every constructor returns a result instead of
//! panicking, and what it reports agrees with the codec views it summarises (Dubbo attachments
//! as `RequestView::attachments` reads them, sizes adding up to the frame, Thrift seqids).
#![no_main]

use bytes::BytesMut;
use causeway_protocols::dubbo::{AttachmentValue, Frame, Header, Serialization};
use causeway_protocols::grpc::GrpcPath;
use causeway_protocols::meta::RequestMeta;
use causeway_protocols::thrift::ThriftMessage;
use libfuzzer_sys::fuzz_target;

fn check_dubbo(frame: &Frame) {
    let meta = RequestMeta::from_dubbo(frame);
    let view = frame.request();
    let attachments = view
        .as_ref()
        .ok()
        .map(|v| (v.attachments(), v.generic_method()));
    match (&meta, attachments) {
        (Ok(meta), Some((Ok(attachments), Ok(_)))) => {
            let strings: Vec<(&str, &str)> = attachments
                .iter()
                .filter_map(|(k, v)| match v {
                    AttachmentValue::Str(s) => Some((k, s.as_ref())),
                    _ => None,
                })
                .collect();
            assert_eq!(meta.attributes.iter().collect::<Vec<_>>(), strings);
            assert_eq!(meta.group.as_deref(), meta.attributes.get("group"));
            assert_eq!(meta.sizes.total(), frame.as_bytes().len() as u64);
            assert_eq!(meta.request_id, Some(frame.request_id()));
            assert_eq!(meta.one_way, !frame.header().is_two_way());
            let owned = meta.clone().into_owned();
            assert_eq!(&owned, meta);
        }
        (Err(_), Some((Ok(_), Ok(_)))) => panic!("meta fails where the view reads: {meta:?}"),
        (Ok(_), Some(_) | None) => panic!("meta reads where the view fails"),
        (Err(_), _) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // Whole Dubbo frames, and the input as the body of a two-way Hessian 2 request.
    if let Ok(frame) = Frame::from_bytes(BytesMut::from(data)) {
        check_dubbo(&frame);
    }
    if let Ok(frame) = Frame::from_parts(Header::request(1, Serialization::HESSIAN2, true), data) {
        check_dubbo(&frame);
    }

    if let Ok(message) = ThriftMessage::parse(data)
        && let Ok(meta) = RequestMeta::from_thrift(&message)
    {
        assert_eq!(meta.request_id, Some(i64::from(message.header.seqid)));
        assert_eq!(meta.sizes.total(), message.frame.len() as u64);
        assert_eq!(meta.method, message.header.method());
    }

    let text = String::from_utf8_lossy(data);
    let headers = http::HeaderMap::new();
    let meta = RequestMeta::from_grpc(&text, &headers);
    assert_eq!(meta.is_ok(), GrpcPath::parse(&text).is_ok());
    if let Ok(uri) = text.parse::<http::Uri>() {
        let meta = RequestMeta::from_http(&http::Method::GET, &uri, &headers);
        assert_eq!(meta.path.as_deref(), Some(uri.path()));
    }
});
