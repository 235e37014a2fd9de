//! The estate's HTTP service, a Spring Cloud style REST application: `GET /items/<id>` answers
//! `200 text/plain` with who it is (hyper, HTTP/1.1), and a caller with a keep-alive connection
//! pool that sends every request to the local proxy with the service's name as `Host`, as a
//! client of `http://catalog/...` behind a sidecar does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client as PooledClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::served::{CallError, Served};

/// The service name providers register (Spring Cloud's `spring.application.name`), which is
/// also the mesh host and what callers put in `Host`.
pub const NAME: &str = "catalog";
/// How long a caller waits for an answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Catalog provider; dropping it stops listening and closes its connections.
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
        let answer = Arc::<str>::from(Served::answer("item", version, zone));
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
        let _ = stream.set_nodelay(true);
        let answer = answer.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = answer.clone();
                async move { Ok::<_, Infallible>(respond(&request, &answer)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(request: &Request<Incoming>, answer: &str) -> Response<Full<Bytes>> {
    let found = request.method() == hyper::Method::GET
        && request
            .uri()
            .path()
            .strip_prefix("/items/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    let (status, text) = if found {
        (StatusCode::OK, answer.to_owned())
    } else {
        (
            StatusCode::NOT_FOUND,
            format!("no such item: {}", request.uri().path()),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A Catalog caller: pooled HTTP/1.1 keep-alive connections to the proxy.
#[derive(Debug, Clone)]
pub struct Client {
    target: SocketAddr,
    pool: PooledClient<HttpConnector, Empty<Bytes>>,
}

impl Client {
    /// A caller of `target` (the proxy's HTTP listener).
    pub fn new(target: SocketAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            target,
            pool: PooledClient::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// `GET /items/<id>` on the catalog with `headers`; says who served it.
    pub async fn item(&self, id: u32, headers: &[(&str, &str)]) -> Result<Served, CallError> {
        let mut builder = Request::get(format!("http://{}/items/{id}", self.target))
            // The mesh routes by authority: the service, not the proxy it is sent to.
            .header(hyper::header::HOST, NAME);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Empty::new())
            .map_err(|e| CallError::NoAnswer(format!("cannot build the request: {e}")))?;
        let response = tokio::time::timeout(CALL_TIMEOUT, self.pool.request(request))
            .await
            .map_err(|_| CallError::NoAnswer("timed out".into()))?
            .map_err(|e| CallError::NoAnswer(format!("send: {e}")))?;
        let status = response.status();
        let body = tokio::time::timeout(CALL_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| CallError::NoAnswer("timed out reading the body".into()))?
            .map_err(|e| CallError::NoAnswer(format!("read: {e}")))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        if status != StatusCode::OK {
            return Err(CallError::Failed {
                code: format!("HTTP {}", status.as_u16()),
                message: text,
            });
        }
        Served::parse(&text)
            .ok_or_else(|| CallError::NoAnswer(format!("unexpected answer `{text}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_caller_reads_who_served_it_and_unknown_paths_are_404() {
        let provider = Provider::start("v2", "zone-a").await.unwrap();
        let client = Client::new(provider.addr);
        let served = client.item(7, &[]).await.unwrap();
        assert_eq!(
            (served.version.as_str(), served.zone.as_str()),
            ("v2", "zone-a")
        );
        let request = Request::get(format!("http://{}/nope", provider.addr))
            .body(Empty::new())
            .unwrap();
        let response = client.pool.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
