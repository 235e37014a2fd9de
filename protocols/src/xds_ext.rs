//! Causeway's own xDS extension messages: what a Dubbo or Thrift route needs beyond Envoy's
//! `dubbo_proxy`/`thrift_proxy` route protos (mirrors for Dubbo, request mutation, the consistent
//! hash attribute), what a cluster's service advertises and the admission policy of its host
//! ([`ServiceExtras`]: TrafficIsolation classes with their routing priority, MetaRouter local
//! rate limit) and an endpoint's
//! labels ([`EndpointExtras`]). The bridge packs one into a route action's
//! `metadata_match.typed_filter_metadata` under [`META_ROUTE_EXTRAS_KEY`]; Envoy ignores keys it
//! does not know, causeway-proxy reads it. Field numbers are part of the xDS contract: never reuse
//! one.

use crate::rules::common::{Percent as RulePercent, RuleDuration, StringMatch as RuleMatch};
use crate::rules::isolation::{Priority, TrafficIsolationSpec};
use crate::rules::meta_resilience::{MetaFault, MetaRetry};
use crate::rules::meta_router::{LocalRateLimit as RuleRateLimit, TokenBucket as RuleBucket};

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
    /// Time allowed for the whole call, retries included, in milliseconds; 0: the listener's.
    #[prost(uint64, tag = "4")]
    pub timeout_ms: u64,
    /// Retries; absent: only never-sent requests are re-sent.
    #[prost(message, optional, tag = "5")]
    pub retry: Option<RetryPolicy>,
    /// Fault injection; absent: none.
    #[prost(message, optional, tag = "6")]
    pub fault: Option<FaultPolicy>,
}

/// A Dubbo/Thrift route's retries (MetaRouter `retries`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryPolicy {
    /// Retries on top of the first try.
    #[prost(uint32, tag = "1")]
    pub attempts: u32,
    /// Time allowed for each try, in milliseconds; 0: the route's timeout bounds them all.
    #[prost(uint64, tag = "2")]
    pub per_try_timeout_ms: u64,
    /// Conditions (`docs/rules.md`).
    #[prost(string, repeated, tag = "3")]
    pub retry_on: Vec<String>,
}

/// A Dubbo/Thrift route's fault injection (MetaRouter `fault`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FaultPolicy {
    /// The delay, if any.
    #[prost(message, optional, tag = "1")]
    pub delay: Option<FaultDelay>,
    /// The abort, if any.
    #[prost(message, optional, tag = "2")]
    pub abort: Option<FaultAbort>,
}

/// An injected delay.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FaultDelay {
    /// The delay, in milliseconds.
    #[prost(uint64, tag = "1")]
    pub fixed_delay_ms: u64,
    /// Share of requests delayed, in parts per million.
    #[prost(uint32, tag = "2")]
    pub per_million: u32,
}

/// An injected error.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FaultAbort {
    /// Share of requests aborted, in parts per million.
    #[prost(uint32, tag = "1")]
    pub per_million: u32,
    /// The Dubbo status answered.
    #[prost(uint32, tag = "2")]
    pub dubbo_status: u32,
    /// The `TApplicationException` type answered.
    #[prost(int32, tag = "3")]
    pub thrift_exception: i32,
}

/// Dubbo SERVICE_ERROR: what an abort without `dubboStatus` answers.
pub const DEFAULT_ABORT_DUBBO_STATUS: u32 = 70;
/// Thrift INTERNAL_ERROR: what an abort without `thriftException` answers.
pub const DEFAULT_ABORT_THRIFT_EXCEPTION: i32 = 6;

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
    /// The host's TrafficIsolation classes; absent when no TrafficIsolation names the host.
    #[prost(message, optional, tag = "2")]
    pub isolation: Option<TrafficIsolation>,
    /// The host's MetaRouter local rate limit; absent when none is set.
    #[prost(message, optional, tag = "3")]
    pub local_rate_limit: Option<LocalRateLimit>,
}

