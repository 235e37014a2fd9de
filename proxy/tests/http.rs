//! The gRPC and HTTP data plane end to end, in-process: hyper callers (HTTP/1.1, h2c, gRPC over
//! HTTP/2) → causeway-proxy (local config, port 0) → hyper providers v1/v2. Routing by path,
//! header and authority, an 80/20 split, gRPC unary and bidirectional streaming, every error in
//! the caller's protocol, and the request metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use causeway_protocols::grpc::encode_frame;
use causeway_proxy::app::{self, RunningProxy};
use causeway_proxy::config::{ListenProtocol, ProxyConfig};
use futures::SinkExt as _;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// A provider answering with its tag: plain text for HTTP (`x-backend` header, and the `Host`
/// it saw in `x-seen-host`), a gRPC message + `grpc-status: 0` trailers for gRPC. `/slow`
/// waits two seconds; `/demo.Greeter/Chat` echoes each request message as it arrives.
struct Backend {
    addr: SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

impl Backend {
    async fn start(tag: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(tag, request));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, _task: task }
    }
}

fn grpc_message(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    encode_frame(false, payload, &mut out).unwrap();
    out.freeze()
}

fn grpc_ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    trailers
}

async fn answer(
    tag: &'static str,
    request: Request<Incoming>,
) -> Result<Response<BoxBody>, Infallible> {
    let path = request.uri().path().to_owned();
    let host = request
        .headers()
        .get("host")
        .map(|h| h.to_str().unwrap().to_owned())
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    // The trace context the provider received, echoed as `x-seen-<name>`.
    let seen_trace: Vec<(String, http::HeaderValue)> = [
        "traceparent",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
    ]
    .into_iter()
    .filter_map(|name| {
        let value = request.headers().get(name)?.clone();
        Some((format!("x-seen-{name}"), value))
    })
    .collect();
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let grpc = request
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let mut response = if path == "/demo.Greeter/Chat" {
        // Echo every message as it comes, then OK: proves both directions stream.
        let (tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(8);
        let mut body = request.into_body();
        tokio::spawn(async move {
            let mut tx = tx;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    let _ = tx.send(Ok(Frame::data(data))).await;
                }
            }
            let _ = tx.send(Ok(Frame::trailers(grpc_ok_trailers()))).await;
        });
        Response::new(StreamBody::new(rx).boxed_unsync())
    } else if grpc {
        let _ = request.into_body().collect().await;
        let (tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
        let mut tx = tx;
        tx.send(Ok(Frame::data(grpc_message(tag.as_bytes()))))
            .await
            .unwrap();
        tx.send(Ok(Frame::trailers(grpc_ok_trailers())))
            .await
            .unwrap();
        drop(tx);
        Response::new(StreamBody::new(rx).boxed_unsync())
    } else {
        let _ = request.into_body().collect().await;
        Response::new(Full::new(Bytes::from(tag)).boxed_unsync())
    };
    if grpc {
        response
            .headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
    }
    response
        .headers_mut()
        .insert("x-backend", tag.parse().unwrap());
    response
        .headers_mut()
        .insert("x-seen-host", host.parse().unwrap());
    for (name, value) in seen_trace {
        response
            .headers_mut()
            .insert(http::HeaderName::try_from(name).unwrap(), value);
    }
    Ok(response)
}

/// What a caller got back.
#[derive(Debug)]
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl Got {
    fn backend(&self) -> &str {
        self.headers
            .get("x-backend")
            .map_or("-", |v| v.to_str().unwrap())
    }

    /// The gRPC status: trailers, else (Trailers-Only) the headers.
    fn grpc_status(&self) -> Option<u32> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .map(|v| v.to_str().unwrap().parse().unwrap())
    }

    fn grpc_message(&self) -> String {
        self.headers
            .get("grpc-message")
            .or_else(|| self.trailers.as_ref().and_then(|t| t.get("grpc-message")))
            .map(|v| causeway_protocols::grpc::decode_grpc_message(v.as_bytes()))
            .unwrap_or_default()
    }
}

