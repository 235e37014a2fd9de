//! Istio ServiceEntries over MCP-over-xDS (DESIGN.md §5), for istiod's `configSources`.
//!
//! istiod configured with `configSources: [{address: xds://<bridge>:15010}]` opens a
//! state-of-the-world ADS stream and asks for `networking.istio.io/v1alpha3/ServiceEntry` with no
//! names (a wildcard). Each resource it gets back is a `google.protobuf.Any` holding an
//! `istio.mcp.v1alpha1.Resource`, whose metadata name is `<namespace>/<name>` (istiod splits it
//! and rejects any other shape) and whose body is an Any holding an
//! `istio.networking.v1alpha3.ServiceEntry`.
//!
//! This module owns those wire types and the mapping onto them. It makes no content decision of
//! its own: [`serviceentry::service_entry`] decides names, labels, annotations and endpoints for
//! both this output and the YAML files, so the two always agree.
//!
//! The message structs are hand-written prost messages covering only the fields Causeway sets;
//! field numbers follow istio/api `mcp/v1alpha1/{resource,metadata}.proto` and
//! `networking/v1alpha3/{service_entry,workload_entry}.proto`. Map fields are `BTreeMap`s so the
//! encoding is sorted by key: prost writes a `HashMap` in iteration order, which differs between
//! processes and would give two bridges fed the same registries different versions.

use std::collections::BTreeMap;

use envoy_types::pb::google::protobuf::{Any, Timestamp};
use envoy_types::util::pack_any;
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::model::snapshot::Service;
use crate::serviceentry::{self, service_entry};
use crate::xds::resources::{ResourceSet, SERVICE_ENTRY, XdsResource, hex16};

/// `istio.mcp.v1alpha1.Resource`: one resource of an MCP collection.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// Common metadata.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<Metadata>,
    /// The type-specific payload (here always a [`ServiceEntry`]).
    #[prost(message, optional, tag = "2")]
    pub body: Option<Any>,
}

/// `istio.mcp.v1alpha1.Metadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    /// `<namespace>/<name>`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Creation time.
    #[prost(message, optional, tag = "2")]
    pub create_time: Option<Timestamp>,
    /// Opaque resource version.
    #[prost(string, tag = "3")]
    pub version: String,
    /// Labels.
    #[prost(btree_map = "string, string", tag = "4")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[prost(btree_map = "string, string", tag = "5")]
    pub annotations: BTreeMap<String, String>,
}

/// `istio.networking.v1alpha3.ServiceEntry` (without `workload_selector`, tag 9, never set).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceEntry {
    /// Hosts.
    #[prost(string, repeated, tag = "1")]
    pub hosts: Vec<String>,
    /// Virtual IPs.
    #[prost(string, repeated, tag = "2")]
    pub addresses: Vec<String>,
    /// Ports.
    #[prost(message, repeated, tag = "3")]
    pub ports: Vec<ServicePort>,
    /// A [`Location`].
    #[prost(enumeration = "Location", tag = "4")]
    pub location: i32,
    /// A [`Resolution`].
    #[prost(enumeration = "Resolution", tag = "5")]
    pub resolution: i32,
    /// Inline endpoints.
    #[prost(message, repeated, tag = "6")]
    pub endpoints: Vec<WorkloadEntry>,
    /// Namespaces the service is visible to (empty: all).
    #[prost(string, repeated, tag = "7")]
    pub export_to: Vec<String>,
    /// Subject alternative names to verify.
    #[prost(string, repeated, tag = "8")]
    pub subject_alt_names: Vec<String>,
}

/// `istio.networking.v1alpha3.ServiceEntry.Location`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Location {
    /// Outside the mesh.
    MeshExternal = 0,
    /// Part of the mesh.
    MeshInternal = 1,
}

/// `istio.networking.v1alpha3.ServiceEntry.Resolution` (the first two values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Resolution {
    /// Connections are already resolved.
    None = 0,
    /// The endpoints' addresses.
    Static = 1,
}

/// `istio.networking.v1alpha3.ServicePort`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServicePort {
    /// Port number.
    #[prost(uint32, tag = "1")]
    pub number: u32,
    /// Protocol (`TCP`, `GRPC`, `HTTP`, …).
    #[prost(string, tag = "2")]
    pub protocol: String,
    /// Port name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// Endpoint port when it differs and no endpoint port map says otherwise.
    #[prost(uint32, tag = "4")]
    pub target_port: u32,
}

