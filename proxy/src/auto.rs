//! The `auto` listener: one port for every protocol, decided per connection from the first bytes
//! (`causeway_protocols::detect`: `da bb` Dubbo, Thrift framed/unframed/THeader headers, the
//! HTTP/2 preface, HTTP/1 methods).
//!
//! The bytes are *peeked*, not read, so the connection is handed to the protocol's own handler
//! untouched and that handler reads them again as if it had accepted the connection itself.
//! [`handler`] is the one place that maps a detected protocol to a handler. HTTP/1.x and the
//! HTTP/2 preface go to the `http` listener's handler (which serves HTTP/1.1 or h2c, gRPC
//! included, exactly as on its own port); bytes no protocol matches are closed and counted as
//! `unknown_protocol`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_protocols::detect::{Detected, Detection, MAX_DETECT_LEN, detect};
use tokio::net::{TcpListener, TcpStream};

use crate::dubbo::{self, DubboContext};
use crate::http::{self, HttpContext, ListenerKind};
use crate::metrics::{Direction, Metrics, Protocol, ProtocolErrorKind};
use crate::peek::{self, Verdict};
use crate::thrift::{self, ThriftContext};

/// How long a caller may take to send enough bytes for a verdict.
const DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What an `auto` listener can hand connections to.
#[derive(Debug, Clone)]
pub struct Handlers {
    /// The Dubbo data plane.
    pub dubbo: Arc<DubboContext>,
    /// The Thrift data plane.
    pub thrift: Arc<ThriftContext>,
    /// The host Thrift calls on this listener are bound to, if any.
    pub thrift_host: Option<Arc<str>>,
    /// The gRPC and HTTP data plane.
    pub http: Arc<HttpContext>,
    /// Metrics (for connections nobody can serve).
    pub metrics: Arc<Metrics>,
}

/// Accepts callers on `listener` until the task is dropped; each connection is detected and
/// served on its own task.
pub async fn serve(listener: TcpListener, handlers: Handlers) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, peer, handlers.clone()));
            }
            Err(error) => {
                tracing::warn!(%error, "auto accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Detects the protocol of one connection and hands it over.
async fn connection(stream: TcpStream, peer: SocketAddr, handlers: Handlers) {
    match tokio::time::timeout(DETECT_TIMEOUT, sniff(&stream)).await {
        Ok(Some(detected)) => handler(detected, stream, peer, &handlers).await,
        Ok(None) => {
            tracing::debug!(%peer, "closing a connection in no protocol the auto listener knows");
            unknown(&handlers.metrics);
        }
        // Slow or silent callers are closed without a count: nothing was malformed.
        Err(_) => tracing::debug!(%peer, "closing a connection that sent too little to detect"),
    }
}

/// The protocol of a connection, from peeked bytes; `None` when no protocol matches or the
/// caller closes before a verdict.
async fn sniff(stream: &TcpStream) -> Option<Detected> {
    peek::until::<_, MAX_DETECT_LEN>(stream, |bytes| match detect(bytes) {
        Detection::Detected(detected) => Verdict::Known(detected),
        Detection::Unknown => Verdict::Unknown,
        Detection::NeedMore => Verdict::NeedMore,
    })
    .await
}

/// Hands a detected connection to its protocol's handler.
async fn handler(detected: Detected, stream: TcpStream, peer: SocketAddr, handlers: &Handlers) {
    match detected {
        Detected::Dubbo => dubbo::inbound::connection(stream, peer, handlers.dubbo.clone()).await,
        Detected::Thrift { .. } => {
            thrift::inbound::connection(
                stream,
                peer,
                handlers.thrift.clone(),
                handlers.thrift_host.clone(),
            )
            .await;
        }
        Detected::Http2 | Detected::Http1 => {
            http::connection::serve(stream, peer, handlers.http.clone(), ListenerKind::Http).await;
        }
    }
}

fn unknown(metrics: &Metrics) {
    metrics.protocol_error(
        Protocol::Unknown,
        Direction::Downstream,
        ProtocolErrorKind::UnknownProtocol,
    );
}
