//! Local mode for gRPC and HTTP services: a service's VirtualService `http` routes → its
//! [`HttpRouteTable`], the same shape the bridge serves over RDS (`bridge/src/xds/translate/
//! http_routes.rs`), so both modes route alike:
//!
//! - each `match` becomes its own route (Istio ORs them): `uri` the path match, `authority` a
//!   `:authority` header match, `headers` header matches; a match on `sourceLabels` is left out
//!   (the caller's labels are not known here), as the bridge does;
//! - `route` becomes weighted clusters (a lone destination takes everything);
//! - `timeout`, `retries`, `fault`, `mirror` are carried over;
//! - no VirtualService: one catch-all route to all the service's endpoints.

use std::sync::Arc;

use causeway_protocols::rules::RuleSet;
use causeway_protocols::rules::common::{Destination, Percent, StringMatch};
use causeway_protocols::rules::virtual_service::{
    AbortStatus, HttpMatchRequest, HttpRoute as Rule,
};

use crate::config::{ConfigError, ProxyConfig, ServiceConfig};
use crate::routing::http::{AbortWith, FaultSpec, MirrorSpec, RetrySpec};
use crate::routing::{
    HttpRoute, HttpRouteTable, HttpTableLabels, PathMatch, Priority, WeightedClusters, cluster_name,
};

/// Istio's retry conditions when a VirtualService gives attempts but no `retryOn`.
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The cluster of a rule destination, checked against the configured services.
fn cluster_of(
    config: &ProxyConfig,
    service: &ServiceConfig,
    destination: &Destination,
    at: &str,
) -> Result<Arc<str>, ConfigError> {
    let port = match &destination.port {
        Some(p) => u16::try_from(p.number).unwrap_or(0),
        // The same port on the same host; another host's only (or first) port.
        None if destination.host == service.host => service.port,
        None => config
            .services
            .iter()
            .find(|s| s.host == destination.host)
            .map_or(0, |s| s.port),
    };
    if !config
        .services
        .iter()
        .any(|s| s.host == destination.host && s.port == port)
    {
        return Err(invalid(
            at,
            format!(
                "destination host {} (port {port}) is not a configured service",
                destination.host
            ),
        ));
    }
    let subset = destination.subset.clone().unwrap_or_default();
    Ok(Arc::from(cluster_name(port, &subset, &destination.host)))
}

fn path_match(uri: Option<&StringMatch>) -> PathMatch {
    match uri {
        None | Some(StringMatch::Present) => PathMatch::Prefix("/".to_owned()),
        Some(StringMatch::Exact(path)) => PathMatch::Exact(path.clone()),
        Some(StringMatch::Prefix(prefix)) => PathMatch::Prefix(prefix.clone()),
        Some(StringMatch::Regex(pattern)) => PathMatch::Regex(pattern.clone()),
    }
}

/// One route per match of `rule` (a rule without matches matches everything).
fn matches_of(rule: &Rule) -> Vec<(PathMatch, Vec<(String, StringMatch)>)> {
    if rule.matches.is_empty() {
        return vec![(PathMatch::Prefix("/".to_owned()), Vec::new())];
    }
    rule.matches
        .iter()
        .filter(|m| m.source_labels.is_empty())
        .map(|m: &HttpMatchRequest| {
            let mut headers: Vec<(String, StringMatch)> = m
                .authority
                .iter()
                .map(|a| (":authority".to_owned(), a.clone()))
                .collect();
            headers.extend(
                m.headers
                    .iter()
                    .map(|(name, rule)| (name.to_ascii_lowercase(), rule.clone())),
            );
            (path_match(m.uri.as_ref()), headers)
        })
        .collect()
}

/// The route table of a gRPC or HTTP service.
pub fn route_table(
    service: &ServiceConfig,
    config: &ProxyConfig,
    rules: &RuleSet,
) -> Result<HttpRouteTable, ConfigError> {
    let name = format!("{}:{}", service.host, service.port);
    let mut routes = Vec::new();
    let services = rules.virtual_services_for(&service.host);
    for vs in &services {
        for (i, rule) in vs.spec.http.iter().enumerate() {
            let route_name = rule
                .name
                .clone()
                .unwrap_or_else(|| format!("{}/{}#{i}", vs.metadata.namespace, vs.metadata.name));
            let at = format!(
                "rules: VirtualService {}/{} http[{i}]",
                vs.metadata.namespace, vs.metadata.name
            );
            let single = rule.route.len() == 1;
            let mut destinations = Vec::new();
            for d in &rule.route {
                let cluster = cluster_of(config, service, &d.destination, &at)?;
                // Istio: a lone destination takes all traffic whatever its weight says.
                destinations.push((cluster, if single { 1 } else { d.weight }));
            }
            let mirrors = match &rule.mirror {
                Some(mirror) => vec![MirrorSpec {
                    cluster: cluster_of(config, service, mirror, &at)?,
                    fraction: rule
                        .mirror_percentage
                        .unwrap_or(Percent { value: 100.0 })
                        .fraction(),
                }],
                None => Vec::new(),
            };
            let retries = rule.retries.as_ref().filter(|r| r.attempts > 0).map(|r| {
                let conditions = r.conditions();
                RetrySpec::new(
                    r.attempts,
                    r.per_try_timeout.map(|t| millis(t.get())),
                    if conditions.is_empty() {
                        DEFAULT_RETRY_ON.to_owned()
                    } else {
                        conditions.join(",")
                    },
                    &[],
                )
            });
            let fault = rule.fault.as_ref().map(|f| FaultSpec {
                delay: f.delay.as_ref().map(|d| {
                    (
                        millis(d.fixed_delay.get()),
                        d.percentage.map_or(0.0, Percent::fraction),
                    )
                }),
                abort: f.abort.as_ref().map(|a| {
                    let with = match a.status {
                        AbortStatus::HttpStatus(status) => AbortWith::Http(status),
                        AbortStatus::GrpcStatus(code) => AbortWith::Grpc(code.code()),
                    };
                    (with, a.percentage.map_or(0.0, Percent::fraction))
                }),
            });
            for (path, headers) in matches_of(rule) {
                routes.push(HttpRoute {
                    name: route_name.clone(),
                    path,
                    headers,
                    destinations: WeightedClusters::new(destinations.clone()),
                    timeout_ms: rule.timeout.map(|t| millis(t.get())),
                    retries: retries.clone(),
                    fault: fault.clone(),
                    mirrors: mirrors.clone(),
                    hash_policy: None,
                    // A VirtualService has no priority: requests are DEFAULT unless their
                    // traffic class is HIGH.
                    priority: Priority::Default,
                });
            }
        }
    }
    if services.is_empty() {
        routes.push(HttpRoute {
            name: "default".to_owned(),
            path: PathMatch::Prefix("/".to_owned()),
            headers: Vec::new(),
            destinations: WeightedClusters::single(Arc::from(cluster_name(
                service.port,
                "",
                &service.host,
            ))),
            timeout_ms: None,
            retries: None,
            fault: None,
            mirrors: Vec::new(),
            hash_policy: None,
            priority: Priority::Default,
        });
    }
    let mut domains = vec![service.host.to_ascii_lowercase(), name.to_ascii_lowercase()];
    domains.extend(service.domains.iter().map(|d| d.to_ascii_lowercase()));
    Ok(HttpRouteTable {
        name,
        host: service.host.clone(),
        domains,
        routes,
        methods: service.methods.clone(),
        metric_labels: HttpTableLabels::default(),
    })
}
