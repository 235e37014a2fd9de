//! Golden tests of the translation: registry state in, ServiceEntry YAML out. Each case feeds
//! providers (as registries report them) into the model store and snapshots the rendered output;
//! `cargo insta review` shows any change for approval.

// Test helpers panic on failure by design: a panic is how a test reports what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
use causeway_bridge::serviceentry::render_all;
use tokio::time::Instant;

/// One registry's contents for a case.
struct Registry<'a> {
    name: &'a str,
    scope: RegistryScope,
    urls: &'a [&'a str],
    up: bool,
}

fn zk<'a>(urls: &'a [&'a str]) -> Registry<'a> {
    Registry {
        name: "zk-prod",
        scope: RegistryScope::Global,
        urls,
        up: true,
    }
}

fn translate(registries: &[Registry<'_>]) -> Snapshot {
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

#[test]
fn dubbo_canary_with_aeraki_parameters() {
    let snapshot = translate(&[zk(&[
        "dubbo://10.0.1.1:20880/com.acme.Greeter?interface=com.acme.Greeter&version=1.0.0&methods=greet,slow&application=greeter&aeraki_meta_app_version=v1&aeraki_meta_locality=region-1%2Fzone-a&timestamp=1&pid=7",
        "dubbo://10.0.1.2:20880/com.acme.Greeter?interface=com.acme.Greeter&version=1.0.0&methods=greet,slow&application=greeter&aeraki_meta_app_version=v2&aeraki_meta_locality=region-1%2Fzone-b&timestamp=2&pid=8&weight=50",
        "dubbo://10.0.1.3:20880/com.acme.Greeter?interface=com.acme.Greeter&version=1.0.0&methods=greet,slow&application=greeter&enabled=false",
    ])]);
    insta::assert_snapshot!(render_all(&snapshot));
}

#[test]
fn groups_versions_protocols_and_ports() {
    let snapshot = translate(&[zk(&[
        "dubbo://10.0.2.1:20880/com.acme.Orders?interface=com.acme.Orders&group=batch&version=2.1&methods=place",
        "tri://10.0.2.1:50051/com.acme.Orders?interface=com.acme.Orders&group=batch&version=2.1&methods=place",
        "dubbo://10.0.2.2:20881/com.acme.Orders?interface=com.acme.Orders&group=batch&version=2.1&methods=place",
        "dubbo://10.0.2.3:20880/com.acme.Orders?interface=com.acme.Orders&group=batch&version=2.1&methods=place",
        "grpc://[fd00::5]:9000/acme.v1.Search?interface=acme.v1.Search",
        "thrift://10.0.2.9:9090/Calculator?interface=Calculator&zone=zone-c&region=region-2",
    ])]);
    insta::assert_snapshot!(render_all(&snapshot));
}

#[test]
fn nacos_scopes_and_a_second_registry_that_is_down() {
    let nacos = RegistryScope::Nacos {
        namespace: "dev".into(),
        group: "team-a".into(),
    };
    let snapshot = translate(&[
        Registry {
            name: "nacos-dev",
            scope: nacos,
            urls: &[
                "dubbo://10.0.3.1:20880/com.acme.Greeter?interface=com.acme.Greeter&version=1.0.0",
            ],
            up: true,
        },
        Registry {
            name: "zk-a",
            scope: RegistryScope::Global,
            urls: &[
                "dubbo://10.0.3.2:20880/com.acme.Greeter?interface=com.acme.Greeter&version=1.0.0",
                "dubbo://10.0.3.9:20880/com.acme.Shared?interface=com.acme.Shared",
            ],
            up: false,
        },
        Registry {
            name: "zk-b",
            scope: RegistryScope::Global,
            urls: &[
                "dubbo://10.0.3.9:20880/com.acme.Shared?interface=com.acme.Shared",
                "dubbo://10.0.3.10:20880/com.acme.Shared?interface=com.acme.Shared",
            ],
            up: true,
        },
    ]);
    insta::assert_snapshot!(render_all(&snapshot));
}
