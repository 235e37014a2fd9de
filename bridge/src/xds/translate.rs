//! Model (plus traffic rules) → Envoy resources, DESIGN.md §5.
//!
//! - CDS: one EDS cluster per (host, port, subset), named Istio-style `outbound|<port>|<subset>|<host>`
//!   (empty subset for all endpoints).
//! - EDS: a `ClusterLoadAssignment` per cluster; every endpoint sits in a `LocalityLbEndpoints`
//!   with a locality (gRPC clients drop endpoints without one) and a weight, and priorities are
//!   computed for the requesting node: its own zone first, then its region, then the rest,
//!   numbered without gaps as gRPC requires.
//! - LDS/RDS: for gRPC and HTTP ports, an `ApiListener` listener named `<host>:<port>` (what a
//!   proxyless gRPC client asks for with `xds:///<host>:<port>`) whose HTTP connection manager
//!   points at the route configuration of the same name.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, HealthStatus, Locality,
    SocketAddress, address, config_source, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, route,
    route_action, route_match, weighted_cluster,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};
use envoy_types::util::pack_any;

use crate::model::provider::Protocol;
use crate::model::snapshot::{Endpoint, Service, ServicePort, Snapshot};
use crate::xds::resources::{CLUSTER, ENDPOINT, LISTENER, ROUTE, ResourceSet, XdsResource};

/// A requesting node's locality, from its xDS `Node`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeLocality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
}

/// A subset of a service's endpoints, selected by labels, with its share of traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subset {
    /// Subset name (cluster name part).
    pub name: String,
    /// Labels an endpoint must carry.
    pub labels: BTreeMap<String, String>,
}

/// One weighted destination of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedDestination {
    /// Subset name; empty for every endpoint.
    pub subset: String,
    /// Weight (relative).
    pub weight: u32,
}

/// What the traffic rules say about one host, in the shape translation needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    /// Subsets (DestinationRule).
    pub subsets: Vec<Subset>,
    /// The default route's weighted destinations (VirtualService); empty: all endpoints.
    pub split: Vec<WeightedDestination>,
}

/// Source of per-host policies (the traffic rules); translation only reads through this.
pub trait Policies {
    /// The policy for `host`, default when no rule names it.
    fn for_host(&self, host: &str) -> HostPolicy;
}

/// No rules: every host routes to all its endpoints.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPolicies;

impl Policies for NoPolicies {
    fn for_host(&self, _host: &str) -> HostPolicy {
        HostPolicy::default()
    }
}

/// The Istio-style cluster name.
pub fn cluster_name(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..ConfigSource::default()
    }
}

/// Builds every resource for a node in `locality`.
pub fn translate(
    snapshot: &Snapshot,
    policies: &dyn Policies,
    locality: &NodeLocality,
) -> ResourceSet {
    let mut set = ResourceSet::default();
    for service in snapshot.services.values() {
        let policy = policies.for_host(&service.host);
        for port in &service.ports {
            let endpoints: Vec<&Endpoint> = service
                .endpoints
                .iter()
                .filter(|e| e.port_name == port.name)
                .collect();
            let mut subsets: Vec<(&str, Vec<&Endpoint>)> = vec![("", endpoints.clone())];
            for subset in &policy.subsets {
                let selected = endpoints
                    .iter()
                    .copied()
                    .filter(|e| {
                        subset
                            .labels
                            .iter()
                            .all(|(k, v)| e.labels.get(k) == Some(v))
                    })
                    .collect();
                subsets.push((subset.name.as_str(), selected));
            }
            for (subset, members) in &subsets {
                let name = cluster_name(port.number, subset, &service.host);
                set.insert(
                    CLUSTER,
                    XdsResource::new(&name, pack_any(eds_cluster(&name))),
                );
                set.insert(
                    ENDPOINT,
                    XdsResource::new(&name, pack_any(load_assignment(&name, members, locality))),
                );
            }
            if matches!(
                port.protocol,
                Protocol::Grpc | Protocol::Triple | Protocol::Http
            ) {
                let listener_name = format!("{}:{}", service.host, port.number);
                set.insert(
                    LISTENER,
                    XdsResource::new(&listener_name, pack_any(api_listener(&listener_name))),
                );
                set.insert(
                    ROUTE,
                    XdsResource::new(
                        &listener_name,
                        pack_any(route_configuration(&listener_name, service, port, &policy)),
                    ),
                );
            }
        }
    }
    crate::xds::mcp::add_service_entries(snapshot, &mut set);
    set
}

fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: String::new(),
        }),
        connect_timeout: Some(PbDuration {
            seconds: 1,
            nanos: 0,
        }),
        lb_policy: cluster::LbPolicy::RoundRobin as i32,
        ..Cluster::default()
    }
}

/// Priority of an endpoint locality for a node: 0 same zone, 1 same region, 2 elsewhere.
fn raw_priority(endpoint: Option<&str>, node: &NodeLocality) -> u32 {
    if node.region.is_empty() {
        return 0;
    }
    let mut parts = endpoint.unwrap_or("").split('/');
    let (region, zone) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match (region == node.region, zone == node.zone && !zone.is_empty()) {
        (true, true) => 0,
        (true, false) => 1,
        _ => 2,
    }
}

fn load_assignment(
    name: &str,
    members: &[&Endpoint],
    node: &NodeLocality,
) -> ClusterLoadAssignment {
    let mut by_locality: BTreeMap<Option<&str>, Vec<&Endpoint>> = BTreeMap::new();
    for endpoint in members {
        by_locality
            .entry(endpoint.locality.as_deref())
            .or_default()
            .push(endpoint);
    }
    // Priorities must be contiguous from 0: renumber the ones present.
    let mut present: Vec<u32> = by_locality.keys().map(|l| raw_priority(*l, node)).collect();
    present.sort_unstable();
    present.dedup();
    let endpoints = by_locality
        .into_iter()
        .map(|(locality, endpoints)| {
            let mut parts = locality.unwrap_or("").split('/');
            let locality_message = Locality {
                region: parts.next().unwrap_or("").to_owned(),
                zone: parts.next().unwrap_or("").to_owned(),
                sub_zone: parts.next().unwrap_or("").to_owned(),
            };
            let weight: u32 = endpoints.iter().map(|e| e.weight).sum::<u32>().max(1);
            let raw = raw_priority(locality, node);
            let priority = present.iter().position(|p| *p == raw).unwrap_or(0) as u32;
            LocalityLbEndpoints {
                locality: Some(locality_message),
                lb_endpoints: endpoints.iter().map(|e| lb_endpoint(e)).collect(),
                load_balancing_weight: Some(UInt32Value { value: weight }),
                priority,
                ..LocalityLbEndpoints::default()
            }
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints,
        ..ClusterLoadAssignment::default()
    }
}

fn lb_endpoint(endpoint: &Endpoint) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: endpoint.address.clone(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                        endpoint.port,
                    ))),
                    ..SocketAddress::default()
                })),
            }),
            ..EnvoyEndpoint::default()
        })),
        health_status: if endpoint.healthy {
            HealthStatus::Healthy as i32
        } else {
            HealthStatus::Unhealthy as i32
        },
        load_balancing_weight: Some(UInt32Value {
            value: endpoint.weight.max(1),
        }),
        ..LbEndpoint::default()
    }
}

fn api_listener(name: &str) -> Listener {
    let manager = HttpConnectionManager {
        stat_prefix: name.to_owned(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: name.to_owned(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_owned(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..HttpFilter::default()
        }],
        ..HttpConnectionManager::default()
    };
    Listener {
        name: name.to_owned(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack_any(manager)),
        }),
        ..Listener::default()
    }
}

fn route_configuration(
    name: &str,
    service: &Service,
    port: &ServicePort,
    policy: &HostPolicy,
) -> RouteConfiguration {
    let action = if policy.split.is_empty() {
        route_action::ClusterSpecifier::Cluster(cluster_name(port.number, "", &service.host))
    } else {
        route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: policy
                .split
                .iter()
                .filter(|d| d.weight > 0)
                .map(|d| weighted_cluster::ClusterWeight {
                    name: cluster_name(port.number, &d.subset, &service.host),
                    weight: Some(UInt32Value { value: d.weight }),
                    ..weighted_cluster::ClusterWeight::default()
                })
                .collect(),
            ..WeightedCluster::default()
        })
    };
    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: name.to_owned(),
            domains: vec![service.host.clone(), name.to_owned()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())),
                    ..RouteMatch::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(action),
                    ..RouteAction::default()
                })),
                ..Route::default()
            }],
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    }
}

#[cfg(test)]
mod tests;
