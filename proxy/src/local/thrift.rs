//! Local mode for Thrift services: checks a `protocol: thrift` service and builds its route table
//! from the host's MetaRouter routes, as the bridge does for xDS (`meta_routes.rs`): attribute
//! `method` matches the bare method, `service` and `interface` the multiplexed service name, every
//! other attribute a THeader header. Without a MetaRouter one route sends everything to all
//! endpoints; with MetaRouters but no matching route the call gets "no route".

use std::collections::BTreeSet;
use std::sync::Arc;

use causeway_protocols::rules::RuleSet;
use causeway_protocols::rules::common::StringMatch;

use super::invalid;
use crate::config::{ConfigError, ProxyConfig, ServiceConfig};
use crate::routing::{ThriftRoute, ThriftRouteTable, WeightedClusters, cluster_name};

/// Checks the Thrift part of `service` (at `at`); multiplexed service names must be unique.
pub(super) fn validate<'a>(
    service: &'a ServiceConfig,
    at: &str,
    seen: &mut BTreeSet<&'a str>,
) -> Result<(), ConfigError> {
    if service.dubbo.is_some() {
        return Err(invalid(
            format!("{at}.dubbo"),
            "a thrift service takes `thrift: {service: ...}`, not `dubbo`",
        ));
    }
    if let Some(name) = service.thrift.as_ref().and_then(|t| t.service.as_deref()) {
        if name.is_empty() || name.contains(':') {
            return Err(invalid(
                format!("{at}.thrift.service"),
                "must be a non-empty name without `:`",
            ));
        }
        if !seen.insert(name) {
            return Err(invalid(
                format!("{at}.thrift.service"),
                format!("thrift service {name} is already served by another service"),
            ));
        }
    }
    Ok(())
}

/// The route table of a Thrift service.
pub(super) fn route_table(
    service: &ServiceConfig,
    config: &ProxyConfig,
    rules: &RuleSet,
) -> Result<ThriftRouteTable, ConfigError> {
    let identity = service
        .thrift
        .clone()
        .unwrap_or(crate::config::ThriftService {
            service: None,
            methods: Vec::new(),
        });
    let mut methods: BTreeSet<String> = identity.methods.iter().cloned().collect();
    let mut routes = Vec::new();
    let routers = rules.meta_routers_for(&service.host);
    for router in &routers {
        for (i, route) in router.spec.routes.iter().enumerate() {
            let name = route.name.clone().unwrap_or_else(|| {
                format!("{}/{}#{i}", router.metadata.namespace, router.metadata.name)
            });
            let mut method = None;
            let mut service_match = None;
            let mut headers = Vec::new();
            if let Some(matches) = &route.matches {
                for (key, condition) in &matches.attributes {
                    match key.as_str() {
                        "method" => {
                            if let StringMatch::Exact(m) = condition {
                                methods.insert(m.clone());
                            }
                            method = Some(condition.clone());
                        }
                        "service" | "interface" => service_match = Some(condition.clone()),
                        _ => headers.push((key.clone(), condition.clone())),
                    }
                }
            }
            let destinations = super::meta_destinations(config, router, &name, &route.route)?;
            let mirrors = super::meta_mirrors(config, router, &name, route)?;
            routes.push(ThriftRoute {
                name,
                method,
                service: service_match,
                headers,
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
        routes.push(ThriftRoute {
            name: "default".to_owned(),
            method: None,
            service: None,
            headers: Vec::new(),
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
    Ok(ThriftRouteTable {
        name: format!("{}:{}", service.host, service.port),
        host: service.host.clone(),
        services: identity.service.into_iter().collect(),
        routes,
        methods: methods.into_iter().collect(),
    })
}
