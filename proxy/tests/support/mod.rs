//! Test peers built from causeway-protocols: a Dubbo provider that answers `"<tag>:<method>"` and
//! records what it received, a pipelining Dubbo client, and a bare HTTP GET for the admin server.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use causeway_protocols::dubbo::{
    Call, DubboCodec, EventKind, Frame, Header, MAGIC, Reply, Serialization, Status,
    encode_request, encode_response, heartbeat_reply,
};
use causeway_protocols::hessian::Value;
use causeway_proxy::app::{self, RunningProxy};
use causeway_proxy::config::ProxyConfig;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::codec::{Framed, FramedRead, FramedWrite};

pub const INTERFACE: &str = "demo.Greeter";
pub const VERSION: &str = "1.0.0";

/// A Dubbo provider on a free loopback port.
pub struct Provider {
    pub addr: SocketAddr,
    pub tag: String,
    pub requests: Arc<AtomicUsize>,
    pub heartbeats: Arc<AtomicUsize>,
    /// Attachments of the last request.
    pub last_attachments: Arc<Mutex<HashMap<String, String>>>,
    /// While set, every two-way request is answered with SERVER_ERROR (a sick provider).
    pub failing: Arc<std::sync::atomic::AtomicBool>,
    peers: Arc<Mutex<Vec<mpsc::UnboundedSender<Bytes>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Provider {
    pub async fn start(tag: &str) -> Self {
        Self::start_with_delay(tag, Duration::ZERO).await
    }

    pub async fn start_with_delay(tag: &str, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let heartbeats = Arc::new(AtomicUsize::new(0));
        let last_attachments = Arc::new(Mutex::new(HashMap::new()));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = failing.clone();
        let (r, h, a, p, t) = (
            requests.clone(),
            heartbeats.clone(),
            last_attachments.clone(),
            peers.clone(),
            tag.to_owned(),
        );
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                stream.set_nodelay(true).unwrap();
                let (read, write) = stream.into_split();
                let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
                p.lock().unwrap().push(tx.clone());
                connections.spawn(async move {
                    let mut out = write;
                    while let Some(bytes) = rx.recv().await {
                        if out.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                });
                let (r, h, a, t, f) = (r.clone(), h.clone(), a.clone(), t.clone(), f.clone());
                connections.spawn(async move {
                    let mut frames = FramedRead::new(read, DubboCodec::new());
                    while let Some(Ok(frame)) = frames.next().await {
                        let header = *frame.header();
                        if header.is_event() {
                            if frame.event_kind() == Some(EventKind::Heartbeat) {
                                h.fetch_add(1, Ordering::SeqCst);
                                let _ = tx.send(heartbeat_reply(&header).unwrap().into_bytes());
                            }
                            continue;
                        }
                        r.fetch_add(1, Ordering::SeqCst);
                        let view = frame.request().unwrap();
                        let method = view.method().to_owned();
                        let attachments: HashMap<String, String> = view
                            .attachments()
                            .unwrap()
                            .iter()
                            .filter_map(|(k, v)| v.as_str().map(|v| (k.to_owned(), v.to_owned())))
                            .collect();
                        *a.lock().unwrap() = attachments;
                        if !header.is_two_way() {
                            continue;
                        }
                        if f.load(Ordering::SeqCst) {
                            let error = causeway_protocols::dubbo::error_response(
                                &header,
                                Status::SERVER_ERROR,
                                &format!("{t}: sick"),
                            )
                            .unwrap();
                            let _ = tx.send(error.into_bytes());
                            continue;
                        }
                        let value = Value::String(format!("{t}:{method}"));
                        let reply = encode_response(
                            header.request_id,
                            Reply::Value(&value),
                            Some(&[("dubbo", "2.0.2")]),
                        )
                        .unwrap();
                        if delay.is_zero() {
                            let _ = tx.send(reply.into_bytes());
                        } else {
                            let tx = tx.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                let _ = tx.send(reply.into_bytes());
                            });
                        }
                    }
                });
            }
        });
        Self {
            addr,
            tag: tag.to_owned(),
            requests,
            heartbeats,
            last_attachments,
            failing,
            peers,
            task,
        }
    }

    /// Sends the READONLY event on every connection, as a provider starting to shut down does.
    pub fn send_readonly(&self) {
        let mut header = Header::request(99, Serialization::HESSIAN2, false);
        header.flags |= causeway_protocols::dubbo::FLAG_EVENT;
        let frame = Frame::from_parts(header, &[0x01, b'R']).unwrap();
        for peer in self.peers.lock().unwrap().iter() {
            let _ = peer.send(frame.clone().into_bytes());
        }
    }

    /// Stops listening and closes every connection (a crash).
    pub fn stop(&self) {
        self.task.abort();
        self.peers.lock().unwrap().clear();
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A decoded answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub id: i64,
    pub status: Status,
    pub value: Option<String>,
    pub message: Option<String>,
}

