//! xDS resources → the routing snapshot. A pure library: each resource is checked and converted
//! on its own when it arrives (so a NACK can name the resource and say why), and [`assemble`]
//! joins the converted pieces into one [`Snapshot`].
//!
//! What is read (the contract the bridge serves, DESIGN.md §5):
//! - CDS: the cluster name `outbound|<port>|<subset>|<host>`, `load_balancing_policy` (the first
//!   policy this proxy implements wins), circuit-breaker thresholds per routing priority (DEFAULT,
//!   HIGH), connect timeout, and from
//!   Causeway's `ServiceExtras` metadata the service's advertised methods and its host's admission
//!   policy (TrafficIsolation classes, local rate limit);
//! - EDS: endpoints with their locality, the priority the bridge computed for this node, weight,
//!   health and the `app`/`version` labels (Causeway's `EndpointExtras`, for the metrics' workload and version);
//! - Dubbo route configurations: interface, group, version and ordered routes (method matcher,
//!   attachment matchers, weighted clusters), plus `MetaRouteExtras` (request mutation and the
//!   consistent-hash attribute);
//! - Thrift route configurations: see [`thrift`].
//! - LDS and RDS for gRPC and HTTP ports: [`http`].

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use causeway_protocols::rules::common::{Pattern, StringMatch};
use causeway_protocols::xds_ext::{
    ENDPOINT_EXTRAS_KEY, EndpointExtras, META_ROUTE_EXTRAS_KEY, MetaRouteExtras,
    SERVICE_EXTRAS_KEY, ServiceExtras,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster as EnvoyCluster;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Metadata, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::filters::network::dubbo_proxy::v3 as dubbo;
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use crate::isolation::AdmissionPolicy;
use crate::routing::http::MirrorSpec;
use crate::routing::{
    CircuitBreaker, Cluster, DubboRoute, DubboRouteTable, Endpoint, EndpointLabels, HashOn,
    LbPolicy, Locality, OutlierPolicy, PerPriority, Priority, ServiceMatch, Snapshot, TableLabels,
    Thresholds, WeightedClusters,
};

/// Why a resource was rejected (the NACK's message).
#[derive(Debug, thiserror::Error)]
#[error("{resource}: {reason}")]
pub struct ConvertError {
    /// The resource's name.
    pub resource: String,
    /// What is wrong with it.
    pub reason: String,
}

fn reject(resource: &str, reason: impl Into<String>) -> ConvertError {
    ConvertError {
        resource: resource.to_owned(),
        reason: reason.into(),
    }
}

/// Load balancing as a cluster states it; a consistent hash learns its attribute from routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Balancing {
    LeastRequest,
    RoundRobin,
    Random,
    RingHash,
}

/// A cluster without its endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    name: Arc<str>,
    host: String,
    port: u16,
    subset: String,
    balancing: Balancing,
    breaker: CircuitBreaker,
    outlier: Option<OutlierPolicy>,
    methods: Vec<String>,
    admission: Option<AdmissionPolicy>,
}

/// A Dubbo route table and the consistent-hash attributes its routes name per cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    table: DubboRouteTable,
    hash_attributes: Vec<(Arc<str>, String)>,
}

fn unpack<M: Message + Name + Default>(name: &str, any: &Any) -> Result<M, ConvertError> {
    if any.type_url != M::type_url() {
        return Err(reject(
            name,
            format!("expected {}, got {}", M::type_url(), any.type_url),
        ));
    }
    M::decode(any.value.as_slice()).map_err(|e| reject(name, format!("cannot decode: {e}")))
}

/// Splits `outbound|<port>|<subset>|<host>`; other names keep the whole name as host.
fn parse_cluster_name(name: &str) -> (String, u16, String) {
    let mut parts = name.splitn(4, '|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("outbound"), Some(port), Some(subset), Some(host)) => (
            host.to_owned(),
            port.parse().unwrap_or(0),
            subset.to_owned(),
        ),
        _ => (name.to_owned(), 0, String::new()),
    }
}

