//! The admin HTTP server: `/ready` (200 once listeners are bound and routes are loaded),
//! `/metrics` (OpenMetrics text) and `/config_dump` (the routing snapshot in force, as JSON).
//! It only reads shared state, so it can never slow the data plane down.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::state::SnapshotStore;

/// What the admin server reads.
#[derive(Debug)]
pub struct AdminState {
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The routing snapshot in force.
    pub store: Arc<SnapshotStore>,
    /// Set once every listener is bound.
    pub listening: AtomicBool,
}

/// Serves admin requests on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
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
            if state.listening.load(Ordering::Acquire) && state.store.is_loaded() {
                respond(StatusCode::OK, "text/plain", "ready\n")
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready: listeners or routes not loaded yet\n",
                )
            }
        }
        "/metrics" => match state.metrics.encode() {
            Ok(text) => respond(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(error) => respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("cannot encode metrics: {error}\n"),
            ),
        },
        "/config_dump" => {
            let snapshot = state.store.load();
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
            "not found; try /ready, /metrics or /config_dump\n",
        ),
    }
}
