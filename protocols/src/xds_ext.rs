//! Causeway's own xDS extension messages: what a Dubbo or Thrift route needs beyond Envoy's
//! `dubbo_proxy`/`thrift_proxy` route protos (mirrors for Dubbo, request mutation, the consistent
//! hash attribute), what a cluster's service advertises ([`ServiceExtras`]) and an endpoint's
//! labels ([`EndpointExtras`]). The bridge packs one into a route action's
//! `metadata_match.typed_filter_metadata` under [`META_ROUTE_EXTRAS_KEY`]; Envoy ignores keys it
//! does not know, causeway-proxy reads it. Field numbers are part of the xDS contract: never reuse
//! one.

/// The `typed_filter_metadata` key of [`MetaRouteExtras`].
pub const META_ROUTE_EXTRAS_KEY: &str = "causeway.io/meta_route";

/// The `typed_filter_metadata` key of [`ServiceExtras`] on a cluster.
pub const SERVICE_EXTRAS_KEY: &str = "causeway.io/service";

/// The `typed_filter_metadata` key of [`EndpointExtras`] on an endpoint.
pub const ENDPOINT_EXTRAS_KEY: &str = "causeway.io/endpoint";

/// The prefix of every `Any` type URL, as Envoy and gRPC expect it (prost leaves it empty).
const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// Extras of one Dubbo or Thrift route.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaRouteExtras {
    /// Clusters a share of the requests is copied to, fire-and-forget.
    #[prost(message, repeated, tag = "1")]
    pub mirrors: Vec<Mirror>,
    /// Attributes set on each request before it is forwarded (Dubbo attachments, THeader
    /// headers), in order.
    #[prost(message, repeated, tag = "2")]
    pub request_mutation: Vec<Attribute>,
    /// The request attribute (`method` or an attachment/header name) a consistent-hash cluster
    /// hashes on; empty when the destination does not hash.
    #[prost(string, tag = "3")]
    pub hash_attribute: String,
}

impl prost::Name for MetaRouteExtras {
    const NAME: &'static str = "MetaRouteExtras";
    const PACKAGE: &'static str = "causeway.xds.v1";

    fn type_url() -> String {
        format!("{TYPE_URL_PREFIX}{}", Self::full_name())
    }
}

/// What a proxy needs to know about the service behind a cluster that no Envoy cluster field
/// carries; on every cluster of the service.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceExtras {
    /// The methods the providers advertise, sorted: the only values the `request_method` metric
    /// label may take (others are counted as `other`).
    #[prost(string, repeated, tag = "1")]
    pub methods: Vec<String>,
}

impl prost::Name for ServiceExtras {
    const NAME: &'static str = "ServiceExtras";
    const PACKAGE: &'static str = "causeway.xds.v1";

    fn type_url() -> String {
        format!("{TYPE_URL_PREFIX}{}", Self::full_name())
    }
}

/// An endpoint's workload labels (`version`, `app`, …), which request metrics report
/// (`destination_version`, `destination_workload`); EDS has no field for them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EndpointExtras {
    /// Labels, sorted by key.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Attribute>,
}

impl prost::Name for EndpointExtras {
    const NAME: &'static str = "EndpointExtras";
    const PACKAGE: &'static str = "causeway.xds.v1";

    fn type_url() -> String {
        format!("{TYPE_URL_PREFIX}{}", Self::full_name())
    }
}

/// One mirror of a route.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Mirror {
    /// The cluster requests are copied to.
    #[prost(string, tag = "1")]
    pub cluster: String,
    /// Share of requests copied, in parts per million.
    #[prost(uint32, tag = "2")]
    pub per_million: u32,
}

impl prost::Name for Mirror {
    const NAME: &'static str = "Mirror";
    const PACKAGE: &'static str = "causeway.xds.v1";

    fn type_url() -> String {
        format!("{TYPE_URL_PREFIX}{}", Self::full_name())
    }
}

/// A request attribute and its value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Attribute {
    /// Name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

impl prost::Name for Attribute {
    const NAME: &'static str = "Attribute";
    const PACKAGE: &'static str = "causeway.xds.v1";

    fn type_url() -> String {
        format!("{TYPE_URL_PREFIX}{}", Self::full_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::{Message, Name};

    #[test]
    fn round_trips_and_names_its_type() {
        let extras = MetaRouteExtras {
            mirrors: vec![Mirror {
                cluster: "outbound|20880|v2|demo.greeter".into(),
                per_million: 250_000,
            }],
            request_mutation: vec![Attribute {
                key: "env".into(),
                value: "canary".into(),
            }],
            hash_attribute: "userId".into(),
        };
        let bytes = extras.encode_to_vec();
        assert_eq!(MetaRouteExtras::decode(bytes.as_slice()).unwrap(), extras);
        assert_eq!(
            MetaRouteExtras::type_url(),
            "type.googleapis.com/causeway.xds.v1.MetaRouteExtras"
        );
    }
}
