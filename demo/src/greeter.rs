//! The demo's Dubbo application, written with `causeway-protocols`: a `GreetingService` provider
//! that answers `greet`, `place`, `slow` and `report` with who it is (`Hello, causeway (from v2 in
//! zone-a)`, after a per-method latency), with a bounded number of calls in progress like a Dubbo
//! provider's thread pool, and a client that pipelines calls on one connection — what a Dubbo
//! consumer does, pointed at the local proxy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use causeway_protocols::dubbo::{
    Call, DubboCodec, EventKind, Frame, Reply, Status, encode_request, encode_response,
    error_response, heartbeat_reply,
};
use causeway_protocols::hessian::Value;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::estate::{Registration, Service};
pub use crate::served::{CallError, Served};

/// The Java interface name, as the real Apache Dubbo sample in `demo/java` uses it.
pub const INTERFACE: &str = "io.causeway.demo.api.GreetingService";
/// Its Dubbo version.
pub const SERVICE_VERSION: &str = "1.0.0";
/// The methods it serves.
pub const METHODS: [&str; 4] = ["greet", "place", "report", "slow"];

/// What a `slow` call asks the Java sample to sleep, in milliseconds (the Rust provider takes
/// its own [`Identity::slow_latency`]).
pub const SLOW_MILLIS: i32 = 20;
/// Latency of `place`, a user call doing real work.
pub const PLACE_LATENCY: Duration = Duration::from_millis(5);
/// Latency of `report`, a batch job's call.
pub const REPORT_LATENCY: Duration = Duration::from_millis(50);

/// Who a provider is and how it behaves.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The version label (`v1`, `v2`).
    pub version: String,
    /// Its zone.
    pub zone: String,
    /// Latency of `slow`; `place` and `report` take [`PLACE_LATENCY`] and [`REPORT_LATENCY`],
    /// `greet` answers at once.
    pub slow_latency: Duration,
    /// Calls in progress at once; beyond it a call is refused at once with
    /// `SERVER_THREADPOOL_EXHAUSTED`, as a Dubbo provider's full thread pool does.
    pub capacity: usize,
    /// Per-method latencies that replace the ones above (`provider --latency slow=100`).
    pub latencies: Vec<(String, Duration)>,
    /// The methods it serves and registers; empty: [`METHODS`]. A call of another method is
    /// refused with SERVICE_ERROR, as a Dubbo provider refuses a method it does not export.
    pub methods: Vec<String>,
}

impl Identity {
    /// What this provider publishes when it listens on `addr`.
    pub fn registration(&self, addr: SocketAddr) -> Registration {
        Registration {
            service: Service::Greeter,
            version: self.version.clone(),
            zone: self.zone.clone(),
            addr,
            methods: self.methods.clone(),
        }
    }

    /// Whether it serves `method`.
    pub fn serves(&self, method: &str) -> bool {
        if self.methods.is_empty() {
            METHODS.contains(&method)
        } else {
            self.methods.iter().any(|m| m == method)
        }
    }

    fn latency(&self, method: &str) -> Duration {
        if let Some((_, latency)) = self.latencies.iter().find(|(m, _)| m == method) {
            return *latency;
        }
        match method {
            "slow" => self.slow_latency,
            "place" => PLACE_LATENCY,
            "report" => REPORT_LATENCY,
            _ => Duration::ZERO,
        }
    }
}

/// A running provider; dropping it stops listening and closes its connections (a crash).
#[derive(Debug)]
pub struct Provider {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Who it is.
    pub identity: Identity,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Provider {
    /// Starts a provider on a free loopback port.
    pub async fn start(identity: Identity) -> std::io::Result<Self> {
        Self::start_on(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), identity).await
    }

    /// Starts a provider listening on `addr` (a pod's `0.0.0.0:20880`).
    pub async fn start_on(addr: std::net::SocketAddr, identity: Identity) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept(listener, identity.clone()));
        Ok(Self {
            addr,
            identity,
            task,
        })
    }
}

async fn accept(listener: TcpListener, identity: Identity) {
    // Connections die with the accept task: aborting it is how a provider "crashes".
    let mut connections = JoinSet::new();
    // One pool for all of the provider's connections, as a Dubbo provider has one thread pool.
    let pool = Arc::new(tokio::sync::Semaphore::new(identity.capacity));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        connections.spawn(serve(stream, identity.clone(), pool.clone()));
    }
}

