//! The Nacos adapter against the real Nacos server: a provider registered the way Dubbo
//! registers it and a plain Spring Cloud service reach the model with the right hosts, ports and
//! labels; consumers are skipped; new instances arrive by push; deregistering removes them, down
//! to the last one (the push Nacos' empty-push protection would swallow); and while Nacos is down
//! the model keeps the last instances, stale, until a restart brings the registry back.

use std::time::Duration;

use causeway_bridge::registry::nacos;
use causeway_bridge::registry::source::NacosSource;
use causeway_tests::nacos::{DEFAULT_GROUP, NacosServer};
use causeway_tests::{assert_eventually, logs};

use crate::bridge_etcd::Model;

const DUBBO_SERVICE: &str = "providers:com.acme.Api:1.0.0:";
const DUBBO_HOST: &str = "com.acme.api-1-0-0";
const ORDERS_HOST: &str = "orders.default-group.public.nacos";
const BILLING_HOST: &str = "billing.team.public.nacos";
/// After a restart the adapter replaces its client (retrying with a backoff of up to 30 s), and
/// the JVM itself is slow to start next to a compiler.
const RECOVERY: Duration = Duration::from_secs(180);

fn source(server: &NacosServer, groups: &[&str]) -> NacosSource {
    NacosSource {
        server_addr: server.server_addr(),
        namespace: "public".to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        poll_interval: Duration::from_secs(1),
        username: None,
        password: None,
    }
}

/// Metadata as Dubbo 3's Nacos registry writes it: every provider URL parameter plus
/// `category`, `protocol` and `path`.
const DUBBO_METADATA: &[(&str, &str)] = &[
    ("anyhost", "true"),
    ("application", "api-provider"),
    ("category", "providers"),
    ("deprecated", "false"),
    ("dubbo", "2.0.2"),
    ("dynamic", "true"),
    ("generic", "false"),
    ("interface", "com.acme.Api"),
    ("methods", "hello,bye"),
    ("path", "com.acme.Api"),
    ("pid", "4242"),
    ("protocol", "dubbo"),
    ("region", "cn-east"),
    ("release", "3.2.10"),
    ("side", "provider"),
    ("timestamp", "1700000000000"),
    ("version", "1.0.0"),
    ("zone", "cn-east-1a"),
];

