//! Local mode: turns the config file's static `services` and traffic `rules` into a routing
//! [`Snapshot`], and watches the files so a changed route or endpoint set is swapped in without
//! touching connections or requests in flight.
//!
//! Translation follows what the bridge publishes over xDS, so both modes route alike:
//! - per service port one cluster `outbound|<port>||<host>` with every endpoint, plus one
//!   `outbound|<port>|<subset>|<host>` per DestinationRule subset (endpoints whose labels match);
//!   load balancing, circuit breakers and locality settings from the subset's effective policy
//!   (the HIGH routing priority's thresholds from the host's TrafficIsolation
//!   `highPriorityConnectionPool`);
//! - per Dubbo service one route table: the MetaRouter routes of the host in order (attribute
//!   `interface` checked against the service, `method` on the method, every other attribute an
//!   attachment), or, when the host has no MetaRouter, one route to all endpoints. A host with
//!   MetaRouters but no matching route answers "no route", as Envoy and Aeraki do;
//! - per Thrift service one route table by host ([`thrift`](self) submodule): `method` on the
//!   bare method, `service`/`interface` on the multiplexed service name, every other attribute a
//!   THeader header.
//! - per gRPC or HTTP service one HTTP route table from the host's VirtualService `http` routes
//!   (`http_routes.rs`), or one catch-all route without a VirtualService;
//! - per host its admission policy: the TrafficIsolation classes and the local rate limit of the
//!   most specific MetaRouter that sets one, through the same `ServiceExtras` the bridge serves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use causeway_protocols::rules::RuleSet;
use causeway_protocols::rules::common::StringMatch;
use causeway_protocols::rules::destination_rule::{
    ConnectionPoolSettings, HashKey, LbPolicy as RuleLb, SimpleLb,
};

use causeway_protocols::xds_ext::ServiceExtras;

use crate::config::{ConfigError, ListenProtocol, ProxyConfig, RulesSource, ServiceConfig};
use crate::isolation::AdmissionPolicy;
use crate::metrics::Metrics;
use crate::routing::http::MirrorSpec;
use crate::routing::{
    CircuitBreaker, Cluster, DubboRoute, DubboRouteTable, Endpoint, EndpointLabels, HashOn,
    LbPolicy, Locality, PerPriority, ServiceMatch, Snapshot, TableLabels, Thresholds,
    WeightedClusters, cluster_name, normalize_version,
};
use crate::state::SnapshotStore;

/// Loads the rules a config names (none, inline or a file).
pub fn load_rules(
    config: &ProxyConfig,
    config_path: Option<&Path>,
) -> Result<RuleSet, ConfigError> {
    let base = config_path.and_then(Path::parent);
    let rules = match config.rules_source(base) {
        RulesSource::None => RuleSet::default(),
        RulesSource::Inline(text) => {
            let file = config_path.map_or_else(|| "config".to_owned(), |p| p.display().to_string());
            RuleSet::parse(&format!("{file} (rules)"), &text)?
        }
        RulesSource::File(path) => RuleSet::load(&path)?,
    };
    // Applied as written; a warning says what was probably not meant.
    for warning in &rules.warnings {
        tracing::warn!(%warning, "rules accepted with a warning");
    }
    Ok(rules)
}