async fn collect(response: Response<Incoming>) -> Got {
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

/// An HTTP/2 (prior knowledge) connection to the proxy.
#[derive(Clone)]
struct H2 {
    sender: hyper::client::conn::http2::SendRequest<BoxBody>,
}

impl H2 {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        Self { sender }
    }

    async fn send(&self, request: Request<BoxBody>) -> Response<Incoming> {
        self.sender.clone().send_request(request).await.unwrap()
    }

    async fn get(&self, authority: &str, path: &str, headers: &[(&str, &str)]) -> Got {
        let mut builder = Request::get(format!("http://{authority}{path}"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::new()).boxed_unsync())
            .unwrap();
        collect(self.send(request).await).await
    }

    async fn grpc(&self, authority: &str, path: &str, headers: &[(&str, &str)]) -> Got {
        let mut builder = Request::post(format!("http://{authority}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(grpc_message(b"hello")).boxed_unsync())
            .unwrap();
        collect(self.send(request).await).await
    }
}

/// One HTTP/1.1 keep-alive connection to the proxy.
struct H1 {
    sender: hyper::client::conn::http1::SendRequest<BoxBody>,
}

impl H1 {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Self { sender }
    }

    async fn get(&mut self, host: &str, path: &str, headers: &[(&str, &str)]) -> Got {
        let mut builder = Request::get(path).header("host", host);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::new()).boxed_unsync())
            .unwrap();
        self.sender.ready().await.unwrap();
        collect(self.sender.send_request(request).await.unwrap()).await
    }
}

fn endpoint(backend: &Backend, version: &str) -> String {
    format!(
        "  - {{address: 127.0.0.1, port: {}, labels: {{version: {version}, app: web}}}}\n",
        backend.addr.port()
    )
}

