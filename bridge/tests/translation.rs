//! Golden tests of the translation: registry state in, ServiceEntry YAML out. Each case feeds
//! providers (as registries report them) into the model store and snapshots the rendered output;
//! `cargo insta review` shows any change for approval.

// Test helpers panic on failure by design: a panic is how a test reports what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use causeway_bridge::model::provider::RegistryScope;
use causeway_bridge::serviceentry::render_all;
use common::{Registry, snapshot_of, zk};

#[test]
fn dubbo_canary_with_aeraki_parameters() {
    let snapshot = snapshot_of(&[zk(&[
        "dubbo://10.0.1.1:20880/com.acme.Greeter?interface=com.acme.Greeter&version=1.0.0&methods=greet,slow&application=greeter&aeraki_meta_app_version=v1&aeraki_meta_locality=region-1%2Fzone-a&timestamp=1&pid=7",
        "dubbo://10.0.1.2:20880/com.acme.Greeter?interface=com.acme.Greeter&version=1.0.0&methods=greet,slow&application=greeter&aeraki_meta_app_version=v2&aeraki_meta_locality=region-1%2Fzone-b&timestamp=2&pid=8&weight=50",
        "dubbo://10.0.1.3:20880/com.acme.Greeter?interface=com.acme.Greeter&version=1.0.0&methods=greet,slow&application=greeter&enabled=false",
    ])]);
    insta::assert_snapshot!(render_all(&snapshot));
}

#[test]
fn groups_versions_protocols_and_ports() {
    let snapshot = snapshot_of(&[zk(&[
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
    let snapshot = snapshot_of(&[
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
