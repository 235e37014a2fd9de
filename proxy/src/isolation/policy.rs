//! A host's admission policy as the routing snapshot holds it: its traffic classes
//! (TrafficIsolation) and its local rate limit (MetaRouter `localRateLimit`). Built from the
//! cluster's `ServiceExtras` in xDS mode and from the same extras, made from the rules, in local
//! mode, so both modes enforce exactly the same thing.

use std::sync::Arc;
use std::time::Duration;

use causeway_protocols::rules::common::StringMatch;
use causeway_protocols::xds_ext::{self, AttributeMatch, ServiceExtras};
use serde::Serialize;

use super::bucket::BucketSpec;
use crate::routing::Priority;

/// Which conditions of a class apply to a request: Dubbo and Thrift requests are matched on
/// `attributes`, HTTP and gRPC requests on `headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// Dubbo or Thrift: `interface`, `method`, attachments or THeader headers.
    Attributes,
    /// HTTP or gRPC headers (lower-case names).
    Headers,
}

/// A request's attribute (or header) values, as the protocol reads them.
pub trait RequestAttributes {
    /// The value of `name`, if the request carries it.
    fn get(&self, name: &str) -> Option<&str>;
}

/// Conditions that must all hold.
pub type Conditions = Vec<(String, StringMatch)>;

fn all_match(conditions: &Conditions, request: &dyn RequestAttributes) -> bool {
    conditions
        .iter()
        .all(|(name, rule)| request.get(name).is_some_and(|value| rule.matches(value)))
}

/// One traffic class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Class {
    /// Name (the `traffic_class` label).
    pub name: Arc<str>,
    /// Conditions on Dubbo/Thrift attributes.
    pub attributes: Conditions,
    /// Conditions on HTTP/gRPC headers.
    pub headers: Conditions,
    /// Budget: requests in flight to the host, per proxy.
    pub max_concurrency: u32,
    /// The subset serving this class alone, if any.
    pub subset: Option<String>,
    /// Shedding order (lowest first).
    pub shed_order: i32,
    /// The routing priority of the class's requests: which circuit-breaker thresholds and counts
    /// hold them, and which host capacity the class shares (with the classes of its priority).
    pub priority: Priority,
}

/// A host's classes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Isolation {
    /// In match order.
    pub classes: Vec<Class>,
    /// Index of the class of requests no class matches.
    pub default_class: Option<usize>,
}

/// A host's local rate limit: the first matching condition's bucket, else the default one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateLimit {
    /// The bucket of requests no condition matches.
    pub default: Option<BucketSpec>,
    /// Conditions on attributes and their buckets.
    pub conditions: Vec<(Conditions, BucketSpec)>,
}

/// Which bucket of a host a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketKey {
    /// The default bucket.
    Default,
    /// The bucket of the condition at this index.
    Condition(usize),
}

/// Everything admission needs to know about one host.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AdmissionPolicy {
    /// Traffic classes, if a TrafficIsolation names the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// The local rate limit, if a MetaRouter of the host sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

// === impl AdmissionPolicy ===

impl AdmissionPolicy {
    /// The policy carried by a cluster's extras; `None` when there is nothing to enforce. The
    /// error names what is wrong (the NACK reason).
    pub fn from_extras(extras: &ServiceExtras) -> Result<Option<Self>, String> {
        let isolation = extras.isolation.as_ref().map(isolation).transpose()?;
        let rate_limit = extras
            .local_rate_limit
            .as_ref()
            .map(rate_limit)
            .transpose()?;
        if isolation.is_none() && rate_limit.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            isolation,
            rate_limit,
        }))
    }

    /// The class of a request: the first whose conditions for this kind of request all hold
    /// (a class without conditions for the kind does not match it), else the default class.
    pub fn classify(&self, kind: MatchKind, request: &dyn RequestAttributes) -> Option<&Class> {
        let isolation = self.isolation.as_ref()?;
        isolation
            .classes
            .iter()
            .find(|class| {
                let conditions = match kind {
                    MatchKind::Attributes => &class.attributes,
                    MatchKind::Headers => &class.headers,
                };
                !conditions.is_empty() && all_match(conditions, request)
            })
            .or_else(|| {
                isolation
                    .default_class
                    .and_then(|index| isolation.classes.get(index))
            })
    }

    /// The bucket a request draws from, if it is limited. The conditions name Dubbo/Thrift
    /// attributes, or for an HTTP or gRPC request its headers (a MetaRouter that only sets a
    /// `localRateLimit` limits a gRPC or HTTP host too).
    pub fn bucket(
        &self,
        _kind: MatchKind,
        request: &dyn RequestAttributes,
    ) -> Option<(BucketKey, BucketSpec)> {
        let limit = self.rate_limit.as_ref()?;
        limit
            .conditions
            .iter()
            .enumerate()
            .find(|(_, (conditions, _))| all_match(conditions, request))
            .map(|(index, (_, spec))| (BucketKey::Condition(index), *spec))
            .or_else(|| limit.default.map(|spec| (BucketKey::Default, spec)))
    }

    /// Whether classifying or rate limiting a Dubbo request reads attachments (a condition on
    /// something other than `interface` and `method`).
    pub fn needs_attachments(&self) -> bool {
        let reads = |conditions: &Conditions| {
            conditions
                .iter()
                .any(|(name, _)| name != "interface" && name != "method")
        };
        self.isolation
            .iter()
            .flat_map(|i| &i.classes)
            .any(|class| reads(&class.attributes))
            || self
                .rate_limit
                .iter()
                .flat_map(|l| &l.conditions)
                .any(|(conditions, _)| reads(conditions))
    }
}

