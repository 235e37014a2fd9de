//! One caller connection of a `grpc` or `http` listener, served by hyper's HTTP/2 or HTTP/1
//! server directly.
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
use hyper::server::conn::{http1, http2};
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::body::ProxyBody;
use super::{HttpContext, ListenerKind, forward, h1_head};
use crate::metrics::{Direction, Protocol};
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
        ListenerKind::Grpc => {
            // Every HTTP/2 stream is a task of its own holding its future, so boxing it would
            // only add an allocation per request; `map` rather than an `async` block, which
            // would keep the request and context it was given next to the future made of them.
            let service = service_fn(move |request: Request<Incoming>| {
                forward::handle(request, context.clone(), kind).map(Ok::<_, Infallible>)
            });
            http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await
        }
        ListenerKind::Http => {
            let version = tokio::time::timeout(DETECT_TIMEOUT, sniff(io.inner())).await;
            let service = service_fn(move |request: Request<Incoming>| -> BoxedResponse {
                Box::pin(forward::handle(request, context.clone(), kind).map(Ok::<_, Infallible>))
            });
            match version {
                Ok(Some(Version::Http1)) => {
                    // The head leaves hyper's read buffer before the server reads again, which
                    // then reads in place instead of into a new buffer (h1_head).
                    let service =
                        service_fn(move |request| service.call(h1_head::detached(request)));
                    http1::Builder::new().serve_connection(io, service).await
                }
                Ok(Some(Version::Http2)) => {
                    http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await
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
