use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;

use super::*;
use crate::xds::resources::{CLUSTER, ENDPOINT, XdsResource};

fn resource(name: &str, content: &[u8]) -> XdsResource {
    XdsResource::new(
        name,
        Any {
            type_url: CLUSTER.to_owned(),
            value: content.to_vec(),
        },
    )
}

fn set(items: &[(&str, &str, &[u8])]) -> ResourceSet {
    let mut set = ResourceSet::default();
    for (type_url, name, content) in items {
        set.insert(type_url, resource(name, content));
    }
    set
}

fn request(type_url: &str, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.to_owned(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        version_info: version.to_owned(),
        response_nonce: nonce.to_owned(),
        ..DiscoveryRequest::default()
    }
}

fn nack(mut request: DiscoveryRequest) -> DiscoveryRequest {
    request.error_detail = Some(Status {
        code: 3,
        message: "bad cluster".to_owned(),
        details: vec![],
    });
    request
}

#[test]
fn wildcard_cds_is_answered_then_acked() {
    let resources = set(&[(CLUSTER, "a", b"1"), (CLUSTER, "b", b"2")]);
    let mut conn = SotwConnection::default();
    let (kind, response) = conn.handle_request(&request(CLUSTER, &[], "", ""), &resources);
    assert_eq!(kind, RequestKind::Initial);
    let response = response.unwrap();
    assert_eq!(response.resources.len(), 2);
    let ack = request(CLUSTER, &[], &response.version_info, &response.nonce);
    assert_eq!(
        conn.handle_request(&ack, &resources),
        (RequestKind::Ack, None)
    );
    assert_eq!(
        conn.status()[CLUSTER].acked_version.as_deref(),
        Some(response.version_info.as_str())
    );
}

#[test]
fn named_eds_gets_only_what_it_asked_for() {
    let resources = set(&[(ENDPOINT, "a", b"1"), (ENDPOINT, "b", b"2")]);
    let mut conn = SotwConnection::default();
    let response = conn
        .handle_request(&request(ENDPOINT, &["b", "missing"], "", ""), &resources)
        .1
        .unwrap();
    assert_eq!(response.resources.len(), 1);
    // An empty EDS list is "nothing", not wildcard.
    let empty = request(ENDPOINT, &[], &response.version_info, &response.nonce);
    let response = conn.handle_request(&empty, &resources).1.unwrap();
    assert!(response.resources.is_empty());
}

#[test]
fn a_nack_is_recorded_and_not_answered_with_the_same_version() {
    let resources = set(&[(CLUSTER, "a", b"1")]);
    let mut conn = SotwConnection::default();
    let response = conn
        .handle_request(&request(CLUSTER, &[], "", ""), &resources)
        .1
        .unwrap();
    let rejected = nack(request(CLUSTER, &[], "", &response.nonce));
    let (kind, answer) = conn.handle_request(&rejected, &resources);
    assert_eq!(kind, RequestKind::Nack("bad cluster".into()));
    assert!(answer.is_none());
    assert_eq!(
        conn.status()[CLUSTER].last_nack.as_deref(),
        Some("bad cluster")
    );
    assert!(
        conn.handle_update(&resources).is_empty(),
        "same content: no resend"
    );
    // New content is sent, and its ACK clears the NACK.
    let fixed = set(&[(CLUSTER, "a", b"1-fixed")]);
    let pushed = conn.handle_update(&fixed);
    assert_eq!(pushed.len(), 1);
    let ack = request(CLUSTER, &[], &pushed[0].version_info, &pushed[0].nonce);
    conn.handle_request(&ack, &fixed);
    assert_eq!(conn.status()[CLUSTER].last_nack, None);
}

#[test]
fn stale_nonces_are_ignored() {
    let resources = set(&[(CLUSTER, "a", b"1")]);
    let mut conn = SotwConnection::default();
    let first = conn
        .handle_request(&request(CLUSTER, &[], "", ""), &resources)
        .1
        .unwrap();
    let newer = set(&[(CLUSTER, "a", b"2")]);
    let second = conn.handle_update(&newer).remove(0);
    // The client ACKs the first response after the second was sent: stale.
    let late = request(CLUSTER, &[], &first.version_info, &first.nonce);
    assert_eq!(
        conn.handle_request(&late, &newer),
        (RequestKind::Stale, None)
    );
    let ack = request(CLUSTER, &[], &second.version_info, &second.nonce);
    assert_eq!(conn.handle_request(&ack, &newer), (RequestKind::Ack, None));
}

#[test]
fn subscription_changes_and_updates_are_pushed() {
    let resources = set(&[(ENDPOINT, "a", b"1"), (ENDPOINT, "b", b"2")]);
    let mut conn = SotwConnection::default();
    let r1 = conn
        .handle_request(&request(ENDPOINT, &["a"], "", ""), &resources)
        .1
        .unwrap();
    let more = request(ENDPOINT, &["a", "b"], &r1.version_info, &r1.nonce);
    let r2 = conn.handle_request(&more, &resources).1.unwrap();
    assert_eq!(r2.resources.len(), 2);
    // A change to an unsubscribed resource pushes nothing.
    let other = set(&[
        (ENDPOINT, "a", b"1"),
        (ENDPOINT, "b", b"2"),
        (ENDPOINT, "c", b"3"),
    ]);
    let ack = request(ENDPOINT, &["a", "b"], &r2.version_info, &r2.nonce);
    conn.handle_request(&ack, &resources);
    assert!(conn.handle_update(&other).is_empty());
    let changed = set(&[(ENDPOINT, "a", b"1*"), (ENDPOINT, "b", b"2")]);
    assert_eq!(conn.handle_update(&changed).len(), 1);
}

#[test]
fn reconnecting_with_the_current_version_gets_no_resend() {
    let resources = set(&[(CLUSTER, "a", b"1")]);
    let mut first = SotwConnection::default();
    let sent = first
        .handle_request(&request(CLUSTER, &[], "", ""), &resources)
        .1
        .unwrap();
    let mut again = SotwConnection::default();
    let (kind, response) =
        again.handle_request(&request(CLUSTER, &[], &sent.version_info, ""), &resources);
    assert_eq!(kind, RequestKind::Initial);
    assert!(response.is_none());
    let newer = set(&[(CLUSTER, "a", b"2")]);
    assert_eq!(again.handle_update(&newer).len(), 1);
    let mut outdated = SotwConnection::default();
    let response = outdated
        .handle_request(&request(CLUSTER, &[], "old-version", ""), &resources)
        .1;
    assert!(response.is_some());
}