fn conditions(matches: &[AttributeMatch]) -> Result<Conditions, String> {
    matches
        .iter()
        .map(|m| {
            let rule = match &m.value {
                Some(value) => StringMatch::try_from(value)?,
                None => StringMatch::Present,
            };
            Ok((m.name.clone(), rule))
        })
        .collect()
}

fn isolation(wire: &xds_ext::TrafficIsolation) -> Result<Isolation, String> {
    let mut classes = Vec::with_capacity(wire.classes.len());
    for class in &wire.classes {
        if class.max_concurrency == 0 {
            return Err(format!(
                "traffic class `{}` has max_concurrency 0",
                class.name
            ));
        }
        let priority = Priority::from_envoy(class.priority).ok_or_else(|| {
            format!(
                "traffic class `{}` has unknown routing priority {}",
                class.name, class.priority
            )
        })?;
        classes.push(Class {
            name: Arc::from(class.name.as_str()),
            attributes: conditions(&class.attributes)
                .map_err(|e| format!("traffic class `{}`: {e}", class.name))?,
            headers: conditions(&class.headers)
                .map_err(|e| format!("traffic class `{}`: {e}", class.name))?,
            max_concurrency: class.max_concurrency,
            subset: (!class.subset.is_empty()).then(|| class.subset.clone()),
            shed_order: class.shed_order,
            priority,
        });
    }
    let default_class = if wire.default_class.is_empty() {
        None
    } else {
        Some(
            classes
                .iter()
                .position(|c| *c.name == *wire.default_class)
                .ok_or_else(|| {
                    format!(
                        "default class `{}` is not one of the classes",
                        wire.default_class
                    )
                })?,
        )
    };
    Ok(Isolation {
        classes,
        default_class,
    })
}

fn bucket(wire: Option<&xds_ext::TokenBucket>) -> Result<BucketSpec, String> {
    let wire = wire.ok_or("a rate-limit condition without a token bucket")?;
    if wire.max_tokens == 0 || wire.tokens_per_fill == 0 || wire.fill_interval_nanos == 0 {
        return Err(
            "a token bucket needs positive max_tokens, tokens_per_fill and fill_interval"
                .to_owned(),
        );
    }
    Ok(BucketSpec {
        max_tokens: wire.max_tokens,
        tokens_per_fill: wire.tokens_per_fill,
        fill_interval: Duration::from_nanos(wire.fill_interval_nanos),
    })
}

