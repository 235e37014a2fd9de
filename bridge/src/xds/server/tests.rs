use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::model::derive::DeriveConfig;
use crate::model::filter::Filter;
use crate::model::provider::RegistryScope;
use crate::model::store::ModelStore;
use crate::registry::dubbo_url::DubboUrl;
use crate::registry::{RegistryEvent, RegistryMessage};
use crate::xds::resources::{CLUSTER, ENDPOINT};
use crate::xds::translate::NoPolicies;

/// A model store fed one event at a time, publishing snapshots the way the pipeline does (so
/// unchanged services stay the same `Arc` from one snapshot to the next).
struct Estate(ModelStore);

impl Estate {
    fn new() -> Self {
        let store = ModelStore::new(
            DeriveConfig::default(),
            Filter::default(),
            Duration::from_secs(30),
            &["zk"],
        );
        let mut estate = Self(store);
        let hosts = ["a", "b", "c"];
        let all = hosts
            .iter()
            .flat_map(|h| (1..=2).map(move |n| provider_url(h, n)))
            .map(|url| (url.clone(), provider(&url)))
            .collect();
        estate.apply(RegistryEvent::Resync(all));
        estate.apply(RegistryEvent::Up);
        estate
    }

    fn apply(&mut self, event: RegistryEvent) {
        self.0.apply(RegistryMessage {
            registry: Arc::from("zk"),
            event,
            observed: Instant::now(),
        });
    }

    fn snapshot(&mut self) -> Arc<Snapshot> {
        Arc::new(self.0.build(Instant::now()).0)
    }
}

fn provider_url(host: &str, n: u8) -> String {
    let zone = if n.is_multiple_of(2) { "z1" } else { "z2" };
    format!("dubbo://10.0.0.{n}:20880/demo.{host}?interface=demo.{host}&region=r1&zone={zone}")
}

fn provider(url: &str) -> crate::model::provider::Provider {
    DubboUrl::parse(url)
        .unwrap()
        .into_provider(RegistryScope::Global)
        .unwrap()
}

#[test]
fn incremental_equals_full() {
    let policies = Arc::new(NoPolicies);
    let locality = NodeLocality {
        region: "r1".into(),
        zone: "z1".into(),
    };
    let mut estate = Estate::new();
    let mut state = XdsState::new(estate.snapshot(), policies.clone());
    let first = state.resources_for(&locality);
    // An endpoint added, a service added, a service removed, an endpoint removed: each step's
    // incremental set must equal a full translation of the same snapshot.
    let steps = [
        RegistryEvent::Upsert(provider_url("a", 3), provider(&provider_url("a", 3))),
        RegistryEvent::Upsert(provider_url("d", 1), provider(&provider_url("d", 1))),
        RegistryEvent::Remove(provider_url("a", 3)),
    ];
    let mut previous = first;
    for event in steps {
        estate.apply(event);
        let snapshot = estate.snapshot();
        let next = XdsState::following(&state, snapshot.clone(), policies.clone());
        let set = next.resources_for(&locality);
        assert_eq!(*set, translate(&snapshot, &NoPolicies, &locality));
        let changed = set.changed_since(previous.generation()).unwrap();
        assert!(changed.contains_key(ENDPOINT), "{changed:?}");
        assert!(
            changed.values().all(|names| names.len() <= 1),
            "{changed:?}"
        );
        previous = set;
        state = next;
    }
}

#[test]
fn other_policies_or_localities_are_translated_in_full() {
    let mut estate = Estate::new();
    let locality = NodeLocality::default();
    let state = XdsState::new(estate.snapshot(), Arc::new(NoPolicies));
    let first = state.resources_for(&locality);
    let next = XdsState::following(&state, estate.snapshot(), Arc::new(NoPolicies));
    let set = next.resources_for(&locality);
    assert!(set.changed_since(first.generation()).is_none());
    assert_eq!(set.of_type(CLUSTER), first.of_type(CLUSTER));
}
