//! The Thrift data plane end to end, in-process: Rust Thrift callers → causeway-proxy (local
//! config, port 0) → Rust Thrift servers, all built from causeway-protocols. Routing by method,
//! multiplexed service and THeader header, an 80/20 split, framed+binary, unframed+compact and
//! THeader callers, one-way calls, every failure as a `TApplicationException` in the caller's
//! transport and protocol, malformed input, the `auto` listener, and the request metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use causeway_protocols::thrift::{
    ExceptionKind, MessageType, Protocol, THeader, ThriftCodec, ThriftMessage, Transport,
    encode_message, write_message_header,
};
use futures::{SinkExt as _, StreamExt as _};
use support::{http_get, metric, start_proxy};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// A Thrift server answering `"<tag>:<method>"` (a string in field 0 of the result struct), one
/// call at a time per connection as Apache Thrift's servers do. `slow` waits 2 s; `hangup` closes
/// the connection without answering.
struct Server {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    oneways: Arc<AtomicUsize>,
    last_headers: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn result_body(protocol: Protocol, text: &str) -> BytesMut {
    let mut body = BytesMut::new();
    match protocol {
        Protocol::Binary => {
            body.put_slice(&[0x0b, 0x00, 0x00]);
            body.put_i32(text.len() as i32);
        }
        Protocol::Compact => {
            // Field id 0 needs the long form: type byte, then the zigzag i16 id.
            body.put_slice(&[0x08, 0x00]);
            body.put_u8(text.len() as u8);
        }
    }
    body.put_slice(text.as_bytes());
    body.put_u8(0);
    body
}

impl Server {
    async fn start(tag: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let oneways = Arc::new(AtomicUsize::new(0));
        let last_headers = Arc::new(Mutex::new(Vec::new()));
        let (c, o, h) = (calls.clone(), oneways.clone(), last_headers.clone());
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (c, o, h) = (c.clone(), o.clone(), h.clone());
                tokio::spawn(async move {
                    let mut framed = Framed::new(stream, ThriftCodec::new());
                    while let Some(Ok(call)) = framed.next().await {
                        if let Some(theader) = &call.theader {
                            *h.lock().unwrap() = theader.headers.clone();
                        }
                        if call.header.message_type == MessageType::Oneway {
                            o.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        c.fetch_add(1, Ordering::SeqCst);
                        let method = call.header.method().to_owned();
                        match method.as_str() {
                            "slow" => tokio::time::sleep(Duration::from_secs(2)).await,
                            "hangup" => return,
                            _ => {}
                        }
                        let protocol = call.header.protocol;
                        let body = result_body(protocol, &format!("{tag}:{method}"));
                        let reply = encode_message(
                            protocol,
                            call.transport,
                            &method,
                            MessageType::Reply,
                            call.header.seqid,
                            &body,
                        )
                        .unwrap();
                        if framed.send(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            calls,
            oneways,
            last_headers,
            task,
        }
    }
}

/// Encodes a call (empty argument struct) in any transport and protocol.
fn call_bytes(
    transport: Transport,
    protocol: Protocol,
    name: &str,
    message_type: MessageType,
    seqid: i32,
    headers: &[(&str, &str)],
) -> BytesMut {
    match transport {
        Transport::Header => {
            let mut message = BytesMut::new();
            write_message_header(&mut message, protocol, name, message_type, seqid).unwrap();
            message.put_u8(0);
            let mut theader = THeader::new(protocol, seqid);
            for (k, v) in headers {
                theader.set(*k, *v);
            }
            theader.encode(&message).unwrap()
        }
        _ => encode_message(protocol, transport, name, message_type, seqid, &[0]).unwrap(),
    }
}

/// A Thrift caller on one connection, one call at a time.
struct Caller {
    framed: Framed<TcpStream, ThriftCodec>,
    transport: Transport,
    protocol: Protocol,
    seqid: i32,
}

impl Caller {
    async fn connect(addr: SocketAddr, transport: Transport, protocol: Protocol) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self {
            framed: Framed::new(stream, ThriftCodec::with_transport(transport)),
            transport,
            protocol,
            seqid: 1000,
        }
    }

    async fn call_with(&mut self, name: &str, headers: &[(&str, &str)]) -> ThriftMessage {
        self.seqid += 7;
        let bytes = call_bytes(
            self.transport,
            self.protocol,
            name,
            MessageType::Call,
            self.seqid,
            headers,
        );
        self.framed.send(bytes).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), self.framed.next())
            .await
            .expect("no reply in 10 s")
            .expect("connection closed")
            .unwrap();
        assert_eq!(
            reply.header.seqid, self.seqid,
            "the caller's seqid comes back"
        );
        assert_eq!(reply.header.protocol, self.protocol);
        assert_eq!(reply.transport, self.transport);
        reply
    }

    async fn call(&mut self, name: &str) -> ThriftMessage {
        self.call_with(name, &[]).await
    }

    async fn oneway(&mut self, name: &str) {
        self.seqid += 1;
        let bytes = call_bytes(
            self.transport,
            self.protocol,
            name,
            MessageType::Oneway,
            self.seqid,
            &[],
        );
        self.framed.send(bytes).await.unwrap();
    }
}

/// The tag of a successful reply (`v1` from `"v1:add"`).
fn tag(reply: &ThriftMessage) -> String {
    assert_eq!(reply.header.message_type, MessageType::Reply, "{reply:?}");
    let text = String::from_utf8_lossy(reply.body()).into_owned();
    let start = text.find('v').expect("a tag");
    text[start..start + 2].to_owned()
}

fn exception(reply: &ThriftMessage) -> (ExceptionKind, String) {
    let e = reply.exception().expect("an exception reply").unwrap();
    (e.kind, e.message)
}

const RULES: &str = r#"
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: calc}
  spec:
    host: calc.mesh
    subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
  ---
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {name: calc}
  spec:
    hosts: [calc.mesh]
    routes:
    - name: sub-to-v2
      match: {attributes: {method: {exact: sub}}}
      route: [{destination: {host: calc.mesh, subset: v2}}]
    - name: canary
      match: {attributes: {canary: {exact: "true"}}}
      route: [{destination: {host: calc.mesh, subset: v2}}]
      requestMutation: [{key: routed-by, value: causeway}]
    - name: split
      route:
      - {destination: {host: calc.mesh, subset: v1}, weight: 80}
      - {destination: {host: calc.mesh, subset: v2}, weight: 20}
"#;

fn services(v1: &Server, v2: &Server, extra: &str) -> String {
    format!(
        "services:
- host: calc.mesh
  port: 9090
  protocol: thrift
  thrift: {{service: Calculator, methods: [add, sub]}}
  endpoints:
  - {{address: 127.0.0.1, port: {}, labels: {{version: v1, app: calc}}}}
  - {{address: 127.0.0.1, port: {}, labels: {{version: v2, app: calc}}}}
{extra}",
        v1.addr.port(),
        v2.addr.port()
    )
}

fn config(listen: &str, services: &str, rules: &str) -> String {
    format!(
        "admin_listen: 127.0.0.1:0\nlisten: {listen}\nworkload: calc-client\nthrift: {{request_timeout_ms: 500}}\n{services}{rules}"
    )
}

const LISTEN: &str = "[{protocol: thrift, address: 127.0.0.1:0}, {protocol: thrift, address: 127.0.0.1:0, host: calc.mesh}]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_method_service_and_header_and_splits_80_20() {
    let (v1, v2) = (Server::start("v1").await, Server::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let (proxy, _) = start_proxy(dir.path(), &config(LISTEN, &services(&v1, &v2, ""), RULES)).await;
    let addr = proxy.listeners[0].1;

    // Method routing on multiplexed framed+binary calls: every `sub` goes to v2.
    let mut caller = Caller::connect(addr, Transport::Framed, Protocol::Binary).await;
    for _ in 0..20 {
        assert_eq!(tag(&caller.call("Calculator:sub").await), "v2");
    }
    // THeader header routing, with the route's request mutation applied on the way.
    let mut theader = Caller::connect(addr, Transport::Header, Protocol::Binary).await;
    let reply = theader
        .call_with("Calculator:add", &[("canary", "true")])
        .await;
    assert_eq!(tag(&reply), "v2");
    let seen = v2.last_headers.lock().unwrap().clone();
    assert!(
        seen.contains(&("routed-by".into(), "causeway".into())),
        "{seen:?}"
    );
    assert!(seen.contains(&("canary".into(), "true".into())), "{seen:?}");

    // The 80/20 split over 2,000 framed+binary calls from 20 concurrent callers.
    let n = 2000;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        tasks.push(tokio::spawn(async move {
            let mut caller = Caller::connect(addr, Transport::Framed, Protocol::Binary).await;
            let mut counts: HashMap<String, usize> = HashMap::new();
            for _ in 0..n / 20 {
                *counts
                    .entry(tag(&caller.call("Calculator:add").await))
                    .or_default() += 1;
            }
            counts
        }));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        for (k, v) in task.await.unwrap() {
            *counts.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();
    let v1_share = counts["v1"] as f64 / n as f64;
    println!("thrift split over {n} calls: {counts:?} (v1 {v1_share:.3}) in {elapsed:?}");
    assert!(
        (v1_share - 0.8).abs() <= 0.05,
        "v1 share {v1_share}: {counts:?}"
    );

    // Unframed+compact, non-multiplexed, on the listener bound to calc.mesh.
    let bound = proxy.listeners[1].1;
    let mut compact = Caller::connect(bound, Transport::Buffered, Protocol::Compact).await;
    assert_eq!(tag(&compact.call("sub").await), "v2");
    let mut share = 0;
    for _ in 0..200 {
        share += usize::from(tag(&compact.call("add").await) == "v1");
    }
    assert!((130..=190).contains(&share), "v1 took {share} of 200");

    // One-way calls are forwarded and get no reply.
    let before = v1.oneways.load(Ordering::SeqCst) + v2.oneways.load(Ordering::SeqCst);
    compact.oneway("sub").await;
    assert_eq!(tag(&compact.call("sub").await), "v2");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = v1.oneways.load(Ordering::SeqCst) + v2.oneways.load(Ordering::SeqCst);
    assert_eq!(after, before + 1);

    // The metrics match the calls.
    let (status, text) = http_get(proxy.admin, "/metrics").await;
    assert_eq!(status, 200);
    let count = |parts: &[&str]| metric(&text, "istio_requests_total", parts);
    let thrift = "request_protocol=\"thrift\"";
    let add_v1 = count(&[
        thrift,
        "request_method=\"add\"",
        "destination_version=\"v1\"",
        "response_code=\"0\"",
    ]);
    let add_v2 = count(&[
        thrift,
        "request_method=\"add\"",
        "destination_version=\"v2\"",
        "response_code=\"0\"",
    ]);
    let sub_v2 = count(&[
        thrift,
        "request_method=\"sub\"",
        "destination_version=\"v2\"",
    ]);
    assert_eq!(add_v1 as usize, counts["v1"] + share);
    assert_eq!(add_v2 as usize, counts["v2"] + 1 + (200 - share));
    assert_eq!(sub_v2, 22.0);
    assert!(text.contains("destination_service=\"calc.mesh\""));
    assert!(text.contains("destination_interface=\"Calculator\""));
    assert_eq!(
        v1.calls.load(Ordering::SeqCst) + v2.calls.load(Ordering::SeqCst),
        (add_v1 + add_v2 + sub_v2) as usize
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_is_a_tapplicationexception_in_the_callers_protocol() {
    let (v1, v2) = (Server::start("v1").await, Server::start("v2").await);
    // A port nothing listens on, and a service whose only endpoint is unhealthy.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let extra = format!(
        "- host: down.mesh
  port: 9091
  protocol: thrift
  thrift: {{service: Down}}
  endpoints: [{{address: 127.0.0.1, port: {closed_port}}}]
- host: sick.mesh
  port: 9092
  protocol: thrift
  thrift: {{service: Sick}}
  endpoints: [{{address: 127.0.0.1, port: {}, healthy: false}}]
",
        v1.addr.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let (proxy, _) =
        start_proxy(dir.path(), &config(LISTEN, &services(&v1, &v2, &extra), "")).await;
    let addr = proxy.listeners[0].1;
    for (transport, protocol) in [
        (Transport::Framed, Protocol::Binary),
        (Transport::Buffered, Protocol::Compact),
        (Transport::Header, Protocol::Compact),
    ] {
        let mut caller = Caller::connect(addr, transport, protocol).await;
        let cases: [(&str, ExceptionKind, &str); 6] = [
            (
                "Nope:add",
                ExceptionKind::UnknownMethod,
                "no route for thrift service Nope",
            ),
            ("add", ExceptionKind::UnknownMethod, "non-multiplexed"),
            (
                "Sick:add",
                ExceptionKind::InternalError,
                "no healthy server",
            ),
            // Refused, or (once ejected after a refusal) no healthy server left.
            ("Down:add", ExceptionKind::InternalError, "server"),
            (
                "Calculator:slow",
                ExceptionKind::InternalError,
                "within 500 ms",
            ),
            (
                "Calculator:hangup",
                ExceptionKind::InternalError,
                "closed before the reply",
            ),
        ];
        for (name, kind, text) in cases {
            let reply = caller.call(name).await;
            assert_eq!(reply.header.message_type, MessageType::Exception);
            // Replies carry the bare method name, as Thrift servers answer multiplexed calls.
            assert!(!reply.header.name.contains(':'), "{}", reply.header.name);
            let (got, message) = exception(&reply);
            assert_eq!(got, kind, "{name}: {message}");
            assert!(message.contains(text), "{name}: {message}");
        }
        // The connection still works after every failure.
        assert!(["v1", "v2"].contains(&tag(&caller.call("Calculator:add").await).as_str()));
    }

    // Malformed input closes only that connection, and is counted.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage.write_all(&[0xff; 16]).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut out)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "closed without an answer: {read:?}"
    );
    let mut caller = Caller::connect(addr, Transport::Framed, Protocol::Binary).await;
    assert!(["v1", "v2"].contains(&tag(&caller.call("Calculator:add").await).as_str()));

    let (_, text) = http_get(proxy.admin, "/metrics").await;
    let thrift = "request_protocol=\"thrift\"";
    let failed = |flag: &str| {
        metric(
            &text,
            "istio_requests_total",
            &[
                thrift,
                "response_code=\"1\"",
                &format!("response_flags=\"{flag}\""),
            ],
        )
    };
    assert_eq!(failed("NR"), 6.0);
    assert_eq!(failed("UT"), 3.0);
    assert_eq!(failed("UC"), 3.0);
    assert!(failed("UF") >= 1.0);
    assert_eq!(failed("UF") + failed("UH"), 6.0);
    assert_eq!(
        metric(
            &text,
            "causeway_proxy_protocol_errors_total",
            &["protocol=\"thrift\"", "kind=\"bad_frame\""]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auto_listener_serves_thrift_and_dubbo_on_one_port() {
    let (v1, v2) = (Server::start("v1").await, Server::start("v2").await);
    let dubbo = support::Provider::start("d1").await;
    let dubbo_service = format!(
        "- host: demo.greeter\n  port: 20880\n  dubbo: {{interface: {}, methods: [greet]}}\n  endpoints: [{{address: 127.0.0.1, port: {}, labels: {{version: d1}}}}]\n",
        support::INTERFACE,
        dubbo.addr.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let listen = "[{protocol: auto, address: 127.0.0.1:0}]";
    let (proxy, _) = start_proxy(
        dir.path(),
        &config(listen, &services(&v1, &v2, &dubbo_service), RULES),
    )
    .await;
    let addr = proxy.listeners[0].1;
    for (transport, protocol) in [
        (Transport::Framed, Protocol::Binary),
        (Transport::Buffered, Protocol::Compact),
        (Transport::Header, Protocol::Binary),
        (Transport::Framed, Protocol::Compact),
    ] {
        let mut caller = Caller::connect(addr, transport, protocol).await;
        assert_eq!(tag(&caller.call("Calculator:sub").await), "v2");
    }
    let client = support::Client::connect(addr).await;
    let answer = client.call("greet", &[]).await;
    assert_eq!(answer.tag(), Some("d1"), "{answer:?}");

    // Bytes no protocol starts with: closed and counted.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"\x01\x02\x03\x04\x05\x06\x07\x08")
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut out)).await;
    // Peeked bytes are never read, so the close may come as a reset.
    assert!(
        matches!(&read, Ok(Ok(0)))
            || matches!(&read, Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{read:?}"
    );
    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        metric(
            &text,
            "causeway_proxy_protocol_errors_total",
            &["kind=\"unknown_protocol\""]
        ),
        1.0,
        "{text}"
    );
}

const ADMISSION: &str = r#"
rules: |
  apiVersion: causeway.io/v1alpha1
  kind: TrafficIsolation
  metadata: {name: calc}
  spec:
    host: calc.mesh
    classes:
    - name: batch
      match: {attributes: {batch: {exact: "true"}}}
      maxConcurrency: 1
    - name: user
      maxConcurrency: 100
      shedOrder: 10
    defaultClass: user
  ---
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {name: calc}
  spec:
    hosts: [calc.mesh]
    localRateLimit:
      conditions:
      - match: {attributes: {tenant: {exact: acme}}}
        tokenBucket: {maxTokens: 1, fillInterval: 1h}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classes_and_rate_limits_read_theader_headers() {
    let (v1, v2) = (Server::start("v1").await, Server::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(LISTEN, &services(&v1, &v2, ""), ADMISSION)
        .replace("request_timeout_ms: 500", "request_timeout_ms: 5000");
    let (proxy, _) = start_proxy(dir.path(), &yaml).await;
    let addr = proxy.listeners[0].1;
    let batch = [("batch", "true")];

    // The batch class holds its one slot with a slow call; a second batch call is shed at once
    // while a user call still goes through.
    let mut first = Caller::connect(addr, Transport::Header, Protocol::Binary).await;
    let slow = tokio::spawn(async move { first.call_with("Calculator:slow", &batch).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = Caller::connect(addr, Transport::Header, Protocol::Binary).await;
    let started = Instant::now();
    let (kind, message) = exception(&second.call_with("Calculator:add", &batch).await);
    assert_eq!(kind, ExceptionKind::InternalError);
    assert!(message.contains("overloaded"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(1), "shed at once");
    let user = second.call("Calculator:add").await;
    assert_eq!(user.header.message_type, MessageType::Reply, "{user:?}");
    assert_eq!(slow.await.unwrap().header.message_type, MessageType::Reply);

    // The tenant's bucket holds one call.
    let tenant = [("tenant", "acme")];
    let ok = second.call_with("Calculator:add", &tenant).await;
    assert_eq!(ok.header.message_type, MessageType::Reply);
    let (kind, message) = exception(&second.call_with("Calculator:add", &tenant).await);
    assert_eq!(kind, ExceptionKind::InternalError);
    assert!(message.contains("rate limited"), "{message}");

    let (_, text) = http_get(proxy.admin, "/metrics").await;
    let shed = |reason: &str| {
        metric(
            &text,
            "causeway_proxy_shed_total",
            &["destination_service=\"calc.mesh\"", reason],
        )
    };
    assert_eq!(shed("reason=\"concurrency_limit\""), 1.0);
    assert_eq!(shed("reason=\"rate_limit\""), 1.0);
    assert_eq!(
        metric(
            &text,
            "istio_requests_total",
            &["request_protocol=\"thrift\"", "response_flags=\"RL\""]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "istio_requests_total",
            &["request_protocol=\"thrift\"", "response_flags=\"UO\""]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carries_traceparent_in_theader_headers_with_the_proxys_span_as_parent() {
    let (v1, v2) = (Server::start("v1").await, Server::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let (proxy, _) = start_proxy(dir.path(), &config(LISTEN, &services(&v1, &v2, ""), "")).await;
    // Record the proxy's spans as an OTLP exporter would receive them.
    let (spans, mut recorded) = tokio::sync::mpsc::channel(4);
    assert!(proxy.metrics.spans().enable(spans));
    let mut caller =
        Caller::connect(proxy.listeners[0].1, Transport::Header, Protocol::Binary).await;
    let caller_context = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = caller
        .call_with("Calculator:add", &[("traceparent", caller_context)])
        .await;
    let server = if tag(&reply) == "v1" { &v1 } else { &v2 };
    let seen = server.last_headers.lock().unwrap().clone();
    let got = seen
        .iter()
        .rev()
        .find(|(k, _)| k == "traceparent")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no traceparent in {seen:?}"));
    assert!(
        got.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && got.ends_with("-01"),
        "{got}"
    );
    assert!(
        !got.contains("00f067aa0ba902b7"),
        "the proxy's span is the parent: {got}"
    );
    // The proxy's span: the caller's trace, the caller's span as parent, the provider's parent as
    // its id, a Thrift CLIENT span.
    let span = recorded.recv().await.unwrap().to_otlp();
    assert_eq!(
        hex::encode(&span.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(hex::encode(&span.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(hex::encode(&span.span_id), got.split('-').nth(2).unwrap());
    assert_eq!(span.kind, causeway_proxy::spans::otlp::SPAN_KIND_CLIENT);
    assert_eq!(span.name, "Calculator/add", "{span:?}");
    assert!(recorded.try_recv().is_err(), "one span per call");
}
