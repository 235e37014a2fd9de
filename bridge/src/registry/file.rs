//! The static file adapter: services and endpoints listed in a YAML file, for estates (or parts of
//! them) outside any registry. The file is polled for changes; a change that does not parse is
//! rejected with its line and column and the last good contents stay in force.
//!
//! ```yaml
//! services:
//!   - interface: com.acme.OrderService   # a Dubbo interface, or `name: orders` for a plain service
//!     version: 1.0.0                     # optional Dubbo version and group
//!     protocol: dubbo                    # dubbo (default for interfaces), tri, grpc, thrift, http
//!     endpoints:
//!       - address: 10.0.0.1
//!         port: 20880
//!         labels: { version: v1, zone: zone-a, region: region-1 }
//!         weight: 100
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::model::provider::{Protocol, Provider, RegistryScope, ServiceRef};
use crate::registry::{EventSink, RegistryEvent, StoreClosed};

/// How often the file's modification time is checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The file's schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRegistry {
    /// The services.
    #[serde(default)]
    pub services: Vec<StaticService>,
}

/// One service of the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticService {
    /// Dubbo interface (exclusive with `name`).
    #[serde(default)]
    pub interface: Option<String>,
    /// Plain service name (exclusive with `interface`).
    #[serde(default)]
    pub name: Option<String>,
    /// Dubbo group.
    #[serde(default)]
    pub group: Option<String>,
    /// Dubbo version.
    #[serde(default)]
    pub version: Option<String>,
    /// Wire protocol; `dubbo` for interfaces and `http` for names when absent.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Methods, for bounded metric labels.
    #[serde(default)]
    pub methods: Vec<String>,
    /// The endpoints.
    #[serde(default)]
    pub endpoints: Vec<StaticEndpoint>,
}

/// One endpoint of the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticEndpoint {
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Labels (they play the part of registry parameters: `version`, `zone`, … apply).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Weight.
    #[serde(default)]
    pub weight: Option<u32>,
}

impl StaticRegistry {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// The providers the file describes, keyed `<service index>/<address>:<port>`.
    pub fn providers(&self) -> Result<BTreeMap<String, Provider>, String> {
        let mut out = BTreeMap::new();
        for (index, service) in self.services.iter().enumerate() {
            let (service_ref, default_protocol) = match (&service.interface, &service.name) {
                (Some(interface), None) => (
                    ServiceRef::dubbo(
                        interface,
                        service.group.as_deref(),
                        service.version.as_deref(),
                    ),
                    Protocol::Dubbo,
                ),
                (None, Some(name)) => (ServiceRef::Named(name.clone()), Protocol::Http),
                _ => {
                    return Err(format!(
                        "services[{index}]: give exactly one of `interface` and `name`"
                    ));
                }
            };
            let protocol = service
                .protocol
                .as_deref()
                .map_or(default_protocol, Protocol::from_scheme);
            for endpoint in &service.endpoints {
                if endpoint.port == 0 || endpoint.address.is_empty() {
                    return Err(format!(
                        "services[{index}]: endpoint {}:{} needs an address and a non-zero port",
                        endpoint.address, endpoint.port
                    ));
                }
                let mut params = endpoint.labels.clone();
                if !service.methods.is_empty() {
                    params.insert("methods".to_owned(), service.methods.join(","));
                }
                if let Some(weight) = endpoint.weight {
                    params.insert("weight".to_owned(), weight.to_string());
                }
                if let Some(version) = &service.version {
                    params
                        .entry("version".to_owned())
                        .or_insert(version.clone());
                }
                out.insert(
                    format!("{index}/{}:{}", endpoint.address, endpoint.port),
                    Provider {
                        service: service_ref.clone(),
                        protocol,
                        host: endpoint.address.clone(),
                        port: endpoint.port,
                        params,
                        scope: RegistryScope::Global,
                        registry_weight: None,
                        healthy: true,
                    },
                );
            }
        }
        Ok(out)
    }
}

/// Runs the adapter until the bridge shuts down.
pub async fn run(path: PathBuf, sink: EventSink) {
    if let Err(StoreClosed) = follow(path, sink).await {
        tracing::debug!("file registry stopped with the bridge");
    }
}

async fn follow(path: PathBuf, sink: EventSink) -> Result<(), StoreClosed> {
    let key = path.display().to_string();
    let mut last_seen: Option<SystemTime> = None;
    let mut up = false;
    loop {
        let modified = tokio::fs::metadata(&path).await.and_then(|m| m.modified());
        match modified {
            Err(error) => {
                if up || last_seen.is_none() {
                    tracing::warn!(registry = sink.registry(), path = %key, %error, "static registry file unreadable; keeping its last contents");
                    sink.send(RegistryEvent::Down).await?;
                    up = false;
                    last_seen = Some(SystemTime::UNIX_EPOCH);
                }
            }
            Ok(modified) if Some(modified) != last_seen || !up => {
                last_seen = Some(modified);
                let parsed = tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|text| StaticRegistry::parse(&text))
                    .and_then(|registry| registry.providers());
                match parsed {
                    Ok(providers) => {
                        sink.send(RegistryEvent::Resync(providers)).await?;
                        sink.send(RegistryEvent::Up).await?;
                        up = true;
                    }
                    Err(reason) => {
                        // Keep the last good contents; a fixed file is picked up on its next change.
                        sink.malformed(&key, reason).await?;
                        if !up {
                            sink.send(RegistryEvent::Down).await?;
                        }
                        up = true;
                    }
                }
            }
            Ok(_) => {}
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interfaces_and_names() {
        let registry = StaticRegistry::parse(
            "services:\n  - interface: com.acme.Api\n    version: 1.0.0\n    methods: [a, b]\n    endpoints:\n      - address: 10.0.0.1\n        port: 20880\n        labels: {zone: z1, region: r1}\n  - name: web\n    endpoints:\n      - {address: 10.0.0.2, port: 8080, weight: 5}\n",
        )
        .unwrap();
        let providers = registry.providers().unwrap();
        assert_eq!(providers.len(), 2);
        let api = &providers["0/10.0.0.1:20880"];
        assert_eq!(api.protocol, Protocol::Dubbo);
        assert_eq!(api.params["methods"], "a,b");
        assert_eq!(api.params["version"], "1.0.0");
        let web = &providers["1/10.0.0.2:8080"];
        assert_eq!(web.service, ServiceRef::Named("web".into()));
        assert_eq!(web.params["weight"], "5");
    }

    #[test]
    fn rejects_ambiguous_services_and_unknown_fields() {
        let both = StaticRegistry::parse("services:\n  - {interface: a, name: b}\n").unwrap();
        assert!(both.providers().unwrap_err().contains("services[0]"));
        let typo = StaticRegistry::parse("services:\n  - {interfce: a}\n").unwrap_err();
        assert!(typo.contains("interfce"), "{typo}");
    }
}
