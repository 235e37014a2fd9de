//! Istio `ServiceEntry` output: one `networking.istio.io/v1` resource per service with inline
//! endpoints, rendered deterministically (identical snapshots give identical bytes) and written
//! atomically to a directory, one file per service, removing files of services that are gone.
//!
//! Unhealthy or disabled providers are left out of the endpoints (a ServiceEntry cannot mark them);
//! they stay visible in `/debug/services`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::provider::Protocol;
use crate::model::snapshot::{Service, Snapshot};

/// Prefix of every generated resource name and file name.
pub const NAME_PREFIX: &str = "causeway-";
/// The value of `app.kubernetes.io/managed-by` on generated resources.
pub const MANAGED_BY: &str = "causeway-bridge";

/// One ServiceEntry as Causeway publishes it, whatever the encoding: the YAML writer serialises
/// it as is and the MCP server ([`crate::xds::mcp`]) maps it field by field onto Istio's protobuf
/// types, so every content decision (names, labels, annotations, which endpoints) is made once, in
/// [`service_entry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntry<'a> {
    /// `networking.istio.io/v1` (YAML only: MCP names the type in its type URL).
    pub api_version: &'static str,
    /// `ServiceEntry` (YAML only).
    pub kind: &'static str,
    /// Name, namespace, labels and annotations.
    pub metadata: Metadata,
    /// The Istio `ServiceEntry` spec.
    pub spec: Spec<'a>,
}

/// Kubernetes-style object metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// Resource name ([`resource_name`]).
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Labels.
    pub labels: BTreeMap<&'static str, String>,
    /// `causeway.io/*` annotations.
    pub annotations: BTreeMap<&'static str, String>,
}

/// Istio `ServiceEntry.Location`: only what Causeway emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Registry services are part of the mesh (mTLS, policy apply).
    MeshInternal,
}

/// Istio `ServiceEntry.Resolution`: only what Causeway emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Endpoints are the registry's addresses, listed inline.
    Static,
}

/// The `ServiceEntry` spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spec<'a> {
    /// The service's host.
    pub hosts: Vec<&'a str>,
    /// Always inside the mesh.
    pub location: Location,
    /// Always static endpoints.
    pub resolution: Resolution,
    /// One port per protocol.
    pub ports: Vec<Port<'a>>,
    /// Healthy endpoints.
    pub endpoints: Vec<WorkloadEntry<'a>>,
}

/// A service port (Istio `ServicePort`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port<'a> {
    /// Port number.
    pub number: u16,
    /// Port name (Aeraki's MetaProtocol reads the protocol from it).
    pub name: &'a str,
    /// Istio protocol name.
    pub protocol: &'static str,
}

/// An inline endpoint (Istio `WorkloadEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkloadEntry<'a> {
    /// IP address.
    pub address: &'a str,
    /// Service port name → this endpoint's port.
    pub ports: BTreeMap<&'a str, u16>,
    /// The endpoint's labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: &'a BTreeMap<String, String>,
    /// `region/zone[/subzone]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<&'a str>,
    /// Load-balancing weight.
    pub weight: u32,
}

fn istio_protocol(protocol: Protocol) -> &'static str {
    match protocol {
        // Dubbo and Thrift ride on TCP in Istio; Aeraki's MetaProtocol reads the port name.
        Protocol::Dubbo | Protocol::Thrift | Protocol::Tcp => "TCP",
        Protocol::Triple | Protocol::Grpc => "GRPC",
        Protocol::Http => "HTTP",
    }
}

/// The resource (and file) name of a service: the prefix plus its host with dots as dashes.
pub fn resource_name(service: &Service) -> String {
    let mut name = format!("{NAME_PREFIX}{}", service.host.replace('.', "-"));
    // Kubernetes names are at most 253 characters.
    name.truncate(253);
    name.trim_end_matches('-').to_owned()
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().map(String::as_str).collect::<Vec<_>>().join(",")
}

