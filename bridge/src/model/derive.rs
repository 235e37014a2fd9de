//! How a provider becomes part of the mesh: its host name, namespace, labels, version and
//! locality. The defaults follow what estates already carry, so no application has to change:
//! dubbo2istio's host rule and its `aeraki_meta_*` parameters, plus plain `version`, `zone` and
//! `region` metadata (DESIGN.md §3, ANCHORS.md (b)).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::model::provider::{Provider, RegistryScope, ServiceRef};

/// Naming and label derivation settings (the `model:` section of the bridge config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeriveConfig {
    /// Appended to every host; empty keeps dubbo2istio's names (e.g. `.mesh.internal`).
    pub host_suffix: String,
    /// Last label of hosts for non-Dubbo Nacos services: `<service>.<group>.<namespace>.<this>`.
    pub nacos_suffix: String,
    /// Kubernetes namespace of generated resources when no `namespace_keys` parameter says.
    pub default_namespace: String,
    /// Parameters naming a provider's namespace, first present wins.
    pub namespace_keys: Vec<String>,
    /// Parameters giving the `version` label, first present wins.
    pub version_keys: Vec<String>,
    /// Parameters holding a whole `region/zone[/subzone]` locality, first present wins.
    pub locality_keys: Vec<String>,
    /// Parameters holding the region alone, used when no `locality_keys` parameter is present.
    pub region_keys: Vec<String>,
    /// Parameters holding the zone alone.
    pub zone_keys: Vec<String>,
    /// Parameters holding the subzone alone.
    pub subzone_keys: Vec<String>,
    /// Parameters never turned into labels: volatile ones (they would churn every endpoint) and
    /// the ones consumed above. A trailing `*` matches a prefix.
    pub dropped_labels: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for DeriveConfig {
    fn default() -> Self {
        Self {
            host_suffix: String::new(),
            nacos_suffix: "nacos".to_owned(),
            default_namespace: "default".to_owned(),
            namespace_keys: strings(&["aeraki_meta_app_namespace"]),
            version_keys: strings(&["aeraki_meta_app_version", "app.version", "version"]),
            locality_keys: strings(&["aeraki_meta_locality", "locality"]),
            region_keys: strings(&["region", "topology.kubernetes.io/region"]),
            zone_keys: strings(&["zone", "topology.kubernetes.io/zone"]),
            subzone_keys: strings(&["subzone"]),
            dropped_labels: strings(&["timestamp", "pid", "aeraki_meta_*", "registrationTimeUTC"]),
        }
    }
}

/// What derivation produces for one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The service's DNS-safe host.
    pub host: String,
    /// The Kubernetes namespace of the service's resources.
    pub namespace: String,
    /// Endpoint labels (valid Kubernetes labels only), `version` and `registry` included; shared
    /// with the snapshot's endpoint rather than copied (a large estate has millions of labels).
    pub labels: Arc<BTreeMap<String, String>>,
    /// `region/zone[/subzone]`, if known.
    pub locality: Option<String>,
    /// Endpoint weight (Dubbo's `weight`, default 100).
    pub weight: u32,
}

