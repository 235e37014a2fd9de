//! One real call that shows a target answers correctly before it is loaded: h2load and wrk
//! count HTTP statuses only, so a proxy answering gRPC errors as Trailers-Only (HTTP 200) or an
//! empty body would otherwise pass for a fast one.

use std::net::SocketAddr;

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{GRPC_PATH, HTTP_PATH, grpc_message, http_body};

/// Calls `GRPC_PATH` once over HTTP/2 at `address`: the answer must be the provider's message
/// with `grpc-status: 0`.
pub async fn grpc(address: SocketAddr, payload_bytes: usize) -> anyhow::Result<()> {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = Request::post(format!("http://{address}{GRPC_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(grpc_message(payload_bytes)))?;
    let response = client.request(request).await.context("gRPC call")?;
    ensure!(
        response.status() == StatusCode::OK,
        "gRPC call answered HTTP {}",
        response.status()
    );
    if let Some(status) = response.headers().get("grpc-status") {
        bail!("gRPC call answered Trailers-Only grpc-status {status:?}");
    }
    let collected = response.into_body().collect().await?;
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map(|s| s.to_str().unwrap_or_default().to_owned());
    ensure!(
        status.as_deref() == Some("0"),
        "gRPC call ended with grpc-status {status:?}"
    );
    ensure!(
        collected.to_bytes() == grpc_message(payload_bytes),
        "gRPC call answered another message"
    );
    Ok(())
}

/// Asks for `HTTP_PATH` once over HTTP/1.1 at `address`: `200` and the provider's body.
pub async fn http(address: SocketAddr, payload_bytes: usize) -> anyhow::Result<()> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = Request::get(format!("http://{address}{HTTP_PATH}")).body(Full::default())?;
    let response = client.request(request).await.context("HTTP request")?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    ensure!(
        status == StatusCode::OK,
        "HTTP request answered {status}: {}",
        String::from_utf8_lossy(&body).trim()
    );
    ensure!(
        body == http_body(payload_bytes),
        "HTTP request answered another body ({} bytes)",
        body.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web_bench::provider;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn accepts_the_provider_and_rejects_a_wrong_size() {
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (g, h) = (
            grpc_listener.local_addr().unwrap(),
            http_listener.local_addr().unwrap(),
        );
        tokio::spawn(provider::serve_grpc(grpc_listener, 1024));
        tokio::spawn(provider::serve_http(http_listener, 1024));
        grpc(g, 1024).await.unwrap();
        http(h, 1024).await.unwrap();
        assert!(grpc(g, 10).await.is_err());
        assert!(http(h, 10).await.is_err());
        // The wrong protocol on each port fails too.
        assert!(grpc(h, 1024).await.is_err());
    }
}