async fn serve(stream: TcpStream, identity: Identity, pool: Arc<tokio::sync::Semaphore>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<bytes::Bytes>();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if write.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut frames = FramedRead::new(read, DubboCodec::new());
    while let Some(Ok(frame)) = frames.next().await {
        let header = *frame.header();
        if header.is_event() {
            if frame.event_kind() == Some(EventKind::Heartbeat)
                && let Ok(reply) = heartbeat_reply(&header)
            {
                let _ = tx.send(reply.into_bytes());
            }
            continue;
        }
        if !header.is_two_way() {
            continue;
        }
        let method = frame
            .request()
            .map(|view| view.method().to_owned())
            .unwrap_or_default();
        let text = Served::answer("Hello, causeway", &identity.version, &identity.zone);
        if !identity.serves(&method) {
            if let Ok(reply) = error_response(
                &header,
                Status::SERVICE_ERROR,
                &format!("Not found method \"{method}\" in service {INTERFACE}"),
            ) {
                let _ = tx.send(reply.into_bytes());
            }
            continue;
        }
        let delay = identity.latency(&method);
        let Ok(slot) = pool.clone().try_acquire_owned() else {
            // Dubbo's AbortPolicy: the call is refused at once, not queued.
            if let Ok(reply) = error_response(
                &header,
                Status::SERVER_THREADPOOL_EXHAUSTED,
                &format!(
                    "Thread pool is EXHAUSTED! (greeter {} in {}, {} threads busy)",
                    identity.version, identity.zone, identity.capacity
                ),
            ) {
                let _ = tx.send(reply.into_bytes());
            }
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let value = Value::String(text);
            if let Ok(reply) = encode_response(
                header.request_id,
                Reply::Value(&value),
                Some(&[("dubbo", "2.0.2")]),
            ) {
                let _ = tx.send(reply.into_bytes());
            }
        });
    }
    writer.abort();
}

type Waiting = Arc<Mutex<HashMap<i64, oneshot::Sender<Frame>>>>;

/// A Dubbo consumer connection that pipelines calls.
#[derive(Debug, Clone)]
pub struct Client {
    tx: mpsc::UnboundedSender<(Frame, oneshot::Sender<Frame>)>,
    next_id: Arc<AtomicI64>,
}

impl Client {
    /// Connects to `addr` (the proxy's Dubbo listener).
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<(Frame, oneshot::Sender<Frame>)>();
        let waiting: Waiting = Arc::default();
        let pending = waiting.clone();
        tokio::spawn(async move {
            let mut sink = FramedWrite::new(write, DubboCodec::new());
            while let Some((frame, reply)) = rx.recv().await {
                pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(frame.request_id(), reply);
                if sink.send(frame).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            let mut frames = FramedRead::new(read, DubboCodec::new());
            while let Some(Ok(frame)) = frames.next().await {
                let reply = waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&frame.request_id());
                if let Some(reply) = reply {
                    let _ = reply.send(frame);
                }
            }
            // Dropping the senders fails every waiting call.
            waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        });
        Ok(Self {
            tx,
            next_id: Arc::new(AtomicI64::new(1)),
        })
    }

    /// Calls `method` with `attachments` and says who served it.
    pub async fn call(
        &self,
        method: &str,
        attachments: &[(&str, &str)],
    ) -> Result<Served, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut all = vec![
            ("path", INTERFACE),
            ("interface", INTERFACE),
            ("version", SERVICE_VERSION),
        ];
        all.extend_from_slice(attachments);
        // The Java sample's signatures: `slow(String name, int millis)`, the rest take a name.
        // The Rust provider reads only the method, so both answer the same call.
        let name = Value::String("causeway".into());
        let (param_types, arguments) = if method == "slow" {
            ("Ljava/lang/String;I", vec![name, Value::Int(SLOW_MILLIS)])
        } else {
            ("Ljava/lang/String;", vec![name])
        };
        let frame = encode_request(
            id,
            true,
            &Call {
                dubbo_version: "2.0.2",
                service: INTERFACE,
                service_version: Some(SERVICE_VERSION),
                method,
                param_types,
                arguments: &arguments,
                attachments: &all,
            },
        )
        .map_err(|e| CallError::NoAnswer(format!("cannot encode: {e}")))?;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((frame, reply))
            .map_err(|_| CallError::NoAnswer("connection closed".into()))?;
        let frame = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .map_err(|_| CallError::NoAnswer("timed out".into()))?
            .map_err(|_| CallError::NoAnswer("connection closed".into()))?;
        let status = frame.header().status;
        let view = frame
            .response()
            .map_err(|e| CallError::NoAnswer(format!("undecodable answer: {e}")))?;
        if status != Status::OK {
            return Err(CallError::Status {
                status: status.0,
                message: view.error_message().unwrap_or_default().to_owned(),
            });
        }
        let text = match view.value() {
            Ok(Some(Value::String(text))) => text,
            other => return Err(CallError::NoAnswer(format!("unexpected answer {other:?}"))),
        };
        Served::parse(&text)
            .ok_or_else(|| CallError::NoAnswer(format!("unexpected answer `{text}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn methods_and_latencies_are_configurable() {
        let provider = Provider::start(Identity {
            version: "v3".into(),
            zone: "zone-c".into(),
            slow_latency: Duration::from_millis(20),
            capacity: 4,
            latencies: vec![("greet".into(), Duration::from_millis(30))],
            methods: vec!["greet".into()],
        })
        .await
        .unwrap();
        let registration = provider.identity.registration(provider.addr);
        assert!(
            registration
                .zookeeper_entry()
                .path
                .contains("methods%3Dgreet%26"),
            "{registration:?}"
        );
        let client = Client::connect(provider.addr).await.unwrap();
        let started = std::time::Instant::now();
        let served = client.call("greet", &[]).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(served.version, "v3");
        match client.call("slow", &[]).await {
            Err(CallError::Status { status, message }) => {
                assert_eq!(status, Status::SERVICE_ERROR.0);
                assert!(message.contains("Not found method"), "{message}");
            }
            other => panic!("expected SERVICE_ERROR, got {other:?}"),
        }
    }
}
