//! Thrift route tables: per mesh host an ordered list of routes, each matching the method, the
//! multiplexed service name and THeader headers (MetaRouter semantics) and sending to weighted
//! clusters. The first matching route wins; no match means no route.
//!
//! The shape mirrors Envoy's `thrift_proxy.v3.RouteConfiguration` as the bridge serves it (one per
//! Thrift port of a host, named `<host>:<port>`): a method name (empty = any), header matchers
//! where `:method` and `:service` are the pseudo-headers of the method and service, weighted
//! clusters.
//!
//! Which table a call uses: a listener bound to a host uses that host's table for every call; an
//! unbound listener resolves a multiplexed call's service name (`Service:method`) to a table (see
//! [`ThriftTables::for_service`]). A non-multiplexed call on an unbound listener has no table.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use causeway_protocols::rules::common::StringMatch;
use serde::Serialize;

use super::WeightedClusters;
use super::http::MirrorSpec;
use super::meta_policy::MetaPolicy;

/// What routing needs to know about a Thrift call.
pub trait ThriftAttributes {
    /// The bare method name (`add` in `Calculator:add`).
    fn method(&self) -> &str;
    /// The multiplexed service name, if the call was multiplexed.
    fn service(&self) -> Option<&str>;
    /// A THeader info header's value (`None` for other transports).
    fn header(&self, key: &str) -> Option<&str>;
}

/// One route: all conditions must hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThriftRoute {
    /// Name for logs and the config dump.
    pub name: String,
    /// Method condition; `None` matches every method.
    pub method: Option<StringMatch>,
    /// Service condition on the multiplexed service name; a non-multiplexed call has no service,
    /// so it never matches a route with this condition.
    pub service: Option<StringMatch>,
    /// THeader header conditions (key → match; `Present` only checks the key exists).
    pub headers: Vec<(String, StringMatch)>,
    /// Where matching calls go.
    pub destinations: WeightedClusters,
    /// THeader headers set on the call before it is forwarded (MetaRouter `requestMutation`);
    /// calls over other transports have nowhere to carry them and are forwarded unchanged.
    pub request_mutation: Vec<(String, String)>,
    /// Clusters a share of the calls is copied to, fire-and-forget.
    pub mirrors: Vec<MirrorSpec>,
    /// Timeout, retries and fault injection.
    pub policy: MetaPolicy,
}

// === impl ThriftRoute ===

impl ThriftRoute {
    /// Whether the call satisfies every condition.
    pub fn matches(&self, call: &impl ThriftAttributes) -> bool {
        self.method
            .as_ref()
            .is_none_or(|m| m.matches(call.method()))
            && self
                .service
                .as_ref()
                .is_none_or(|m| call.service().is_some_and(|s| m.matches(s)))
            && self
                .headers
                .iter()
                .all(|(key, m)| call.header(key).is_some_and(|value| m.matches(value)))
    }
}

/// The routes of one Thrift service (host).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThriftRouteTable {
    /// Name (`<host>:<port>`, as the bridge names its route configurations).
    pub name: String,
    /// The service host (`destination_service`).
    pub host: String,
    /// Thrift service names (multiplexed prefixes) that resolve to this table, from local
    /// configuration; empty when only the host name resolves (xDS).
    pub services: Vec<String>,
    /// Ordered routes; first match wins.
    pub routes: Vec<ThriftRoute>,
    /// Methods the service advertises: the only values `request_method` may take.
    pub methods: Vec<String>,
}

// === impl ThriftRouteTable ===

impl ThriftRouteTable {
    /// The first route the call matches.
    pub fn route(&self, call: &impl ThriftAttributes) -> Option<&ThriftRoute> {
        self.routes.iter().find(|route| route.matches(call))
    }

    /// The bounded metric value for `method`.
    pub fn method_label(&self, method: &str) -> &str {
        self.methods
            .iter()
            .find(|m| m.as_str() == method)
            .map_or("other", String::as_str)
    }

    /// The bounded `destination_interface` value: the configured service name, else `unknown`.
    pub fn interface_label(&self, service: Option<&str>) -> &str {
        match service {
            Some(s) => self
                .services
                .iter()
                .find(|known| known.as_str() == s)
                .or(self.services.first())
                .map_or("unknown", String::as_str),
            None => self.services.first().map_or("unknown", String::as_str),
        }
    }
}

/// Every Thrift table of a snapshot, by host, with the service-name index.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ThriftTables {
    /// Tables by host (a host with several Thrift ports keeps the first by name).
    pub by_host: BTreeMap<String, Arc<ThriftRouteTable>>,
    /// Configured service name → host.
    #[serde(skip)]
    services: HashMap<String, String>,
}

