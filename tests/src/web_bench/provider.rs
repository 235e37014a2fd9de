//! Fixed-response providers for the gRPC and HTTP benchmark rows, on hyper so they cost little
//! next to what is measured:
//!
//! - [`serve_grpc`]: HTTP/2 with prior knowledge; a unary call to [`GRPC_PATH`] gets one
//!   pre-encoded message ([`grpc_message`]) and `grpc-status: 0` trailers, after the request
//!   body has been read to its end (as a real unary server must); any other path gets a
//!   Trailers-Only `UNIMPLEMENTED`.
//! - [`serve_http`]: HTTP/1.1 keep-alive; a request for [`HTTP_PATH`] gets `200` with a fixed
//!   body ([`http_body`]), any other path `404`.
//!
//! Both read the whole request first, so a request body the caller sends is accounted for in
//! the provider rather than left in a socket buffer.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

use super::{GRPC_PATH, HTTP_PATH, grpc_message, http_body};

/// A response body of at most one data frame and then, optionally, trailers: all a unary gRPC
/// answer or a fixed HTTP answer needs, without a channel or a task per response.
#[derive(Debug, Default)]
pub struct Fixed {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Fixed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// What the providers answer with, built once.
#[derive(Debug, Clone)]
struct Answers {
    grpc: Bytes,
    http: Bytes,
}

/// Serves gRPC (HTTP/2 prior knowledge) on `listener` until the task is dropped.
pub async fn serve_grpc(listener: TcpListener, payload_bytes: usize) {
    let answers = Answers {
        grpc: grpc_message(payload_bytes),
        http: Bytes::new(),
    };
    accept_loop(listener, move |stream| {
        let answers = answers.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let answers = answers.clone();
                async move { Ok::<_, Infallible>(grpc_answer(request, &answers).await) }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    })
    .await;
}

/// Serves HTTP/1.1 with keep-alive on `listener` until the task is dropped.
pub async fn serve_http(listener: TcpListener, payload_bytes: usize) {
    let answers = Answers {
        grpc: Bytes::new(),
        http: http_body(payload_bytes),
    };
    accept_loop(listener, move |stream| {
        let answers = answers.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let answers = answers.clone();
                async move { Ok::<_, Infallible>(http_answer(request, &answers).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    })
    .await;
}

async fn accept_loop(listener: TcpListener, mut on_connection: impl FnMut(TcpStream)) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                on_connection(stream);
            }
            Err(error) => {
                // Out of file descriptors (the memory phase opens a thousand connections through
                // a proxy): back off rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn grpc_answer(request: Request<Incoming>, answers: &Answers) -> Response<Fixed> {
    let known = request.uri().path() == GRPC_PATH;
    // Unary: the call is complete only when its request message has arrived.
    let read = request.into_body().collect().await.is_ok();
    let mut response = Response::new(Fixed::default());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    if known && read {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        *response.body_mut() = Fixed {
            data: Some(answers.grpc.clone()),
            trailers: Some(trailers),
        };
    } else {
        // Trailers-Only: the status in the headers, no body.
        let (status, message) = if known {
            ("13", "request body failed")
        } else {
            (
                "12",
                "unknown method: the benchmark provider serves /causeway.bench.Echo/Echo",
            )
        };
        let headers = response.headers_mut();
        headers.insert("grpc-status", HeaderValue::from_static(status));
        headers.insert("grpc-message", HeaderValue::from_static(message));
    }
    response
}

async fn http_answer(request: Request<Incoming>, answers: &Answers) -> Response<Fixed> {
    let known = request.uri().path() == HTTP_PATH;
    let read = request.into_body().collect().await.is_ok();
    let (status, body) = match (known, read) {
        (true, true) => (StatusCode::OK, answers.http.clone()),
        (false, _) => (
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"the benchmark provider serves /echo\n"),
        ),
        (true, false) => (
            StatusCode::BAD_REQUEST,
            Bytes::from_static(b"request body failed\n"),
        ),
    };
    let mut response = Response::new(Fixed {
        data: Some(body),
        trailers: None,
    });
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;

    async fn listen() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        (listener, address)
    }

    #[tokio::test]
    async fn grpc_answers_a_unary_call_with_trailers() {
        let (listener, address) = listen().await;
        tokio::spawn(serve_grpc(listener, 1024));
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        let call = |path: &str| {
            Request::post(format!("http://{address}{path}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(Full::new(grpc_message(1024)))
                .unwrap()
        };
        let response = client.request(call(GRPC_PATH)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let collected = response.into_body().collect().await.unwrap();
        assert_eq!(
            collected.trailers().unwrap().get("grpc-status").unwrap(),
            "0"
        );
        assert_eq!(collected.to_bytes(), grpc_message(1024));

        let unknown = client.request(call("/other.Service/Call")).await.unwrap();
        assert_eq!(unknown.headers().get("grpc-status").unwrap(), "12");
    }

    #[tokio::test]
    async fn http_answers_on_one_kept_alive_connection() {
        let (listener, address) = listen().await;
        tokio::spawn(serve_http(listener, 1024));
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        for _ in 0..3 {
            let response = client
                .request(
                    Request::get(format!("http://{address}{HTTP_PATH}"))
                        .body(Full::default())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, http_body(1024));
        }
        let missing = client
            .request(
                Request::get(format!("http://{address}/nope"))
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
