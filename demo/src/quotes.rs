//! The estate's gRPC service: `causeway.demo.Quotes/Quote(QuoteRequest{1: symbol}) ->
//! QuoteReply{1: text}`, served over HTTP/2 (hyper) with standard gRPC framing and trailers,
//! answering who it is, and a caller multiplexing calls on one HTTP/2 connection to the local
//! proxy, as a gRPC channel does. The two messages have one string field each, so they are
//! written and read by hand rather than generated.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use causeway_protocols::grpc::{self, Code, Status};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::served::{CallError, Served};

/// The gRPC service name; providers register it as their interface.
pub const SERVICE: &str = "causeway.demo.Quotes";
/// Its one method.
pub const METHOD: &str = "Quote";
/// How long a caller waits for an answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

type Frames = futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>;
type ReplyBody = StreamBody<Frames>;

/// A running Quotes provider; dropping it stops listening and closes its connections.
#[derive(Debug)]
pub struct Provider {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Provider {
    /// Starts a provider of `version` in `zone` on a free loopback port.
    pub async fn start(version: &str, zone: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let answer = Arc::<str>::from(Served::answer("quote 42.00", version, zone));
        let task = tokio::spawn(accept(listener, answer));
        Ok(Self { addr, task })
    }
}

async fn accept(listener: TcpListener, answer: Arc<str>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let answer = answer.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = answer.clone();
                async move { Ok::<_, Infallible>(respond(request, &answer).await) }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(request: Request<Incoming>, answer: &str) -> Response<ReplyBody> {
    let expected = format!("/{SERVICE}/{METHOD}");
    if request.uri().path() != expected {
        let status = Status::new(
            Code::Unimplemented,
            format!("unknown method {}", request.uri().path()),
        );
        return with_frames(Vec::new(), status.to_headers());
    }
    // The request's symbol does not change the answer; reading the body is what a server does.
    let _ = request.into_body().collect().await;
    let mut message = BytesMut::new();
    put_string_field(&mut message, 1, answer);
    let mut frame = BytesMut::new();
    if grpc::encode_frame(false, &message, &mut frame).is_err() {
        let status = Status::new(Code::Internal, "cannot frame the reply");
        return with_frames(Vec::new(), status.to_headers());
    }
    let trailers = Status::new(Code::Ok, "").to_headers();
    with_frames(vec![Ok(Frame::data(frame.freeze()))], trailers)
}

/// A gRPC response: `data` then `trailers` (which carry the status).
fn with_frames(
    mut data: Vec<Result<Frame<Bytes>, Infallible>>,
    trailers: hyper::HeaderMap,
) -> Response<ReplyBody> {
    data.push(Ok(Frame::trailers(trailers)));
    let mut response = Response::new(StreamBody::new(futures::stream::iter(data)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// Appends a protobuf length-delimited (string) field.
fn put_string_field(dst: &mut BytesMut, field: u32, value: &str) {
    put_varint(dst, u64::from(field << 3 | 2));
    put_varint(dst, value.len() as u64);
    dst.put_slice(value.as_bytes());
}

fn put_varint(dst: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        dst.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    dst.put_u8(value as u8);
}

/// Reads a varint at the start of `src`: the value and its length.
fn read_varint(src: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (at, byte) in src.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * at);
        if byte & 0x80 == 0 {
            return Some((value, at + 1));
        }
    }
    None
}

/// Reads the first field of a message when it is string field `field`.
fn read_string_field(message: &[u8], field: u32) -> Option<String> {
    let (key, at) = read_varint(message)?;
    if key != u64::from(field << 3 | 2) {
        return None;
    }
    let (len, len_size) = read_varint(message.get(at..)?)?;
    let start = at + len_size;
    let text = message.get(start..start + usize::try_from(len).ok()?)?;
    String::from_utf8(text.to_vec()).ok()
}

/// A Quotes caller: one HTTP/2 connection, calls multiplexed on it.
#[derive(Debug, Clone)]
pub struct Client {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    authority: String,
}

impl Client {
    /// Connects to `target` (the proxy's gRPC listener); calls name `authority` (the mesh host
    /// and port, as a channel to `dns:///host:port` does).
    pub async fn connect(target: SocketAddr, authority: &str) -> Result<Self, CallError> {
        let stream = TcpStream::connect(target)
            .await
            .map_err(|e| CallError::NoAnswer(format!("connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| CallError::NoAnswer(format!("HTTP/2 handshake: {e}")))?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            authority: authority.to_owned(),
        })
    }

    /// Calls `Quote(symbol)` with `headers` (gRPC metadata) and says who served it.
    pub async fn quote(&self, symbol: &str, headers: &[(&str, &str)]) -> Result<Served, CallError> {
        tokio::time::timeout(CALL_TIMEOUT, self.call(symbol, headers))
            .await
            .map_err(|_| CallError::NoAnswer("timed out".into()))?
    }

    async fn call(&self, symbol: &str, headers: &[(&str, &str)]) -> Result<Served, CallError> {
        let mut message = BytesMut::new();
        put_string_field(&mut message, 1, symbol);
        let mut frame = BytesMut::new();
        grpc::encode_frame(false, &message, &mut frame)
            .map_err(|e| CallError::NoAnswer(format!("cannot frame: {e}")))?;
        let mut builder = Request::post(format!("http://{}/{SERVICE}/{METHOD}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(frame.freeze()))
            .map_err(|e| CallError::NoAnswer(format!("cannot build the request: {e}")))?;
        let mut sender = self.sender.clone();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| CallError::NoAnswer(format!("send: {e}")))?;
        let (parts, body) = response.into_parts();
        if parts.status != hyper::StatusCode::OK {
            return Err(CallError::Failed {
                code: format!("HTTP {}", parts.status.as_u16()),
                message: "not a gRPC answer".into(),
            });
        }
        // Trailers-Only answers carry the status in the headers.
        if let Some(status) = Status::from_headers(&parts.headers) {
            return Err(failed(&status));
        }
        let collected = body
            .collect()
            .await
            .map_err(|e| CallError::NoAnswer(format!("read: {e}")))?;
        let status = collected
            .trailers()
            .and_then(Status::from_headers)
            .ok_or_else(|| CallError::NoAnswer("no grpc-status trailer".into()))?;
        if status.code != Code::Ok {
            return Err(failed(&status));
        }
        let data = collected.to_bytes();
        let message = data
            .get(5..)
            .ok_or_else(|| CallError::NoAnswer("no reply message".into()))?;
        let text = read_string_field(message, 1)
            .ok_or_else(|| CallError::NoAnswer("the reply has no text".into()))?;
        Served::parse(&text)
            .ok_or_else(|| CallError::NoAnswer(format!("unexpected answer `{text}`")))
    }
}

fn failed(status: &Status) -> CallError {
    CallError::Failed {
        code: status.code.name().to_owned(),
        message: status.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_caller_reads_who_served_it() {
        let provider = Provider::start("v1", "zone-a").await.unwrap();
        let client = Client::connect(provider.addr, "quotes:50051")
            .await
            .unwrap();
        let served = client.quote("ACME", &[("x-canary", "true")]).await.unwrap();
        assert_eq!(
            (served.version.as_str(), served.zone.as_str()),
            ("v1", "zone-a")
        );
    }

    #[test]
    fn string_fields_round_trip_with_long_values() {
        let long = "x".repeat(300);
        let mut message = BytesMut::new();
        put_string_field(&mut message, 1, &long);
        assert_eq!(
            read_string_field(&message, 1).as_deref(),
            Some(long.as_str())
        );
        assert_eq!(read_string_field(&message, 2), None);
        assert_eq!(read_string_field(&message[..10], 1), None);
    }
}