impl DeriveConfig {
    /// Derives host, namespace, labels, locality and weight for `provider` from `registry`.
    pub fn derive(&self, provider: &Provider, registry: &str) -> Derived {
        let params = &provider.params;
        let first = |keys: &[String]| {
            keys.iter()
                .find_map(|k| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()))
        };
        let mut labels = BTreeMap::new();
        for (key, value) in params {
            if self.is_dropped(key) {
                continue;
            }
            // dubbo2istio turns list separators into dashes (`methods=a,b` → `a-b`); do the same
            // so existing DestinationRules keep matching.
            let value = value.replace(',', "-");
            if is_label_key(key) && is_label_value(&value) {
                labels.insert(key.clone(), value);
            }
        }
        if let Some(version) = first(&self.version_keys).filter(|v| is_label_value(v)) {
            labels.insert("version".to_owned(), version.to_owned());
        }
        if is_label_value(registry) {
            labels.insert("registry".to_owned(), registry.to_owned());
        }
        let locality = first(&self.locality_keys)
            .map(|l| l.replace("%2F", "/"))
            .or_else(|| {
                let region = first(&self.region_keys)?;
                let mut locality = region.to_owned();
                if let Some(zone) = first(&self.zone_keys) {
                    locality = format!("{locality}/{zone}");
                    if let Some(subzone) = first(&self.subzone_keys) {
                        locality = format!("{locality}/{subzone}");
                    }
                }
                Some(locality)
            })
            .filter(|l| l.split('/').all(|part| !part.is_empty()) && l.split('/').count() <= 3);
        let weight = params
            .get("weight")
            .and_then(|w| w.trim().parse::<u32>().ok())
            .or(provider.registry_weight)
            .unwrap_or(100)
            .clamp(1, 1_000_000);
        let namespace = first(&self.namespace_keys)
            .map(dns_label)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.default_namespace.clone());
        Derived {
            host: self.host(&provider.service, &provider.scope),
            namespace,
            labels: Arc::new(labels),
            locality,
            weight,
        }
    }

    /// The host of a service: dubbo2istio's rule for Dubbo interfaces (lower-cased interface,
    /// `-group`, `-version` with dots as dashes, then non-default Nacos group and namespace), and
    /// `<service>.<group>.<namespace>.<nacos_suffix>` for other Nacos services.
    pub fn host(&self, service: &ServiceRef, scope: &RegistryScope) -> String {
        let mut host = match service {
            ServiceRef::Dubbo {
                interface,
                group,
                version,
            } => {
                let mut host = interface.clone();
                if let Some(group) = group {
                    host = format!("{host}-{group}");
                }
                if let Some(version) = version {
                    host = format!("{host}-{}", version.replace('.', "-"));
                }
                if let RegistryScope::Nacos { namespace, group } = scope {
                    if group != "DEFAULT_GROUP" {
                        host = format!("{host}.{group}");
                    }
                    if namespace != "public" && !namespace.is_empty() {
                        host = format!("{host}.{namespace}");
                    }
                }
                dns_name(&host)
            }
            ServiceRef::Named(name) => match scope {
                RegistryScope::Nacos { namespace, group } => {
                    let namespace = if namespace.is_empty() {
                        "public"
                    } else {
                        namespace
                    };
                    format!(
                        "{}.{}.{}.{}",
                        dns_label(name),
                        dns_label(group),
                        dns_label(namespace),
                        self.nacos_suffix
                    )
                }
                RegistryScope::Global => dns_name(name),
            },
        };
        host.push_str(&self.host_suffix);
        host
    }

    fn is_dropped(&self, key: &str) -> bool {
        self.dropped_labels
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => key == pattern,
            })
    }
}