fn rate_limit(wire: &xds_ext::LocalRateLimit) -> Result<RateLimit, String> {
    Ok(RateLimit {
        default: wire
            .token_bucket
            .as_ref()
            .map(|b| bucket(Some(b)))
            .transpose()?,
        conditions: wire
            .conditions
            .iter()
            .map(|c| Ok((conditions(&c.attributes)?, bucket(c.token_bucket.as_ref())?)))
            .collect::<Result<_, String>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_protocols::rules::RuleSet;
    use std::collections::HashMap;

    const RULES: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter}
spec:
  host: demo.greeter
  subsets: [{name: batchjob, labels: {version: v2}}]
---
apiVersion: causeway.io/v1alpha1
kind: TrafficIsolation
metadata: {name: greeter}
spec:
  host: demo.greeter
  classes:
    - name: batch
      match:
        attributes: {batch: {exact: 'true'}}
        headers: {x-caller-app: {prefix: report-}}
      maxConcurrency: 4
      subset: batchjob
      shedOrder: 0
    - name: reports
      match: {attributes: {method: {prefix: report}}}
      maxConcurrency: 2
    - name: user
      maxConcurrency: 16
      shedOrder: 10
  defaultClass: user
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {name: greeter}
spec:
  hosts: [demo.greeter]
  localRateLimit:
    tokenBucket: {maxTokens: 100, fillInterval: 1s}
    conditions:
      - match: {attributes: {tenant: {exact: acme}}}
        tokenBucket: {maxTokens: 5, tokensPerFill: 5, fillInterval: 1s}
";

    struct Request(HashMap<&'static str, &'static str>);

    impl RequestAttributes for Request {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).copied()
        }
    }

    fn request(pairs: &[(&'static str, &'static str)]) -> Request {
        Request(pairs.iter().copied().collect())
    }

    fn policy() -> AdmissionPolicy {
        let rules = RuleSet::parse("rules.yaml", RULES).unwrap();
        let extras = ServiceExtras {
            methods: vec![],
            isolation: rules
                .isolation_for("demo.greeter")
                .map(|r| (&r.spec).into()),
            local_rate_limit: rules.meta_routers_for("demo.greeter")[0]
                .spec
                .local_rate_limit
                .as_ref()
                .map(Into::into),
        };
        AdmissionPolicy::from_extras(&extras).unwrap().unwrap()
    }

    #[test]
    fn classes_are_tried_in_order_with_the_conditions_of_the_protocol() {
        let policy = policy();
        let class = |kind, pairs: &[(&'static str, &'static str)]| {
            policy
                .classify(kind, &request(pairs))
                .map(|c| c.name.to_string())
        };
        use MatchKind::{Attributes, Headers};
        assert_eq!(
            class(Attributes, &[("batch", "true"), ("method", "report")]).as_deref(),
            Some("batch")
        );
        assert_eq!(
            class(Attributes, &[("method", "reportDaily")]).as_deref(),
            Some("reports")
        );
        assert_eq!(
            class(Attributes, &[("batch", "false")]).as_deref(),
            Some("user")
        );
        // Headers select for HTTP only; an attribute name as a header does not count.
        assert_eq!(
            class(Headers, &[("x-caller-app", "report-nightly")]).as_deref(),
            Some("batch")
        );
        assert_eq!(
            class(Headers, &[("batch", "true")]).as_deref(),
            Some("user")
        );
        let batch = policy
            .classify(Attributes, &request(&[("batch", "true")]))
            .unwrap();
        assert_eq!(batch.subset.as_deref(), Some("batchjob"));
        assert!(policy.needs_attachments());
    }

    #[test]
    fn the_first_matching_condition_picks_the_bucket() {
        let policy = policy();
        let (key, spec) = policy
            .bucket(MatchKind::Attributes, &request(&[("tenant", "acme")]))
            .unwrap();
        assert_eq!(key, BucketKey::Condition(0));
        assert_eq!(spec.max_tokens, 5);
        let (key, spec) = policy
            .bucket(MatchKind::Attributes, &request(&[("tenant", "other")]))
            .unwrap();
        assert_eq!(key, BucketKey::Default);
        assert_eq!((spec.max_tokens, spec.tokens_per_fill), (100, 1));
        // HTTP and gRPC requests draw from the same buckets, their headers read as attributes.
        let (key, _) = policy
            .bucket(MatchKind::Headers, &request(&[("tenant", "acme")]))
            .unwrap();
        assert_eq!(key, BucketKey::Condition(0));
        let (key, _) = policy.bucket(MatchKind::Headers, &request(&[])).unwrap();
        assert_eq!(key, BucketKey::Default);
    }

    #[test]
    fn without_a_default_class_unmatched_requests_are_not_isolated() {
        let mut policy = policy();
        if let Some(isolation) = policy.isolation.as_mut() {
            isolation.default_class = None;
        }
        assert!(
            policy
                .classify(MatchKind::Attributes, &request(&[]))
                .is_none()
        );
    }

    #[test]
    fn bad_extras_are_refused_with_a_reason() {
        let extras = ServiceExtras {
            isolation: Some(xds_ext::TrafficIsolation {
                classes: vec![xds_ext::TrafficClass {
                    name: "batch".into(),
                    max_concurrency: 1,
                    ..Default::default()
                }],
                default_class: "user".into(),
            }),
            ..Default::default()
        };
        let error = AdmissionPolicy::from_extras(&extras).unwrap_err();
        assert!(error.contains("default class `user`"), "{error}");
        assert_eq!(
            AdmissionPolicy::from_extras(&ServiceExtras::default()).unwrap(),
            None
        );
    }
}
