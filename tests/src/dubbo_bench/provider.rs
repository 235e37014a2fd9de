//! A fixed-response Dubbo provider for benchmarks (and tests: [`serve_counted`] counts what it
//! receives, [`serve_silent`] never answers, [`serve_exhausted`] always refuses): every two-way request gets the same
//! pre-encoded OK response (a 1 KiB Hessian string by default) with the request's id; heartbeats
//! get heartbeat replies; everything else is ignored.
//!
//! It is built to stay out of the measurement: frames are cut with [`DubboCodec`] without
//! decoding bodies, and all the answers to one read go out in one write, so a pipelining caller
//! costs one `read` and one `write` per batch rather than per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use causeway_protocols::dubbo::{DubboCodec, Status, error_response, heartbeat_reply};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder as _;

use super::Template;

/// Serves callers on `listener` until the task is dropped; one task per connection.
pub async fn serve(listener: TcpListener, response: Arc<Template>) {
    serve_counted(listener, response, Arc::default()).await;
}

/// [`serve`], adding every request received (two-way or one-way, heartbeats not) to `served`: a
/// test's view of what reached this provider.
pub async fn serve_counted(listener: TcpListener, response: Arc<Template>, served: Arc<AtomicU64>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, response.clone(), served.clone()));
            }
            Err(error) => {
                // Out of file descriptors (the RSS phase opens a thousand connections): back off.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// A provider that hangs: it reads and counts requests (in `served`) and never answers, as a
/// provider whose threads are all stuck does.
pub async fn serve_silent(listener: TcpListener, served: Arc<AtomicU64>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let served = served.clone();
        tokio::spawn(async move {
            let mut codec = DubboCodec::new();
            let mut input = BytesMut::with_capacity(16 * 1024);
            while let Ok(n) = stream.read_buf(&mut input).await {
                if n == 0 {
                    return;
                }
                while let Ok(Some(frame)) = codec.decode(&mut input) {
                    if frame.header().is_request() && !frame.header().is_event() {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
}

/// A provider whose thread pool is always full: it counts requests (in `served`) and answers
/// every two-way one with status 100 SERVER_THREADPOOL_EXHAUSTED, as Apache Dubbo does when
/// its pool rejects a request.
pub async fn serve_exhausted(listener: TcpListener, served: Arc<AtomicU64>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let served = served.clone();
        tokio::spawn(async move {
            let mut codec = DubboCodec::new();
            let mut input = BytesMut::with_capacity(16 * 1024);
            while let Ok(n) = stream.read_buf(&mut input).await {
                if n == 0 {
                    return;
                }
                let mut output = Vec::new();
                while let Ok(Some(frame)) = codec.decode(&mut input) {
                    let header = frame.header();
                    if !header.is_request() || header.is_event() {
                        continue;
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                    if header.is_two_way()
                        && let Ok(reply) = error_response(
                            header,
                            Status::SERVER_THREADPOOL_EXHAUSTED,
                            "Thread pool is EXHAUSTED!",
                        )
                    {
                        output.extend_from_slice(reply.as_bytes());
                    }
                }
                if stream.write_all(&output).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn connection(mut stream: TcpStream, response: Arc<Template>, served: Arc<AtomicU64>) {
    let mut codec = DubboCodec::new();
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = Vec::with_capacity(16 * 1024);
    loop {
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            let frame = match codec.decode(&mut input) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(%error, "closing a connection that does not speak dubbo");
                    return;
                }
            };
            let header = frame.header();
            if header.is_request() && !header.is_event() {
                served.fetch_add(1, Ordering::Relaxed);
            }
            if !header.is_request() || !header.is_two_way() {
                continue;
            }
            if header.is_event() {
                if frame.is_heartbeat()
                    && let Ok(reply) = heartbeat_reply(header)
                {
                    output.extend_from_slice(reply.as_bytes());
                }
                continue;
            }
            response.put(header.request_id, &mut output);
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        // Keep a read buffer that grew for one large burst from pinning memory per connection.
        if input.is_empty() && input.capacity() > 256 * 1024 {
            input = BytesMut::with_capacity(16 * 1024);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dubbo_bench::frames;
    use causeway_protocols::dubbo::{Serialization, heartbeat_request};

    #[tokio::test]
    async fn answers_pipelined_requests_and_heartbeats() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let response = Arc::new(Template::response(1024).unwrap());
        tokio::spawn(serve(listener, response.clone()));

        let mut stream = TcpStream::connect(address).await.unwrap();
        let request = Template::request(1024).unwrap();
        let mut out = Vec::new();
        for id in 1..=3 {
            request.put(id, &mut out);
        }
        out.extend_from_slice(
            heartbeat_request(9, Serialization::HESSIAN2)
                .unwrap()
                .as_bytes(),
        );
        stream.write_all(&out).await.unwrap();

        let mut seen = Vec::new();
        let mut buf = Vec::new();
        while seen.len() < 4 {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
            let used = frames(&buf, |h| seen.push((h.request_id, h.is_event()))).unwrap();
            buf.drain(..used);
        }
        assert_eq!(seen, [(1, false), (2, false), (3, false), (9, true)]);
    }
}