/// Lower-cases and replaces everything but `[a-z0-9.-]` with `-` (inner-class `$`, `_`, spaces),
/// trimming dashes and dots at the ends of each dot-separated label.
fn dns_name(name: &str) -> String {
    name.split('.')
        .map(dns_label)
        .filter(|label| !label.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

fn dns_label(label: &str) -> String {
    let mapped: String = label
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect();
    mapped.trim_matches('-').to_owned()
}

/// A valid Kubernetes label value: at most 63 characters, alphanumeric at both ends, `-_.` inside.
pub fn is_label_value(value: &str) -> bool {
    value.len() <= 63 && (value.is_empty() || is_label_name(value))
}

fn is_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A valid Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name.
pub fn is_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253
                && !prefix.is_empty()
                && prefix.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
                && is_label_name(name)
        }
        None => is_label_name(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::provider::Protocol;

    fn provider(params: &[(&str, &str)]) -> Provider {
        Provider {
            service: ServiceRef::dubbo("com.acme.order.OrderService", None, Some("1.2.0")),
            protocol: Protocol::Dubbo,
            host: "10.244.1.17".into(),
            port: 20880,
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            scope: RegistryScope::Global,
            registry_weight: None,
            healthy: true,
        }
    }

    #[test]
    fn matches_the_dubbo2istio_example() {
        let p = provider(&[
            ("application", "order-provider"),
            ("methods", "create,cancel"),
            ("version", "1.2.0"),
            ("timestamp", "1700000000000"),
            ("service_group", "batchjob"),
            ("aeraki_meta_app_namespace", "demo"),
            ("aeraki_meta_app_version", "v2"),
            ("aeraki_meta_locality", "cn-north%2Fzone-b"),
        ]);
        let d = DeriveConfig::default().derive(&p, "zk-prod");
        assert_eq!(d.host, "com.acme.order.orderservice-1-2-0");
        assert_eq!(d.namespace, "demo");
        assert_eq!(d.locality.as_deref(), Some("cn-north/zone-b"));
        assert_eq!(d.labels["version"], "v2");
        assert_eq!(d.labels["methods"], "create-cancel");
        assert_eq!(d.labels["registry"], "zk-prod");
        assert!(!d.labels.contains_key("timestamp"));
        assert!(!d.labels.keys().any(|k| k.starts_with("aeraki_meta")));
        assert_eq!(d.weight, 100);
    }

    #[test]
    fn plain_zone_and_region_metadata_give_a_locality() {
        let p = provider(&[
            ("region", "us-east"),
            ("zone", "us-east-1a"),
            ("weight", "40"),
            ("version", "1.2.0"),
        ]);
        let d = DeriveConfig::default().derive(&p, "r");
        assert_eq!(d.locality.as_deref(), Some("us-east/us-east-1a"));
        assert_eq!(d.weight, 40);
        assert_eq!(
            d.labels["version"], "1.2.0",
            "Dubbo's version parameter by default"
        );
    }

    #[test]
    fn invalid_label_values_are_dropped_not_mangled() {
        let p = provider(&[
            ("note", "has spaces"),
            ("long", &"x".repeat(64)),
            ("ok", "a_b.c"),
        ]);
        let d = DeriveConfig::default().derive(&p, "r");
        assert!(!d.labels.contains_key("note"));
        assert!(!d.labels.contains_key("long"));
        assert_eq!(d.labels["ok"], "a_b.c");
    }

    #[test]
    fn hosts_follow_each_registry_convention() {
        let config = DeriveConfig::default();
        let nacos = |ns: &str, g: &str| RegistryScope::Nacos {
            namespace: ns.into(),
            group: g.into(),
        };
        let dubbo = ServiceRef::dubbo("com.foo.Bar$Inner", Some("g1"), Some("1.0.0"));
        assert_eq!(
            config.host(&dubbo, &RegistryScope::Global),
            "com.foo.bar-inner-g1-1-0-0"
        );
        assert_eq!(
            config.host(&dubbo, &nacos("public", "DEFAULT_GROUP")),
            "com.foo.bar-inner-g1-1-0-0"
        );
        assert_eq!(
            config.host(&dubbo, &nacos("dev", "team")),
            "com.foo.bar-inner-g1-1-0-0.team.dev"
        );
        let spring = ServiceRef::Named("order-service".into());
        assert_eq!(
            config.host(&spring, &nacos("public", "DEFAULT_GROUP")),
            "order-service.default-group.public.nacos"
        );
        assert_eq!(
            config.host(&spring, &RegistryScope::Global),
            "order-service"
        );
        let suffixed = DeriveConfig {
            host_suffix: ".mesh".into(),
            ..DeriveConfig::default()
        };
        assert_eq!(
            suffixed.host(&spring, &RegistryScope::Global),
            "order-service.mesh"
        );
    }

    #[test]
    fn label_keys() {
        assert!(is_label_key("dubbo.metadata.revision"));
        assert!(is_label_key("topology.kubernetes.io/zone"));
        assert!(!is_label_key("Bad Prefix/x"));
        assert!(!is_label_key("-x"));
    }
}
