//! One caller connection of a `grpc` or `http` listener, served by the proxy's own HTTP/2
//! server ([`super::h2`]) or hyper's HTTP/1 server.
//!
//! hyper-util's `auto` connection would also tell HTTP/1.1 from h2c, but it reads the first
//! bytes through a rewinding wrapper every later read pays for, and its connection state holds
//! both protocols' machinery. A `grpc` listener speaks HTTP/2 only, so it needs no detection; an
//! `http` listener *peeks* at the first bytes (nothing is consumed) and hands the untouched
//! socket to the one server that speaks the caller's version.
//!
//! Memory per idle caller is what thousands of connections multiply: hyper's HTTP/1 server keeps
//! a box the size of the service's future for the connection's whole life, so the `http`
//! listener's service boxes its future and that box holds a pointer instead of the proxy's whole
//! request state machine (a request in flight allocates its future, an idle connection none).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use causeway_protocols::detect::HTTP2_PREFACE;
use futures::FutureExt as _;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::{CallerBody, ProxyBody};
use super::{HttpContext, ListenerKind, forward, h1_head, h2};
use crate::metrics::{Direction, Protocol, ProtocolErrorKind};
use crate::peek::{self, Verdict};

/// How long an `http` caller may take to send the bytes that tell HTTP/1.1 from h2c.
const DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP version a caller speaks, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// HTTP/1.x (anything that is not the HTTP/2 preface; hyper answers garbage with 400).
    Http1,
    /// h2c with prior knowledge.
    Http2,
}

/// The version `prefix` (the first bytes, as many as arrived) announces; `None` while the bytes
/// are a proper prefix of the HTTP/2 connection preface.
fn version_of(prefix: &[u8]) -> Option<Version> {
    let len = prefix.len().min(HTTP2_PREFACE.len());
    if prefix.get(..len) != HTTP2_PREFACE.get(..len) {
        Some(Version::Http1)
    } else if len == HTTP2_PREFACE.len() {
        Some(Version::Http2)
    } else {
        None
    }
}

/// Peeks at the first bytes until they tell the version; `None` when the caller closes first.
async fn sniff(stream: &TcpStream) -> Option<Version> {
    // Only a part of the preface leaves the version open.
    peek::until::<_, { HTTP2_PREFACE.len() }>(stream, |bytes| {
        version_of(bytes).map_or(Verdict::NeedMore, Verdict::Known)
    })
    .await
}

/// The boxed request future of an `http` listener's service (see the module docs).
type BoxedResponse = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

/// Serves one caller connection until it closes.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    context: Arc<HttpContext>,
    kind: ListenerKind,
) {
    let protocol = match kind {
        ListenerKind::Grpc => Protocol::Grpc,
        ListenerKind::Http => Protocol::Http,
    };
    let _active = context.metrics.connection(protocol, Direction::Downstream);
    let io = TokioIo::new(stream);
    let result = match kind {
        ListenerKind::Grpc => serve_http2(io.into_inner(), context, kind, protocol).await,
        ListenerKind::Http => {
            let version = tokio::time::timeout(DETECT_TIMEOUT, sniff(io.inner())).await;
            match version {
                Ok(Some(Version::Http1)) => {
                    // The head leaves hyper's read buffer before the server reads again, which
                    // then reads in place instead of into a new buffer (h1_head).
                    let service = service_fn(move |request: Request<Incoming>| -> BoxedResponse {
                        let request = h1_head::detached(request).map(CallerBody::Http1);
                        Box::pin(
                            forward::handle(request, context.clone(), kind)
                                .map(Ok::<_, Infallible>),
                        )
                    });
                    http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                        .map_err(|error| error.to_string())
                }
                Ok(Some(Version::Http2)) => {
                    // Boxed: otherwise every HTTP/1.1 caller's task is sized for this branch's
                    // connection state too (~1.2 KB each).
                    Box::pin(serve_http2(io.into_inner(), context, kind, protocol)).await
                }
                Ok(None) => return,
                Err(_) => {
                    tracing::debug!(%peer, "closing a connection that sent too little to serve");
                    return;
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "caller connection ended with an error");
    }
}

/// Serves an HTTP/2 caller with the proxy's own server; each request's future runs in the
/// connection's task, so it is not boxed (an `http` listener's HTTP/1 requests are, above).
async fn serve_http2(
    stream: TcpStream,
    context: Arc<HttpContext>,
    kind: ListenerKind,
    protocol: Protocol,
) -> Result<(), String> {
    let metrics = context.metrics.clone();
    let trouble: h2::Trouble = Box::new(move |error: &h2::frame::Error| {
        if let Some(kind) = trouble_kind(error) {
            metrics.protocol_error(protocol, Direction::Downstream, kind);
        }
    });
    // `map` rather than an `async` block, which would keep the request and context it was
    // given next to the future made of them.
    let service = move |request: Request<h2::RecvBody>| {
        forward::handle(request.map(CallerBody::Http2), context.clone(), kind)
    };
    h2::serve(stream, service, h2::Settings::default(), trouble)
        .await
        .map_err(|error| error.to_string())
}

/// The protocol-error metric's kind for an HTTP/2 error a caller caused, if it is one.
fn trouble_kind(error: &h2::frame::Error) -> Option<ProtocolErrorKind> {
    match error {
        h2::frame::Error::Connection { .. } => Some(ProtocolErrorKind::BadFrame),
        h2::frame::Error::Stream { reason, .. } => match *reason {
            // Too many streams at once is load, not bad input.
            h2::Reason::REFUSED_STREAM => None,
            // The server's own 431 for a request head over the limit.
            h2::Reason::NO_ERROR => Some(ProtocolErrorKind::FrameTooLarge),
            _ => Some(ProtocolErrorKind::BadRequest),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_is_http2_and_anything_else_http1() {
        assert_eq!(version_of(HTTP2_PREFACE), Some(Version::Http2));
        let mut more = HTTP2_PREFACE.to_vec();
        more.extend_from_slice(b"\x00\x00\x12\x04");
        assert_eq!(version_of(&more), Some(Version::Http2));
        assert_eq!(version_of(b"GET / HTTP/1.1\r\n"), Some(Version::Http1));
        assert_eq!(version_of(b"POST /"), Some(Version::Http1));
        assert_eq!(version_of(b"\x16\x03\x01"), Some(Version::Http1));
    }

    #[test]
    fn part_of_the_preface_needs_more() {
        assert_eq!(version_of(b"P"), None);
        assert_eq!(version_of(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(version_of(b"PRI * HTTP/1.1"), Some(Version::Http1));
    }
}