/// Checks and converts a cluster.
pub fn cluster_spec(cluster: &EnvoyCluster) -> Result<ClusterSpec, ConvertError> {
    let name = cluster.name.as_str();
    let (host, port, subset) = parse_cluster_name(name);
    let balancing = balancing(cluster)?;
    let defaults = CircuitBreaker::default();
    let connect_timeout_ms = match &cluster.connect_timeout {
        Some(timeout) if timeout.seconds < 0 || timeout.nanos < 0 => {
            return Err(reject(name, "negative connect_timeout"));
        }
        Some(timeout) => (timeout.seconds as u64)
            .saturating_mul(1000)
            .saturating_add(u64::from(timeout.nanos.unsigned_abs()) / 1_000_000)
            .max(1),
        None => defaults.connect_timeout_ms,
    };
    let breaker = CircuitBreaker {
        thresholds: thresholds_by_priority(name, cluster)?,
        connect_timeout_ms,
    };
    let extras = match typed_metadata(cluster.metadata.as_ref(), SERVICE_EXTRAS_KEY) {
        Some(any) => unpack::<ServiceExtras>(name, any)?,
        None => ServiceExtras::default(),
    };
    let admission = AdmissionPolicy::from_extras(&extras).map_err(|e| reject(name, e))?;
    let methods = extras.methods;
    Ok(ClusterSpec {
        name: Arc::from(name),
        host,
        port,
        subset,
        balancing,
        breaker,
        outlier: cluster
            .outlier_detection
            .as_ref()
            .map(crate::resilience::outlier::policy_from_envoy),
        methods,
        admission,
    })
}

/// The cluster's `circuit_breakers.thresholds` by routing priority: a priority without an entry
/// keeps Envoy's defaults, and of several entries for one priority the first counts (Envoy's
/// rule); a priority Envoy does not define is rejected, as Envoy rejects it.
fn thresholds_by_priority(
    name: &str,
    cluster: &EnvoyCluster,
) -> Result<PerPriority<Thresholds>, ConvertError> {
    let mut by_priority = PerPriority::<Option<Thresholds>>::default();
    let entries = cluster.circuit_breakers.iter().flat_map(|b| &b.thresholds);
    for (index, entry) in entries.enumerate() {
        let priority = Priority::from_envoy(entry.priority).ok_or_else(|| {
            reject(
                name,
                format!(
                    "circuit_breakers.thresholds[{index}]: unknown routing priority {}",
                    entry.priority
                ),
            )
        })?;
        let defaults = Thresholds::default();
        let limit = |value: Option<u32>, default: u32| value.unwrap_or(default);
        by_priority
            .at_mut(priority)
            .get_or_insert_with(|| Thresholds {
                max_requests: limit(entry.max_requests.map(|v| v.value), defaults.max_requests),
                max_connections: limit(
                    entry.max_connections.map(|v| v.value),
                    defaults.max_connections,
                ),
                max_pending: limit(
                    entry.max_pending_requests.map(|v| v.value),
                    defaults.max_pending,
                ),
            });
    }
    Ok(by_priority.map(|found| found.unwrap_or_default()))
}

fn typed_metadata<'a>(metadata: Option<&'a Metadata>, key: &str) -> Option<&'a Any> {
    metadata?.typed_filter_metadata.get(key)
}

/// The first listed policy this proxy implements; the legacy enum when there is no list.
fn balancing(cluster: &EnvoyCluster) -> Result<Balancing, ConvertError> {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy as Legacy;
    let Some(policy) = &cluster.load_balancing_policy else {
        return Ok(match Legacy::try_from(cluster.lb_policy) {
            Ok(Legacy::RoundRobin) => Balancing::RoundRobin,
            Ok(Legacy::Random) => Balancing::Random,
            Ok(Legacy::RingHash | Legacy::Maglev) => Balancing::RingHash,
            _ => Balancing::LeastRequest,
        });
    };
    let known = policy.policies.iter().find_map(|p| {
        let type_url = p
            .typed_extension_config
            .as_ref()?
            .typed_config
            .as_ref()?
            .type_url
            .as_str();
        let name = type_url.rsplit('.').next()?;
        match name {
            "LeastRequest" => Some(Balancing::LeastRequest),
            "RoundRobin" => Some(Balancing::RoundRobin),
            "Random" => Some(Balancing::Random),
            "RingHash" | "Maglev" => Some(Balancing::RingHash),
            _ => None,
        }
    });
    known.ok_or_else(|| {
        reject(
            &cluster.name,
            "no load_balancing_policy this proxy implements (least_request, round_robin, random, ring_hash, maglev)",
        )
    })
}

