//! The server against another implementation: hyper's HTTP/2 client (the `h2` crate) for
//! streaming, flow control, concurrency and cancellation, and raw frames for the errors a
//! well-behaved client never makes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::frame::{self, Head, Reason, flag, kind};
use super::{RecvBody, Settings, Trouble, serve};

type Troubles = Arc<AtomicUsize>;

/// Serves every connection of a fresh listener with `service`; returns its address and a count
/// of the errors callers caused.
async fn server<S, F, B>(service: S) -> (std::net::SocketAddr, Troubles)
where
    S: FnMut(Request<RecvBody>) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: std::fmt::Display,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let troubles = Troubles::default();
    let counted = troubles.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let counted = counted.clone();
            let trouble: Trouble = Box::new(move |_| {
                counted.fetch_add(1, Ordering::Relaxed);
            });
            tokio::spawn(serve(stream, service.clone(), Settings::default(), trouble));
        }
    });
    (address, troubles)
}

/// Answers with the request's own body (and trailers), streamed back as it arrives.
async fn echo(request: Request<RecvBody>) -> Response<RecvBody> {
    Response::new(request.into_body())
}

async fn client(
    address: std::net::SocketAddr,
) -> http2::SendRequest<http_body_util::combinators::BoxBody<Bytes, std::io::Error>> {
    let stream = TcpStream::connect(address).await.unwrap();
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

fn post(
    body: http_body_util::combinators::BoxBody<Bytes, std::io::Error>,
) -> Request<http_body_util::combinators::BoxBody<Bytes, std::io::Error>> {
    Request::post("http://svc.test/pkg.Echo/Echo")
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn a_large_body_streams_both_ways_under_flow_control() {
    let (address, troubles) = server(echo).await;
    let mut sender = client(address).await;
    // 6 MiB in 64 KiB chunks: six times both sides' windows, so it only gets through if
    // WINDOW_UPDATEs flow both ways while the echo is running.
    let chunks = (0..96u8).map(|i| Ok(http_body::Frame::data(Bytes::from(vec![i; 64 * 1024]))));
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames = futures::stream::iter(chunks).chain(futures::stream::once(async move {
        Ok(http_body::Frame::trailers(trailers))
    }));
    let body = BodyExt::boxed(StreamBody::new(frames));
    let response = sender.send_request(post(body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    let bytes = collected.to_bytes();
    assert_eq!(bytes.len(), 96 * 64 * 1024);
    assert!(
        bytes
            .chunks(64 * 1024)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| usize::from(b) == i))
    );
    assert_eq!(troubles.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn many_concurrent_streams_on_one_connection_all_answer() {
    let (address, _) = server(|request: Request<RecvBody>| async move {
        let path = request.uri().path().to_owned();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        tokio::time::sleep(Duration::from_millis(20)).await;
        Response::new(Full::new(Bytes::from(format!("{path}:{}", body.len()))))
    })
    .await;
    let sender = client(address).await;
    let calls = (0..150).map(|i| {
        let mut sender = sender.clone();
        async move {
            let request = Request::post(format!("http://svc.test/call/{i}"))
                .body(
                    Full::new(Bytes::from(vec![b'x'; i]))
                        .map_err(|e| match e {})
                        .boxed(),
                )
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let text = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(text, format!("/call/{i}:{i}"));
        }
    });
    futures::future::join_all(calls).await;
}

#[tokio::test]
async fn a_cancelled_call_drops_its_request_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let (address, _) = server(move |_request: Request<RecvBody>| {
        struct Guard(Arc<AtomicBool>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let guard = Guard(flag.clone());
        async move {
            let _guard = guard;
            futures::future::pending::<()>().await;
            Response::new(Full::new(Bytes::new()))
        }
    })
    .await;
    let mut sender = client(address).await;
    let call = sender.send_request(post(
        Full::new(Bytes::from_static(b"hi"))
            .map_err(|e| match e {})
            .boxed(),
    ));
    // The caller gives up: hyper resets the stream, and the server must drop the request.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), call)
            .await
            .is_err()
    );
    for _ in 0..100 {
        if dropped.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the cancelled request's future was not dropped");
}

/// Raw frames, for what hyper's client never sends.
struct Raw {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Raw {
    async fn connect(address: std::net::SocketAddr, preface: &[u8]) -> Self {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(preface).await.unwrap();
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    async fn handshake(address: std::net::SocketAddr) -> Self {
        let mut raw = Self::connect(address, frame::PREFACE).await;
        let mut settings = Vec::new();
        frame::put_settings(&mut settings, &[]);
        raw.send(&settings).await;
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame, or `None` when the server closed.
    async fn frame(&mut self) -> Option<(Head, Vec<u8>)> {
        loop {
            if self.buffer.len() >= 9 {
                let head = Head::parse(self.buffer[..9].try_into().unwrap());
                let end = 9 + head.len as usize;
                if self.buffer.len() >= end {
                    let payload = self.buffer[9..end].to_vec();
                    self.buffer.drain(..end);
                    return Some((head, payload));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
                .await
                .expect("the server answers")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// Frames until one of `kind` on `stream`.
    async fn until(&mut self, kind: u8, stream: u32) -> Option<(Head, Vec<u8>)> {
        while let Some((head, payload)) = self.frame().await {
            if head.kind == kind && head.stream == stream {
                return Some((head, payload));
            }
        }
        None
    }
}

/// A request head as literal fields (no Huffman, no indexing).
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        out.push(u8::try_from(name.len()).unwrap());
        out.extend_from_slice(name.as_bytes());
        out.push(u8::try_from(value.len()).unwrap());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

const GET: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/ok"),
    (":authority", "svc.test"),
];

async fn ok(_request: Request<RecvBody>) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(b"fine")))
}

#[tokio::test]
async fn a_bad_preface_gets_goaway_protocol_error() {
    let (address, troubles) = server(ok).await;
    let mut raw = Raw::connect(address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (_, payload) = raw.until(kind::GOAWAY, 0).await.expect("a GOAWAY");
    assert_eq!(payload[4..8], Reason::PROTOCOL_ERROR.0.to_be_bytes());
    assert!(raw.frame().await.is_none(), "then the connection closes");
    assert_eq!(troubles.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_malformed_request_resets_its_stream_and_the_connection_goes_on() {
    let (address, troubles) = server(ok).await;
    let mut raw = Raw::handshake(address).await;
    let mut bytes = Vec::new();
    let mut upper = GET.to_vec();
    upper.push(("X-Upper", "1"));
    frame::put_header_block(&mut bytes, 1, &block(&upper), true, 16_384);
    frame::put_header_block(&mut bytes, 3, &block(GET), true, 16_384);
    raw.send(&bytes).await;
    let (_, reset) = raw
        .until(kind::RST_STREAM, 1)
        .await
        .expect("stream 1 reset");
    assert_eq!(reset, Reason::PROTOCOL_ERROR.0.to_be_bytes());
    let (head, data) = raw.until(kind::DATA, 3).await.expect("stream 3 answered");
    assert_eq!(data, b"fine");
    assert!(head.has(flag::END_STREAM));
    assert_eq!(troubles.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_oversized_head_is_answered_431_and_pings_are_answered() {
    let (address, troubles) = server(ok).await;
    let mut raw = Raw::handshake(address).await;
    let mut bytes = Vec::new();
    let long = "v".repeat(200);
    let big = {
        // Lengths above 127 need the multi-byte integer form: build it by hand.
        let mut out = block(GET);
        for _ in 0..100 {
            out.extend_from_slice(&[0x00, 6]);
            out.extend_from_slice(b"x-long");
            out.extend_from_slice(&[0x7f, 200 - 127]);
            out.extend_from_slice(long.as_bytes());
        }
        out
    };
    frame::put_header_block(&mut bytes, 1, &big, true, 16_384);
    frame::put_head(&mut bytes, 8, kind::PING, 0, 0);
    bytes.extend_from_slice(b"12345678");
    raw.send(&bytes).await;
    let (head, block) = raw.until(kind::HEADERS, 1).await.expect("an answer");
    assert!(head.has(flag::END_STREAM));
    let mut status = Vec::new();
    super::hpack::Decoder::new(4096)
        .decode(&block, |name, value| {
            if name == b":status" {
                status = value.to_vec();
            }
        })
        .unwrap();
    assert_eq!(status, b"431");
    let (ping, data) = raw.until(kind::PING, 0).await.expect("a PING answer");
    assert!(ping.has(flag::ACK));
    assert_eq!(data, b"12345678");
    assert_eq!(troubles.load(Ordering::Relaxed), 1);
}

/// Opens stream 1 with a POST and sends `frames` DATA frames of 16 KiB on it.
async fn post_frames(address: std::net::SocketAddr, frames: usize) -> Raw {
    let mut raw = Raw::handshake(address).await;
    let mut head = GET.to_vec();
    head[0] = (":method", "POST");
    let mut bytes = Vec::new();
    frame::put_header_block(&mut bytes, 1, &block(&head), false, 16_384);
    raw.send(&bytes).await;
    let chunk = vec![0u8; 16_384];
    for _ in 0..frames {
        let mut data = Vec::new();
        frame::put_data(&mut data, 1, &chunk, false);
        raw.send(&data).await;
    }
    raw
}

#[tokio::test]
async fn data_beyond_the_window_is_a_flow_control_error() {
    let (address, _) = server(|request: Request<RecvBody>| async move {
        // Never reads the body, so nothing is credited back.
        futures::future::pending::<()>().await;
        drop(request);
        Response::new(Full::new(Bytes::new()))
    })
    .await;
    // The stream window is 1 MiB: 65 frames of 16 KiB overrun it.
    let mut raw = post_frames(address, 65).await;
    // The stream's and the connection's windows run out together: either error is right.
    let code = loop {
        let (head, payload) = raw.frame().await.expect("an error frame");
        match head.kind {
            kind::RST_STREAM => break payload[..4].to_vec(),
            kind::GOAWAY => break payload[4..8].to_vec(),
            _ => {}
        }
    };
    assert_eq!(code, Reason::FLOW_CONTROL_ERROR.0.to_be_bytes());
}

/// One frame of arbitrary type, flags, stream and payload.
fn arbitrary_frame() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    (
        0u8..12,
        any::<u8>(),
        prop_oneof![Just(0u32), 1u32..8, any::<u32>()],
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(kind, flags, stream, payload)| {
            let mut out = Vec::new();
            frame::put_head(&mut out, payload.len(), kind, flags, stream);
            out.extend_from_slice(&payload);
            out
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever frames follow a proper opening, the server neither panics nor hangs: it
    /// answers, fails the connection with GOAWAY, or waits for more until the caller closes.
    #[test]
    fn arbitrary_frames_never_panic_or_hang(
        frames in proptest::collection::vec(arbitrary_frame(), 0..24),
        with_request in proptest::bool::ANY,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let (client, server_side) = tokio::io::duplex(64 * 1024);
            let trouble: Trouble = Box::new(|_| {});
            let served = tokio::spawn(serve(server_side, ok, Settings::default(), trouble));
            let (mut reader, mut writer) = tokio::io::split(client);
            let mut bytes = frame::PREFACE.to_vec();
            frame::put_settings(&mut bytes, &[]);
            if with_request {
                frame::put_header_block(&mut bytes, 1, &block(GET), false, 16_384);
            }
            for frame in frames {
                bytes.extend_from_slice(&frame);
            }
            // The server's answers are drained so it never waits on a full pipe.
            let drain = tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink).await;
            });
            let _ = writer.write_all(&bytes).await;
            let _ = writer.shutdown().await;
            drop(writer);
            let ended = tokio::time::timeout(Duration::from_secs(5), served).await;
            assert!(ended.is_ok(), "the connection did not end after the caller closed");
            assert!(ended.unwrap().is_ok(), "the connection task panicked");
            drain.abort();
        });
    }
}

#[tokio::test]
async fn a_caller_cannot_send_past_what_a_slow_consumer_took() {
    // The service reads 100 KiB of the body, then stops: the stream's window (1 MiB) must not
    // be reopened beyond what was taken, so the caller stalls instead of filling memory.
    let (address, _) = server(|request: Request<RecvBody>| async move {
        let mut body = request.into_body();
        let mut taken = 0;
        while taken < 100 * 1024 {
            match body.frame().await {
                Some(Ok(frame)) => taken += frame.into_data().map_or(0, |d| d.len()),
                _ => break,
            }
        }
        futures::future::pending::<()>().await;
        Response::new(Full::new(Bytes::new()))
    })
    .await;
    // Exactly the initial window, 64 frames of 16 KiB: allowed.
    let mut raw = post_frames(address, 64).await;
    // Whatever WINDOW_UPDATEs come for stream 1 may add up to no more than was consumed.
    let mut credited = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some((head, payload))) = tokio::time::timeout_at(deadline, raw.frame()).await {
        if head.kind == kind::WINDOW_UPDATE && head.stream == 1 {
            credited += u64::from(u32::from_be_bytes(payload[..4].try_into().unwrap()));
        }
    }
    assert!(credited <= 100 * 1024 + 16_384, "credited {credited} bytes");
}
