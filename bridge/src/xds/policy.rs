//! The traffic rules as translation sees them: DestinationRule subsets and the weighted split of
//! a host's default VirtualService route.
//!
//! The default route is the first HTTP route without match conditions of the most specific
//! VirtualService for the host (or its first route). Destinations naming another host are left out
//! here: cross-service routing is not translated yet.

use crate::rules::RuleSet;
use crate::xds::translate::{HostPolicy, Policies, Subset, WeightedDestination};

impl Policies for RuleSet {
    fn for_host(&self, host: &str) -> HostPolicy {
        let subsets = self
            .destination_rule(host)
            .map(|rule| {
                rule.spec
                    .subsets
                    .iter()
                    .map(|s| Subset {
                        name: s.name.clone(),
                        labels: s.labels.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let split = self
            .virtual_services_for(host)
            .first()
            .and_then(|vs| {
                vs.spec
                    .http
                    .iter()
                    .find(|route| route.matches.is_empty())
                    .or_else(|| vs.spec.http.first())
            })
            .map(|route| {
                let single = route.route.len() == 1;
                route
                    .route
                    .iter()
                    .filter(|d| d.destination.host == host)
                    .map(|d| WeightedDestination {
                        subset: d.destination.subset.clone().unwrap_or_default(),
                        // Istio: a lone destination takes all traffic whatever its weight says.
                        weight: if single { 100 } else { d.weight },
                    })
                    .collect()
            })
            .unwrap_or_default();
        HostPolicy { subsets, split }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter, namespace: default}
spec:
  host: demo.greeter
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter, namespace: default}
spec:
  hosts: [demo.greeter]
  http:
    - match: [{headers: {x-canary: {exact: 'yes'}}}]
      route: [{destination: {host: demo.greeter, subset: v2}}]
    - route:
        - {destination: {host: demo.greeter, subset: v1}, weight: 80}
        - {destination: {host: demo.greeter, subset: v2}, weight: 20}
";

    #[test]
    fn subsets_and_the_default_split_come_from_the_rules() {
        let rules = RuleSet::parse("rules.yaml", RULES).unwrap();
        let policy = rules.for_host("demo.greeter");
        assert_eq!(policy.subsets.len(), 2);
        assert_eq!(policy.subsets[1].labels["version"], "v2");
        let split: Vec<(&str, u32)> = policy
            .split
            .iter()
            .map(|d| (d.subset.as_str(), d.weight))
            .collect();
        assert_eq!(split, [("v1", 80), ("v2", 20)]);
        assert_eq!(rules.for_host("other.host"), HostPolicy::default());
    }
}
