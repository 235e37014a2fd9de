//! The admin HTTP server: `/ready`, `/metrics` (OpenMetrics text) and `/debug/services` (the
//! current snapshot as JSON). It reads the snapshot channel and the metrics registry only, so it
//! can never slow the model down.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::model::snapshot::Snapshot;

/// What the admin server reads.
#[derive(Debug)]
pub struct AdminState {
    /// The metrics registry.
    pub metrics: Registry,
    /// The current snapshot.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
}

/// Serves admin requests on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and similar: keep the listener alive and retry.
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, &request)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn handle(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    match request.uri().path() {
        "/ready" => {
            let snapshot = state.snapshots.borrow().clone();
            let waiting: Vec<&str> = snapshot
                .registries
                .iter()
                .filter(|(_, s)| !s.listed)
                .map(|(name, _)| name.as_str())
                .collect();
            if waiting.is_empty() && !snapshot.registries.is_empty() {
                respond(StatusCode::OK, "text/plain", "ready\n")
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("waiting for the first listing of: {}\n", waiting.join(", ")),
                )
            }
        }
        "/metrics" => {
            let mut text = String::new();
            match prometheus_client::encoding::text::encode(&mut text, &state.metrics) {
                Ok(()) => respond(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Err(error) => respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("cannot encode metrics: {error}\n"),
                ),
            }
        }
        "/debug/services" => {
            let snapshot = state.snapshots.borrow().clone();
            match serde_json::to_vec_pretty(&*snapshot) {
                Ok(json) => respond(StatusCode::OK, "application/json", json),
                Err(error) => respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("cannot encode the snapshot: {error}\n"),
                ),
            }
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /ready, /metrics or /debug/services\n",
        ),
    }
}
