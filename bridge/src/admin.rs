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
use crate::rules::{RuleSet, RulesStatus};
use crate::xds::server::{ClientInfo, ClientRegistry, XdsState};
use crate::xds::translate::NodeLocality;

/// What the admin server reads.
#[derive(Debug)]
pub struct AdminState {
    /// The metrics registry.
    pub metrics: Registry,
    /// The current snapshot.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// The current xDS state.
    pub xds: watch::Receiver<Arc<XdsState>>,
    /// Connected xDS clients.
    pub xds_clients: Arc<ClientRegistry>,
    /// The traffic rules in force.
    pub rules: watch::Receiver<Arc<RuleSet>>,
    /// The rules watcher's status (last rejection).
    pub rules_status: Arc<RulesStatus>,
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
        "/debug/xds" => json(&state.xds_clients.list()),
        "/debug/rules" => {
            let rules = state.rules.borrow().clone();
            json(&state.rules_status.debug(&rules))
        }
        "/debug/config_dump" => config_dump(state, request.uri().query().unwrap_or("")),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /ready, /metrics, /debug/services, /debug/rules, /debug/xds or /debug/config_dump?node=ID\n",
        ),
    }
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => respond(StatusCode::OK, "application/json", body),
        Err(error) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("cannot encode: {error}\n"),
        ),
    }
}

/// What one node is served: per type, resource names with versions, plus its stream status.
#[derive(serde::Serialize)]
struct ConfigDump {
    node: String,
    clients: Vec<ClientInfo>,
    resources: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

fn config_dump(state: &AdminState, query: &str) -> Response<Full<Bytes>> {
    let node = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("node="))
        .unwrap_or("")
        .to_owned();
    let clients: Vec<ClientInfo> = state
        .xds_clients
        .list()
        .into_iter()
        .filter(|c| node.is_empty() || c.node_id == node)
        .collect();
    let locality = clients
        .first()
        .and_then(|c| c.locality.split_once('/'))
        .map(|(region, zone)| NodeLocality {
            region: region.to_owned(),
            zone: zone.to_owned(),
        })
        .unwrap_or_default();
    let xds = state.xds.borrow().clone();
    let set = xds.resources_for(&locality);
    let resources = set
        .type_urls()
        .into_iter()
        .map(|type_url| {
            let names = set
                .of_type(type_url)
                .resources
                .iter()
                .map(|(name, r)| (name.clone(), r.version.clone()))
                .collect();
            (type_url.to_owned(), names)
        })
        .collect();
    json(&ConfigDump {
        node,
        clients,
        resources,
    })
}
