use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::model::filter::GlobList;
use crate::model::provider::RegistryScope;
use crate::registry::dubbo_url::DubboUrl;

const GRACE: Duration = Duration::from_secs(30);

fn provider(ip: &str, iface: &str, extra: &str) -> Provider {
    DubboUrl::parse(&format!(
        "dubbo://{ip}:20880/{iface}?interface={iface}&methods=a,b&timestamp=1{extra}"
    ))
    .unwrap()
    .into_provider(RegistryScope::Global)
    .unwrap()
}

fn message(registry: &str, event: RegistryEvent) -> RegistryMessage {
    RegistryMessage {
        registry: Arc::from(registry),
        event,
        observed: Instant::now(),
    }
}

fn store() -> ModelStore {
    ModelStore::new(
        DeriveConfig::default(),
        Filter::default(),
        GRACE,
        &["zk", "etcd"],
    )
}

fn up(store: &mut ModelStore, registry: &str, entries: &[(&str, Provider)]) {
    let entries: BTreeMap<String, Provider> = entries
        .iter()
        .map(|(k, p)| ((*k).to_owned(), p.clone()))
        .collect();
    store.apply(message(registry, RegistryEvent::Resync(entries)));
    store.apply(message(registry, RegistryEvent::Up));
}

#[test]
fn a_provider_becomes_a_service_with_one_endpoint() {
    let mut s = store();
    up(
        &mut s,
        "zk",
        &[("/p1", provider("10.0.0.1", "com.acme.Api", ""))],
    );
    let (snap, deadline) = s.build(Instant::now());
    assert!(deadline.is_none());
    let service = &snap.services["com.acme.api"];
    assert_eq!(service.dubbo.as_ref().unwrap().interface, "com.acme.Api");
    assert_eq!(service.endpoints.len(), 1);
    assert_eq!(service.endpoints[0].labels["registry"], "zk");
    assert_eq!(service.ports[0].name, "tcp-metaprotocol-dubbo");
    assert_eq!(service.methods.iter().collect::<Vec<_>>(), ["a", "b"]);
    assert!(snap.registries["zk"].up);
    assert!(!snap.registries["etcd"].up, "configured but not yet listed");
}

#[test]
fn same_inputs_give_the_same_version_in_any_order() {
    let p1 = provider("10.0.0.1", "com.acme.Api", "");
    let p2 = provider("10.0.0.2", "com.acme.Api", "");
    let mut a = store();
    up(&mut a, "zk", &[("/p1", p1.clone()), ("/p2", p2.clone())]);
    let mut b = store();
    b.apply(message("zk", RegistryEvent::Upsert("/p2".into(), p2)));
    b.apply(message("zk", RegistryEvent::Upsert("/p1".into(), p1)));
    b.apply(message("zk", RegistryEvent::Up));
    let (sa, _) = a.build(Instant::now());
    let (sb, _) = b.build(Instant::now());
    assert_eq!(sa.version, sb.version);
    assert_eq!(sa, sb);
}

#[test]
fn volatile_parameters_do_not_change_the_version() {
    let mut s = store();
    up(
        &mut s,
        "zk",
        &[("/p1", provider("10.0.0.1", "com.acme.Api", ""))],
    );
    let (before, _) = s.build(Instant::now());
    // Same provider re-exported: a new timestamp (dropped from labels), same everything else.
    s.apply(message(
        "zk",
        RegistryEvent::Upsert("/p1".into(), provider("10.0.0.1", "com.acme.Api", "999")),
    ));
    let (after, _) = s.build(Instant::now());
    assert_eq!(before.version, after.version);
}

#[test]
fn a_removed_provider_disappears_at_once_unless_it_was_the_last() {
    let mut s = store();
    let t0 = Instant::now();
    up(
        &mut s,
        "zk",
        &[
            ("/p1", provider("10.0.0.1", "com.acme.Api", "")),
            ("/p2", provider("10.0.0.2", "com.acme.Api", "")),
        ],
    );
    s.build(t0);
    s.apply(message("zk", RegistryEvent::Remove("/p1".into())));
    let (snap, _) = s.build(t0);
    assert_eq!(snap.services["com.acme.api"].endpoints.len(), 1);

    s.apply(message("zk", RegistryEvent::Remove("/p2".into())));
    let (snap, deadline) = s.build(t0 + Duration::from_secs(1));
    let kept = &snap.services["com.acme.api"];
    assert!(kept.draining, "the last endpoint is kept during the grace");
    assert_eq!(kept.endpoints[0].address, "10.0.0.2");
    assert_eq!(deadline, Some(t0 + Duration::from_secs(1) + GRACE));

    let (snap, deadline) = s.build(t0 + Duration::from_secs(1) + GRACE);
    assert!(!snap.services.contains_key("com.acme.api"));
    assert!(deadline.is_none());
}