async fn start_proxy(dir: &std::path::Path, yaml: &str) -> RunningProxy {
    let path = dir.join("proxy.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = ProxyConfig::load(&path).unwrap();
    app::start(config, Some(path)).await.unwrap()
}

fn metric(text: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("istio_requests_total") && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const HEADER: &str = "admin_listen: 127.0.0.1:0\n\
listen:\n\
- {protocol: http, address: 127.0.0.1:0}\n\
- {protocol: grpc, address: 127.0.0.1:0}\n\
- {protocol: auto, address: 127.0.0.1:0}\n\
workload: test-caller\n";

fn rules(host: &str) -> String {
    format!(
        r#"rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {{name: {host}}}
  spec:
    host: {host}
    subsets:
    - {{name: v1, labels: {{version: v1}}}}
    - {{name: v2, labels: {{version: v2}}}}
  ---
  apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {{name: {host}}}
  spec:
    hosts: [{host}]
    http:
    - name: v2-path
      match: [{{uri: {{prefix: /v2/}}}}, {{uri: {{regex: "/beta/[0-9]+"}}}}]
      route: [{{destination: {{host: {host}, subset: v2}}}}]
    - name: canary-header
      match: [{{headers: {{x-canary: {{exact: "true"}}}}}}]
      route: [{{destination: {{host: {host}, subset: v2}}}}]
    - name: admin-authority
      match: [{{authority: {{prefix: admin.}}}}]
      route: [{{destination: {{host: {host}, subset: v1}}}}]
    - name: exact-slow
      match: [{{uri: {{exact: /slow}}}}]
      timeout: 200ms
      route: [{{destination: {{host: {host}, subset: v1}}}}]
    - name: split
      route:
      - {{destination: {{host: {host}, subset: v1}}, weight: 80}}
      - {{destination: {{host: {host}, subset: v2}}, weight: 20}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_by_path_header_and_authority_and_splits_80_20() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{HEADER}services:\n- host: web.shop\n  port: 8080\n  protocol: http\n  domains: [admin.shop]\n  endpoints:\n{}{}{}",
        endpoint(&v1, "v1"),
        endpoint(&v2, "v2"),
        rules("web.shop")
    );
    let proxy = start_proxy(dir.path(), &yaml).await;
    let addr = proxy.addr(ListenProtocol::Http).unwrap();

    // HTTP/1.1 keep-alive: path (prefix, regex), header, authority routing; Host kept.
    let mut h1 = H1::connect(addr).await;
    for _ in 0..5 {
        let got = h1.get("web.shop:8080", "/v2/items", &[]).await;
        assert_eq!(
            (got.status, got.backend()),
            (StatusCode::OK, "v2"),
            "{got:?}"
        );
        assert_eq!(got.headers["x-seen-host"], "web.shop:8080");
        assert_eq!(got.body, "v2");
        let got = h1.get("web.shop", "/beta/42", &[]).await;
        assert_eq!(got.backend(), "v2", "{got:?}");
        let got = h1.get("web.shop", "/beta/x", &[("x-canary", "true")]).await;
        assert_eq!(got.backend(), "v2", "{got:?}");
        let got = h1.get("admin.shop", "/v1", &[]).await;
        assert_eq!(got.backend(), "v1", "{got:?}");
    }

    // h2c on the same port: the 80/20 split over 2,000 requests, within ±5 %.
    let h2 = H2::connect(addr).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..20 {
        let batch = futures::future::join_all((0..100).map(|_| {
            let h2 = h2.clone();
            async move { h2.get("web.shop", "/items", &[]).await }
        }))
        .await;
        for got in batch {
            assert_eq!(got.status, StatusCode::OK, "{got:?}");
            *counts.entry(got.backend().to_owned()).or_default() += 1;
        }
    }
    let share = counts.get("v1").copied().unwrap_or(0) as f64 / 2000.0;
    println!("80/20 over h2c: {counts:?}");
    assert!((share - 0.8).abs() <= 0.05, "v1 share {share}: {counts:?}");

    // The `auto` listener serves HTTP/1.1 and h2c like the `http` one.
    let auto = proxy.addr(ListenProtocol::Auto).unwrap();
    let over_h1 = H1::connect(auto)
        .await
        .get("web.shop", "/v2/items", &[])
        .await;
    let over_h2 = H2::connect(auto)
        .await
        .get("web.shop", "/v2/items", &[])
        .await;
    for got in [over_h1, over_h2] {
        assert_eq!(
            (got.status, got.backend()),
            (StatusCode::OK, "v2"),
            "{got:?}"
        );
    }

    // Errors as HTTP statuses with a short text body.
    let got = h1.get("nowhere.example", "/", &[]).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND, "{got:?}");
    assert!(
        String::from_utf8_lossy(&got.body).contains("no route"),
        "{got:?}"
    );
    let got = h1.get("web.shop", "/slow", &[]).await;
    assert_eq!(got.status, StatusCode::GATEWAY_TIMEOUT, "{got:?}");

    let text = proxy.metrics.encode().unwrap();
    let ok = metric(
        &text,
        &[
            "request_protocol=\"http\"",
            "response_code=\"200\"",
            "destination_service=\"web.shop\"",
            "request_method=\"GET\"",
        ],
    );
    assert_eq!(ok, 2022.0, "{text}");
    assert_eq!(
        metric(&text, &["response_code=\"404\"", "response_flags=\"NR\""]),
        1.0
    );
    assert_eq!(
        metric(&text, &["response_code=\"504\"", "response_flags=\"UT\""]),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            &["request_protocol=\"http\"", "destination_version=\"v2\""]
        ),
        counts.get("v2").copied().unwrap_or(0) as f64 + 17.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_and_streaming_calls_are_routed_and_counted() {
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{HEADER}services:\n- host: demo.greeter\n  port: 50051\n  protocol: grpc\n  methods: [SayHello, Chat]\n  endpoints:\n{}{}{}",
        endpoint(&v1, "v1"),
        endpoint(&v2, "v2"),
        rules("demo.greeter")
    );
    let proxy = start_proxy(dir.path(), &yaml).await;
    let addr = proxy.addr(ListenProtocol::Grpc).unwrap();
    let h2 = H2::connect(addr).await;

    // Dialled at the proxy's own address: the table is found by the service in the path.
    let own = addr.to_string();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..10 {
        let batch = futures::future::join_all((0..100).map(|_| {
            let (h2, own) = (h2.clone(), own.clone());
            async move { h2.grpc(&own, "/demo.Greeter/SayHello", &[]).await }
        }))
        .await;
        for got in batch {
            assert_eq!(got.grpc_status(), Some(0), "{got:?}");
            assert_eq!(&got.body[5..], got.backend().as_bytes());
            *counts.entry(got.backend().to_owned()).or_default() += 1;
        }
    }
    let share = counts.get("v1").copied().unwrap_or(0) as f64 / 1000.0;
    assert!((share - 0.8).abs() <= 0.06, "v1 share {share}: {counts:?}");
    // A header match, with the service's host as the authority.
    let got = h2
        .grpc(
            "demo.greeter:50051",
            "/demo.Greeter/SayHello",
            &[("x-canary", "true")],
        )
        .await;
    assert_eq!((got.grpc_status(), got.backend()), (Some(0), "v2"));

    // Bidirectional streaming: each message comes back before the next one is sent.
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let request = Request::post(format!("http://{own}/demo.Greeter/Chat"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(StreamBody::new(rx).boxed_unsync())
        .unwrap();
    let response = h2.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    for i in 0..5 {
        let message = grpc_message(format!("ping {i}").as_bytes());
        tx.send(Ok(Frame::data(message.clone()))).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the echo streamed back before the request ended")
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(echoed, message);
    }
    drop(tx);
    let trailers = body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_trailers()
        .unwrap();
    assert_eq!(trailers["grpc-status"], "0");

    // Errors as gRPC status trailers (Trailers-Only, HTTP 200).
    let got = h2.grpc(&own, "/other.Service/Call", &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.grpc_status(), Some(12), "{got:?}");
    assert!(got.grpc_message().contains("no route"), "{got:?}");
    let got = h2.grpc(&own, "/slow", &[]).await;
    assert_eq!(
        got.grpc_status(),
        Some(12),
        "not a gRPC path, no table: {got:?}"
    );

    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        metric(
            &text,
            &[
                "request_protocol=\"grpc\"",
                "response_code=\"200\"",
                "grpc_response_status=\"0\"",
                "request_method=\"SayHello\"",
                "destination_interface=\"demo.Greeter\"",
            ]
        ),
        1001.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &["request_method=\"Chat\"", "grpc_response_status=\"0\""]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &["grpc_response_status=\"12\"", "response_flags=\"NR\""]
        ),
        2.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_answered_in_the_callers_protocol() {
    let v1 = Backend::start("v1").await;
    // Ports nobody listens on: connections are refused. Two, because a refused endpoint is
    // ejected for every cluster that holds its address.
    let closed = |_| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let (closed_port, closed_web) = (closed(0).await, closed(1).await);
    let dir = tempfile::tempdir().unwrap();
    let service = |host: &str, protocol: &str, endpoints: &str| {
        format!("- host: {host}\n  port: 80\n  protocol: {protocol}\n  endpoints:\n{endpoints}")
    };
    let refused = format!("  - {{address: 127.0.0.1, port: {closed_port}}}\n");
    let refused_web = format!("  - {{address: 127.0.0.1, port: {closed_web}}}\n");
    let unhealthy = format!(
        "  - {{address: 127.0.0.1, port: {}, healthy: false}}\n",
        v1.addr.port()
    );
    let yaml = format!(
        "{HEADER}services:\n{}{}{}{}{}rules: |\n  apiVersion: networking.istio.io/v1\n  kind: VirtualService\n  metadata: {{name: slow}}\n  spec:\n    hosts: [slow.grpc]\n    http:\n    - timeout: 300ms\n      route: [{{destination: {{host: slow.grpc}}}}]\n",
        service("refused.grpc", "grpc", &refused),
        service("sick.grpc", "grpc", &unhealthy),
        service("refused.web", "http", &refused_web),
        service("sick.web", "http", &unhealthy),
        service("slow.grpc", "grpc", &endpoint(&v1, "v1")),
    );
    let proxy = start_proxy(dir.path(), &yaml).await;
    let h2 = H2::connect(proxy.addr(ListenProtocol::Grpc).unwrap()).await;
    let mut h1 = H1::connect(proxy.addr(ListenProtocol::Http).unwrap()).await;

    let got = h2.grpc("refused.grpc", "/x.Y/Z", &[]).await;
    assert_eq!((got.status, got.grpc_status()), (StatusCode::OK, Some(14)));
    assert!(got.grpc_message().contains("could be reached"), "{got:?}");
    let got = h2.grpc("sick.grpc", "/x.Y/Z", &[]).await;
    assert_eq!(got.grpc_status(), Some(14), "{got:?}");
    assert!(
        got.grpc_message().contains("no healthy endpoint"),
        "{got:?}"
    );
    // The route timeout: the provider answers /slow after 2 s.
    let got = h2.grpc("slow.grpc", "/slow", &[]).await;
    assert_eq!(got.grpc_status(), Some(4), "{got:?}");

    let got = h1.get("refused.web", "/", &[]).await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{got:?}");
    let got = h1.get("sick.web", "/", &[]).await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{got:?}");
    assert!(String::from_utf8_lossy(&got.body).contains("no healthy endpoint"));
    // A gRPC call on the HTTP port is still answered in gRPC.
    let h2c = H2::connect(proxy.addr(ListenProtocol::Http).unwrap()).await;
    let got = h2c.grpc("nowhere", "/x.Y/Z", &[]).await;
    assert_eq!(got.grpc_status(), Some(12), "{got:?}");

    let text = proxy.metrics.encode().unwrap();
    for (parts, n) in [
        (
            &["grpc_response_status=\"14\"", "response_flags=\"UF\""][..],
            1.0,
        ),
        (
            &["grpc_response_status=\"14\"", "response_flags=\"UH\""][..],
            1.0,
        ),
        (
            &["grpc_response_status=\"4\"", "response_flags=\"UT\""][..],
            1.0,
        ),
        (&["response_code=\"503\"", "response_flags=\"UF\""][..], 1.0),
        (&["response_code=\"503\"", "response_flags=\"UH\""][..], 1.0),
    ] {
        assert_eq!(metric(&text, parts), n, "{parts:?}\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_abort_and_delay_in_the_callers_protocol() {
    let v1 = Backend::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let service = |host: &str, protocol: &str| {
        format!(
            "- host: {host}\n  port: 80\n  protocol: {protocol}\n  endpoints:\n{}",
            endpoint(&v1, "v1")
        )
    };
    let yaml = format!(
        "{HEADER}services:\n{}{}{}rules: |\n  apiVersion: networking.istio.io/v1\n  kind: VirtualService\n  metadata: {{name: faulty-grpc}}\n  spec:\n    hosts: [faulty.grpc]\n    http:\n    - fault: {{abort: {{grpcStatus: UNAVAILABLE, percentage: {{value: 50}}}}}}\n      route: [{{destination: {{host: faulty.grpc}}}}]\n  ---\n  apiVersion: networking.istio.io/v1\n  kind: VirtualService\n  metadata: {{name: faulty-web}}\n  spec:\n    hosts: [faulty.web]\n    http:\n    - fault: {{abort: {{httpStatus: 418, percentage: {{value: 100}}}}}}\n      route: [{{destination: {{host: faulty.web}}}}]\n  ---\n  apiVersion: networking.istio.io/v1\n  kind: VirtualService\n  metadata: {{name: slow-web}}\n  spec:\n    hosts: [slow.web]\n    http:\n    - fault: {{delay: {{fixedDelay: 300ms, percentage: {{value: 100}}}}}}\n      route: [{{destination: {{host: slow.web}}}}]\n",
        service("faulty.grpc", "grpc"),
        service("faulty.web", "http"),
        service("slow.web", "http"),
    );
    let proxy = start_proxy(dir.path(), &yaml).await;
    let h2 = H2::connect(proxy.addr(ListenProtocol::Grpc).unwrap()).await;
    let mut h1 = H1::connect(proxy.addr(ListenProtocol::Http).unwrap()).await;

    // Half of the gRPC calls get UNAVAILABLE from the proxy; the others reach the provider.
    let (mut aborted, mut served) = (0, 0);
    for _ in 0..200 {
        let got = h2.grpc("faulty.grpc", "/demo.Greeter/SayHello", &[]).await;
        match got.grpc_status() {
            Some(14) => {
                assert!(got.grpc_message().contains("fault injected"), "{got:?}");
                assert_eq!(got.backend(), "-");
                aborted += 1;
            }
            Some(0) => served += 1,
            other => panic!("unexpected status {other:?}"),
        }
    }
    assert!(
        (60..140).contains(&aborted),
        "{aborted} aborted, {served} served"
    );

    let got = h1.get("faulty.web", "/", &[]).await;
    assert_eq!(got.status.as_u16(), 418, "{got:?}");
    assert_eq!(got.backend(), "-", "never forwarded");

    let started = std::time::Instant::now();
    let got = h1.get("slow.web", "/", &[]).await;
    assert_eq!((got.status, got.backend()), (StatusCode::OK, "v1"));
    assert!(started.elapsed() >= Duration::from_millis(300));

    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        metric(
            &text,
            &["response_flags=\"FI\"", "grpc_response_status=\"14\""]
        ),
        f64::from(aborted)
    );
    assert_eq!(
        metric(&text, &["response_flags=\"FI\"", "response_code=\"418\""]),
        1.0
    );
    let counter = |name: &str, service: &str| {
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(service))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!(
        counter("causeway_proxy_faults_aborted_total", "faulty.grpc"),
        f64::from(aborted)
    );
    assert_eq!(
        counter("causeway_proxy_faults_delayed_total", "slow.web"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carries_traceparent_and_b3_to_the_provider_with_the_proxys_span_as_parent() {
    let v1 = Backend::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{HEADER}services:\n- host: web.shop\n  port: 8080\n  protocol: http\n  endpoints:\n{}- host: demo.greeter\n  port: 50051\n  protocol: grpc\n  endpoints:\n{}",
        endpoint(&v1, "v1"),
        endpoint(&v1, "v1"),
    );
    let proxy = start_proxy(dir.path(), &yaml).await;
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let seen = |got: &Got, name: &str| {
        got.headers
            .get(format!("x-seen-{name}").as_str())
            .map(|v| v.to_str().unwrap().to_owned())
    };
    // Same trace, sampled kept, and the proxy's own span (not the caller's) as the parent.
    let check = |got: &Got| -> String {
        let traceparent = seen(got, "traceparent").expect("traceparent reaches the provider");
        let fields: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(fields.len(), 4, "{traceparent}");
        assert_eq!(fields[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
        assert_ne!(
            fields[2], "00f067aa0ba902b7",
            "the proxy's span is the parent"
        );
        assert_eq!(fields[3], "01", "sampled kept");
        fields[2].to_owned()
    };

    // HTTP/1.1, with B3 multi headers alongside.
    let mut h1 = H1::connect(proxy.addr(ListenProtocol::Http).unwrap()).await;
    let got = h1
        .get(
            "web.shop",
            "/",
            &[
                ("traceparent", caller),
                ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
                ("x-b3-spanid", "00f067aa0ba902b7"),
                ("x-b3-sampled", "1"),
            ],
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    let span = check(&got);
    assert_eq!(seen(&got, "x-b3-spanid"), Some(span));
    assert_eq!(
        seen(&got, "x-b3-parentspanid").as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(
        seen(&got, "x-b3-traceid").as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );

    // gRPC over HTTP/2.
    let h2 = H2::connect(proxy.addr(ListenProtocol::Grpc).unwrap()).await;
    let got = h2
        .grpc(
            "demo.greeter",
            "/demo.Greeter/Greet",
            &[("traceparent", caller)],
        )
        .await;
    assert_eq!(got.grpc_status(), Some(0), "{got:?}");
    check(&got);

    // An untraced call stays untraced.
    let got = h1.get("web.shop", "/", &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(seen(&got, "traceparent"), None);
}

/// `tcp.maxConnections` bounds the upstream connections a cluster's requests open: with one
/// allowed, an HTTP/1.1 request that needs a second connection (the first is busy with a slow
/// exchange) is refused at once with 503 `UO`, and served once the first is back in the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connection_limit_refuses_a_second_upstream_connection_at_once() {
    let v1 = Backend::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{HEADER}services:\n- host: web\n  port: 80\n  protocol: http\n  endpoints:\n{}rules: |\n  apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {{name: web}}\n  spec:\n    host: web\n    trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: 1}}}}}}\n",
        endpoint(&v1, "v1")
    );
    let proxy = start_proxy(dir.path(), &yaml).await;
    let addr = proxy.addr(ListenProtocol::Http).unwrap();
    let mut slow_caller = H1::connect(addr).await;
    let slow = tokio::spawn(async move { slow_caller.get("web", "/slow", &[]).await });
    // The slow exchange holds the cluster's only upstream connection for 2 s, once it is sent.
    for _ in 0..200 {
        let text = proxy.metrics.encode().unwrap();
        if text
            .lines()
            .any(|l| l.starts_with("causeway_proxy_upstream_requests_total{") && l.ends_with(" 1"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut other = H1::connect(addr).await;
    let mut refused = None;
    for _ in 0..50 {
        let got = other.get("web", "/", &[]).await;
        if got.status == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused.expect("no request was refused at the connection limit");
    assert!(
        String::from_utf8_lossy(&refused.body).contains("connection limit"),
        "{refused:?}"
    );
    assert_eq!(slow.await.unwrap().status, StatusCode::OK);
    // The first connection is idle in the pool again: the next request reuses it.
    assert_eq!(other.get("web", "/", &[]).await.status, StatusCode::OK);
    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        metric(&text, &["response_code=\"503\"", "response_flags=\"UO\""]),
        1.0,
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("causeway_proxy_upstream_overflow_total") && !l.ends_with(" 0")),
        "{text}"
    );
}
