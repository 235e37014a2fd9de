//! Model (plus traffic rules) → Envoy resources, DESIGN.md §5. This module walks the services
//! and decides which resources each port gets; one submodule per resource family builds them:
//!
//! - [`cluster`]: CDS, one EDS cluster per (host, port, subset) named Istio-style
//!   `outbound|<port>|<subset>|<host>` (empty subset for all endpoints), with the
//!   DestinationRule's load balancing, circuit breakers and outlier detection;
//! - [`endpoints`]: EDS, localities on every endpoint and failover priorities for the
//!   requesting node's locality;
//! - [`http_routes`]: LDS `ApiListener`s and RDS for HTTP, gRPC and Triple ports
//!   (VirtualService);
//! - [`meta_routes`]: Dubbo and Thrift route discovery (MetaRouter);
//! - [`matchers`]: rule values in Envoy's vocabulary.
//!
//! Translation reads the rules only through [`Policies`], so it is a pure function of the
//! snapshot, the rules and the node's locality: equal inputs give byte-identical resources.

mod cluster;
mod endpoints;
mod http_routes;
mod matchers;
mod meta_routes;

use std::sync::Arc;

use causeway_protocols::rules::common::{Destination, RouteDestination};
use causeway_protocols::rules::destination_rule::{DestinationRuleSpec, HashKey};
use causeway_protocols::rules::isolation::TrafficIsolationSpec;
use causeway_protocols::rules::meta_router::{LocalRateLimit, MetaRoute};
use causeway_protocols::rules::virtual_service::HttpRoute;
use causeway_protocols::xds_ext::ServiceExtras;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, config_source,
};
use envoy_types::pb::envoy::config::route::v3::{WeightedCluster, weighted_cluster};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;

use crate::model::provider::Protocol;
use crate::model::snapshot::{Endpoint, Service, ServicePort, Snapshot};
use crate::xds::resources::{
    CLUSTER, DUBBO_ROUTE, ENDPOINT, LISTENER, ROUTE, ResourceSet, THRIFT_ROUTE, XdsResource,
};

/// A requesting node's locality, from its xDS `Node`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeLocality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
}

/// What the traffic rules say about one host, in the shape translation needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostPolicy {
    /// The host's DestinationRule: subsets and traffic policies.
    pub destination_rule: Option<DestinationRuleSpec>,
    /// HTTP/gRPC routes of the VirtualServices for the host, in evaluation order.
    pub http_routes: Vec<HttpRoute>,
    /// Dubbo/Thrift routes of the MetaRouters for the host, in evaluation order.
    pub meta_routes: Vec<MetaRoute>,
    /// The host's TrafficIsolation classes (on every cluster of the host, in `ServiceExtras`).
    pub isolation: Option<TrafficIsolationSpec>,
    /// The local rate limit of the most specific MetaRouter that sets one.
    pub local_rate_limit: Option<LocalRateLimit>,
}

impl HostPolicy {
    /// The consistent-hash key for a route on `host`: that of the first destination on this host
    /// whose subset's effective policy hashes (the whole host's policy for a catch-all route,
    /// `route` empty). Destinations on other hosts are not consulted: their DestinationRules are
    /// not part of this host's policy.
    pub fn hash_key(&self, host: &str, route: &[RouteDestination]) -> Option<HashKey> {
        let rule = self.destination_rule.as_ref();
        if route.is_empty() {
            return cluster::hash_key(&cluster::effective_policy(rule, ""));
        }
        route
            .iter()
            .filter(|d| d.destination.host == host)
            .find_map(|d| {
                let subset = d.destination.subset.as_deref().unwrap_or("");
                cluster::hash_key(&cluster::effective_policy(rule, subset))
            })
    }
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

/// Resolves rule destinations of routes served on one port of one host to cluster names.
pub struct Destinations<'a> {
    host: &'a str,
    port: u16,
}

impl Destinations<'_> {
    /// The port a destination means: its own selector, else this route's port. Deliberately not
    /// another host's port list: translation stays per service (a change to one host never
    /// changes another host's resources), and Dubbo and Thrift estates serve one port number.
    fn port_of(&self, destination: &Destination) -> u16 {
        destination
            .port
            .and_then(|selector| u16::try_from(selector.number).ok())
            .unwrap_or(self.port)
    }

    /// The cluster of one destination.
    pub fn cluster(&self, destination: &Destination) -> String {
        cluster_name(
            self.port_of(destination),
            destination.subset.as_deref().unwrap_or(""),
            &destination.host,
        )
    }

    /// The host the routes belong to.
    pub fn host(&self) -> &str {
        self.host
    }

    /// The cluster of every endpoint of this host's port.
    pub fn whole_host(&self) -> String {
        cluster_name(self.port, "", self.host)
    }

    /// A route's destinations as (cluster, weight), without zero weights. A lone destination
    /// takes all traffic whatever its weight says (Istio); a route left with nothing (rules
    /// validation prevents it) goes to the whole host rather than nowhere.
    pub fn weighted(&self, route: &[RouteDestination]) -> Vec<(String, u32)> {
        let single = route.len() == 1;
        let weighted: Vec<(String, u32)> = route
            .iter()
            .map(|d| {
                let weight = if single { 100 } else { d.weight };
                (self.cluster(&d.destination), weight)
            })
            .filter(|(_, weight)| *weight > 0)
            .collect();
        if weighted.is_empty() {
            return vec![(self.whole_host(), 100)];
        }
        weighted
    }
}

