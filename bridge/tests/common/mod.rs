//! Shared by the golden tests: an estate of providers, as registries report them, fed through the
//! model store into a snapshot.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use causeway_bridge::model::derive::DeriveConfig;
use causeway_bridge::model::filter::Filter;
use causeway_bridge::model::provider::{Provider, RegistryScope};
use causeway_bridge::model::snapshot::Snapshot;
use causeway_bridge::model::store::ModelStore;
use causeway_bridge::registry::dubbo_url::DubboUrl;
use causeway_bridge::registry::{RegistryEvent, RegistryMessage};
use tokio::time::Instant;

/// One registry's contents for a case.
pub struct Registry<'a> {
    pub name: &'a str,
    pub scope: RegistryScope,
    pub urls: &'a [&'a str],
    pub up: bool,
}

pub fn zk<'a>(urls: &'a [&'a str]) -> Registry<'a> {
    Registry {
        name: "zk-prod",
        scope: RegistryScope::Global,
        urls,
        up: true,
    }
}

pub fn snapshot_of(registries: &[Registry<'_>]) -> Snapshot {
    let names: Vec<&str> = registries.iter().map(|r| r.name).collect();
    let mut store = ModelStore::new(
        DeriveConfig::default(),
        Filter::default(),
        Duration::from_secs(30),
        &names,
    );
    let send = |store: &mut ModelStore, registry: &str, event| {
        store.apply(RegistryMessage {
            registry: Arc::from(registry),
            event,
            observed: Instant::now(),
        });
    };
    for registry in registries {
        let entries: BTreeMap<String, Provider> = registry
            .urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let provider = DubboUrl::parse(url)
                    .unwrap()
                    .into_provider(registry.scope.clone())
                    .unwrap();
                (format!("{}/{i}", registry.name), provider)
            })
            .collect();
        send(&mut store, registry.name, RegistryEvent::Resync(entries));
        send(&mut store, registry.name, RegistryEvent::Up);
        if !registry.up {
            send(&mut store, registry.name, RegistryEvent::Down);
        }
    }
    store.build(Instant::now()).0
}