/// A host's traffic classes (`causeway.io/v1alpha1` TrafficIsolation, `docs/rules.md`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrafficIsolation {
    /// The classes in match order: a request belongs to the first class that matches it.
    #[prost(message, repeated, tag = "1")]
    pub classes: Vec<TrafficClass>,
    /// The class of requests no class matches; empty: such requests are not isolated.
    #[prost(string, tag = "2")]
    pub default_class: String,
}

/// One traffic class.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrafficClass {
    /// Class name (a DNS-1123 label; the `traffic_class` metric label).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Dubbo/Thrift attribute conditions (all must match), sorted by name.
    #[prost(message, repeated, tag = "2")]
    pub attributes: Vec<AttributeMatch>,
    /// HTTP/gRPC header conditions (all must match), sorted by name.
    #[prost(message, repeated, tag = "3")]
    pub headers: Vec<AttributeMatch>,
    /// Requests of the class in flight to the host per proxy, at most.
    #[prost(uint32, tag = "4")]
    pub max_concurrency: u32,
    /// The subset that serves this class only; empty: the normal routes apply.
    #[prost(string, tag = "5")]
    pub subset: String,
    /// Shedding order when the host is overloaded: lowest first, equal values together.
    #[prost(int32, tag = "6")]
    pub shed_order: i32,
    /// The routing priority of the class's requests ([`RoutingPriority`]): the cluster's
    /// circuit-breaker thresholds and counts of that priority hold them.
    #[prost(enumeration = "RoutingPriority", tag = "7")]
    pub priority: i32,
}

/// Envoy's `envoy.config.core.v3.RoutingPriority`, with the same values, so a class's priority
/// names the CDS `circuit_breakers.thresholds` entry that holds its requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RoutingPriority {
    /// The cluster's DEFAULT thresholds (a DestinationRule's `connectionPool`).
    Default = 0,
    /// The cluster's HIGH thresholds (a TrafficIsolation's `highPriorityConnectionPool`).
    High = 1,
}

impl From<Priority> for RoutingPriority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Default => Self::Default,
            Priority::High => Self::High,
        }
    }
}

/// A condition on one request attribute or header.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeMatch {
    /// The attribute (`interface`, `method`, an attachment or THeader key) or header name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// How its value must match.
    #[prost(message, optional, tag = "2")]
    pub value: Option<StringMatch>,
}

/// A string match; no pattern at all means "present".
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringMatch {
    /// The pattern.
    #[prost(oneof = "string_match::Pattern", tags = "1, 2, 3, 4")]
    pub pattern: Option<string_match::Pattern>,
}

/// The patterns of a [`StringMatch`].
pub mod string_match {
    /// One pattern.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Pattern {
        /// The whole value equals this.
        #[prost(string, tag = "1")]
        Exact(String),
        /// The value starts with this.
        #[prost(string, tag = "2")]
        Prefix(String),
        /// The whole value matches this RE2 regular expression.
        #[prost(string, tag = "3")]
        Regex(String),
        /// The value is present (always `true` when set).
        #[prost(bool, tag = "4")]
        Present(bool),
    }
}

/// A host's per-proxy local rate limit (Aeraki MetaRouter `localRateLimit`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LocalRateLimit {
    /// The bucket of requests no condition matches; absent: those are not limited.
    #[prost(message, optional, tag = "1")]
    pub token_bucket: Option<TokenBucket>,
    /// More specific buckets, first match wins; each condition has its own bucket.
    #[prost(message, repeated, tag = "2")]
    pub conditions: Vec<RateLimitCondition>,
}

/// A token bucket.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TokenBucket {
    /// Bucket size and initial content.
    #[prost(uint32, tag = "1")]
    pub max_tokens: u32,
    /// Tokens added per interval.
    #[prost(uint32, tag = "2")]
    pub tokens_per_fill: u32,
    /// The refill interval, in nanoseconds.
    #[prost(uint64, tag = "3")]
    pub fill_interval_nanos: u64,
}

