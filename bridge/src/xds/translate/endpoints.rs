//! EDS: a `ClusterLoadAssignment` per cluster. Every endpoint sits in a `LocalityLbEndpoints` with
//! a locality (gRPC clients drop endpoints without one) and a weight, and priorities are computed
//! for the requesting node: its own zone first, then its region, then the regions the
//! DestinationRule's `localityLbSetting.failover` names for the node's region, then the rest —
//! numbered without gaps, as gRPC requires. `localityLbSetting.enabled: false` puts everything at
//! priority 0.

use std::collections::BTreeMap;

use causeway_protocols::rules::destination_rule::LocalityLbSetting;
use causeway_protocols::xds_ext::{Attribute, ENDPOINT_EXTRAS_KEY, EndpointExtras};
use envoy_types::pb::envoy::config::core::v3::{
    Address, HealthStatus, Locality, Metadata, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;

use super::NodeLocality;
use crate::model::snapshot::Endpoint;

/// Priority of an endpoint's locality for a node before renumbering: 0 same zone, 1 same region,
/// 2 a failover region of the node's region, 3 elsewhere.
fn raw_priority(
    endpoint: Option<&str>,
    node: &NodeLocality,
    setting: Option<&LocalityLbSetting>,
) -> u32 {
    if node.region.is_empty() || setting.is_some_and(|s| s.enabled == Some(false)) {
        return 0;
    }
    let mut parts = endpoint.unwrap_or("").split('/');
    let (region, zone) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if region == node.region {
        return if zone == node.zone && !zone.is_empty() {
            0
        } else {
            1
        };
    }
    let failover_target = setting.is_some_and(|s| {
        s.failover
            .iter()
            .any(|f| f.from == node.region && f.to == region)
    });
    if failover_target { 2 } else { 3 }
}

/// The load assignment of cluster `name` for a node in `node`.
pub fn load_assignment(
    name: &str,
    members: &[&Endpoint],
    node: &NodeLocality,
    setting: Option<&LocalityLbSetting>,
) -> ClusterLoadAssignment {
    let mut by_locality: BTreeMap<Option<&str>, Vec<&Endpoint>> = BTreeMap::new();
    for endpoint in members {
        by_locality
            .entry(endpoint.locality.as_deref())
            .or_default()
            .push(endpoint);
    }
    // Priorities must be contiguous from 0: renumber the ones present.
    let mut present: Vec<u32> = by_locality
        .keys()
        .map(|l| raw_priority(*l, node, setting))
        .collect();
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
            let raw = raw_priority(locality, node, setting);
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
        metadata: labels(endpoint),
    }
}

/// The labels a proxy reports in request metrics (`destination_version`, `destination_workload`).
/// Only these travel: EDS is the resource that changes most, and the model's other labels
/// (registry, interface, methods, locality) would quadruple its size for nothing.
const REPORTED_LABELS: [&str; 2] = ["app", "version"];

/// The endpoint's reported labels as [`EndpointExtras`], sorted by key.
fn labels(endpoint: &Endpoint) -> Option<Metadata> {
    let labels: Vec<Attribute> = endpoint
        .labels
        .iter()
        .filter(|(key, _)| REPORTED_LABELS.contains(&key.as_str()))
        .map(|(key, value)| Attribute {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    if labels.is_empty() {
        return None;
    }
    let extras = EndpointExtras { labels };
    Some(Metadata {
        // One key only: a map with more would encode in a random order.
        typed_filter_metadata: std::collections::HashMap::from([(
            ENDPOINT_EXTRAS_KEY.to_owned(),
            pack_any(extras),
        )]),
        ..Metadata::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_protocols::rules::destination_rule::LocalityFailover;

    fn node() -> NodeLocality {
        NodeLocality {
            region: "us-east".into(),
            zone: "a".into(),
        }
    }

    #[test]
    fn failover_regions_come_after_the_own_region_and_before_the_rest() {
        let setting = LocalityLbSetting {
            enabled: None,
            distribute: Vec::new(),
            failover: vec![LocalityFailover {
                from: "us-east".into(),
                to: "eu-west".into(),
            }],
            failover_priority: Vec::new(),
        };
        let p = |l: &str| raw_priority(Some(l), &node(), Some(&setting));
        assert_eq!(p("us-east/a"), 0);
        assert_eq!(p("us-east/b"), 1);
        assert_eq!(p("eu-west/x"), 2);
        assert_eq!(p("ap-south/y"), 3);
        let off = LocalityLbSetting {
            enabled: Some(false),
            ..setting
        };
        assert_eq!(raw_priority(Some("ap-south/y"), &node(), Some(&off)), 0);
    }
}