impl Answer {
    fn from_frame(frame: &Frame) -> Self {
        let header = frame.header();
        let view = frame.response().unwrap();
        let value = match view.value().unwrap() {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        Self {
            id: header.request_id,
            status: header.status,
            value,
            message: view.error_message().map(str::to_owned),
        }
    }

    /// The provider tag of a successful answer (`v1` from `v1:greet`).
    pub fn tag(&self) -> Option<&str> {
        self.value.as_deref().and_then(|v| v.split(':').next())
    }
}

/// A Dubbo client that can pipeline calls on one connection.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::UnboundedSender<(Frame, Option<oneshot::Sender<Frame>>)>,
    next_id: Arc<AtomicI64>,
    closed: Arc<tokio::sync::Notify>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (read, write) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<(Frame, Option<oneshot::Sender<Frame>>)>();
        let waiting: Arc<Mutex<HashMap<i64, oneshot::Sender<Frame>>>> = Arc::default();
        let closed = Arc::new(tokio::sync::Notify::new());
        let w = waiting.clone();
        tokio::spawn(async move {
            let mut sink = FramedWrite::new(write, DubboCodec::new());
            while let Some((frame, reply)) = rx.recv().await {
                if let Some(reply) = reply {
                    w.lock().unwrap().insert(frame.request_id(), reply);
                }
                if sink.send(frame).await.is_err() {
                    break;
                }
            }
        });
        let c = closed.clone();
        tokio::spawn(async move {
            let mut frames = FramedRead::new(read, DubboCodec::new());
            while let Some(Ok(frame)) = frames.next().await {
                if let Some(reply) = waiting.lock().unwrap().remove(&frame.request_id()) {
                    let _ = reply.send(frame);
                }
            }
            waiting.lock().unwrap().clear();
            c.notify_waiters();
        });
        Self {
            tx,
            next_id: Arc::new(AtomicI64::new(1)),
            closed,
        }
    }

    pub fn request(&self, id: i64, method: &str, attachments: &[(&str, &str)]) -> Frame {
        self.request_for(id, INTERFACE, Some(VERSION), method, attachments)
    }

    pub fn request_for(
        &self,
        id: i64,
        interface: &str,
        version: Option<&str>,
        method: &str,
        attachments: &[(&str, &str)],
    ) -> Frame {
        let mut all = vec![("path", interface), ("interface", interface)];
        if let Some(v) = version {
            all.push(("version", v));
        }
        all.extend_from_slice(attachments);
        encode_request(
            id,
            true,
            &Call {
                dubbo_version: "2.0.2",
                service: interface,
                service_version: version,
                method,
                param_types: "Ljava/lang/String;",
                arguments: &[Value::String("causeway".into())],
                attachments: &all,
            },
        )
        .unwrap()
    }

    /// Sends a raw frame and waits for the frame answering its id (`None` if the connection
    /// closed first).
    pub async fn exchange(&self, frame: Frame) -> Option<Frame> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((frame, Some(reply))).ok()?;
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .ok()?
            .ok()
    }

    pub async fn call(&self, method: &str, attachments: &[(&str, &str)]) -> Answer {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let frame = self.request(id, method, attachments);
        let reply = self.exchange(frame).await.expect("an answer");
        let answer = Answer::from_frame(&reply);
        assert_eq!(answer.id, id, "the caller's request id comes back");
        answer
    }

    pub async fn call_interface(
        &self,
        interface: &str,
        version: Option<&str>,
        method: &str,
    ) -> Answer {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let frame = self.request_for(id, interface, version, method, &[]);
        let reply = self.exchange(frame).await.expect("an answer");
        Answer::from_frame(&reply)
    }
}

/// Writes `yaml` to a file in `dir` and starts a proxy on it (Dubbo and admin on port 0).
pub async fn start_proxy(dir: &Path, yaml: &str) -> (RunningProxy, PathBuf) {
    let path = dir.join("proxy.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = ProxyConfig::load(&path).unwrap();
    let proxy = app::start(config, Some(path.clone())).await.unwrap();
    (proxy, path)
}

/// The YAML of a Dubbo service `demo.greeter` with the given endpoints
/// (`(provider, version label, locality)`).
pub fn service_yaml(endpoints: &[(&Provider, &str, &str)]) -> String {
    let mut yaml = format!(
        "- host: demo.greeter\n  port: 20880\n  dubbo: {{interface: {INTERFACE}, version: {VERSION}, methods: [greet, place]}}\n  endpoints:\n"
    );
    for (p, version, locality) in endpoints {
        yaml.push_str(&format!(
            "  - {{address: 127.0.0.1, port: {}, labels: {{version: {version}, app: greeter}}, locality: \"{locality}\"}}\n",
            p.addr.port()
        ));
    }
    yaml
}

/// Plain HTTP/1.1 GET; returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the metric line that contains every one of `parts` (0 when absent).
pub fn metric(text: &str, name: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Raw bytes for protocol-error tests.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    out
}

pub fn magic() -> [u8; 2] {
    MAGIC
}

pub fn framed(stream: TcpStream) -> Framed<TcpStream, DubboCodec> {
    Framed::new(stream, DubboCodec::new())
}