/// The bucket of requests matching some attributes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitCondition {
    /// Attribute conditions (all must match), sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<AttributeMatch>,
    /// The bucket.
    #[prost(message, optional, tag = "2")]
    pub token_bucket: Option<TokenBucket>,
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

// === conversions from the rule schemas ===

fn per_million(percent: Option<RulePercent>) -> u32 {
    // Istio: no percentage means none of the requests.
    percent.map_or(0, |p| (p.value * 10_000.0).round() as u32)
}

fn millis(duration: RuleDuration) -> u64 {
    u64::try_from(duration.get().as_millis()).unwrap_or(u64::MAX)
}

impl From<&MetaRetry> for RetryPolicy {
    fn from(retry: &MetaRetry) -> Self {
        Self {
            attempts: retry.attempts,
            per_try_timeout_ms: retry.per_try_timeout.map_or(0, millis),
            retry_on: retry.conditions().into_iter().map(str::to_owned).collect(),
        }
    }
}

impl From<&MetaFault> for FaultPolicy {
    fn from(fault: &MetaFault) -> Self {
        Self {
            delay: fault.delay.as_ref().map(|delay| FaultDelay {
                fixed_delay_ms: millis(delay.fixed_delay),
                per_million: per_million(delay.percentage),
            }),
            abort: fault.abort.as_ref().map(|abort| FaultAbort {
                per_million: per_million(abort.percentage),
                dubbo_status: abort
                    .dubbo_status
                    .map_or(DEFAULT_ABORT_DUBBO_STATUS, |s| u32::from(s.0)),
                thrift_exception: abort
                    .thrift_exception
                    .map_or(DEFAULT_ABORT_THRIFT_EXCEPTION, |t| t.0),
            }),
        }
    }
}

impl From<&RuleMatch> for StringMatch {
    fn from(rule: &RuleMatch) -> Self {
        let pattern = match rule {
            RuleMatch::Exact(value) => string_match::Pattern::Exact(value.clone()),
            RuleMatch::Prefix(value) => string_match::Pattern::Prefix(value.clone()),
            RuleMatch::Regex(pattern) => string_match::Pattern::Regex(pattern.as_str().to_owned()),
            RuleMatch::Present => string_match::Pattern::Present(true),
        };
        Self {
            pattern: Some(pattern),
        }
    }
}

impl TryFrom<&StringMatch> for RuleMatch {
    type Error = String;

    /// The rule match a wire match stands for; a regex that does not compile is the error.
    fn try_from(wire: &StringMatch) -> Result<Self, String> {
        Ok(match &wire.pattern {
            None | Some(string_match::Pattern::Present(_)) => Self::Present,
            Some(string_match::Pattern::Exact(value)) => Self::Exact(value.clone()),
            Some(string_match::Pattern::Prefix(value)) => Self::Prefix(value.clone()),
            Some(string_match::Pattern::Regex(source)) => {
                Self::Regex(crate::rules::common::Pattern::new(source)?)
            }
        })
    }
}

fn attribute_matches<'a>(
    matches: impl IntoIterator<Item = (&'a String, &'a RuleMatch)>,
) -> Vec<AttributeMatch> {
    // The rule maps are B-trees, so the order (and the encoded bytes) is stable.
    matches
        .into_iter()
        .map(|(name, rule)| AttributeMatch {
            name: name.clone(),
            value: Some(rule.into()),
        })
        .collect()
}

impl From<&TrafficIsolationSpec> for TrafficIsolation {
    fn from(spec: &TrafficIsolationSpec) -> Self {
        Self {
            classes: spec
                .classes
                .iter()
                .map(|class| TrafficClass {
                    name: class.name.clone(),
                    attributes: attribute_matches(&class.matches.attributes),
                    headers: attribute_matches(&class.matches.headers),
                    max_concurrency: class.max_concurrency,
                    subset: class.subset.clone().unwrap_or_default(),
                    shed_order: class.shed_order,
                    priority: RoutingPriority::from(class.priority) as i32,
                })
                .collect(),
            default_class: spec.default_class.clone().unwrap_or_default(),
        }
    }
}