#[tokio::test(flavor = "multi_thread")]
async fn nacos_dubbo_and_spring_services_follow_registrations() {
    logs::init();
    let server = NacosServer::start().await.unwrap();
    server
        .register_instance(
            DUBBO_SERVICE,
            DEFAULT_GROUP,
            None,
            "127.0.0.1",
            20880,
            DUBBO_METADATA,
        )
        .await
        .unwrap();
    server
        .register_instance(
            "orders",
            DEFAULT_GROUP,
            None,
            "127.0.0.1",
            8080,
            &[
                ("version", "v2"),
                ("preserved.register.source", "SPRING_CLOUD"),
            ],
        )
        .await
        .unwrap();
    server
        .register_instance(
            "consumers:com.acme.Api:1.0.0:",
            DEFAULT_GROUP,
            None,
            "127.0.0.9",
            1,
            &[("side", "consumer")],
        )
        .await
        .unwrap();
    server
        .register_instance("billing", "team", None, "127.0.0.1", 9000, &[])
        .await
        .unwrap();

    let mut model = Model::start("nacos-test", 256, |sink| {
        nacos::run(source(&server, &[DEFAULT_GROUP, "team"]), sink)
    });
    assert_eventually!(
        model.up()
            && model.endpoints(DUBBO_HOST) == [("127.0.0.1".to_owned(), 20880)]
            && model.endpoints(ORDERS_HOST) == [("127.0.0.1".to_owned(), 8080)]
            && model.endpoints(BILLING_HOST) == [("127.0.0.1".to_owned(), 9000)],
        "the registered services never reached the model: {:?}",
        model.snapshot()
    );
    assert_eq!(
        model.snapshot().services.len(),
        3,
        "consumers are not services"
    );

    let dubbo = model.service(DUBBO_HOST).unwrap();
    let identity = dubbo.dubbo.as_ref().unwrap();
    assert_eq!(identity.interface, "com.acme.Api");
    assert_eq!(identity.version.as_deref(), Some("1.0.0"));
    assert_eq!(identity.group, None);
    assert_eq!(dubbo.ports[0].name, "tcp-metaprotocol-dubbo");
    assert_eq!(dubbo.ports[0].number, 20880);
    assert!(dubbo.methods.contains("hello") && dubbo.methods.contains("bye"));
    let endpoint = &dubbo.endpoints[0];
    assert_eq!(endpoint.labels["version"], "1.0.0");
    assert_eq!(endpoint.labels["registry"], "nacos-test");
    assert_eq!(endpoint.locality.as_deref(), Some("cn-east/cn-east-1a"));
    assert_eq!(endpoint.weight, 100);
    assert!(endpoint.healthy);

    let orders = model.service(ORDERS_HOST).unwrap();
    assert_eq!(orders.name.as_deref(), Some("orders"));
    assert_eq!(orders.ports[0].name, "http");
    assert_eq!(orders.endpoints[0].labels["version"], "v2");

    // A second instance arrives by push (or the next poll).
    server
        .register_instance(
            "orders",
            DEFAULT_GROUP,
            None,
            "127.0.0.2",
            8080,
            &[("version", "v3")],
        )
        .await
        .unwrap();
    assert_eventually!(
        model.endpoints(ORDERS_HOST).len() == 2,
        "the second orders instance never arrived: {:?}",
        model.endpoints(ORDERS_HOST)
    );

    server
        .deregister_instance("orders", DEFAULT_GROUP, None, "127.0.0.1", 8080)
        .await
        .unwrap();
    assert_eventually!(
        model.endpoints(ORDERS_HOST) == [("127.0.0.2".to_owned(), 8080)],
        "the deregistered instance is still in the model: {:?}",
        model.endpoints(ORDERS_HOST)
    );

    // The last instances leave: pushes with zero instances must not be ignored.
    server
        .deregister_instance("orders", DEFAULT_GROUP, None, "127.0.0.2", 8080)
        .await
        .unwrap();
    server
        .deregister_instance(DUBBO_SERVICE, DEFAULT_GROUP, None, "127.0.0.1", 20880)
        .await
        .unwrap();
    assert_eventually!(
        model.service(ORDERS_HOST).is_none() && model.service(DUBBO_HOST).is_none(),
        "services whose last instance left are still in the model: {:?}",
        model.snapshot()
    );
    assert!(model.service(BILLING_HOST).is_some());
    assert!(model.up());
    assert_eq!(model.downs, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn nacos_outage_keeps_instances_and_a_restart_recovers() {
    logs::init();
    let mut server = NacosServer::start().await.unwrap();
    // Persistent instances (the harness registers those) survive the restart.
    server
        .register_instance(
            DUBBO_SERVICE,
            DEFAULT_GROUP,
            None,
            "127.0.0.1",
            20880,
            DUBBO_METADATA,
        )
        .await
        .unwrap();
    let mut model = Model::start("nacos-outage", 256, |sink| {
        nacos::run(source(&server, &[DEFAULT_GROUP]), sink)
    });
    assert_eventually!(
        model.up() && model.endpoints(DUBBO_HOST).len() == 1,
        "the instance never reached the model: {:?}",
        model.snapshot()
    );

    server.stop().unwrap();
    assert_eventually!(!model.up(), "the registry is never reported down");
    let service = model
        .service(DUBBO_HOST)
        .expect("instances are kept while Nacos is down");
    assert_eq!(service.endpoints.len(), 1);
    assert!(
        service.stale_registries.contains("nacos-outage"),
        "{service:?}"
    );

    server.restart().await.unwrap();
    assert_eventually!(within RECOVERY; model.up(), "the registry never comes back up");
    server
        .register_instance(
            DUBBO_SERVICE,
            DEFAULT_GROUP,
            None,
            "127.0.0.2",
            20880,
            DUBBO_METADATA,
        )
        .await
        .unwrap();
    assert_eventually!(
        within RECOVERY;
        model.endpoints(DUBBO_HOST).len() == 2,
        "an instance registered after the restart never shows: {:?}",
        model.endpoints(DUBBO_HOST)
    );
    let service = model.service(DUBBO_HOST).unwrap();
    assert!(service.stale_registries.is_empty(), "{service:?}");
    assert_eq!(model.downs, 1, "one outage, one Down");
}
