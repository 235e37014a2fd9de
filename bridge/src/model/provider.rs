//! What a registry adapter reports: one provider instance, normalized across registries.
//!
//! Adapters translate their own layout (a ZooKeeper znode name, an etcd key, a Nacos instance, a
//! static file entry) into a [`Provider`]; everything after that — naming, labels, merging — is
//! registry-agnostic and lives in the rest of [`crate::model`].

use std::collections::BTreeMap;
use std::fmt;

/// The wire protocol a provider speaks, from the Dubbo URL scheme or registry metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Dubbo 2 over TCP (`dubbo://`).
    Dubbo,
    /// Dubbo 3 Triple, gRPC-compatible HTTP/2 (`tri://`).
    Triple,
    /// gRPC (`grpc://`).
    Grpc,
    /// Thrift (`thrift://`).
    Thrift,
    /// HTTP/1.1 or HTTP/2 (`rest://`, `http://`, Spring Cloud services).
    Http,
    /// Anything else, carried as opaque TCP.
    Tcp,
}

impl Protocol {
    /// Maps a URL scheme or a registry's protocol string to a protocol; unknown values are TCP.
    pub fn from_scheme(scheme: &str) -> Self {
        match scheme.to_ascii_lowercase().as_str() {
            "dubbo" => Self::Dubbo,
            "tri" | "triple" => Self::Triple,
            "grpc" => Self::Grpc,
            "thrift" => Self::Thrift,
            "http" | "https" | "rest" | "springcloud" => Self::Http,
            _ => Self::Tcp,
        }
    }

    /// The lower-case name used in port names and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dubbo => "dubbo",
            Self::Triple => "triple",
            Self::Grpc => "grpc",
            Self::Thrift => "thrift",
            Self::Http => "http",
            Self::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which service a provider belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceRef {
    /// A Dubbo interface; group and version are part of the service identity, as in Dubbo's own
    /// service key. Case is preserved: routing matches the exact interface.
    Dubbo {
        /// Fully qualified interface name.
        interface: String,
        /// Dubbo service group, if any.
        group: Option<String>,
        /// Dubbo service version, if any (`0.0.0` and empty mean none).
        version: Option<String>,
    },
    /// A named service without Dubbo identity (Spring Cloud, static file entries).
    Named(String),
}

impl ServiceRef {
    /// A Dubbo reference with Dubbo's normalisation: empty group/version and version `0.0.0` are
    /// absent.
    pub fn dubbo(interface: &str, group: Option<&str>, version: Option<&str>) -> Self {
        let clean = |v: Option<&str>| {
            v.map(str::trim)
                .filter(|v| !v.is_empty() && *v != "0.0.0")
                .map(str::to_owned)
        };
        Self::Dubbo {
            interface: interface.to_owned(),
            group: clean(group),
            version: clean(version),
        }
    }
}

/// Where in a registry a provider was found, beyond the registry itself. Nacos namespaces and
/// groups become part of the host name, so equal names in different scopes stay apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegistryScope {
    /// Registries without scopes (ZooKeeper, etcd, files).
    #[default]
    Global,
    /// A Nacos namespace id and group, defaults filled in (`public`, `DEFAULT_GROUP`).
    Nacos {
        /// Namespace id.
        namespace: String,
        /// Group name.
        group: String,
    },
}

/// One provider instance as a registry reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Provider {
    /// The service it provides.
    pub service: ServiceRef,
    /// The wire protocol of this endpoint.
    pub protocol: Protocol,
    /// Advertised host (an IP address in practice).
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// Every registry parameter or metadata entry, raw.
    pub params: BTreeMap<String, String>,
    /// Registry scope (Nacos namespace and group).
    pub scope: RegistryScope,
    /// The registry's own weight, if it has one that is not a Dubbo parameter (Nacos).
    pub registry_weight: Option<u32>,
    /// Whether the registry says the instance is healthy and enabled.
    pub healthy: bool,
}
