//! Causeway's own `TrafficIsolation` (`causeway.io/v1alpha1`): named traffic classes of a host
//! (e.g. `user` and `batch`), each selected by request attributes or headers, each with its own
//! concurrency budget, an optional dedicated subset, a shed order and a circuit-breaker
//! priority, so batch jobs can never take the capacity reserved for user traffic. The host's
//! `highPriorityConnectionPool` gives the thresholds of Envoy's HIGH routing priority (a
//! DestinationRule's `connectionPool` is the DEFAULT one). `docs/rules.md` describes the
//! semantics.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::common::{StringMatch, check_host, check_label_name};
use super::destination_rule::ConnectionPoolSettings;
use super::error::{Issues, field, index};
use super::resource::RuleKind;

/// The body of a TrafficIsolation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficIsolationSpec {
    /// The host the classes apply to (give `host` or `hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Several hosts sharing the classes (give `host` or `hosts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The classes, in match order: a request belongs to the first class that matches it.
    pub classes: Vec<TrafficClass>,
    /// The class of requests no class matches; without it such requests are not isolated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_class: Option<String>,
    /// Circuit-breaker thresholds of the host's clusters at HIGH priority (the requests of
    /// `priority: HIGH` classes), shaped like a DestinationRule's `connectionPool`; only the
    /// fields that are breaker thresholds are allowed. Unset ones take Envoy's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_priority_connection_pool: Option<ConnectionPoolSettings>,
}

impl RuleKind for TrafficIsolationSpec {
    const KIND: &'static str = "TrafficIsolation";
    const API_VERSIONS: &'static [&'static str] = &["causeway.io/v1alpha1"];
}

/// One traffic class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficClass {
    /// Class name (a DNS-1123 label; it appears in metric labels).
    pub name: String,
    /// What selects the class. Optional only for the default class.
    #[serde(rename = "match", default)]
    pub matches: ClassMatch,
    /// In-flight requests the class may have to the host per proxy; requests beyond it are
    /// rejected in the caller's protocol instead of queueing behind other classes.
    pub max_concurrency: u32,
    /// A subset of the host (defined by its DestinationRule) that serves this class only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// When the host is overloaded, classes are shed in increasing `shedOrder` (lowest first);
    /// equal values shed together.
    #[serde(default)]
    pub shed_order: i32,
    /// The routing priority of the class's requests: which of the host's circuit-breaker
    /// thresholds (and counts) they are held to.
    #[serde(default, skip_serializing_if = "Priority::is_default")]
    pub priority: Priority,
}

/// Envoy's routing priority (`envoy.config.core.v3.RoutingPriority`): each priority of a cluster
/// has its own circuit-breaker thresholds and its own counts, so requests of one priority never
/// fill the other's.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Priority {
    /// The DestinationRule's `connectionPool`.
    #[default]
    Default,
    /// The TrafficIsolation's `highPriorityConnectionPool`.
    High,
}

impl Priority {
    /// Whether this is [`Priority::Default`] (left out when serialised, so rule versions of
    /// files that do not use priorities stay what they were).
    pub fn is_default(&self) -> bool {
        *self == Self::Default
    }
}

/// How a request is assigned to a class. `attributes` apply to Dubbo and Thrift requests
/// (`interface`, `method`, attachments), `headers` to HTTP and gRPC requests; a class may give
/// both when the host is served over several protocols. All conditions of the request's protocol
/// must match; a class with no condition for that protocol does not match it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassMatch {
    /// Meta-protocol attribute → match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, StringMatch>,
    /// HTTP/gRPC header → match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
}

impl ClassMatch {
    /// Whether there are no conditions at all.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.headers.is_empty()
    }
}

impl TrafficIsolationSpec {
    /// The hosts, whichever of `host` and `hosts` was used.
    pub fn host_names(&self) -> impl Iterator<Item = &str> {
        self.host.iter().chain(&self.hosts).map(String::as_str)
    }