/// Reads the config file and its rules and builds the snapshot: what `--validate` checks.
pub fn load(path: &Path) -> Result<(ProxyConfig, Snapshot), ConfigError> {
    let config = ProxyConfig::load(path)?;
    let rules = load_rules(&config, Some(path))?;
    let snapshot = build_snapshot(&config, &rules)?;
    Ok((config, snapshot))
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks what the schema cannot: unique services, Dubbo identities, endpoint weights.
pub fn validate(config: &ProxyConfig) -> Result<(), ConfigError> {
    let mut seen = BTreeSet::new();
    let mut identities = BTreeSet::new();
    let mut thrift_services = BTreeSet::new();
    for (i, service) in config.services.iter().enumerate() {
        let at = format!("services[{i}]");
        if service.host.is_empty() {
            return Err(invalid(format!("{at}.host"), "must not be empty"));
        }
        if service.port == 0 {
            return Err(invalid(format!("{at}.port"), "must be 1..=65535"));
        }
        if !seen.insert((service.host.as_str(), service.port)) {
            return Err(invalid(
                at,
                format!("{}:{} is configured twice", service.host, service.port),
            ));
        }
        match service.protocol {
            ListenProtocol::Dubbo => {}
            ListenProtocol::Thrift => {
                thrift::validate(service, &at, &mut thrift_services)?;
                validate_endpoints(service, &at)?;
                continue;
            }
            ListenProtocol::Grpc | ListenProtocol::Http => {
                // gRPC and HTTP services are named by their host; nothing Dubbo-specific to check.
                if service.dubbo.is_some() {
                    return Err(invalid(
                        format!("{at}.dubbo"),
                        format!("only for dubbo services, not {}", service.protocol),
                    ));
                }
                validate_endpoints(service, &at)?;
                continue;
            }
            ListenProtocol::Auto => {
                return Err(invalid(
                    format!("{at}.protocol"),
                    "a service speaks dubbo, thrift, grpc or http (auto is for listeners)",
                ));
            }
        }
        let Some(dubbo) = &service.dubbo else {
            return Err(invalid(
                format!("{at}.dubbo"),
                "a dubbo service needs `dubbo: {interface: ...}`",
            ));
        };
        if dubbo.interface.is_empty() {
            return Err(invalid(
                format!("{at}.dubbo.interface"),
                "must not be empty",
            ));
        }
        let identity = (
            dubbo.interface.clone(),
            dubbo.group.clone(),
            dubbo
                .version
                .as_deref()
                .map(|v| normalize_version(Some(v)).to_owned()),
        );
        if !identities.insert(identity) {
            return Err(invalid(
                format!("{at}.dubbo"),
                format!(
                    "interface {} with this group and version is already served by another service",
                    dubbo.interface
                ),
            ));
        }
        validate_endpoints(service, &at)?;
    }
    Ok(())
}

fn validate_endpoints(service: &ServiceConfig, at: &str) -> Result<(), ConfigError> {
    for (j, endpoint) in service.endpoints.iter().enumerate() {
        if endpoint.weight == 0 {
            return Err(invalid(
                format!("{at}.endpoints[{j}].weight"),
                "must be positive (remove the endpoint, or set healthy: false)",
            ));
        }
        if endpoint.port == Some(0) {
            return Err(invalid(
                format!("{at}.endpoints[{j}].port"),
                "must be 1..=65535",
            ));
        }
    }
    Ok(())
}

/// Builds the routing snapshot for a config and its rules.
pub fn build_snapshot(config: &ProxyConfig, rules: &RuleSet) -> Result<Snapshot, ConfigError> {
    validate(config)?;
    let me = Locality::parse(&config.locality);
    let mut clusters = Vec::new();
    let mut tables = Vec::new();
    let mut thrift_tables = Vec::new();
    let mut http_tables = Vec::new();
    for service in &config.services {
        clusters.extend(service_clusters(service, rules, &me));
        match service.protocol {
            ListenProtocol::Thrift => {
                thrift_tables.push(thrift::route_table(service, config, rules)?)
            }
            ListenProtocol::Grpc | ListenProtocol::Http => {
                http_tables.push(http_routes::route_table(service, config, rules)?);
            }
            // Validation refuses `auto` services, so only Dubbo remains.
            ListenProtocol::Dubbo | ListenProtocol::Auto => {
                tables.push(route_table(service, config, rules)?);
            }
        }
    }
    let admission = admission_policies(config, rules)?;
    let mut snapshot = Snapshot::new(String::new(), clusters, tables)
        .with_thrift(thrift_tables)
        .with_http(http_tables)
        .with_admission(admission);
    // Content hash, like the bridge's versions: equal input, equal version.
    let json = serde_json::to_string(&snapshot).unwrap_or_default();
    snapshot.version = format!("{:016x}", crate::lb::hash_key(&json));
    Ok(snapshot)
}

/// Each configured host's admission policy, made exactly as the bridge makes it: rules →
/// `ServiceExtras` → policy.
fn admission_policies(
    config: &ProxyConfig,
    rules: &RuleSet,
) -> Result<Vec<(String, AdmissionPolicy)>, ConfigError> {
    let hosts: BTreeSet<&str> = config.services.iter().map(|s| s.host.as_str()).collect();
    let mut out = Vec::new();
    for host in hosts {
        let extras = ServiceExtras {
            methods: Vec::new(),
            isolation: rules.isolation_for(host).map(|rule| (&rule.spec).into()),
            local_rate_limit: rules
                .meta_routers_for(host)
                .into_iter()
                .find_map(|router| router.spec.local_rate_limit.as_ref())
                .map(Into::into),
        };
        if let Some(policy) = AdmissionPolicy::from_extras(&extras)
            .map_err(|e| invalid(format!("rules for {host}"), e))?
        {
            out.push((host.to_owned(), policy));
        }
    }
    Ok(out)
}

/// One priority's thresholds from a connection pool; what it leaves unset keeps Envoy's default.
fn thresholds(pool: Option<&ConnectionPoolSettings>) -> Thresholds {
    let limits = pool
        .map(ConnectionPoolSettings::breaker_limits)
        .unwrap_or_default();
    let defaults = Thresholds::default();
    Thresholds {
        max_requests: limits.max_requests.unwrap_or(defaults.max_requests),
        max_connections: limits.max_connections.unwrap_or(defaults.max_connections),
        max_pending: limits.max_pending_requests.unwrap_or(defaults.max_pending),
    }
}

fn service_clusters(service: &ServiceConfig, rules: &RuleSet, me: &Locality) -> Vec<Cluster> {
    let rule = rules.destination_rule(&service.host);
    let high_priority = rules
        .isolation_for(&service.host)
        .and_then(|isolation| isolation.spec.high_priority_connection_pool.as_ref());
    let mut subsets: Vec<(String, Option<&BTreeMap<String, String>>)> = vec![(String::new(), None)];
    if let Some(rule) = rule {
        subsets.extend(
            rule.spec
                .subsets
                .iter()
                .map(|s| (s.name.clone(), Some(&s.labels))),
        );
    }
    subsets
        .into_iter()
        .map(|(subset, selector)| {
            let policy = rule
                .map(|r| {
                    r.spec
                        .effective_policy((!subset.is_empty()).then_some(subset.as_str()))
                })
                .unwrap_or_default();
            let balancer = policy.load_balancer.as_ref();
            let locality_aware = balancer
                .and_then(|lb| lb.locality_lb_setting.as_ref())
                .and_then(|l| l.enabled)
                .unwrap_or(true);
            let lb = match balancer.and_then(|lb| lb.policy.as_ref()) {
                Some(RuleLb::Simple(SimpleLb::RoundRobin)) => LbPolicy::RoundRobin,
                Some(RuleLb::Simple(SimpleLb::Random)) => LbPolicy::Random,
                Some(RuleLb::ConsistentHash(hash)) => match &hash.key {
                    // Aeraki's convention: for meta protocols the "header" is a request attribute.
                    HashKey::HttpHeaderName(name) => {
                        LbPolicy::ConsistentHash(match name.as_str() {
                            "method" => HashOn::Method,
                            "interface" => HashOn::Interface,
                            other => HashOn::Attachment(other.to_owned()),
                        })
                    }
                    // Cookies, query parameters and source IPs mean nothing to a Dubbo call here.
                    _ => LbPolicy::LeastRequest,
                },
                _ => LbPolicy::LeastRequest,
            };
            let mut breaker = CircuitBreaker {
                // As the bridge's CDS: DEFAULT from the subset's pool, HIGH from the host's
                // TrafficIsolation, each keeping Envoy's defaults for what it leaves unset.
                thresholds: PerPriority {
                    default: thresholds(policy.connection_pool.as_ref()),
                    high: thresholds(high_priority),
                },
                ..CircuitBreaker::default()
            };
            let connect_timeout = policy
                .connection_pool
                .as_ref()
                .and_then(|pool| pool.tcp.as_ref())
                .and_then(|tcp| tcp.connect_timeout);
            if let Some(t) = connect_timeout {
                breaker.connect_timeout_ms = u64::try_from(t.get().as_millis()).unwrap_or(u64::MAX);
            }
            let endpoints = service
                .endpoints
                .iter()
                .filter(|e| {
                    selector
                        .is_none_or(|labels| labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
                })
                .map(|e| {
                    let locality = Locality::parse(&e.locality);
                    let priority = if locality_aware {
                        locality.priority_from(me)
                    } else {
                        0
                    };
                    Endpoint {
                        address: std::net::SocketAddr::new(
                            e.address,
                            e.port.unwrap_or(service.port),
                        ),
                        weight: e.weight,
                        healthy: e.healthy,
                        priority,
                        metric_labels: EndpointLabels::of(&e.labels, &locality, priority),
                        locality,
                        labels: e.labels.clone(),
                    }
                })
                .collect();
            let outlier = policy
                .outlier_detection
                .as_ref()
                .map(crate::resilience::outlier::policy_from_rule);
            Cluster {
                name: Arc::from(cluster_name(service.port, &subset, &service.host)),
                host: service.host.clone(),
                port: service.port,
                subset,
                endpoints,
                lb,
                breaker,
                outlier,
                counts: Default::default(),
            }
        })
        .collect()
}

fn route_table(
    service: &ServiceConfig,
    config: &ProxyConfig,
    rules: &RuleSet,
) -> Result<DubboRouteTable, ConfigError> {
    let Some(dubbo) = &service.dubbo else {
        return Err(invalid(&service.host, "not a dubbo service"));
    };
    let mut methods: BTreeSet<String> = dubbo.methods.iter().cloned().collect();
    let mut routes = Vec::new();
    let routers = rules.meta_routers_for(&service.host);
    for router in &routers {
        for (i, route) in router.spec.routes.iter().enumerate() {
            let name = route.name.clone().unwrap_or_else(|| {
                format!("{}/{}#{i}", router.metadata.namespace, router.metadata.name)
            });
            let mut method = None;
            let mut attachments = Vec::new();
            let mut applies = true;
            if let Some(matches) = &route.matches {
                for (key, condition) in &matches.attributes {
                    match key.as_str() {
                        "interface" => applies &= condition.matches(&dubbo.interface),
                        "method" => {
                            if let StringMatch::Exact(m) = condition {
                                methods.insert(m.clone());
                            }
                            method = Some(condition.clone());
                        }
                        _ => attachments.push((key.clone(), condition.clone())),
                    }
                }
            }
            if !applies {
                continue;
            }
            let destinations = meta_destinations(config, router, &name, &route.route)?;
            let mirrors = meta_mirrors(config, router, &name, route)?;
            routes.push(DubboRoute {
                name,
                method,
                attachments,
                destinations: WeightedClusters::new(destinations),
                request_mutation: route
                    .request_mutation
                    .iter()
                    .map(|kv| (kv.key.clone(), kv.value.clone()))
                    .collect(),

                mirrors,
                policy: crate::routing::meta_policy::MetaPolicy::from_rule(route),
            });
        }
    }
    // As the bridge does: a MetaRouter with only a `localRateLimit` routes nothing.
    if routers.iter().all(|router| router.spec.routes.is_empty()) {
        routes.push(DubboRoute {
            name: "default".to_owned(),
            method: None,
            attachments: Vec::new(),
            destinations: WeightedClusters::single(Arc::from(cluster_name(
                service.port,
                "",
                &service.host,
            ))),
            request_mutation: Vec::new(),
            mirrors: Vec::new(),
            policy: crate::routing::meta_policy::MetaPolicy::default(),
        });
    }
    let methods: Vec<String> = methods.into_iter().collect();
    Ok(DubboRouteTable {
        metric_labels: TableLabels::new(&service.host, &dubbo.interface, &methods),
        name: format!("{}:{}", service.host, service.port),
        host: service.host.clone(),
        service: ServiceMatch {
            interface: dubbo.interface.clone(),
            group: dubbo.group.clone().filter(|g| !g.is_empty()),
            version: dubbo
                .version
                .as_deref()
                .map(|v| normalize_version(Some(v)).to_owned())
                .filter(|v| !v.is_empty()),
        },
        routes,
        methods,
    })
}

/// The (modification time, length) of a file, to notice edits by polling.
fn stamp(path: &Path) -> Option<(Option<SystemTime>, u64)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.modified().ok(), m.len()))
}