// === impl ThriftTables ===

impl ThriftTables {
    /// Indexes `tables` by host and configured service names; ordered by name so the same input
    /// always gives the same result.
    pub fn new(tables: impl IntoIterator<Item = ThriftRouteTable>) -> Self {
        let mut sorted: Vec<ThriftRouteTable> = tables.into_iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let mut by_host = BTreeMap::new();
        let mut services = HashMap::new();
        for table in sorted {
            for service in &table.services {
                services
                    .entry(service.clone())
                    .or_insert_with(|| table.host.clone());
            }
            by_host
                .entry(table.host.clone())
                .or_insert_with(|| Arc::new(table));
        }
        Self { by_host, services }
    }

    /// `true` when there is no Thrift table.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// The table of a host.
    pub fn for_host(&self, host: &str) -> Option<&Arc<ThriftRouteTable>> {
        self.by_host.get(host)
    }

    /// The table a multiplexed service name resolves to: a configured service name first, then
    /// a host spelled like the service, then the host the bridge derives from a registry's
    /// `interface` (lower case, characters outside `[a-z0-9.-]` as `-`).
    pub fn for_service(&self, service: &str) -> Option<&Arc<ThriftRouteTable>> {
        if let Some(host) = self.services.get(service) {
            return self.by_host.get(host);
        }
        self.by_host
            .get(service)
            .or_else(|| self.by_host.get(&dns_name(service)))
    }
}

/// The bridge's host form of a name: lower case, `[a-z0-9.-]` kept, everything else `-`, no
/// leading or trailing `-` per dot-separated label, empty labels dropped.
pub fn dns_name(name: &str) -> String {
    name.split('.')
        .map(|label| {
            let mapped: String = label
                .chars()
                .map(|c| {
                    let c = c.to_ascii_lowercase();
                    if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            mapped.trim_matches('-').to_owned()
        })
        .filter(|label| !label.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Call<'a> {
        method: &'a str,
        service: Option<&'a str>,
        headers: &'a [(&'a str, &'a str)],
    }

    impl ThriftAttributes for Call<'_> {
        fn method(&self) -> &str {
            self.method
        }
        fn service(&self) -> Option<&str> {
            self.service
        }
        fn header(&self, key: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
        }
    }

    fn route(name: &str, method: Option<&str>, service: Option<&str>) -> ThriftRoute {
        ThriftRoute {
            name: name.into(),
            method: method.map(|m| StringMatch::Exact(m.into())),
            service: service.map(|s| StringMatch::Exact(s.into())),
            headers: vec![("tenant".into(), StringMatch::Prefix("a".into()))],
            destinations: WeightedClusters::single(Arc::from("c")),
            request_mutation: Vec::new(),
            mirrors: Vec::new(),
            policy: MetaPolicy::default(),
        }
    }

    #[test]
    fn routes_match_method_service_and_headers() {
        let r = route("r", Some("add"), Some("Calc"));
        let call = |method, service, headers| Call {
            method,
            service,
            headers,
        };
        assert!(r.matches(&call("add", Some("Calc"), &[("tenant", "ab")])));
        assert!(!r.matches(&call("add", None, &[("tenant", "ab")])));
        assert!(!r.matches(&call("sub", Some("Calc"), &[("tenant", "ab")])));
        assert!(!r.matches(&call("add", Some("Calc"), &[])));
    }

    #[test]
    fn services_resolve_by_config_then_host_then_dns_form() {
        let table = |name: &str, host: &str, services: &[&str]| ThriftRouteTable {
            name: name.into(),
            host: host.into(),
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            routes: Vec::new(),
            methods: vec!["add".into()],
        };
        let tables = ThriftTables::new([
            table("calc.mesh:9090", "calc.mesh", &["Calculator"]),
            table("calculator2:9090", "calculator2", &[]),
            table("echo:9090", "echo", &[]),
        ]);
        assert_eq!(tables.for_service("Calculator").unwrap().host, "calc.mesh");
        assert_eq!(
            tables.for_service("Calculator2").unwrap().host,
            "calculator2"
        );
        assert_eq!(tables.for_service("echo").unwrap().host, "echo");
        assert!(tables.for_service("Nope").is_none());
        let t = tables.for_host("calc.mesh").unwrap();
        assert_eq!(t.method_label("add"), "add");
        assert_eq!(t.method_label("drop"), "other");
        assert_eq!(t.interface_label(Some("Calculator")), "Calculator");
        assert_eq!(dns_name("com.foo.Bar$Inner"), "com.foo.bar-inner");
    }
}
