//! The demo estate's services as registries see them: the Dubbo `GreetingService`, the Thrift
//! `Inventory`, the gRPC `causeway.demo.Quotes` and the HTTP `catalog`, and what one provider
//! instance of each publishes — the entry its real-world framework would write (a Dubbo URL under
//! `/dubbo/<interface>/providers` for Dubbo, Thrift and gRPC, as Dubbo's `thrift` and `grpc`
//! protocols register; a Spring Cloud Zookeeper instance under `/services/<name>` for HTTP), or
//! its entry in the bridge's static file registry.

use std::net::SocketAddr;

use causeway_bridge::registry::dubbo_url::url_encode;

use crate::registry::REGION;
use crate::{catalog, greeter, inventory, quotes};

/// One service of the estate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    /// Dubbo `io.causeway.demo.api.GreetingService` 1.0.0.
    Greeter,
    /// Thrift `Inventory` (multiplexed name).
    Inventory,
    /// gRPC `causeway.demo.Quotes`.
    Quotes,
    /// HTTP `catalog`.
    Catalog,
}

impl Service {
    /// The services beside the Dubbo greeter that make the estate mixed.
    pub const MIXED: [Service; 3] = [Service::Inventory, Service::Quotes, Service::Catalog];

    /// The wire protocol, as the file registry and port names spell it.
    pub fn protocol(self) -> &'static str {
        match self {
            Service::Greeter => "dubbo",
            Service::Inventory => "thrift",
            Service::Quotes => "grpc",
            Service::Catalog => "http",
        }
    }

    /// The name the service registers under: the interface for Dubbo, Thrift and gRPC, the
    /// application name for HTTP.
    pub fn registered_name(self) -> &'static str {
        match self {
            Service::Greeter => greeter::INTERFACE,
            Service::Inventory => inventory::SERVICE,
            Service::Quotes => quotes::SERVICE,
            Service::Catalog => catalog::NAME,
        }
    }

    /// The mesh host the bridge gives it (lower-cased interface, `-<version>` for a Dubbo
    /// version; the application name for HTTP).
    pub fn host(self) -> String {
        match self {
            Service::Greeter => format!(
                "{}-{}",
                greeter::INTERFACE.to_ascii_lowercase(),
                greeter::SERVICE_VERSION.replace('.', "-")
            ),
            other => other.registered_name().to_ascii_lowercase(),
        }
    }

    fn methods(self) -> Vec<&'static str> {
        match self {
            Service::Greeter => greeter::METHODS.to_vec(),
            Service::Inventory => vec![inventory::METHOD],
            Service::Quotes => vec![quotes::METHOD],
            Service::Catalog => Vec::new(),
        }
    }

    fn application(self) -> &'static str {
        match self {
            Service::Greeter => "greeter",
            Service::Inventory => "inventory",
            Service::Quotes => "quotes",
            Service::Catalog => catalog::NAME,
        }
    }

    fn dubbo_version(self) -> Option<&'static str> {
        (self == Service::Greeter).then_some(greeter::SERVICE_VERSION)
    }
}

/// One provider instance of a service, as it publishes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The service.
    pub service: Service,
    /// Its version label (`v1`, `v2`).
    pub version: String,
    /// Its zone in [`REGION`].
    pub zone: String,
    /// Where callers reach it.
    pub addr: SocketAddr,
    /// The methods it registers; empty: the service's own list.
    pub methods: Vec<String>,
}

/// A ZooKeeper node a provider creates: its parents are persistent, the node itself ephemeral
/// (it goes away with the provider's session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooKeeperEntry {
    /// Persistent parents, outermost first.
    pub parents: Vec<String>,
    /// The ephemeral node.
    pub path: String,
    /// Its data.
    pub data: Vec<u8>,
}

impl Registration {
    /// The methods it registers.
    fn method_list(&self) -> Vec<&str> {
        if self.methods.is_empty() {
            self.service.methods()
        } else {
            self.methods.iter().map(String::as_str).collect()
        }
    }

    /// The node the provider's framework writes in ZooKeeper.
    pub fn zookeeper_entry(&self) -> ZooKeeperEntry {
        let name = self.service.registered_name();
        if self.service == Service::Catalog {
            // Spring Cloud Zookeeper: a Curator service instance, one node per instance.
            let id = format!("{}-{}-{}", self.version, self.zone, self.addr.port());
            let data = format!(
                r#"{{"name":"{name}","id":"{id}","address":"{ip}","port":{port},"sslPort":null,"payload":{{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","id":"{name}","name":"{name}","metadata":{{"version":"{version}","region":"{REGION}","zone":"{zone}"}}}},"registrationTimeUTC":0,"serviceType":"DYNAMIC"}}"#,
                ip = self.addr.ip(),
                port = self.addr.port(),
                version = self.version,
                zone = self.zone,
            );
            return ZooKeeperEntry {
                parents: vec!["/services".into(), format!("/services/{name}")],
                path: format!("/services/{name}/{id}"),
                data: data.into_bytes(),
            };
        }
        ZooKeeperEntry {
            parents: vec![
                "/dubbo".into(),
                format!("/dubbo/{name}"),
                format!("/dubbo/{name}/providers"),
            ],
            path: format!(
                "/dubbo/{name}/providers/{}",
                url_encode(&self.provider_url())
            ),
            data: Vec::new(),
        }
    }

