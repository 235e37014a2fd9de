//! Dubbo 3 application-level service discovery (PROTOCOLS.md §5.2): an application instance plus
//! its metadata revision becomes one provider per exported interface.
//!
//! An instance (a Curator service-discovery record) names its application, address and port, and
//! carries `dubbo.metadata.revision`. The revision identifies a `MetadataInfo` document listing the
//! interfaces the application exports, with protocol, port and parameters. With
//! `dubbo.metadata.storage-type=remote` the document sits in the registry
//! (`/dubbo/metadata/<app>/<revision>` in ZooKeeper) and arrives as JSON
//! ([`MetadataInfo::parse_json`]); with the default `local` only the provider itself can answer,
//! so the bridge calls its `MetadataService` over the dubbo protocol
//! ([`crate::registry::metadata_service::fetch_metadata`], Hessian 2 object converted to the same
//! [`MetadataInfo`]). Documents are immutable per revision, so they are cached by (application,
//! revision).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;

use crate::model::provider::{Protocol, Provider, RegistryScope, ServiceRef};

/// Metadata key holding the revision.
pub const REVISION_KEY: &str = "dubbo.metadata.revision";
/// Metadata key saying where the metadata document is stored.
pub const STORAGE_TYPE_KEY: &str = "dubbo.metadata.storage-type";
/// Metadata key listing the instance's protocol endpoints.
pub const ENDPOINTS_KEY: &str = "dubbo.endpoints";
/// Metadata key with the MetadataService's URL parameters.
pub const METADATA_SERVICE_KEY: &str = "dubbo.metadata-service.url-params";

/// The Curator JSON record under `/services/<app>/<id>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CuratorInstance {
    /// Application (service) name.
    pub name: String,
    /// Instance address.
    pub address: String,
    /// Plain port.
    pub port: Option<u16>,
    /// TLS port.
    pub ssl_port: Option<u16>,
    /// Dubbo's or Spring Cloud's payload.
    #[serde(default)]
    pub payload: Option<CuratorPayload>,
}

/// The payload of a Curator record.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CuratorPayload {
    /// String metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl CuratorInstance {
    /// Parses a record.
    pub fn parse(data: &[u8]) -> Result<Self, String> {
        let instance: Self =
            serde_json::from_slice(data).map_err(|e| format!("instance JSON: {e}"))?;
        if instance.address.is_empty() || instance.name.is_empty() {
            return Err("instance has no name or address".to_owned());
        }
        Ok(instance)
    }

    /// The instance metadata.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.payload.as_ref().map_or(&EMPTY, |p| &p.metadata)
    }

    /// The metadata revision, when this is a Dubbo 3 application instance.
    pub fn dubbo_revision(&self) -> Option<&str> {
        self.metadata().get(REVISION_KEY).map(String::as_str)
    }

    /// Whether the metadata document is kept in the registry (`remote`) rather than only by
    /// the provider (`local`, Dubbo's default).
    pub fn metadata_is_remote(&self) -> bool {
        self.metadata().get(STORAGE_TYPE_KEY).map(String::as_str) == Some("remote")
    }
}

/// One exported interface in a `MetadataInfo` document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServiceInfo {
    /// Interface name.
    pub name: String,
    /// Dubbo group.
    #[serde(default)]
    pub group: Option<String>,
    /// Dubbo version.
    #[serde(default)]
    pub version: Option<String>,
    /// Protocol (`dubbo`, `tri`, …).
    #[serde(default)]
    pub protocol: Option<String>,
    /// Port, when the document gives one.
    #[serde(default)]
    pub port: Option<u16>,
    /// Path (normally the interface).
    #[serde(default)]
    pub path: Option<String>,
    /// The service's URL parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// The `MetadataInfo` document of one application revision.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MetadataInfo {
    /// Application name.
    pub app: String,
    /// Revision.
    pub revision: String,
    /// Exported services by service key.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceInfo>,
}

impl MetadataInfo {
    /// Parses the JSON form (remote storage).
    pub fn parse_json(data: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(data).map_err(|e| format!("MetadataInfo JSON: {e}"))
    }
}

#[derive(Debug, Deserialize)]
struct EndpointEntry {
    port: u16,
    protocol: String,
}

