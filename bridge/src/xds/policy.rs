//! The traffic rules as translation sees them: per host, its DestinationRule and the routes of
//! every VirtualService and MetaRouter that names it, most specific host match first (Istio's and
//! Aeraki's evaluation order), its TrafficIsolation and the local rate limit of the most specific
//! MetaRouter that sets one (a proxy enforces one bucket set per host).

use crate::rules::RuleSet;
use crate::xds::translate::{HostPolicy, Policies};

impl Policies for RuleSet {
    fn for_host(&self, host: &str) -> HostPolicy {
        HostPolicy {
            destination_rule: self.destination_rule(host).map(|rule| rule.spec.clone()),
            http_routes: self
                .virtual_services_for(host)
                .into_iter()
                .flat_map(|vs| vs.spec.http.iter().cloned())
                .collect(),
            meta_routes: self
                .meta_routers_for(host)
                .into_iter()
                .flat_map(|router| router.spec.routes.iter().cloned())
                .collect(),
            isolation: self.isolation_for(host).map(|rule| rule.spec.clone()),
            local_rate_limit: self
                .meta_routers_for(host)
                .into_iter()
                .find_map(|router| router.spec.local_rate_limit.clone()),
        }
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
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: everything, namespace: default}
spec:
  hosts: ['*.greeter']
  http:
    - route: [{destination: {host: demo.greeter, subset: v1}}]
";

    #[test]
    fn rules_for_a_host_come_most_specific_first() {
        let rules = RuleSet::parse("rules.yaml", RULES).unwrap();
        let policy = rules.for_host("demo.greeter");
        let rule = policy.destination_rule.unwrap();
        assert_eq!(rule.subsets.len(), 2);
        // The exact host's two routes, then the wildcard's one.
        assert_eq!(policy.http_routes.len(), 3);
        assert_eq!(policy.http_routes[1].route[1].weight, 20);
        assert!(policy.meta_routes.is_empty());
        assert_eq!(rules.for_host("other.host"), HostPolicy::default());
    }
}