/// Watches the config file (and a separate rules file) until the task is dropped, swapping in a
/// new snapshot whenever they change, stay unchanged for one more poll, and are valid. An invalid edit is logged and counted; the
/// snapshot in force stays.
pub async fn watch(
    path: PathBuf,
    interval: Duration,
    store: Arc<SnapshotStore>,
    metrics: Arc<Metrics>,
) {
    let rules_path = |config: &ProxyConfig| match config.rules_source(path.parent()) {
        RulesSource::File(p) => Some(p),
        _ => None,
    };
    let mut rules_file = ProxyConfig::load(&path).ok().and_then(|c| rules_path(&c));
    let mut last = (stamp(&path), rules_file.as_deref().and_then(stamp));
    // What the previous poll saw: a change is loaded only once two polls agree on it, so a file
    // caught between its truncation and its new contents (a plain `write`, not an atomic
    // rename) is never loaded. That mattered: an empty file is a valid config, and loading one
    // drops every route until the next poll.
    let mut previous = last;
    loop {
        tokio::time::sleep(interval).await;
        let now = (stamp(&path), rules_file.as_deref().and_then(stamp));
        if now == last || now != previous {
            previous = now;
            continue;
        }
        last = now;
        let loaded = tokio::task::spawn_blocking({
            let path = path.clone();
            move || load(&path)
        })
        .await;
        match loaded {
            Ok(Ok((config, snapshot))) => {
                rules_file = rules_path(&config);
                last.1 = rules_file.as_deref().and_then(stamp);
                if snapshot.version != store.load().version {
                    tracing::info!(version = %snapshot.version, clusters = snapshot.clusters.len(), "configuration reloaded");
                    store.store(snapshot);
                }
                metrics.config_reload(true);
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "configuration change rejected; the routes in force stay");
                metrics.config_reload(false);
            }
            Err(error) => {
                tracing::warn!(%error, "configuration reload task failed");
                metrics.config_reload(false);
            }
        }
    }
}

