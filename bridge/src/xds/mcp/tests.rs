use prost::Message as _;

use super::*;
use crate::model::snapshot::Snapshot;
use crate::serviceentry::tests::{ORDER_V1, ORDER_V2, snapshot};

const NAME: &str = "demo/causeway-com-acme-order-orderservice-1-2-0";

fn served(snapshot: &Snapshot) -> ResourceSet {
    let mut set = ResourceSet::default();
    for service in snapshot.services.values() {
        add_service_entry(service, &mut set);
    }
    set
}

/// Unpacks a served resource the way istiod does: Any → Resource → Any → ServiceEntry.
fn unpack(any: &Any) -> (Metadata, ServiceEntry) {
    assert_eq!(
        any.type_url,
        "type.googleapis.com/istio.mcp.v1alpha1.Resource"
    );
    let resource = Resource::decode(any.value.as_slice()).unwrap();
    let body = resource.body.unwrap();
    assert_eq!(
        body.type_url,
        "type.googleapis.com/istio.networking.v1alpha3.ServiceEntry"
    );
    let entry = ServiceEntry::decode(body.value.as_slice()).unwrap();
    (resource.metadata.unwrap(), entry)
}

#[test]
fn a_service_round_trips_with_the_yaml_content() {
    let set = served(&snapshot(&[ORDER_V1, ORDER_V2]));
    let resources = &set.of_type(SERVICE_ENTRY).resources;
    assert_eq!(resources.keys().collect::<Vec<_>>(), [NAME]);
    let (metadata, entry) = unpack(&resources[NAME].body);

    assert_eq!(metadata.name, NAME);
    assert_eq!(metadata.create_time, Some(Timestamp::default()));
    assert_eq!(metadata.version.len(), 16);
    assert_eq!(
        metadata.labels,
        BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_owned(),
            "causeway-bridge".to_owned()
        )])
    );
    assert_eq!(
        metadata.annotations,
        [
            ("causeway.io/dubbo-version", "1.2.0"),
            ("causeway.io/interface", "com.acme.order.OrderService"),
            ("causeway.io/methods", "cancel,create"),
            ("causeway.io/registries", "zk-prod"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<BTreeMap<_, _>>()
    );

    assert_eq!(entry.hosts, ["com.acme.order.orderservice-1-2-0"]);
    assert_eq!(entry.location, Location::MeshInternal as i32);
    assert_eq!(entry.resolution, Resolution::Static as i32);
    assert!(entry.addresses.is_empty() && entry.export_to.is_empty());
    assert_eq!(
        entry.ports,
        [ServicePort {
            number: 20880,
            protocol: "TCP".to_owned(),
            name: "tcp-metaprotocol-dubbo".to_owned(),
            target_port: 0,
        }]
    );
    let addresses: Vec<&str> = entry.endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, ["10.244.1.17", "10.244.1.18"]);
    let first = &entry.endpoints[0];
    assert_eq!(
        first.ports,
        BTreeMap::from([("tcp-metaprotocol-dubbo".to_owned(), 20880)])
    );
    assert_eq!(first.locality, "cn-north/zone-b");
    assert_eq!(first.weight, 100);
    assert_eq!(first.labels["version"], "v1");
    assert_eq!(first.labels["registry"], "zk-prod");
    assert_eq!(entry.endpoints[1].locality, "cn-north/zone-a");
}

#[test]
fn every_content_decision_matches_the_yaml_output() {
    // Both outputs come from the same `service_entry`; this checks the mapping loses nothing.
    let snap = snapshot(&[ORDER_V1, ORDER_V2]);
    let (_, yaml_entry) = snap.services.iter().next().unwrap();
    let shared = service_entry(yaml_entry);
    let (name, resource) = to_resource(&shared);
    assert_eq!(
        name,
        format!("{}/{}", shared.metadata.namespace, shared.metadata.name)
    );
    let (_, entry) = unpack(&pack_any(resource));
    assert_eq!(entry.hosts.len(), shared.spec.hosts.len());
    assert_eq!(entry.ports.len(), shared.spec.ports.len());
    for (proto, yaml) in entry.endpoints.iter().zip(&shared.spec.endpoints) {
        assert_eq!(proto.address, yaml.address);
        assert_eq!(&proto.labels, yaml.labels);
        assert_eq!(Some(proto.locality.as_str()), yaml.locality);
        assert_eq!(proto.weight, yaml.weight);
    }
    assert_eq!(entry.endpoints.len(), shared.spec.endpoints.len());
}

#[test]
fn unhealthy_providers_are_left_out_as_in_the_yaml() {
    let disabled = ORDER_V2.replace("timestamp=2", "timestamp=2&enabled=false");
    let set = served(&snapshot(&[ORDER_V1, &disabled]));
    let (_, entry) = unpack(&set.of_type(SERVICE_ENTRY).resources[NAME].body);
    let addresses: Vec<&str> = entry.endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, ["10.244.1.17"]);
}

#[test]
fn identical_inputs_give_identical_bytes_and_versions() {
    let a = served(&snapshot(&[ORDER_V1, ORDER_V2]));
    let b = served(&snapshot(&[ORDER_V2, ORDER_V1]));
    assert_eq!(a, b);
    assert_eq!(
        a.of_type(SERVICE_ENTRY).version(),
        b.of_type(SERVICE_ENTRY).version()
    );
}

/// A map field as the wire sees it: repeated key/value entries, in the order they were written.
#[derive(Clone, PartialEq, prost::Message)]
struct MapEntry {
    #[prost(string, tag = "1")]
    key: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WireLabels {
    #[prost(message, repeated, tag = "3")]
    entries: Vec<MapEntry>,
}

#[test]
fn maps_are_encoded_in_key_order() {
    // Many labels inserted in reverse: a HashMap would almost surely write them unsorted.
    let labels: BTreeMap<String, String> = (0..32)
        .rev()
        .map(|i| (format!("k{i:02}"), i.to_string()))
        .collect();
    let bytes = WorkloadEntry {
        labels,
        ..WorkloadEntry::default()
    }
    .encode_to_vec();
    let keys: Vec<String> = WireLabels::decode(bytes.as_slice())
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.key)
        .collect();
    let expected: Vec<String> = (0..32).map(|i| format!("k{i:02}")).collect();
    assert_eq!(keys, expected);
}

#[test]
fn a_change_of_endpoints_changes_the_version() {
    let both = served(&snapshot(&[ORDER_V1, ORDER_V2]));
    let one = served(&snapshot(&[ORDER_V1]));
    assert_ne!(
        both.of_type(SERVICE_ENTRY).resources[NAME].version,
        one.of_type(SERVICE_ENTRY).resources[NAME].version
    );
}

#[test]
fn type_urls_are_istios() {
    use prost::Name as _;
    assert_eq!(
        Resource::type_url(),
        "type.googleapis.com/istio.mcp.v1alpha1.Resource"
    );
    assert_eq!(
        ServiceEntry::type_url(),
        "type.googleapis.com/istio.networking.v1alpha3.ServiceEntry"
    );
    assert_eq!(
        ServiceEntry::full_name(),
        "istio.networking.v1alpha3.ServiceEntry"
    );
    assert_eq!(Metadata::full_name(), "istio.mcp.v1alpha1.Metadata");
}
