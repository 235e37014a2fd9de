//! [`RuleSet`]: every valid resource of one rules file, sorted, content-hashed, and queried by host
//! by the translation stage.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::common::host_specificity;
use super::destination_rule::{DestinationRuleSpec, Subset};
use super::error::{RuleError, RulesError};
use super::isolation::TrafficIsolationSpec;
use super::meta_router::MetaRouterSpec;
use super::resource::Resource;
use super::virtual_service::VirtualServiceSpec;

/// A validated Istio DestinationRule.
pub type DestinationRule = Resource<DestinationRuleSpec>;
/// A validated Istio VirtualService.
pub type VirtualService = Resource<VirtualServiceSpec>;
/// A validated Aeraki MetaRouter.
pub type MetaRouter = Resource<MetaRouterSpec>;
/// A validated Causeway TrafficIsolation.
pub type TrafficIsolation = Resource<TrafficIsolationSpec>;

/// All rules of one file, at one version. Built all-or-nothing: a file with any invalid document
/// yields no `RuleSet` at all.
///
/// Resources are sorted by namespace and name within each kind, so the same resources in any
/// document order give the same set and the same version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSet {
    /// Content hash of the resources (hex, 16 characters), like snapshot versions.
    pub version: String,
    /// DestinationRules.
    pub destination_rules: Vec<DestinationRule>,
    /// VirtualServices.
    pub virtual_services: Vec<VirtualService>,
    /// MetaRouters.
    pub meta_routers: Vec<MetaRouter>,
    /// TrafficIsolations.
    pub traffic_isolations: Vec<TrafficIsolation>,
    /// Valid settings that are probably not what was meant, each a one-line message in the
    /// errors' format; not part of the version (they follow from the resources).
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "as_lines")]
    pub warnings: Vec<RuleError>,
}

fn as_lines<S: serde::Serializer>(
    warnings: &[RuleError],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(warnings.iter().map(ToString::to_string))
}

impl Default for RuleSet {
    fn default() -> Self {
        Self::from_parts(Vec::new(), Vec::new(), Vec::new(), Vec::new())
    }
}

fn sort<S>(resources: &mut [Resource<S>]) {
    resources.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
}

impl RuleSet {
    /// Sorts the (already validated) resources and computes the version.
    pub(crate) fn from_parts(
        mut destination_rules: Vec<DestinationRule>,
        mut virtual_services: Vec<VirtualService>,
        mut meta_routers: Vec<MetaRouter>,
        mut traffic_isolations: Vec<TrafficIsolation>,
    ) -> Self {
        sort(&mut destination_rules);
        sort(&mut virtual_services);
        sort(&mut meta_routers);
        sort(&mut traffic_isolations);
        // The canonical JSON of the sorted resources: maps are BTreeMaps and durations print in
        // one canonical unit, so equal rules always hash equally. Serialising these plain types
        // cannot fail; the empty fallback still gives a deterministic value.
        let json = serde_json::to_vec(&(
            &destination_rules,
            &virtual_services,
            &meta_routers,
            &traffic_isolations,
        ))
        .unwrap_or_default();
        let digest = Sha256::digest(&json);
        let version = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Self {
            version,
            destination_rules,
            virtual_services,
            meta_routers,
            traffic_isolations,
            warnings: Vec::new(),
        }
    }

    /// The same set with these warnings.
    pub(crate) fn with_warnings(mut self, warnings: Vec<RuleError>) -> Self {
        self.warnings = warnings;
        self
    }

    /// Parses and validates the text of a rules file; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, RulesError> {
        super::load::parse(file, text)
    }

    /// Reads, parses and validates a rules file (for `--validate` and the watcher).
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.destination_rules.len()
            + self.virtual_services.len()
            + self.meta_routers.len()
            + self.traffic_isolations.len()
    }

    /// Whether there are no resources.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The DestinationRule for `host`: the one naming it exactly, else the longest matching
    /// wildcard (Istio's precedence).
    pub fn destination_rule(&self, host: &str) -> Option<&DestinationRule> {
        best_match(&self.destination_rules, host, |rule| {
            std::iter::once(rule.spec.host.as_str())
        })
    }

    /// The subset `name` of `host`, as its DestinationRule defines it.
    pub fn subset(&self, host: &str, name: &str) -> Option<&Subset> {
        self.destination_rule(host)
            .and_then(|rule| rule.spec.subset(name))
    }

    /// The VirtualServices whose hosts match `host`, most specific match first, then by
    /// namespace and name. Their `http` routes are evaluated in this order, first match wins.
    pub fn virtual_services_for(&self, host: &str) -> Vec<&VirtualService> {
        all_matches(&self.virtual_services, host, |vs| {
            vs.spec.hosts.iter().map(String::as_str)
        })
    }

    /// The MetaRouters whose hosts match `host`, most specific match first, then by namespace
    /// and name. Their routes are evaluated in this order, first match wins.
    pub fn meta_routers_for(&self, host: &str) -> Vec<&MetaRouter> {
        all_matches(&self.meta_routers, host, |router| {
            router.spec.hosts.iter().map(String::as_str)
        })
    }

    /// The TrafficIsolation for `host`: exact name first, else the longest matching wildcard.
    pub fn isolation_for(&self, host: &str) -> Option<&TrafficIsolation> {
        best_match(&self.traffic_isolations, host, |isolation| {
            isolation.spec.host_names()
        })
    }
}

/// How specifically any of a resource's hosts names `host`.
fn specificity<'a, I: Iterator<Item = &'a str>>(hosts: I, host: &str) -> Option<usize> {
    hosts
        .filter_map(|pattern| host_specificity(pattern, host))
        .max()
}

fn best_match<'a, S, I>(
    resources: &'a [Resource<S>],
    host: &str,
    hosts: impl Fn(&'a Resource<S>) -> I,
) -> Option<&'a Resource<S>>
where
    I: Iterator<Item = &'a str>,
{
    all_matches(resources, host, hosts).into_iter().next()
}

fn all_matches<'a, S, I>(
    resources: &'a [Resource<S>],
    host: &str,
    hosts: impl Fn(&'a Resource<S>) -> I,
) -> Vec<&'a Resource<S>>
where
    I: Iterator<Item = &'a str>,
{
    let mut found: Vec<(usize, &Resource<S>)> = resources
        .iter()
        .filter_map(|resource| specificity(hosts(resource), host).map(|s| (s, resource)))
        .collect();
    // Stable: equal specificity keeps the namespace/name order of the set.
    found.sort_by_key(|(specificity, _)| std::cmp::Reverse(*specificity));
    found.into_iter().map(|(_, resource)| resource).collect()
}