/// A MetaRouter route's weighted destinations as clusters; each must be a configured service.
fn meta_destinations(
    config: &ProxyConfig,
    router: &causeway_protocols::rules::MetaRouter,
    name: &str,
    route: &[causeway_protocols::rules::common::RouteDestination],
) -> Result<Vec<(Arc<str>, u32)>, ConfigError> {
    let single = route.len() == 1;
    let mut destinations = Vec::new();
    for destination in route {
        // Istio: a lone destination takes all traffic whatever its weight says.
        let weight = if single { 1 } else { destination.weight };
        destinations.push((
            meta_cluster(config, router, name, &destination.destination)?,
            weight,
        ));
    }
    Ok(destinations)
}

/// A MetaRouter route's mirrors (`mirror` or `requestMirrorPolicies`) as clusters and shares.
fn meta_mirrors(
    config: &ProxyConfig,
    router: &causeway_protocols::rules::MetaRouter,
    name: &str,
    route: &causeway_protocols::rules::meta_router::MetaRoute,
) -> Result<Vec<MirrorSpec>, ConfigError> {
    route
        .mirrors()
        .iter()
        .map(|mirror| {
            Ok(MirrorSpec {
                cluster: meta_cluster(config, router, name, &mirror.destination)?,
                // Istio and Aeraki mirror every request when no percentage is given.
                fraction: mirror.percentage.map_or(1.0, |p| p.fraction()),
            })
        })
        .collect()
}

/// The cluster of a MetaRouter destination; the host (and port) must be a configured service.
fn meta_cluster(
    config: &ProxyConfig,
    router: &causeway_protocols::rules::MetaRouter,
    name: &str,
    target: &causeway_protocols::rules::common::Destination,
) -> Result<Arc<str>, ConfigError> {
    let port = match &target.port {
        Some(p) => u16::try_from(p.number).unwrap_or(0),
        None => config
            .services
            .iter()
            .find(|s| s.host == target.host)
            .map_or(0, |s| s.port),
    };
    if !config
        .services
        .iter()
        .any(|s| s.host == target.host && s.port == port)
    {
        return Err(invalid(
            format!(
                "rules: MetaRouter {}/{} route {name}",
                router.metadata.namespace, router.metadata.name
            ),
            format!(
                "destination host {} (port {port}) is not a configured service",
                target.host
            ),
        ));
    }
    let subset = target.subset.clone().unwrap_or_default();
    Ok(Arc::from(cluster_name(port, &subset, &target.host)))
}

mod http_routes;
mod thrift;

#[cfg(test)]
mod tests;