/// Checks and converts a load assignment. Endpoints named by host name rather than IP address
/// are skipped with a warning: this proxy does not resolve names.
pub fn endpoints(assignment: &ClusterLoadAssignment) -> Result<Vec<Endpoint>, ConvertError> {
    let name = assignment.cluster_name.as_str();
    let mut out = Vec::new();
    for group in &assignment.endpoints {
        let locality = group
            .locality
            .as_ref()
            .map(|l| Locality {
                region: l.region.clone(),
                zone: l.zone.clone(),
                subzone: l.sub_zone.clone(),
            })
            .unwrap_or_default();
        for lb in &group.lb_endpoints {
            let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier else {
                return Err(reject(name, "an endpoint without an address"));
            };
            let Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(
                socket,
            )) = endpoint.address.as_ref().and_then(|a| a.address.as_ref())
            else {
                return Err(reject(
                    name,
                    "an endpoint address that is not a socket address",
                ));
            };
            let Some(socket_address::PortSpecifier::PortValue(port)) = socket.port_specifier else {
                return Err(reject(name, "an endpoint without a port number"));
            };
            let port = u16::try_from(port)
                .map_err(|_| reject(name, format!("endpoint port {port} out of range")))?;
            let Ok(ip) = socket.address.parse::<IpAddr>() else {
                tracing::warn!(cluster = name, address = %socket.address, "skipping an endpoint named by host name");
                continue;
            };
            let labels = match typed_metadata(lb.metadata.as_ref(), ENDPOINT_EXTRAS_KEY) {
                Some(any) => unpack::<EndpointExtras>(name, any)?
                    .labels
                    .into_iter()
                    .map(|a| (a.key, a.value))
                    .collect(),
                None => BTreeMap::new(),
            };
            let health = HealthStatus::try_from(lb.health_status).unwrap_or(HealthStatus::Unknown);
            out.push(Endpoint {
                address: SocketAddr::new(ip, port),
                weight: lb.load_balancing_weight.map_or(1, |w| w.value.max(1)),
                healthy: matches!(health, HealthStatus::Healthy | HealthStatus::Unknown),
                locality: locality.clone(),
                priority: group.priority,
                metric_labels: EndpointLabels::of(&labels, &locality, group.priority),
                labels,
            });
        }
    }
    Ok(out)
}

fn string_match(resource: &str, matcher: &StringMatcher) -> Result<StringMatch, ConvertError> {
    if matcher.ignore_case {
        return Err(reject(
            resource,
            "case-insensitive matchers are not supported",
        ));
    }
    match &matcher.match_pattern {
        Some(string_matcher::MatchPattern::Exact(value)) => Ok(StringMatch::Exact(value.clone())),
        Some(string_matcher::MatchPattern::Prefix(value)) => Ok(StringMatch::Prefix(value.clone())),
        Some(string_matcher::MatchPattern::SafeRegex(regex)) => Pattern::new(&regex.regex)
            .map(StringMatch::Regex)
            .map_err(|e| reject(resource, e)),
        Some(_) => Err(reject(
            resource,
            "only exact, prefix and safe_regex string matchers are supported",
        )),
        None => Err(reject(resource, "a string matcher without a pattern")),
    }
}

fn header_match(
    resource: &str,
    header: &HeaderMatcher,
) -> Result<(String, StringMatch), ConvertError> {
    use header_matcher::HeaderMatchSpecifier as Spec;
    if header.invert_match {
        return Err(reject(
            resource,
            format!("inverted match on `{}` is not supported", header.name),
        ));
    }
    let rule = match &header.header_match_specifier {
        Some(Spec::StringMatch(matcher)) => string_match(resource, matcher)?,
        Some(Spec::PresentMatch(true)) | None => StringMatch::Present,
        // The deprecated exact/prefix/regex forms, ranges, absence: the bridge never sends them.
        Some(_) => {
            return Err(reject(
                resource,
                format!(
                    "unsupported matcher on attachment `{}` (use string_match or present_match)",
                    header.name
                ),
            ));
        }
    };
    Ok((header.name.clone(), rule))
}