impl From<&RuleBucket> for TokenBucket {
    fn from(bucket: &RuleBucket) -> Self {
        Self {
            max_tokens: bucket.max_tokens,
            // Aeraki's default: one token per interval.
            tokens_per_fill: bucket.tokens_per_fill.unwrap_or(1),
            fill_interval_nanos: u64::try_from(bucket.fill_interval.get().as_nanos())
                .unwrap_or(u64::MAX),
        }
    }
}

impl From<&RuleRateLimit> for LocalRateLimit {
    fn from(limit: &RuleRateLimit) -> Self {
        Self {
            token_bucket: limit.token_bucket.as_ref().map(TokenBucket::from),
            conditions: limit
                .conditions
                .iter()
                .map(|condition| RateLimitCondition {
                    attributes: attribute_matches(&condition.matches.attributes),
                    token_bucket: Some((&condition.token_bucket).into()),
                })
                .collect(),
        }
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
            timeout_ms: 2000,
            retry: Some(RetryPolicy {
                attempts: 2,
                per_try_timeout_ms: 500,
                retry_on: vec!["timeout".into()],
            }),
            fault: Some(FaultPolicy {
                delay: None,
                abort: Some(FaultAbort {
                    per_million: 10_000,
                    dubbo_status: 100,
                    thrift_exception: 6,
                }),
            }),
        };
        let bytes = extras.encode_to_vec();
        assert_eq!(MetaRouteExtras::decode(bytes.as_slice()).unwrap(), extras);
        assert_eq!(
            MetaRouteExtras::type_url(),
            "type.googleapis.com/causeway.xds.v1.MetaRouteExtras"
        );
    }

    #[test]
    fn a_class_priority_travels_as_envoys_routing_priority() {
        let rules = crate::rules::RuleSet::parse(
            "rules.yaml",
            "apiVersion: causeway.io/v1alpha1
kind: TrafficIsolation
metadata: {name: t}
spec:
  host: a
  classes:
  - {name: user, match: {headers: {x: {}}}, maxConcurrency: 5, priority: HIGH}
  - {name: batch, maxConcurrency: 5}
  defaultClass: batch
",
        )
        .unwrap();
        let wire = TrafficIsolation::from(&rules.isolation_for("a").unwrap().spec);
        let priorities: Vec<i32> = wire.classes.iter().map(|c| c.priority).collect();
        assert_eq!(priorities, vec![1, 0], "Envoy's HIGH is 1, DEFAULT 0");
        let back = TrafficIsolation::decode(wire.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back.classes[0].priority(), RoutingPriority::High);
        // A class from a bridge that predates field 7 is DEFAULT.
        let old = TrafficClass {
            name: "user".into(),
            max_concurrency: 1,
            ..Default::default()
        };
        let decoded = TrafficClass::decode(old.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.priority(), RoutingPriority::Default);
    }

    #[test]
    fn string_matches_survive_the_wire() {
        let rules = [
            RuleMatch::Exact("true".into()),
            RuleMatch::Prefix("report-".into()),
            RuleMatch::Regex(crate::rules::common::Pattern::new("a.*b").unwrap()),
            RuleMatch::Present,
        ];
        for rule in rules {
            let wire = StringMatch::from(&rule);
            let bytes = wire.encode_to_vec();
            let back = StringMatch::decode(bytes.as_slice()).unwrap();
            assert_eq!(RuleMatch::try_from(&back).unwrap(), rule);
        }
        let bad = StringMatch {
            pattern: Some(string_match::Pattern::Regex("(".into())),
        };
        assert!(RuleMatch::try_from(&bad).is_err());
    }
}
