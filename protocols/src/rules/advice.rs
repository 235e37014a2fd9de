//! Warnings: settings that are valid but probably not what their author meant. They never reject
//! a file (the rules are applied as written); the binaries log them and the bridge's
//! `/debug/rules` lists them. Same one-line format as errors: file, document, resource, field.
//!
//! Today they concern routing priorities, whose Envoy semantics surprise: a HIGH priority has
//! thresholds of its own, so leaving them unset does not mean "the DestinationRule's".

use super::destination_rule::DestinationRuleSpec;
use super::error::{ResourceRef, RuleError, field, index};
use super::isolation::{Priority, TrafficIsolationSpec};

/// A TrafficIsolation as the loader found it.
pub(crate) struct IsolationDocument<'a> {
    /// 1-based document index in the file.
    pub(crate) document: usize,
    /// The resource.
    pub(crate) resource: &'a ResourceRef,
    /// Its body.
    pub(crate) spec: &'a TrafficIsolationSpec,
}

/// The warnings of one TrafficIsolation; `rule_for` finds the DestinationRule of a host.
pub(crate) fn isolation_warnings<'a>(
    file: &str,
    found: &IsolationDocument<'_>,
    rule_for: impl Fn(&str) -> Option<(&'a ResourceRef, &'a DestinationRuleSpec)>,
) -> Vec<RuleError> {
    let warning = |path: String, message: String| RuleError {
        file: file.to_owned(),
        document: found.document,
        resource: Some(found.resource.clone()),
        path,
        message,
    };
    let spec = found.spec;
    let mut warnings = Vec::new();
    if spec.high_priority_connection_pool.is_some() && !spec.has_high_priority_class() {
        warnings.push(warning(
            "highPriorityConnectionPool".to_owned(),
            "no class has `priority: HIGH`, so these thresholds hold only requests whose Envoy \
             route asks for HIGH priority, which Causeway's own routes never do"
                .to_owned(),
        ));
    }
    if spec.high_priority_connection_pool.is_none() {
        for (i, class) in spec.classes.iter().enumerate() {
            if class.priority != Priority::High {
                continue;
            }
            // Only worth saying when the DEFAULT priority is limited on purpose: HIGH requests
            // then escape limits the author set, which is rarely the intent.
            let limited = spec
                .host_names()
                .filter_map(&rule_for)
                .find(|(_, rule)| sets_breaker_limits(rule));
            if let Some((resource, _)) = limited {
                warnings.push(warning(
                    field(&index("classes", i), "priority"),
                    format!(
                        "HIGH requests are held to Envoy's default HIGH thresholds (1024 \
                         connections, pending and active requests, 3 retries), not to the \
                         `connectionPool` of {resource}: give this TrafficIsolation a \
                         `highPriorityConnectionPool`"
                    ),
                ));
            }
        }
    }
    warnings
}

/// Whether the rule sets any breaker threshold, for the host or one of its subsets.
fn sets_breaker_limits(rule: &DestinationRuleSpec) -> bool {
    rule.traffic_policy
        .iter()
        .chain(
            rule.subsets
                .iter()
                .filter_map(|s| s.traffic_policy.as_ref()),
        )
        .filter_map(|policy| policy.connection_pool.as_ref())
        .any(|pool| !pool.breaker_limits().is_empty())
}