/// The providers an application instance stands for: one per exported interface, keyed
/// `<instance key>#<service key>`.
pub fn providers(
    instance_key: &str,
    instance: &CuratorInstance,
    metadata: &MetadataInfo,
) -> Vec<(String, Provider)> {
    let endpoints: Vec<EndpointEntry> = instance
        .metadata()
        .get(ENDPOINTS_KEY)
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    let instance_port = instance.port.or(instance.ssl_port);
    // Instance parameters that are not bulky JSON become provider parameters (zone, version
    // labels and the like), under the service's own parameters.
    let instance_params: BTreeMap<String, String> = instance
        .metadata()
        .iter()
        .filter(|(k, _)| !k.starts_with("dubbo."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = Vec::new();
    for (service_key, info) in &metadata.services {
        let protocol_name = info.protocol.clone().unwrap_or_else(|| "dubbo".to_owned());
        let port = endpoints
            .iter()
            .find(|e| e.protocol == protocol_name)
            .map(|e| e.port)
            .or(info.port)
            .or(instance_port)
            .filter(|p| *p != 0);
        let Some(port) = port else { continue };
        let mut params = instance_params.clone();
        params.extend(info.params.clone());
        params.insert("interface".to_owned(), info.name.clone());
        params.insert("application".to_owned(), metadata.app.clone());
        out.push((
            format!("{instance_key}#{service_key}"),
            Provider {
                service: ServiceRef::dubbo(
                    &info.name,
                    info.group.as_deref(),
                    info.version.as_deref(),
                ),
                protocol: Protocol::from_scheme(&protocol_name),
                host: instance.address.clone(),
                port,
                params,
                scope: RegistryScope::Global,
                registry_weight: None,
                healthy: true,
            },
        ));
    }
    out
}

/// Metadata documents by (application, revision); revisions are content hashes, so an entry
/// never goes stale. Bounded: a registry with more revisions than this starts over.
#[derive(Debug, Default)]
pub struct MetadataCache {
    entries: HashMap<(String, String), Arc<MetadataInfo>>,
}

/// How many revisions the cache keeps before it is cleared.
const CACHE_LIMIT: usize = 10_000;

impl MetadataCache {
    /// The cached document, if any.
    pub fn get(&self, app: &str, revision: &str) -> Option<Arc<MetadataInfo>> {
        self.entries
            .get(&(app.to_owned(), revision.to_owned()))
            .cloned()
    }

    /// Stores a document.
    pub fn insert(&mut self, info: MetadataInfo) -> Arc<MetadataInfo> {
        if self.entries.len() >= CACHE_LIMIT {
            self.entries.clear();
        }
        let info = Arc::new(info);
        self.entries
            .insert((info.app.clone(), info.revision.clone()), info.clone());
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSTANCE: &[u8] = br#"{"name":"demo-provider","id":"10.0.0.5:20880","address":"10.0.0.5","port":20880,"sslPort":null,
        "payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance","id":"10.0.0.5:20880","name":"demo-provider",
        "metadata":{"dubbo.metadata.revision":"a1b2","dubbo.metadata.storage-type":"remote",
        "dubbo.endpoints":"[{\"port\":20880,\"protocol\":\"dubbo\"},{\"port\":50051,\"protocol\":\"tri\"}]",
        "zone":"zone-a","region":"r1"}},"registrationTimeUTC":1674997956090,"serviceType":"DYNAMIC","uriSpec":null}"#;

    const METADATA: &[u8] = br#"{"app":"demo-provider","revision":"a1b2","services":{
        "greeting/com.acme.Greeter:1.0.0:dubbo":{"name":"com.acme.Greeter","group":"greeting","version":"1.0.0","protocol":"dubbo","path":"com.acme.Greeter","params":{"methods":"greet","side":"provider"}},
        "com.acme.Orders:tri":{"name":"com.acme.Orders","protocol":"tri","params":{"methods":"place"}}}}"#;

    #[test]
    fn an_instance_and_its_metadata_give_one_provider_per_interface() {
        let instance = CuratorInstance::parse(INSTANCE).unwrap();
        assert_eq!(instance.dubbo_revision(), Some("a1b2"));
        assert!(instance.metadata_is_remote());
        let metadata = MetadataInfo::parse_json(METADATA).unwrap();
        let providers = providers(
            "/services/demo-provider/10.0.0.5:20880",
            &instance,
            &metadata,
        );
        assert_eq!(providers.len(), 2);
        let (orders_key, orders) = &providers[0];
        assert_eq!(
            orders_key,
            "/services/demo-provider/10.0.0.5:20880#com.acme.Orders:tri"
        );
        assert_eq!(orders.protocol, Protocol::Triple);
        assert_eq!(orders.port, 50051, "the tri endpoint's port");
        let (_, greeter) = &providers[1];
        assert_eq!(
            greeter.service,
            ServiceRef::dubbo("com.acme.Greeter", Some("greeting"), Some("1.0.0"))
        );
        assert_eq!(greeter.port, 20880);
        assert_eq!(greeter.params["zone"], "zone-a");
        assert_eq!(greeter.params["methods"], "greet");
        assert!(!greeter.params.contains_key(REVISION_KEY));
    }

    #[test]
    fn the_cache_is_keyed_by_app_and_revision() {
        let mut cache = MetadataCache::default();
        cache.insert(MetadataInfo::parse_json(METADATA).unwrap());
        assert!(cache.get("demo-provider", "a1b2").is_some());
        assert!(cache.get("demo-provider", "other").is_none());
    }
}