fn annotations(service: &Service) -> BTreeMap<&'static str, String> {
    let mut annotations = BTreeMap::new();
    if let Some(dubbo) = &service.dubbo {
        annotations.insert("causeway.io/interface", dubbo.interface.clone());
        if let Some(group) = &dubbo.group {
            annotations.insert("causeway.io/dubbo-group", group.clone());
        }
        if let Some(version) = &dubbo.version {
            annotations.insert("causeway.io/dubbo-version", version.clone());
        }
    }
    if let Some(name) = &service.name {
        annotations.insert("causeway.io/service", name.clone());
    }
    annotations.insert("causeway.io/registries", join(&service.registries));
    if !service.stale_registries.is_empty() {
        annotations.insert(
            "causeway.io/stale-registries",
            join(&service.stale_registries),
        );
    }
    if !service.methods.is_empty() {
        annotations.insert("causeway.io/methods", join(&service.methods));
    }
    if service.draining {
        annotations.insert("causeway.io/draining", "true".to_owned());
    }
    annotations
}

/// The ServiceEntry of one service: every content decision of both outputs.
pub fn service_entry(service: &Service) -> ServiceEntry<'_> {
    ServiceEntry {
        api_version: "networking.istio.io/v1",
        kind: "ServiceEntry",
        metadata: Metadata {
            name: resource_name(service),
            namespace: service.namespace.clone(),
            labels: BTreeMap::from([("app.kubernetes.io/managed-by", MANAGED_BY.to_owned())]),
            annotations: annotations(service),
        },
        spec: Spec {
            hosts: vec![service.host.as_str()],
            location: Location::MeshInternal,
            resolution: Resolution::Static,
            ports: service
                .ports
                .iter()
                .map(|p| Port {
                    number: p.number,
                    name: &p.name,
                    protocol: istio_protocol(p.protocol),
                })
                .collect(),
            endpoints: service
                .endpoints
                .iter()
                .filter(|e| e.healthy)
                .map(|e| WorkloadEntry {
                    address: &e.address,
                    ports: BTreeMap::from([(e.port_name.as_str(), e.port)]),
                    labels: &e.labels,
                    locality: e.locality.as_deref(),
                    weight: e.weight,
                })
                .collect(),
        },
    }
}

/// Renders one service as a ServiceEntry YAML document.
pub fn render(service: &Service) -> String {
    // Plain structs of strings and maps always serialise; the fallback keeps this panic-free.
    serde_saphyr::to_string(&service_entry(service)).unwrap_or_default()
}

/// Renders every service as one multi-document YAML stream, in host order.
pub fn render_all(snapshot: &Snapshot) -> String {
    snapshot
        .services
        .values()
        .map(|s| render(s))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Why the directory could not be updated.
#[derive(Debug, thiserror::Error)]
#[error("ServiceEntry directory {dir}: {source}")]
pub struct WriteError {
    dir: PathBuf,
    source: std::io::Error,
}

/// Writes one file per service into `dir` (`<namespace>.<name>.yaml`), atomically (temp file and
/// rename) and only when the content changed; removes generated files of services that are gone.
/// Returns how many files were written and removed.
pub fn write_dir(dir: &Path, snapshot: &Snapshot) -> Result<(usize, usize), WriteError> {
    let fail = |source| WriteError {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut wanted = BTreeSet::new();
    let mut written = 0;
    for service in snapshot.services.values() {
        let file = format!("{}.{}.yaml", service.namespace, resource_name(service));
        let path = dir.join(&file);
        let content = render(service);
        wanted.insert(file.clone());
        if std::fs::read_to_string(&path).ok().as_deref() == Some(content.as_str()) {
            continue;
        }
        let temp = dir.join(format!(".{file}.tmp"));
        std::fs::write(&temp, &content).map_err(fail)?;
        std::fs::rename(&temp, &path).map_err(fail)?;
        written += 1;
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let generated = name.ends_with(".yaml") && name.contains(&format!(".{NAME_PREFIX}"));
        if generated && !wanted.contains(&name) {
            std::fs::remove_file(entry.path()).map_err(fail)?;
            removed += 1;
        }
    }
    Ok((written, removed))
}

// Shared with the MCP tests, which check the same snapshots in their protobuf form.
#[cfg(test)]
pub(crate) mod tests;
