use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::model::derive::DeriveConfig;
use crate::model::filter::Filter;
use crate::model::provider::RegistryScope;
use crate::model::store::ModelStore;
use crate::registry::dubbo_url::DubboUrl;
use crate::registry::{RegistryEvent, RegistryMessage};

/// A snapshot of the Dubbo providers at `urls`, all from registry `zk-prod`.
pub(crate) fn snapshot(urls: &[&str]) -> Snapshot {
    let mut store = ModelStore::new(
        DeriveConfig::default(),
        Filter::default(),
        Duration::from_secs(30),
        &["zk-prod"],
    );
    let entries: BTreeMap<String, _> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let provider = DubboUrl::parse(url)
                .unwrap()
                .into_provider(RegistryScope::Global)
                .unwrap();
            (format!("/{i}"), provider)
        })
        .collect();
    for event in [RegistryEvent::Resync(entries), RegistryEvent::Up] {
        store.apply(RegistryMessage {
            registry: Arc::from("zk-prod"),
            event,
            observed: Instant::now(),
        });
    }
    store.build(Instant::now()).0
}

pub(crate) const ORDER_V1: &str = "dubbo://10.244.1.17:20880/com.acme.order.OrderService?interface=com.acme.order.OrderService&methods=create,cancel&version=1.2.0&aeraki_meta_app_namespace=demo&aeraki_meta_app_version=v1&aeraki_meta_locality=cn-north%2Fzone-b&timestamp=1";
pub(crate) const ORDER_V2: &str = "dubbo://10.244.1.18:20880/com.acme.order.OrderService?interface=com.acme.order.OrderService&methods=create,cancel&version=1.2.0&aeraki_meta_app_namespace=demo&aeraki_meta_app_version=v2&zone=zone-a&region=cn-north&timestamp=2";

#[test]
fn renders_a_dubbo_service_as_a_service_entry() {
    let snap = snapshot(&[ORDER_V1, ORDER_V2]);
    let yaml = render_all(&snap);
    let expected = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: causeway-com-acme-order-orderservice-1-2-0
  namespace: demo
  labels:
    app.kubernetes.io/managed-by: causeway-bridge
  annotations:
    causeway.io/dubbo-version: \"1.2.0\"
    causeway.io/interface: com.acme.order.OrderService
    causeway.io/methods: cancel,create
    causeway.io/registries: zk-prod
spec:
  hosts:
  - com.acme.order.orderservice-1-2-0
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: 20880
    name: tcp-metaprotocol-dubbo
    protocol: TCP
  endpoints:
  - address: \"10.244.1.17\"
    ports:
      tcp-metaprotocol-dubbo: 20880
    labels:
      interface: com.acme.order.OrderService
      methods: create-cancel
      registry: zk-prod
      version: v1
    locality: cn-north/zone-b
    weight: 100
  - address: \"10.244.1.18\"
    ports:
      tcp-metaprotocol-dubbo: 20880
    labels:
      interface: com.acme.order.OrderService
      methods: create-cancel
      region: cn-north
      registry: zk-prod
      version: v2
      zone: zone-a
    locality: cn-north/zone-a
    weight: 100
";
    assert_eq!(yaml, expected);
}

#[test]
fn identical_inputs_give_identical_bytes() {
    assert_eq!(
        render_all(&snapshot(&[ORDER_V1, ORDER_V2])),
        render_all(&snapshot(&[ORDER_V2, ORDER_V1]))
    );
}

#[test]
fn the_directory_tracks_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("unrelated.yaml"), "keep me").unwrap();
    let other = "dubbo://10.0.0.1:20880/a.B?interface=a.B";
    assert_eq!(
        write_dir(dir.path(), &snapshot(&[ORDER_V1, other])).unwrap(),
        (2, 0)
    );
    assert_eq!(
        write_dir(dir.path(), &snapshot(&[ORDER_V1, other])).unwrap(),
        (0, 0)
    );
    assert_eq!(
        write_dir(dir.path(), &snapshot(&[ORDER_V1])).unwrap(),
        (0, 1)
    );
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "demo.causeway-com-acme-order-orderservice-1-2-0.yaml",
            "unrelated.yaml"
        ]
    );
}
