//! Aeraki's `MetaRouter` (`metaprotocol.aeraki.io/v1alpha1`) for Dubbo and Thrift: ordered routes
//! matched on request attributes (`interface`, `method`, and every Dubbo attachment or Thrift
//! header), weighted destinations, mirroring, request mutation, and a local rate limit.
//!
//! Causeway extends the routes with `timeout`, `retries` and `fault` ([`super::meta_resilience`]).
//!
//! Mirroring is accepted in Aeraki's CRD form (`mirror` + `mirrorPercentage`) and in the
//! meta-protocol proxy's route form (`requestMirrorPolicies`), one or the other per route. Fields
//! Causeway does not enforce (`gateways`, `exportTo`, `globalRateLimit`, `responseMutation`) are
//! rejected rather than silently ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{
    Destination, Percent, RouteDestination, RuleDuration, StringMatch, check_destination,
    check_host, check_route_destinations,
};
use super::error::{Issues, field, index};
use super::meta_resilience::{self, MetaFault, MetaRetry};
use super::resource::RuleKind;

/// The body of a MetaRouter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetaRouterSpec {
    /// Hosts the routes apply to. Unlike Aeraki (first host only), every host listed applies.
    pub hosts: Vec<String>,
    /// Ordered routes; the first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<MetaRoute>,
    /// Per-proxy token-bucket rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_rate_limit: Option<LocalRateLimit>,
}

impl RuleKind for MetaRouterSpec {
    const KIND: &'static str = "MetaRouter";
    const API_VERSIONS: &'static [&'static str] = &["metaprotocol.aeraki.io/v1alpha1"];
}

/// One meta-protocol route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetaRoute {
    /// Name for logs and stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions (all must match); absent matches every request.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<MetaRouteMatch>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
    /// Aeraki's single mirror destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Share of requests mirrored to `mirror`; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// Several mirrors, each with its own share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_mirror_policies: Vec<MirrorPolicy>,
    /// Attributes set on each request before it is forwarded (Dubbo attachments, Thrift headers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_mutation: Vec<KeyValue>,
    /// Causeway extension: time allowed for the whole call, retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<RuleDuration>,
    /// Causeway extension: retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<MetaRetry>,
    /// Causeway extension: fault injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<MetaFault>,
}

impl MetaRoute {
    /// Every mirror of the route, whichever form it was written in.
    pub fn mirrors(&self) -> Vec<MirrorPolicy> {
        match &self.mirror {
            Some(destination) => vec![MirrorPolicy {
                destination: destination.clone(),
                percentage: self.mirror_percentage,
            }],
            None => self.request_mirror_policies.clone(),
        }
    }
}

/// Attribute conditions; all must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaRouteMatch {
    /// Attribute name (`interface`, `method`, an attachment key) → match (`{}` checks presence).
    #[serde(default)]
    pub attributes: BTreeMap<String, StringMatch>,
}

/// A mirror destination and the share of requests copied to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorPolicy {
    /// Where copies go.
    pub destination: Destination,
    /// Share mirrored; all requests when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// A key/value pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValue {
    /// Attribute name.
    pub key: String,
    /// Value set.
    pub value: String,
}

/// Aeraki's `LocalRateLimit`: the first matching condition's bucket applies; requests matching
/// none use the default bucket, or are not limited when there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalRateLimit {
    /// Bucket for requests no condition matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_bucket: Option<TokenBucket>,
    /// More specific buckets, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<RateLimitCondition>,
}

/// A token bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenBucket {
    /// Bucket size, and its initial content.
    pub max_tokens: u32,
    /// Tokens added per interval (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_fill: Option<u32>,
    /// Refill interval.
    pub fill_interval: RuleDuration,
}

/// A rate limit for requests matching a condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimitCondition {
    /// Conditions (all must match).
    #[serde(rename = "match")]
    pub matches: MetaRouteMatch,
    /// The bucket for matching requests.
    pub token_bucket: TokenBucket,
}

impl MetaRouterSpec {
    pub(crate) fn validate(&self, issues: &mut Issues) {
        if self.hosts.is_empty() {
            issues.add("hosts", "at least one host is required");
        }
        for (i, host) in self.hosts.iter().enumerate() {
            issues.check(index("hosts", i), check_host(host, true));
        }
        if self.routes.is_empty() && self.local_rate_limit.is_none() {
            issues.add(
                "routes",
                "at least one route is required (or a `localRateLimit`)",
            );
        }
        for (i, route) in self.routes.iter().enumerate() {
            route.validate(issues, &index("routes", i));
        }
        if let Some(limit) = &self.local_rate_limit {
            let at = "localRateLimit";
            if limit.token_bucket.is_none() && limit.conditions.is_empty() {
                issues.add(at, "give a `tokenBucket`, `conditions` or both");
            }
            if let Some(bucket) = &limit.token_bucket {
                bucket.validate(issues, &field(at, "tokenBucket"));
            }
            for (i, condition) in limit.conditions.iter().enumerate() {
                let cond = index(&field(at, "conditions"), i);
                check_attributes(issues, &field(&cond, "match"), &condition.matches);
                condition
                    .token_bucket
                    .validate(issues, &field(&cond, "tokenBucket"));
            }
        }
    }
}

fn check_attributes(issues: &mut Issues, path: &str, matches: &MetaRouteMatch) {
    if matches.attributes.keys().any(String::is_empty) {
        issues.add(
            field(path, "attributes"),
            "attribute names must not be empty",
        );
    }
}

impl MetaRoute {
    fn validate(&self, issues: &mut Issues, path: &str) {
        if let Some(matches) = &self.matches {
            check_attributes(issues, &field(path, "match"), matches);
        }
        check_route_destinations(issues, &field(path, "route"), &self.route);
        if let Some(mirror) = &self.mirror {
            check_destination(issues, &field(path, "mirror"), mirror);
            if !self.request_mirror_policies.is_empty() {
                issues.add(
                    field(path, "requestMirrorPolicies"),
                    "give `mirror` or `requestMirrorPolicies`, not both",
                );
            }
        } else if self.mirror_percentage.is_some() {
            issues.add(
                field(path, "mirrorPercentage"),
                "`mirrorPercentage` needs a `mirror`",
            );
        }
        for (i, policy) in self.request_mirror_policies.iter().enumerate() {
            let at = index(&field(path, "requestMirrorPolicies"), i);
            check_destination(issues, &field(&at, "destination"), &policy.destination);
        }
        meta_resilience::validate(
            issues,
            path,
            self.timeout,
            self.retries.as_ref(),
            self.fault.as_ref(),
        );
        for (i, mutation) in self.request_mutation.iter().enumerate() {
            if mutation.key.is_empty() {
                issues.add(
                    field(&index(&field(path, "requestMutation"), i), "key"),
                    "key must not be empty",
                );
            }
        }
    }
}

impl TokenBucket {
    fn validate(&self, issues: &mut Issues, path: &str) {
        if self.max_tokens == 0 {
            issues.add(field(path, "maxTokens"), "must be positive");
        }
        if self.tokens_per_fill == Some(0) {
            issues.add(field(path, "tokensPerFill"), "must be positive");
        }
        if self.fill_interval.get() < std::time::Duration::from_millis(1) {
            issues.add(
                field(path, "fillInterval"),
                format!("must be at least 1ms, got {}", self.fill_interval),
            );
        }
    }
}
