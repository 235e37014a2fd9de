use std::collections::HashMap;

use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;

use super::*;
use crate::xds::resources::{CLUSTER, ENDPOINT, XdsResource};

fn set(items: &[(&str, &str, &[u8])]) -> ResourceSet {
    let mut set = ResourceSet::default();
    for (type_url, name, content) in items {
        let body = Any {
            type_url: (*type_url).to_owned(),
            value: content.to_vec(),
        };
        set.insert(type_url, XdsResource::new(*name, body));
    }
    set
}

fn request(
    type_url: &str,
    subscribe: &[&str],
    unsubscribe: &[&str],
    nonce: &str,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.to_owned(),
        resource_names_subscribe: subscribe.iter().map(|n| (*n).to_owned()).collect(),
        resource_names_unsubscribe: unsubscribe.iter().map(|n| (*n).to_owned()).collect(),
        response_nonce: nonce.to_owned(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn names(response: &DeltaDiscoveryResponse) -> Vec<&str> {
    response.resources.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn wildcard_gets_everything_then_only_changes() {
    let v1 = set(&[(CLUSTER, "a", b"1"), (CLUSTER, "b", b"2")]);
    let mut conn = DeltaConnection::default();
    let (kind, first) = conn.handle_request(&request(CLUSTER, &[], &[], ""), &v1);
    assert_eq!(kind, RequestKind::Initial);
    let first = first.unwrap();
    assert_eq!(names(&first), ["a", "b"]);
    let ack = request(CLUSTER, &[], &[], &first.nonce);
    assert_eq!(conn.handle_request(&ack, &v1), (RequestKind::Ack, None));

    // One resource changes, one disappears: only those travel.
    let v2 = set(&[(CLUSTER, "a", b"1*")]);
    let update = conn.handle_update(&v2).remove(0);
    assert_eq!(names(&update), ["a"]);
    assert_eq!(update.removed_resources, ["b"]);
    assert!(conn.handle_update(&v2).is_empty(), "nothing new");
}

#[test]
fn an_empty_first_response_is_sent_so_the_client_can_finish_initialising() {
    let mut conn = DeltaConnection::default();
    let response = conn
        .handle_request(&request(CLUSTER, &[], &[], ""), &ResourceSet::default())
        .1
        .unwrap();
    assert!(response.resources.is_empty() && response.removed_resources.is_empty());
}

#[test]
fn explicit_subscriptions_unsubscriptions_and_missing_names() {
    let v1 = set(&[(ENDPOINT, "a", b"1"), (ENDPOINT, "b", b"2")]);
    let mut conn = DeltaConnection::default();
    let first = conn
        .handle_request(&request(ENDPOINT, &["a", "ghost"], &[], ""), &v1)
        .1
        .unwrap();
    assert_eq!(names(&first), ["a"]);
    assert_eq!(
        first.removed_resources,
        ["ghost"],
        "absent names are reported removed"
    );
    let more = conn
        .handle_request(&request(ENDPOINT, &["b"], &["a"], &first.nonce), &v1)
        .1
        .unwrap();
    assert_eq!(names(&more), ["b"]);
    // "a" was unsubscribed: its change is not pushed; resubscribing sends it again.
    let v2 = set(&[(ENDPOINT, "a", b"1*"), (ENDPOINT, "b", b"2")]);
    assert!(conn.handle_update(&v2).is_empty());
    let again = conn
        .handle_request(&request(ENDPOINT, &["a"], &[], &more.nonce), &v2)
        .1
        .unwrap();
    assert_eq!(names(&again), ["a"]);
}

#[test]
fn reconnect_with_known_versions_resends_only_what_changed() {
    let v1 = set(&[(CLUSTER, "a", b"1"), (CLUSTER, "b", b"2")]);
    let mut conn = DeltaConnection::default();
    let sent = conn
        .handle_request(&request(CLUSTER, &[], &[], ""), &v1)
        .1
        .unwrap();
    let known: HashMap<String, String> = sent
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    let v2 = set(&[
        (CLUSTER, "a", b"1"),
        (CLUSTER, "b", b"2*"),
        (CLUSTER, "c", b"3"),
    ]);
    let mut reconnected = DeltaConnection::default();
    let mut hello = request(CLUSTER, &[], &[], "");
    hello.initial_resource_versions = known;
    let response = reconnected.handle_request(&hello, &v2).1.unwrap();
    assert_eq!(names(&response), ["b", "c"]);
}

#[test]
fn nacks_are_recorded_without_a_resend_loop() {
    let v1 = set(&[(CLUSTER, "a", b"1")]);
    let mut conn = DeltaConnection::default();
    let sent = conn
        .handle_request(&request(CLUSTER, &[], &[], ""), &v1)
        .1
        .unwrap();
    let mut rejected = request(CLUSTER, &[], &[], &sent.nonce);
    rejected.error_detail = Some(Status {
        code: 3,
        message: "no endpoints".to_owned(),
        details: vec![],
    });
    let (kind, response) = conn.handle_request(&rejected, &v1);
    assert_eq!(kind, RequestKind::Nack("no endpoints".into()));
    assert!(response.is_none());
    assert!(conn.handle_update(&v1).is_empty());
    assert_eq!(
        conn.status()[CLUSTER].last_nack.as_deref(),
        Some("no endpoints")
    );
    let fixed = set(&[(CLUSTER, "a", b"1*")]);
    assert_eq!(conn.handle_update(&fixed).len(), 1);
}
