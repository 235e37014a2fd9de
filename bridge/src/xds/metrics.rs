//! xDS server metrics (`causeway_bridge_xds_*`): connected clients, pushes and NACKs by type,
//! and push latency from the registry change to the response being sent.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::xds::resources;

/// Resource types as a bounded label (clients may send any type URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum TypeLabel {
    /// Listeners.
    lds,
    /// HTTP routes.
    rds,
    /// Clusters.
    cds,
    /// Endpoints.
    eds,
    /// Dubbo routes.
    dubbo_rds,
    /// Thrift routes.
    thrift_rds,
    /// ServiceEntries over MCP.
    mcp_serviceentry,
    /// Anything else.
    other,
}

impl TypeLabel {
    /// The label of a type URL.
    pub fn of(type_url: &str) -> Self {
        match type_url {
            resources::LISTENER => Self::lds,
            resources::ROUTE => Self::rds,
            resources::CLUSTER => Self::cds,
            resources::ENDPOINT => Self::eds,
            resources::DUBBO_ROUTE => Self::dubbo_rds,
            resources::THRIFT_ROUTE => Self::thrift_rds,
            resources::SERVICE_ENTRY => Self::mcp_serviceentry,
            _ => Self::other,
        }
    }
}

/// Label set with a type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TypeLabels {
    /// Resource type.
    pub r#type: TypeLabel,
}

/// Label set with a protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProtocolLabels {
    /// `sotw` or `delta`.
    pub protocol: String,
}

/// Every xDS metric.
#[derive(Debug)]
pub struct XdsMetrics {
    clients: Family<ProtocolLabels, Gauge>,
    pushes: Family<TypeLabels, Counter>,
    nacks: Family<TypeLabels, Counter>,
    push_latency: Histogram,
}

impl XdsMetrics {
    /// Creates the metrics and registers them under `causeway_bridge_xds_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            clients: Family::default(),
            pushes: Family::default(),
            nacks: Family::default(),
            push_latency: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        };
        let reg = registry.sub_registry_with_prefix("causeway_bridge_xds");
        reg.register("clients", "Connected xDS streams", metrics.clients.clone());
        reg.register(
            "pushes",
            "xDS responses sent, by type",
            metrics.pushes.clone(),
        );
        reg.register(
            "nacks",
            "xDS NACKs received, by type",
            metrics.nacks.clone(),
        );
        reg.register(
            "push_latency_seconds",
            "Registry change observed → xDS response with it sent",
            metrics.push_latency.clone(),
        );
        metrics
    }

    /// A stream opened.
    pub fn connected(&self, protocol: &str) {
        self.clients
            .get_or_create(&ProtocolLabels {
                protocol: protocol.to_owned(),
            })
            .inc();
    }

    /// A stream closed.
    pub fn disconnected(&self, protocol: &str) {
        self.clients
            .get_or_create(&ProtocolLabels {
                protocol: protocol.to_owned(),
            })
            .dec();
    }

    /// A response was sent; `oldest_change` is when the registry change it carries was seen.
    pub fn push(&self, type_url: &str, oldest_change: Option<tokio::time::Instant>) {
        self.pushes
            .get_or_create(&TypeLabels {
                r#type: TypeLabel::of(type_url),
            })
            .inc();
        if let Some(at) = oldest_change {
            self.push_latency.observe(at.elapsed().as_secs_f64());
        }
    }

    /// A NACK arrived.
    pub fn nack(&self, type_url: &str) {
        self.nacks
            .get_or_create(&TypeLabels {
                r#type: TypeLabel::of(type_url),
            })
            .inc();
    }
}