/// `istio.networking.v1alpha3.WorkloadEntry`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkloadEntry {
    /// Address.
    #[prost(string, tag = "1")]
    pub address: String,
    /// Service port name → endpoint port.
    #[prost(btree_map = "string, uint32", tag = "2")]
    pub ports: BTreeMap<String, u32>,
    /// Labels.
    #[prost(btree_map = "string, string", tag = "3")]
    pub labels: BTreeMap<String, String>,
    /// Network.
    #[prost(string, tag = "4")]
    pub network: String,
    /// `region/zone[/subzone]`.
    #[prost(string, tag = "5")]
    pub locality: String,
    /// Load-balancing weight.
    #[prost(uint32, tag = "6")]
    pub weight: u32,
    /// Service account.
    #[prost(string, tag = "7")]
    pub service_account: String,
}

// prost's default `type_url()` is `/<full name>`, not the `type.googleapis.com/` form that Istio's
// own servers send and that the task's consumers are written against, so it is spelled out.
macro_rules! istio_name {
    ($type:ty, $package:literal, $name:literal) => {
        impl prost::Name for $type {
            const NAME: &'static str = $name;
            const PACKAGE: &'static str = $package;

            fn type_url() -> String {
                concat!("type.googleapis.com/", $package, ".", $name).to_owned()
            }
        }
    };
}

istio_name!(Resource, "istio.mcp.v1alpha1", "Resource");
istio_name!(Metadata, "istio.mcp.v1alpha1", "Metadata");
istio_name!(ServiceEntry, "istio.networking.v1alpha3", "ServiceEntry");
istio_name!(ServicePort, "istio.networking.v1alpha3", "ServicePort");
istio_name!(WorkloadEntry, "istio.networking.v1alpha3", "WorkloadEntry");

fn location(location: serviceentry::Location) -> Location {
    match location {
        serviceentry::Location::MeshInternal => Location::MeshInternal,
    }
}

fn resolution(resolution: serviceentry::Resolution) -> Resolution {
    match resolution {
        serviceentry::Resolution::Static => Resolution::Static,
    }
}

fn strings(map: &BTreeMap<&str, String>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The protobuf form of a ServiceEntry.
pub fn to_proto(entry: &serviceentry::ServiceEntry<'_>) -> ServiceEntry {
    let spec = &entry.spec;
    ServiceEntry {
        hosts: spec.hosts.iter().map(|h| (*h).to_owned()).collect(),
        ports: spec
            .ports
            .iter()
            .map(|p| ServicePort {
                number: u32::from(p.number),
                protocol: p.protocol.to_owned(),
                name: p.name.to_owned(),
                target_port: 0,
            })
            .collect(),
        location: location(spec.location) as i32,
        resolution: resolution(spec.resolution) as i32,
        endpoints: spec
            .endpoints
            .iter()
            .map(|e| WorkloadEntry {
                address: e.address.to_owned(),
                ports: e
                    .ports
                    .iter()
                    .map(|(name, port)| ((*name).to_owned(), u32::from(*port)))
                    .collect(),
                labels: e.labels.clone(),
                locality: e.locality.unwrap_or_default().to_owned(),
                weight: e.weight,
                ..WorkloadEntry::default()
            })
            .collect(),
        ..ServiceEntry::default()
    }
}

/// The MCP resource of a ServiceEntry, and its name (`<namespace>/<name>`).
pub fn to_resource(entry: &serviceentry::ServiceEntry<'_>) -> (String, Resource) {
    let body = pack_any(to_proto(entry));
    let name = format!("{}/{}", entry.metadata.namespace, entry.metadata.name);
    let metadata = Metadata {
        name: name.clone(),
        // The Unix epoch, never the wall clock: a real time would differ between replicas and
        // change the version on every restart. It is sent (an empty Timestamp) rather than left
        // out because older istiod releases convert it with gogo's `TimestampFromProto`, which
        // rejects a missing timestamp and so would drop the resource.
        create_time: Some(Timestamp::default()),
        version: hex16(&Sha256::digest(body.encode_to_vec())),
        labels: strings(&entry.metadata.labels),
        annotations: strings(&entry.metadata.annotations),
    };
    (
        name,
        Resource {
            metadata: Some(metadata),
            body: Some(body),
        },
    )
}

/// Adds the [`SERVICE_ENTRY`] resource of one service to `set`.
pub fn add_service_entry(service: &Service, set: &mut ResourceSet) {
    let (name, resource) = to_resource(&service_entry(service));
    set.insert(SERVICE_ENTRY, XdsResource::new(name, pack_any(resource)));
}

#[cfg(test)]
mod tests;