/// Checks and converts a Dubbo route configuration named `<host>:<port>`.
pub fn dubbo_table(config: &dubbo::RouteConfiguration) -> Result<TableSpec, ConvertError> {
    let name = config.name.as_str();
    if config.interface.is_empty() {
        return Err(reject(name, "no interface"));
    }
    let host = name
        .rsplit_once(':')
        .map_or(name, |(host, _)| host)
        .to_owned();
    let mut routes = Vec::new();
    let mut hash_attributes = Vec::new();
    for (index, route) in config.routes.iter().enumerate() {
        let at = format!("{name} routes[{index}]");
        let matching = route.r#match.clone().unwrap_or_default();
        let method = match &matching.method {
            Some(method) if !method.params_match.is_empty() => {
                return Err(reject(&at, "parameter matches are not supported"));
            }
            Some(method) => method
                .name
                .as_ref()
                .map(|m| string_match(&at, m))
                .transpose()?,
            None => None,
        };
        let attachments = matching
            .headers
            .iter()
            .map(|h| header_match(&at, h))
            .collect::<Result<Vec<_>, _>>()?;
        let action = route
            .route
            .as_ref()
            .ok_or_else(|| reject(&at, "no route action"))?;
        let destinations = match &action.cluster_specifier {
            Some(dubbo::route_action::ClusterSpecifier::Cluster(cluster)) => {
                WeightedClusters::single(Arc::from(cluster.as_str()))
            }
            Some(dubbo::route_action::ClusterSpecifier::WeightedClusters(weighted)) => {
                WeightedClusters::new(
                    weighted
                        .clusters
                        .iter()
                        .map(|c| (Arc::from(c.name.as_str()), c.weight.map_or(0, |w| w.value))),
                )
            }
            None => return Err(reject(&at, "no cluster")),
        };
        if destinations.is_empty() {
            return Err(reject(&at, "no cluster with a positive weight"));
        }
        let extras = match typed_metadata(action.metadata_match.as_ref(), META_ROUTE_EXTRAS_KEY) {
            Some(any) => unpack::<MetaRouteExtras>(&at, any)?,
            None => MetaRouteExtras::default(),
        };
        if !extras.hash_attribute.is_empty() {
            for (cluster, _) in destinations.entries() {
                hash_attributes.push((cluster.clone(), extras.hash_attribute.clone()));
            }
        }
        let policy = crate::routing::meta_policy::MetaPolicy::from_extras(&extras);
        routes.push(DubboRoute {
            policy,
            name: format!("{name}#{index}"),
            method,
            attachments,
            destinations,
            request_mutation: extras
                .request_mutation
                .into_iter()
                .map(|a| (a.key, a.value))
                .collect(),
            mirrors: extras
                .mirrors
                .into_iter()
                .map(|m| MirrorSpec {
                    cluster: Arc::from(m.cluster.as_str()),
                    fraction: (f64::from(m.per_million) / 1_000_000.0).min(1.0),
                })
                .collect(),
        });
    }
    let optional = |value: &str| (!value.is_empty()).then(|| value.to_owned());
    Ok(TableSpec {
        table: DubboRouteTable {
            metric_labels: TableLabels::new(&host, &config.interface, &[]),
            name: name.to_owned(),
            host,
            service: ServiceMatch {
                interface: config.interface.clone(),
                group: optional(&config.group),
                version: optional(&config.version),
            },
            routes,
            methods: Vec::new(),
        },
        hash_attributes,
    })
}

/// Joins converted resources into a snapshot. A cluster without a load assignment yet has no
/// endpoints; a table's methods come from its host's clusters.
pub fn assemble(
    version: String,
    clusters: &BTreeMap<String, ClusterSpec>,
    assignments: &BTreeMap<String, Vec<Endpoint>>,
    tables: &BTreeMap<String, TableSpec>,
) -> Snapshot {
    let mut hash_on: BTreeMap<&str, &str> = BTreeMap::new();
    for spec in tables.values() {
        for (cluster, attribute) in &spec.hash_attributes {
            hash_on.entry(cluster).or_insert(attribute);
        }
    }
    let mut methods: BTreeMap<&str, &[String]> = BTreeMap::new();
    // Every cluster of a host carries the same policy; the first (by name) speaks for the host.
    let mut admission: BTreeMap<String, AdmissionPolicy> = BTreeMap::new();
    let built: Vec<Cluster> = clusters
        .values()
        .map(|spec| {
            if !spec.methods.is_empty() {
                methods.entry(spec.host.as_str()).or_insert(&spec.methods);
            }
            if let Some(policy) = &spec.admission {
                admission
                    .entry(spec.host.clone())
                    .or_insert_with(|| policy.clone());
            }
            let lb = match spec.balancing {
                Balancing::LeastRequest => LbPolicy::LeastRequest,
                Balancing::RoundRobin => LbPolicy::RoundRobin,
                Balancing::Random => LbPolicy::Random,
                Balancing::RingHash => {
                    LbPolicy::ConsistentHash(match hash_on.get(spec.name.as_ref()).copied() {
                        None | Some("method") => HashOn::Method,
                        Some("interface") => HashOn::Interface,
                        Some(attachment) => HashOn::Attachment(attachment.to_owned()),
                    })
                }
            };
            Cluster {
                name: spec.name.clone(),
                host: spec.host.clone(),
                port: spec.port,
                subset: spec.subset.clone(),
                endpoints: assignments
                    .get(spec.name.as_ref())
                    .cloned()
                    .unwrap_or_default(),
                lb,
                breaker: spec.breaker,
                outlier: spec.outlier,
                counts: Default::default(),
            }
        })
        .collect();
    let tables = tables.values().map(|spec| {
        let mut table = spec.table.clone();
        if let Some(list) = methods.get(table.host.as_str()) {
            table.methods = list.to_vec();
            // The label values follow the methods.
            table.metric_labels =
                TableLabels::new(&table.host, &table.service.interface, &table.methods);
        }
        table
    });
    Snapshot::new(version, built, tables).with_admission(admission)
}

pub mod http;
pub mod thrift;

#[cfg(test)]
mod tests;