#[test]
fn a_provider_returning_within_the_grace_ends_draining() {
    let mut s = store();
    let t0 = Instant::now();
    up(
        &mut s,
        "zk",
        &[("/p1", provider("10.0.0.1", "com.acme.Api", ""))],
    );
    s.build(t0);
    s.apply(message("zk", RegistryEvent::Resync(BTreeMap::new())));
    assert!(s.build(t0).0.services["com.acme.api"].draining);
    s.apply(message(
        "zk",
        RegistryEvent::Upsert("/p3".into(), provider("10.0.0.3", "com.acme.Api", "")),
    ));
    let (snap, deadline) = s.build(t0 + GRACE * 2);
    assert!(!snap.services["com.acme.api"].draining);
    assert_eq!(
        snap.services["com.acme.api"].endpoints[0].address,
        "10.0.0.3"
    );
    assert!(deadline.is_none());
}

#[test]
fn a_registry_outage_keeps_endpoints_and_marks_them_stale() {
    let mut s = store();
    up(
        &mut s,
        "zk",
        &[("/p1", provider("10.0.0.1", "com.acme.Api", ""))],
    );
    s.build(Instant::now());
    let outcome = s.apply(message("zk", RegistryEvent::Down));
    assert!(outcome.changed);
    let (snap, _) = s.build(Instant::now());
    let service = &snap.services["com.acme.api"];
    assert_eq!(service.endpoints.len(), 1);
    assert_eq!(service.stale_registries.iter().collect::<Vec<_>>(), ["zk"]);
    assert!(!snap.registries["zk"].up);

    s.apply(message("zk", RegistryEvent::Up));
    let (snap, _) = s.build(Instant::now());
    assert!(snap.services["com.acme.api"].stale_registries.is_empty());
}

#[test]
fn the_same_service_from_two_registries_merges_by_endpoint() {
    let mut s = store();
    up(
        &mut s,
        "zk",
        &[
            ("/a", provider("10.0.0.1", "com.acme.Api", "")),
            ("/b", provider("10.0.0.2", "com.acme.Api", "")),
        ],
    );
    up(
        &mut s,
        "etcd",
        &[
            ("/a", provider("10.0.0.1", "com.acme.Api", "")),
            ("/c", provider("10.0.0.3", "com.acme.Api", "")),
        ],
    );
    let (snap, _) = s.build(Instant::now());
    let service = &snap.services["com.acme.api"];
    let endpoints: Vec<(&str, &str)> = service
        .endpoints
        .iter()
        .map(|e| (e.address.as_str(), e.registry.as_str()))
        .collect();
    assert_eq!(
        endpoints,
        [
            ("10.0.0.1", "etcd"),
            ("10.0.0.2", "zk"),
            ("10.0.0.3", "etcd")
        ]
    );
    assert_eq!(service.registries.len(), 2);

    // One registry emptying does not remove what the other still reports.
    s.apply(message("zk", RegistryEvent::Resync(BTreeMap::new())));
    let (snap, _) = s.build(Instant::now());
    assert_eq!(snap.services["com.acme.api"].endpoints.len(), 2);
}

#[test]
fn filters_keep_services_out_and_take_them_out() {
    let filter = Filter {
        services: GlobList {
            allow: vec!["com.acme.*".into()],
            deny: vec![],
        },
        ..Filter::default()
    };
    let mut s = ModelStore::new(DeriveConfig::default(), filter, GRACE, &["zk"]);
    up(
        &mut s,
        "zk",
        &[
            ("/a", provider("10.0.0.1", "com.acme.Api", "")),
            ("/b", provider("10.0.0.2", "org.other.Api", "")),
        ],
    );
    let (snap, _) = s.build(Instant::now());
    assert_eq!(
        snap.services.keys().map(|k| &**k).collect::<Vec<_>>(),
        ["com.acme.api"]
    );
}

#[test]
fn malformed_entries_are_counted() {
    let mut s = store();
    s.apply(message(
        "zk",
        RegistryEvent::Malformed {
            key: "/dubbo/x/providers/garbage".into(),
            reason: "no scheme".into(),
        },
    ));
    assert_eq!(s.build(Instant::now()).0.registries["zk"].malformed, 1);
}

#[test]
fn a_streamed_resync_removes_only_what_it_did_not_report() {
    let mut s = store();
    up(
        &mut s,
        "zk",
        &[
            ("/p1", provider("10.0.0.1", "com.acme.Api", "")),
            ("/p2", provider("10.0.0.2", "com.acme.Api", "")),
        ],
    );
    s.build(Instant::now());
    s.apply(message("zk", RegistryEvent::ResyncBegin));
    s.apply(message(
        "zk",
        RegistryEvent::Upsert("/p2".into(), provider("10.0.0.2", "com.acme.Api", "")),
    ));
    s.apply(message(
        "zk",
        RegistryEvent::Upsert("/p3".into(), provider("10.0.0.3", "com.acme.Api", "")),
    ));
    // Mid-stream nothing is removed yet.
    let (mid, _) = s.build(Instant::now());
    assert_eq!(mid.services["com.acme.api"].endpoints.len(), 3);
    s.apply(message("zk", RegistryEvent::ResyncEnd));
    let (snap, _) = s.build(Instant::now());
    let addresses: Vec<&str> = snap.services["com.acme.api"]
        .endpoints
        .iter()
        .map(|e| e.address.as_str())
        .collect();
    assert_eq!(addresses, ["10.0.0.2", "10.0.0.3"]);
}
