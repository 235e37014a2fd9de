//! The proxy's spans, judged by a real OTLP receiver: a Python program using the official
//! `opentelemetry-proto` bindings (tests/python/otlp/receiver.py) decodes what causeway-proxy
//! posts to `/v1/traces`. Traced calls go through the proxy (local mode) over gRPC, to a Python
//! `grpcio` greeter that answers with the `traceparent` it received, over HTTP/1.1, to a Python
//! `http.server` that does the same (tests/python/http_echo.py), and over Dubbo, to a provider in
//! this test that records the attachments it received. Each exported span must continue the
//! caller's trace, have the caller's span as its parent, and be the parent the provider saw;
//! unsampled and untraced calls export nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use causeway_protocols::dubbo::{Call, DubboCodec, Reply, encode_request, encode_response};
use causeway_protocols::hessian::Value;
use causeway_proxy::app as proxy_app;
use causeway_proxy::config::{ListenProtocol, ProxyConfig};
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;
use causeway_tests::python::PythonEnv;
use causeway_tests::{assert_eventually, logs};
use futures::StreamExt as _;
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::codec::FramedRead;

use crate::proxy_grpc::grpc_batch;
use crate::xds_grpc::greeter;

const INTERFACE: &str = "demo.Echo";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The receiver on a free port, appending decoded spans to `out` as JSON lines.
async fn receiver(port: u16, out: &Path) -> PeerProcess {
    let python =
        PythonEnv::from_requirements(&workspace_root().join("tests/python/otlp/requirements.txt"))
            .unwrap();
    let mut command = python.command(&workspace_root().join("tests/python/otlp/receiver.py"));
    command.arg(port.to_string()).arg(out);
    let name = "otlp-receiver";
    let mut process =
        PeerProcess::spawn(name, command, PeerProcess::temp_dir(name).unwrap()).unwrap();
    process
        .wait_ready(Duration::from_secs(60), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            Ok(())
        })
        .await
        .unwrap();
    process
}

/// The HTTP echo server on `port`.
async fn http_echo(python: &PythonEnv, port: u16) -> PeerProcess {
    let name = "http-echo";
    let mut command = python.command(&workspace_root().join("tests/python/http_echo.py"));
    command.arg("127.0.0.1").arg(port.to_string());
    let mut process =
        PeerProcess::spawn(name, command, PeerProcess::temp_dir(name).unwrap()).unwrap();
    process
        .wait_ready(Duration::from_secs(60), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            Ok(())
        })
        .await
        .unwrap();
    process
}

