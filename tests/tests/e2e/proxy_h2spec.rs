//! HTTP/2 conformance of the proxy's caller side, checked by h2spec (the suite HTTP/2 servers
//! are commonly measured with; Go, built from the module proxy): every test of its generic,
//! HTTP/2 and HPACK sections against an `http` listener forwarding to a real HTTP/1.1
//! provider, and the connection-preface tests against a `grpc` listener (an `http` listener
//! answers a caller that does not open with the HTTP/2 preface as HTTP/1.1, by design).

use causeway_proxy::config::ListenProtocol;
use causeway_tests::go::GoProgram;
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use causeway_tests::web_bench::provider::serve_http;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2spec_passes_against_the_http_and_grpc_listeners() {
    let program = GoProgram::build(&workspace_root().join("tests/go/h2spec")).unwrap();
    let provider = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider_port = provider.local_addr().unwrap().port();
    tokio::spawn(serve_http(provider, 64));
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