    /// The Dubbo-style provider URL (`aeraki_meta_app_version` becomes the `version` label).
    fn provider_url(&self) -> String {
        let service = self.service;
        let name = service.registered_name();
        let methods = self.method_list().join(",");
        let version = service
            .dubbo_version()
            .map(|v| format!("&version={v}"))
            .unwrap_or_default();
        format!(
            "{protocol}://{addr}/{name}?interface={name}{version}&methods={methods}\
             &application={app}&side=provider&aeraki_meta_app_version={label}\
             &region={REGION}&zone={zone}",
            protocol = service.protocol(),
            addr = self.addr,
            methods = methods,
            app = service.application(),
            label = self.version,
            zone = self.zone,
        )
    }
}

/// The bridge's static file registry listing `registrations` (services in a fixed order).
pub fn file_registry(registrations: &[Registration]) -> String {
    let mut services: Vec<Service> = registrations.iter().map(|r| r.service).collect();
    services.sort();
    services.dedup();
    if services.is_empty() {
        return "services: []\n".to_owned();
    }
    let mut text = String::from("services:\n");
    for service in services {
        let name = service.registered_name();
        match service {
            Service::Catalog => text.push_str(&format!("- name: {name}\n")),
            _ => text.push_str(&format!("- interface: {name}\n")),
        }
        if let Some(version) = service.dubbo_version() {
            text.push_str(&format!("  version: {version}\n"));
        }
        text.push_str(&format!("  protocol: {}\n", service.protocol()));
        let methods = registrations
            .iter()
            .find(|r| r.service == service)
            .map_or_else(|| service.methods(), Registration::method_list);
        if !methods.is_empty() {
            text.push_str(&format!("  methods: [{}]\n", methods.join(", ")));
        }
        text.push_str("  endpoints:\n");
        for registration in registrations.iter().filter(|r| r.service == service) {
            text.push_str(&format!(
                "  - {{address: {}, port: {}, labels: {{version: {}, region: {REGION}, zone: {}}}}}\n",
                registration.addr.ip(),
                registration.addr.port(),
                registration.version,
                registration.zone
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(service: Service) -> Registration {
        Registration {
            service,
            version: "v2".into(),
            zone: "zone-b".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
            methods: Vec::new(),
        }
    }

    #[test]
    fn dubbo_thrift_and_grpc_register_dubbo_urls() {
        let entry = registration(Service::Inventory).zookeeper_entry();
        assert_eq!(entry.parents.last().unwrap(), "/dubbo/Inventory/providers");
        assert!(
            entry.path.starts_with(
                "/dubbo/Inventory/providers/thrift%3A%2F%2F127.0.0.1%3A9090%2FInventory%3F"
            ),
            "{}",
            entry.path
        );
        let greeter = registration(Service::Greeter).zookeeper_entry();
        assert!(greeter.path.contains("version%3D1.0.0"), "{}", greeter.path);
        let quotes = registration(Service::Quotes).zookeeper_entry();
        assert!(quotes.path.contains("grpc%3A%2F%2F"), "{}", quotes.path);
        assert_eq!(Service::Quotes.host(), "causeway.demo.quotes");
        assert_eq!(
            Service::Greeter.host(),
            "io.causeway.demo.api.greetingservice-1-0-0"
        );
    }

    #[test]
    fn http_registers_a_spring_cloud_instance() {
        let entry = registration(Service::Catalog).zookeeper_entry();
        assert_eq!(entry.path, "/services/catalog/v2-zone-b-9090");
        let json: serde_json::Value = serde_json::from_slice(&entry.data).unwrap();
        assert_eq!(json["port"], 9090);
        assert_eq!(json["payload"]["metadata"]["zone"], "zone-b");
    }

    #[test]
    fn the_file_registry_lists_each_service_once() {
        let mut v1 = registration(Service::Catalog);
        v1.version = "v1".into();
        let text = file_registry(&[
            registration(Service::Catalog),
            registration(Service::Inventory),
            v1,
        ]);
        assert_eq!(text.matches("- name: catalog").count(), 1, "{text}");
        assert_eq!(text.matches("protocol: thrift").count(), 1, "{text}");
        assert_eq!(text.matches("address: 127.0.0.1").count(), 3, "{text}");
        assert_eq!(file_registry(&[]), "services: []\n");
    }
}