/// One HTTP/1.1 GET through the proxy for `demo.web` with `headers`; (status, body).
async fn http_get(proxy: SocketAddr, headers: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    stream
        .write_all(
            format!("GET /trace HTTP/1.1\r\nHost: demo.web\r\n{headers}Connection: close\r\n\r\n")
                .as_bytes(),
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

fn spans(out: &Path) -> Vec<Json> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A Dubbo provider that answers every two-way call with "ok" and keeps the `traceparent`
/// attachment of each call.
async fn dubbo_provider() -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut frames = FramedRead::new(read, DubboCodec::new());
                while let Some(Ok(frame)) = frames.next().await {
                    let header = *frame.header();
                    if header.is_event() || !header.is_two_way() {
                        continue;
                    }
                    let traceparent = frame.request().ok().and_then(|view| {
                        view.attachments()
                            .ok()
                            .and_then(|a| a.get_str("traceparent").map(str::to_owned))
                    });
                    record.lock().unwrap().push(traceparent);
                    let value = Value::String("ok".into());
                    let reply =
                        encode_response(header.request_id, Reply::Value(&value), None).unwrap();
                    if write.write_all(&reply.into_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// One Dubbo call with `attachments`; returns the response status byte.
async fn dubbo_call(proxy: SocketAddr, id: i64, attachments: &[(&str, &str)]) -> u8 {
    let mut all = vec![("path", INTERFACE), ("interface", INTERFACE)];
    all.extend_from_slice(attachments);
    let frame = encode_request(
        id,
        true,
        &Call {
            dubbo_version: "2.0.2",
            service: INTERFACE,
            service_version: None,
            method: "echo",
            param_types: "Ljava/lang/String;",
            arguments: &[Value::String("hi".into())],
            attachments: &all,
        },
    )
    .unwrap();
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    stream.write_all(&frame.into_bytes()).await.unwrap();
    let mut buf = BytesMut::new();
    // 16-byte header; byte 3 is the status.
    while buf.len() < 16 {
        assert!(stream.read_buf(&mut buf).await.unwrap() > 0, "proxy closed");
    }
    buf[3]
}

fn config(otlp: u16, greeter_port: u16, web_port: u16, dubbo: SocketAddr) -> ProxyConfig {
    ProxyConfig::parse(&format!(
        "admin_listen: 127.0.0.1:0
listen:
- {{protocol: dubbo, address: 127.0.0.1:0}}
- {{protocol: grpc, address: 127.0.0.1:0}}
- {{protocol: http, address: 127.0.0.1:0}}
workload: traced-caller
otlp: {{endpoint: \"http://127.0.0.1:{otlp}\", service_name: causeway-proxy-e2e}}
services:
- host: demo.greeter
  port: 50051
  protocol: grpc
  methods: [SayHello]
  endpoints:
  - {{address: 127.0.0.1, port: {greeter_port}, labels: {{version: v1}}}}
- host: demo.web
  port: 8080
  protocol: http
  endpoints:
  - {{address: 127.0.0.1, port: {web_port}, labels: {{version: v1}}}}
- host: demo.echo
  port: 20880
  dubbo: {{interface: {INTERFACE}, methods: [echo]}}
  endpoints:
  - {{address: 127.0.0.1, port: {}, labels: {{version: v1}}}}
",
        dubbo.port()
    ))
    .unwrap()
}

fn attribute<'a>(span: &'a Json, key: &str) -> &'a Json {
    &span["attributes"][key]
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_of_traced_grpc_http_and_dubbo_calls_reach_an_otlp_receiver() {
    logs::init();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("spans.jsonl");
    let otlp_port = free_port().unwrap();
    let greeter_port = free_port().unwrap();
    let web_port = free_port().unwrap();
    let python = PythonEnv::shared().unwrap();
    let (_receiver, _greeter, _web, (dubbo, seen)) = tokio::join!(
        receiver(otlp_port, &out),
        greeter(&python, "127.0.0.1", greeter_port, "v1"),
        http_echo(&python, web_port),
        dubbo_provider(),
    );
    let proxy = proxy_app::start(config(otlp_port, greeter_port, web_port, dubbo), None)
        .await
        .unwrap();

    // gRPC: one sampled call, one unsampled, one untraced.
    let target = proxy.addr(ListenProtocol::Grpc).unwrap().to_string();
    let caller = format!("traceparent=00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let traced = grpc_batch(&python, &target, 1, &[&caller]).await;
    assert_eq!(traced.errors, 0, "{}", traced.last_error);
    let reply = traced.counts.keys().next().unwrap().clone();
    let received = reply
        .strip_prefix("v1 ")
        .expect("the greeter saw a traceparent");
    let unsampled = format!("traceparent=00-{CALLER_TRACE}-{CALLER_SPAN}-00");
    assert_eq!(
        grpc_batch(&python, &target, 1, &[&unsampled]).await.errors,
        0
    );
    assert_eq!(grpc_batch(&python, &target, 1, &[]).await.errors, 0);

    // Dubbo: the same three kinds of call.
    let dubbo_proxy = proxy.dubbo_addr().unwrap();
    let dubbo_trace = "0af7651916cd43dd8448eb211c80319c";
    let dubbo_caller = format!("00-{dubbo_trace}-b7ad6b7169203331-01");
    assert_eq!(
        dubbo_call(dubbo_proxy, 1, &[("traceparent", &dubbo_caller)]).await,
        20
    );
    let dubbo_unsampled = dubbo_caller.replace("-01", "-00");
    assert_eq!(
        dubbo_call(dubbo_proxy, 2, &[("traceparent", &dubbo_unsampled)]).await,
        20
    );
    assert_eq!(dubbo_call(dubbo_proxy, 3, &[]).await, 20);
    let dubbo_received = seen.lock().unwrap()[0]
        .clone()
        .expect("the provider saw a traceparent");

    // HTTP: the same three kinds of call.
    let http = proxy.addr(ListenProtocol::Http).unwrap();
    let http_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let http_caller = format!("00-{http_trace}-10f067aa0ba902b8-01");
    let (status, http_received) = http_get(http, &format!("traceparent: {http_caller}\r\n")).await;
    assert_eq!(status, 200, "{http_received}");
    let http_unsampled = http_caller.replace("-01", "-00");
    let (status, _) = http_get(http, &format!("traceparent: {http_unsampled}\r\n")).await;
    assert_eq!(status, 200);
    assert_eq!(http_get(http, "").await, (200, "-".to_owned()));

    // Exactly the three sampled calls arrive (batches go within a second).
    assert_eventually!(
        spans(&out).len() >= 3,
        "the receiver got no spans: {:?}\n{}",
        spans(&out),
        proxy.metrics.encode().unwrap()
    );
    assert_eventually!(
        proxy
            .metrics
            .encode()
            .unwrap()
            .contains("causeway_proxy_spans_exported_total 3"),
        "{}",
        proxy.metrics.encode().unwrap()
    );
    let all = spans(&out);
    assert_eq!(all.len(), 3, "only sampled calls are recorded: {all:#?}");
    for (trace, caller_span, provider_saw, system) in [
        (CALLER_TRACE, CALLER_SPAN, received, Some("grpc")),
        (
            dubbo_trace,
            "b7ad6b7169203331",
            dubbo_received.as_str(),
            Some("dubbo"),
        ),
        (http_trace, "10f067aa0ba902b8", http_received.as_str(), None),
    ] {
        let span = all
            .iter()
            .find(|s| s["trace_id"] == trace)
            .unwrap_or_else(|| panic!("no span of trace {trace}: {all:#?}"));
        let fields: Vec<&str> = provider_saw.split('-').collect();
        assert_eq!(fields[1], trace, "{provider_saw}");
        assert_eq!(span["parent_span_id"], caller_span, "{span}");
        assert_eq!(
            span["span_id"], fields[2],
            "the provider's parent is the proxy's span"
        );
        assert_eq!(span["kind"], "SPAN_KIND_CLIENT", "{span}");
        assert_eq!(span["status"], 0, "{span}");
        assert_eq!(span["resource"]["service.name"], "causeway-proxy-e2e");
        match system {
            Some(system) => assert_eq!(attribute(span, "rpc.system"), system, "{span}"),
            None => assert!(attribute(span, "rpc.system").is_null(), "{span}"),
        }
        assert!(span["end"].as_u64() >= span["start"].as_u64(), "{span}");
        assert!(span["start"].as_u64().unwrap() > 0, "{span}");
    }
    let grpc = all.iter().find(|s| s["trace_id"] == CALLER_TRACE).unwrap();
    assert_eq!(grpc["name"], "demo.Greeter/SayHello", "{grpc}");
    assert_eq!(attribute(grpc, "rpc.method"), "SayHello");
    assert_eq!(attribute(grpc, "rpc.grpc.status_code"), 0);
    assert_eq!(
        attribute(grpc, "causeway.destination.cluster"),
        "outbound|50051||demo.greeter"
    );
    let dubbo_span = all.iter().find(|s| s["trace_id"] == dubbo_trace).unwrap();
    assert_eq!(
        dubbo_span["name"],
        format!("{INTERFACE}/echo"),
        "{dubbo_span}"
    );
    assert_eq!(attribute(dubbo_span, "causeway.response_code"), "20");
    let web = all.iter().find(|s| s["trace_id"] == http_trace).unwrap();
    assert_eq!(web["name"], "GET demo.web", "{web}");
    assert_eq!(attribute(web, "http.request.method"), "GET");
    assert_eq!(attribute(web, "http.response.status_code"), 200);
    assert!(
        !proxy
            .metrics
            .encode()
            .unwrap()
            .contains("causeway_proxy_spans_dropped_total{"),
        "nothing dropped"
    );
}