    /// The class called `name`.
    pub fn class(&self, name: &str) -> Option<&TrafficClass> {
        self.classes.iter().find(|class| class.name == name)
    }

    /// The class of requests no class matches, if one is named.
    pub fn fallback_class(&self) -> Option<&TrafficClass> {
        self.default_class
            .as_deref()
            .and_then(|name| self.class(name))
    }

    /// Whether any class's requests are of HIGH priority.
    pub fn has_high_priority_class(&self) -> bool {
        self.classes
            .iter()
            .any(|class| class.priority == Priority::High)
    }

    /// The classes in shedding order: lowest `shedOrder` first, then declaration order.
    pub fn shedding_order(&self) -> Vec<&TrafficClass> {
        let mut classes: Vec<&TrafficClass> = self.classes.iter().collect();
        classes.sort_by_key(|class| class.shed_order);
        classes
    }

    pub(crate) fn validate(&self, issues: &mut Issues) {
        match (&self.host, self.hosts.is_empty()) {
            (None, true) => issues.add("host", "give `host` or `hosts`"),
            (Some(_), false) => issues.add("hosts", "give `host` or `hosts`, not both"),
            (Some(host), true) => issues.check("host", check_host(host, true)),
            (None, false) => {
                for (i, host) in self.hosts.iter().enumerate() {
                    issues.check(index("hosts", i), check_host(host, true));
                }
            }
        }
        if self.classes.is_empty() {
            issues.add("classes", "at least one class is required");
        }
        let mut seen = BTreeSet::new();
        for (i, class) in self.classes.iter().enumerate() {
            let at = index("classes", i);
            issues.check(field(&at, "name"), check_label_name(&class.name));
            if !seen.insert(class.name.as_str()) {
                issues.add(
                    field(&at, "name"),
                    format!("duplicate class name `{}`", class.name),
                );
            }
            let is_default = self.default_class.as_deref() == Some(class.name.as_str());
            if class.matches.is_empty() && !is_default {
                issues.add(
                    field(&at, "match"),
                    "a class other than the default class needs at least one attribute or \
                     header condition",
                );
            }
            if class
                .matches
                .attributes
                .keys()
                .chain(class.matches.headers.keys())
                .any(String::is_empty)
            {
                issues.add(field(&at, "match"), "names must not be empty");
            }
            if class.max_concurrency == 0 {
                issues.add(field(&at, "maxConcurrency"), "must be positive");
            }
        }
        if let Some(name) = &self.default_class
            && self.class(name).is_none()
        {
            issues.add(
                "defaultClass",
                format!("`{name}` is not one of the classes"),
            );
        }
        if let Some(pool) = &self.high_priority_connection_pool {
            validate_high_priority_pool(pool, issues);
        }
    }
}

/// Only breaker thresholds exist per priority in Envoy; a connect timeout, a per-connection
/// request limit or an idle timeout is a property of the cluster's connections, whatever the
/// priority of the request that opened them, so they belong in the DestinationRule.
fn validate_high_priority_pool(pool: &ConnectionPoolSettings, issues: &mut Issues) {
    const AT: &str = "highPriorityConnectionPool";
    let not_here = "not a per-priority threshold: set it in the host's DestinationRule \
                    `connectionPool` (allowed here: `tcp.maxConnections`, \
                    `http.http1MaxPendingRequests`, `http.http2MaxRequests`, `http.maxRetries`)";
    if pool
        .tcp
        .as_ref()
        .is_some_and(|tcp| tcp.connect_timeout.is_some())
    {
        issues.add(field(AT, "tcp.connectTimeout"), not_here);
    }
    if let Some(http) = &pool.http {
        if http.max_requests_per_connection.is_some() {
            issues.add(field(AT, "http.maxRequestsPerConnection"), not_here);
        }
        if http.idle_timeout.is_some() {
            issues.add(field(AT, "http.idleTimeout"), not_here);
        }
    }
}
