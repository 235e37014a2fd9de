//! HTTP/2 conformance of the proxy's caller side, checked by h2spec (the suite HTTP/2 servers
//! are commonly measured with; Go, built from the module proxy): every test of its generic,
//! HTTP/2 and HPACK sections against an `http` listener forwarding to a real HTTP/1.1
//! provider, and the connection-preface tests against a `grpc` listener (an `http` listener
//! answers a caller that does not open with the HTTP/2 preface as HTTP/1.1, by design).
//!
//! The provider answers after 100 ms: several h2spec tests send frames right after a request's
//! HEADERS and expect the stream still open, which a proxy answering at loopback speed would
//! otherwise race.

use causeway_proxy::config::ListenProtocol;
use causeway_tests::go::GoProgram;
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::proxy_resilience::start_proxy;

fn run_h2spec(program: &GoProgram, port: u16, sections: &[&str]) -> (bool, String) {
    let output = program
        .command()
        .args(["-host", "127.0.0.1", "-port", &port.to_string()])
        .args(sections)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// An HTTP/1.1 provider that answers every request with a short body after 100 ms.
async fn slow_provider(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                    Bytes::from_static(b"conformance"),
                )))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2spec_passes_against_the_http_and_grpc_listeners() {
    let program = GoProgram::build(&workspace_root().join("tests/go/h2spec")).unwrap();
    let provider = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider_port = provider.local_addr().unwrap().port();
    tokio::spawn(slow_provider(provider));
    let (http, grpc) = (free_port().unwrap(), free_port().unwrap());
    let config = format!(
        "admin_listen: 127.0.0.1:{admin}
listen:
- {{protocol: http, address: 127.0.0.1:{http}}}
- {{protocol: grpc, address: 127.0.0.1:{grpc}}}
workload: h2spec
services:
- host: conformance.http
  port: {provider_port}
  protocol: http
  domains: [\"127.0.0.1:{http}\", \"127.0.0.1\"]
  endpoints:
  - {{address: 127.0.0.1, port: {provider_port}, labels: {{version: v1}}}}
",
        admin = free_port().unwrap(),
    );
    let (proxy, _dir) = start_proxy(&config).await;
    assert!(proxy.addr(ListenProtocol::Http).is_some());
    let (http_ok, http_report) = tokio::task::spawn_blocking(move || {
        run_h2spec(
            &program,
            http,
            &[
                "generic", "http2/4", "http2/5", "http2/6", "http2/7", "http2/8", "hpack",
            ],
        )
    })
    .await
    .unwrap();
    assert!(http_ok, "h2spec against the http listener:\n{http_report}");
    assert!(http_report.contains("0 failed"), "{http_report}");
    let program = GoProgram::build(&workspace_root().join("tests/go/h2spec")).unwrap();
    let (grpc_ok, grpc_report) =
        tokio::task::spawn_blocking(move || run_h2spec(&program, grpc, &["http2/3.5"]))
            .await
            .unwrap();
    assert!(grpc_ok, "h2spec against the grpc listener:\n{grpc_report}");
}
