//! Unit tests of the routing snapshot: table lookup, route matching, weighted splits.

use std::collections::BTreeMap;
use std::sync::Arc;

use causeway_protocols::rules::common::{Pattern, StringMatch};

use super::*;

struct Req {
    method: &'static str,
    attachments: BTreeMap<&'static str, &'static str>,
}

impl DubboAttributes for Req {
    fn method(&self) -> &str {
        self.method
    }
    fn attachment(&self, key: &str) -> Option<&str> {
        self.attachments.get(key).copied()
    }
}

fn req(method: &'static str, attachments: &[(&'static str, &'static str)]) -> Req {
    Req {
        method,
        attachments: attachments.iter().copied().collect(),
    }
}

fn route(
    name: &str,
    method: Option<StringMatch>,
    attachments: &[(&str, StringMatch)],
    to: &[(&str, u32)],
) -> DubboRoute {
    DubboRoute {
        name: name.to_owned(),
        method,
        attachments: attachments
            .iter()
            .map(|(k, m)| ((*k).to_owned(), m.clone()))
            .collect(),
        destinations: WeightedClusters::new(to.iter().map(|(c, w)| (Arc::from(*c), *w))),
        request_mutation: Vec::new(),
        mirrors: Vec::new(),
        policy: Default::default(),
    }
}

fn table(
    name: &str,
    group: Option<&str>,
    version: Option<&str>,
    routes: Vec<DubboRoute>,
) -> DubboRouteTable {
    DubboRouteTable {
        name: name.to_owned(),
        host: "demo.greeter".to_owned(),
        service: ServiceMatch {
            interface: "demo.Greeter".to_owned(),
            group: group.map(str::to_owned),
            version: version.map(str::to_owned),
        },
        routes,
        methods: vec!["greet".to_owned(), "place".to_owned()],
        metric_labels: TableLabels::new(
            "demo.greeter",
            "demo.Greeter",
            &["greet".to_owned(), "place".to_owned()],
        ),
    }
}

#[test]
fn first_matching_route_wins() {
    let t = table(
        "t",
        None,
        None,
        vec![
            route(
                "place-v2",
                Some(StringMatch::Exact("place".into())),
                &[],
                &[("v2", 1)],
            ),
            route(
                "canary",
                None,
                &[("canary", StringMatch::Present)],
                &[("v2", 1)],
            ),
            route(
                "prefix",
                Some(StringMatch::Prefix("gr".into())),
                &[("user", StringMatch::Regex(Pattern::new("a.*").unwrap()))],
                &[("v3", 1)],
            ),
            route("default", None, &[], &[("v1", 1)]),
        ],
    );
    let name = |r: &Req| t.route(r).map(|r| r.name.as_str());
    assert_eq!(name(&req("place", &[])), Some("place-v2"));
    assert_eq!(name(&req("greet", &[("canary", "")])), Some("canary"));
    assert_eq!(name(&req("greet", &[("user", "alice")])), Some("prefix"));
    // The regex must match the whole value.
    assert_eq!(
        name(&req("greet", &[("user", "bob-alice")])),
        Some("default")
    );
    assert_eq!(name(&req("other", &[])), Some("default"));
    assert!(!t.needs_attachments() || t.routes.len() == 4);
    assert!(t.needs_attachments());
}

#[test]
fn no_route_when_nothing_matches() {
    let t = table(
        "t",
        None,
        None,
        vec![route(
            "only-greet",
            Some(StringMatch::Exact("greet".into())),
            &[],
            &[("v1", 1)],
        )],
    );
    assert!(t.route(&req("place", &[])).is_none());
    assert!(!t.needs_attachments());
}

#[test]
fn tables_are_chosen_by_group_and_version_most_specific_first() {
    let snapshot = Snapshot::new(
        "1".into(),
        [],
        [
            table("any", None, None, vec![]),
            table("v1", None, Some("1.0.0"), vec![]),
            table("g-v1", Some("g"), Some("1.0.0"), vec![]),
        ],
    );
    let pick = |g: &str, v: &str| {
        snapshot
            .dubbo_table("demo.Greeter", g, v)
            .map(|t| t.name.as_str())
    };
    assert_eq!(pick("g", "1.0.0"), Some("g-v1"));
    assert_eq!(pick("", "1.0.0"), Some("v1"));
    assert_eq!(pick("h", "2.0.0"), Some("any"));
    assert!(snapshot.dubbo_table("demo.Other", "", "").is_none());
    assert!(
        snapshot.needs_attachments("demo.Greeter"),
        "a group-specific table needs the group attachment"
    );
    assert!(!snapshot.needs_attachments("demo.Other"));
    assert!(snapshot.knows_interface("demo.Greeter"));
}

#[test]
fn no_version_spellings_are_equal() {
    assert_eq!(normalize_version(None), "");
    assert_eq!(normalize_version(Some("0.0.0")), "");
    assert_eq!(normalize_version(Some("1.0.0")), "1.0.0");
}

#[test]
fn method_labels_are_bounded() {
    let t = table("t", None, None, vec![]);
    assert_eq!(t.method_label("greet"), "greet");
    assert_eq!(t.method_label("drop table"), "other");
}

#[test]
fn weighted_split_follows_the_weights() {
    let split = WeightedClusters::new([
        (Arc::from("v1"), 80),
        (Arc::from("v2"), 20),
        (Arc::from("v3"), 0),
    ]);
    assert_eq!(split.entries().len(), 2, "zero weights are dropped");
    let mut rng = fastrand::Rng::with_seed(7);
    let n = 100_000;
    let mut v1 = 0;
    for _ in 0..n {
        if split.pick(rng.u64(..)).map(|c| &**c) == Some("v1") {
            v1 += 1;
        }
    }
    let share = f64::from(v1) / f64::from(n);
    assert!((share - 0.8).abs() < 0.01, "v1 share {share}");
    // Deterministic edges: the first 80 points of every 100 go to v1.
    assert_eq!(split.pick(79).map(|c| &**c), Some("v1"));
    assert_eq!(split.pick(80).map(|c| &**c), Some("v2"));
    assert_eq!(split.pick(199).map(|c| &**c), Some("v2"));
    assert!(
        WeightedClusters::new([(Arc::from("x"), 0)])
            .pick(1)
            .is_none()
    );
}

#[test]
fn locality_priorities_follow_istio_tiers() {
    let me = Locality::parse("eu/eu-a/rack1");
    assert_eq!(Locality::parse("eu/eu-a/rack1").priority_from(&me), 0);
    assert_eq!(Locality::parse("eu/eu-a/rack2").priority_from(&me), 1);
    assert_eq!(Locality::parse("eu/eu-b").priority_from(&me), 2);
    assert_eq!(Locality::parse("us/us-a").priority_from(&me), 3);
    assert_eq!(Locality::parse("").priority_from(&me), 0);
    assert_eq!(Locality::parse("us").priority_from(&Locality::default()), 0);
    assert_eq!(
        cluster_name(20880, "v1", "demo.greeter"),
        "outbound|20880|v1|demo.greeter"
    );
}
