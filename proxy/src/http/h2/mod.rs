//! The proxy's own HTTP/2 server for callers (h2c with prior knowledge, as gRPC and h2c HTTP
//! callers speak it): a connection costs a few hundred bytes while idle, so a thousand callers
//! fit where a general-purpose server's per-connection buffers would not (see
//! [`connection`] for how, docs/benchmarks.md for the figures).
//!
//! - [`frame`]: frame headers and payloads, read and written, with the RFC's error codes.
//! - [`hpack`]: HPACK decoding, with the connection's dynamic table.
//! - [`headers`]: decoded fields to a request head, and a stateless encoder for response heads
//!   and trailers.
//! - [`recv_body`]: a request body fed by the connection, crediting flow-control windows as its
//!   consumer takes data.
//! - [`connection`]: the single task that drives a connection and the requests on it.
//!
//! Providers are still reached through hyper's client; only the caller side is served here.

pub mod connection;
pub mod frame;
pub mod headers;
pub mod hpack;
pub mod recv_body;
#[cfg(test)]
mod tests;

use std::future::Future;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};

pub use frame::Reason;
pub use recv_body::RecvBody;

/// What the server announces and enforces.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Streams a caller may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: u32,
    /// Bytes a caller may send on a stream before the proxy has passed them on
    /// (`SETTINGS_INITIAL_WINDOW_SIZE`).
    pub stream_window: u32,
    /// The same for the whole connection.
    pub connection_window: u32,
    /// The largest request head (`SETTINGS_MAX_HEADER_LIST_SIZE`); larger ones get 431.
    pub max_header_list_size: u32,
}

impl Default for Settings {
    fn default() -> Self {
        // hyper's server defaults, so callers see the same limits as before.
        Self {
            max_concurrent_streams: 200,
            stream_window: 1024 * 1024,
            connection_window: 1024 * 1024,
            max_header_list_size: 16 * 1024,
        }
    }
}

/// Why a connection ended other than by the caller closing it.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Reading or writing the socket failed.
    #[error("caller connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The caller broke the protocol; it was sent a GOAWAY.
    #[error("caller broke HTTP/2: {0}")]
    Protocol(frame::Error),
}

/// A request body that ended abnormally: the caller reset the stream or went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the caller ended the request stream ({0})")]
pub struct StreamError(pub Reason);

/// Told about every error a caller causes (for metrics).
pub type Trouble = Box<dyn FnMut(&frame::Error) + Send>;

/// Serves one caller connection until it closes; `service` turns each request into its
/// response (every failure is a response), and runs as part of this connection's task.
pub async fn serve<I, S, F, B>(
    io: I,
    mut service: S,
    settings: Settings,
    trouble: Trouble,
) -> Result<(), ServeError>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: FnMut(Request<RecvBody>) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let tagged = move |id: u32, request: Request<RecvBody>| {
        // Boxed once where it is made: the request's state machine is a few KB, and the
        // wrappers below would otherwise copy it at every step into the stream set.
        let response = Box::pin(service(request));
        async move { (id, response.await) }
    };
    let mut connection = connection::Connection::new(io, tagged, settings, trouble);
    std::future::poll_fn(|cx| connection.poll_serve(cx)).await
}