/// Weighted clusters in the shape HTTP and Dubbo routes share.
fn weighted_clusters(weighted: Vec<(String, u32)>) -> WeightedCluster {
    WeightedCluster {
        clusters: weighted
            .into_iter()
            .map(|(name, weight)| weighted_cluster::ClusterWeight {
                name,
                weight: Some(UInt32Value { value: weight }),
                ..weighted_cluster::ClusterWeight::default()
            })
            .collect(),
        ..WeightedCluster::default()
    }
}

/// Builds every resource for a node in `locality`.
pub fn translate(
    snapshot: &Snapshot,
    policies: &dyn Policies,
    locality: &NodeLocality,
) -> ResourceSet {
    translate_services(snapshot.services.values(), policies, locality)
}

/// Builds the resources of `services` only, for a node in `locality`. A service's resources
/// depend only on that service, the policies and the locality — never on other services — so a
/// caller may re-translate just the services that changed.
pub fn translate_services<'a>(
    services: impl IntoIterator<Item = &'a Arc<Service>>,
    policies: &dyn Policies,
    locality: &NodeLocality,
) -> ResourceSet {
    let mut set = ResourceSet::default();
    for service in services {
        let policy = policies.for_host(&service.host);
        for port in &service.ports {
            add_clusters(&mut set, service, port, &policy, locality);
            add_routes(&mut set, service, port, &policy);
        }
        crate::xds::mcp::add_service_entry(service, &mut set);
    }
    set
}

/// CDS and EDS: the whole host plus one cluster per DestinationRule subset.
fn add_clusters(
    set: &mut ResourceSet,
    service: &Service,
    port: &ServicePort,
    policy: &HostPolicy,
    locality: &NodeLocality,
) {
    let endpoints: Vec<&Endpoint> = service
        .endpoints
        .iter()
        .filter(|e| e.port_name == port.name)
        .collect();
    let rule = policy.destination_rule.as_ref();
    let mut subsets: Vec<(&str, Vec<&Endpoint>)> = vec![("", endpoints.clone())];
    for subset in rule.iter().flat_map(|r| r.subsets.iter()) {
        let selected = endpoints
            .iter()
            .copied()
            .filter(|e| subset.selects(&e.labels))
            .collect();
        subsets.push((subset.name.as_str(), selected));
    }
    let high_priority = policy
        .isolation
        .as_ref()
        .and_then(|isolation| isolation.high_priority_connection_pool.as_ref());
    let extras = ServiceExtras {
        methods: service.methods.iter().cloned().collect(),
        isolation: policy.isolation.as_ref().map(Into::into),
        local_rate_limit: policy.local_rate_limit.as_ref().map(Into::into),
    };
    for (subset, members) in &subsets {
        let name = cluster_name(port.number, subset, &service.host);
        let traffic = cluster::effective_policy(rule, subset);
        let setting = traffic
            .load_balancer
            .as_ref()
            .and_then(|lb| lb.locality_lb_setting.as_ref());
        set.insert(
            CLUSTER,
            XdsResource::new(
                &name,
                pack_any(cluster::eds_cluster(
                    &name,
                    &traffic,
                    high_priority,
                    &extras,
                )),
            ),
        );
        set.insert(
            ENDPOINT,
            XdsResource::new(
                &name,
                pack_any(endpoints::load_assignment(
                    &name, members, locality, setting,
                )),
            ),
        );
    }
}

/// Routes by protocol: LDS + RDS for HTTP-family ports, Dubbo and Thrift route discovery.
fn add_routes(set: &mut ResourceSet, service: &Service, port: &ServicePort, policy: &HostPolicy) {
    let name = format!("{}:{}", service.host, port.number);
    let destinations = Destinations {
        host: &service.host,
        port: port.number,
    };
    match port.protocol {
        Protocol::Grpc | Protocol::Triple | Protocol::Http => {
            set.insert(
                LISTENER,
                XdsResource::new(&name, pack_any(http_routes::api_listener(&name))),
            );
            let routes =
                http_routes::route_configuration(&name, &service.host, policy, &destinations);
            set.insert(ROUTE, XdsResource::new(&name, pack_any(routes)));
        }
        Protocol::Dubbo => {
            if let Some(identity) = &service.dubbo {
                let routes =
                    meta_routes::dubbo_route_configuration(&name, identity, policy, &destinations);
                set.insert(DUBBO_ROUTE, XdsResource::new(&name, pack_any(routes)));
            }
        }
        Protocol::Thrift => {
            let routes = meta_routes::thrift_route_configuration(&name, policy, &destinations);
            set.insert(THRIFT_ROUTE, XdsResource::new(&name, pack_any(routes)));
        }
        Protocol::Tcp => {}
    }
}

#[cfg(test)]
mod tests;
