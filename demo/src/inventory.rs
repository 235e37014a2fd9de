//! The estate's Thrift service, written with `causeway-protocols`: `Inventory.stock(1: string
//! sku) -> string`, served over framed transport and the binary protocol as an Apache Thrift
//! `TThreadedServer` with a `TMultiplexedProcessor` would (callers name it `Inventory:stock`),
//! answering who it is, and a caller that keeps one call per connection at a time as Thrift
//! clients do, pointed at the local proxy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{BufMut as _, BytesMut};
use causeway_protocols::thrift::{
    ApplicationException, ExceptionKind, MessageType, Protocol, ThriftCodec, ThriftMessage,
    Transport, encode_message,
};
use futures::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::codec::Framed;

use crate::served::{CallError, Served};

/// The multiplexed service name callers use, and the name providers register.
pub const SERVICE: &str = "Inventory";
/// Its one method.
pub const METHOD: &str = "stock";
/// How long a caller waits for an answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Thrift field type ids of the binary protocol this module writes and reads.
const T_STOP: u8 = 0;
const T_STRING: u8 = 11;

/// A running Inventory provider; dropping it stops listening and closes its connections.
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
        let answer = Arc::<str>::from(Served::answer("in stock", version, zone));
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
        connections.spawn(serve(stream, answer.clone()));
    }
}

async fn serve(stream: TcpStream, answer: Arc<str>) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, ThriftCodec::with_transport(Transport::Framed));
    while let Some(Ok(call)) = framed.next().await {
        if call.header.message_type != MessageType::Call {
            continue;
        }
        let method = call.header.method().to_owned();
        let reply = if method == METHOD {
            let mut result = BytesMut::with_capacity(answer.len() + 8);
            put_string_field(&mut result, 0, &answer);
            result.put_u8(T_STOP);
            encode_message(
                Protocol::Binary,
                Transport::Framed,
                &method,
                MessageType::Reply,
                call.header.seqid,
                &result,
            )
        } else {
            ApplicationException::new(
                ExceptionKind::UnknownMethod,
                format!("Invalid method name: '{method}'"),
            )
            .reply_to(&call)
        };
        let Ok(reply) = reply else { break };
        if framed.send(reply).await.is_err() {
            break;
        }
    }
}

/// Appends a binary-protocol string field.
fn put_string_field(dst: &mut BytesMut, id: i16, value: &str) {
    dst.put_u8(T_STRING);
    dst.put_i16(id);
    // Demo strings are short; a length past i32 cannot occur.
    dst.put_i32(i32::try_from(value.len()).unwrap_or(i32::MAX));
    dst.put_slice(value.as_bytes());
}

/// Reads field 0 (the `success` string) of a binary result struct.
fn read_success(body: &[u8]) -> Option<String> {
    let (&field_type, rest) = body.split_first()?;
    let id = i16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
    if field_type != T_STRING || id != 0 {
        return None;
    }
    let len = i32::from_be_bytes(rest.get(2..6)?.try_into().ok()?);
    let text = rest.get(6..6 + usize::try_from(len).ok()?)?;
    String::from_utf8(text.to_vec()).ok()
}

type Connection = Framed<TcpStream, ThriftCodec>;

/// An Inventory caller: a small pool of connections, one call on each at a time.
#[derive(Debug, Clone)]
pub struct Client {
    target: SocketAddr,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl Client {
    /// A caller of `target` (the proxy's Thrift listener); connections open on demand.
    pub fn new(target: SocketAddr) -> Self {
        Self {
            target,
            idle: Arc::default(),
        }
    }

    /// Calls `Inventory:stock(sku)` and says who served it.
    pub async fn stock(&self, sku: &str) -> Result<Served, CallError> {
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut connection = match taken {
            Some(connection) => connection,
            None => {
                let stream = TcpStream::connect(self.target)
                    .await
                    .map_err(|e| CallError::NoAnswer(format!("connect: {e}")))?;
                let _ = stream.set_nodelay(true);
                Framed::new(stream, ThriftCodec::with_transport(Transport::Framed))
            }
        };
        let mut arguments = BytesMut::with_capacity(sku.len() + 8);
        put_string_field(&mut arguments, 1, sku);
        arguments.put_u8(T_STOP);
        let request = encode_message(
            Protocol::Binary,
            Transport::Framed,
            &format!("{SERVICE}:{METHOD}"),
            MessageType::Call,
            1,
            &arguments,
        )
        .map_err(|e| CallError::NoAnswer(format!("cannot encode: {e}")))?;
        connection
            .send(request)
            .await
            .map_err(|e| CallError::NoAnswer(format!("send: {e}")))?;
        let reply = tokio::time::timeout(CALL_TIMEOUT, connection.next())
            .await
            .map_err(|_| CallError::NoAnswer("timed out".into()))?
            .ok_or_else(|| CallError::NoAnswer("connection closed".into()))?
            .map_err(|e| CallError::NoAnswer(format!("undecodable answer: {e}")))?;
        let outcome = answer_of(&reply);
        // Only a connection that finished its call cleanly is used again.
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(connection);
        outcome
    }
}

fn answer_of(reply: &ThriftMessage) -> Result<Served, CallError> {
    if let Some(exception) = reply.exception() {
        let exception =
            exception.map_err(|e| CallError::NoAnswer(format!("undecodable exception: {e}")))?;
        return Err(CallError::Failed {
            code: format!("TApplicationException {}", exception.kind.name()),
            message: exception.message,
        });
    }
    let text = read_success(reply.body())
        .ok_or_else(|| CallError::NoAnswer("the reply has no result string".into()))?;
    Served::parse(&text).ok_or_else(|| CallError::NoAnswer(format!("unexpected answer `{text}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_caller_reads_who_served_it() {
        let provider = Provider::start("v2", "zone-b").await.unwrap();
        let client = Client::new(provider.addr);
        for _ in 0..3 {
            let served = client.stock("sku-1").await.unwrap();
            assert_eq!(
                (served.version.as_str(), served.zone.as_str()),
                ("v2", "zone-b")
            );
        }
        // One connection served all three calls.
        assert_eq!(client.idle.lock().unwrap().len(), 1);
    }

    #[test]
    fn result_strings_round_trip() {
        let mut body = BytesMut::new();
        put_string_field(&mut body, 0, "hello");
        body.put_u8(T_STOP);
        assert_eq!(read_success(&body).as_deref(), Some("hello"));
        assert_eq!(read_success(&body[..5]), None);
        let mut other = BytesMut::new();
        put_string_field(&mut other, 1, "hello");
        assert_eq!(read_success(&other), None);
    }
}
